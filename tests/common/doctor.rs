//! Running `clawgate doctor` from tests: the real binary against a config file, with `home` as
//! HOME (and `home/state` as the state dir), and reading its `--json` report.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

/// `clawgate doctor --config cfg [--json]` with `env` added; (exit code, stdout).
pub fn run(cfg: &Path, home: &Path, env: &[(&str, &str)], json_out: bool) -> (i32, String) {
    let mut args = vec!["doctor", "--config", cfg.to_str().unwrap()];
    if json_out {
        args.push("--json");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_clawgate"))
        .args(&args)
        .env("HOME", home)
        .env("OPENCLAW_STATE_DIR", home.join("state"))
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    (code, String::from_utf8_lossy(&out.stdout).into_owned())
}

/// [`run`] with `--json`, the report parsed (`{"raw": stdout}` when it is not JSON).
pub fn run_json(cfg: &Path, home: &Path, env: &[(&str, &str)]) -> (i32, Value) {
    let (code, out) = run(cfg, home, env, true);
    let report = serde_json::from_str(&out).unwrap_or_else(|_| json!({ "raw": out }));
    (code, report)
}

/// The check called `name` in a `--json` report.
pub fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check: {report}"))
}
