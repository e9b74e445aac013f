//! Audit findings (threats.md EX-4, PX-2, PX-6): settings that are dangerous or
//! accepted but not acted on, and evidence seen at run time (forwarding headers
//! on a loopback socket with no trusted proxy). Each finding is logged once,
//! listed in the start banner, in the `status` RPC and `/readyz` as
//! `audit: [{id, severity, message, fix}]`, and shown by `clawgate doctor`.
//!
//! Invariants: a finding id appears at most once; findings never contain a
//! secret; a key clawgate parses but does not act on is always reported here
//! (never silently ignored).

use std::net::IpAddr;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{AuthMode, BindMode, Settings};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub id: String,
    pub severity: Severity,
    pub message: String,
    pub fix: String,
}

impl Finding {
    fn new(id: impl Into<String>, severity: Severity, message: String, fix: &str) -> Finding {
        Finding {
            id: id.into(),
            severity,
            message,
            fix: fix.to_string(),
        }
    }
}

/// Id of the run-time finding for forwarding headers on a loopback socket (PX-2).
pub const FORWARDED_ON_LOOPBACK: &str = "forwarded-headers-on-loopback";

/// Id of the finding for a listener on a globally routable address (threats.md EX-4).
pub const PUBLIC_LISTENER: &str = "public-listener";

/// Findings that follow from the settings and this host's addresses (start, `doctor`).
pub fn from_settings(s: &Settings) -> Vec<Finding> {
    let mut out = dangerous_flags(s);
    out.extend(trusted_proxies(s));
    out.extend(weak_auth(s));
    out.extend(public_listener(s, &host_addrs()));
    out
}

/// This host's interface addresses (empty when they cannot be read).
fn host_addrs() -> Vec<std::net::IpAddr> {
    if_addrs::get_if_addrs()
        .map(|v| v.into_iter().map(|i| i.ip()).collect())
        .unwrap_or_default()
}

/// Critical when the gateway listens where the internet can reach it: a custom bind on a public
/// address, or a wildcard bind (`lan`/`auto`) on a host that has one.
pub fn public_listener(s: &Settings, host: &[std::net::IpAddr]) -> Vec<Finding> {
    use crate::net_class::{classify, AddrClass};
    let public: Vec<String> = match s.bind {
        BindMode::Custom => s.custom_bind_host.into_iter().collect(),
        BindMode::Lan | BindMode::Auto => host.to_vec(),
        BindMode::Loopback | BindMode::Tailnet => Vec::new(),
    }
    .into_iter()
    .filter(|ip| classify(*ip) == AddrClass::Public)
    .map(|ip| ip.to_string())
    .collect();
    if public.is_empty() {
        return Vec::new();
    }
    vec![Finding::new(
        PUBLIC_LISTENER,
        Severity::Critical,
        format!(
            "the gateway listens on a public address ({}): anyone on the internet can reach it",
            public.join(", ")
        ),
        "bind loopback (and use tailscale.mode serve/funnel), tailnet, or a private LAN address with gateway.bind custom",
    )]
}

fn dangerous_flags(s: &Settings) -> Vec<Finding> {
    let ui = &s.file.gateway.control_ui;
    [
        ("dangerouslyDisableDeviceAuth", ui.dangerously_disable_device_auth, Severity::Critical),
        ("dangerouslyAllowHostHeaderOriginFallback", ui.dangerously_allow_host_header_origin_fallback, Severity::Critical),
        ("allowInsecureAuth", ui.allow_insecure_auth, Severity::Warning),
    ]
    .into_iter()
    .filter(|(_, on, _)| *on)
    .map(|(key, _, severity)| {
        Finding::new(
            format!("dangerous-flag:{key}"),
            severity,
            format!("gateway.controlUi.{key} is set: a break-glass flag that disables a browser protection in OpenClaw; clawgate does not honour it (the protection stays on)"),
            "remove the flag; pair the browser's device instead (clawgate devices approve)",
        )
    })
    .collect()
}

/// Whether a `trustedProxies` entry trusts far too much: everything, or a whole /8 or /12
/// private range (what people set to make `proxy_attribution_required` go away, PX-6).
pub fn is_broad_proxy_range(entry: &str) -> bool {
    let net = match entry.parse::<ipnet::IpNet>() {
        Ok(n) => n,
        Err(_) => match entry.parse::<IpAddr>() {
            Ok(ip) => ipnet::IpNet::from(ip),
            Err(_) => return false,
        },
    };
    match net {
        ipnet::IpNet::V4(v4) => {
            v4.prefix_len() < 8 || (v4.prefix_len() <= 12 && v4.network().is_private())
        }
        ipnet::IpNet::V6(v6) => v6.prefix_len() < 8,
    }
}

