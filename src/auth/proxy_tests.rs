use std::net::{IpAddr, Ipv4Addr};

use hyper::header::{HeaderMap, HeaderValue};
use proptest::prelude::*;

use super::*;
use crate::config::{ProxySettings, TrustedProxySettings};

const PROXY: &str = "10.0.0.5";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn settings(trusted: &[&str], real_ip: bool) -> ProxySettings {
    ProxySettings {
        trusted: trusted
            .iter()
            .map(|s| s.parse().unwrap_or_else(|_| ipnet::IpNet::from(ip(s))))
            .collect(),
        allow_real_ip_fallback: real_ip,
        trusted_proxy: None,
    }
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_str(v).unwrap());
    }
    h
}

fn tp(user_header: &str) -> TrustedProxySettings {
    TrustedProxySettings {
        user_header: user_header.into(),
        required_headers: vec![],
        allow_users: vec![],
        allow_loopback: false,
    }
}

#[test]
fn forwarding_headers_from_an_untrusted_peer_are_ignored_px1() {
    let p = settings(&["10.0.0.5/32"], true);
    let h = headers(&[("x-forwarded-for", "127.0.0.1"), ("x-real-ip", "127.0.0.1")]);
    assert_eq!(attribute(ip("192.168.1.9"), &h, &p), Hop::Direct);
    assert_eq!(Hop::Direct.client(ip("192.168.1.9")), ip("192.168.1.9"));
}

#[test]
fn xff_is_scanned_right_to_left_for_the_first_untrusted_hop_px3() {
    let p = settings(&["10.0.0.0/29"], false);
    let h = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.0.0.3")]);
    let hop = attribute(ip(PROXY), &h, &p);
    assert_eq!(
        hop,
        Hop::Trusted {
            proxy: ip(PROXY),
            client: ip("203.0.113.7")
        }
    );
    // Two header lines count as one list, in order.
    let h = headers(&[
        ("x-forwarded-for", "6.6.6.6"),
        ("x-forwarded-for", "198.51.100.2"),
    ]);
    assert_eq!(
        attribute(ip(PROXY), &h, &p).client(ip(PROXY)),
        ip("198.51.100.2")
    );
}

#[test]
fn x_real_ip_counts_only_with_the_fallback_px4() {
    let h = headers(&[("x-real-ip", "203.0.113.7")]);
    let off = attribute(ip(PROXY), &h, &settings(&[PROXY], false));
    assert_eq!(off, Hop::Unattributable { proxy: ip(PROXY) });
    let on = attribute(ip(PROXY), &h, &settings(&[PROXY], true));
    assert_eq!(on.client(ip(PROXY)), ip("203.0.113.7"));
    // XFF wins over X-Real-IP when both are present.
    let both = headers(&[("x-real-ip", "1.1.1.1"), ("x-forwarded-for", "203.0.113.8")]);
    let hop = attribute(ip(PROXY), &both, &settings(&[PROXY], true));
    assert_eq!(hop.client(ip(PROXY)), ip("203.0.113.8"));
}

#[test]
fn bad_or_missing_xff_from_a_trusted_proxy_fails_closed_px5() {
    let p = settings(&[PROXY], false);
    for bad in [
        "unknown",
        "1.2.3.999",
        "::ffff:zzz",
        "203.0.113.7, garbage",
        "",
    ] {
        let h = headers(&[("x-forwarded-for", bad)]);
        assert_eq!(
            attribute(ip(PROXY), &h, &p),
            Hop::Unattributable { proxy: ip(PROXY) },
            "{bad:?}"
        );
    }
    // No forwarding header at all from a non-loopback trusted proxy.
    assert_eq!(
        attribute(ip(PROXY), &HeaderMap::new(), &p),
        Hop::Unattributable { proxy: ip(PROXY) }
    );
}

#[test]
fn a_forwarded_loopback_client_is_never_attributed_px6() {
    let p = settings(&["127.0.0.1/32"], false);
    let h = headers(&[("x-forwarded-for", "127.0.0.1")]);
    let lo = ip("127.0.0.1");
    assert_eq!(attribute(lo, &h, &p), Hop::Unattributable { proxy: lo });
    // A loopback peer without forwarding headers is simply direct.
    assert_eq!(attribute(lo, &HeaderMap::new(), &p), Hop::Direct);
    // Every hop trusted: nobody to attribute to.
    let h = headers(&[("x-forwarded-for", "127.0.0.1, 10.0.0.5")]);
    let p = settings(&["127.0.0.1/32", "10.0.0.5/32"], false);
    assert_eq!(
        attribute(ip(PROXY), &h, &p),
        Hop::Unattributable { proxy: ip(PROXY) }
    );
}

