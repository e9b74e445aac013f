//! avahi-daemon (+ a private system D-Bus when none runs) inside a test namespace
//! (spec discovery.md §8.3, peers.md §4). One avahi per filesystem view, so users hold
//! [`AvahiLock`] for the whole test; everything started here is stopped by PID on drop.
#![allow(dead_code)]

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::harness::{Netns, Proc};

const BUS_SOCKET: &str = "/run/dbus/system_bus_socket";
const LOCK_FILE: &str = "/run/lock/clawgate-discovery-avahi.lock";
static IN_PROCESS: Mutex<()> = Mutex::new(());

/// Exclusive use of avahi on this machine: in-process mutex + a PID lock file (a lock left by a
/// dead process is taken over).
pub struct AvahiLock {
    _guard: MutexGuard<'static, ()>,
}

impl AvahiLock {
    pub fn acquire() -> AvahiLock {
        let guard = IN_PROCESS.lock().unwrap_or_else(|p| p.into_inner());
        let _ = std::fs::create_dir_all("/run/lock");
        let me = std::process::id().to_string();
        wait(Duration::from_secs(120), "the avahi lock", || {
            let created = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(LOCK_FILE);
            match created {
                Ok(mut f) => std::io::Write::write_all(&mut f, me.as_bytes()).is_ok(),
                Err(_) => {
                    let owner = std::fs::read_to_string(LOCK_FILE).unwrap_or_default();
                    let owner = owner.trim();
                    if owner.is_empty() || !Path::new("/proc").join(owner).exists() {
                        let _ = std::fs::remove_file(LOCK_FILE);
                    }
                    false
                }
            }
        });
        AvahiLock { _guard: guard }
    }
}

impl Drop for AvahiLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(LOCK_FILE);
    }
}

fn bus_alive() -> bool {
    std::os::unix::net::UnixStream::connect(BUS_SOCKET).is_ok()
}

/// A running avahi-daemon in one namespace (plus the D-Bus daemon if we had to start one).
pub struct Avahi {
    daemon: Proc,
    bus: Option<Proc>,
    pub log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Avahi {
    /// Start dbus (if needed) and avahi-daemon in `ns`, limited to `iface`.
    pub fn start(net: &Netns, ns: usize, iface: &str, _lock: &AvahiLock) -> Avahi {
        let bus = if bus_alive() {
            None
        } else {
            let _ = std::fs::remove_file(BUS_SOCKET);
            std::fs::create_dir_all("/run/dbus").expect("mkdir /run/dbus");
            let mut c = Command::new("dbus-daemon");
            c.args(["--system", "--nofork", "--nopidfile"])
                .stdout(Stdio::null());
            let p = Proc::spawn(c, "dbus-daemon");
            wait(Duration::from_secs(5), "system bus", bus_alive);
            Some(p)
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("avahi-daemon.conf");
        std::fs::write(
            &conf,
            format!(
                "[server]\nhost-name=cgpeer{}\nuse-ipv4=yes\nuse-ipv6=yes\nallow-interfaces={iface}\n\
                 enable-dbus=yes\n[wide-area]\nenable-wide-area=yes\n[publish]\npublish-workstation=no\n\
                 publish-hinfo=no\n",
                std::process::id()
            ),
        )
        .expect("conf");
        let _ = std::fs::remove_file("/run/avahi-daemon/pid");
        let log = dir.path().join("avahi.log");
        let conf_s = conf.to_str().expect("utf8");
        let mut c = net.cmd(
            ns,
            &[
                "avahi-daemon",
                "-f",
                conf_s,
                "--no-drop-root",
                "--no-chroot",
                "--no-rlimits",
            ],
        );
        c.stdout(Stdio::null())
            .stderr(File::create(&log).expect("log"));
        let daemon = Proc::spawn(c, "avahi-daemon");
        let ok =
            || std::fs::read_to_string(&log).is_ok_and(|l| l.contains("Server startup complete"));
        wait(Duration::from_secs(10), "avahi startup", ok);
        Avahi {
            daemon,
            bus,
            log,
            _dir: dir,
        }
    }

    /// `avahi-browse -r -p -t [args]` in `ns`, returning the resolved (`=`) lines.
    pub fn browse_resolved(net: &Netns, ns: usize, args: &[&str]) -> Vec<Vec<String>> {
        let mut argv = vec!["timeout", "20", "avahi-browse", "-r", "-p", "-t"];
        argv.extend_from_slice(args);
        let out = net.cmd(ns, &argv).output().expect("avahi-browse");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with('='))
            .map(|l| l.split(';').map(String::from).collect())
            .collect()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Avahi {
    fn drop(&mut self) {
        self.daemon.stop(Duration::from_secs(3));
        if let Some(b) = &mut self.bus {
            b.stop(Duration::from_secs(3));
            let _ = std::fs::remove_file(BUS_SOCKET);
        }
        if Path::new("/run/avahi-daemon/pid").exists() {
            let _ = std::fs::remove_file("/run/avahi-daemon/pid");
        }
    }
}

fn wait(limit: Duration, what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
