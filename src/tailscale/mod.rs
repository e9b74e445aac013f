//! Tailscale plumbing: a typed client for tailscaled's LocalAPI (system daemon over its Unix
//! socket, or clawgate's tsnet sidecar over loopback TCP), an in-memory fake of it, the
//! `gateway.tailscale.*` configuration, and the sidecar supervisor (tailscale.md §1, §2, §7).
//!
//! Invariants: the gateway talks to Tailscale only through the object-safe [`LocalApi`] trait;
//! `mode = off` builds nothing here ([`TailscaleRuntime::start`] returns `None`); serve configs
//! round-trip foreign entries untouched ([`ServeConfig`]); secrets (LocalAPI passwords, auth keys,
//! private keys) never reach argv, `Debug` output or logs.
//!
//! How the gateway uses it (a Foreground claim on 443, TLS-terminated TCP forward with PROXY v2 to
//! a dedicated loopback listener — tailscale.md §4 option B; real code adds backoff on errors):
//!
//! ```no_run
//! use clawgate::tailscale::*;
//! # async fn demo(cfg: TailscaleConfig, state_dir: std::path::PathBuf)
//! #     -> Result<(), Box<dyn std::error::Error>> {
//! let cancel = tokio_util::sync::CancellationToken::new();
//! cfg.validate()?;
//! let Some(rt) = TailscaleRuntime::start(&cfg, &state_dir, &cancel) else {
//!     return Ok(()); // mode = off: nothing Tailscale-related exists
//! };
//! let api = rt.api(); // Arc<dyn LocalApi>; FakeLocalApi in unit tests
//! let (status, prefs) = (api.self_status().await?, api.prefs().await?);
//! for issue in preflight(&status, Some(&prefs), cfg.mode, cfg.funnel_port) {
//!     eprintln!("tailscale: {}", issue.remedy());
//! }
//! let fqdn = status.fqdn().ok_or("no MagicDNS name yet")?.to_owned();
//! let mut entry = ServeConfig::default();
//! entry.tcp.insert("443".into(), TcpPortHandler {
//!     tcp_forward: Some("127.0.0.1:18790".into()),
//!     terminate_tls: Some(fqdn.clone()),
//!     proxy_protocol: Some(2),
//!     ..Default::default()
//! });
//! if cfg.mode == TailscaleMode::Funnel {
//!     entry.allow_funnel.insert(format!("{fqdn}:443"), true);
//! }
//! loop {
//!     let mut session = ForegroundSession::open(&*api).await?;
//!     session.claim(&*api, &entry).await?; // ClaimError::PortInUse = foreign route: report it
//!     tokio::select! {
//!         _ = cancel.cancelled() => break, // dropping `session` removes the route
//!         why = session.closed() => eprintln!("route dropped ({why}); claiming again"),
//!     }
//! }
//! rt.shutdown().await;
//! # Ok(()) }
//! ```

mod api;
mod attach;
mod bus;
mod client;
mod config;
mod error;
mod fake;
mod handshake;
mod preflight;
mod serve;
mod sidecar;
mod source;
mod types;

pub use api::{Endpoint, LocalApi, PeerAddr, DEFAULT_SOCKET};
pub use attach::ATTACH_POLL;
pub use bus::{
    parse_notify, ClaimError, ForegroundSession, IpnBus, NdjsonDecoder, MAX_NOTIFY_LINE,
    MAX_SERVE_RETRIES, SESSION_ID_TIMEOUT,
};
pub use client::{
    LocalApiClient, CALL_TIMEOUT, CERT_TIMEOUT, CONNECT_TIMEOUT, LOCALAPI_HOST, MAX_BODY,
};
pub use config::{
    Backend, FunnelPort, SidecarConfig, TailscaleConfig, TailscaleMode, DEFAULT_SIDECAR_HOSTNAME,
    SIDECAR_BINARY,
};
pub use error::{LocalApiError, Result};
pub use fake::{etag_of, FakeLocalApi, SESSION_QUEUE};
pub use handshake::{EndpointSpec, Handshake, HANDSHAKE_VERSION};
pub use preflight::{preflight, PreflightIssue, CAP_FUNNEL, CAP_HTTPS};
pub use serve::{ETag, Extra, HttpHandler, ServeConfig, TcpPortHandler, WebServerConfig};
pub use sidecar::{Sidecar, SidecarError, SidecarSpawn, SidecarState, ENV_AUTHKEY};
pub use source::{SourceProbe, SourceReport, TailscaleRuntime, TailscaleSource};
pub use types::{
    notify_mask, BackendState, CertPair, Hostinfo, Node, Notify, PeerStatus, Prefs, Status,
    TailnetStatus, UserProfile, WhoIs,
};
