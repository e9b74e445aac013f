use std::path::PathBuf;

use super::*;

fn paths() -> Paths {
    Paths {
        home: PathBuf::from("/h"),
        state_dir: PathBuf::from("/h/.openclaw"),
        config_path: PathBuf::from("/h/.openclaw/openclaw.json"),
        config_explicit: false,
    }
}

fn load(text: &str, env: &[(&str, &str)]) -> Result<RemoteSettings, ConfigError> {
    let f = config::parse_file(text)?;
    let env = |k: &str| {
        env.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    };
    RemoteSettings::from_file(&paths(), &f, &env)
}

fn key_of(r: Result<RemoteSettings, ConfigError>) -> String {
    r.err().map(|e| e.key).unwrap_or_default()
}

#[test]
fn remote_mode_reads_every_key() {
    let fp = "AB:".repeat(31) + "AB";
    let s = load(
        &format!(
            r#"{{ gateway: {{ mode: "remote", remote: {{ url: "wss://vienna.tail.ts.net", transport: "direct",
            token: "remote-token-1234567", tlsFingerprint: "{fp}", sshTarget: "me@vienna:2222",
            sshIdentity: "/k", remotePort: 18800, sshHostKeyPolicy: "openssh" }} }} }}"#
        ),
        &[],
    )
    .unwrap();
    assert!(s.mode_remote);
    assert_eq!(s.url.as_deref(), Some("wss://vienna.tail.ts.net"));
    assert_eq!(s.transport, TransportPolicy::Direct);
    assert_eq!(s.tls_fingerprint, Some("ab".repeat(32)));
    assert_eq!(
        s.ssh_target.map(|t| t.to_string()).as_deref(),
        Some("me@vienna:2222")
    );
    assert_eq!(s.remote_port, 18800);
    assert_eq!(s.ssh_host_key_policy, HostKeyPolicy::Openssh);
}

#[test]
fn bad_values_fail_closed_naming_the_key() {
    let fp = "ab".repeat(32);
    let cases = [
        (
            format!(r#"{{gateway:{{remote:{{url:"ws://x:1", tlsFingerprint:"{fp}"}}}}}}"#),
            "gateway.remote.tlsFingerprint",
        ),
        (
            r#"{gateway:{remote:{url:"wss://x", tlsFingerprint:"abcd"}}}"#.into(),
            "gateway.remote.tlsFingerprint",
        ),
        (
            r#"{gateway:{remote:{sshTarget:"-oProxyCommand=touch /tmp/x"}}}"#.into(),
            "gateway.remote.sshTarget",
        ),
        (
            r#"{gateway:{remote:{sshTarget:"me@-oProxyCommand=x"}}}"#.into(),
            "gateway.remote.sshTarget",
        ),
        (
            r#"{gateway:{remote:{sshTarget:"me@host name"}}}"#.into(),
            "gateway.remote.sshTarget",
        ),
        (
            r#"{gateway:{remote:{transport:"bridge"}}}"#.into(),
            "gateway.remote.transport",
        ),
        (
            r#"{gateway:{remote:{sshHostKeyPolicy:"accept-new"}}}"#.into(),
            "gateway.remote.sshHostKeyPolicy",
        ),
        (
            r#"{gateway:{remote:{url:"https://x"}}}"#.into(),
            "gateway.remote.url",
        ),
        (
            r#"{gateway:{remote:{url:"wss://u:p@x"}}}"#.into(),
            "gateway.remote.url",
        ),
        (
            r#"{gateway:{remote:{url:"wss://x/?token=t"}}}"#.into(),
            "gateway.remote.url",
        ),
        (
            r#"{gateway:{remote:{edgeAuth:{"CF-Access":"x"}}}}"#.into(),
            "gateway.remote.edgeAuth",
        ),
    ];
    for (text, key) in cases {
        assert_eq!(key_of(load(&text, &[])), key, "{text}");
    }
}

#[test]
fn credential_precedence_follows_the_mode() {
    let text = |mode: &str| {
        format!(
            r#"{{gateway:{{mode:"{mode}", auth:{{token:"local-token-abcdefgh"}}, remote:{{token:"remote-token-abcdefgh"}}}}}}"#
        )
    };
    let env = [("OPENCLAW_GATEWAY_TOKEN", "env-token-abcdefgh")];
    let e = |k: &str| (k == env[0].0).then(|| env[0].1.to_string());
    let none = |_: &str| None;
    let remote = load(&text("remote"), &[]).unwrap();
    assert_eq!(remote.token(&e).unwrap().expose(), "remote-token-abcdefgh");
    let local = load(&text("local"), &[]).unwrap();
    assert_eq!(local.token(&e).unwrap().expose(), "local-token-abcdefgh");
    let only_remote = load(r#"{gateway:{remote:{token:"remote-token-abcdefgh"}}}"#, &[]).unwrap();
    assert_eq!(
        only_remote.token(&e).unwrap().expose(),
        "env-token-abcdefgh"
    );
    assert_eq!(
        only_remote.token(&none).unwrap().expose(),
        "remote-token-abcdefgh"
    );
}

#[test]
fn empty_config_is_the_four_step_policy() {
    let s = load("{}", &[]).unwrap();
    assert!(!s.mode_remote);
    assert_eq!(s.transport, TransportPolicy::Auto);
    assert_eq!(s.remote_port, 18789);
    assert_eq!(s.ssh_host_key_policy, HostKeyPolicy::Strict);
}
