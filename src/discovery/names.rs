//! Instance names and host labels for the beacon (spec discovery.md §1.2, §1.3, §6.3).
//!
//! Invariants: an instance name is at most 63 UTF-8 bytes and never split inside a character;
//! it contains "openclaw" (case-insensitive) or gets the ` (OpenClaw)` suffix; the mDNS host
//! label is dedicated to clawgate (`OPENCLAW_MDNS_HOSTNAME`, else `<hostname>-openclaw`) so that
//! its goodbye never withdraws another responder's records; wide-area labels are LDH only.

/// Longest DNS label (RFC 1035 §2.3.4).
pub const MAX_LABEL: usize = 63;
/// Suffix appended to instance names that do not mention OpenClaw (reference behaviour).
pub const OPENCLAW_SUFFIX: &str = " (OpenClaw)";
/// Fallback label / instance name when nothing usable is known.
pub const FALLBACK: &str = "openclaw";

/// True if `s` is a letters-digits-hyphen label of 1..=63 bytes, not starting/ending with `-`.
pub fn is_ldh_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_LABEL
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Truncate to at most `max` bytes without splitting a UTF-8 sequence.
pub fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The machine's host name (Linux: `/proc/sys/kernel/hostname`), with a trailing `.local` removed.
pub fn os_hostname() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let h = raw.trim().trim_end_matches('.');
    h.strip_suffix(".local").unwrap_or(h).to_string()
}

/// Instance name per §1.2: `base` (or `OpenClaw` when empty), ` (OpenClaw)` appended unless it
/// already mentions OpenClaw, truncated to 63 bytes.
pub fn instance_name(base: &str) -> String {
    let base = base.trim();
    let name = if base.is_empty() {
        "OpenClaw".to_string()
    } else if base.to_ascii_lowercase().contains("openclaw") {
        base.to_string()
    } else {
        format!("{base}{OPENCLAW_SUFFIX}")
    };
    truncate_utf8(&name, MAX_LABEL).trim_end().to_string()
}

/// `displayName` TXT value: the instance name with a trailing ` (OpenClaw)` stripped.
pub fn display_name(instance: &str) -> String {
    instance
        .strip_suffix(OPENCLAW_SUFFIX)
        .unwrap_or(instance)
        .to_string()
}

/// Lower-case LDH label: characters outside `[a-z0-9-]` become `-`, edges trimmed, ≤ 63 bytes.
/// Returns `None` when nothing usable remains.
pub fn sanitize_label(s: &str) -> Option<String> {
    let mapped: String = s
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let cut = truncate_utf8(&mapped, MAX_LABEL);
    let trimmed = cut.trim_matches('-');
    (!trimmed.is_empty()).then(|| trimmed.to_string())
}

/// The dedicated mDNS host label (without `.local`): `override_` (from `OPENCLAW_MDNS_HOSTNAME`)
/// if given, else `<first label of hostname>-openclaw`, else `openclaw`.
pub fn host_label(override_: Option<&str>, hostname: &str) -> String {
    if let Some(o) = override_ {
        let o = o.trim().trim_end_matches('.');
        let o = o.strip_suffix(".local").unwrap_or(o);
        if let Some(l) = sanitize_label(o) {
            return l;
        }
    }
    let first = hostname.split('.').next().unwrap_or_default();
    match sanitize_label(first) {
        Some(l) if l == FALLBACK => l,
        Some(l) => {
            let keep = MAX_LABEL - "-openclaw".len();
            format!("{}-openclaw", truncate_utf8(&l, keep).trim_end_matches('-'))
        }
        None => FALLBACK.to_string(),
    }
}

/// Wide-area instance label: `<hostname>-gateway`, LDH (§6.3; CoreDNS drops `\DDD` owners).
pub fn wide_area_instance_label(hostname: &str) -> String {
    let first = hostname.split('.').next().unwrap_or_default();
    let base = sanitize_label(first).unwrap_or_else(|| FALLBACK.to_string());
    let keep = MAX_LABEL - "-gateway".len();
    format!(
        "{}-gateway",
        truncate_utf8(&base, keep).trim_end_matches('-')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_names() {
        assert_eq!(instance_name("Studio"), "Studio (OpenClaw)");
        assert_eq!(instance_name("my OpenClaw box"), "my OpenClaw box");
        assert_eq!(instance_name("  "), "OpenClaw");
        let long = "é".repeat(40); // 80 bytes
        let n = instance_name(&long);
        assert!(n.len() <= 63, "{}", n.len());
        assert_eq!(n, "é".repeat(31));
        let n = instance_name(&"a".repeat(60));
        assert_eq!(n.len(), 63);
        assert!(n.starts_with(&"a".repeat(60)) && n.ends_with(" (O"));
        assert_eq!(display_name("Studio (OpenClaw)"), "Studio");
        assert_eq!(display_name("OpenClaw"), "OpenClaw");
    }

    #[test]
    fn host_labels_are_dedicated() {
        assert_eq!(host_label(None, "studio.example.com"), "studio-openclaw");
        assert_eq!(host_label(None, "Mac Book_Pro"), "mac-book-pro-openclaw");
        assert_eq!(host_label(None, ""), "openclaw");
        assert_eq!(host_label(None, "openclaw"), "openclaw");
        assert_eq!(host_label(Some("gw-test.local."), "studio"), "gw-test");
        assert_eq!(host_label(Some("***"), "studio"), "studio-openclaw");
        let l = host_label(None, &"x".repeat(80));
        assert!(l.len() <= 63 && l.ends_with("-openclaw") && is_ldh_label(&l));
    }

    #[test]
    fn labels() {
        assert!(is_ldh_label("a-1"));
        assert!(!is_ldh_label("-a"));
        assert!(!is_ldh_label("a b"));
        assert!(!is_ldh_label(&"a".repeat(64)));
        assert_eq!(sanitize_label("Studio Mac!").as_deref(), Some("studio-mac"));
        assert_eq!(sanitize_label("!!!"), None);
        assert_eq!(wide_area_instance_label("Studio.lan"), "studio-gateway");
        assert_eq!(wide_area_instance_label(""), "openclaw-gateway");
        assert_eq!(truncate_utf8("aé", 2), "a");
    }
}
