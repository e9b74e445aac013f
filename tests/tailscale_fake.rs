//! `FakeLocalApi` (the in-memory test double for gateway unit tests) behaves like tailscaled where
//! the gateway depends on it: ETag/If-Match, foreground sessions that vanish with their watch,
//! port-ownership conflicts, and a call counter.

use std::net::IpAddr;
use std::time::Duration;

use clawgate::tailscale::{
    etag_of, BackendState, ClaimError, FakeLocalApi, ForegroundSession, LocalApi, LocalApiError,
    Notify, ServeConfig, Status, TailscaleConfig, TailscaleRuntime, TcpPortHandler, WhoIs,
};

fn running() -> Status {
    Status {
        backend_state: BackendState::Running,
        version: "1.102.3".into(),
        ..Status::default()
    }
}

fn forward(port: &str, target: &str) -> ServeConfig {
    let mut cfg = ServeConfig::default();
    cfg.tcp.insert(
        port.into(),
        TcpPortHandler {
            tcp_forward: Some(target.into()),
            proxy_protocol: Some(2),
            ..TcpPortHandler::default()
        },
    );
    cfg
}

#[tokio::test]
async fn foreground_claim_lives_exactly_as_long_as_its_session() {
    let fake = FakeLocalApi::new(running());
    let foreign = forward("22", "127.0.0.1:22");
    fake.set_serve_as_foreign_client(foreign.clone());
    let session = ForegroundSession::open(&fake).await.unwrap();
    let id = session.id().to_owned();
    session
        .claim(&fake, &forward("443", "127.0.0.1:18790"))
        .await
        .unwrap();
    let cfg = fake.serve_snapshot();
    assert_eq!(
        cfg.foreground[&id].tcp["443"].tcp_forward.as_deref(),
        Some("127.0.0.1:18790")
    );
    assert_eq!(cfg.tcp, foreign.tcp, "foreign route untouched");
    drop(session);
    let cfg = fake.serve_snapshot();
    assert!(cfg.foreground.is_empty(), "claim vanished with the session");
    assert_eq!(cfg, foreign);
    assert!(fake.live_sessions().is_empty());
}

#[tokio::test]
async fn a_served_port_is_a_conflict_not_an_overwrite() {
    let fake = FakeLocalApi::new(running());
    fake.set_serve_as_foreign_client(forward("443", "127.0.0.1:3000"));
    let session = ForegroundSession::open(&fake).await.unwrap();
    let err = session
        .claim(&fake, &forward("443", "127.0.0.1:18790"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClaimError::PortInUse { ref port, .. } if port == "443"),
        "{err}"
    );
    // tailscaled itself refuses it too when a client skips the check.
    let (mut cfg, tag) = fake.serve_config().await.unwrap();
    cfg.foreground
        .insert(session.id().into(), forward("443", "127.0.0.1:1"));
    let err = fake.set_serve_config(&cfg, Some(&tag)).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("listener already exists for port 443"),
        "{err}"
    );
    assert_eq!(
        fake.serve_snapshot().tcp["443"].tcp_forward.as_deref(),
        Some("127.0.0.1:3000")
    );
}

#[tokio::test]
async fn stale_etag_is_refused_without_wiping_anything() {
    let fake = FakeLocalApi::new(running());
    let (_, stale) = fake.serve_config().await.unwrap();
    fake.set_serve_as_foreign_client(forward("22", "127.0.0.1:22"));
    let err = fake
        .set_serve_config(&ServeConfig::default(), Some(&stale))
        .await
        .unwrap_err();
    assert!(matches!(err, LocalApiError::PreconditionFailed { .. }));
    assert_eq!(fake.serve_snapshot().tcp.len(), 1, "nothing was wiped");
    let (cfg, tag) = fake.serve_config().await.unwrap();
    assert_eq!(tag, etag_of(&cfg));
}

#[tokio::test]
async fn daemon_restart_closes_sessions_and_drops_claims() {
    let fake = FakeLocalApi::new(running());
    let mut session = ForegroundSession::open(&fake).await.unwrap();
    session
        .claim(&fake, &forward("8443", "127.0.0.1:9"))
        .await
        .unwrap();
    fake.publish(Notify {
        state: Some(BackendState::Starting),
        ..Notify::default()
    });
    let n = session.next().await.unwrap().unwrap();
    assert_eq!(n.state, Some(BackendState::Starting));
    fake.restart_daemon();
    let why = tokio::time::timeout(Duration::from_secs(5), session.closed())
        .await
        .unwrap();
    assert!(matches!(why, LocalApiError::BusClosed));
    assert!(fake.serve_snapshot().foreground.is_empty());
}

#[tokio::test]
async fn whois_table_and_call_counter() {
    let fake = FakeLocalApi::new(running());
    let ip: IpAddr = "100.64.0.2".parse().unwrap();
    fake.insert_whois(
        ip,
        serde_json::from_str(r#"{"UserProfile":{"LoginName":"v@x"}}"#).unwrap(),
    );
    let who: WhoIs = fake
        .whois(
            "[::ffff:100.64.0.2]:41000"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .await
        .unwrap();
    assert_eq!(who.user().unwrap().login_name, "v@x");
    let err = fake
        .whois("100.64.0.9".parse::<IpAddr>().unwrap().into())
        .await
        .unwrap_err();
    assert_eq!(err.http_status(), Some(404));
    assert_eq!(fake.call_count(), 2);
}

#[tokio::test]
async fn mode_off_builds_no_runtime_and_makes_no_calls() {
    let fake = FakeLocalApi::new(running());
    let cfg: TailscaleConfig =
        serde_json::from_str(r#"{"mode":"off","socket":"/nonexistent"}"#).unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let runtime = TailscaleRuntime::start(&cfg, std::path::Path::new("/nonexistent"), &cancel);
    assert!(runtime.is_none());
    assert_eq!(fake.call_count(), 0);
}

#[tokio::test]
async fn a_session_that_stops_reading_is_disconnected_and_loses_its_claim() {
    let fake = FakeLocalApi::new(running());
    let mut session = ForegroundSession::open(&fake).await.unwrap();
    session
        .claim(&fake, &forward("443", "127.0.0.1:9"))
        .await
        .unwrap();
    // `open` consumed the first Notify; one more than the queue holds overflows it.
    for _ in 0..=clawgate::tailscale::SESSION_QUEUE {
        fake.publish(Notify::default());
    }
    assert!(fake.live_sessions().is_empty());
    assert!(fake.serve_snapshot().foreground.is_empty());
    let mut drained = 0;
    while let Some(n) = session.next().await {
        n.unwrap();
        drained += 1;
    }
    assert_eq!(
        drained,
        clawgate::tailscale::SESSION_QUEUE,
        "queued messages, then the end"
    );
}
