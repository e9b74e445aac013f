//! The real LocalAPI client: HTTP/1.1 on hyper over a Unix socket or loopback TCP
//! (tailscale.md §1.2, §1.5, §1.7).
//!
//! Invariants: every request carries `Host: local-tailscaled.sock` and `Sec-Tailscale: localapi`;
//! TCP endpoints add Basic auth with an empty user and the password; `Origin`/`Referer` are never
//! sent; error answers keep status and message. One connection per request, driven inside the
//! caller's future (no background task): LocalAPI is local and cheap to dial, and dropping a
//! future or an [`IpnBus`] closes its connection. Bodies are bounded ([`MAX_BODY`]) and every
//! non-streaming call is bounded in time.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use super::api::{check_cert_domain, query_escape, Endpoint, LocalApi, PeerAddr};
use super::bus::{parse_notify, IpnBus, NdjsonDecoder, MAX_NOTIFY_LINE};
use super::error::{LocalApiError, Result};
use super::serve::{ETag, ServeConfig};
use super::types::{CertPair, Prefs, Status, WhoIs};

/// `apitype.LocalAPIHost`: the only Host value accepted from every transport.
pub const LOCALAPI_HOST: &str = "local-tailscaled.sock";
/// Bound on a (non-streaming) answer; `status` of a very large tailnet stays far below.
pub const MAX_BODY: usize = 16 << 20;
/// Bound on dialing the socket/port (local: anything slower means tailscaled is wedged).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on ordinary calls.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on `cert/…`: a first ACME issuance takes 30–60 s (tailscale.md §2.4, §7).
pub const CERT_TIMEOUT: Duration = Duration::from_secs(120);

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

type ConnFuture = Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>>;

/// Where the client finds its endpoint: fixed, or following a supervisor's watch channel.
#[derive(Debug, Clone)]
enum Source {
    Fixed(Endpoint),
    Watch(watch::Receiver<Option<Endpoint>>),
}

/// The production [`LocalApi`] implementation.
#[derive(Debug, Clone)]
pub struct LocalApiClient {
    source: Source,
}

impl LocalApiClient {
    /// A client for one fixed endpoint.
    pub fn new(endpoint: Endpoint) -> Self {
        Self {
            source: Source::Fixed(endpoint),
        }
    }

    /// A client that always uses the current endpoint of a supervisor (e.g.
    /// [`super::Sidecar::endpoint`]); calls fail with `Unavailable` while it is `None`.
    pub fn following(endpoint: watch::Receiver<Option<Endpoint>>) -> Self {
        Self {
            source: Source::Watch(endpoint),
        }
    }

    fn endpoint(&self) -> Result<Endpoint> {
        match &self.source {
            Source::Fixed(ep) => Ok(ep.clone()),
            Source::Watch(rx) => rx.borrow().clone().ok_or_else(|| {
                LocalApiError::Unavailable("the Tailscale sidecar is not up".into())
            }),
        }
    }

