#!/usr/bin/env bash
# Rule evaluation of o11ydb's ruler beside Prometheus 2.42's rule manager, on
# the same machine, the same data, the same rule file and in the same run.
#   1. `o11ydb bench promql data` generates the scrape-shaped dataset
#      (src/bench/scrape_dataset.rs), one hour at 15 s ending LEAD seconds
#      from now; `promtool tsdb create-blocks-from openmetrics` turns it into
#      TSDB blocks and the same samples are remote-written into a fresh
#      o11ydb and flushed (tenant `anonymous`).
#   2. `o11ydb bench ruler rules` writes the rule file (RULES rules, 20 per
#      group, src/bench/ruler.rs); promtool checks it.
#   3. Once the data's last scrape has passed, both servers start over their
#      on-disk data with that rule file (Prometheus `rule_files`, o11ydb
#      `[ruler] rule_path` for the tenant the data went to) and an
#      evaluation interval of INTERVAL, so the first evaluations see a full
#      hour of data up to their own time.
#   4. `o11ydb bench ruler compare` reads both `/api/v1/rules` every 2 s until
#      every group has been evaluated ROUNDS times; it fails if any rule is
#      in health `err`, and prints per-group, per-rule and per-round figures
#      with their o11ydb/Prometheus ratios.
#   5. Peak resident memory (VmHWM) of both servers; then the in-process
#      `o11ydb bench ruler` at its default size (IN_PROCESS=0 skips it).
# Needs: a release build (cargo build --release) and the Debian prometheus package.
# Usage: benches/ruler.sh [ROUNDS] [INTERVAL_SECONDS] [RULES] [INSTANCES_PER_JOB]
#        (default 5 rounds at 30 s, 1,000 rules, 60 × 8 jobs × 21 series = 10,080 series)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
INTERVAL=${2:-30}
RULES=${3:-1000}
INSTANCES=${4:-60}
# Seconds between now and the data's last scrape: time to generate and load it.
LEAD=${LEAD:-120}
IN_PROCESS=${IN_PROCESS:-1}
BIN=${O11YDB_BIN:-${CARGO_TARGET_DIR:-target}/release/o11ydb}
WORK=$(mktemp -d /tmp/o11ydb-ruler.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT

END_MS=$(( ($(date +%s) + LEAD) * 1000 ))
DATA_ARGS=(--jobs 8 --instances "$INSTANCES" --hours 1 --end-ms "$END_MS")
START_MS=$(( END_MS - 3600000 ))
TENANT=anonymous

write_o11ydb_config() {
  cat > "$WORK/o11ydb.toml" <<'EOF'
[limits]
ingestion_rate = 1e9
ingestion_burst_size = 1000000000
max_global_series_per_user = 0
EOF
  if [ "${1:-}" = ruler ]; then
    printf '\n[ruler]\nrule_path = "%s"\nevaluation_interval = "%ss"\n' "$WORK/rules" "$INTERVAL" \
      >> "$WORK/o11ydb.toml"
  fi
}

O11YDB_PID=""
# shellcheck source=benches/o11ydb-server.sh
source "benches/o11ydb-server.sh"

PROMETHEUS=127.0.0.1:19099
PROMETHEUS_PID=""
start_prometheus() {
  printf 'global:\n  scrape_interval: 1h\n  evaluation_interval: %ss\nrule_files:\n  - %s\nscrape_configs: []\n' \
    "$INTERVAL" "$WORK/rules/$TENANT/bench.yaml" > "$WORK/prometheus.yml"
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
echo "# load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
"$BIN" bench promql data "${DATA_ARGS[@]}" --openmetrics "$WORK/data.txt"
started=$(date +%s)
promtool tsdb create-blocks-from openmetrics "$WORK/data.txt" "$WORK/tsdb" > "$WORK/promtool.log"
echo "promtool: blocks created in $(( $(date +%s) - started )) s"
rm "$WORK/data.txt"

write_o11ydb_config
start_o11ydb
"$BIN" bench promql data "${DATA_ARGS[@]}" --push "$O11YDB"
stop "$O11YDB_PID"
echo "o11ydb data: $(du -sh "$WORK/o11ydb" | cut -f1); prometheus data: $(du -sh "$WORK/tsdb" | cut -f1) ($(ls -d "$WORK"/tsdb/01* | wc -l) blocks)"

mkdir -p "$WORK/rules/$TENANT"
"$BIN" bench ruler rules --rules "$RULES" --rules-per-group 20 --jobs 8 \
  --out "$WORK/rules/$TENANT/bench.yaml"
promtool check rules "$WORK/rules/$TENANT/bench.yaml" | tail -1

# Neither server may evaluate at a time before the data's last scrape (±2 s
# jitter): Prometheus refuses rule results older than its newest block
# ("out of bounds"), and its first evaluation is at the latest interval slot
# before it started, up to INTERVAL in the past.
wait_ms=$(( END_MS + 3000 + INTERVAL * 1000 - $(date +%s%3N) ))
if [ "$wait_ms" -gt 0 ]; then
  echo "loaded $(( wait_ms / 1000 )) s before the data's end; waiting for it"
  sleep "$(( wait_ms / 1000 )).$(printf '%03d' $(( wait_ms % 1000 )))"
else
  echo "loading ran $(( -wait_ms / 1000 )) s past the data's end (raise LEAD)"
fi
write_o11ydb_config ruler
start_o11ydb
start_prometheus
echo "both started with $RULES rules, evaluation interval ${INTERVAL}s, at $(date +%H:%M:%S)"

"$BIN" bench ruler compare --o11ydb "$O11YDB" --prometheus "$PROMETHEUS" --rounds "$ROUNDS" \
  --data-start-ms "$START_MS" --data-end-ms "$END_MS"
echo
echo "peak RSS (VmHWM) after $ROUNDS rounds: o11ydb $(peak_mib "$O11YDB_PID") MiB, Prometheus $(peak_mib "$PROMETHEUS_PID") MiB"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
stop "$O11YDB_PID"
stop "$PROMETHEUS_PID"

if [ "$IN_PROCESS" = 1 ]; then
  echo
  echo "# in process: o11ydb bench ruler (defaults)"
  "$BIN" bench ruler
  echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
fi
