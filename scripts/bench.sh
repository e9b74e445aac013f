#!/usr/bin/env bash
# Run clawgate-bench against the floor, clawgate and (with --peer) the reference OpenClaw gateway,
# one after another in this one invocation, then render the side-by-side table with ratios.
#
# usage: scripts/bench.sh [--peer] [--report FILE]
# Env (all optional):
#   BENCH_BIN     the load tool               (target/release/clawgate-bench)
#   CLAWGATE_BIN  the gateway binary          (target/release/clawgate; skipped with a note if absent)
#   CLAWGATE_ARGS its arguments; {port} and {token} are substituted ("run --port {port} --token {token}")
#   BENCH_ARGS    extra `clawgate-bench run` arguments for every server (e.g. "--duration 2")
#   BENCH_DIR     where results and server logs go (target/bench/<UTC stamp>)
#   BENCH_COMMAND how the report names the command that produced it
#   BENCH_NOTE    one extra line for the report's server list (e.g. which commit clawgate was built from)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=bench-lib.sh
source "$here/bench-lib.sh"

peer=0
report=
while (($#)); do
  case $1 in
    --peer) peer=1 ;;
    --report) report=$2; shift ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done

BENCH_BIN=${BENCH_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/clawgate-bench}
CLAWGATE_BIN=${CLAWGATE_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/clawgate}
default_args='run --port {port} --token {token}'
CLAWGATE_ARGS=${CLAWGATE_ARGS:-$default_args}
BENCH_DIR=${BENCH_DIR:-${CARGO_TARGET_DIR:-$root/target}/bench/$(date -u +%Y%m%dT%H%M%SZ)}
read -r -a extra <<<"${BENCH_ARGS:-}"
if ((peer)); then
  report=${report:-$root/BENCHMARKS.md}
  BENCH_COMMAND=${BENCH_COMMAND:-make bench-peer}
else
  report=${report:-$BENCH_DIR/BENCHMARKS.md}
  BENCH_COMMAND=${BENCH_COMMAND:-make bench}
fi
# A strong token: clawgate refuses weak secrets on every bind (threats.md EX-1).
token=bench-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d " \n")
mkdir -p "$BENCH_DIR"
tmp=$(mktemp -d /tmp/clawgate-bench.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

names=()
server_args=()
notes=()
# add_server NAME SPAWN-CMD PORT DESCRIPTION: queue one server; the bench spawns, measures and stops
# it. DESCRIPTION is the command as the report shows it ($T = a fresh temp dir, P = a free port).
add_server() {
  local name=$1 cmd=$2 port=$3 describe=$4
  echo "== $name: $cmd" >&2
  names+=("$name")
  server_args+=(--name "$name" --spawn "$cmd" --describe "$describe" --url "ws://127.0.0.1:$port"
    --server-log "$BENCH_DIR/$name.log")
}

port=$(free_port)
add_server floor "$BENCH_BIN floor --listen 127.0.0.1:$port" "$port" "clawgate-bench floor --listen 127.0.0.1:P"

if [[ -x "$CLAWGATE_BIN" ]]; then
  port=$(free_port)
  args=${CLAWGATE_ARGS//\{port\}/$port}
  args=${args//\{token\}/$token}
  mkdir -p "$tmp/clawgate"
  shown=${CLAWGATE_ARGS//\{port\}/P}
  add_server clawgate "env HOME=$tmp/clawgate OPENCLAW_STATE_DIR=$tmp/clawgate/state $CLAWGATE_BIN $args" "$port" \
    "HOME=\$T OPENCLAW_STATE_DIR=\$T/state clawgate ${shown//\{token\}/T}"
  rev=$(git -C "$root" describe --always --dirty 2>/dev/null || echo "unknown revision")
  notes+=("clawgate: $CLAWGATE_BIN (tree $rev), fresh HOME and OPENCLAW_STATE_DIR, no config file, token auth on loopback")
else
  notes+=("clawgate: not measured ($CLAWGATE_BIN not built)")
fi

if ((peer)); then
  oc_installed || { echo "reference OpenClaw missing in $OC_DIR (make deps-openclaw)" >&2; exit 1; }
  port=$(free_port)
  mkdir -p "$tmp/reference"
  add_server reference "$(reference_cmd "$tmp/reference" "$port" "$token")" "$port" \
    "HOME=\$T OPENCLAW_STATE_DIR=\$T/.openclaw ${OC_BENCH_ENV[*]} oc gateway run --allow-unconfigured --bind loopback --auth token --token T --port P"
  notes+=("reference: OpenClaw $(oc_version) on Node $(PATH="$OC_NODE_BIN:$PATH" node --version) from $OC_DIR; \`oc\` = that Node running openclaw.mjs (spec/peers.md §2.1)")
fi

failed=0
# node.invoke runs against both gateways (the floor has no nodes); pairing.retry only against clawgate:
# the reference refuses proxy headers from an untrusted proxy (403) instead of treating the node as remote.
"$BENCH_BIN" run --token "$token" --out-dir "$BENCH_DIR" --node-servers clawgate,reference \
  --pairing-servers clawgate \
  "${server_args[@]}" "${extra[@]}" || failed=1
results=()
for n in "${names[@]}"; do
  if [[ -f "$BENCH_DIR/$n.json" ]]; then results+=("$BENCH_DIR/$n.json"); else failed=1; fi
done
((${#results[@]})) || { echo "no results; server logs in $BENCH_DIR" >&2; exit 1; }
[[ -n "${BENCH_NOTE:-}" ]] && notes+=("$BENCH_NOTE")
note_args=()
for n in "${notes[@]}"; do note_args+=(--note "$n"); done
# The report rewrites the whole file; a hand-maintained section (results of other benchmarks, e.g.
# make bench-tailscale) between these markers survives: it is cut out first and appended again.
hand_begin='<!-- hand-maintained:begin -->'
hand_end='<!-- hand-maintained:end -->'
hand="$tmp/hand-maintained.md"
: >"$hand"
[[ -f "$report" ]] && sed -n "\|^$hand_begin\$|,\|^$hand_end\$|p" "$report" >"$hand"
"$BENCH_BIN" report --out "$report" --command "$BENCH_COMMAND" --date "$(date -u '+%Y-%m-%d %H:%M UTC')" \
  "${note_args[@]}" "${results[@]}"
if [[ -s "$hand" ]]; then
  printf '\n' >>"$report"
  cat "$hand" >>"$report"
fi
echo "results in $BENCH_DIR; report $report" >&2
exit "$failed"
