//! The findings of `clawgate doctor` and how they are printed (issue 17): each with a stable
//! `id`, a `severity` (`ok`, `info`, `warning`, `error`), what was found and its fix; `--json`
//! is `{ok, source, checks:[{id, name, severity, ok, detail, fix?}], exposure}` in the spirit of
//! `openclaw doctor --json`.
//!
//! Invariants: `ok` is false exactly for severity `error`; the human output prints the same
//! failure text once (a LocalAPI error that several checks hit is shown once, then referenced).

use serde::Serialize;
use serde_json::Value;

/// One check.
#[derive(Debug, Serialize)]
pub struct Check {
    /// Stable machine id, e.g. `clawgate.listener`.
    pub id: String,
    /// What was checked.
    pub name: String,
    /// `ok`, `info`, `warning` or `error`.
    pub severity: &'static str,
    /// Passed (not an error).
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// How to fix it (failed checks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

fn id_of(name: &str) -> String {
    let slug: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == ':' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("clawgate.{slug}")
}

impl Check {
    /// A check with an explicit severity.
    pub fn new(
        name: &str,
        severity: &'static str,
        detail: impl Into<String>,
        fix: Option<String>,
    ) -> Check {
        Check {
            id: id_of(name),
            name: name.into(),
            severity,
            ok: severity != "error",
            detail: detail.into(),
            fix,
        }
    }
}

/// A passed check.
pub fn pass(name: &str, detail: impl Into<String>) -> Check {
    Check::new(name, "ok", detail, None)
}

/// Neither good nor bad: something the reader should know (defaults in use, nothing to check).
pub fn info(name: &str, detail: impl Into<String>) -> Check {
    Check::new(name, "info", detail, None)
}

/// A failed check with its fix.
pub fn fail(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check::new(name, "error", detail, Some(fix.into()))
}

/// Prints the report; the exit code is 1 when any check failed.
pub fn print(checks: &[Check], json: bool, source: &str, exposure: &Value) -> i32 {
    let ok = checks.iter().all(|c| c.ok);
    if json {
        crate::outln!(
            "{}",
            serde_json::json!({"ok": ok, "source": source, "checks": checks, "exposure": exposure})
        );
    } else {
        for line in human_lines(checks) {
            crate::outln!("{line}");
        }
    }
    i32::from(!ok)
}

/// The human report: one line per check, its fix below; a failure text already shown (one
/// LocalAPI error hit by several checks) is referenced, not repeated.
pub fn human_lines(checks: &[Check]) -> Vec<String> {
    let mut lines = Vec::new();
    let mut shown: Vec<(&str, &str)> = Vec::new();
    for c in checks {
        let tag = match c.severity {
            "ok" => "ok  ",
            "info" => "info",
            "warning" => "warn",
            _ => "FAIL",
        };
        if let Some((first, _)) = shown.iter().find(|(_, d)| !c.ok && *d == c.detail) {
            lines.push(format!("{tag} {}: same error as {first} (above)", c.name));
            continue;
        }
        lines.push(format!("{tag} {}: {}", c.name, c.detail));
        if let Some(f) = &c.fix {
            lines.push(format!("     fix: {f}"));
        }
        if !c.ok {
            shown.push((&c.name, &c.detail));
        }
    }
    lines
}

/// One check per audit finding; critical findings fail.
pub fn audit_checks(findings: Vec<crate::audit::Finding>) -> Vec<Check> {
    use crate::audit::Severity;
    findings
        .into_iter()
        .map(|f| {
            let severity = match f.severity {
                Severity::Critical => "error",
                Severity::Warning => "warning",
            };
            let detail = format!("{}: {}", f.severity.as_str(), f.message);
            Check::new(&format!("audit {}", f.id), severity, detail, Some(f.fix))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn critical_findings_fail_and_warnings_do_not() {
        use crate::audit::{Finding, Severity};
        let f = |id: &str, severity| Finding {
            id: id.into(),
            severity,
            message: "m".into(),
            fix: "f".into(),
        };
        let checks = audit_checks(vec![f("a", Severity::Critical), f("b", Severity::Warning)]);
        assert_eq!(checks.len(), 2);
        assert!(!checks[0].ok && checks[1].ok);
        assert_eq!(checks[0].fix.as_deref(), Some("f"));
    }

    #[test]
    fn one_error_is_printed_once_and_severities_map_to_ok() {
        let e = "dial unix /var/run/tailscale/tailscaled.sock: connect: no such file";
        let checks = vec![
            info("config", "no config file"),
            fail("tailscale reachable", e, "start tailscaled"),
            fail("serve config", e, "start tailscaled"),
        ];
        let lines = human_lines(&checks);
        assert_eq!(
            lines.iter().filter(|l| l.contains(e)).count(),
            1,
            "{lines:#?}"
        );
        assert!(lines
            .iter()
            .any(|l| l.contains("same error as tailscale reachable")));
        assert!(checks[0].ok && checks[0].severity == "info");
        assert!(!checks[1].ok);
        assert_eq!(checks[1].id, "clawgate.tailscale-reachable");
    }
}
