//! `clawgate doctor` and the `mode = off` guarantee (issue 5 §2, §7; threats.md SL-1): doctor
//! explains route ownership, certificates and every listener of a gateway exposed through the
//! offline tailnet, exits 1 when something is wrong, and with `mode = off` neither the gateway nor
//! doctor touches the LocalAPI socket.

mod common;

use std::time::Duration;

use common::doctor::check;
use common::testnet::{self, Testnet};
use common::{call, Gateway, TOKEN};
use serde_json::{json, Value};

/// Bound on a whole test.
const BOUND: Duration = Duration::from_secs(120);
/// How long the route may take to be claimed after start.
const CLAIM: Duration = Duration::from_secs(20);

#[tokio::test]
async fn mode_off_never_touches_the_localapi_socket() {
    common::bounded(BOUND, async {
        // A LocalAPI socket that records every connection attempt.
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("tailscaled.sock");
        let listener = tokio::net::UnixListener::bind(&sock).unwrap();
        let cfg = json!({"gateway": {"tailscale": {"mode": "off", "socket": sock}}});
        let gw = Gateway::with_config(&cfg, &["--port", "0", "--token", TOKEN], &[]);
        let path = gw.config_path();
        let mut ws = common::operator(&gw, &["operator.read"]).await;
        let st = call(&mut ws, "s1", "status", json!({})).await;
        assert_eq!(st["ok"], true, "{st}");
        assert_eq!(st["payload"]["tailscaleSource"]["backend"], "off", "{st}");
        assert_eq!(
            testnet::readyz(gw.port).await["exposure"]["tailscale"],
            "off"
        );
        let (_, report) = common::doctor::run_json(&path, gw.dir.path(), &[]);
        assert_eq!(check(&report, "tailscale")["ok"], true, "{report}");
        let touched = tokio::time::timeout(Duration::from_millis(500), listener.accept()).await;
        assert!(touched.is_err(), "mode=off made a LocalAPI connection");
    })
    .await;
}

/// Doctor `--json` with this suite's token in the environment.
fn doctor(cfg: &std::path::Path, home: &std::path::Path) -> (i32, Value) {
    common::doctor::run_json(cfg, home, &[("OPENCLAW_GATEWAY_TOKEN", TOKEN)])
}

/// A gateway serving through `london` (attached sidecar, mode serve) with exposure ok; returns it
/// and the temp dir holding its config (`openclaw.json`), which is also doctor's HOME.
async fn serve_on_london(net: &Testnet) -> (Gateway, tempfile::TempDir) {
    serve_on_london_by(net, false).await
}

/// [`serve_on_london`] with serve set in the config, or (`by_flag`) only by `--tailscale serve`
/// (the README's way), the config naming no mode.
async fn serve_on_london_by(net: &Testnet, by_flag: bool) -> (Gateway, tempfile::TempDir) {
    let port = common::free_port();
    let cfg_dir = tempfile::tempdir().unwrap();
    let mut cfg = json!({"gateway": {"port": port, "tailscale": {"mode": "serve", "sidecar": {"attach": net.handshake_file("london")}}}});
    if by_flag {
        cfg["gateway"]["tailscale"]
            .as_object_mut()
            .unwrap()
            .remove("mode");
    }
    let path = cfg_dir.path().join("openclaw.json");
    std::fs::write(&path, cfg.to_string()).unwrap();
    let mut args = vec!["--token", TOKEN, "--config", path.to_str().unwrap()];
    if by_flag {
        args.extend(["--tailscale", "serve"]);
    }
    let gw = Gateway::start_in(tempfile::tempdir().unwrap(), &args, &[]);
    assert_eq!(gw.port, port);
    testnet::wait_exposure(port, "ok", CLAIM).await;
    (gw, cfg_dir)
}

/// Days left as shown in the certificate check's detail ("… (N days left)").
fn days_left(check: &Value) -> i64 {
    let detail = check["detail"].as_str().unwrap();
    let n = detail
        .rsplit_once(" days left")
        .and_then(|(head, _)| head.rsplit_once('('))
        .map(|(_, n)| n);
    n.and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no days left in {detail:?}"))
}

#[tokio::test]
async fn doctor_explains_exposure_ownership_and_listeners() {
    common::bounded(BOUND, async {
        let Some(net) = Testnet::start(&[]).await else {
            return;
        };
        let (gw, cfg_dir) = serve_on_london(&net).await;
        let (path, home) = (
            cfg_dir.path().join("openclaw.json"),
            cfg_dir.path().to_path_buf(),
        );
        let (status, report) = doctor(&path, &home);
        assert_eq!(status, 0, "{report}");
        assert!(
            check(&report, "serve route")["detail"]
                .as_str()
                .unwrap()
                .contains("owned by this clawgate"),
            "{report}"
        );
        // The harness leaf lives 30 days: the pass line names the name, the expiry and days left.
        let cert = check(&report, "https certificate");
        assert_eq!(cert["ok"], true, "{report}");
        assert!(
            cert["detail"]
                .as_str()
                .unwrap()
                .starts_with(&format!("valid for {} until 20", net.node("london").fqdn)),
            "{cert}"
        );
        assert!((29..=30).contains(&days_left(cert)), "{cert}");
        let listeners: Vec<&Value> = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["name"] == "listener")
            .collect();
        assert!(
            listeners
                .iter()
                .any(|c| c["detail"].as_str().unwrap().contains("loopback — gateway")),
            "{report}"
        );
        assert!(
            listeners
                .iter()
                .any(|c| c["detail"].as_str().unwrap().contains("serve ingress")),
            "{report}"
        );
        // Without the gateway the route is gone: doctor says so and exits 1.
        drop(gw);
        let (status, report) = doctor(&path, &home);
        assert_eq!(status, 1, "{report}");
        assert_eq!(check(&report, "gateway")["ok"], false, "{report}");
        assert!(check(&report, "gateway")["fix"].is_string(), "{report}");
        net.stop().await;
    })
    .await;
}

