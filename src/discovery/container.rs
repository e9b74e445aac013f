//! Container / WSL detection for auto-mode LAN advertising (spec discovery.md §2.2–§2.4).
//!
//! Signals are checked in systemd's order (manager files and PID 1's `container=` first, then
//! `.containerenv`/`.dockerenv`, then cgroup and mountinfo patterns), plus Kubernetes, Fly.io and
//! WSL. Invariants: detection never fails (unreadable files are "no signal"), reports which
//! signal fired so a false positive can be overridden with `OPENCLAW_DISABLE_BONJOUR=0`, and the
//! process-wide result is computed once ([`detect_cached`]).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Which signal identified a container (logged so users can judge false positives).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSignal(pub String);

/// Filesystem + environment view used by the detector (the real root in production, a temp dir
/// in tests).
pub struct Probe<'a> {
    /// Filesystem root to resolve absolute paths against.
    pub root: PathBuf,
    /// Environment lookup.
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

impl Probe<'_> {
    fn path(&self, abs: &str) -> PathBuf {
        self.root.join(abs.trim_start_matches('/'))
    }
    fn exists(&self, abs: &str) -> bool {
        self.path(abs).exists()
    }
    fn read(&self, abs: &str) -> String {
        std::fs::read(self.path(abs))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
    fn env_set(&self, k: &str) -> bool {
        (self.env)(k).is_some_and(|v| !v.is_empty())
    }
}

/// Run all checks; `Some(signal)` when a container (or WSL) is detected.
pub fn detect(p: &Probe<'_>) -> Option<ContainerSignal> {
    let hit = |s: &str| Some(ContainerSignal(s.to_string()));
    for f in ["/run/host/container-manager", "/run/systemd/container"] {
        if p.exists(f) {
            return hit(f);
        }
    }
    if p.read("/proc/1/environ")
        .split('\0')
        .any(|kv| kv.starts_with("container="))
    {
        return hit("/proc/1/environ container=");
    }
    for f in [
        "/run/.containerenv",
        "/var/run/.containerenv",
        "/.dockerenv",
    ] {
        if p.exists(f) {
            return hit(f);
        }
    }
    if let Some(pat) = cgroup_match(&p.read("/proc/1/cgroup")) {
        return Some(ContainerSignal(format!("/proc/1/cgroup {pat}")));
    }
    if mountinfo_overlay_root(&p.read("/proc/1/mountinfo")) {
        return hit("/proc/1/mountinfo overlay root");
    }
    if p.env_set("KUBERNETES_SERVICE_HOST") {
        return hit("KUBERNETES_SERVICE_HOST");
    }
    if p.env_set("FLY_MACHINE_ID") && p.env_set("FLY_APP_NAME") {
        return hit("FLY_MACHINE_ID+FLY_APP_NAME");
    }
    let rel = p.read("/proc/sys/kernel/osrelease").to_ascii_lowercase();
    if rel.contains("microsoft") || rel.contains("wsl") {
        return hit("WSL kernel");
    }
    None
}

/// OpenClaw's `/proc/1/cgroup` patterns; returns the pattern name that matched.
fn cgroup_match(cg: &str) -> Option<&'static str> {
    let is_hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    if cg.contains("/docker/") {
        return Some("/docker/");
    }
    if let Some(i) = cg.find("cri-containerd-") {
        let rest = &cg[i + "cri-containerd-".len()..];
        if rest.bytes().next().is_some_and(|b| b.is_ascii_hexdigit()) {
            return Some("cri-containerd-<hex>");
        }
    }
    if cg
        .split("containerd/")
        .skip(1)
        .any(|r| r.len() >= 64 && is_hex(&r[..64]))
    {
        return Some("containerd/<64 hex>");
    }
    if cg.contains("/cloudchamber") && cg.contains("_oci") {
        return Some("/cloudchamber/…_oci");
    }
    if cg.contains("/kubepods/") || cg.contains("/kubepods.") {
        return Some("/kubepods");
    }
    if cg
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|w| w == "lxc")
    {
        return Some("lxc");
    }
    None
}

/// Root mount on overlay whose options name a container storage path (not just any overlay).
fn mountinfo_overlay_root(mi: &str) -> bool {
    mi.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.get(4) == Some(&"/")
            && l.contains(" - overlay ")
            && ["/docker/", "/containerd/", "/containers/storage/"]
                .iter()
                .any(|p| l.contains(p))
    })
}

/// Detect once per process against the real root and environment.
pub fn detect_cached() -> Option<ContainerSignal> {
    static CACHE: OnceLock<Option<ContainerSignal>> = OnceLock::new();
    CACHE
        .get_or_init(|| {
            let env = |k: &str| std::env::var(k).ok();
            detect(&Probe {
                root: Path::new("/").to_path_buf(),
                env: &env,
            })
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(files: &[(&str, &str)], env: &[(&str, &str)]) -> Option<String> {
        let dir = tempfile::tempdir().expect("tempdir");
        for (p, c) in files {
            let path = dir.path().join(p.trim_start_matches('/'));
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, c).expect("write");
        }
        let env_fn = |k: &str| {
            env.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        };
        detect(&Probe {
            root: dir.path().to_path_buf(),
            env: &env_fn,
        })
        .map(|s| s.0)
    }

    #[test]
    fn no_signal_on_plain_host() {
        assert_eq!(run(&[("/proc/1/cgroup", "0::/\n")], &[]), None);
        assert_eq!(
            run(&[("/proc/sys/kernel/osrelease", "6.1.0-13-amd64")], &[]),
            None
        );
    }

    #[test]
    fn order_and_signals() {
        let both = run(
            &[("/.dockerenv", ""), ("/run/systemd/container", "docker")],
            &[],
        );
        assert_eq!(both.as_deref(), Some("/run/systemd/container"));
        assert_eq!(
            run(&[("/.dockerenv", "")], &[]).as_deref(),
            Some("/.dockerenv")
        );
        let k8s = "12:cpu:/kubepods/besteffort/pod1\n";
        assert!(run(&[("/proc/1/cgroup", k8s)], &[]).is_some_and(|s| s.contains("kubepods")));
        let cd = format!("0::/system.slice/containerd/{}\n", "a".repeat(64));
        assert!(run(&[("/proc/1/cgroup", &cd)], &[]).is_some_and(|s| s.contains("64 hex")));
        let env1 = run(&[("/proc/1/environ", "PATH=/bin\0container=podman\0")], &[]);
        assert!(env1.is_some_and(|s| s.contains("container=")));
        assert!(run(&[], &[("KUBERNETES_SERVICE_HOST", "10.0.0.1")]).is_some());
        assert!(run(&[], &[("FLY_MACHINE_ID", "x")]).is_none());
        assert!(run(&[], &[("FLY_MACHINE_ID", "x"), ("FLY_APP_NAME", "y")]).is_some());
        let wsl = "5.15.153.1-microsoft-standard-WSL2";
        assert!(run(&[("/proc/sys/kernel/osrelease", wsl)], &[]).is_some());
        assert_eq!(cgroup_match("1:name=systemd:/user.slice/blxcx"), None);
        assert_eq!(cgroup_match("1:name=systemd:/lxc/c1"), Some("lxc"));
    }

    #[test]
    fn overlay_root_requires_container_path() {
        let docker = "1 0 0:1 / / rw - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/X";
        let live = "1 0 0:1 / / rw - overlay overlay rw,lowerdir=/run/live/rootfs";
        assert!(mountinfo_overlay_root(docker));
        assert!(!mountinfo_overlay_root(live));
    }
}