#[test]
fn trusted_proxy_auth_follows_the_reference_order_px7() {
    let p = settings(&[PROXY, "127.0.0.1"], false);
    let mut cfg = tp("x-forwarded-user");
    cfg.required_headers = vec!["X-Proxy-Auth".into()];
    cfg.allow_users = vec!["alice".into()];
    let full = headers(&[("x-forwarded-user", "alice"), ("x-proxy-auth", "nginx")]);
    let not_local = |_| Some(false);
    let ok = authorize_user(ip(PROXY), &full, &p, &cfg, not_local);
    assert_eq!(ok.as_deref(), Ok("alice"));
    let r = |peer: &str, h: &HeaderMap, cfg: &TrustedProxySettings| {
        authorize_user(ip(peer), h, &p, cfg, not_local).unwrap_err()
    };
    assert_eq!(r("10.9.9.9", &full, &cfg), ProxyFailure::UntrustedSource);
    assert_eq!(r("127.0.0.1", &full, &cfg), ProxyFailure::LoopbackSource);
    let local = authorize_user(ip(PROXY), &full, &p, &cfg, |_| Some(true));
    assert_eq!(local.unwrap_err(), ProxyFailure::LocalInterfaceSource);
    let unknown = authorize_user(ip(PROXY), &full, &p, &cfg, |_| None);
    assert_eq!(
        unknown.unwrap_err(),
        ProxyFailure::LocalInterfaceCheckFailed
    );
    let no_req = headers(&[("x-forwarded-user", "alice"), ("x-proxy-auth", "  ")]);
    let e = r(PROXY, &no_req, &cfg);
    assert_eq!(e.reason(), "trusted_proxy_missing_header_X-Proxy-Auth");
    assert_eq!(e.detail_code(), "AUTH_IDENTITY_HEADER_REQUIRED");
    let no_user = headers(&[("x-proxy-auth", "nginx")]);
    assert_eq!(r(PROXY, &no_user, &cfg), ProxyFailure::UserMissing);
    let bob = headers(&[("x-forwarded-user", "bob"), ("x-proxy-auth", "nginx")]);
    assert_eq!(r(PROXY, &bob, &cfg), ProxyFailure::UserNotAllowed);
    // allowLoopback admits a loopback proxy, still only with the headers and the allowlist.
    cfg.allow_loopback = true;
    let lo = authorize_user(ip("127.0.0.1"), &full, &p, &cfg, |_| Some(true));
    assert_eq!(lo.as_deref(), Ok("alice"));
    assert_eq!(r("127.0.0.1", &bob, &cfg), ProxyFailure::UserNotAllowed);
}

#[test]
fn an_unproven_loopback_peer_is_never_a_proxy() {
    // Under a userspace tailscaled a tailnet peer arrives on 127.0.0.1; unless whois proved the
    // socket local, it must not claim a user or a client address through headers (PX-7, §12.1).
    let p = settings(&["127.0.0.1"], false);
    let mut cfg = tp("x-forwarded-user");
    cfg.allow_loopback = true;
    let h = headers(&[
        ("x-forwarded-user", "alice"),
        ("x-forwarded-for", "203.0.113.7"),
    ]);
    let (hop, user) = evaluate(None, &h, &p, Some(&cfg), |_| Some(false));
    assert_eq!(hop, Hop::Direct);
    assert_eq!(user, Some(Err(ProxyFailure::UntrustedSource)));
    // The same request from a proven-local same-host proxy is attributed and authenticated.
    let (hop, user) = evaluate(Some(ip("127.0.0.1")), &h, &p, Some(&cfg), |_| Some(false));
    assert_eq!(hop.client(ip("127.0.0.1")), ip("203.0.113.7"));
    assert_eq!(user, Some(Ok("alice".to_string())));
    // Outside trusted-proxy mode no user is evaluated at all.
    assert_eq!(evaluate(None, &h, &p, None, |_| Some(false)).1, None);
}

fn v4() -> impl Strategy<Value = IpAddr> {
    any::<[u8; 4]>().prop_map(|b| IpAddr::V4(Ipv4Addr::from(b)))
}

proptest! {
    /// Whatever a client prepends to XFF, the attributed client is the hop the trusted proxy
    /// chain appended last before the first trusted one (PX-3).
    #[test]
    fn injected_prefixes_never_change_the_attributed_client(
        injected in proptest::collection::vec(v4(), 0..6),
        client in v4().prop_filter("untrusted, not loopback", |ip| {
            !matches!(ip, IpAddr::V4(v) if v.is_loopback() || v.octets()[0] == 10)
        }),
        inner in proptest::collection::vec(0u8..8, 0..3),
    ) {
        let p = settings(&["10.0.0.0/29"], false);
        let mut chain: Vec<String> = injected.iter().map(ToString::to_string).collect();
        chain.push(client.to_string());
        chain.extend(inner.iter().map(|i| format!("10.0.0.{i}")));
        let h = headers(&[("x-forwarded-for", &chain.join(", "))]);
        prop_assert_eq!(attribute(ip(PROXY), &h, &p), Hop::Trusted { proxy: ip(PROXY), client });
    }

    /// An untrusted peer's headers never move the client away from the socket peer (PX-1).
    #[test]
    fn untrusted_peers_are_always_direct(peer in v4(), claimed in v4()) {
        prop_assume!(!matches!(peer, IpAddr::V4(v) if v.octets()[0] == 10 || v.is_loopback()));
        let p = settings(&["10.0.0.0/8"], true);
        let h = headers(&[("x-forwarded-for", &claimed.to_string()), ("x-real-ip", &claimed.to_string())]);
        prop_assert_eq!(attribute(peer, &h, &p), Hop::Direct);
    }
}
