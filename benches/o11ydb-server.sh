# Sourced by the benchmark scripts: start_o11ydb starts "$BIN" over
# "$WORK/o11ydb" with "$WORK/o11ydb.toml" on free ports, records its pid in
# O11YDB_PID and PIDS, and sets O11YDB to its HTTP address once it listens.
# compact_o11ydb runs its compactor once, after the run it starts with.
# peak_mib PID prints a process's peak resident memory in MiB.
start_o11ydb() {
  "$BIN" serve --config "$WORK/o11ydb.toml" --data-dir "$WORK/o11ydb" --pg-listen 127.0.0.1:0 \
    --http-listen 127.0.0.1:0 --flight-listen 127.0.0.1:0 --otlp-grpc-listen 127.0.0.1:0 \
    > "$WORK/o11ydb.stdout" 2>> "$WORK/o11ydb.stderr" &
  O11YDB_PID=$!
  PIDS+=("$O11YDB_PID")
  for _ in $(seq 1 600); do
    O11YDB=$(awk '$1 == "http:" {sub("http://", "", $2); print $2; exit}' "$WORK/o11ydb.stdout")
    [ -n "$O11YDB" ] && return 0
    sleep 0.1
  done
  echo "o11ydb did not start:"; cat "$WORK/o11ydb.stderr"; exit 1
}

# Compacts before timing, as a running system's blocks would be (else the
# compactor's first run would merge them while queries are timed; the
# scripts set compaction_interval = "24h" so no later run does). A run is
# refused while the one the server starts with is under way.
compact_o11ydb() {
  for _ in $(seq 1 600); do
    curl -sf -X POST "http://$O11YDB/compactor/run" > "$WORK/compaction.json" && break
    sleep 0.5
  done
  echo "compacted: $(head -c 300 "$WORK/compaction.json")"
}

# Prints the peak resident memory (VmHWM) of process $1 in MiB.
peak_mib() { awk '/^VmHWM:/ {printf "%.0f", $2/1024}' "/proc/$1/status"; }
