#!/bin/bash
# The orchestrated checkout's latency with metrics and OTLP trace export on
# and off, alternating (two rounds), against a release build:
#   cargo build --release && scripts/overhead.sh
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
cd "$work" || exit 1
run() { # $1: metrics 0/1, $2: OTLP export 0/1
  rm -rf data spans.jsonl
  local extra=()
  if [ "$2" = 1 ]; then
    (python3 "$root/scripts/otlp_spans.py" serve 14318 spans.jsonl > collector.log 2>&1 &)
    sleep 1
    extra=(OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:14318)
  fi
  (env CHORUS_DATA_DIR="$work/data" GATEWAY_ADDR=127.0.0.1:18080 RUST_LOG=warn CHORUS_METRICS="$1" "${extra[@]}" \
    "$root/target/release/chorus" up --no-seed > up.out 2> up.err &)
  sleep 4
  echo "metrics=$1 export=$2:"
  "$root/target/release/chorus" bench --url http://127.0.0.1:18080 --pattern orchestrated --clients 1 --checkouts 300 | grep '^| orch' 
  pkill -TERM -f "target/release/chorus up"; sleep 3
  pkill -f "otlp_spans.py serve"; sleep 1
}
for _ in 1 2; do run 0 0; run 1 0; run 1 1; done
rm -rf "$work"
