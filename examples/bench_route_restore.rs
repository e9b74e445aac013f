//! Benchmark: how long the owned Serve route takes to come back after Tailscale restarts (issue 5
//! target ≤ 5 s), on the offline tailnet. Two gateways in `mode = serve`: one on the real
//! `tailscaled` (`daemon` node), one supervising its own tsnet sidecar. Each round SIGKILLs the
//! tailscaled (and starts it again on the same state, as systemd would) or the sidecar (the gateway
//! restarts it), then times until `/readyz` reports exposure `ok` again, i.e. the route is back in
//! the serve config under our Foreground session. Prints min / median / max per case.
//! Run with `make bench-route-restore`.
//!
//! Env: `CLAWGATE_BIN` (default `target/release/clawgate`), `CLAWGATE_TESTNET_BIN`,
//! `CLAWGATE_TAILSCALED_BIN`, `CLAWGATE_TSNET_BIN`, `BENCH_ROUNDS` (default 10).

#[path = "../tests/common/testnet.rs"]
#[allow(dead_code)]
mod testnet;

#[path = "../tests/common/daemon.rs"]
#[allow(dead_code)]
mod daemon;

#[path = "support/gateway.rs"]
mod gateway;

use std::process::Command;
use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

/// Bound on one restore (a route that never comes back fails the bench instead of hanging).
const RESTORE_BOUND: Duration = Duration::from_secs(30);

/// Times from `t0` until the route is claimed again (after it was seen gone).
async fn restored_after(port: u16, t0: Instant) -> Duration {
    testnet::wait_exposure(port, "degraded", RESTORE_BOUND).await;
    testnet::wait_exposure(port, "ok", RESTORE_BOUND).await;
    t0.elapsed()
}

fn report(case: &str, mut v: Vec<Duration>) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "bench-route-restore: {case}: {} rounds, min {:.0} ms, median {:.0} ms, max {:.0} ms (target ≤ 5000 ms)",
        v.len(),
        ms(v[0]),
        ms(v[v.len() / 2]),
        ms(v[v.len() - 1])
    );
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let tailscaled = daemon::tailscaled_bin().ok_or("tailscaled missing (make sidecar)")?;
    let tsnet = testnet::tsnet_bin().ok_or("clawgate-tsnet missing (make sidecar)")?;
    let ts = tailscaled.to_str().ok_or("path")?;
    let net = testnet::Testnet::start(&["--tailscaled", ts, "--sidecar-node", "gw"])
        .await
        .ok_or("clawgate-testnet missing (make sidecar)")?;
    let m = &net.manifest;
    let sock = net.node("daemon").localapi["address"]
        .as_str()
        .ok_or("daemon socket")?
        .to_owned();
    let daemon_cfg = json!({"gateway": {"tailscale": {"mode": "serve", "socket": sock}}});
    let on_daemon = gateway::Gateway::start(&daemon_cfg, &[])?;
    let sidecar_cfg =
        json!({"gateway": {"tailscale": testnet::own_sidecar_config(&net, "gw", &tsnet)}});
    let with_sidecar = gateway::Gateway::start(&sidecar_cfg, &[])?;
    for gw in [&on_daemon, &with_sidecar] {
        testnet::wait_exposure(gw.port, "ok", Duration::from_secs(60)).await;
    }

    let cli = daemon::cli(&tailscaled);
    let (mut ts_times, mut sc_times) = (Vec::new(), Vec::new());
    let mut relaunched = None;
    for _ in 0..rounds {
        // Kills whichever tailscaled runs now (the harness's, then our previous relaunch, which
        // is reaped when `relaunched` is replaced below).
        let r = daemon::kill9_and_relaunch(&sock, net.dir.path());
        let t0 = Instant::now();
        daemon::login(m, &cli, &sock);
        ts_times.push(restored_after(on_daemon.port, t0).await);
        relaunched = Some(r);

        let pid = *daemon::children(with_sidecar.child.id())
            .first()
            .ok_or("no sidecar child")?;
        let t0 = Instant::now();
        Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()?;
        sc_times.push(restored_after(with_sidecar.port, t0).await);
    }
    report("tailscaled SIGKILL + restart → route ok", ts_times);
    report("sidecar SIGKILL → route ok", sc_times);
    drop((on_daemon, with_sidecar, relaunched));
    net.stop().await;
    Ok(())
}
