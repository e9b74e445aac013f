#!/usr/bin/env bash
# Direct TLS benchmark (issue 15 "Targets"): the TLS floor (clawgate-bench floor with rustls, same
# certificate) and clawgate with gateway.tls on, one after another in this one invocation; every
# scenario of clawgate-bench runs over wss:// (connect→hello-ok, RPC, idle RSS per connection).
# Both servers serve the same ECDSA P-256 pair (made with openssl here); the client pins it.
#
# usage: scripts/bench-tls.sh   Env: BENCH_BIN, CLAWGATE_BIN, BENCH_ARGS, BENCH_DIR (as scripts/bench.sh)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=bench-lib.sh
source "$here/bench-lib.sh"

BENCH_BIN=${BENCH_BIN:-$root/target/release/clawgate-bench}
CLAWGATE_BIN=${CLAWGATE_BIN:-$root/target/release/clawgate}
BENCH_DIR=${BENCH_DIR:-$root/target/bench/tls-$(date -u +%Y%m%dT%H%M%SZ)}
read -r -a extra <<<"${BENCH_ARGS:-}"
token=bench-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d " \n")
mkdir -p "$BENCH_DIR"
tmp=$(mktemp -d /tmp/clawgate-bench-tls.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj /CN=bench \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null
chmod 600 "$tmp/key.pem"
CLAWGATE_BENCH_TLS_FINGERPRINT=$(openssl x509 -in "$tmp/cert.pem" -noout -fingerprint -sha256 |
  cut -d= -f2 | tr -d : | tr 'A-F' 'a-f')
export CLAWGATE_BENCH_TLS_FINGERPRINT
mkdir -p "$tmp/clawgate/state"
printf '{ gateway: { tls: { enabled: true, certPath: "%s", keyPath: "%s" } } }\n' \
  "$tmp/cert.pem" "$tmp/key.pem" >"$tmp/clawgate/openclaw.json"

fport=$(free_port)
cport=$(free_port)
"$BENCH_BIN" run --token "$token" --out-dir "$BENCH_DIR" --pairing-servers none --node-servers none \
  --name tls-floor --url "wss://127.0.0.1:$fport" --server-log "$BENCH_DIR/tls-floor.log" \
  --spawn "$BENCH_BIN floor --listen 127.0.0.1:$fport --tls-cert $tmp/cert.pem --tls-key $tmp/key.pem" \
  --describe "clawgate-bench floor --tls-cert C --tls-key K (rustls TLS 1.3, P-256)" \
  --name clawgate-tls --url "wss://127.0.0.1:$cport" --server-log "$BENCH_DIR/clawgate-tls.log" \
  --spawn "env HOME=$tmp/clawgate OPENCLAW_STATE_DIR=$tmp/clawgate/state OPENCLAW_DISABLE_BONJOUR=1 $CLAWGATE_BIN run --port $cport --token $token --config $tmp/clawgate/openclaw.json" \
  --describe "clawgate run with gateway.tls {enabled, certPath C, keyPath K}" \
  "${extra[@]}"
"$BENCH_BIN" report --out "$BENCH_DIR/BENCHMARKS-tls.md" --baseline tls-floor --subject clawgate-tls \
  --command "make bench-tls" --date "$(date -u '+%Y-%m-%d %H:%M UTC')" \
  "$BENCH_DIR/tls-floor.json" "$BENCH_DIR/clawgate-tls.json"
echo "results in $BENCH_DIR (BENCHMARKS-tls.md)" >&2
