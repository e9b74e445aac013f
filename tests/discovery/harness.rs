//! Shared harness for the discovery integration tests: network namespaces joined by veth pairs,
//! the gateway process, python-zeroconf helpers, avahi. Every resource is released on drop
//! (processes by PID, namespaces by name, temp dirs); every wait is bounded.
//!
//! Requires root (network namespaces) and `make deps-discovery` (python-zeroconf venv, avahi,
//! dig). The gateway binary comes from [`gateway_command`] only, so switching the suite to
//! `clawgate run` is a one-function change.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Cache dir shared with the Makefile (`$(CACHE_DIR)`).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/clawgate")
        })
}

/// python-zeroconf interpreter (venv built by `make deps-discovery`).
pub fn zc_python() -> PathBuf {
    let p = cache_dir().join("zc/bin/python");
    assert!(
        p.exists(),
        "{} missing: run `make deps-discovery`",
        p.display()
    );
    p
}

/// Path of a helper script under tests/discovery/.
pub fn helper(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/discovery")
        .join(name)
}

fn must_be_root() {
    let uid = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("Uid:")
                .map(|r| r.split_whitespace().next().unwrap_or("").to_string())
        })
        .unwrap_or_default();
    assert_eq!(
        uid, "0",
        "discovery netns tests need root (network namespaces)"
    );
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A set of network namespaces with veth links; deleted on drop.
pub struct Netns {
    pub names: Vec<String>,
    tag: String,
    links: u32,
}

