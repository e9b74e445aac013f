//! The HTTP surface on the gateway port: probes (`/health[z]`, `/ready[z]`,
//! `/startup[z]`), the `Host` allowlist, the pre-auth budget's 503, and the WebSocket
//! upgrade on any path. Credentials are never read from URLs (threats.md WS-3).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::budget::PermitSlot;
use super::conn;
use super::Gateway;
use crate::auth::proxy::{self, Hop};
use crate::auth::Transport;
use crate::exposure::ingress::Via;
use crate::exposure::Origin;

type Resp = Response<Full<Bytes>>;

fn text(status: StatusCode, ct: &'static str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r.headers_mut()
        .insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    r
}

/// The pre-auth budget's refusal (protocol.md §1: raw 503, this body).
pub(super) fn too_many_unauthenticated() -> Resp {
    text(
        StatusCode::SERVICE_UNAVAILABLE,
        "text/plain",
        "Too many unauthenticated sockets",
    )
}

fn json(status: StatusCode, body: serde_json::Value) -> Resp {
    text(status, "application/json", body.to_string())
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// An RFC 8441 extended CONNECT for a WebSocket (HTTP/2).
fn is_h2_websocket(req: &Request<Incoming>) -> bool {
    req.method() == Method::CONNECT
        && req
            .extensions()
            .get::<hyper::ext::Protocol>()
            .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"))
}

/// `Host`, or the `:authority` of an HTTP/2 request.
fn host_of(req: &Request<Incoming>) -> Option<String> {
    header_str(req.headers(), "host")
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_string()))
}

fn is_upgrade(req: &Request<Incoming>) -> bool {
    let h = req.headers();
    let upgrade_ws = header_str(h, "upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let conn_upgrade = header_str(h, "connection").is_some_and(|v| {
        v.split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
    });
    req.method() == Method::GET && upgrade_ws && conn_upgrade
}

/// Whether `Host` is acceptable: the usual allowlist, plus the MagicDNS name on the dedicated
/// Serve listener (the name tailscaled terminated TLS for).
fn host_allowed(gw: &Gateway, host: Option<&str>, local: SocketAddr, via: &Via) -> bool {
    if gw.hosts.allows(host, local.ip()) {
        return true;
    }
    let name = host.map(crate::auth::origin::host_part);
    matches!(via, Via::Ingress(_))
        && name.is_some_and(|h| {
            gw.exposure
                .tailnet_dns()
                .is_some_and(|d| d.eq_ignore_ascii_case(&h))
        })
}

