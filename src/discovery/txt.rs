//! TXT records for `_openclaw-gw._tcp` (spec discovery.md §1.4 LAN, §6.2/§6.3 wide-area).
//!
//! Invariants: keys and their order are exactly the spec's; `tailnetDns`, `sshPort` and `cliPath`
//! appear only in `full` mode; `lanHost` only on LAN mDNS; `gatewayTlsSha256` only as 64 lower-case
//! hex digits; no `key=value` string exceeds 255 bytes (an oversized optional value is dropped,
//! never truncated into something misleading).

use super::config::MdnsMode;

/// RFC 6763 §6.1: each TXT string is a single length-prefixed byte string.
pub const MAX_TXT_ENTRY: usize = 255;

/// Everything the TXT builders need, already resolved from config, env and runtime state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxtInput {
    /// Minimal / full (off never reaches the builders).
    pub mode: MdnsMode,
    /// Gateway port (SRV port too).
    pub gateway_port: u16,
    /// Instance display name (already stripped of ` (OpenClaw)`).
    pub display_name: String,
    /// mDNS host label, without `.local`.
    pub host_label: String,
    /// Gateway TLS enabled.
    pub tls: bool,
    /// SHA-256 of the certificate DER, any case, colons allowed (normalized here).
    pub tls_sha256: Option<String>,
    /// Bind host is not loopback.
    pub direct_reachable: bool,
    /// MagicDNS name (full mode only).
    pub tailnet_dns: Option<String>,
    /// `sshPort` (full mode only).
    pub ssh_port: u16,
    /// `cliPath` (full mode only).
    pub cli_path: Option<String>,
}

/// Normalize a fingerprint to 64 lower-case hex digits, or `None` if it is not a SHA-256.
pub fn normalize_sha256(fp: &str) -> Option<String> {
    let hex: String = fp
        .trim()
        .chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

fn push(out: &mut Vec<(String, String)>, key: &str, value: impl Into<String>) {
    let value = value.into();
    if key.len() + 1 + value.len() <= MAX_TXT_ENTRY {
        out.push((key.to_string(), value));
    } else {
        tracing::warn!(key, "TXT value longer than 255 bytes; omitted");
    }
}

fn push_tls_and_reach(out: &mut Vec<(String, String)>, t: &TxtInput) {
    if t.tls {
        push(out, "gatewayTls", "1");
        if let Some(fp) = t.tls_sha256.as_deref().and_then(normalize_sha256) {
            push(out, "gatewayTlsSha256", fp);
        }
    }
    if t.direct_reachable {
        push(out, "gatewayDirectReachable", "1");
    }
}

fn push_full(out: &mut Vec<(String, String)>, t: &TxtInput) {
    if t.mode != MdnsMode::Full {
        return;
    }
    if let Some(dns) = t.tailnet_dns.as_deref().filter(|d| !d.is_empty()) {
        push(out, "tailnetDns", dns.trim_end_matches('.'));
    }
    push(out, "sshPort", t.ssh_port.to_string());
    if let Some(p) = t.cli_path.as_deref().filter(|p| !p.is_empty()) {
        push(out, "cliPath", p);
    }
}

/// TXT for the LAN beacon, in the order of the spec's key table.
pub fn lan_txt(t: &TxtInput) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(11);
    push(&mut out, "role", "gateway");
    push(&mut out, "gatewayPort", t.gateway_port.to_string());
    push(&mut out, "lanHost", format!("{}.local", t.host_label));
    push(&mut out, "displayName", t.display_name.clone());
    push(&mut out, "transport", "gateway");
    push_tls_and_reach(&mut out, t);
    push_full(&mut out, t);
    out
}

/// TXT for the wide-area zone, in OpenClaw's writer order; no `lanHost`.
pub fn wide_area_txt(t: &TxtInput) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(10);
    push(&mut out, "displayName", t.display_name.clone());
    push(&mut out, "role", "gateway");
    push(&mut out, "transport", "gateway");
    push(&mut out, "gatewayPort", t.gateway_port.to_string());
    push_tls_and_reach(&mut out, t);
    push_full(&mut out, t);
    out
}

/// Total RDATA size (each string plus its length byte), for the size budget check.
pub fn rdata_len(txt: &[(String, String)]) -> usize {
    txt.iter().map(|(k, v)| 1 + k.len() + 1 + v.len()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(mode: MdnsMode) -> TxtInput {
        TxtInput {
            mode,
            gateway_port: 18789,
            display_name: "Studio".into(),
            host_label: "studio-openclaw".into(),
            tls: true,
            tls_sha256: Some("AB:".repeat(31) + "CD"),
            direct_reachable: true,
            tailnet_dns: Some("studio.tail1234.ts.net.".into()),
            ssh_port: 22,
            cli_path: Some("/usr/local/bin/clawgate".into()),
        }
    }

    fn keys(v: &[(String, String)]) -> Vec<&str> {
        v.iter().map(|(k, _)| k.as_str()).collect()
    }

    #[test]
    fn minimal_lan_keys() {
        let t = lan_txt(&input(MdnsMode::Minimal));
        assert_eq!(
            keys(&t),
            [
                "role",
                "gatewayPort",
                "lanHost",
                "displayName",
                "transport",
                "gatewayTls",
                "gatewayTlsSha256",
                "gatewayDirectReachable"
            ]
        );
        assert_eq!(t[2].1, "studio-openclaw.local");
        assert_eq!(t[6].1, "ab".repeat(31) + "cd");
        assert!(rdata_len(&t) < 400, "{}", rdata_len(&t)); // below the unicast comfort zone
    }

    #[test]
    fn full_adds_recon_keys_and_plain_omits_tls() {
        let t = lan_txt(&input(MdnsMode::Full));
        assert_eq!(keys(&t)[8..], ["tailnetDns", "sshPort", "cliPath"]);
        assert_eq!(t[8].1, "studio.tail1234.ts.net");
        let mut plain = input(MdnsMode::Minimal);
        plain.tls = false;
        plain.direct_reachable = false;
        assert_eq!(
            keys(&lan_txt(&plain)),
            ["role", "gatewayPort", "lanHost", "displayName", "transport"]
        );
    }

    #[test]
    fn wide_area_order_without_lanhost() {
        let t = wide_area_txt(&input(MdnsMode::Full));
        assert_eq!(
            keys(&t),
            [
                "displayName",
                "role",
                "transport",
                "gatewayPort",
                "gatewayTls",
                "gatewayTlsSha256",
                "gatewayDirectReachable",
                "tailnetDns",
                "sshPort",
                "cliPath"
            ]
        );
    }

    #[test]
    fn bad_fingerprint_and_oversize_values_are_dropped() {
        let mut i = input(MdnsMode::Full);
        i.tls_sha256 = Some("nothex".into());
        i.cli_path = Some("/".repeat(300));
        let t = lan_txt(&i);
        assert!(!keys(&t).contains(&"gatewayTlsSha256"));
        assert!(!keys(&t).contains(&"cliPath"));
        assert!(keys(&t).contains(&"gatewayTls"));
        assert_eq!(normalize_sha256(&"F".repeat(64)), Some("f".repeat(64)));
    }
}
