#!/usr/bin/env bash
# Start the reference OpenClaw gateway (spec/peers.md §2.4) in a temp dir, capture the exact frames it
# sends for a fixed set of exchanges (bench-capture-reference.mjs) plus its HTTP probe answers, and
# write them to OUT (default tests/fixtures/reference). Stops the gateway by PID on exit.
# Env: CAPTURE_IDLE_MS=31000 also records idle events (tick, health) for that long.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench-lib.sh
source "$here/bench-lib.sh"
OUT=${1:-$here/../tests/fixtures/reference}
oc_installed || { echo "reference OpenClaw not installed in $OC_DIR (run: make deps-openclaw)" >&2; exit 1; }

tmp=$(mktemp -d /tmp/clawgate-capture.XXXXXX)
pid=
cleanup() { stop_pid "$pid"; rm -rf "$tmp"; }
trap cleanup EXIT
port=$(free_port)
token=capture-token
pid=$(start_bg "$tmp/gateway.log" bash -c "exec $(reference_cmd "$tmp" "$port" "$token")")
wait_http_ok "http://127.0.0.1:$port/healthz" 120 || { tail -50 "$tmp/gateway.log" >&2; exit 1; }

mkdir -p "$OUT"
capture_http() { # capture_http SUFFIX: record the HTTP probe answers as they are right now
  local path
  for path in healthz readyz startupz; do
    curl -si "http://127.0.0.1:$port/$path" | tr -d '\r' | grep -v '^Date:' >"$OUT/http-$path$1.txt"
  done
}
# /healthz is live long before RPCs work: record what a client sees while the gateway is starting.
capture_http -starting
PATH="$OC_NODE_BIN:$PATH" CAPTURE_ONLY=starting node "$here/bench-capture-reference.mjs" "ws://127.0.0.1:$port" "$token" "$OUT"
wait_http_ok "http://127.0.0.1:$port/startupz" 120 || { tail -50 "$tmp/gateway.log" >&2; exit 1; }
capture_http ""
PATH="$OC_NODE_BIN:$PATH" node "$here/bench-capture-reference.mjs" "ws://127.0.0.1:$port" "$token" "$OUT"
{
  echo "openclaw $(oc_version), captured $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "gateway: HOME=\$T OPENCLAW_STATE_DIR=\$T/.openclaw ${OC_BENCH_ENV[*]} oc gateway run --allow-unconfigured --bind loopback --auth token --token $token --port P"
  echo "client: scripts/bench-capture-reference.mjs (Node $(PATH="$OC_NODE_BIN:$PATH" node --version) global WebSocket)"
} >"$OUT/VERSION.txt"
echo "frames written to $OUT"
