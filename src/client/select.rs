//! Transport selection — the seed's four steps (transports.md “Client transport selection
//! policy”): (1) a paired direct endpoint that is configured and reachable; (2) otherwise
//! discovery on `local.` and the wide-area domain, a “pick a gateway” choice saved as the direct
//! endpoint; (3) otherwise a configured tailnet name, direct and secure only; (4) otherwise SSH.
//!
//! Owns [`select`] and its [`Report`]. Invariants: every step says why it was skipped or failed;
//! routing comes from the URL or SRV + A/AAAA, never TXT; plaintext `ws://` is used only when
//! every address of the host is loopback or private LAN (discovery.md §5), judged on the
//! *effective* URL (after an SSH tunnel that is loopback, threats.md SSH-2); a TLS trust failure
//! (pin mismatch, unconfirmed first use) stops the selection — it never falls through to a
//! weaker step; reachability probes send no credential (threats.md TLS-7).

use std::time::Duration;

use serde::Serialize;

use super::candidates::{self, Candidate};
use super::endpoints::{self, Origin, Saved, SavedEndpoint};
use super::probe::{probe, Probe};
use super::remote::TransportPolicy;
use super::TlsOpts;

/// What the caller asks for.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// `--url`: the only candidate (no fallback — the user said where).
    pub explicit_url: Option<String>,
    /// `gateway.remote.url`.
    pub configured_url: Option<String>,
    /// `gateway.remote.tlsFingerprint` (for the configured URL only).
    pub configured_fingerprint: Option<String>,
    /// Saved endpoints (`endpoints.json`).
    pub saved: Saved,
    /// `--tailnet` (else the saved one).
    pub tailnet: Option<String>,
    pub transport: TransportPolicy,
    /// Wide-area DNS-SD domains to browse besides `local.`.
    pub domains: Vec<String>,
    /// Browse at all (`--no-discover` turns it off).
    pub discover: bool,
    pub discover_timeout: Duration,
    /// `--pick N` (1-based) for scripts.
    pub pick: Option<usize>,
    /// A terminal may be asked to pick.
    pub interactive: bool,
    /// Gateway port for tailnet direct TLS (`remotePort`).
    pub remote_port: u16,
    /// The SSH tunnel for step 4 (`--ssh` or `gateway.remote.sshTarget`).
    pub ssh: Option<super::ssh::TunnelSpec>,
    /// Client state dir: a discovery choice is saved below it.
    pub state_dir: Option<std::path::PathBuf>,
}

/// How one step went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Chosen,
    Skipped,
    Failed,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub step: u8,
    pub name: &'static str,
    pub outcome: Outcome,
    pub why: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// The steps taken so far.
pub type Report = Vec<StepReport>;

/// A chosen direct endpoint.
#[derive(Debug, Clone)]
pub struct Selected {
    pub step: u8,
    pub url: String,
    pub tls: TlsOpts,
}

/// Why no direct endpoint was chosen.
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    /// Steps 1–3 found nothing usable; the caller may try SSH (step 4).
    #[error("no direct endpoint is reachable")]
    NoDirect,
    /// A TLS trust decision failed: selection stops (never falls through).
    #[error("{0}")]
    Trust(String),
    /// Discovery found gateways but nobody picked one.
    #[error("discovery found {count} gateway(s); pick one with --pick N (see the list)")]
    NeedPick { count: usize },
    /// The saved endpoints file is unusable.
    #[error("{0}")]
    Saved(#[from] endpoints::EndpointsError),
}

pub(crate) const NAMES: [&str; 4] = ["paired endpoint", "discovery", "tailnet", "ssh"];

pub(crate) fn line(
    report: &mut Report,
    step: u8,
    outcome: Outcome,
    why: impl Into<String>,
    url: Option<&str>,
) {
    report.push(StepReport {
        step,
        name: NAMES[usize::from(step - 1)],
        outcome,
        why: why.into(),
        url: url.map(str::to_string),
    });
}

/// Runs steps 1–3; `Err(NoDirect)` hands over to SSH. `base` carries the TLS flags and state dir.
pub async fn select(
    inp: &Inputs,
    base: &TlsOpts,
    timeout: Duration,
    report: &mut Report,
) -> Result<Selected, SelectError> {
    if inp.transport == TransportPolicy::Ssh {
        for step in 1..=3 {
            line(
                report,
                step,
                Outcome::Skipped,
                "gateway.remote.transport is \"ssh\"",
                None,
            );
        }
        return Err(SelectError::NoDirect);
    }
    if let Some(url) = &inp.explicit_url {
        let c = Candidate::plain(url, None);
        return match try_candidate(1, &c, base, timeout, report).await? {
            Some(s) => Ok(s),
            None => Err(SelectError::NoDirect),
        };
    }
    if let Some(s) = step_paired(inp, base, timeout, report).await? {
        return Ok(s);
    }
    if let Some(s) = step_discovery(inp, base, timeout, report).await? {
        return Ok(s);
    }
    if let Some(s) = step_tailnet(inp, base, timeout, report).await? {
        return Ok(s);
    }
    Err(SelectError::NoDirect)
}

