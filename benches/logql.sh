#!/usr/bin/env bash
# Log search and LogQL queries: o11ydb beside ripgrep, GNU grep and DuckDB,
# on the same machine, the same data and in the same run.
#   1. `o11ydb bench logql data` generates the log set (src/bench/logql.rs):
#      written as plain text (for ripgrep/grep) and pushed into a fresh
#      o11ydb through Loki push, then flushed to Parquet blocks.
#   2. o11ydb is restarted over its on-disk data and its compactor run once.
#   3. `o11ydb bench logql query` times every query over the Loki HTTP API
#      (median of RUNS runs after a warm-up).
#   4. ripgrep and grep count the matching lines of the text file; DuckDB
#      answers the same questions in SQL over o11ydb's own Parquet block files
#      (benches/duckdb_logql.py); medians of RUNS runs.
# Needs: a release build (cargo build --release), ripgrep (apt-get install
# ripgrep) and the DuckDB Python package (the CI venv has it).
# Usage: benches/logql.sh [MB] [RUNS]     (default 1024 MB of lines, 5 runs)
set -euo pipefail
cd "$(dirname "$0")/.."
MB=${1:-1024}
RUNS=${2:-5}
HOURS=6
BIN=${O11YDB_BIN:-${CARGO_TARGET_DIR:-target}/release/o11ydb}
PYTHON=${PYTHON:-$HOME/.cache/o11ydb-venv/bin/python}
WORK=$(mktemp -d /tmp/o11ydb-logql.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT
command -v rg >/dev/null || { echo "ripgrep is needed: apt-get install -y ripgrep"; exit 1; }

# The lines end five minutes ago.
END_NS=$(( ($(date +%s) - 300) * 1000000000 ))
DATA_ARGS=(--mb "$MB" --hours "$HOURS" --end-ns "$END_NS")

cat > "$WORK/o11ydb.toml" <<'EOF'
[limits]
logs_ingestion_rate_mb = 1e6
logs_ingestion_burst_size_mb = 1e6
[compactor]
compaction_interval = "24h"
deletion_delay = "0s"
EOF

# shellcheck source=benches/o11ydb-server.sh
source "benches/o11ydb-server.sh"

start_o11ydb
echo "generating ${MB} MB of log lines, pushing them to o11ydb ..."
t0=$(date +%s.%N)
"$BIN" bench logql data "${DATA_ARGS[@]}" --text "$WORK/logs.txt" --push "$O11YDB"
t1=$(date +%s.%N)
echo "generated + pushed + flushed in $(echo "$t1 - $t0" | bc) s"
kill "$O11YDB_PID"; wait "$O11YDB_PID" 2>/dev/null || true
start_o11ydb
compact_o11ydb
echo "text: $(du -b "$WORK/logs.txt" | cut -f1) bytes, $(wc -l < "$WORK/logs.txt") lines"
echo "o11ydb blocks: $(du -cb "$WORK"/o11ydb/blocks/tenants/anonymous/logs/blocks/*.parquet | tail -1 | cut -f1) bytes of Parquet" \
  "in $(ls "$WORK"/o11ydb/blocks/tenants/anonymous/logs/blocks/*.parquet | wc -l) blocks"

echo
echo "== o11ydb (Loki HTTP API, median of $RUNS)"
"$BIN" bench logql query "${DATA_ARGS[@]}" --o11ydb "$O11YDB" --runs "$RUNS" | tee "$WORK/o11ydb.tsv"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
time_cmd() { # runs "$@" RUNS times after a warm-up; prints the median seconds and the last output
  "$@" > "$WORK/out" 2>/dev/null || true
  for _ in $(seq 1 "$RUNS"); do
    s=$(date +%s.%N); "$@" > "$WORK/out" 2>/dev/null || true; e=$(date +%s.%N)
    echo "$e - $s" | bc
  done | median | tr '\n' '\t'
  head -c 200 "$WORK/out" | tr '\n' ' '; echo
}
echo
echo "== ripgrep / grep (count of matching lines, median of $RUNS)"
TEXT="$WORK/logs.txt"
printf 'rg substring\t';        time_cmd rg -c -F 'connection reset' "$TEXT"
printf 'grep substring\t';      time_cmd grep -c -F 'connection reset' "$TEXT"
printf 'rg regex\t';            time_cmd rg -c 'status[=":]+50[23]' "$TEXT"
printf 'grep regex\t';          time_cmd grep -c -E 'status[=":]+50[23]' "$TEXT"
printf 'rg case-insensitive\t'; time_cmd rg -c -i 'UPSTREAM TIMEOUT' "$TEXT"
printf 'grep case-insensitive\t'; time_cmd grep -c -i 'UPSTREAM TIMEOUT' "$TEXT"
NEEDLE=$(awk -F'\t' '$1 == "needle" {print $2}' "$WORK/o11ydb.tsv")
if [ -n "$NEEDLE" ]; then
  printf 'rg needle\t';         time_cmd rg -c -F "$NEEDLE" "$TEXT"
fi

echo
echo "== DuckDB over o11ydb's Parquet blocks (median of $RUNS)"
"$PYTHON" benches/duckdb_logql.py "$WORK/o11ydb/blocks/tenants/anonymous/logs/blocks" "$RUNS" "$NEEDLE"
