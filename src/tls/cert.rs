//! The gateway's certificate pair on disk: loading a PEM pair (checking that the key belongs to
//! the leaf), generating a self-signed ECDSA P-256 pair with SANs, and deliberate rotation.
//!
//! Invariants: [`ensure`] never re-issues an existing certificate (a changed address must not
//! break a client's pin); generation writes the key, then the certificate, each atomically with
//! mode 0600 (temp + fsync + rename, `crate::state::write_atomic`); [`rotate`] keeps the private
//! key unless asked for a new one, so SPKI pins survive (threats.md TLS-3); a pair whose key does
//! not match its leaf is an error, never served.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::sign::CertifiedKey;

use super::{fingerprint, provider, TlsError, TlsSettings};
use crate::state::{write_atomic, SECRET_FILE_MODE};

/// Validity of a generated certificate (the reference's `-days 3650`).
const VALIDITY_DAYS: u64 = 3650;
/// Subject common name of a generated certificate.
const COMMON_NAME: &str = "clawgate-gateway";

/// A pair ready to serve, with the leaf's fingerprint.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub certified: Arc<CertifiedKey>,
    pub fingerprint: String,
}

/// Names a generated certificate is valid for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
}

impl Names {
    /// `localhost`, `127.0.0.1`, `::1`, the host name (and `<host>.local`), every interface
    /// address (LAN and, with kernel-mode Tailscale, tailnet), plus `extra_dns` / `extra_ips`
    /// (the MagicDNS name and tailnet addresses when known).
    pub fn discover(extra_dns: &[String], extra_ips: &[IpAddr]) -> Names {
        let mut n = Names {
            dns: vec!["localhost".into()],
            ips: vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ],
        };
        if let Ok(h) = crate::util::hostname() {
            if !h.is_empty() && h != "localhost" {
                n.dns.push(format!("{h}.local"));
                n.dns.push(h);
            }
        }
        let ifaces = if_addrs::get_if_addrs().unwrap_or_default();
        let lan = ifaces.iter().map(|i| i.ip()).filter(|ip| {
            !ip.is_loopback() && !matches!(ip, IpAddr::V6(v6) if v6.is_unicast_link_local())
        });
        n.ips.extend(lan.chain(extra_ips.iter().copied()));
        n.dns.extend(
            extra_dns
                .iter()
                .map(|d| d.trim_end_matches('.').to_ascii_lowercase()),
        );
        n.ips.dedup();
        let mut seen = std::collections::HashSet::new();
        n.ips.retain(|ip| seen.insert(*ip));
        let mut seen = std::collections::HashSet::new();
        n.dns.retain(|d| !d.is_empty() && seen.insert(d.clone()));
        n
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn invalid(path: &Path, problem: impl Into<String>, fix: &'static str) -> TlsError {
    TlsError::Invalid {
        path: path.to_path_buf(),
        problem: problem.into(),
        fix,
    }
}

/// Every certificate in a PEM file (at least one).
pub fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let chain: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            invalid(
                path,
                format!("not a PEM certificate: {e}"),
                "install a PEM (BEGIN CERTIFICATE) file",
            )
        })?;
    if chain.is_empty() {
        return Err(invalid(
            path,
            "no certificate in the file",
            "install a PEM (BEGIN CERTIFICATE) file",
        ));
    }
    Ok(chain)
}

/// The fingerprint of the leaf in `path`.
pub fn leaf_fingerprint(path: &Path) -> Result<String, TlsError> {
    Ok(fingerprint(&read_chain(path)?[0]))
}

/// Loads and checks the pair `t` names (chain = leaf file, then `caPath`).
pub fn load(t: &TlsSettings) -> Result<Loaded, TlsError> {
    let mut chain = read_chain(&t.cert_path)?;
    if let Some(ca) = &t.ca_path {
        chain.extend(read_chain(ca)?);
    }
    let pem = read(&t.key_path)?;
    let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        invalid(
            &t.key_path,
            format!("not a PEM private key: {e}"),
            "install a PKCS#8, SEC1 or PKCS#1 PEM key",
        )
    })?;
    let fp = fingerprint(&chain[0]);
    let certified = CertifiedKey::from_der(chain, key, &provider()).map_err(|e| match e {
        tokio_rustls::rustls::Error::InconsistentKeys(k) => TlsError::Mismatch(format!("{k:?}")),
        other => TlsError::Rustls(other),
    })?;
    Ok(Loaded {
        certified: Arc::new(certified),
        fingerprint: fp,
    })
}

/// Loads the pair, generating it first when it is missing and `autoGenerate` allows.
/// Returns whether a new certificate was written.
pub fn ensure(t: &TlsSettings, names: &Names) -> Result<(Loaded, bool), TlsError> {
    if t.cert_path.exists() && t.key_path.exists() {
        let loaded = load(t)?;
        if t.auto_generate && !has_sans(&t.cert_path) {
            return upgrade_sanless(t, names, loaded);
        }
        return Ok((loaded, false));
    }
    if !t.auto_generate {
        return Err(TlsError::Missing(t.cert_path.clone()));
    }
    // A key without a certificate is kept (its SPKI may be pinned); a certificate without its
    // key is useless and replaced.
    let key = existing_key(t)?;
    issue(t, names, key)?;
    Ok((load(t)?, true))
}

/// Whether the leaf in `path` carries a subjectAltName extension.
fn has_sans(path: &Path) -> bool {
    let Ok(chain) = read_chain(path) else {
        return true;
    };
    x509_parser::parse_x509_certificate(&chain[0])
        .ok()
        .and_then(|(_, c)| c.subject_alternative_name().ok().flatten().map(|_| ()))
        .is_some()
}