    async fn dial(ep: &Endpoint) -> Result<Box<dyn Io>> {
        let connect = async {
            Ok::<Box<dyn Io>, std::io::Error>(match ep {
                Endpoint::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
                Endpoint::Tcp { addr, .. } => {
                    let s = tokio::net::TcpStream::connect(addr).await?;
                    s.set_nodelay(true)?;
                    Box::new(s)
                }
            })
        };
        let to_err = |source| LocalApiError::Connect {
            endpoint: ep.to_string(),
            source,
        };
        tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| to_err(std::io::ErrorKind::TimedOut.into()))?
            .map_err(to_err)
    }

    fn build(
        ep: &Endpoint,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        if_match: Option<&ETag>,
    ) -> Result<Request<Full<Bytes>>> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("/localapi/v0/{path}"))
            .header(HOST, LOCALAPI_HOST)
            .header("Sec-Tailscale", "localapi")
            .header(
                hyper::header::USER_AGENT,
                concat!("clawgate/", env!("CARGO_PKG_VERSION")),
            );
        if let Endpoint::Tcp { password, .. } = ep {
            let cred = base64::engine::general_purpose::STANDARD.encode(format!(":{password}"));
            let mut value = HeaderValue::try_from(format!("Basic {cred}"))
                .map_err(|e| LocalApiError::Request(e.to_string()))?;
            value.set_sensitive(true);
            req = req.header(AUTHORIZATION, value);
        }
        if let Some(tag) = if_match {
            req = req.header(hyper::header::IF_MATCH, tag.0.as_str());
        }
        if body.is_some() {
            req = req.header(CONTENT_TYPE, "application/json");
        }
        req.body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| LocalApiError::Request(e.to_string()))
    }

    /// Sends a request on a fresh connection; returns the response head/body and the
    /// connection future, which the caller must keep polling while reading the body.
    async fn send(
        &self,
        req: Request<Full<Bytes>>,
        ep: &Endpoint,
    ) -> Result<(Response<Incoming>, ConnFuture)> {
        let io = Self::dial(ep).await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
        let mut conn: ConnFuture = Box::pin(conn);
        tokio::select! {
            resp = sender.send_request(req) => Ok((resp?, conn)),
            r = &mut conn => Err(match r {
                Err(e) => e.into(),
                Ok(()) => LocalApiError::Unavailable("LocalAPI closed the connection".into()),
            }),
        }
    }

    /// One bounded request/answer exchange; returns the ETag header and the body of a 2xx.
    async fn call(
        &self,
        what: &'static str,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        if_match: Option<&ETag>,
        limit: Duration,
    ) -> Result<(Option<String>, Bytes)> {
        let ep = self.endpoint()?;
        let req = Self::build(&ep, method, path, body, if_match)?;
        let exchange = async {
            let (resp, mut conn) = self.send(req, &ep).await?;
            let (parts, body) = resp.into_parts();
            let mut read = Box::pin(Limited::new(body, MAX_BODY).collect());
            let collected = tokio::select! {
                b = &mut read => b,
                r = &mut conn => { r?; read.await }
            };
            let bytes = collected
                .map_err(|e| match e.downcast::<hyper::Error>() {
                    Ok(e) => LocalApiError::Http(*e),
                    Err(_) => LocalApiError::TooLarge {
                        what,
                        limit: MAX_BODY,
                    },
                })?
                .to_bytes();
            if !parts.status.is_success() {
                return Err(LocalApiError::from_answer(parts.status.as_u16(), &bytes));
            }
            let etag = parts
                .headers
                .get(hyper::header::ETAG)
                .and_then(|v| v.to_str().ok());
            Ok((etag.map(str::to_owned), bytes))
        };
        tokio::time::timeout(limit, exchange)
            .await
            .map_err(|_| LocalApiError::Timeout { what, after: limit })?
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        what: &'static str,
        path: &str,
    ) -> Result<T> {
        let (_, body) = self
            .call(what, Method::GET, path, None, None, CALL_TIMEOUT)
            .await?;
        serde_json::from_slice(&body).map_err(|source| LocalApiError::Decode { what, source })
    }

    async fn open_bus(&self, mask: u64) -> Result<IpnBus> {
        let ep = self.endpoint()?;
        let req = Self::build(
            &ep,
            Method::GET,
            &format!("watch-ipn-bus?mask={mask}"),
            None,
            None,
        )?;
        let (resp, conn) = tokio::time::timeout(CALL_TIMEOUT, self.send(req, &ep))
            .await
            .map_err(|_| LocalApiError::Timeout {
                what: "watch-ipn-bus",
                after: CALL_TIMEOUT,
            })??;
        let (parts, body) = resp.into_parts();
        if !parts.status.is_success() {
            let bytes = Limited::new(body, MAX_BODY)
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            return Err(LocalApiError::from_answer(parts.status.as_u16(), &bytes));
        }
        let state = BusReader {
            conn: Some(conn),
            body,
            dec: NdjsonDecoder::new(MAX_NOTIFY_LINE),
            done: false,
        };
        let stream = futures_util::stream::unfold(state, |mut st| async move {
            let item = st.next_notify().await?;
            Some((item, st))
        });
        Ok(IpnBus::new(Box::pin(stream), None))
    }
}

/// Reader state of one watch-ipn-bus connection.
struct BusReader {
    conn: Option<ConnFuture>,
    body: Incoming,
    dec: NdjsonDecoder,
    done: bool,
}

impl BusReader {
    async fn next_notify(&mut self) -> Option<Result<Notify>> {
        loop {
            if self.done {
                return None;
            }
            match self.dec.next_line() {
                Ok(Some(line)) => return Some(parse_notify(&line)),
                Ok(None) => {}
                Err(e) => return self.fail(e),
            }
            let frame = match self.conn.as_mut() {
                Some(conn) => tokio::select! {
                    f = self.body.frame() => f,
                    r = conn => {
                        self.conn = None;
                        if let Err(e) = r { return self.fail(e.into()); }
                        continue;
                    }
                },
                None => self.body.frame().await,
            };
            match frame {
                Some(Ok(f)) => {
                    if let Ok(data) = f.into_data() {
                        self.dec.push(&data);
                    }
                }
                Some(Err(e)) => return self.fail(e.into()),
                None => {
                    self.done = true;
                    return self.dec.finish().map(|l| parse_notify(&l));
                }
            }
        }
    }

