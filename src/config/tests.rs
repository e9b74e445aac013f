//! Config precedence, parsing and fail-closed validation.

use std::collections::HashMap;

use super::*;

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let m: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k: &str| m.get(k).cloned()
}

fn settings(file: &str, over: &Overrides, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let e = env_of(&[&[("HOME", "/home/u")], env].concat());
    let paths = Paths::resolve(None, &e)?;
    let s = resolve(paths, parse_file(file)?, over, &e)?;
    validate::check(&s)?;
    Ok(s)
}

#[test]
fn defaults_are_loopback_token_18789() {
    let s = settings("{}", &Overrides::default(), &[]).unwrap();
    assert_eq!(
        (s.port, s.bind, s.auth.mode),
        (18789, BindMode::Loopback, AuthMode::Token)
    );
    assert_eq!(s.paths.state_dir, PathBuf::from("/home/u/.openclaw"));
    assert_eq!(
        s.paths.config_path,
        PathBuf::from("/home/u/.openclaw/openclaw.json")
    );
    assert_eq!(s.handshake_timeout, Duration::from_secs(10));
    assert_eq!(s.tick_interval, Duration::from_secs(30));
}

#[test]
fn precedence_flags_over_env_over_file() {
    let file = r#"{ gateway: { port: 1000, auth: { token: "file-token-abcdefgh" } }, }"#;
    let s = settings(file, &Overrides::default(), &[]).unwrap();
    assert_eq!((s.port, s.token_source), (1000, TokenSource::File));
    let s = settings(
        file,
        &Overrides::default(),
        &[
            (env::PORT, "127.0.0.1:2000"),
            (env::TOKEN, "env-token-0123456789"),
        ],
    )
    .unwrap();
    assert_eq!((s.port, s.token_source), (2000, TokenSource::Env));
    assert_eq!(s.auth.token.unwrap().expose(), "env-token-0123456789");
    let over = Overrides {
        port: Some(3000),
        token: Some("flag-token-0123456789".into()),
        ..Default::default()
    };
    let s = settings(file, &over, &[(env::PORT, "2000")]).unwrap();
    assert_eq!((s.port, s.token_source), (3000, TokenSource::Flag));
}

#[test]
fn state_dir_env_home_and_profile() {
    let e = env_of(&[("HOME", "/h"), (env::HOME, "/oh"), (env::PROFILE, "work")]);
    assert_eq!(
        Paths::resolve(None, &e).unwrap().state_dir,
        PathBuf::from("/oh/.openclaw-work")
    );
    let e = env_of(&[
        ("HOME", "/h"),
        (env::STATE_DIR, "~/st"),
        (env::CONFIG_PATH, "/c.json"),
    ]);
    let p = Paths::resolve(None, &e).unwrap();
    assert_eq!(
        (p.state_dir, p.config_path, p.config_explicit),
        (PathBuf::from("/h/st"), PathBuf::from("/c.json"), true)
    );
}