/// Probes one candidate; `Ok(None)` = unreachable or not allowed (already reported).
async fn try_candidate(
    step: u8,
    c: &Candidate,
    base: &TlsOpts,
    timeout: Duration,
    report: &mut Report,
) -> Result<Option<Selected>, SelectError> {
    let url = match candidates::vet(&c.url).await {
        Ok(u) => u,
        Err(why) => {
            line(report, step, Outcome::Failed, why, Some(&c.url));
            return Ok(None);
        }
    };
    let tls = c.tls_opts(base);
    let (outcome, why) = match probe(&url, &tls, timeout).await {
        Probe::Reachable => (Outcome::Chosen, format!("{} is reachable", c.label)),
        Probe::Unreachable(why) => (Outcome::Failed, format!("{}: {why}", c.label)),
        Probe::Untrusted(why) => {
            line(report, step, Outcome::Failed, why.clone(), Some(&url));
            return Err(SelectError::Trust(why));
        }
    };
    line(report, step, outcome, why, Some(&url));
    Ok((outcome == Outcome::Chosen).then_some(Selected { step, url, tls }))
}

async fn step_paired(
    inp: &Inputs,
    base: &TlsOpts,
    timeout: Duration,
    report: &mut Report,
) -> Result<Option<Selected>, SelectError> {
    let mut list = Vec::new();
    if let Some(d) = &inp.saved.direct {
        list.push(Candidate::saved(d));
    }
    if let Some(u) = &inp.configured_url {
        let mut c = Candidate::plain(u, inp.configured_fingerprint.clone());
        c.label = "gateway.remote.url".into();
        list.push(c);
    }
    if list.is_empty() {
        line(
            report,
            1,
            Outcome::Skipped,
            "no saved endpoint and no gateway.remote.url",
            None,
        );
    }
    for c in &list {
        if let Some(s) = try_candidate(1, c, base, timeout, report).await? {
            return Ok(Some(s));
        }
    }
    Ok(None)
}

async fn step_discovery(
    inp: &Inputs,
    base: &TlsOpts,
    timeout: Duration,
    report: &mut Report,
) -> Result<Option<Selected>, SelectError> {
    if !inp.discover {
        line(
            report,
            2,
            Outcome::Skipped,
            "discovery turned off (--no-discover)",
            None,
        );
        return Ok(None);
    }
    let (found, errors) = candidates::discover(&inp.domains, inp.discover_timeout).await;
    let usable: Vec<&Candidate> = found.iter().filter(|c| c.unusable.is_none()).collect();
    if usable.is_empty() {
        let why = candidates::nothing_found(&found, &errors, &inp.domains);
        line(report, 2, Outcome::Skipped, why, None);
        return Ok(None);
    }
    let Some(c) = pick(inp, &usable).await? else {
        line(report, 2, Outcome::Skipped, "no gateway picked", None);
        return Ok(None);
    };
    let Some(s) = try_candidate(2, c, base, timeout, report).await? else {
        return Ok(None);
    };
    if let Some(dir) = &inp.state_dir {
        let mut ep = SavedEndpoint::new(&s.url, c.server_name.clone(), Origin::Discovery);
        ep.name = Some(c.label.clone());
        endpoints::save_direct(dir, ep)?;
    }
    Ok(Some(s))
}

/// The user's choice among `usable` (`--pick`, a prompt, or an error listing them).
async fn pick<'a>(
    inp: &Inputs,
    usable: &[&'a Candidate],
) -> Result<Option<&'a Candidate>, SelectError> {
    let nth = |n: usize| n.checked_sub(1).and_then(|i| usable.get(i)).copied();
    let need = SelectError::NeedPick {
        count: usable.len(),
    };
    crate::errln!("gateways found:");
    for (i, c) in usable.iter().enumerate() {
        crate::errln!("  {}. {}", i + 1, c.describe());
    }
    if let Some(n) = inp.pick {
        return nth(n).map(Some).ok_or(need);
    }
    if !inp.interactive {
        return Err(need);
    }
    let answer = candidates::ask("use which gateway? (number, empty = none): ").await;
    Ok(answer.trim().parse::<usize>().ok().and_then(nth))
}

async fn step_tailnet(
    inp: &Inputs,
    base: &TlsOpts,
    timeout: Duration,
    report: &mut Report,
) -> Result<Option<Selected>, SelectError> {
    let Some(name) = inp.tailnet.as_ref().or(inp.saved.tailnet.as_ref()) else {
        line(
            report,
            3,
            Outcome::Skipped,
            "no tailnet name configured (--tailnet)",
            None,
        );
        return Ok(None);
    };
    for c in candidates::tailnet(name, inp.remote_port) {
        if let Some(s) = try_candidate(3, &c, base, timeout, report).await? {
            return Ok(Some(s));
        }
    }
    Ok(None)
}

/// Why step 4 may not run (`None`: it may).
pub fn ssh_refused(inp: &Inputs) -> Option<&'static str> {
    if inp.transport == TransportPolicy::Direct {
        Some("gateway.remote.transport is \"direct\"")
    } else if inp.explicit_url.is_some() {
        Some("--url names the endpoint; no fallback")
    } else if inp.ssh.is_none() {
        Some("no SSH target configured (--ssh or gateway.remote.sshTarget)")
    } else {
        None
    }
}