impl Netns {
    /// Create `n` namespaces with loopback up.
    pub fn new(n: usize) -> Netns {
        must_be_root();
        let tag = format!(
            "{}{}",
            std::process::id() % 100_000,
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let names: Vec<String> = (0..n).map(|i| format!("cgd{tag}n{i}")).collect();
        for ns in &names {
            sh(&["ip", "netns", "add", ns]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        Netns {
            names,
            tag,
            links: 0,
        }
    }

    /// Link namespace `a` and `b` with a veth pair; `prefix` names the interfaces
    /// (`<prefix><tag><k>a/b`, ≤ 15 bytes). Returns the interface names.
    pub fn link(
        &mut self,
        a: usize,
        b: usize,
        prefix: &str,
        addr_a: &[&str],
        addr_b: &[&str],
    ) -> (String, String) {
        self.links += 1;
        let base = format!("{prefix}{}{}", self.tag, self.links);
        let base = &base[base.len().saturating_sub(13)..];
        let (ia, ib) = (format!("{base}a"), format!("{base}b"));
        sh(&[
            "ip", "link", "add", &ia, "type", "veth", "peer", "name", &ib,
        ]);
        for (i, ns, addrs) in [(&ia, &self.names[a], addr_a), (&ib, &self.names[b], addr_b)] {
            sh(&["ip", "link", "set", i, "netns", ns]);
            for ad in addrs {
                sh(&["ip", "-n", ns, "addr", "add", ad, "dev", i]);
            }
            sh(&["ip", "-n", ns, "link", "set", i, "up"]);
        }
        (ia, ib)
    }

    /// `ip netns exec <ns> <argv...>` as a Command.
    pub fn cmd(&self, ns: usize, argv: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.names[ns]]).args(argv);
        c
    }

    /// Run a command to completion in `ns` and return stdout (asserting success).
    pub fn run(&self, ns: usize, argv: &[&str]) -> String {
        let out = self.cmd(ns, argv).output().expect("spawn");
        assert!(
            out.status.success(),
            "{argv:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Wait until IPv6 DAD finished on all links (link-local usable), bounded.
    pub fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        for i in 0..self.names.len() {
            while Instant::now() < deadline {
                let out = self.cmd(i, &["ip", "-6", "addr"]).output().expect("ip");
                if !String::from_utf8_lossy(&out.stdout).contains("tentative") {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// Write `/etc/netns/<ns>/resolv.conf` (bind-mounted by `ip netns exec`).
    pub fn resolv_conf(&self, ns: usize, nameserver: &str) {
        let dir = PathBuf::from("/etc/netns").join(&self.names[ns]);
        std::fs::create_dir_all(&dir).expect("mkdir /etc/netns");
        std::fs::write(
            dir.join("resolv.conf"),
            format!("nameserver {nameserver}\noptions timeout:1 attempts:2\n"),
        )
        .expect("write resolv.conf");
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in &self.names {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
            let _ = std::fs::remove_dir_all(PathBuf::from("/etc/netns").join(ns));
        }
    }
}

/// A child process stopped by PID on drop (SIGTERM, then SIGKILL after a grace period).
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Proc {
    pub fn spawn(mut c: Command, name: &str) -> Proc {
        let child = c.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        Proc {
            child,
            name: name.into(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status();
    }

    /// SIGTERM and wait (bounded); returns the exit status code.
    pub fn stop(&mut self, grace: Duration) -> Option<i32> {
        self.signal("TERM");
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.alive() {
            self.stop(Duration::from_secs(3));
        }
    }
}

/// Options for one gateway process.
pub struct Gw {
    pub bind: String,
    pub port: u16,
    pub state: tempfile::TempDir,
    pub config: Option<String>,
    pub env: Vec<(String, String)>,
    pub instance: Option<String>,
    pub tailnet_ips: Vec<String>,
    pub dynamic: Option<String>,
    /// Run inside a private mount namespace that shows `/run/systemd/container` (a container
    /// signal for the detector) without touching the host's filesystem.
    pub fake_container: bool,
}

impl Gw {
    pub fn new(bind: &str) -> Gw {
        Gw {
            bind: bind.into(),
            port: 20000
                + (std::process::id() % 2000) as u16 * 10
                + SEQ.fetch_add(1, Ordering::SeqCst) as u16 % 10,
            state: tempfile::tempdir().expect("tempdir"),
            config: None,
            env: vec![("OPENCLAW_DISABLE_BONJOUR".into(), "0".into())],
            instance: Some("Studio".into()),
            tailnet_ips: vec![],
            dynamic: None,
            fake_container: false,
        }
    }

    pub fn status_path(&self) -> PathBuf {
        self.state.path().join("status.json")
    }

    pub fn log_path(&self) -> PathBuf {
        self.state.path().join("gateway.log")
    }

    pub fn dynamic_path(&self) -> PathBuf {
        self.state.path().join("dynamic.json")
    }

    /// Read the status JSON the gateway writes.
    pub fn status(&self) -> serde_json::Value {
        std::fs::read_to_string(self.status_path())
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or(serde_json::Value::Null)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

/// THE place that knows how to start the gateway (switch to `clawgate run` at merge).
pub fn gateway_command(net: &Netns, ns: usize, gw: &Gw) -> Command {
    let bin = env!("CARGO_BIN_EXE_clawgate-discovery-dev");
    let port = gw.port.to_string();
    let state = gw.state.path().display().to_string();
    let status = gw.status_path().display().to_string();
    let mut argv: Vec<String> = [
        bin,
        "run",
        "--bind",
        &gw.bind,
        "--port",
        &port,
        "--state-dir",
        &state,
        "--status-file",
        &status,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(cfg) = &gw.config {
        let p = gw.state.path().join("openclaw.json");
        std::fs::write(&p, cfg).expect("write config");
        argv.extend(["--config".into(), p.display().to_string()]);
    }
    if let Some(i) = &gw.instance {
        argv.extend(["--instance-name".into(), i.clone()]);
    }
    for ip in &gw.tailnet_ips {
        argv.extend(["--tailnet-ip".into(), ip.clone()]);
    }
    if let Some(d) = &gw.dynamic {
        std::fs::write(gw.dynamic_path(), d).expect("write dynamic");
        argv.extend([
            "--dynamic-file".into(),
            gw.dynamic_path().display().to_string(),
        ]);
    }
    if gw.fake_container {
        let script = "mount -t tmpfs cgtest /run/systemd && echo docker > /run/systemd/container \
                      && exec \"$0\" \"$@\"";
        let wrap = [
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
        ];
        argv.splice(0..0, wrap.iter().map(|s| s.to_string()));
    }
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let mut c = net.cmd(ns, &argv);
    c.env_remove("OPENCLAW_DISABLE_BONJOUR")
        .env("RUST_LOG", "info,mdns_sd=warn");
    for (k, v) in &gw.env {
        c.env(k, v);
    }
    let log = std::fs::File::create(gw.log_path()).expect("log file");
    c.stdout(Stdio::null()).stderr(log);
    c
}

/// Start the gateway and wait until its TCP port accepts inside `ns` (bounded).
pub fn start_gateway(net: &Netns, ns: usize, gw: &Gw) -> Proc {
    let mut p = Proc::spawn(gateway_command(net, ns, gw), "gateway");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if gw.status_path().exists() {
            return p;
        }
        assert!(p.alive(), "gateway exited early:\n{}", gw.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("gateway did not start:\n{}", gw.log());
}

/// Wait for a predicate on the gateway status (bounded).
pub fn wait_status(
    gw: &Gw,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + timeout;
    loop {
        let s = gw.status();
        if pred(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; status {s}\n{}",
            gw.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Wait until `component` (`mdns` / `wideArea`) is disabled with a reason containing `why`.
pub fn wait_disabled(gw: &Gw, component: &str, why: &str) -> serde_json::Value {
    let pred = |s: &serde_json::Value| {
        s[component]["state"] == "disabled"
            && s[component]["detail"]
                .as_str()
                .is_some_and(|d| d.contains(why))
    };
    wait_status(
        gw,
        &format!("{component} disabled: {why}"),
        Duration::from_secs(5),
        pred,
    )
}

/// Start a python-zeroconf browser in `ns` in the background (stdout piped: one JSON document).
pub fn zc_browse_spawn(net: &Netns, ns: usize, extra: &[&str]) -> std::process::Child {
    let py = zc_python();
    let script = helper("zc_browse.py");
    let mut argv = vec![py.to_str().expect("utf8"), script.to_str().expect("utf8")];
    argv.extend_from_slice(extra);
    let mut c = net.cmd(ns, &argv);
    c.stdout(Stdio::piped());
    c.spawn().expect("spawn zc_browse")
}

/// Collect a background browser's JSON.
pub fn zc_browse_collect(child: std::process::Child) -> serde_json::Value {
    let out = child.wait_with_output().expect("zc_browse output");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "zc_browse output {:?}: {e}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Browse with python-zeroconf in `ns`; returns the helper's JSON.
pub fn zc_browse(net: &Netns, ns: usize, extra: &[&str]) -> serde_json::Value {
    zc_browse_collect(zc_browse_spawn(net, ns, extra))
}

/// Publish a fake gateway with python-zeroconf in `ns`; waits for "registered".
pub fn zc_publish(net: &Netns, ns: usize, args: &[&str]) -> (Proc, String) {
    let py = zc_python();
    let script = helper("zc_publish.py");
    let mut argv = vec![py.to_str().expect("utf8"), script.to_str().expect("utf8")];
    argv.extend_from_slice(args);
    let mut c = net.cmd(ns, &argv);
    c.stdout(Stdio::piped()).stderr(Stdio::inherit());
    let mut p = Proc::spawn(c, "zc_publish");
    let mut out = p.child.stdout.take().expect("stdout");
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    let deadline = Instant::now() + Duration::from_secs(15);
    while !buf.ends_with(b"\n") && Instant::now() < deadline {
        match out.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => break,
        }
    }
    let line = String::from_utf8_lossy(&buf).trim().to_string();
    assert!(
        line.starts_with("registered "),
        "zc_publish did not register: {line:?}"
    );
    (p, line["registered ".len()..].to_string())
}

/// TCP connect from `ns` to `ip:port` (bash `/dev/tcp`); true if the gateway's banner arrives.
pub fn tcp_reachable(net: &Netns, ns: usize, ip: &str, port: u16) -> bool {
    let script = format!("exec 3<>/dev/tcp/{ip}/{port} && head -c 12 <&3");
    let out = net
        .cmd(ns, &["timeout", "3", "bash", "-c", &script])
        .output()
        .expect("bash");
    out.status.success() && String::from_utf8_lossy(&out.stdout) == "clawgate-dev"
}
