#!/usr/bin/env bash
# PromQL query latency of o11ydb beside Prometheus 2.42, on the same machine,
# the same data and in the same run.
#   1. `o11ydb bench promql data` generates the scrape-shaped dataset
#      (src/bench/scrape_dataset.rs) and writes it as OpenMetrics;
#      `promtool tsdb create-blocks-from openmetrics` turns it into TSDB blocks.
#   2. The same dataset is remote-written into a fresh o11ydb and flushed to
#      Parquet blocks.
#   3. Both servers are restarted over their on-disk data (Prometheus after
#      it had time to compact, o11ydb's compactor run once), so neither
#      holds ingest-time memory.
#   4. `o11ydb bench promql query` times every query on both (median of
#      RUNS runs after a warm-up, the systems alternating within each run).
#   5. Peak resident memory (VmHWM) of both servers after the queries.
# Needs: a release build (cargo build --release) and the Debian prometheus package.
# Usage: benches/promql.sh [INSTANCES_PER_JOB] [HOURS] [RUNS]
#        (default 60 × 8 jobs × 21 series = 10,080 series, 6 h at 15 s, 5 runs)
set -euo pipefail
cd "$(dirname "$0")/.."
INSTANCES=${1:-60}
HOURS=${2:-6}
RUNS=${3:-5}
BIN=${O11YDB_BIN:-${CARGO_TARGET_DIR:-target}/release/o11ydb}
WORK=$(mktemp -d /tmp/o11ydb-promql.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# The data ends five minutes ago, on a whole minute.
END_MS=$(( ($(date +%s) / 60) * 60000 - 300000 ))
DATA_ARGS=(--jobs 8 --instances "$INSTANCES" --hours "$HOURS" --end-ms "$END_MS")

cat > "$WORK/o11ydb.toml" <<'EOF'
[limits]
ingestion_rate = 1e9
ingestion_burst_size = 1000000000
max_global_series_per_user = 0
[compactor]
compaction_interval = "24h"
deletion_delay = "0s"
EOF

O11YDB_PID=""
# shellcheck source=benches/o11ydb-server.sh
source "benches/o11ydb-server.sh"

PROMETHEUS=127.0.0.1:19098
PROMETHEUS_PID=""
start_prometheus() {
  printf 'global:\n  scrape_interval: 1h\nscrape_configs: []\n' > "$WORK/prometheus.yml"
  prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
    --storage.tsdb.retention.time=30d --web.listen-address="$PROMETHEUS" \
    >> "$WORK/prometheus.log" 2>&1 &
  PROMETHEUS_PID=$!
  PIDS+=("$PROMETHEUS_PID")
  for _ in $(seq 1 600); do
    curl -sf "http://$PROMETHEUS/-/ready" > /dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "prometheus did not start:"; cat "$WORK/prometheus.log"; exit 1
}

stop() { kill "$1"; wait "$1" 2>/dev/null || true; }

echo "# machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
echo "# $(prometheus --version 2>&1 | head -1)"
"$BIN" bench promql data "${DATA_ARGS[@]}" --openmetrics "$WORK/data.txt"
started=$(date +%s)
promtool tsdb create-blocks-from openmetrics "$WORK/data.txt" "$WORK/tsdb" > "$WORK/promtool.log"
echo "promtool: blocks created in $(( $(date +%s) - started )) s"
rm "$WORK/data.txt"
start_prometheus   # compacts its blocks while o11ydb ingests

start_o11ydb
"$BIN" bench promql data "${DATA_ARGS[@]}" --push "$O11YDB"
stop "$O11YDB_PID"
start_o11ydb
compact_o11ydb
echo "o11ydb data: $(du -sh "$WORK/o11ydb" | cut -f1); prometheus data: $(du -sh "$WORK/tsdb" | cut -f1) ($(ls -d "$WORK"/tsdb/01* | wc -l) blocks)"
stop "$PROMETHEUS_PID"
start_prometheus

"$BIN" bench promql query "${DATA_ARGS[@]}" --o11ydb "$O11YDB" --prometheus "$PROMETHEUS" --runs "$RUNS"
echo
echo "peak RSS (VmHWM) after the queries: o11ydb $(peak_mib "$O11YDB_PID") MiB, Prometheus $(peak_mib "$PROMETHEUS_PID") MiB"
