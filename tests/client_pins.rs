//! The client's TLS pin store (issue 16 item 3, threats.md TLS-4/TLS-6/TLS-7) against a real
//! direct-TLS clawgate gateway with a self-signed certificate: first use is refused unless
//! confirmed (`--trust-fingerprint` or `yes` at a real pty prompt), a confirmed pin is stored and
//! used, a rotated certificate fails closed naming both fingerprints and the fix, and only
//! `clawgate pins forget` lets a new certificate in.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{wait_for, Gateway, TOKEN};
use serde_json::{json, Value};

fn tls_gateway() -> Gateway {
    let cfg = json!({"gateway": {"tls": {"enabled": true}}});
    Gateway::with_config(&cfg, &["--port", "0", "--token", TOKEN], &[])
}

/// `clawgate <args>` as the gateway host's user.
fn on_gateway(gw: &Gateway, args: &[&str]) -> Value {
    let o = Command::new(env!("CARGO_BIN_EXE_clawgate"))
        .args(args)
        .env("HOME", gw.dir.path())
        .env("OPENCLAW_STATE_DIR", gw.dir.path().join("state"))
        .env("OPENCLAW_CONFIG_PATH", gw.config_path())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// `clawgate <args>` on another "machine": its own HOME and state dir, stdin not a terminal.
fn client(home: &Path, args: &[&str]) -> Output {
    client_cmd(home)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn client_cmd(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_clawgate"));
    c.env("HOME", home)
        .env("OPENCLAW_STATE_DIR", home.join("state"))
        .env("OPENCLAW_CONFIG_PATH", home.join("openclaw.json"))
        .env_remove("OPENCLAW_GATEWAY_TOKEN")
        .env_remove("OPENCLAW_GATEWAY_URL");
    c
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn health(home: &Path, url: &str, extra: &[&str]) -> Output {
    let mut args = vec!["health", "--url", url, "--token", TOKEN];
    args.extend_from_slice(extra);
    client(home, &args)
}

fn pins(home: &Path) -> Value {
    let o = client(home, &["pins", "list", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn fingerprint(gw: &Gateway) -> String {
    on_gateway(gw, &["tls", "fingerprint", "--json"])["fingerprint"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn first_use_needs_confirmation_and_a_changed_certificate_fails_closed() {
    let gw = tls_gateway();
    let laptop = tempfile::tempdir().unwrap();
    let home = laptop.path();
    let url = format!("wss://127.0.0.1:{}", gw.port);
    let key = format!("127.0.0.1:{}", gw.port);
    let fp1 = fingerprint(&gw);
    let store = home.join("state/clawgate/client/pins.json");

    let o = health(home, &url, &[]);
    let t = text(&o);
    assert!(
        !o.status.success(),
        "an unknown self-signed certificate is refused: {t}"
    );
    assert!(
        t.contains(&fp1) && t.contains(&format!("--trust-fingerprint {fp1}")),
        "{t}"
    );
    assert!(!store.exists(), "nothing stored without confirmation");

    let wrong = "ab".repeat(32);
    let o = health(home, &url, &["--trust-fingerprint", &wrong]);
    assert!(
        !o.status.success() && text(&o).contains("nothing was stored"),
        "{}",
        text(&o)
    );
    assert!(!store.exists());
    let o = health(home, &url, &["--trust-fingerprint", "not-hex"]);
    assert!(
        !o.status.success() && text(&o).contains("not a SHA-256"),
        "{}",
        text(&o)
    );

    let upper = fp1.to_ascii_uppercase();
    let o = health(home, &url, &["--trust-fingerprint", &upper]);
    assert!(
        o.status.success(),
        "the confirmed certificate is trusted: {}",
        text(&o)
    );
    let p = pins(home);
    assert_eq!(p["pins"][&key]["sha256"], fp1.as_str(), "{p}");
    assert_eq!(p["pins"][&key]["confirmed"], "flag", "{p}");
    assert_eq!(
        p["pins"][&key]["spkiSha256"].as_str().map(str::len),
        Some(64),
        "the key is pinned too: {p}"
    );
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&store).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let o = health(home, &url, &[]);
    assert!(o.status.success(), "the stored pin is used: {}", text(&o));

    // A re-issue that keeps the key (plain `tls rotate`): the SPKI pin still holds (TLS-3).
    let fp_same_key = on_gateway(&gw, &["tls", "rotate", "--json"])["new"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(fp_same_key, fp1);
    let fresh = tempfile::tempdir().unwrap();
    wait_for("the re-issued certificate to be served", 20, || {
        let o = health(fresh.path(), &url, &["--tls-fingerprint", &fp_same_key]);
        o.status.success().then_some(())
    });
    let o = health(home, &url, &[]);
    assert!(
        o.status.success(),
        "same key, new leaf: the SPKI pin accepts it: {}",
        text(&o)
    );
    // A new key: refused, showing the confirmed and the presented fingerprints.
    let fp2 = on_gateway(&gw, &["tls", "rotate", "--new-key", "--json"])["new"]
        .as_str()
        .unwrap()
        .to_string();
    let t = wait_for("the new-key certificate to be refused", 20, || {
        let o = health(home, &url, &[]);
        (!o.status.success()).then(|| text(&o))
    });
    assert!(
        t.contains(&fp1) && t.contains(&fp2),
        "both fingerprints shown: {t}"
    );
    assert!(t.contains(&format!("clawgate pins forget {key}")), "{t}");
    let o = health(home, &url, &["--trust-fingerprint", &fp2]);
    assert!(
        !o.status.success(),
        "a flag never replaces a stored pin: {}",
        text(&o)
    );
    assert_eq!(pins(home)["pins"][&key]["sha256"], fp1.as_str());

    let o = client(home, &["pins", "forget", &key]);
    assert!(o.status.success(), "{}", text(&o));
    let o = client(home, &["pins", "forget", &key]);
    assert!(
        !o.status.success(),
        "forgetting twice is an error: {}",
        text(&o)
    );
    let o = health(home, &url, &["--trust-fingerprint", &fp2]);
    assert!(o.status.success(), "re-pinned after forget: {}", text(&o));
    assert_eq!(pins(home)["pins"][&key]["sha256"], fp2.as_str());
}

/// Runs `clawgate health` on a real pty (`script`), answering the prompt with `answer`.
fn health_on_a_terminal(home: &Path, url: &str, answer: &str) -> Output {
    let bin = env!("CARGO_BIN_EXE_clawgate");
    let cmd = format!("{bin} health --url {url} --token {TOKEN}");
    let mut c = client_cmd(home);
    let mut child = c
        .program_for_script(&cmd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux)");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let _ = stdin.write_all(format!("{answer}\n").as_bytes());
    }
    child.wait_with_output().unwrap()
}

trait Script {
    fn program_for_script(&mut self, cmd: &str) -> Command;
}

impl Script for Command {
    /// The same environment, running `cmd` under `timeout 30 script -qec … /dev/null`.
    fn program_for_script(&mut self, cmd: &str) -> Command {
        let mut s = Command::new("timeout");
        s.args(["30", "script", "-qec", cmd, "/dev/null"]);
        for (k, v) in self.get_envs() {
            match v {
                Some(v) => s.env(k, v),
                None => s.env_remove(k),
            };
        }
        s
    }
}

#[test]
fn a_person_at_a_terminal_confirms_the_first_use() {
    let gw = tls_gateway();
    let fp = fingerprint(&gw);
    let url = format!("wss://127.0.0.1:{}", gw.port);
    let key = format!("127.0.0.1:{}", gw.port);

    let laptop = tempfile::tempdir().unwrap();
    let o = health_on_a_terminal(laptop.path(), &url, "no");
    let t = text(&o);
    assert!(
        t.contains("Trust it?") && t.contains(&fp),
        "the prompt shows the fingerprint: {t}"
    );
    assert!(!o.status.success(), "answering no refuses: {t}");
    assert!(pins(laptop.path())["pins"].as_object().unwrap().is_empty());

    let o = health_on_a_terminal(laptop.path(), &url, "yes");
    assert!(o.status.success(), "answering yes trusts it: {}", text(&o));
    let p = pins(laptop.path());
    assert_eq!(p["pins"][&key]["sha256"], fp.as_str(), "{p}");
    assert_eq!(p["pins"][&key]["confirmed"], "prompt", "{p}");
}

/// A CA and a leaf for `localhost` signed by it, made with the real `openssl` CLI.
fn ca_and_leaf(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let run = |args: &str| {
        let args: Vec<&str> = args.split_whitespace().collect();
        let o = Command::new("openssl")
            .args(&args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            o.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    run(&format!(
        "req -x509 {ec} -keyout ca.key -out ca.pem -days 30 -subj /CN=test-ca \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign"
    ));
    run(&format!(
        "req {ec} -keyout leaf.key -out leaf.csr -subj /CN=localhost"
    ));
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    run("x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out leaf.pem -days 30 -extfile ext.cnf");
    (
        dir.join("ca.pem"),
        dir.join("leaf.pem"),
        dir.join("leaf.key"),
    )
}

#[test]
fn a_ca_signed_certificate_verifies_by_name_without_a_pin() {
    let pki = tempfile::tempdir().unwrap();
    let (ca, cert, key) = ca_and_leaf(pki.path());
    let cfg = json!({"gateway": {"tls": {"enabled": true, "autoGenerate": false,
        "certPath": cert, "keyPath": key}}});
    let gw = Gateway::with_config(&cfg, &["--port", "0", "--token", TOKEN], &[]);
    let laptop = tempfile::tempdir().unwrap();
    let home = laptop.path();
    let ca = ca.to_str().unwrap();
    let by_name = format!("wss://localhost:{}", gw.port);

    let o = health(home, &by_name, &[]);
    assert!(
        !o.status.success(),
        "not a system root, not pinned: refused: {}",
        text(&o)
    );
    let o = health(home, &by_name, &["--ca-file", ca]);
    assert!(
        o.status.success(),
        "verified against the CA for its name: {}",
        text(&o)
    );
    assert!(
        pins(home)["pins"].as_object().unwrap().is_empty(),
        "a verified chain needs no pin"
    );

    let by_address = format!("wss://127.0.0.1:{}", gw.port);
    let o = health(home, &by_address, &["--ca-file", ca]);
    assert!(
        !o.status.success(),
        "the name is checked (the leaf covers only localhost): {}",
        text(&o)
    );
    let o = health(home, &by_name, &["--ca-file", "/nonexistent/ca.pem"]);
    assert!(
        !o.status.success() && text(&o).contains("--ca-file"),
        "{}",
        text(&o)
    );
}
