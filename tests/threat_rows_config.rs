//! threats.md rows about fail-closed configuration that had no test when `docs/security.md` was
//! written (issue 12 item 9), through clawgate's public config API and shipped files, no network:
//! TN-2/TN-5 (which addresses a bind mode listens on), EX-2 (`auth = none` with any remote
//! exposure), PX-3..PX-7 (trusted-proxy mode fails closed without its settings) and PR-3 (no secret in the service unit).

use clawgate::config::{AuthMode, BindMode, Overrides, TailscaleMode};
use serde_json::{json, Value};

/// A strong shared token.
const TOKEN: &str = "test-token-0123456789abcdef";

#[test]
fn the_service_unit_carries_no_secret() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/systemd/clawgate.service"
    ))
    .unwrap();
    let lines: Vec<&str> = unit
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect();
    assert!(lines.iter().any(|l| l.starts_with("ExecStart=")), "{unit}");
    for needle in [
        "OPENCLAW_GATEWAY_TOKEN",
        "OPENCLAW_GATEWAY_PASSWORD",
        "--token",
        "--password",
        "EnvironmentFile",
    ] {
        assert!(
            !lines.iter().any(|l| l.contains(needle)),
            "the unit carries {needle}: {unit}"
        );
    }
}

/// Settings as `clawgate run` would load them with `over` and config file `cfg`, in a fresh HOME.
fn load(
    over: Overrides,
    cfg: Value,
) -> Result<clawgate::config::Settings, clawgate::config::ConfigError> {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("openclaw.json");
    std::fs::write(&file, cfg.to_string()).unwrap();
    let h = home.path().to_str().unwrap().to_string();
    let over = Overrides {
        config: Some(file),
        ..over
    };
    clawgate::config::load(&over, &move |k| (k == "HOME").then(|| h.clone()))
}

#[test]
fn bind_addresses_never_widen_and_lan_is_dual_stack() {
    let custom = json!({"gateway": {"customBindHost": "192.168.77.10"}});
    let addrs = |bind, cfg: &Value| {
        let over = Overrides {
            bind: Some(bind),
            token: Some(TOKEN.into()),
            ..Default::default()
        };
        let s = load(over, cfg.clone()).unwrap_or_else(|e| panic!("{bind:?}: {e}"));
        clawgate::server::listen::addresses(&s)
            .into_iter()
            .map(|(a, _)| a.ip().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(addrs(BindMode::Loopback, &json!({})), ["127.0.0.1", "::1"]);
    assert_eq!(
        addrs(BindMode::Tailnet, &json!({})),
        ["127.0.0.1", "::1"],
        "tailnet IPs are bound as they appear"
    );
    assert_eq!(
        addrs(BindMode::Custom, &custom),
        ["127.0.0.1", "192.168.77.10"]
    );
    assert_eq!(
        addrs(BindMode::Lan, &json!({})),
        ["0.0.0.0", "::"],
        "lan is IPv4 and IPv6"
    );
}

#[test]
fn auth_none_is_refused_with_any_remote_exposure() {
    let custom = json!({"gateway": {"customBindHost": "192.168.77.10"}});
    let none = |bind, tailscale, cfg: &Value| {
        let over = Overrides {
            bind: Some(bind),
            tailscale: Some(tailscale),
            auth: Some(AuthMode::None),
            ..Default::default()
        };
        load(over, cfg.clone())
    };
    assert!(
        none(BindMode::Loopback, TailscaleMode::Off, &json!({})).is_ok(),
        "pure loopback may run without auth"
    );
    let exposed = [
        (BindMode::Lan, TailscaleMode::Off, json!({})),
        (BindMode::Auto, TailscaleMode::Off, json!({})),
        (BindMode::Tailnet, TailscaleMode::Off, json!({})),
        (BindMode::Custom, TailscaleMode::Off, custom),
        (BindMode::Loopback, TailscaleMode::Serve, json!({})),
        (BindMode::Loopback, TailscaleMode::Funnel, json!({})),
    ];
    for (bind, ts, cfg) in exposed {
        let e = none(bind, ts, &cfg)
            .err()
            .unwrap_or_else(|| panic!("{bind:?}/{ts:?} started with auth none"));
        assert_eq!(e.key, "gateway.auth.mode", "{bind:?}/{ts:?}: {e}");
    }
    // PX-3..PX-7: trusted-proxy mode without its settings, or next to a shared token, refuses to
    // start naming the key (never a half-configured proxy trust).
    let over = Overrides {
        auth: Some(AuthMode::TrustedProxy),
        ..Default::default()
    };
    let e = load(over.clone(), json!({})).expect_err("trusted-proxy needs its settings");
    assert_eq!(e.key, "gateway.auth.trustedProxy", "{e}");
    let with_token = Overrides {
        token: Some(TOKEN.into()),
        ..over
    };
    let cfg = json!({"gateway": {"trustedProxies": ["10.0.0.5"], "auth": {"trustedProxy": {"userHeader": "x-user"}}}});
    let e = load(with_token, cfg).expect_err("trusted-proxy excludes a token");
    assert_eq!(e.key, "gateway.auth.token", "{e}");
}
