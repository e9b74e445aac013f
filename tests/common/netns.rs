//! One network namespace for a test, linked to the root namespace by a veth pair: the host end
//! carries `host_ip`/30, the namespace end `ns_ip`/30, loopback is up, and the namespace has its
//! own `/etc/netns/<name>/resolv.conf` (and optionally `hosts`), which `ip netns exec` binds over
//! `/etc/…` for every program started in it.
//!
//! Invariants: names and the /30 come from the test's pid and a per-process counter, so parallel
//! test binaries do not collide; [`Netns`]'s drop (also on panic) stops every process still in
//! the namespace (SIGTERM, then SIGKILL after a bounded wait, by pid), deletes the namespace (which
//! destroys the veth pair) and removes `/etc/netns/<name>`. Needs root: without it the caller
//! skips, or fails when `CLAWGATE_REQUIRE_TESTNET=1`.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long processes left in a namespace get between SIGTERM and SIGKILL (tailscaled restores
/// the namespace's resolv.conf on SIGTERM).
const STOP_GRACE: Duration = Duration::from_secs(5);

static SEQ: AtomicU32 = AtomicU32::new(0);

pub struct Netns {
    pub name: String,
    /// The root-namespace end of the veth pair (what a harness in the root namespace binds).
    pub host_ip: Ipv4Addr,
    pub ns_ip: Ipv4Addr,
}

fn run(args: &[&str]) {
    let o = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Whether this process may create namespaces (root); `false` prints a skip, and panics when the
/// testnet is required.
pub fn available() -> bool {
    let root = std::env::var("USER").as_deref() == Ok("root")
        || std::fs::read_to_string("/proc/self/status")
            .is_ok_and(|s| s.lines().any(|l| l.starts_with("Uid:\t0\t")));
    if !root {
        let required = std::env::var(super::testnet::ENV_REQUIRE).as_deref() == Ok("1");
        assert!(!required, "network namespace tests need root");
        eprintln!("SKIPPED: network namespace tests need root");
    }
    root
}

impl Netns {
    /// Creates `cg<pid>v<n>` with its veth pair and a placeholder resolv.conf (after deleting
    /// namespaces left by test processes that no longer exist, e.g. SIGKILLed ones).
    pub fn new() -> Netns {
        reap_stale();
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let name = format!("cg{pid}v{seq}");
        // 10.192.0.0/13 carved into /30s: 17 bits of (pid, seq).
        let idx = ((pid & 0x7fff) << 2) | (seq & 3);
        let base = u32::from(Ipv4Addr::new(10, 192, 0, 0)) | (idx << 2);
        let (host_ip, ns_ip) = (Ipv4Addr::from(base + 1), Ipv4Addr::from(base + 2));
        let me = Netns {
            name,
            host_ip,
            ns_ip,
        };
        let (h, n) = (format!("{}h", me.name), format!("{}n", me.name));
        run(&["ip", "netns", "add", &me.name]);
        run(&["ip", "link", "add", &h, "type", "veth", "peer", "name", &n]);
        run(&["ip", "link", "set", &n, "netns", &me.name]);
        run(&["ip", "addr", "add", &format!("{host_ip}/30"), "dev", &h]);
        run(&["ip", "link", "set", &h, "up"]);
        let ns_cidr = format!("{ns_ip}/30");
        let inside = [
            vec!["ip", "addr", "add", &ns_cidr, "dev", &n],
            vec!["ip", "link", "set", &n, "up"],
            vec!["ip", "link", "set", "lo", "up"],
        ];
        for argv in inside {
            run(&[&["ip", "netns", "exec", &me.name][..], &argv].concat());
        }
        std::fs::create_dir_all(me.etc()).unwrap();
        // Replaced by tailscaled's MagicDNS configuration; nothing answers here.
        me.write_etc("resolv.conf", &format!("nameserver {host_ip}\n"));
        me
    }

    /// `/etc/netns/<name>`.
    pub fn etc(&self) -> PathBuf {
        PathBuf::from("/etc/netns").join(&self.name)
    }

    /// Writes `/etc/netns/<name>/<file>` (seen as `/etc/<file>` by programs started afterwards).
    pub fn write_etc(&self, file: &str, text: &str) {
        std::fs::write(self.etc().join(file), text).unwrap();
    }

    /// `ip netns exec <name> <program>`.
    pub fn exec(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    fn pids(&self) -> Vec<String> {
        let o = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output();
        let out = o.map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
        out.unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }

    fn stop_processes(&self) {
        let mut pids = self.pids();
        if pids.is_empty() {
            return;
        }
        let _ = Command::new("kill").arg("-TERM").args(&pids).status();
        let end = Instant::now() + STOP_GRACE;
        while !pids.is_empty() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(100));
            pids = self.pids();
        }
        if !pids.is_empty() {
            let _ = Command::new("kill").arg("-KILL").args(&pids).status();
        }
    }
}

/// Deletes `cg<pid>v<n>` namespaces (and their `/etc/netns` dirs) whose test process is gone.
fn reap_stale() {
    let o = Command::new("ip").args(["netns", "list"]).output();
    let list = o.map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    for name in list
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
    {
        let pid = name.strip_prefix("cg").and_then(|r| r.split_once('v'));
        let Some((pid, seq)) = pid else { continue };
        let ours = !pid.is_empty() && pid.bytes().chain(seq.bytes()).all(|b| b.is_ascii_digit());
        if ours && !std::path::Path::new("/proc").join(pid).exists() {
            drop(Netns {
                name: name.to_string(),
                host_ip: Ipv4Addr::UNSPECIFIED,
                ns_ip: Ipv4Addr::UNSPECIFIED,
            });
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.stop_processes();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = Command::new("ip")
            .args(["link", "del", &format!("{}h", self.name)])
            .stderr(std::process::Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(self.etc());
        // Leave /etc/netns itself only if another test still uses it.
        let _ = std::fs::remove_dir(self.etc().parent().unwrap());
    }
}