fn trusted_proxies(s: &Settings) -> Vec<Finding> {
    let g = &s.file.gateway;
    let mut out = Vec::new();
    let broad: Vec<&str> = g
        .trusted_proxies
        .iter()
        .map(String::as_str)
        .filter(|e| is_broad_proxy_range(e))
        .collect();
    if !broad.is_empty() {
        out.push(Finding::new(
            "trusted-proxies-broad",
            Severity::Critical,
            format!("gateway.trustedProxies trusts {}: any host in that range could claim any client address", broad.join(", ")),
            "list only the exact address of your reverse proxy (e.g. 127.0.0.1/32)",
        ));
    }
    out.extend(proxy_mode(s));
    let p = &s.auth.proxy;
    let unused = [
        (
            p.trusted_proxy.is_some() && s.auth.mode != AuthMode::TrustedProxy,
            "gateway.auth.trustedProxy",
            "has no effect unless gateway.auth.mode is trusted-proxy",
        ),
        (
            p.allow_real_ip_fallback && p.trusted.is_empty(),
            "gateway.allowRealIpFallback",
            "has no effect without gateway.trustedProxies",
        ),
    ];
    for (_, key, why) in unused.iter().filter(|(set, ..)| *set) {
        out.push(Finding::new(
            format!("unused-key:{key}"),
            Severity::Warning,
            format!("{key} is set but {why}"),
            "remove the key, or configure what it depends on",
        ));
    }
    out
}

/// Trusted-proxy mode is always listed with what the proxy must do (EX-4); the loopback opt-in
/// and a missing marker header are warnings (PX-7).
fn proxy_mode(s: &Settings) -> Vec<Finding> {
    let Some(tp) = s.auth.proxy.trusted_proxy.as_ref() else {
        return Vec::new();
    };
    if s.auth.mode != AuthMode::TrustedProxy {
        return Vec::new();
    }
    let proxies: Vec<String> = s
        .auth
        .proxy
        .trusted
        .iter()
        .map(ToString::to_string)
        .collect();
    let mut out = vec![Finding::new(
        "trusted-proxy-mode",
        Severity::Warning,
        format!(
            "auth = trusted-proxy: a request from {} carrying {} is accepted as that user",
            proxies.join(", "),
            tp.user_header
        ),
        "make the proxy authenticate every request and overwrite that header and X-Forwarded-For; never let clients reach the gateway port directly",
    )];
    if tp.required_headers.is_empty() {
        out.push(Finding::new(
            "trusted-proxy-no-required-headers",
            Severity::Warning,
            "gateway.auth.trustedProxy.requiredHeaders is empty: nothing shows a request passed the proxy's authentication".into(),
            "have the proxy set a marker header on authenticated requests and list it in requiredHeaders",
        ));
    }
    if tp.allow_loopback {
        out.push(Finding::new(
            "trusted-proxy-allow-loopback",
            Severity::Warning,
            "gateway.auth.trustedProxy.allowLoopback is set: any local process that can reach the port can claim a user with the right headers (CVE-2026-53832)".into(),
            "prefer a proxy on another address, or let the same-host proxy send the gateway password itself",
        ));
    }
    out
}

fn weak_auth(s: &Settings) -> Vec<Finding> {
    let mut out = Vec::new();
    if matches!(s.bind, BindMode::Lan | BindMode::Auto | BindMode::Custom)
        && s.auth.mode != AuthMode::None
    {
        out.push(Finding::new(
            "auth-weaker-than-exposure",
            Severity::Warning,
            "the gateway listens beyond loopback over plain ws://: the shared secret crosses the network unencrypted".into(),
            "use bind loopback with tailscale.mode serve (wss://), or bind tailnet (WireGuard-encrypted)",
        ));
    }
    if s.auth.mode == AuthMode::None {
        out.push(Finding::new(
            "auth-none",
            Severity::Warning,
            "auth = none: every local process (and every local user) is an operator".into(),
            "set gateway.auth.mode to token (clawgate generates one)",
        ));
    }
    out
}

/// The findings of a running gateway: the settings' plus what was seen since start.
pub struct Audit {
    findings: Mutex<Vec<Finding>>,
}

impl Audit {
    /// Starts with the settings' findings, logging each once.
    pub fn new(s: &Settings) -> Audit {
        let findings = from_settings(s);
        for f in &findings {
            log(f);
        }
        Audit {
            findings: Mutex::new(findings),
        }
    }

    /// Adds a run-time finding the first time its id is seen (and logs it then).
    pub fn note(&self, f: Finding) {
        let mut all = self.findings.lock().unwrap_or_else(|p| p.into_inner());
        if all.iter().any(|x| x.id == f.id) {
            return;
        }
        log(&f);
        all.push(f);
    }

    /// PX-2: a loopback socket carried forwarding headers and no proxy is trusted.
    pub fn note_forwarded_on_loopback(&self) {
        self.note(Finding::new(
            FORWARDED_ON_LOOPBACK,
            Severity::Warning,
            "a loopback connection carried forwarding headers (Forwarded / X-Forwarded-* / X-Real-IP) and no proxy is trusted: it was treated as remote (no silent pairing, no loopback rate-limit exemption)".into(),
            "if a same-host reverse proxy fronts clawgate, have it send the gateway token or password; otherwise find the local process that adds these headers",
        ));
    }

