//! The server under test as an OS process: spawning it, stopping it by PID, and its memory.
//!
//! Memory is the summed `VmRSS` of the server PID and all its descendants (found by scanning
//! `/proc/*/stat` for parent PIDs), because the reference gateway runs helper processes next to its
//! main one. A spawned server runs in its own process group; `ServerProcess::stop` (also run on drop)
//! sends SIGTERM to that group and SIGKILL after a grace period, so nothing outlives the bench.

use std::collections::HashMap;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use thiserror::Error;

/// How long a server gets to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Error)]
pub enum ProcError {
    #[error("spawning `{cmd}`: {source}")]
    Spawn { cmd: String, source: std::io::Error },
    #[error("opening server log {path}: {source}")]
    Log {
        path: String,
        source: std::io::Error,
    },
    #[error("reading /proc for pid {0}: process gone")]
    Gone(u32),
}

/// A server process started by the bench (through `sh -c 'exec …'`, so the PID is the server's).
pub struct ServerProcess {
    child: Option<Child>,
    pid: u32,
}

impl ServerProcess {
    /// Starts `cmd` with stdout and stderr appended to `log` (or discarded).
    pub fn spawn(cmd: &str, log: Option<&Path>) -> Result<Self, ProcError> {
        let (out, err) = match log {
            Some(path) => {
                let open = || {
                    fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                        .map_err(|source| ProcError::Log {
                            path: path.display().to_string(),
                            source,
                        })
                };
                (Stdio::from(open()?), Stdio::from(open()?))
            }
            None => (Stdio::null(), Stdio::null()),
        };
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("exec {cmd}"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|source| ProcError::Spawn {
                cmd: cmd.to_owned(),
                source,
            })?;
        Ok(Self {
            pid: child.id(),
            child: Some(child),
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// True while the process has not exited.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGTERM to the process group, SIGKILL after `STOP_GRACE`, then reap.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let group = Pid::from_raw(self.pid as i32);
        let _ = killpg(group, Signal::SIGTERM);
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if !matches!(child.try_wait(), Ok(None)) {
                let _ = killpg(group, Signal::SIGKILL); // helpers left in the group
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = killpg(group, Signal::SIGKILL);
        let _ = child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Summed resident set size (KiB) of `pid` and all its descendants.
pub fn rss_tree_kib(pid: u32) -> Result<u64, ProcError> {
    tree_sum(pid, rss_kib)
}

/// Summed user + system CPU seconds of `pid` and all its live descendants.
pub fn cpu_secs_tree(pid: u32) -> Result<f64, ProcError> {
    Ok(tree_sum(pid, cpu_ticks)? as f64 / clock_ticks_per_sec())
}

/// User + system CPU seconds of this (bench) process.
pub fn cpu_secs_self() -> f64 {
    cpu_ticks(std::process::id()).unwrap_or(0) as f64 / clock_ticks_per_sec()
}

/// `f(pid)` plus `f` of every descendant (descendants that vanish count 0).
fn tree_sum(pid: u32, f: fn(u32) -> Option<u64>) -> Result<u64, ProcError> {
    let mut total = f(pid).ok_or(ProcError::Gone(pid))?;
    let children = child_map();
    let mut stack = children.get(&pid).cloned().unwrap_or_default();
    while let Some(p) = stack.pop() {
        total += f(p).unwrap_or(0);
        if let Some(c) = children.get(&p) {
            stack.extend_from_slice(c);
        }
    }
    Ok(total)
}

/// Fields of `/proc/<pid>/stat` after the parenthesised command name (state is index 0).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// utime + stime in clock ticks (stat fields 14 and 15).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let f = stat_fields(pid)?;
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn clock_ticks_per_sec() -> f64 {
    use nix::unistd::{sysconf, SysconfVar};
    match sysconf(SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as f64,
        _ => 100.0, // the Linux default USER_HZ
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// parent PID → child PIDs for every process visible in /proc.
fn child_map() -> HashMap<u32, Vec<u32>> {
    let mut map: HashMap<u32, Vec<u32>> = HashMap::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return map;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let ppid = stat_fields(pid).and_then(|f| f.get(1)?.parse().ok());
        if let Some(ppid) = ppid {
            map.entry(ppid).or_default().push(pid);
        }
    }
    map
}

/// Open file descriptors of `pid` (0 when it is gone).
pub fn fd_count(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Raises the soft open-file limit to the hard limit (1,000 idle connections need > 1,024 fds);
/// returns the new soft limit. A spawned server inherits it.
pub fn raise_nofile_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
                hard
            } else {
                soft
            }
        }
        Ok((soft, _)) => soft,
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_of_a_spawned_tree_is_summed_and_stop_reaps_the_group() {
        let mut p = ServerProcess::spawn("sh -c 'sleep 30 & sleep 30'", None).expect("spawn sh");
        std::thread::sleep(Duration::from_millis(200));
        let own = rss_kib(p.pid()).expect("own rss");
        let tree = rss_tree_kib(p.pid()).expect("tree rss");
        assert!(tree > own, "tree {tree} KiB should exceed own {own} KiB");
        assert!(cpu_secs_tree(p.pid()).expect("cpu of a live tree") >= 0.0);
        p.stop();
        assert!(!p.running());
        assert!(rss_tree_kib(p.pid()).is_err());
    }
}
