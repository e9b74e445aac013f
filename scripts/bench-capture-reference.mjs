// Capture the exact frames a running OpenClaw gateway sends for a fixed set of exchanges and write one
// file per exchange into an output directory. Used against the reference gateway (spec/peers.md §2.4)
// to give clawgate golden frames to compare with. Needs Node >= 22 (global WebSocket).
//
// usage: node bench-capture-reference.mjs <ws-url> <token> <out-dir>
// Each file <name>.jsonl holds one JSON object per line: {"dir":"in"|"out","frame":<parsed frame>}
// plus a final {"close":{"code":N,"reason":"…"}} line when the server closed the socket.
import { writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";

const [url, token, outDir] = process.argv.slice(2);
if (!url || !token || !outDir) {
  console.error("usage: bench-capture-reference.mjs <ws-url> <token> <out-dir>");
  process.exit(2);
}
mkdirSync(outDir, { recursive: true });

const client = { id: "cli", version: "bench", platform: "linux", mode: "cli" };
const connectParams = (over = {}) => ({
  minProtocol: 4, maxProtocol: 4, client, role: "operator", scopes: ["operator.read"], caps: [],
  auth: { token }, ...over,
});

// Run one scripted exchange: send `connect` (built from the challenge), then each request in turn,
// waiting for its `res`. Records every frame in both directions and the close code.
function exchange(name, params, requests, lingerMs = 0) {
  return new Promise((resolve) => {
    const log = [];
    const ws = new WebSocket(url);
    let pending = null;
    let queue = [...requests];
    const timer = setTimeout(() => { log.push({ timeout: true }); ws.close(); }, 15000 + lingerMs);
    const send = (frame) => { log.push({ dir: "out", frame }); ws.send(JSON.stringify(frame)); };
    const next = () => {
      if (queue.length === 0) { setTimeout(() => ws.close(), lingerMs); return; }
      const [id, method, p] = queue.shift();
      pending = id;
      send({ type: "req", id, method, params: p });
    };
    ws.onmessage = (ev) => {
      const frame = JSON.parse(ev.data);
      log.push({ dir: "in", frame });
      if (frame.type === "event" && frame.event === "connect.challenge") {
        pending = "1";
        // params === null: deliberately send a non-connect first frame.
        if (params === null) send({ type: "req", id: "1", method: "health", params: {} });
        else send({ type: "req", id: "1", method: "connect", params });
      } else if (frame.type === "res" && frame.id === pending) {
        pending = null;
        // A failed connect is followed by the server's close; a failed RPC is just recorded.
        if (frame.ok || frame.id !== "1") next();
      }
    };
    ws.onclose = (ev) => {
      clearTimeout(timer);
      log.push({ close: { code: ev.code, reason: ev.reason, wasClean: ev.wasClean } });
      const path = join(outDir, `${name}.jsonl`);
      writeFileSync(path, log.map((l) => JSON.stringify(l)).join("\n") + "\n");
      console.log(`${name}: ${log.length} lines -> ${path}`);
      resolve();
    };
    ws.onerror = () => {};
  });
}

if (process.env.CAPTURE_ONLY === "starting") {
  // Run right after /healthz turns live: the gateway answers connect with UNAVAILABLE and closes 1013.
  await exchange("gateway-starting", connectParams(), []);
  process.exit(0);
}
await exchange("hello-ok-token-cli", connectParams(), []);
await exchange("health", connectParams(), [["2", "health", {}]]);
await exchange("status", connectParams(), [["2", "status", {}]]);
await exchange("system-presence", connectParams(), [["2", "system-presence", {}]]);
await exchange("gateway-identity-get", connectParams(), [["2", "gateway.identity.get", {}]]);
await exchange("node-list", connectParams(), [["2", "node.list", {}]]);
await exchange("last-heartbeat", connectParams(), [["2", "last-heartbeat", {}]]);
await exchange("config-get-read-scope", connectParams(), [["2", "config.get", {}]]);
await exchange("device-pair-list-read-scope", connectParams(), [["2", "device.pair.list", {}]]);
await exchange("probe-mode-v3", connectParams({ minProtocol: 3, maxProtocol: 3, client: { ...client, id: "openclaw-probe", mode: "probe" } }), [["2", "health", {}]]);
await exchange("unknown-method", connectParams(), [["2", "no.such.method", {}]]);
await exchange("wrong-token", connectParams({ auth: { token: token + "-wrong" } }), []);
await exchange("protocol-mismatch", connectParams({ minProtocol: 2, maxProtocol: 2 }), []);
await exchange("unknown-method-admin", connectParams({ scopes: ["operator.admin"] }), [["2", "no.such.method", {}]]);
await exchange("missing-scope", connectParams(), [["2", "system-event", { text: "bench" }]]);
await exchange("invalid-client-id", connectParams({ client: { ...client, id: "nope" } }), []);
await exchange("first-frame-not-connect", null, []);
// Idle events (tick every policy.tickIntervalMs, health broadcasts): opt-in because it takes > 30 s.
const idleMs = Number(process.env.CAPTURE_IDLE_MS ?? 0);
if (idleMs > 0) await exchange("idle-events", connectParams(), [], idleMs);
