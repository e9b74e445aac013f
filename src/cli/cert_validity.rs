//! Validity of the node's HTTPS certificate for `clawgate doctor` (issue 5 §7: "HTTPS certificates
//! available and valid"): a pure evaluation of the leaf that tailscaled's LocalAPI hands out
//! (`cert/<fqdn>?type=pair`) against the node's MagicDNS name and a clock.
//!
//! Invariants: pure (no I/O, the clock is an argument), so every outcome is unit-tested with
//! generated certificates; only the first PEM `CERTIFICATE` block (the leaf; tailscaled stores
//! leaf first, then intermediates) is judged; names match on the subjectAltName DNS entries only
//! (the subject CN is ignored, as browsers and rustls do), case-insensitively, with a wildcard
//! covering exactly one leftmost label (RFC 6125 §6.4.3); the chain is not verified — tailscaled
//! already did that when it cached the pair, and offline tests use a CA it does not know.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use x509_parser::extensions::GeneralName;
use x509_parser::pem::Pem;
use x509_parser::time::ASN1Time;

/// Seconds per day (days-left arithmetic).
const DAY_SECS: i64 = 86_400;

/// A leaf with less validity left than this fails doctor. Let's Encrypt certificates live 90 days
/// and tailscaled renews at 2/3 of the lifetime (30 days left, or earlier via ARI), so under 14
/// days left means renewal has been failing for two weeks; clients break when it runs out.
pub const CERT_MIN_VALIDITY: Duration = Duration::from_secs(14 * DAY_SECS as u64);

/// A usable leaf: when it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertValidity {
    /// `NotAfter` as seconds since the Unix epoch.
    pub not_after_unix: i64,
    /// `NotAfter` for people: `YYYY-MM-DD HH:MM UTC`.
    pub expires: String,
    /// Whole days from `now` to `NotAfter`.
    pub days_left: i64,
}

/// Why a leaf is not good enough.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertProblem {
    /// The answer holds no PEM `CERTIFICATE` block.
    #[error("no PEM certificate in tailscaled's answer")]
    NoCertificate,
    /// The leaf is not a parseable X.509 certificate.
    #[error("the certificate does not parse: {0}")]
    Unparsable(String),
    /// No subjectAltName DNS entry covers the name clients connect to.
    #[error("the certificate is for {names:?}, not {name}")]
    NameMismatch {
        /// The MagicDNS name that must be covered.
        name: String,
        /// The DNS names the leaf carries.
        names: Vec<String>,
    },
    /// `NotBefore` is in the future.
    #[error("the certificate is not valid before {not_before}")]
    NotYetValid {
        /// `NotBefore`, `YYYY-MM-DD HH:MM UTC`.
        not_before: String,
    },
    /// `NotAfter` has passed.
    #[error("the certificate expired on {expired}")]
    Expired {
        /// `NotAfter`, `YYYY-MM-DD HH:MM UTC`.
        expired: String,
    },
    /// Still valid, but for less than [`CERT_MIN_VALIDITY`].
    #[error("the certificate expires {} ({} days left, under the {}-day minimum): renewal is failing", .0.expires, .0.days_left, CERT_MIN_VALIDITY.as_secs() / DAY_SECS as u64)]
    ExpiringSoon(CertValidity),
}

impl CertProblem {
    /// The remedy, naming the command to run for `fqdn`.
    pub fn fix(&self, fqdn: &str) -> String {
        let reissue = format!("`tailscale cert {fqdn}`");
        match self {
            Self::NoCertificate | Self::Unparsable(_) => format!(
                "tailscaled's cached certificate is unusable: re-issue it with {reissue} and check its cert store (<statedir>/certs/)"
            ),
            Self::NameMismatch { .. } => format!(
                "the cached certificate belongs to another name: check that HTTPS certificates are enabled and the MagicDNS name is current (`tailscale status`), then {reissue}"
            ),
            Self::NotYetValid { .. } => {
                "check this machine's clock (`timedatectl`; enable NTP): the certificate is from the future".into()
            }
            Self::Expired { .. } => format!(
                "check that HTTPS certificates are enabled in the admin console and this node can reach Let's Encrypt, then {reissue}; also check the clock (`timedatectl`)"
            ),
            Self::ExpiringSoon(_) => format!(
                "force a renewal with {reissue} and read tailscaled's log for the ACME error; check that HTTPS certificates are still enabled and Let's Encrypt is reachable"
            ),
        }
    }
}

/// Judges the leaf (first `CERTIFICATE` block of `cert_pem`) for `name` at `now`.
pub fn evaluate_pem(
    cert_pem: &[u8],
    name: &str,
    now: SystemTime,
) -> Result<CertValidity, CertProblem> {
    let leaf = Pem::iter_from_buffer(cert_pem)
        .map_while(Result::ok)
        .find(|p| p.label == "CERTIFICATE")
        .ok_or(CertProblem::NoCertificate)?;
    evaluate_der(&leaf.contents, name, now)
}

/// Judges a DER leaf for `name` at `now`.
pub fn evaluate_der(der: &[u8], name: &str, now: SystemTime) -> Result<CertValidity, CertProblem> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| CertProblem::Unparsable(e.to_string()))?;
    let names = dns_names(&cert)?;
    if !names.iter().any(|n| covers(n, name)) {
        return Err(CertProblem::NameMismatch {
            name: name.to_owned(),
            names,
        });
    }
    let now = unix(now);
    let validity = cert.validity();
    if now < validity.not_before.timestamp() {
        return Err(CertProblem::NotYetValid {
            not_before: human(&validity.not_before),
        });
    }
    let not_after = validity.not_after.timestamp();
    if now > not_after {
        return Err(CertProblem::Expired {
            expired: human(&validity.not_after),
        });
    }
    let left = CertValidity {
        not_after_unix: not_after,
        expires: human(&validity.not_after),
        days_left: (not_after - now).div_euclid(DAY_SECS),
    };
    if u64::try_from(not_after - now).unwrap_or(0) < CERT_MIN_VALIDITY.as_secs() {
        return Err(CertProblem::ExpiringSoon(left));
    }
    Ok(left)
}

/// The subjectAltName DNS entries (none when the extension is absent).
fn dns_names(
    cert: &x509_parser::certificate::X509Certificate<'_>,
) -> Result<Vec<String>, CertProblem> {
    let san = cert
        .subject_alternative_name()
        .map_err(|e| CertProblem::Unparsable(format!("subjectAltName: {e}")))?;
    Ok(san
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .filter_map(|g| match g {
                    GeneralName::DNSName(n) => Some((*n).to_owned()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default())
}

/// Whether SAN entry `pattern` covers host `name` (trailing dots ignored, ASCII case-insensitive,
/// `*.` matching exactly one non-empty leftmost label).
fn covers(pattern: &str, name: &str) -> bool {
    let pattern = pattern.trim_end_matches('.');
    let name = name.trim_end_matches('.');
    match pattern.strip_prefix("*.") {
        Some(parent) => name
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest.eq_ignore_ascii_case(parent)),
        None => !name.is_empty() && pattern.eq_ignore_ascii_case(name),
    }
}

/// Seconds since the epoch (negative before it).
fn unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// `YYYY-MM-DD HH:MM UTC`.
fn human(t: &ASN1Time) -> String {
    let utc = ASN1Time::from_timestamp(t.timestamp())
        .unwrap_or(*t)
        .to_datetime();
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        utc.year(),
        u8::from(utc.month()),
        utc.day(),
        utc.hour(),
        utc.minute()
    )
}

#[cfg(test)]
#[path = "cert_validity_tests.rs"]
mod tests;
