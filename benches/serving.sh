#!/usr/bin/env bash
# Serving benchmark: result transfer and many concurrent Postgres clients,
# on one machine, in one run.
#   1. `o11ydb bench samples` writes ROWS samples (10,000 series × ROWS/10,000
#      scrapes, at least 485) into Parquet blocks of tenant `bench`; o11ydb
#      serves them.
#   2. Transfer of ROWS rows (`timestamp, metric, value`), median of RUNS:
#      Arrow Flight SQL (ADBC → pyarrow table) vs pgwire (psycopg 3, binary
#      results) vs DuckDB reading the same Parquet files in process
#      (benches/transfer.py); rows/s and peak memory of server and client.
#   3. CLIENTS concurrent pgwire clients (tokio-postgres, `o11ydb bench
#      pg-clients`), each running 50 small statements of a mix (ping,
#      information_schema, a prepared point lookup, a Grafana-style
#      time-bucket aggregate, a count, version()); errors, statements/s,
#      p50/p99/max latency, and the server's peak memory.
# Needs: a release build (cargo build --release) and the CI venv (duckdb,
# psycopg, adbc-driver-flightsql).
# Usage: benches/serving.sh [ROWS] [RUNS] [CLIENTS]   (default 10,000,000 rows, 3 runs, 200 clients)
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-10000000}
RUNS=${2:-3}
CLIENTS=${3:-200}
BIN=${O11YDB_BIN:-${CARGO_TARGET_DIR:-target}/release/o11ydb}
PYTHON=${PYTHON:-$HOME/.cache/o11ydb-venv/bin/python}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/o11ydb-serving.XXXXXX")
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "# machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
# At least 485 scrapes (2 h 1 min): the clients' statements read windows up
# to 02:01 of the data; the transfer reads the first ROWS rows of it all.
SCRAPES=$(( (ROWS + 9999) / 10000 ))
if (( SCRAPES < 485 )); then SCRAPES=485; fi
"$BIN" bench samples --series 10000 --scrapes "$SCRAPES" --dir "$WORK/o11ydb" \
  --sql "SELECT count(*) FROM samples" > "$WORK/samples.txt"
grep -E '^(samples|blocks):' "$WORK/samples.txt"
BLOCKS=$(awk '/^blocks_dir:/ {print $2}' "$WORK/samples.txt")

# No compactor: DuckDB reads the very block files o11ydb serves, so they must
# stay as written (no merges, no downsampled blocks beside them).
cat > "$WORK/o11ydb.toml" <<'TOML'
[pgwire]
default_tenant = "bench"

[compactor]
enabled = false
TOML

# shellcheck source=benches/o11ydb-server.sh
source "benches/o11ydb-server.sh"
start_o11ydb
PG=$(awk '$1 == "postgres:" {print $2; exit}' "$WORK/o11ydb.stdout")
FLIGHT=$(awk '$1 == "flight:" {print $2; exit}' "$WORK/o11ydb.stdout")

echo
echo "== transfer of $ROWS rows (median of $RUNS)"
echo -e "way\tseconds\trows/s\tserver peak MiB\tclient peak MiB"
"$PYTHON" benches/transfer.py "$PG" "$FLIGHT" "$BLOCKS" "$O11YDB_PID" "$ROWS" "$RUNS" | tee "$WORK/transfer.tsv"
awk -F'\t' '{r[$1] = $3} END {
  printf "Flight SQL / pgwire rows/s: %.1f\nFlight SQL / DuckDB local rows/s: %.2f\n",
    r["flight_sql_adbc"] / r["pgwire_psycopg_binary"], r["flight_sql_adbc"] / r["duckdb_local_parquet"] }' \
  "$WORK/transfer.tsv"

echo
echo "== $CLIENTS concurrent pgwire clients, 50 statements each"
echo 5 > "/proc/$O11YDB_PID/clear_refs"
"$BIN" bench pg-clients --conn "host=${PG%:*} port=${PG##*:} user=o11ydb" --clients "$CLIENTS" --statements 50
echo "server_peak_mib: $(peak_mib "$O11YDB_PID")"
