//! Wide-area DNS-SD zone content (spec discovery.md §6.2, §6.3): one model, rendered both as
//! OpenClaw's zone-file text and as hickory records (see `server.rs`).
//!
//! Invariants: owner labels are LDH (`[a-z0-9-]`, ≤ 63) so BIND, CoreDNS and hickory agree;
//! TXT strings are escaped (`"`, `\`, non-printables as decimal `\DDD`); the file is rewritten only
//! when the content hash (computed with the serial replaced by a placeholder) changes, and the
//! serial is `YYYYMMDDnn`, incremented within the same UTC day.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

/// Zone TTL (`$TTL 60`, also SOA minimum): short, so renames propagate quickly.
pub const ZONE_TTL: u32 = 60;
/// DNS-SD service label pair under the domain.
pub const SERVICE_LABELS: [&str; 2] = ["_openclaw-gw", "_tcp"];
/// Placeholder substituted for the serial when hashing.
const SERIAL_PLACEHOLDER: &str = "SERIAL";
/// Hash header line prefix (OpenClaw's writer).
const HASH_PREFIX: &str = "; openclaw-content-hash: ";

/// Everything published in the zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneSpec {
    /// Domain, lower case, no trailing dot.
    pub domain: String,
    /// Instance label (LDH).
    pub instance: String,
    /// Host label (LDH) of the SRV target.
    pub host: String,
    /// SRV port: the gateway port, or the secure route's (443 for Serve).
    pub port: u16,
    /// SRV target outside the zone (an LDH FQDN, no trailing dot): the MagicDNS name while a
    /// Serve/Funnel route is the way in; `None` = `<host>.<domain>`.
    pub srv_target: Option<String>,
    /// TXT pairs in order.
    pub txt: Vec<(String, String)>,
    /// Tailnet IPv4 (required; also `ns1`).
    pub v4: Ipv4Addr,
    /// Tailnet IPv6 addresses.
    pub v6: Vec<Ipv6Addr>,
}

impl ZoneSpec {
    /// `<instance>._openclaw-gw._tcp` relative owner.
    pub fn instance_owner(&self) -> String {
        format!("{}.{}", self.instance, SERVICE_LABELS.join("."))
    }
}

/// Whether `name` is a safe absolute SRV target: LDH labels (1–63 bytes, no leading or trailing
/// `-`), at least two, ≤ 253 bytes — nothing that could break zone-file syntax.
pub fn ldh_fqdn(name: &str) -> bool {
    let labels: Vec<&str> = name.split('.').collect();
    name.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// Escape one TXT character-string for zone-file syntax.
pub fn quote_txt(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for b in s.bytes() {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(b as char);
            }
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\{b:03}");
            }
        }
    }
    out.push('"');
    out
}

/// Render the zone text with the given serial (or the placeholder).
pub fn render(z: &ZoneSpec, serial: Option<u32>) -> String {
    let serial = serial.map_or_else(|| SERIAL_PLACEHOLDER.to_string(), |s| s.to_string());
    let svc = SERVICE_LABELS.join(".");
    let inst = z.instance_owner();
    let mut t = String::new();
    let _ = writeln!(t, "$ORIGIN {}.", z.domain);
    let _ = writeln!(t, "$TTL {ZONE_TTL}");
    let _ = writeln!(
        t,
        "@ IN SOA ns1 hostmaster {serial} 7200 3600 1209600 {ZONE_TTL}"
    );
    let _ = writeln!(t, "@ IN NS ns1");
    let _ = writeln!(t, "ns1 IN A {}", z.v4);
    let _ = writeln!(t, "{} IN A {}", z.host, z.v4);
    for v6 in &z.v6 {
        let _ = writeln!(t, "{} IN AAAA {v6}", z.host);
    }
    let _ = writeln!(t, "{svc} IN PTR {inst}");
    let target = z
        .srv_target
        .as_ref()
        .map_or_else(|| z.host.clone(), |fqdn| format!("{fqdn}."));
    let _ = writeln!(t, "{inst} IN SRV 0 0 {} {target}", z.port);
    let strings: Vec<String> = z
        .txt
        .iter()
        .map(|(k, v)| quote_txt(&format!("{k}={v}")))
        .collect();
    let _ = writeln!(t, "{inst} IN TXT {}", strings.join(" "));
    t
}

/// 32-bit FNV-1a, printed as 8 hex digits.
pub fn fnv1a_hex(s: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{h:08x}")
}

/// UTC date as `YYYYMMDD` for a Unix time (days-from-civil inverse, Howard Hinnant).
pub fn yyyymmdd(unix_secs: u64) -> u32 {
    let z = (unix_secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y * 10_000 + m * 100 + d) as u32
}

/// Next serial given the previous one and today's date: same day ⇒ +1 (capped at `nn = 99`).
pub fn next_serial(prev: Option<u32>, today: u32) -> u32 {
    match prev {
        Some(p) if p / 100 == today => (p + 1).min(today * 100 + 99),
        Some(p) if p / 100 > today => p + 1, // clock went back: stay monotonic
        _ => today * 100 + 1,
    }
}

/// Parse `(hash, serial)` from an existing file written by [`write_if_changed`].
fn parse_existing(text: &str) -> (Option<String>, Option<u32>) {
    let hash = text
        .lines()
        .find_map(|l| l.strip_prefix(HASH_PREFIX))
        .map(|h| h.trim().to_string());
    let serial = text
        .lines()
        .find(|l| l.starts_with("@ IN SOA"))
        .and_then(|l| l.split_whitespace().nth(5))
        .and_then(|s| s.parse().ok());
    (hash, serial)
}

/// Outcome of [`write_if_changed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// Zone file path.
    pub path: PathBuf,
    /// Serial in effect.
    pub serial: u32,
    /// Whether the file was (re)written.
    pub changed: bool,
}

/// `<state_dir>/dns/<domain>.db`.
pub fn zone_path(state_dir: &Path, domain: &str) -> PathBuf {
    state_dir.join("dns").join(format!("{domain}.db"))
}

/// Write the zone file unless its content hash is unchanged. Atomic (temp file + rename).
pub fn write_if_changed(state_dir: &Path, z: &ZoneSpec, unix_now: u64) -> std::io::Result<Written> {
    let path = zone_path(state_dir, &z.domain);
    let hash = fnv1a_hex(&render(z, None));
    let (old_hash, old_serial) = std::fs::read_to_string(&path)
        .map(|t| parse_existing(&t))
        .unwrap_or((None, None));
    if let (Some(h), Some(s)) = (&old_hash, old_serial) {
        if *h == hash {
            return Ok(Written {
                path,
                serial: s,
                changed: false,
            });
        }
    }
    let serial = next_serial(old_serial, yyyymmdd(unix_now));
    let text = format!("{HASH_PREFIX}{hash}\n{}", render(z, Some(serial)));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("db.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, &path)?;
    Ok(Written {
        path,
        serial,
        changed: true,
    })
}

#[cfg(test)]
#[path = "zone_tests.rs"]
mod tests;
