//! The owned Serve route survives a real `tailscaled` restart (issue 5 §2, threats.md SL-3/SL-4):
//! a gateway in `mode = serve` on the offline tailnet's real tailscaled (userspace networking, Unix
//! LocalAPI socket) claims its route; tailscaled is SIGKILLed and started again on the same state
//! (plus the harness's `tailscale up`, see `common::daemon`);
//! exposure goes `degraded`, then the route is back and `ok` within 5 s of the restart, and a client
//! on `vienna` reaches `wss://daemon.<magicdns>` through it again. (The sidecar case is in
//! `exposure_tailnet.rs`.) Needs `tailscaled` (`CLAWGATE_TAILSCALED_BIN`, else
//! `sidecar/bin/tailscaled`) and the testnet; skipped without them unless
//! `CLAWGATE_REQUIRE_TESTNET=1`.

mod common;

use std::time::Duration;

use common::daemon;
use common::testnet::{self, Testnet};
use common::{Gateway, TOKEN};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::time::Instant;

/// Bound on the whole test.
const BOUND: Duration = Duration::from_secs(150);
/// The restore target.
const RESTORE: Duration = Duration::from_secs(5);

/// The first text frame as JSON.
async fn first_event(ws: &mut testnet::Wss) -> Value {
    loop {
        match ws.next().await.expect("frame").expect("ws ok") {
            tokio_tungstenite::tungstenite::Message::Text(t) => {
                return serde_json::from_str(&t).unwrap()
            }
            _ => continue,
        }
    }
}

/// `wss://<fqdn>` from vienna, retrying while vienna re-learns the restarted node (bounded).
async fn wss_from_vienna(net: &Testnet, fqdn: &str, bound: Duration) -> testnet::Wss {
    let deadline = Instant::now() + bound;
    loop {
        match testnet::wss_to_name(net, "vienna", fqdn, &["h2", "http/1.1"]).await {
            Ok((ws, _)) => return ws,
            Err(e) => assert!(Instant::now() < deadline, "wss://{fqdn} from vienna: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_is_back_within_5s_after_tailscaled_is_restarted() {
    common::bounded(BOUND, async {
        let Some(net) = Testnet::with_daemon().await else {
            return;
        };
        let Some(tailscaled) = daemon::tailscaled_bin() else {
            return;
        };
        let node = net.node("daemon");
        let sock = node.localapi["address"].as_str().unwrap().to_owned();
        let fqdn = node.fqdn.clone();
        let cfg = json!({"gateway": {"tailscale": {"mode": "serve", "socket": sock}}});
        let gw = Gateway::with_config(&cfg, &["--port", "0", "--token", TOKEN], &[]);
        testnet::wait_exposure(gw.port, "ok", Duration::from_secs(30)).await;
        let mut ws = wss_from_vienna(&net, &fqdn, Duration::from_secs(20)).await;
        assert_eq!(first_event(&mut ws).await["event"], "connect.challenge");

        // Watch for the outage from before the kill: the restart (and the route's restore) can be
        // quicker than the first poll after the re-login.
        let saw_degraded = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watcher = {
            let (seen, port) = (saw_degraded.clone(), gw.port);
            tokio::spawn(async move {
                while !seen.load(std::sync::atomic::Ordering::SeqCst) {
                    let exp = testnet::readyz(port).await["exposure"].clone();
                    if exp["tailscale"] == "degraded" {
                        seen.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        };
        let relaunched = daemon::kill9_and_relaunch(&sock, net.dir.path());
        let restarted = Instant::now();
        daemon::login(&net.manifest, &daemon::cli(&tailscaled), &sock);
        eprintln!(
            "tailscaled restarted and logged in again in {:?}",
            restarted.elapsed()
        );
        tokio::time::timeout(Duration::from_secs(10), watcher)
            .await
            .expect("exposure never went degraded after tailscaled was killed")
            .unwrap();
        testnet::wait_exposure(gw.port, "ok", Duration::from_secs(30)).await;
        let took = restarted.elapsed();
        eprintln!("route restored {took:?} after tailscaled was restarted");
        let log = std::fs::read_to_string(&relaunched.log).unwrap_or_default();
        assert!(
            took <= RESTORE,
            "route restored after {took:?} (target {RESTORE:?}); tailscaled log:\n{log}"
        );

        // The route really is back in tailscaled, and end to end from vienna.
        let mut ws = wss_from_vienna(&net, &fqdn, Duration::from_secs(30)).await;
        eprintln!(
            "wss from vienna works again {:?} after the restart",
            restarted.elapsed()
        );
        assert_eq!(first_event(&mut ws).await["event"], "connect.challenge");
        drop(ws);
        drop(gw);
        drop(relaunched);
        net.stop().await;
    })
    .await;
}