#[test]
fn unknown_keys_name_the_path() {
    let e = parse_file(r#"{ gateway: { auth: { mdoe: "token" } } }"#).unwrap_err();
    assert_eq!(e.key, "gateway.auth.mdoe");
    assert!(e.problem.contains("mdoe"), "{e}");
    assert!(e.fix.contains("did you mean `gateway.auth.mode`?"), "{e}");
    assert!(e.fix.contains("docs/configuration.md"), "{e}");
    let e = parse_file(r#"{ gatway: {} }"#).unwrap_err();
    assert_eq!(e.key, "gatway");
    assert!(e.fix.contains("did you mean `gateway`?"), "{e}");
    assert!(parse_file(r#"{ agents: { x: 1 }, channels: {}, gateway: {} }"#).is_ok());
}

#[test]
fn bad_values_name_the_key() {
    let e = parse_file(r#"{ gateway: { bind: "0.0.0.0" } }"#).unwrap_err();
    assert_eq!(e.key, "gateway.bind");
    let e = parse_file(r#"{ gateway: { port: 70000 } }"#).unwrap_err();
    assert_eq!(e.key, "gateway.port");
    let e = settings("{}", &Overrides::default(), &[(env::BIND, "all")]).unwrap_err();
    assert_eq!(e.key, env::BIND);
    let e = parse_file("{ gateway: ").unwrap_err();
    assert!(e.problem.contains("JSON5"));
    let e = parse_file("{\n gateway: { port: 1,\n  bind: \"lan\" }\n").unwrap_err();
    assert!(e.problem.contains("missing `}`"), "{e}");
    assert!(
        e.problem.contains("line 1") && !e.problem.contains("boolean"),
        "{e}"
    );
}

#[test]
fn contradictions_refuse_to_start() {
    let none_lan = r#"{ gateway: { bind: "lan", auth: { mode: "none" } } }"#;
    assert_eq!(
        settings(none_lan, &Overrides::default(), &[])
            .unwrap_err()
            .key,
        "gateway.auth.mode"
    );
    let funnel_token =
        r#"{ gateway: { tailscale: { mode: "funnel" }, auth: { token: "aB3dE5fG7hJ9kL1mN" } } }"#;
    assert_eq!(
        settings(funnel_token, &Overrides::default(), &[])
            .unwrap_err()
            .key,
        "gateway.auth.mode"
    );
    let funnel_port = r#"{ gateway: { tailscale: { mode: "funnel", funnelPort: 8080 }, auth: { mode: "password", password: "aB3dE5fG7hJ9kL1mN" } } }"#;
    assert_eq!(
        settings(funnel_port, &Overrides::default(), &[])
            .unwrap_err()
            .key,
        "gateway.tailscale.funnelPort"
    );
    let serve_lan = r#"{ gateway: { bind: "lan", tailscale: { mode: "serve" }, auth: { token: "aB3dE5fG7hJ9kL1mN" } } }"#;
    assert_eq!(
        settings(serve_lan, &Overrides::default(), &[])
            .unwrap_err()
            .key,
        "gateway.bind"
    );
    let custom = r#"{ gateway: { bind: "custom" } }"#;
    assert_eq!(
        settings(custom, &Overrides::default(), &[])
            .unwrap_err()
            .key,
        "gateway.customBindHost"
    );
    let same = r#"{ gateway: { auth: { mode: "password", token: "aB3dE5fG7hJ9kL1mN", password: "aB3dE5fG7hJ9kL1mN" } } }"#;
    assert_eq!(
        settings(same, &Overrides::default(), &[]).unwrap_err().key,
        "gateway.auth.password"
    );
}

#[test]
fn weak_and_placeholder_secrets() {
    let placeholder = r#"{ gateway: { auth: { token: "changeme" } } }"#;
    assert_eq!(
        settings(placeholder, &Overrides::default(), &[])
            .unwrap_err()
            .key,
        "gateway.auth.token"
    );
    // A short token is refused on every bind, loopback included (EX-1; it used to pass on
    // loopback), and the refusal names the source: flag, env, key or SecretRef.
    let short = r#"{ gateway: { auth: { token: "T" } } }"#;
    let e = settings(short, &Overrides::default(), &[]).unwrap_err();
    assert_eq!(e.key, "gateway.auth.token");
    assert!(e.fix.contains("/home/u/.openclaw/openclaw.json"), "{e}");
    let flag = Overrides {
        token: Some("12345678".into()),
        ..Default::default()
    };
    assert_eq!(settings("{}", &flag, &[]).unwrap_err().key, "--token");
    let e = settings("{}", &Overrides::default(), &[(env::PASSWORD, "hunter2")]).unwrap_err();
    assert_eq!(e.key, "environment variable OPENCLAW_GATEWAY_PASSWORD");
    let weak_lan = r#"{ gateway: { bind: "lan", auth: { token: "short" } } }"#;
    assert_eq!(
        settings(weak_lan, &Overrides::default(), &[])
            .unwrap_err()
            .key,
        "gateway.auth.token"
    );
    let ok_lan = r#"{ gateway: { bind: "lan", auth: { token: "q8Zc3m0XbqkV9m1o2cV4yJ8a" } } }"#;
    assert!(settings(ok_lan, &Overrides::default(), &[]).is_ok());
}

#[test]
fn password_mode_is_inferred_and_secret_refs_resolve() {
    let f = r#"{ gateway: { auth: { password: { source: "env", id: "MY_PW" } } } }"#;
    let s = settings(
        f,
        &Overrides::default(),
        &[("MY_PW", "pw-from-env-0123456789")],
    )
    .unwrap();
    assert_eq!(s.auth.mode, AuthMode::Password);
    assert_eq!(s.auth.password.unwrap().expose(), "pw-from-env-0123456789");
    let e = settings(f, &Overrides::default(), &[]).unwrap_err();
    assert!(e.problem.contains("MY_PW"));
}

#[test]
fn secrets_are_redacted_in_debug() {
    let s = settings(
        r#"{ gateway: { auth: { token: "super-secret-value" } } }"#,
        &Overrides::default(),
        &[],
    )
    .unwrap();
    assert!(!format!("{s:?}").contains("super-secret-value"));
}

#[test]
fn generated_token_is_persisted_0600() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (t1, created) = secrets::load_or_generate_token(dir.path()).unwrap();
    assert!(created);
    assert_eq!(t1.expose().len(), 43);
    let (t2, created) = secrets::load_or_generate_token(dir.path()).unwrap();
    assert!(!created);
    assert_eq!(t1, t2);
    let mode = std::fs::metadata(secrets::token_file(dir.path()))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn silent_local_pairing_needs_an_explicit_opt_in_while_exposed() {
    use super::auto_approve_local as aal;
    let lo: Option<std::net::IpAddr> = Some("127.0.0.1".parse().unwrap());
    let lan: Option<std::net::IpAddr> = Some("192.168.1.10".parse().unwrap());
    assert!(aal(None, BindMode::Loopback, None, TailscaleMode::Off));
    assert!(aal(None, BindMode::Custom, lo, TailscaleMode::Off));
    assert!(!aal(None, BindMode::Loopback, None, TailscaleMode::Serve));
    assert!(!aal(None, BindMode::Lan, None, TailscaleMode::Off));
    assert!(!aal(None, BindMode::Custom, lan, TailscaleMode::Off));
    assert!(!aal(None, BindMode::Tailnet, None, TailscaleMode::Off));
    assert!(aal(
        Some(true),
        BindMode::Loopback,
        None,
        TailscaleMode::Funnel
    ));
    assert!(!aal(
        Some(false),
        BindMode::Loopback,
        None,
        TailscaleMode::Off
    ));
}

#[test]
fn trusted_proxy_settings_are_typed_and_fail_closed() {
    let over = Overrides::default();
    let key = |file: &str, env: &[(&str, &str)]| settings(file, &over, env).unwrap_err().key;
    let ok = r#"{ gateway: { trustedProxies: ["10.0.0.5", "fd00::/64"], auth: { mode: "trusted-proxy",
        trustedProxy: { userHeader: "X-Forwarded-User", requiredHeaders: ["X-Proxy-Auth"] } } } }"#;
    let s = settings(ok, &over, &[]).unwrap();
    let tp = s.auth.proxy.trusted_proxy.as_ref().unwrap();
    assert_eq!(tp.user_header, "x-forwarded-user");
    assert_eq!(tp.required_headers, ["x-proxy-auth"]);
    assert_eq!(s.auth.proxy.trusted[0].to_string(), "10.0.0.5/32");
    assert!(!s.auth.allow_tailscale);
    // Mutually exclusive with a shared token, from any source.
    assert_eq!(
        key(ok, &[(env::TOKEN, "env-token-0123456789abcdef")]),
        "gateway.auth.token"
    );
    let no_proxies =
        r#"{ gateway: { auth: { mode: "trusted-proxy", trustedProxy: { userHeader: "x-u" } } } }"#;
    assert_eq!(key(no_proxies, &[]), "gateway.trustedProxies");
    let no_tp = r#"{ gateway: { trustedProxies: ["10.0.0.5"], auth: { mode: "trusted-proxy" } } }"#;
    assert_eq!(key(no_tp, &[]), "gateway.auth.trustedProxy");
    let no_user = r#"{ gateway: { trustedProxies: ["10.0.0.5"], auth: { mode: "trusted-proxy", trustedProxy: { userHeader: " " } } } }"#;
    assert_eq!(key(no_user, &[]), "gateway.auth.trustedProxy.userHeader");
    let auto = r#"{ gateway: { trustedProxies: ["10.0.0.5"], auth: { mode: "trusted-proxy", trustedProxy: { userHeader: "x-u", deviceAutoApprove: { enabled: true } } } } }"#;
    assert_eq!(
        key(auto, &[]),
        "gateway.auth.trustedProxy.deviceAutoApprove"
    );
    let bad_entry = r#"{ gateway: { trustedProxies: ["10.0.0.5", "proxy.lan"] } }"#;
    assert_eq!(key(bad_entry, &[]), "gateway.trustedProxies[1]");
    let bad_header = r#"{ gateway: { trustedProxies: ["10.0.0.5"], auth: { mode: "trusted-proxy", trustedProxy: { userHeader: "x u" } } } }"#;
    assert_eq!(key(bad_header, &[]), "gateway.auth.trustedProxy.userHeader");
}
