//! Tailscale plumbing: a typed client for tailscaled's LocalAPI (system daemon over its Unix
//! socket, or clawgate's tsnet sidecar over loopback TCP), an in-memory fake of it, the
//! `gateway.tailscale.*` configuration, and the sidecar supervisor (tailscale.md §1, §2, §7).
//!
//! Invariants: the gateway talks to Tailscale only through the object-safe [`LocalApi`] trait;
//! `mode = off` builds nothing here ([`TailscaleRuntime::start`] returns `None`); serve configs
//! round-trip foreign entries untouched ([`ServeConfig`]); secrets (LocalAPI passwords, auth keys,
//! private keys) never reach argv, `Debug` output or logs.

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
pub use source::{SourceReport, TailscaleRuntime, TailscaleSource};
pub use types::{
    notify_mask, BackendState, CertPair, Hostinfo, Node, Notify, PeerStatus, Prefs, Status,
    TailnetStatus, UserProfile, WhoIs,
};
