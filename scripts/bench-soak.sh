#!/usr/bin/env bash
# Soak benchmark (issue 12 item 10; make bench-soak, part of make bench, never make test):
# clawgate-bench soak holds SOAK_CONNS authenticated connections on a fresh clawgate, churns
# SOAK_CHURN of them per second and keeps paced `health` load on 8 more for SOAK_SECS seconds;
# it fails when p99 ≥ 10 ms, RSS drift ≥ 5 % or any fd is not returned.
#
# Env (all optional): SOAK_SECS (600), SOAK_CONNS (10000), SOAK_CHURN (100 per second),
#   SOAK_WARMUP (10 s of load before the start sample),
#   SOAK_ARGS (extra `clawgate-bench soak` flags), BENCH_BIN, CLAWGATE_BIN, BENCH_DIR.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=bench-lib.sh
source "$here/bench-lib.sh"

BENCH_BIN=${BENCH_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/clawgate-bench}
CLAWGATE_BIN=${CLAWGATE_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/clawgate}
BENCH_DIR=${BENCH_DIR:-${CARGO_TARGET_DIR:-$root/target}/bench/soak-$(date -u +%Y%m%dT%H%M%SZ)}
read -r -a extra <<<"${SOAK_ARGS:-}"
mkdir -p "$BENCH_DIR"
tmp=$(mktemp -d /tmp/clawgate-soak.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
token=soak-$RANDOM$RANDOM$RANDOM
port=$(free_port)
mkdir -p "$tmp/home"
"$BENCH_BIN" soak --token "$token" --url "ws://127.0.0.1:$port" \
  --spawn "env HOME=$tmp/home OPENCLAW_STATE_DIR=$tmp/home/state $CLAWGATE_BIN run --port $port --token $token" \
  --server-log "$BENCH_DIR/clawgate.log" --json-out "$BENCH_DIR/soak.json" \
  --secs "${SOAK_SECS:-600}" --conns "${SOAK_CONNS:-10000}" --churn-per-sec "${SOAK_CHURN:-100}" \
  --warmup "${SOAK_WARMUP:-10}" \
  "${extra[@]}"
echo "soak result in $BENCH_DIR/soak.json" >&2
