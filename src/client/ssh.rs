//! The SSH transport's pure half (issue 16 item 5, threats.md SSH-1/SSH-2): a validated
//! [`SshTarget`], the exact `ssh` argument vector of a tunnel, what `ssh`'s diagnostics mean
//! ([`classify`]), and the reconnect [`Backoff`]. No I/O: the process supervision lives in
//! [`super::tunnel`].
//!
//! Invariants: a target never starts an argument with `-` (every part is checked, and `--`
//! precedes the destination), holds only host-name characters or a bracketed IPv6 address, and
//! carries its port separately (`-p`); the forward binds `127.0.0.1` only; `BatchMode=yes`
//! always (nobody can answer a prompt), `StrictHostKeyChecking=yes` unless the policy is
//! `openssh`; a changed or unknown host key and a refused login are fatal — never retried.

use std::ffi::OsString;
use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::time::Duration;

use super::remote::HostKeyPolicy;

/// Default SSH port when the target names none.
pub const DEFAULT_SSH_PORT: u16 = 22;
/// `ServerAliveInterval`: a dead path is noticed after interval × count (45 s, the reference's).
pub const ALIVE_INTERVAL_S: u32 = 15;
/// `ServerAliveCountMax`.
pub const ALIVE_COUNT: u32 = 3;
/// `ConnectTimeout` for the TCP connect to sshd.
pub const CONNECT_TIMEOUT_S: u32 = 5;
/// First reconnect delay.
pub const BACKOFF_INITIAL: Duration = Duration::from_millis(500);
/// Upper bound of the reconnect delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// `[user@]host[:port]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    pub user: Option<String>,
    /// A host name, an IPv4 address, or an IPv6 address (without brackets).
    pub host: String,
    pub port: Option<u16>,
}

/// Why a target string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a [user@]host[:port] SSH target (no part may start with '-'; letters, digits, '.', '_' and '-' only; IPv6 in brackets)")]
pub struct BadTarget(pub String);

fn name_ok(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

impl SshTarget {
    /// Parses `[user@]host[:port]` or `[user@][v6]:port`.
    pub fn parse(s: &str) -> Result<SshTarget, BadTarget> {
        let bad = || BadTarget(s.to_string());
        let (user, rest) = match s.rsplit_once('@') {
            Some((u, r)) => (Some(u), r),
            None => (None, s),
        };
        if user.is_some_and(|u| !name_ok(u)) {
            return Err(bad());
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (addr, after) = v6.split_once(']').ok_or_else(bad)?;
            addr.parse::<Ipv6Addr>().map_err(|_| bad())?;
            (addr, after.strip_prefix(':'))
        } else {
            match rest.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        if !host.contains(':') && !name_ok(host) {
            return Err(bad());
        }
        let port = match port {
            Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad)?),
            None if rest.starts_with('[') && !rest.ends_with(']') => return Err(bad()),
            None => None,
        };
        Ok(SshTarget {
            user: user.map(str::to_string),
            host: host.to_string(),
            port,
        })
    }

    /// How `known_hosts` names the host: `host`, or `[host]:port` off port 22.
    pub fn known_hosts_name(&self) -> String {
        match self.port {
            Some(p) if p != DEFAULT_SSH_PORT => format!("[{}]:{p}", self.host),
            _ => self.host.clone(),
        }
    }

    /// `user@host` for ssh's destination argument (the port goes in `-p`).
    pub fn destination(&self) -> String {
        match &self.user {
            Some(u) => format!("{u}@{}", self.host),
            None => self.host.clone(),
        }
    }
}

impl std::fmt::Display for SshTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        write!(f, "{host}")?;
        match self.port {
            Some(p) => write!(f, ":{p}"),
            None => Ok(()),
        }
    }
}

/// Everything a tunnel needs.
#[derive(Debug, Clone)]
pub struct TunnelSpec {
    pub target: SshTarget,
    /// `-i` (ssh expands `~` itself).
    pub identity: Option<PathBuf>,
    pub policy: HostKeyPolicy,
    /// The gateway's port on the SSH host (forwarded to its loopback).
    pub remote_port: u16,
}

