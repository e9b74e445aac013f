//! Benchmark: `wss://` connect → `hello-ok` through the Tailscale path on the offline tailnet
//! (issue 5 target ≥ 1,000/s). Clients on the `vienna` and `tagged` nodes dial
//! `london.<magicdns>:443` through their node's SOCKS5 (tsnet netstack → WireGuard → london's Serve
//! TCP forward with TLS termination and PROXY v2 → clawgate's ingress listener), complete a full
//! TLS handshake (harness CA, no session resumption: every connection is a new client), the
//! WebSocket upgrade, the challenge and a token `connect`, and count `hello-ok`s. Run with `make bench-tailscale`; method in
//! docs/decisions/0032-bench-tailscale.md.
//!
//! It runs `BENCH_ROUNDS` measuring windows against one tailnet and one gateway and prints, per
//! round and summarised (best and median), the rate and the CPU each process spent per connection
//! (`/proc`: the Go tailnet process, the gateway, this client), plus the load average.
//!
//! Env: `CLAWGATE_BIN` (default `target/release/clawgate`), `CLAWGATE_TESTNET_BIN`,
//! `BENCH_SECS` (window per round, default 5), `BENCH_ROUNDS` (default 5),
//! `BENCH_CONCURRENCY` (default 32), `BENCH_CPUPROFILE` (write a Go CPU profile of the tailnet
//! process there, for diagnosis).

#[path = "../tests/common/testnet.rs"]
#[allow(dead_code)]
mod testnet;

#[path = "support/gateway.rs"]
mod gateway;

#[path = "../src/bin/clawgate-bench/procinfo.rs"]
#[allow(dead_code)]
mod procinfo;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_rustls::rustls;
use tokio_tungstenite::tungstenite::Message;

/// Bound on one connect → hello-ok (a stuck dial must not stall the run).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default in-flight connections: enough to keep both cores busy through the tailnet's latency;
/// more only queues (see the concurrency sweep in docs/decisions/0032-bench-tailscale.md).
const DEFAULT_CONCURRENCY: u64 = 32;
/// The tailnet nodes the clients dial from, round-robin by worker: two source addresses, because
/// one client node cannot sustain more than ~800 new connections/s to one Serve port — london's
/// netstack keeps each closed 4-tuple in TIME_WAIT for 60 s and drops a SYN that reuses one, and a
/// source has 49,536 ephemeral ports (ADR 0032). Real clients come from many addresses.
const CLIENT_NODES: [&str; 2] = ["vienna", "tagged"];
/// The issue 5 target.
const TARGET_PER_SEC: f64 = 1000.0;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What one connection needs: the tailnet, the target name and the client's one TLS config.
struct Client {
    net: testnet::Testnet,
    fqdn: String,
    tls: Arc<rustls::ClientConfig>,
}

impl Client {
    fn new(net: testnet::Testnet) -> Self {
        let fqdn = net.node("london").fqdn.clone();
        let mut tls = (*testnet::tls_config(&net.manifest.ca_cert_path, &[])).clone();
        // A full handshake each time. Resumption could not happen anyway: Serve's TLS-terminating
        // TCP forward builds a new tls.Config (fresh ticket keys) per connection (ADR 0032).
        tls.resumption = rustls::client::Resumption::disabled();
        Self {
            net,
            fqdn,
            tls: Arc::new(tls),
        }
    }

    /// One connect → hello-ok; Err on any failure.
    async fn one(&self, via: &str) -> Result<(), String> {
        let tcp = testnet::socks_dial(&self.net, via, &self.fqdn, 443)
            .await
            .map_err(|e| format!("socks: {e}"))?;
        // As every interactive client does: without it Nagle holds the client's second small
        // write behind the delayed ACK and each connection costs ~40 ms (ADR 0032).
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let (mut ws, _) = testnet::wss_over_tls(self.tls.clone(), tcp, &self.fqdn, &[]).await?;
        expect_frame(&mut ws, "connect.challenge", "challenge").await?;
        let req = json!({"type":"req","id":"c1","method":"connect","params":{
            "minProtocol":4,"maxProtocol":4,
            "client":{"id":"cli","version":"bench","platform":"linux","mode":"cli"},
            "role":"operator","scopes":["operator.read"],"caps":[],"auth":{"token":gateway::TOKEN}}});
        ws.send(Message::text(req.to_string()))
            .await
            .map_err(|e| e.to_string())?;
        expect_frame(&mut ws, "\"ok\":true", "hello-ok").await?;
        let _ = ws.close(None).await;
        Ok(())
    }
}

/// Reads the next frame and checks it contains `needle` (`what` names it in errors).
async fn expect_frame(ws: &mut testnet::Wss, needle: &str, what: &str) -> Result<(), String> {
    let frame = ws
        .next()
        .await
        .ok_or_else(|| format!("closed before {what}"))?
        .map_err(|e| e.to_string())?;
    if frame.to_text().unwrap_or("").contains(needle) {
        Ok(())
    } else {
        Err(format!("expected {what}, got {frame:?}"))
    }
}

/// CPU seconds so far of (tailnet process, gateway, this client).
fn cpu_now(testnet_pid: u32, gw_pid: u32) -> [f64; 3] {
    [
        procinfo::cpu_secs_tree(testnet_pid).unwrap_or(0.0),
        procinfo::cpu_secs_tree(gw_pid).unwrap_or(0.0),
        procinfo::cpu_secs_self(),
    ]
}