#[tokio::test]
async fn doctor_reads_serve_set_by_flag_from_the_running_gateway() {
    common::bounded(BOUND, async {
        let Some(net) = Testnet::start(&[]).await else {
            return;
        };
        let (gw, cfg_dir) = serve_on_london_by(&net, true).await;
        let (path, home) = (
            cfg_dir.path().join("openclaw.json"),
            cfg_dir.path().to_path_buf(),
        );
        let (status, report) = doctor(&path, &home);
        assert_eq!(status, 0, "no false FAIL: {report}");
        let failed: Vec<&Value> = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["ok"] == false)
            .collect();
        assert!(failed.is_empty(), "{failed:?}");
        assert!(
            check(&report, "serve route")["detail"]
                .as_str()
                .unwrap()
                .contains("owned by this clawgate"),
            "{report}"
        );
        let exposure = check(&report, "exposure");
        let want = format!(
            "ok: wss://{}",
            net.node("london").fqdn.trim_end_matches('.')
        );
        assert_eq!(
            exposure["detail"].as_str(),
            Some(want.as_str()),
            "the running gateway's exposure, not the file's (no mode there): {report}"
        );
        drop(gw);
        net.stop().await;
    })
    .await;
}

/// Seconds per day.
const DAY: u64 = 86_400;

/// Doctor's certificate check on `london` re-seeded with a leaf `age` old living `valid_for`,
/// behind a serving gateway; asserts that doctor exits 1 because of that check alone and that the
/// fix names `tailscale cert <fqdn>`. `None` when the testnet is skipped.
async fn failing_cert_check(age: u64, valid_for: u64) -> Option<Value> {
    let net = Testnet::start(&[]).await?;
    let (age, valid_for) = (Duration::from_secs(age), Duration::from_secs(valid_for));
    testnet::seed_node_cert(&net, "london", age, valid_for).await;
    let (gw, cfg_dir) = serve_on_london(&net).await;
    let (status, report) = doctor(&cfg_dir.path().join("openclaw.json"), cfg_dir.path());
    assert_eq!(status, 1, "{report}");
    let checks = report["checks"].as_array().unwrap();
    let failed: Vec<&Value> = checks.iter().filter(|c| c["ok"] == false).collect();
    assert_eq!(failed.len(), 1, "only the certificate is wrong: {report}");
    let cert = check(&report, "https certificate").clone();
    assert_eq!(cert["ok"], false, "{report}");
    let fix = cert["fix"].as_str().unwrap();
    let reissue = format!("tailscale cert {}", net.node("london").fqdn);
    assert!(fix.contains(&reissue), "{cert}");
    drop(gw);
    net.stop().await;
    Some(cert)
}

#[tokio::test]
async fn doctor_fails_on_a_certificate_close_to_expiry() {
    common::bounded(BOUND, async {
        // A 90-day leaf 85 days old (plus an hour of slack so "5 days" survives the test's own
        // run time): renewal is long overdue; tailscale keeps serving it while renewal fails.
        let Some(cert) = failing_cert_check(85 * DAY - 3_600, 90 * DAY).await else {
            return;
        };
        assert_eq!(days_left(&cert), 5, "{cert}");
        let detail = cert["detail"].as_str().unwrap();
        assert!(detail.contains("renewal is failing"), "{cert}");
    })
    .await;
}

#[tokio::test]
async fn doctor_fails_when_tailscale_refuses_an_expired_certificate() {
    common::bounded(BOUND, async {
        // Expired a day ago: tailscale re-issues synchronously, which fails offline (LocalAPI 500).
        let Some(cert) = failing_cert_check(91 * DAY, 90 * DAY).await else {
            return;
        };
        let detail = cert["detail"].as_str().unwrap();
        assert!(detail.contains("500"), "{cert}");
    })
    .await;
}

#[tokio::test]
async fn tailnet_bind_with_tailscale_down_still_serves_loopback() {
    common::bounded(BOUND, async {
        let nowhere = tempfile::tempdir().unwrap();
        let missing = nowhere.path().join("no-tailscaled.sock");
        let cfg = json!({"gateway": {"bind": "tailnet", "tailscale": {"socket": missing}}});
        let gw = Gateway::with_config(&cfg, &["--port", "0", "--token", TOKEN], &[]);
        let r = testnet::readyz(gw.port).await;
        assert_eq!(r["ready"], true, "{r}");
        let mut ws = common::operator(&gw, &["operator.read"]).await;
        let h = call(&mut ws, "h", "health", json!({})).await;
        assert_eq!(h["ok"], true, "{h}");
    })
    .await;
}