/// Serves one HTTP request; `peer` is the PROXY source on the dedicated listener.
pub async fn handle_via(
    gw: Arc<Gateway>,
    peer: SocketAddr,
    local: SocketAddr,
    via: Via,
    req: Request<Incoming>,
) -> Result<Resp, Infallible> {
    let host = host_of(&req);
    let over_tls = req.extensions().get::<super::listen::OverTls>().is_some();
    let host_ok = host_allowed(&gw, host.as_deref(), local, &via);
    // The request bytes are here, so a userspace tailscaled forward is known by now (§12.1).
    let origin = match via {
        Via::Direct => gw.exposure.loopback.classify(peer).await,
        Via::Ingress(_) => Origin::Direct,
    };
    if is_upgrade(&req) || is_h2_websocket(&req) {
        let refusal = if !host_ok {
            Some("host not allowed".to_string())
        } else if matches!(via, Via::Direct) && !over_tls {
            crate::exposure::plaintext::refusal(&gw.exposure, peer.ip(), local.ip())
        } else {
            None
        };
        let from = Source {
            socket: peer,
            local,
            origin,
        };
        return Ok(upgrade(gw, from, req, host, refusal, via));
    }
    if !host_ok {
        return Ok(json(
            StatusCode::FORBIDDEN,
            serde_json::json!({"ok": false, "error": "host not allowed", "fix": "use 127.0.0.1, localhost or a configured name (gateway.publicOrigin / controlUi.allowedOrigins)"}),
        ));
    }
    let head = req.method() == Method::HEAD;
    if req.method() != Method::GET && !head {
        return Ok(text(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "method not allowed\n",
        ));
    }
    let mut resp = match req.uri().path() {
        "/" => text(StatusCode::OK, "text/plain; charset=utf-8", ROOT_PAGE),
        "/health" | "/healthz" | "/livez" => json(
            StatusCode::OK,
            serde_json::json!({"ok": true, "status": "live"}),
        ),
        "/startup" | "/startupz" => startup(&gw),
        "/ready" | "/readyz" => readiness(&gw, detail_allowed(peer, &via, &origin)),
        _ => text(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    };
    if head {
        *resp.body_mut() = Full::new(Bytes::new());
    }
    Ok(resp)
}

/// `GET /`: where OpenClaw clients advertise a dashboard, a short plain answer (not a 404).
const ROOT_PAGE: &str = concat!(
    "clawgate ",
    env!("CARGO_PKG_VERSION"),
    ": an OpenClaw gateway (protocol v4) on this address over WebSocket.\n",
    "There is no web dashboard. On the gateway host: clawgate status, clawgate doctor,\n",
    "openclaw gateway health. Probes: /livez /healthz /readyz /startupz.\n"
);

/// Probe details (exposure, addresses) only for a genuinely local caller (protocol.md §20):
/// a direct loopback peer that is not a userspace tailscaled forward.
fn detail_allowed(peer: SocketAddr, via: &Via, origin: &Origin) -> bool {
    matches!(via, Via::Direct) && origin.is_direct() && peer.ip().to_canonical().is_loopback()
}

/// Readiness with the failing checks (503 when not ready), shaped like the reference; the
/// exposure report only with `detail`.
fn readiness(gw: &Gateway, detail: bool) -> Resp {
    let mut failing = Vec::new();
    if gw.cancel.is_cancelled() {
        failing.push("draining");
    }
    if gw.listen_addrs.lock().map(|a| a.is_empty()).unwrap_or(true) {
        failing.push("no-listener");
    }
    let ready = failing.is_empty();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut body =
        serde_json::json!({"ready": ready, "failing": failing, "uptimeMs": gw.uptime_ms()});
    if detail {
        // For `clawgate doctor` on this host: the live bind (flags included), not the file's.
        body["gateway"] = serde_json::json!({"bind": gw.settings.bind, "port": gw.settings.port});
        body["exposure"] = gw.exposure.report();
        body["audit"] = gw.audit.json();
        if let Some(t) = gw.tls.get() {
            body["tls"] = serde_json::json!({"enabled": true, "fingerprint": t.fingerprint()});
        }
    }
    json(status, body)
}

/// Startup probe: started, or draining during shutdown.
fn startup(gw: &Gateway) -> Resp {
    let draining = gw.cancel.is_cancelled();
    let status = if draining {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let state = if draining { "draining" } else { "started" };
    let body = serde_json::json!({"ok": !draining, "status": state, "version": env!("CARGO_PKG_VERSION"), "uptimeMs": gw.uptime_ms()});
    json(status, body)
}

/// Trusted-proxy attribution and identity of a request (never on the dedicated Serve listener,
/// whose source is whois-verified instead). A userspace-tailscaled forward is judged as its
/// tailnet node, an unproven loopback peer never as a proxy.
fn proxy_facts(
    auth: &crate::config::AuthSettings,
    from: &Source,
    h: &HeaderMap,
    via: &Via,
) -> (Hop, Option<Result<String, proxy::ProxyFailure>>) {
    if via.peer().is_some() {
        return (Hop::Direct, None);
    }
    let peer = match &from.origin {
        Origin::Unproven(_) => None,
        o => Some(o.attributed(from.socket.ip())),
    };
    let tp_mode = match auth.mode {
        crate::config::AuthMode::TrustedProxy => auth.proxy.trusted_proxy.as_ref(),
        _ => None,
    };
    proxy::evaluate(peer, h, &auth.proxy, tp_mode, proxy::is_host_address)
}

/// Where an upgrade came from: the socket addresses and what the loopback guard said.
struct Source {
    socket: SocketAddr,
    local: SocketAddr,
    origin: Origin,
}

fn upgrade(
    gw: Arc<Gateway>,
    from: Source,
    mut req: Request<Incoming>,
    host: Option<String>,
    refusal: Option<String>,
    via: Via,
) -> Resp {
    let h = req.headers();
    let h2 = req.version() == hyper::Version::HTTP_2;
    let key = match (
        header_str(h, "sec-websocket-key"),
        header_str(h, "sec-websocket-version"),
    ) {
        (_, Some("13")) if h2 => String::new(),
        (Some(k), Some("13")) => derive_accept_key(k.as_bytes()),
        _ => {
            return text(
                StatusCode::BAD_REQUEST,
                "text/plain",
                "websocket upgrade needs Sec-WebSocket-Key and version 13\n",
            )
        }
    };
    // A forward is attributed to its tailnet node, a request through a configured trusted proxy
    // to its client: each gets its own budget and rate-limit bucket.
    let auth = gw.auth();
    let (hop, proxy_user) = proxy_facts(&auth, &from, h, &via);
    let peer = match hop {
        Hop::Trusted { client, .. } => client,
        Hop::Direct | Hop::Unattributable { .. } => from.origin.attributed(from.socket.ip()),
    };
    let slot = req.extensions().get::<PermitSlot>().cloned();
    if peer != from.socket.ip() && !slot.as_ref().is_none_or(|s| s.attribute_to(peer)) {
        return too_many_unauthenticated();
    }
    // The slot taken at accept (listen::serve_http); `None` (closed 1013) if it is missing.
    let permit = slot.as_ref().and_then(PermitSlot::take_for_upgrade);
    let transport = Transport {
        peer,
        local: from.local.ip(),
        proxy_headers: proxy::has_forwarding_headers(h) || via.peer().is_some(),
        origin: header_str(h, "origin")
            .filter(|o| !o.trim().is_empty())
            .map(str::to_string),
        host,
        proxy_ingress: via.peer().is_some(),
        loopback_forwarded: !from.origin.is_direct(),
        tailnet: via.peer().cloned(),
        hop,
        proxy_user,
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let gw2 = gw.clone();
    let fut = async move {
        match on_upgrade.await {
            Ok(up) => conn::run(gw2, up, transport, permit, refusal).await,
            Err(e) => tracing::debug!(%peer, "upgrade failed: {e}"),
        }
    };
    gw.tracker.spawn(fut);
    let mut r = Response::new(Full::new(Bytes::new()));
    if h2 {
        // RFC 8441 §5: a 2xx accepts; the h2 connection now carries the WebSocket.
        if let Some(s) = req.extensions().get::<super::tls_conn::H2Upgraded>() {
            s.0.cancel();
        }
        return r;
    }
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let hs = r.headers_mut();
    hs.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    hs.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&key) {
        hs.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    r
}