/// One measuring window's result.
struct Round {
    rate: f64,
    failed: u64,
    /// CPU µs per completed connection: tailnet, gateway, client.
    cpu_us: [f64; 3],
}

/// Runs `conc` closed-loop clients for `secs`; counts completions inside the window.
async fn round(client: &Arc<Client>, conc: u64, secs: u64, pids: (u32, u32)) -> Round {
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let cpu0 = cpu_now(pids.0, pids.1);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..conc {
        let via = CLIENT_NODES[i as usize % CLIENT_NODES.len()];
        let (client, ok, failed) = (client.clone(), ok.clone(), failed.clone());
        tasks.spawn(async move {
            while Instant::now() < deadline {
                let r = tokio::time::timeout(CONNECT_TIMEOUT, client.one(via)).await;
                match r.unwrap_or_else(|_| Err("connect timed out".into())) {
                    Ok(()) if Instant::now() <= deadline => ok.fetch_add(1, Ordering::Relaxed),
                    Ok(()) => 0,
                    Err(e) => {
                        if failed.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!("bench: {e}");
                        }
                        0
                    }
                };
            }
        });
    }
    tokio::time::sleep_until(deadline.into()).await;
    let cpu1 = cpu_now(pids.0, pids.1);
    while tasks.join_next().await.is_some() {}
    let n = ok.load(Ordering::Relaxed).max(1) as f64;
    Round {
        rate: ok.load(Ordering::Relaxed) as f64 / secs as f64,
        failed: failed.load(Ordering::Relaxed),
        cpu_us: std::array::from_fn(|i| (cpu1[i] - cpu0[i]) * 1e6 / n),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Starts clawgate in serve mode attached to london's LocalAPI.
fn start_gateway(net: &testnet::Testnet) -> Result<gateway::Gateway, Box<dyn std::error::Error>> {
    let handshake = net.handshake_file("london");
    let cfg =
        json!({"gateway": {"tailscale": {"mode": "serve", "sidecar": {"attach": handshake}}}});
    // Every bench connection comes from one of two tailnet IPs: lift the per-IP pre-auth budget
    // (default 32) above the concurrency so it measures throughput, not the budget.
    gateway::Gateway::start(&cfg, &[("OPENCLAW_MAX_PREAUTH_CONNECTIONS_PER_IP", "1024")])
}

fn report(rounds: &[Round], conc: u64, secs: u64) {
    for (i, r) in rounds.iter().enumerate() {
        let [t, g, c] = r.cpu_us;
        println!(
            "  round {}: {:.0}/s, failures {}, CPU µs/conn: tailnet {t:.0}, gateway {g:.0}, client {c:.0}",
            i + 1,
            r.rate,
            r.failed
        );
    }
    let rates: Vec<f64> = rounds.iter().map(|r| r.rate).collect();
    let best = rates.iter().copied().fold(0.0, f64::max);
    let med = median(rates);
    let cpu = |i: usize| median(rounds.iter().map(|r| r.cpu_us[i]).collect());
    let failures: u64 = rounds.iter().map(|r| r.failed).sum();
    println!(
        "bench-tailscale: wss connect→hello-ok best {best:.0}/s, median {med:.0}/s \
         ({} rounds × {secs} s, concurrency {conc}, failures {failures}); \
         median CPU µs/conn: tailnet {:.0}, gateway {:.0}, client {:.0}; load average now {}",
        rounds.len(),
        cpu(0),
        cpu(1),
        cpu(2),
        loadavg()
    );
    let verdict = if med >= TARGET_PER_SEC {
        "met"
    } else {
        "NOT met"
    };
    println!("target ≥ {TARGET_PER_SEC:.0}/s (median): {verdict}");
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secs = env_u64("BENCH_SECS", 5).max(1);
    let rounds_n = env_u64("BENCH_ROUNDS", 5).max(1);
    let conc = env_u64("BENCH_CONCURRENCY", DEFAULT_CONCURRENCY).max(1);
    let profile = std::env::var("BENCH_CPUPROFILE").ok();
    let extra: Vec<&str> = match &profile {
        Some(p) => vec!["--cpuprofile", p],
        None => vec![],
    };
    let net = testnet::Testnet::start(&extra)
        .await
        .ok_or("clawgate-testnet missing")?;
    let testnet_pid = net.pid().ok_or("testnet pid")?;
    let gw = start_gateway(&net)?;
    testnet::wait_exposure(gw.port, "ok", Duration::from_secs(20)).await;
    let client = Arc::new(Client::new(net));
    for via in CLIENT_NODES {
        client.one(via).await?; // warm-up, and proof that every client node gets through
    }
    println!("bench-tailscale: load average at start {}", loadavg());
    let mut rounds = Vec::new();
    for _ in 0..rounds_n {
        rounds.push(round(&client, conc, secs, (testnet_pid, gw.child.id())).await);
    }
    report(&rounds, conc, secs);
    drop(gw);
    match Arc::try_unwrap(client) {
        Ok(client) => client.net.stop().await,
        Err(_) => eprintln!("bench: client still shared; the tailnet is killed on drop"),
    }
    Ok(())
}
