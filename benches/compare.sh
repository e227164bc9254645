#!/usr/bin/env bash
# Storage benchmark of o11ydb beside its reference systems, on the same data,
# on the same machine, in one run:
#   * bytes per sample: o11ydb blocks vs Prometheus TSDB blocks built by
#     `promtool tsdb create-blocks-from openmetrics` from the same samples;
#   * an SQL aggregate over the samples: o11ydb (in process) vs DuckDB reading
#     the very same Parquet block files.
# Needs: a release build (cargo build --release), promtool (Debian package
# prometheus) and a Python with duckdb (tests/clients/requirements.txt).
# Usage: benches/compare.sh [SERIES] [SCRAPES]      (default 10000 × 1000 = 10 M samples)
set -euo pipefail
cd "$(dirname "$0")/.."
SERIES=${1:-10000}
SCRAPES=${2:-1000}
BIN=${O11YDB_BIN:-${CARGO_TARGET_DIR:-target}/release/o11ydb}
PYTHON=${PYTHON:-$HOME/.cache/o11ydb-venv/bin/python}
WORK=$(mktemp -d /tmp/o11ydb-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

echo "# machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
echo "# data: $SERIES series x $SCRAPES scrapes at 15 s, 2 h blocks"

"$BIN" bench samples --series "$SERIES" --scrapes "$SCRAPES" --dir "$WORK/o11ydb" \
    --openmetrics "$WORK/samples.om" | tee "$WORK/o11ydb.txt"
samples=$(awk '/^samples:/ {print $2}' "$WORK/o11ydb.txt")
o11y_bps=$(awk '/^bytes_per_sample:/ {print $2}' "$WORK/o11ydb.txt")
o11y_sql=$(awk '/^sql_best_seconds:/ {print $2}' "$WORK/o11ydb.txt")
blocks=$(awk '/^blocks_dir:/ {print $2}' "$WORK/o11ydb.txt")

promtool tsdb create-blocks-from openmetrics --max-block-duration=2h "$WORK/samples.om" "$WORK/prometheus" > "$WORK/promtool.txt"
prom_bytes=$(find "$WORK/prometheus" -type f \( -path '*/chunks/*' -o -name index -o -name meta.json -o -name tombstones \) -printf '%s\n' | awk '{s+=$1} END {print s}')
prom_bps=$(awk -v b="$prom_bytes" -v n="$samples" 'BEGIN {printf "%.3f", b/n}')
echo "prometheus_blocks: $(find "$WORK/prometheus" -name meta.json | wc -l)"
echo "prometheus_bytes_per_sample: $prom_bps"

duck_sql=$("$PYTHON" benches/duckdb_aggregate.py "$blocks")
echo "duckdb_sql_best_seconds: $duck_sql"

echo
echo "| measure | o11ydb | reference | ratio (o11ydb / reference) |"
echo "| --- | --- | --- | --- |"
awk -v a="$o11y_bps" -v b="$prom_bps" 'BEGIN {printf "| bytes per sample | %.3f | %.3f (Prometheus TSDB) | %.2f |\n", a, b, a/b}'
awk -v a="$o11y_sql" -v b="$duck_sql" 'BEGIN {printf "| SQL aggregate, best of 5 | %.4f s | %.4f s (DuckDB, same Parquet) | %.2f |\n", a, b, a/b}'