    fn fail(&mut self, e: LocalApiError) -> Option<Result<Notify>> {
        self.done = true;
        Some(Err(e))
    }
}

use super::types::Notify;

/// Splits a `type=pair` answer (key PEM first, then the chain) at the first certificate.
fn split_pair(body: &[u8]) -> Result<CertPair> {
    const CERT_BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    let text =
        std::str::from_utf8(body).map_err(|e| LocalApiError::BadCertificate(e.to_string()))?;
    let at = text
        .find(CERT_BEGIN)
        .ok_or_else(|| LocalApiError::BadCertificate("no certificate in the answer".into()))?;
    let (key, cert) = text.split_at(at);
    if !key.contains("PRIVATE KEY-----") {
        return Err(LocalApiError::BadCertificate(
            "no private key before the certificate".into(),
        ));
    }
    Ok(CertPair {
        cert_pem: cert.to_owned(),
        key_pem: key.to_owned(),
    })
}

impl LocalApi for LocalApiClient {
    fn status(&self) -> BoxFuture<'_, Result<Status>> {
        Box::pin(self.get_json("status", "status"))
    }

    fn self_status(&self) -> BoxFuture<'_, Result<Status>> {
        Box::pin(self.get_json("status", "status?peers=false"))
    }

    fn whois(&self, addr: PeerAddr) -> BoxFuture<'_, Result<WhoIs>> {
        Box::pin(async move {
            let path = format!("whois?addr={}", query_escape(&addr.to_string()));
            self.get_json("whois", &path).await
        })
    }

    fn cert_pair<'a>(&'a self, domain: &'a str) -> BoxFuture<'a, Result<CertPair>> {
        Box::pin(async move {
            check_cert_domain(domain)?;
            let path = format!("cert/{domain}?type=pair");
            let (_, body) = self
                .call("cert", Method::GET, &path, None, None, CERT_TIMEOUT)
                .await?;
            split_pair(&body)
        })
    }

    fn serve_config(&self) -> BoxFuture<'_, Result<(ServeConfig, ETag)>> {
        Box::pin(async move {
            let (etag, body) = self
                .call(
                    "serve-config",
                    Method::GET,
                    "serve-config",
                    None,
                    None,
                    CALL_TIMEOUT,
                )
                .await?;
            let cfg: Option<ServeConfig> =
                serde_json::from_slice(&body).map_err(|source| LocalApiError::Decode {
                    what: "serve-config",
                    source,
                })?;
            Ok((cfg.unwrap_or_default(), ETag(etag.unwrap_or_default())))
        })
    }

    fn set_serve_config<'a>(
        &'a self,
        cfg: &'a ServeConfig,
        if_match: Option<&'a ETag>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let body =
                serde_json::to_vec(cfg).map_err(|e| LocalApiError::Request(e.to_string()))?;
            self.call(
                "serve-config",
                Method::POST,
                "serve-config",
                Some(body),
                if_match,
                CALL_TIMEOUT,
            )
            .await?;
            Ok(())
        })
    }

    fn watch_ipn_bus(&self, mask: u64) -> BoxFuture<'_, Result<IpnBus>> {
        Box::pin(self.open_bus(mask))
    }

    fn prefs(&self) -> BoxFuture<'_, Result<Prefs>> {
        Box::pin(self.get_json("prefs", "prefs"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_is_split_key_first() {
        let body = b"-----BEGIN EC PRIVATE KEY-----\nAA\n-----END EC PRIVATE KEY-----\n-----BEGIN CERTIFICATE-----\nBB\n-----END CERTIFICATE-----\n";
        let p = split_pair(body).unwrap();
        assert!(p.key_pem.starts_with("-----BEGIN EC PRIVATE KEY"));
        assert!(p.cert_pem.starts_with("-----BEGIN CERTIFICATE"));
        assert!(!format!("{p:?}").contains("AA"));
        assert!(split_pair(b"-----BEGIN CERTIFICATE-----\n").is_err());
    }
}
