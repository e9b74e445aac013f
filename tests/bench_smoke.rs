//! Smoke test for the `clawgate-bench` load tool, so it cannot silently rot: a short `run` against the
//! floor server it spawns itself must measure every scenario with non-zero results and no errors,
//! and `report` must render those results. Not a performance test: no thresholds on the numbers.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BENCH: &str = env!("CARGO_BIN_EXE_clawgate-bench");
/// Upper bound for the whole short run (spawn, 50 idle conns, 5 × 0.3 s scenarios).
const RUN_DEADLINE: Duration = Duration::from_secs(60);

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// Runs the bench with `args`, killing it if it exceeds `RUN_DEADLINE`.
fn bench(args: &[&str]) {
    let mut child = Command::new(BENCH)
        .args(args)
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn clawgate-bench");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "clawgate-bench {args:?} failed: {status}");
            return;
        }
        if start.elapsed() > RUN_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("clawgate-bench {args:?} exceeded {RUN_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn value(result: &serde_json::Value, key: &str) -> f64 {
    result["metrics"]
        .as_array()
        .expect("metrics array")
        .iter()
        .find(|m| m["key"] == key)
        .and_then(|m| m["value"].as_f64())
        .unwrap_or_else(|| panic!("metric {key} missing in {result:#}"))
}

/// Per-server `run` flags for a floor spawned on a free port; returns the port too.
fn floor_server(name: &str) -> (u16, Vec<String>) {
    let port = free_port();
    let spawn = format!("{BENCH} --threads 1 floor --listen 127.0.0.1:{port}");
    let url = format!("ws://127.0.0.1:{port}");
    let args = ["--name", name, "--spawn", &spawn, "--url", &url];
    (port, args.iter().map(|s| s.to_string()).collect())
}

fn check_result(result: &serde_json::Value) {
    assert_eq!(
        result["notes"],
        serde_json::json!([]),
        "no scenario may fail"
    );
    assert_eq!(result["rounds"], 2);
    for key in [
        "startup.first_health_ms",
        "memory.idle_rss_mb",
        "memory.loaded_rss_mb",
        "handshake.c8.rate",
        "handshake.c8.p99_ms",
        "rpc.health.c1.rate",
        "rpc.health.c16.rate",
        "rpc.system-presence.c1.rate",
        "rpc.system-presence.c16.rate",
        "rpc.system-presence.c16.p50_ms",
    ] {
        assert!(value(result, key) > 0.0, "{key} should be positive");
    }
    let rate = result["metrics"]
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["key"] == "rpc.health.c16.rate"))
        .expect("rate metric");
    assert_eq!(
        rate["samples"].as_array().map(Vec::len),
        Some(2),
        "one sample per round"
    );
    for key in [
        "handshake.c8.errors",
        "rpc.health.c16.errors",
        "rpc.system-presence.c1.errors",
    ] {
        assert_eq!(value(result, key), 0.0, "{key}");
    }
}

#[test]
fn bench_measures_every_scenario_against_two_interleaved_floors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (port_a, a) = floor_server("floor");
    let (port_b, b) = floor_server("second");
    let common = [
        "--threads",
        "1",
        "run",
        "--duration",
        "0.2",
        "--warmup",
        "0.05",
        "--rounds",
        "2",
        "--settle",
        "0.1",
        "--idle-conns",
        "50",
        "--start-deadline",
        "20",
        "--out-dir",
    ];
    let mut args: Vec<&str> = common.to_vec();
    args.push(dir.path().to_str().expect("utf-8 path"));
    args.extend(a.iter().chain(&b).map(String::as_str));
    bench(&args);
    let mut files = Vec::new();
    for name in ["floor", "second"] {
        let path = dir.path().join(format!("{name}.json"));
        let text = std::fs::read_to_string(&path).expect("result written");
        check_result(&serde_json::from_str(&text).expect("result is JSON"));
        files.push(path);
    }
    // The spawned floors were stopped: nothing listens on their ports any more.
    for port in [port_a, port_b] {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "floor on {port} still running"
        );
    }
    report_renders(dir.path(), &files);
}

fn report_renders(dir: &Path, files: &[std::path::PathBuf]) {
    let md = dir.join("BENCH.md");
    let mut args = vec![
        "report",
        "--subject",
        "second",
        "--out",
        md.to_str().expect("utf-8"),
    ];
    args.extend(files.iter().map(|f| f.to_str().expect("utf-8")));
    bench(&args);
    let text = std::fs::read_to_string(&md).expect("report written");
    assert!(
        text.contains("| Metric | floor | second | second / floor |"),
        "{text}"
    );
    assert!(
        text.contains("connect→hello-ok, 8 clients: per second"),
        "{text}"
    );
    assert!(
        text.contains("| start → first `health` ≤ 50 ms |"),
        "{text}"
    );
}

/// The node scenarios against a real clawgate: a node is paired and approved, invokes round-trip
/// through the gateway and the direct relay, and remote pairing requests are approved and retried.
#[test]
fn bench_measures_node_invoke_and_pairing_against_clawgate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let home = dir.path().join("home");
    let spawn = format!(
        "env HOME={h} OPENCLAW_STATE_DIR={h}/state {bin} run --port {port} --token smoke-token-0123456789",
        h = home.display(),
        bin = env!("CARGO_BIN_EXE_clawgate"),
    );
    let url = format!("ws://127.0.0.1:{port}");
    let out = dir.path().join("clawgate.json");
    let args = [
        "--threads",
        "1",
        "run",
        "--token",
        "smoke-token-0123456789",
        "--duration",
        "0.2",
        "--warmup",
        "0.05",
        "--rounds",
        "1",
        "--settle",
        "0.1",
        "--start-deadline",
        "20",
        "--only",
        "node,pairing",
        "--node-servers",
        "clawgate",
        "--pairing-servers",
        "clawgate",
        "--name",
        "clawgate",
        "--url",
        &url,
        "--spawn",
        &spawn,
        "--json-out",
        out.to_str().expect("utf-8 path"),
    ];
    bench(&args);
    let text = std::fs::read_to_string(&out).expect("result written");
    let result: serde_json::Value = serde_json::from_str(&text).expect("result is JSON");
    assert_eq!(
        result["notes"],
        serde_json::json!([]),
        "no scenario may fail"
    );
    for key in [
        "node.direct.paced.rate",
        "node.direct.paced.p50_ms",
        "node.invoke.paced.rate",
        "node.invoke.paced.p50_ms",
        "node.invoke.max.rate",
        "pairing.approve_ack.p50_ms",
        "pairing.retry_hello_ok.p99_ms",
    ] {
        assert!(value(&result, key) > 0.0, "{key} should be positive");
    }
    for key in [
        "node.invoke.paced.errors",
        "node.invoke.max.errors",
        "pairing.retry.errors",
    ] {
        assert_eq!(value(&result, key), 0.0, "{key}");
    }
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "clawgate on {port} still running"
    );
}