/// The argument vector (after the program name) for a tunnel whose local end is
/// `127.0.0.1:local_port`. `-v` makes ssh confirm the listener it owns (see [`ready_port`]).
pub fn argv(spec: &TunnelSpec, local_port: u16) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec!["-N".into(), "-v".into(), "-L".into()];
    a.push(format!("127.0.0.1:{local_port}:127.0.0.1:{}", spec.remote_port).into());
    a.push("-p".into());
    a.push(
        spec.target
            .port
            .unwrap_or(DEFAULT_SSH_PORT)
            .to_string()
            .into(),
    );
    let mut opt = |o: String| {
        a.push("-o".into());
        a.push(o.into());
    };
    opt("ExitOnForwardFailure=yes".into());
    opt("BatchMode=yes".into());
    if spec.policy == HostKeyPolicy::Strict {
        opt("StrictHostKeyChecking=yes".into());
        opt("UpdateHostKeys=yes".into());
    }
    opt(format!("ConnectTimeout={CONNECT_TIMEOUT_S}"));
    opt(format!("ServerAliveInterval={ALIVE_INTERVAL_S}"));
    opt(format!("ServerAliveCountMax={ALIVE_COUNT}"));
    // The tunnel's lifetime must be this process's: no multiplexing through a master.
    opt("ControlMaster=no".into());
    opt("ControlPath=none".into());
    if let Some(id) = &spec.identity {
        a.push("-i".into());
        a.push(id.clone().into_os_string());
    }
    a.push("--".into());
    a.push(spec.target.destination().into());
    a
}

/// The local port of a `-v` line saying ssh itself listens on `127.0.0.1` — the proof that the
/// forward is ssh's and not another local process's.
pub fn ready_port(line: &str) -> Option<u16> {
    let rest = line
        .split_once("Local forwarding listening on 127.0.0.1 port ")?
        .1;
    rest.trim_end().trim_end_matches('.').parse().ok()
}

/// What an ended ssh run means.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SshFailure {
    /// The host key differs from `known_hosts`: fail closed, never retried.
    #[error("the SSH host key of {host} has CHANGED — refusing the tunnel (a changed key can mean a man in the middle); if the change is expected, verify the new key, then remove the old one with `ssh-keygen -R '{known}'`")]
    HostKeyChanged { host: String, known: String },
    /// No known host key (strict policy): never retried.
    #[error("the SSH host key of {host} is not known — refusing the tunnel; verify it and add it to known_hosts as '{known}' (e.g. connect once with ssh and compare the fingerprint), or set gateway.remote.sshHostKeyPolicy: \"openssh\" to follow your ssh config")]
    HostKeyUnknown { host: String, known: String },
    /// The login was refused: retrying would not help.
    #[error("SSH login to {host} refused ({detail}); check the user, gateway.remote.sshIdentity / --ssh-identity and the server's authorized_keys")]
    AuthRefused { host: String, detail: String },
    /// The local end could not be bound (someone else has the port): retry on another.
    #[error("the local tunnel port is taken: {0}")]
    LocalPortBusy(String),
    /// Anything else (refused, timed out, dropped): retried with backoff.
    #[error("{0}")]
    Transient(String),
}

impl SshFailure {
    /// Whether reconnecting could help.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            SshFailure::HostKeyChanged { .. }
                | SshFailure::HostKeyUnknown { .. }
                | SshFailure::AuthRefused { .. }
        )
    }
}

/// Reads ssh's non-debug stderr lines of one run of `t`.
pub fn classify(t: &SshTarget, lines: &[String]) -> SshFailure {
    let has = |needle: &str| lines.iter().any(|l| l.contains(needle));
    let (host, known) = (t.to_string(), t.known_hosts_name());
    if has("REMOTE HOST IDENTIFICATION HAS CHANGED") || (has("Host key for") && has("has changed"))
    {
        return SshFailure::HostKeyChanged { host, known };
    }
    if has("Host key verification failed") {
        return SshFailure::HostKeyUnknown { host, known };
    }
    if let Some(l) = lines.iter().find(|l| l.contains("Permission denied")) {
        let detail = l.trim().to_string();
        return SshFailure::AuthRefused { host, detail };
    }
    if has("Address already in use") || has("cannot listen to port") {
        return SshFailure::LocalPortBusy(last(lines));
    }
    SshFailure::Transient(last(lines))
}

fn last(lines: &[String]) -> String {
    lines
        .iter()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string())
        .unwrap_or_else(|| "ssh exited without a message".into())
}

/// Capped exponential reconnect delay with jitter: attempt n waits a random time in
/// `[d/2, d]`, `d = min(cap, initial · 2ⁿ)` — spread so many clients do not reconnect in step.
#[derive(Debug, Clone)]
pub struct Backoff {
    attempt: u32,
}

impl Backoff {
    pub fn new() -> Backoff {
        Backoff { attempt: 0 }
    }

    /// The next delay; `unit` in `[0, 1)` picks the point in the jitter window.
    pub fn next(&mut self, unit: f64) -> Duration {
        let exp = BACKOFF_INITIAL.saturating_mul(1u32 << self.attempt.min(16));
        let d = exp.min(BACKOFF_MAX);
        self.attempt = self.attempt.saturating_add(1);
        d.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
    }

    /// After a tunnel that stayed up: start from the initial delay again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}

#[cfg(test)]
#[path = "ssh_tests.rs"]
mod tests;
