#!/usr/bin/env bash
# Ingest benchmark of o11ydb beside Prometheus, on the same machine, in one run.
#   * remote write: `o11ydb bench ingest` sends the same generated requests to
#     o11ydb and to Prometheus 2.42 started with --web.enable-remote-write-receiver;
#   * Loki push (protobuf + snappy) MB/s of log lines, and OTLP/HTTP spans/s,
#     into o11ydb.
# Every receiver starts fresh (empty data dir) for its run; its peak resident
# memory (VmHWM) is read from /proc after the run. o11ydb runs with its WAL
# fsync on every acknowledged request (its only mode).
# Needs: a release build (cargo build --release) and the Debian prometheus package.
# Usage: benches/ingest.sh [SCALE]   (1 = 1 M samples, 2 M log lines, 2 M spans)
#   RW_PAIRS=N runs the remote-write pair (o11ydb, then Prometheus) N times,
#   alternating, and reports each pair's ratio and the median: the
#   receivers' rates move ±15 % from run to run on a shared machine.
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=${1:-1}
BIN=${O11YDB_BIN:-${CARGO_TARGET_DIR:-target}/release/o11ydb}
WORK=$(mktemp -d /tmp/o11ydb-ingest.XXXXXX)
SERVER_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

cat > "$WORK/o11ydb.toml" <<'EOF'
[limits]
ingestion_rate = 1e9
ingestion_burst_size = 1000000000
logs_ingestion_rate_mb = 1e6
logs_ingestion_burst_size_mb = 1e6
spans_ingestion_rate = 1e9
spans_ingestion_burst_size = 1000000000
max_global_series_per_user = 0
EOF

start_o11ydb() {
  local dir="$WORK/o11ydb-$1"
  mkdir -p "$dir"
  "$BIN" serve --config "$WORK/o11ydb.toml" --data-dir "$dir/data" --pg-listen 127.0.0.1:0 \
    --http-listen 127.0.0.1:0 --flight-listen 127.0.0.1:0 --otlp-grpc-listen 127.0.0.1:0 \
    > "$dir/stdout" 2> "$dir/stderr" &
  SERVER_PID=$!
  for _ in $(seq 1 200); do
    ADDR=$(awk '$1 == "http:" {sub("http://", "", $2); print $2; exit}' "$dir/stdout")
    [ -n "$ADDR" ] && return 0
    sleep 0.1
  done
  echo "o11ydb did not start:"; cat "$dir/stderr"; exit 1
}

start_prometheus() {
  local dir="$WORK/prometheus"
  rm -rf "$dir"; mkdir -p "$dir"
  printf 'global:\n  scrape_interval: 1h\nscrape_configs: []\n' > "$dir/prometheus.yml"
  ADDR=127.0.0.1:19099
  prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/tsdb" \
    --web.listen-address="$ADDR" --web.enable-remote-write-receiver \
    > "$dir/log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 200); do
    curl -sf "http://$ADDR/-/ready" > /dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "prometheus did not start:"; cat "$dir/log"; exit 1
}

# Prints the server's peak resident memory in MiB and stops it.
stop_server() {
  local hwm
  hwm=$(awk '/^VmHWM:/ {printf "%.0f", $2/1024}' "/proc/$SERVER_PID/status")
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
  echo "$hwm"
}

# run NAME PROTOCOL ARGS... : one load run; leaves its report in $WORK/NAME.txt.
run() {
  local name=$1; shift
  if ! "$BIN" bench ingest --target "$ADDR" "$@" > "$WORK/$name.txt" 2>&1; then
    echo "$name failed:"; cat "$WORK/$name.txt"; exit 1
  fi
  sed "s/^/$name /" "$WORK/$name.txt"
}
field() { awk -v k="$2:" '$1 == k {print $2}' "$WORK/$1.txt"; }

echo "# machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
RW_ARGS=(--protocol remote-write --items 10000 --rounds $((100 * SCALE)))

RW_PAIRS=${RW_PAIRS:-1}
ratios=()
for pair in $(seq 1 "$RW_PAIRS"); do
  start_o11ydb "rw$pair"
  run o11ydb_rw "${RW_ARGS[@]}"
  o11ydb_rw_mem=$(stop_server)
  start_prometheus
  run prometheus_rw "${RW_ARGS[@]}"
  prometheus_rw_mem=$(stop_server)
  ratios+=("$(awk -v a="$(field o11ydb_rw samples_per_second)" -v b="$(field prometheus_rw samples_per_second)" 'BEGIN {printf "%.2f", a/b}')")
done
if ((RW_PAIRS > 1)); then
  echo "remote write ratio per pair: ${ratios[*]} (median $(printf '%s\n' "${ratios[@]}" | sort -n | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'))"
fi

start_o11ydb loki
run o11ydb_loki --protocol loki-push --items 1000 --rounds $((2000 * SCALE))
o11ydb_loki_mem=$(stop_server)

start_o11ydb otlp
run o11ydb_otlp --protocol otlp-traces --items 1000 --rounds $((200 * SCALE))
o11ydb_otlp_mem=$(stop_server)

o_rw=$(field o11ydb_rw samples_per_second)
p_rw=$(field prometheus_rw samples_per_second)
echo
echo "| measure | o11ydb | reference | ratio | o11ydb peak RSS |"
echo "| --- | --- | --- | --- | --- |"
awk -v a="$o_rw" -v b="$p_rw" -v m="$o11ydb_rw_mem" -v pm="$prometheus_rw_mem" \
  'BEGIN {printf "| remote write samples/s | %.0f | %.0f (Prometheus 2.42 receiver, peak RSS %s MiB) | %.2f | %s MiB |\n", a, b, pm, a/b, m}'
echo "| Loki push MB/s of lines | $(field o11ydb_loki payload_mb_per_second) ($(field o11ydb_loki lines_per_second) lines/s) | — | — | $o11ydb_loki_mem MiB |"
echo "| OTLP/HTTP spans/s | $(field o11ydb_otlp spans_per_second) | — | — | $o11ydb_otlp_mem MiB |"
