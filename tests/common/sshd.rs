//! A real OpenSSH server (Debian `openssh-server`) in a test's network namespace, and the client
//! side a test gives clawgate: a generated host key, an authorised client key, a `known_hosts`
//! that pins the host key, and an `ssh` wrapper first in `PATH`.
//!
//! The wrapper records each run's pid (so a test can kill exactly the tunnel process) and the
//! arguments clawgate passed, then execs the system `/usr/bin/ssh` with `-F <test config>`
//! (known_hosts and identity of the test, never the user's `~/.ssh`). It puts
//! `ServerAliveInterval=1`/`ServerAliveCountMax=2` in front of clawgate's own options (ssh
//! keeps the first value), so a keepalive loss is detected in ~3 s instead of 45 s; every other
//! option — `StrictHostKeyChecking=yes` above all — is clawgate's.
//!
//! Invariants: sshd runs in the foreground (`-D`) in its own process group; [`Sshd`]'s drop
//! kills that group and every session process it forked; the namespace's drop stops anything left.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::netns::Netns;
use super::wait_for;

/// sshd's port inside the namespace.
pub const SSHD_PORT: u16 = 2222;
/// The OpenSSH server binary.
pub const SSHD: &str = "/usr/sbin/sshd";

/// Whether sshd is installed (`make deps` installs it); absent means skip, or fail when required.
pub fn available() -> bool {
    let ok = Path::new(SSHD).exists() && Path::new("/usr/bin/ssh").exists();
    if !ok {
        let required = std::env::var("CLAWGATE_REQUIRE_NETNS").as_deref() == Ok("1");
        assert!(!required, "openssh-server missing: run make deps");
        eprintln!("SKIPPED: openssh-server not installed");
    }
    ok
}

fn keygen(path: &Path) {
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(path.with_extension("pub"));
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success(), "ssh-keygen");
}

fn public(path: &Path) -> String {
    let mut p = path.as_os_str().to_owned();
    p.push(".pub");
    std::fs::read_to_string(PathBuf::from(p)).unwrap()
}

/// The server in `net`, with its files under `dir`.
pub struct Sshd {
    pub dir: PathBuf,
    child: Option<Child>,
    ns_ip: std::net::Ipv4Addr,
    netns: String,
}

impl Sshd {
    /// Generates host and client keys, authorises the client key, starts sshd.
    pub fn start(net: &Netns, dir: &Path) -> Sshd {
        std::fs::create_dir_all("/run/sshd").unwrap();
        keygen(&dir.join("host_key"));
        keygen(&dir.join("client_key"));
        std::fs::write(dir.join("authorized_keys"), public(&dir.join("client_key"))).unwrap();
        let d = dir.display();
        let config = format!(
            "Port {SSHD_PORT}\nListenAddress {}\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
             PidFile none\nUsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nAllowTcpForwarding local\n\
             X11Forwarding no\nPermitTTY no\nLogLevel VERBOSE\n",
            net.ns_ip
        );
        std::fs::write(dir.join("sshd_config"), config).unwrap();
        let mut s = Sshd {
            dir: dir.to_path_buf(),
            child: None,
            ns_ip: net.ns_ip,
            netns: net.name.clone(),
        };
        s.spawn();
        s.write_known_hosts();
        s
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.join("sshd.log")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.netns, SSHD, "-D", "-e", "-f"])
            .arg(self.dir.join("sshd_config"))
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let addr = (self.ns_ip, SSHD_PORT);
        wait_for("sshd listening", 20, || {
            std::net::TcpStream::connect(addr).ok()
        });
    }

    /// `known_hosts` pinning the current host key.
    fn write_known_hosts(&self) {
        let key = public(&self.dir.join("host_key"));
        let key: Vec<&str> = key.split_whitespace().take(2).collect();
        let line = format!("[{}]:{SSHD_PORT} {}\n", self.ns_ip, key.join(" "));
        std::fs::write(self.dir.join("known_hosts"), line).unwrap();
    }

    /// `root@<ns ip>:2222`.
    pub fn target(&self) -> String {
        format!("root@{}:{SSHD_PORT}", self.ns_ip)
    }

    /// Every session process sshd forked (children and grandchildren of the listener).
    pub fn sessions(&self) -> Vec<u32> {
        let Some(c) = &self.child else { return vec![] };
        let mut out = Vec::new();
        let mut todo = vec![c.id()];
        while let Some(p) = todo.pop() {
            let kids = super::daemon::children(p);
            out.extend(&kids);
            todo.extend(kids);
        }
        out
    }

    /// Sends `sig` (`-STOP`, `-KILL`, …) to every session process.
    pub fn signal_sessions(&self, sig: &str) {
        for p in self.sessions() {
            let _ = Command::new("kill")
                .args([sig, &p.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }

    /// Stops sshd and its sessions, and starts it again with a **new** host key (known_hosts
    /// still pins the old one).
    pub fn restart_with_new_host_key(&mut self) {
        self.stop();
        keygen(&self.dir.join("host_key"));
        self.spawn();
    }

    fn stop(&mut self) {
        self.signal_sessions("-KILL");
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", c.id())])
                .stderr(Stdio::null())
                .status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The client side: `<dir>/bin/ssh` (the wrapper), `ssh_config`, and the files it writes.
pub struct SshClient {
    pub dir: PathBuf,
}

impl SshClient {
    /// A client trusting `known_hosts` and using `identity` (both under the server's dir).
    pub fn new(dir: &Path, known_hosts: &Path, identity: &Path) -> SshClient {
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        let config = format!(
            "UserKnownHostsFile {}\nGlobalKnownHostsFile /dev/null\nIdentityFile {}\nIdentitiesOnly yes\n",
            known_hosts.display(),
            identity.display()
        );
        std::fs::write(dir.join("ssh_config"), config).unwrap();
        let d = dir.display();
        let script = format!(
            "#!/bin/sh\necho $$ >> {d}/ssh.pids\nprintf '%s\\n' \"$*\" >> {d}/ssh.argv\n\
             exec /usr/bin/ssh -F {d}/ssh_config -o ServerAliveInterval=1 -o ServerAliveCountMax=2 \"$@\"\n"
        );
        let wrapper = dir.join("bin/ssh");
        std::fs::write(&wrapper, script).unwrap();
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        SshClient {
            dir: dir.to_path_buf(),
        }
    }

    /// `PATH` with the wrapper first.
    pub fn path_env(&self) -> String {
        format!(
            "{}:{}",
            self.dir.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    /// Pids of every ssh run so far.
    pub fn pids(&self) -> Vec<u32> {
        let s = std::fs::read_to_string(self.dir.join("ssh.pids")).unwrap_or_default();
        s.lines().filter_map(|l| l.trim().parse().ok()).collect()
    }

    /// The argument lines of every ssh run so far.
    pub fn argv(&self) -> Vec<String> {
        let s = std::fs::read_to_string(self.dir.join("ssh.argv")).unwrap_or_default();
        s.lines().map(str::to_string).collect()
    }
}
