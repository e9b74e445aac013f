//! Benchmark: `wss://` connect → `hello-ok` through the Tailscale path on the offline tailnet
//! (issue 5 target ≥ 1,000/s). A client on `vienna` dials `london.<magicdns>:443` through vienna's
//! SOCKS5 (tsnet netstack → WireGuard → london's Serve TCP forward with TLS termination and PROXY
//! v2 → clawgate's ingress listener), completes TLS (harness CA), the WebSocket upgrade, the
//! challenge and a token `connect`, and counts `hello-ok`s. Run with `make bench-tailscale`.
//!
//! Env: `CLAWGATE_BIN` (default `target/release/clawgate`), `CLAWGATE_TESTNET_BIN`,
//! `BENCH_SECS` (default 10), `BENCH_CONCURRENCY` (default 128).

#[path = "../tests/common/testnet.rs"]
#[allow(dead_code)]
mod testnet;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

const TOKEN: &str = "bench-token-0123456789abcdefXYZ";
/// Bound on one connect → hello-ok (a stuck dial must not stall the run).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One connect → hello-ok; Err on any failure.
async fn one(net: &testnet::Testnet, fqdn: &str) -> Result<(), String> {
    let (mut ws, _) = testnet::wss_to_name(net, "vienna", fqdn, &[]).await?;
    let ch = ws
        .next()
        .await
        .ok_or("closed before challenge")?
        .map_err(|e| e.to_string())?;
    if !ch.to_text().unwrap_or("").contains("connect.challenge") {
        return Err(format!("unexpected first frame {ch:?}"));
    }
    let req = json!({"type":"req","id":"c1","method":"connect","params":{
        "minProtocol":4,"maxProtocol":4,
        "client":{"id":"cli","version":"bench","platform":"linux","mode":"cli"},
        "role":"operator","scopes":["operator.read"],"caps":[],"auth":{"token":TOKEN}}});
    ws.send(Message::text(req.to_string()))
        .await
        .map_err(|e| e.to_string())?;
    let res = ws
        .next()
        .await
        .ok_or("closed before hello-ok")?
        .map_err(|e| e.to_string())?;
    if !res.to_text().unwrap_or("").contains("\"ok\":true") {
        return Err(format!("connect refused: {res:?}"));
    }
    let _ = ws.close(None).await;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secs = env_u64("BENCH_SECS", 10);
    let conc = env_u64("BENCH_CONCURRENCY", 128);
    let bin = std::env::var("CLAWGATE_BIN").unwrap_or_else(|_| "target/release/clawgate".into());
    let net = Arc::new(
        testnet::Testnet::start(&[])
            .await
            .ok_or("clawgate-testnet missing")?,
    );
    let dir = tempfile::tempdir()?;
    let handshake = net.handshake_file("london");
    let cfg =
        json!({"gateway": {"tailscale": {"mode": "serve", "sidecar": {"attach": handshake}}}});
    std::fs::write(dir.path().join("openclaw.json"), cfg.to_string())?;
    let mut gw = Command::new(&bin)
        .args(["run", "--port", "0", "--token", TOKEN, "--config"])
        .arg(dir.path().join("openclaw.json"))
        .env("HOME", dir.path())
        .env("OPENCLAW_STATE_DIR", dir.path().join("state"))
        // Every bench connection comes from vienna's one tailnet IP: lift the per-IP pre-auth
        // budget (default 32) above the concurrency so it measures throughput, not the budget.
        .env("OPENCLAW_MAX_PREAUTH_CONNECTIONS_PER_IP", "1024")
        .env(
            "CLAWGATE_LOG",
            std::env::var("CLAWGATE_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut lines = BufReader::new(gw.stdout.take().ok_or("stdout")?).lines();
    let first = lines.next().ok_or("banner")??;
    std::thread::spawn(move || lines.for_each(drop)); // keep draining: the banner continues
    let port: u16 = first
        .split("ws://127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split([',', ' ']).next())
        .and_then(|p| p.parse().ok())
        .ok_or("port in banner")?;
    testnet::wait_exposure(port, "ok", Duration::from_secs(20)).await;
    let fqdn = net.node("london").fqdn.clone();
    one(&net, &fqdn).await?; // warm-up
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..conc {
        let (net, fqdn, ok, failed) = (net.clone(), fqdn.clone(), ok.clone(), failed.clone());
        tasks.spawn(async move {
            while Instant::now() < deadline {
                let r = tokio::time::timeout(CONNECT_TIMEOUT, one(&net, &fqdn)).await;
                match r.unwrap_or_else(|_| Err("connect timed out".into())) {
                    // Only completions inside the window count toward the rate.
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
    while tasks.join_next().await.is_some() {}
    let took = secs as f64; // the measurement window
    let n = ok.load(Ordering::Relaxed);
    println!(
        "bench-tailscale: {n} wss connect→hello-ok in {took:.1} s = {:.0}/s (concurrency {conc}, failures {})",
        n as f64 / took,
        failed.load(Ordering::Relaxed)
    );
    let _ = gw.kill();
    let _ = gw.wait();
    if let Ok(net) = Arc::try_unwrap(net) {
        net.stop().await;
    }
    Ok(())
}