    pub fn list(&self) -> Vec<Finding> {
        self.findings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// `audit` for `status` and `/readyz`.
    pub fn json(&self) -> Value {
        serde_json::to_value(self.list()).unwrap_or_default()
    }
}

fn log(f: &Finding) {
    match f.severity {
        Severity::Critical => tracing::error!(id = f.id, fix = %f.fix, "audit: {}", f.message),
        Severity::Warning => tracing::warn!(id = f.id, fix = %f.fix, "audit: {}", f.message),
    }
}

/// The findings `clawgate doctor` reports: the running gateway's (`/readyz` body, which includes
/// run-time findings) when it answered, else the settings'.
pub fn live_or_settings(s: &Settings, readyz: Option<&Value>) -> Vec<Finding> {
    let live = readyz
        .and_then(|r| r.get("audit"))
        .and_then(|a| serde_json::from_value::<Vec<Finding>>(a.clone()).ok());
    live.unwrap_or_else(|| from_settings(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(cfg: &str) -> Settings {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("openclaw.json");
        std::fs::write(&path, cfg).unwrap();
        let over = crate::config::Overrides {
            config: Some(path),
            token: Some("q8Zc3m0XbqkV9m1o2cV4yJ8a".into()),
            ..Default::default()
        };
        let home = dir.path().to_str().unwrap().to_string();
        crate::config::load(&over, &move |k| (k == "HOME").then(|| home.clone())).unwrap()
    }

    #[test]
    fn a_public_listener_is_critical_and_a_private_one_is_not() {
        let public: std::net::IpAddr = "203.0.113.9".parse().unwrap();
        let v6: std::net::IpAddr = "2a01:4f8::1".parse().unwrap();
        let lan = settings(r#"{ gateway: { bind: "lan" } }"#);
        let private = ["192.168.1.5".parse().unwrap(), "127.0.0.1".parse().unwrap()];
        assert!(public_listener(&lan, &private).is_empty());
        let f = public_listener(&lan, &[private[0], v6]);
        assert_eq!(f.len(), 1);
        assert_eq!(
            (f[0].id.as_str(), f[0].severity),
            (PUBLIC_LISTENER, Severity::Critical)
        );
        assert!(f[0].message.contains("2a01:4f8::1"), "{}", f[0].message);
        let lo = settings("{}");
        assert!(public_listener(&lo, &[public]).is_empty(), "loopback bind");
        let custom = settings(r#"{ gateway: { bind: "custom", customBindHost: "198.51.100.7" } }"#);
        // 198.51.100.0/24 is documentation space: not public.
        assert!(public_listener(&custom, &[]).is_empty());
        let custom = settings(r#"{ gateway: { bind: "custom", customBindHost: "8.8.8.8" } }"#);
        assert_eq!(public_listener(&custom, &[]).len(), 1);
    }

    /// The ids, without the host-dependent public-listener finding (tested on its own above).
    fn ids(s: &Settings) -> Vec<String> {
        let all = from_settings(s).into_iter().map(|f| f.id);
        all.filter(|id| id != PUBLIC_LISTENER).collect()
    }

    #[test]
    fn defaults_have_no_findings() {
        assert!(ids(&settings("{}")).is_empty());
    }

    #[test]
    fn dangerous_flags_and_broad_proxies_are_found() {
        let s = settings(
            r#"{ gateway: { controlUi: { dangerouslyDisableDeviceAuth: true }, trustedProxies: ["0.0.0.0/0"], auth: { trustedProxy: { userHeader: "x-user" } } } }"#,
        );
        let found = from_settings(&s);
        let ids: Vec<&str> = found.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "dangerous-flag:dangerouslyDisableDeviceAuth",
                "trusted-proxies-broad",
                "unused-key:gateway.auth.trustedProxy"
            ]
        );
        assert_eq!(found[0].severity, Severity::Critical);
        assert!(found.iter().all(|f| !f.fix.is_empty()));
        let v = serde_json::to_value(&found).unwrap();
        assert_eq!(v[1]["severity"], "critical");
        let live = live_or_settings(&s, Some(&serde_json::json!({ "audit": v })));
        assert_eq!(live, found, "the running gateway's findings round-trip");
    }

    #[test]
    fn broad_ranges() {
        for broad in [
            "0.0.0.0/0",
            "::/0",
            "10.0.0.0/8",
            "172.16.0.0/12",
            "0.0.0.0/1",
        ] {
            assert!(is_broad_proxy_range(broad), "{broad}");
        }
        for narrow in [
            "127.0.0.1",
            "127.0.0.1/32",
            "10.0.0.5/32",
            "192.168.1.0/24",
            "fd00::1/128",
            "nonsense",
        ] {
            assert!(!is_broad_proxy_range(narrow), "{narrow}");
        }
    }

    #[test]
    fn lan_bind_and_runtime_evidence_are_found_once() {
        let s = settings(r#"{ gateway: { bind: "lan" } }"#);
        assert_eq!(ids(&s), ["auth-weaker-than-exposure"]);
        let a = Audit::new(&s);
        a.note_forwarded_on_loopback();
        a.note_forwarded_on_loopback();
        let live: Vec<String> = a.list().into_iter().map(|f| f.id).collect();
        assert_eq!(live, ["auth-weaker-than-exposure", FORWARDED_ON_LOOPBACK]);
    }
}