/// Suffix of the copy a SAN upgrade keeps of the certificate it replaced.
pub const SANLESS_BACKUP: &str = "san-less.bak";

/// threats.md TLS-1: a SAN-less certificate (the reference's CN-only one) is re-issued with SANs,
/// keeping its key when it can be reused, transactionally — the old certificate is copied to
/// `<cert>.san-less.bak` first and put back when the new pair does not load (the old pair is then
/// served). The only implicit re-issue: strict clients cannot use a SAN-less certificate at all.
fn upgrade_sanless(
    t: &TlsSettings,
    names: &Names,
    old: Loaded,
) -> Result<(Loaded, bool), TlsError> {
    let backup = t.cert_path.with_extension(format!("pem.{SANLESS_BACKUP}"));
    let old_pem = read(&t.cert_path)?;
    let write = |path: &Path, data: &[u8]| {
        write_atomic(path, data, SECRET_FILE_MODE).map_err(|source| TlsError::Write {
            path: path.to_path_buf(),
            source,
        })
    };
    write(&backup, &old_pem)?;
    let key = existing_key(t).ok().flatten();
    // A new key must not strand the old certificate without its key: keep both for the rollback.
    let old_key = match key {
        Some(_) => None,
        None => {
            let pem = read(&t.key_path)?;
            write(
                &t.key_path.with_extension(format!("pem.{SANLESS_BACKUP}")),
                &pem,
            )?;
            Some(pem)
        }
    };
    match issue(t, names, key).and_then(|()| load(t)) {
        Ok(new) => {
            tracing::warn!(old = %old.fingerprint, new = %new.fingerprint, backup = %backup.display(), "the TLS certificate had no subjectAltName (strict clients refuse it): re-issued with SANs; pinned clients need the new fingerprint");
            Ok((new, true))
        }
        Err(e) => {
            tracing::error!("re-issuing the SAN-less TLS certificate failed, keeping it: {e}");
            if let Some(pem) = old_key {
                write(&t.key_path, &pem)?;
            }
            write(&t.cert_path, &old_pem)?;
            Ok((old, false))
        }
    }
}

/// Old and new fingerprint of a rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    pub old: Option<String>,
    pub new: String,
    pub new_key: bool,
}

/// Re-issues the certificate (same key unless `new_key` or there is none).
pub fn rotate(t: &TlsSettings, names: &Names, new_key: bool) -> Result<Rotated, TlsError> {
    let old = leaf_fingerprint(&t.cert_path).ok();
    let key = if new_key { None } else { existing_key(t)? };
    let fresh = key.is_none();
    issue(t, names, key)?;
    Ok(Rotated {
        old,
        new: load(t)?.fingerprint,
        new_key: fresh,
    })
}

fn existing_key(t: &TlsSettings) -> Result<Option<rcgen::KeyPair>, TlsError> {
    if !t.key_path.exists() {
        return Ok(None);
    }
    let pem = String::from_utf8_lossy(&read(&t.key_path)?).into_owned();
    rcgen::KeyPair::from_pem(&pem).map(Some).map_err(|e| {
        invalid(
            &t.key_path,
            format!("cannot reuse the key: {e}"),
            "move the key away to generate a new pair",
        )
    })
}

/// Writes a new self-signed certificate for `names` (and the key when it is new).
fn issue(t: &TlsSettings, names: &Names, key: Option<rcgen::KeyPair>) -> Result<(), TlsError> {
    let gen = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let (key, key_is_new) = match key {
        Some(k) => (k, false),
        None => (
            rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(gen)?,
            true,
        ),
    };
    let cert = params(names)?.self_signed(&key).map_err(gen)?;
    let write = |path: &Path, data: &[u8]| {
        write_atomic(path, data, SECRET_FILE_MODE).map_err(|source| TlsError::Write {
            path: path.to_path_buf(),
            source,
        })
    };
    if key_is_new {
        write(&t.key_path, key.serialize_pem().as_bytes())?;
    }
    write(&t.cert_path, cert.pem().as_bytes())
}

fn params(names: &Names) -> Result<rcgen::CertificateParams, TlsError> {
    let mut p = rcgen::CertificateParams::default();
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, COMMON_NAME);
    p.distinguished_name = dn;
    for d in &names.dns {
        if let Ok(v) = rcgen::string::Ia5String::try_from(d.as_str()) {
            p.subject_alt_names.push(rcgen::SanType::DnsName(v));
        }
    }
    p.subject_alt_names
        .extend(names.ips.iter().map(|ip| rcgen::SanType::IpAddress(*ip)));
    p.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let mut serial = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut serial);
    serial[0] &= 0x7f;
    p.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
        / 86_400;
    let (y, m, d) = civil(now.saturating_sub(1));
    p.not_before = rcgen::date_time_ymd(y, m, d);
    let (y, m, d) = civil(now + VALIDITY_DAYS);
    p.not_after = rcgen::date_time_ymd(y, m, d);
    Ok(p)
}

/// (year, month, day) of day `days` since 1970-01-01 (Howard Hinnant's civil-from-days).
fn civil(days: u64) -> (i32, u8, u8) {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let y = (yoe + era * 400 + i64::from(m <= 2)) as i32;
    (y, m, d)
}

#[cfg(test)]
#[path = "cert_tests.rs"]
mod tests;
