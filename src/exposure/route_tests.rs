//! Unit tests of the route loop against the in-memory LocalAPI fake.

use super::*;

use crate::tailscale::{FakeLocalApi, Status};

fn ready_node() -> Status {
    serde_json::from_value(serde_json::json!({
        "BackendState": "Running",
        "TailscaleIPs": ["100.64.0.3"],
        "CertDomains": ["gw.ts.net"],
        "CurrentTailnet": {"MagicDNSEnabled": true},
        "Self": {"DNSName": "gw.ts.net.", "CapMap": {"https": null}},
    }))
    .unwrap()
}

async fn wait_for(e: &Exposure, h: Health, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let top = || e.snapshot().reach.overall().clone();
    while top().state != h
        || (h == Health::Degraded && !top().reason.unwrap_or_default().contains(what))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never {h:?}/{what}: {:?}",
            e.snapshot()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs the route loop for `mode` on port 443 over `fake`.
fn spawn_route(
    fake: &Arc<FakeLocalApi>,
    mode: crate::config::TailscaleMode,
) -> (
    Arc<Exposure>,
    CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let exposure = Arc::new(Exposure::new(mode, 443));
    let cancel = CancellationToken::new();
    let spec = RouteSpec {
        mode: mode.into(),
        funnel_port: FunnelPort::P443,
        ingress: "127.0.0.1:4000".parse().unwrap(),
        sidecar: false,
    };
    let task = tokio::spawn(run(fake.clone(), spec, exposure.clone(), cancel.clone()));
    (exposure, cancel, task)
}

/// The reconcile loop against the in-memory LocalAPI fake (a named mock of tailscaled): a
/// foreign route is a reported conflict and stays untouched; once it is gone the route is
/// claimed; a daemon restart drops it and it is re-claimed.
#[tokio::test]
async fn conflict_then_claim_then_reclaim_after_a_daemon_restart() {
    let fake = Arc::new(FakeLocalApi::new(ready_node()));
    let mut foreign = ServeConfig::default();
    foreign.tcp.insert(
        "443".into(),
        TcpPortHandler {
            https: true,
            ..Default::default()
        },
    );
    fake.set_serve_as_foreign_client(foreign.clone());
    let (exposure, cancel, task) = spawn_route(&fake, crate::config::TailscaleMode::Serve);
    wait_for(&exposure, Health::Degraded, "conflict").await;
    assert_eq!(
        fake.serve_snapshot().tcp,
        foreign.tcp,
        "foreign route untouched"
    );
    fake.set_serve_as_foreign_client(ServeConfig::default());
    wait_for(&exposure, Health::Ok, "").await;
    assert_eq!(fake.serve_snapshot().foreground.len(), 1);
    fake.restart_daemon();
    wait_for(&exposure, Health::Ok, "").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while fake.serve_snapshot().foreground.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "not re-claimed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(exposure.snapshot().fqdn.as_deref(), Some("gw.ts.net"));
    cancel.cancel();
    task.await.unwrap();
    assert!(
        fake.live_sessions().is_empty(),
        "cancel released the session"
    );
}

/// SL-10 against the in-memory LocalAPI fake (a named mock of tailscaled): a revoked
/// `funnel` cap degrades only the public line; the route stays held (tailnet ok) and the
/// public line recovers when the cap returns, without a re-claim.
#[tokio::test]
async fn a_revoked_funnel_cap_degrades_public_only_and_keeps_the_route() {
    let with_funnel = |on: bool| {
        let mut st = ready_node();
        let me = st.self_node.as_mut().unwrap();
        me.cap_map.insert(
            "https://tailscale.com/cap/funnel-ports?ports=443".into(),
            None,
        );
        if on {
            me.cap_map.insert("funnel".into(), None);
        }
        st
    };
    let fake = Arc::new(FakeLocalApi::new(with_funnel(true)));
    let (exposure, cancel, task) = spawn_route(&fake, crate::config::TailscaleMode::Funnel);
    wait_for(&exposure, Health::Ok, "").await;
    assert_eq!(exposure.snapshot().reach.public.state, Health::Ok);
    let session = fake.live_sessions();
    fake.set_status(with_funnel(false));
    wait_for(&exposure, Health::Degraded, "not permitted").await;
    let s = exposure.snapshot();
    assert_eq!(s.reach.tailnet.state, Health::Ok, "{s:?}");
    assert!(s
        .reach
        .overall()
        .remedy
        .as_deref()
        .unwrap()
        .contains("funnel nodeAttr"));
    assert_eq!(fake.live_sessions(), session, "route kept, not re-claimed");
    fake.set_status(with_funnel(true));
    wait_for(&exposure, Health::Ok, "").await;
    assert_eq!(exposure.snapshot().reach.public.state, Health::Ok);
    cancel.cancel();
    task.await.unwrap();
}

#[test]
fn backoff_is_fast_then_bounded() {
    let mut b = Backoff::default();
    let d: Vec<_> = (0..5).map(|_| b.next_delay()).collect();
    assert_eq!(d[0], BACKOFF_START);
    assert!(d.iter().all(|x| *x <= BACKOFF_FAST_CAP));
    b.reset();
    assert_eq!(b.next_delay(), BACKOFF_START);
}

#[test]
fn entry_is_a_tls_terminated_proxy_v2_forward() {
    let spec = RouteSpec {
        mode: TailscaleMode::Funnel,
        funnel_port: FunnelPort::P8443,
        ingress: "127.0.0.1:4000".parse().unwrap(),
        sidecar: false,
    };
    let e = spec.entry("gw.ts.net");
    let h = &e.tcp["8443"];
    assert_eq!(h.tcp_forward.as_deref(), Some("127.0.0.1:4000"));
    assert_eq!(h.terminate_tls.as_deref(), Some("gw.ts.net"));
    assert_eq!(h.proxy_protocol, Some(2));
    assert_eq!(e.allow_funnel.get("gw.ts.net:8443"), Some(&true));
    let serve = RouteSpec {
        mode: TailscaleMode::Serve,
        ..spec
    };
    assert!(serve.entry("gw.ts.net").allow_funnel.is_empty());
    assert!(serve.entry("gw.ts.net").tcp.contains_key("443"));
}

#[test]
fn remedies_name_the_sidecar_when_it_is_the_backend() {
    let system = RouteSpec {
        mode: TailscaleMode::Serve,
        funnel_port: FunnelPort::P443,
        ingress: "127.0.0.2:4000".parse().unwrap(),
        sidecar: false,
    };
    assert!(system.access_remedy().contains("--operator"));
    let own = RouteSpec {
        sidecar: true,
        ..system
    };
    let fix = own.access_remedy();
    assert!(!fix.contains("--operator"), "{fix}");
    assert!(
        fix.contains("clawgate-tsnet") && fix.contains("clawgate status"),
        "{fix}"
    );
}
