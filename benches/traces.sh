#!/usr/bin/env bash
# Trace queries: o11ydb beside DuckDB on the same machine, the same data and
# in the same run.
#   1. `o11ydb bench traces data` generates the trace set (src/bench/traces.rs)
#      and sends it to a fresh o11ydb as OTLP/HTTP protobuf export requests,
#      measuring spans/s up to the last acknowledgement, then flushes.
#   2. o11ydb is restarted over its on-disk data; stored bytes per span =
#      (Parquet blocks + sidecars: bloom index, service-graph edges) / spans, from /debug/storage.
#   3. `o11ydb bench traces query` times every query over pgwire (median of
#      RUNS runs after a warm-up).
#   4. DuckDB answers the same SQL over o11ydb's own Parquet block files
#      (benches/duckdb_traces.py), medians of RUNS runs; the ratios
#      o11ydb / DuckDB are printed last.
# Needs: a release build (cargo build --release) and the DuckDB Python
# package (the CI venv has it).
# Usage: benches/traces.sh [SPANS] [RUNS]     (default 10,000,000 spans, 5 runs)
set -euo pipefail
cd "$(dirname "$0")/.."
SPANS=${1:-10000000}
RUNS=${2:-5}
HOURS=1
BIN=${O11YDB_BIN:-${CARGO_TARGET_DIR:-target}/release/o11ydb}
PYTHON=${PYTHON:-$HOME/.cache/o11ydb-venv/bin/python}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/o11ydb-traces.XXXXXX")
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# The last trace starts five minutes ago.
END_NS=$(( ($(date +%s) - 300) * 1000000000 ))
DATA_ARGS=(--spans "$SPANS" --hours "$HOURS" --end-ns "$END_NS")

# No compactor: DuckDB reads the very block files o11ydb serves, so they must
# stay as written (a merge would leave its sources beside the merged block
# until their deferred deletion, and DuckDB's glob would read both).
cat > "$WORK/o11ydb.toml" <<'TOML'
[limits]
spans_ingestion_rate = 1e9
spans_ingestion_burst_size = 1000000000

[compactor]
enabled = false
TOML

# shellcheck source=benches/o11ydb-server.sh
source "benches/o11ydb-server.sh"

start_o11ydb
echo "generating ~${SPANS} spans, sending them to o11ydb over OTLP/HTTP ..."
"$BIN" bench traces data "${DATA_ARGS[@]}" --push "$O11YDB" | tee "$WORK/data.tsv"
kill "$O11YDB_PID"; wait "$O11YDB_PID" 2>/dev/null || true
start_o11ydb
PG=$(awk '$1 == "postgres:" {print $2; exit}' "$WORK/o11ydb.stdout")
curl -s "http://$O11YDB/debug/storage" > "$WORK/storage.json"
"$PYTHON" - "$WORK/storage.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))["tenants"]["anonymous"]["spans"]
total = s["block_bytes"] + s["index_bytes"]
print(f"stored: {s['blocks']} blocks, {s['block_rows']} spans, {s['block_bytes']} bytes of Parquet "
      f"+ {s['index_bytes']} bytes of sidecars (bloom index, edges) = {total / s['block_rows']:.1f} bytes/span")
PY
BLOCKS="$WORK/o11ydb/blocks/tenants/anonymous/spans/blocks"

echo
echo "== o11ydb (pgwire, median of $RUNS)"
"$BIN" bench traces query "${DATA_ARGS[@]}" --pg "$PG" --runs "$RUNS" | tee "$WORK/o11ydb.tsv"
NEEDLE=$(awk -F'\t' '$1 == "needle" {print $2}' "$WORK/o11ydb.tsv")

echo
echo "== DuckDB over o11ydb's Parquet blocks (median of $RUNS)"
"$PYTHON" benches/duckdb_traces.py "$BLOCKS" "$RUNS" "$NEEDLE" | tee "$WORK/duckdb.tsv"

echo
echo "== o11ydb / DuckDB"
awk -F'\t' 'NR == FNR { if ($1 != "needle") d[$1] = $2; next }
  $1 in d { printf "%s\t%.4f / %.4f = %.2f\n", $1, $2, d[$1], $2 / d[$1] }' \
  "$WORK/duckdb.tsv" "$WORK/o11ydb.tsv"
