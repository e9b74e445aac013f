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

#[test]
fn bench_measures_every_scenario_against_the_floor() {
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("floor.json");
    let port = free_port();
    let spawn = format!("{BENCH} --threads 1 floor --listen 127.0.0.1:{port}");
    let url = format!("ws://127.0.0.1:{port}");
    bench(&[
        "--threads",
        "1",
        "run",
        "--name",
        "floor",
        "--spawn",
        &spawn,
        "--url",
        &url,
        "--duration",
        "0.3",
        "--warmup",
        "0.1",
        "--settle",
        "0.1",
        "--idle-conns",
        "50",
        "--start-deadline",
        "20",
        "--json-out",
        json.to_str().expect("utf-8 path"),
    ]);
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("result written"))
            .expect("result is JSON");
    assert_eq!(
        result["notes"],
        serde_json::json!([]),
        "no scenario may fail"
    );
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
        assert!(value(&result, key) > 0.0, "{key} should be positive");
    }
    for key in [
        "handshake.c8.errors",
        "rpc.health.c16.errors",
        "rpc.system-presence.c1.errors",
    ] {
        assert_eq!(value(&result, key), 0.0, "{key}");
    }
    // The spawned floor was stopped: nothing listens on its port any more.
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "floor still running"
    );
    report_renders(dir.path(), &json);
}

fn report_renders(dir: &Path, json: &Path) {
    let md = dir.join("BENCH.md");
    bench(&[
        "report",
        "--out",
        md.to_str().expect("utf-8"),
        json.to_str().expect("utf-8"),
    ]);
    let text = std::fs::read_to_string(&md).expect("report written");
    assert!(text.contains("| Metric | floor |"), "{text}");
    assert!(
        text.contains("connect→hello-ok, 8 clients: per second"),
        "{text}"
    );
    assert!(text.contains("`clawgate` was not measured"), "{text}");
}
