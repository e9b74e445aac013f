use super::*;
use proptest::prelude::*;

fn spec(t: &str) -> TunnelSpec {
    TunnelSpec {
        target: SshTarget::parse(t).unwrap(),
        identity: None,
        policy: HostKeyPolicy::Strict,
        remote_port: 18789,
    }
}

#[test]
fn targets_parse_into_user_host_and_port() {
    let t = SshTarget::parse("me@vienna:2222").unwrap();
    assert_eq!(
        (t.user.as_deref(), t.host.as_str(), t.port),
        (Some("me"), "vienna", Some(2222))
    );
    let t = SshTarget::parse("[fd7a:115c:a1e0::1]:22").unwrap();
    assert_eq!((t.host.as_str(), t.port), ("fd7a:115c:a1e0::1", Some(22)));
    assert_eq!(t.to_string(), "[fd7a:115c:a1e0::1]:22");
    let t = SshTarget::parse("vienna.tail1234.ts.net").unwrap();
    assert_eq!((t.user, t.port), (None, None));
}

#[test]
fn injection_shaped_targets_are_refused() {
    for t in [
        "-oProxyCommand=touch /tmp/x",
        "me@-oProxyCommand=x",
        "-me@host",
        "me@host -p 1",
        "me@host:0",
        "me@host:99999",
        "me@host:22:33",
        "",
        "@host",
        "me@",
        "me@[::1",
        "me@[nothex]:22",
        "me@host;rm",
        "me@ho$t",
        "me@host\n",
    ] {
        assert!(SshTarget::parse(t).is_err(), "{t:?} accepted");
    }
}

#[test]
fn argv_follows_the_reference_and_ends_with_the_destination() {
    let a: Vec<String> = argv(&spec("me@vienna:2222"), 40001)
        .into_iter()
        .map(|s| s.into_string().unwrap())
        .collect();
    let joined = a.join(" ");
    for want in [
        "-N",
        "-L 127.0.0.1:40001:127.0.0.1:18789",
        "-p 2222",
        "-o ExitOnForwardFailure=yes",
        "-o BatchMode=yes",
        "-o StrictHostKeyChecking=yes",
        "-o ServerAliveInterval=15",
        "-o ServerAliveCountMax=3",
        "-o ConnectTimeout=5",
    ] {
        assert!(joined.contains(want), "{want} missing from {joined}");
    }
    assert_eq!(&a[a.len() - 2..], ["--", "me@vienna"]);
}

#[test]
fn openssh_policy_leaves_host_key_checking_to_the_ssh_config() {
    let mut s = spec("vienna");
    s.policy = HostKeyPolicy::Openssh;
    let joined: Vec<String> = argv(&s, 1)
        .into_iter()
        .map(|s| s.into_string().unwrap())
        .collect();
    assert!(!joined
        .iter()
        .any(|a| a.starts_with("StrictHostKeyChecking")));
    assert!(joined.contains(&"BatchMode=yes".to_string()));
    assert!(joined.contains(&"22".to_string()));
}

#[test]
fn readiness_comes_only_from_ssh_own_listener_line() {
    assert_eq!(
        ready_port("debug1: Local forwarding listening on 127.0.0.1 port 40001."),
        Some(40001)
    );
    assert_eq!(
        ready_port("debug1: Local forwarding listening on ::1 port 40001."),
        None
    );
    assert_eq!(ready_port("debug1: Connecting to vienna port 22."), None);
}

fn t() -> SshTarget {
    SshTarget::parse("me@10.0.0.2:2222").unwrap()
}

fn lines(s: &[&str]) -> Vec<String> {
    s.iter().map(|l| l.to_string()).collect()
}

#[test]
fn host_key_and_login_failures_are_fatal_and_the_rest_is_retried() {
    let changed = lines(&[
        "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @",
        "Host key verification failed.",
    ]);
    let f = classify(&t(), &changed);
    assert!(matches!(f, SshFailure::HostKeyChanged { .. }) && f.is_fatal());
    assert!(
        f.to_string().contains("ssh-keygen -R '[10.0.0.2]:2222'"),
        "{f}"
    );
    let unknown = lines(&[
        "No ED25519 host key is known for [10.0.0.2]:2222 and you have requested strict checking.",
        "Host key verification failed.",
    ]);
    assert!(matches!(
        classify(&t(), &unknown),
        SshFailure::HostKeyUnknown { .. }
    ));
    let auth = lines(&["root@10.0.0.2: Permission denied (publickey)."]);
    assert!(classify(&t(), &auth).is_fatal());
    let busy = lines(&[
        "bind [127.0.0.1]:40001: Address already in use",
        "Could not request local forwarding.",
    ]);
    assert!(matches!(
        classify(&t(), &busy),
        SshFailure::LocalPortBusy(_)
    ));
    let refused = lines(&["ssh: connect to host 10.0.0.2 port 2222: Connection refused"]);
    let f = classify(&t(), &refused);
    assert!(!f.is_fatal());
    assert!(f.to_string().contains("Connection refused"));
    assert!(!classify(&t(), &[]).is_fatal());
}

#[test]
fn backoff_doubles_to_its_cap_within_the_jitter_window() {
    let mut b = Backoff::new();
    assert_eq!(b.next(1.0), BACKOFF_INITIAL);
    assert_eq!(b.next(0.0), BACKOFF_INITIAL);
    assert_eq!(b.next(1.0), BACKOFF_INITIAL * 4);
    for _ in 0..40 {
        assert!(b.next(0.999) <= BACKOFF_MAX);
    }
    assert!(b.next(0.0) >= BACKOFF_MAX / 2);
    b.reset();
    assert_eq!(b.next(1.0), BACKOFF_INITIAL);
}

fn part() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._-]{0,12}"
}

proptest! {
    /// Whatever is accepted yields an argv where nothing but ssh's own flags start with '-',
    /// and the destination follows `--`.
    #[test]
    fn accepted_targets_never_smuggle_an_option(user in proptest::option::of(part()), host in part(), port in proptest::option::of(any::<u16>())) {
        let mut s = String::new();
        if let Some(u) = &user { s.push_str(u); s.push('@'); }
        s.push_str(&host);
        if let Some(p) = port { s.push_str(&format!(":{p}")); }
        if let Ok(t) = SshTarget::parse(&s) {
            prop_assert!(!t.host.starts_with('-'));
            prop_assert!(t.user.as_deref().is_none_or(|u| !u.starts_with('-')));
            let mut sp = spec("h");
            sp.target = t.clone();
            let a = argv(&sp, 1);
            prop_assert_eq!(a[a.len() - 2].to_str(), Some("--"));
            prop_assert!(!a[a.len() - 1].to_str().unwrap().starts_with('-'));
            prop_assert_eq!(SshTarget::parse(&t.to_string()), Ok(t));
        }
    }
}
