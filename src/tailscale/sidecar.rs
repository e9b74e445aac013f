//! Supervision of the `clawgate-tsnet` sidecar (tailscale.md §7): spawn it, read its handshake,
//! forward its stderr into tracing, restart it with exponential backoff, and publish the current
//! LocalAPI endpoint on a watch channel — or attach to an externally run sidecar through its
//! handshake file.
//!
//! Invariants: the auth key is read from `authKeyFile` and handed over only as `TS_AUTHKEY` in
//! the child's environment (never argv, never logged); the child's stdin stays open while it
//! should run (the sidecar exits on stdin EOF, so it cannot outlive us) and `kill_on_drop` backs
//! that up; the endpoint is `None` whenever no live sidecar backs it; every task is owned by the
//! supervisor's `TaskTracker` and stops on its `CancellationToken`; shutdown closes stdin, waits
//! [`SHUTDOWN_GRACE`], then kills.
//!
//! Restart policy: the delay doubles only across consecutive starts that never came up (no
//! handshake: a crash loop, a bad binary, a refused key). A sidecar that came up and later died
//! (killed, OOM, crashed once) is restarted after [`BACKOFF_INITIAL`], so the owned Serve route is
//! back within the 5 s restore target however many times that happened before; a child that
//! keeps dying right after its handshake is still paced by its own start-up time plus that delay.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::api::Endpoint;
use super::client::LocalApiClient;
use super::config::{SidecarConfig, SIDECAR_BINARY};
use super::handshake::{Handshake, MAX_HANDSHAKE_LINE};

/// Environment variable carrying the auth key to tsnet.
pub const ENV_AUTHKEY: &str = "TS_AUTHKEY";
/// Bound on the auth key file (real keys are < 200 bytes).
pub const MAX_AUTHKEY_FILE: u64 = 4 << 10;
/// How long the sidecar may take to print its handshake: its own `--up-timeout` is 5 min (an
/// interactive login needs a human), plus slack.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(330);
/// How long a stdin-EOF shutdown may take before the child is killed (tsnet `Close` is quick).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// First restart delay; doubled per consecutive failure up to [`BACKOFF_MAX`].
pub const BACKOFF_INITIAL: Duration = Duration::from_millis(500);
/// Upper bound of the restart delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A child that ran this long resets the backoff even without a handshake (it was not crash-looping).
pub const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(60);
/// How long to wait for the exit status after the child closed stdout without a handshake.
const EXIT_STATUS_WAIT: Duration = Duration::from_secs(2);

/// What the supervisor is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SidecarState {
    /// Spawned (or waiting for the handshake file), no handshake yet.
    Starting {
        /// Restarts so far.
        restarts: u32,
    },
    /// Up; the endpoint is published.
    Running {
        /// Child process id (`None` when attached).
        pid: Option<u32>,
        /// MagicDNS name from the handshake (trailing dot).
        dns_name: String,
        /// Restarts so far.
        restarts: u32,
    },
    /// Died or failed to start; retrying after a delay.
    Backoff {
        /// Restarts so far.
        restarts: u32,
        /// Delay before the next attempt.
        retry_in: Duration,
        /// Why the last attempt ended.
        last_error: String,
    },
    /// Shut down.
    Stopped,
}

/// How to spawn the sidecar.
#[derive(Debug, Clone)]
pub struct SidecarSpawn {
    /// Executable.
    pub binary: PathBuf,
    /// Arguments (no secrets).
    pub args: Vec<OsString>,
    /// Auth key file, read at every (re)start.
    pub auth_key_file: Option<PathBuf>,
    /// Extra environment (e.g. `TS_*` knobs in tests); never put the auth key here.
    pub env: Vec<(OsString, OsString)>,
    /// Restart delay bounds.
    pub backoff: (Duration, Duration),
    /// Handshake bound.
    pub handshake_timeout: Duration,
}

impl SidecarSpawn {
    /// The spawn recipe for `gateway.tailscale.sidecar`; `state_root` is clawgate's state dir.
    pub fn from_config(cfg: &SidecarConfig, state_root: &Path) -> Self {
        let mut args: Vec<OsString> = vec!["--hostname".into(), cfg.hostname_or_default().into()];
        args.push("--state-dir".into());
        args.push(cfg.state_dir_or_default(state_root).into());
        if let Some(url) = &cfg.control_url {
            args.extend(["--control-url".into(), url.into()]);
        }
        if cfg.ephemeral {
            args.push("--ephemeral".into());
        }
        if !cfg.tags.is_empty() {
            args.extend(["--advertise-tags".into(), cfg.tags.join(",").into()]);
        }
        Self {
            binary: cfg.binary.clone().unwrap_or_else(default_binary),
            args,
            auth_key_file: cfg.auth_key_file.clone(),
            env: Vec::new(),
            backoff: (BACKOFF_INITIAL, BACKOFF_MAX),
            handshake_timeout: HANDSHAKE_TIMEOUT,
        }
    }
}

/// `clawgate-tsnet` next to the running executable if present, else looked up in `$PATH`.
fn default_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join(SIDECAR_BINARY)))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(SIDECAR_BINARY))
}

/// Why one sidecar run ended.
#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    /// Reading the auth key file failed.
    #[error("auth key file {path}: {reason}")]
    AuthKey {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The binary could not be started.
    #[error("cannot start {binary}: {source}")]
    Spawn {
        /// The executable.
        binary: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// No valid handshake.
    #[error("sidecar handshake: {0}")]
    Handshake(String),
    /// The process ended.
    #[error("sidecar exited: {0}")]
    Exited(String),
}

/// Handle to a running supervisor. Dropping it without [`Sidecar::shutdown`] cancels the tasks;
/// `kill_on_drop` and the stdin-EOF rule still stop the child.
#[derive(Debug)]
pub struct Sidecar {
    endpoint: watch::Receiver<Option<Endpoint>>,
    state: watch::Receiver<SidecarState>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

pub(super) struct Publish {
    pub(super) endpoint: watch::Sender<Option<Endpoint>>,
    pub(super) state: watch::Sender<SidecarState>,
}

impl Sidecar {
    /// Starts supervising a spawned sidecar; it stops when `parent` is cancelled.
    pub fn spawn(spec: SidecarSpawn, parent: &CancellationToken) -> Self {
        let (this, publish) = Self::new(parent);
        let (cancel, tracker) = (this.cancel.clone(), this.tracker.clone());
        this.tracker
            .spawn(supervise(spec, publish, cancel, tracker));
        this
    }

    /// Follows the handshake file of a sidecar run by someone else (e.g. a systemd unit).
    pub fn attach(handshake_file: PathBuf, parent: &CancellationToken) -> Self {
        let (this, publish) = Self::new(parent);
        this.tracker.spawn(super::attach::follow_file(
            handshake_file,
            publish,
            this.cancel.clone(),
        ));
        this
    }

    fn new(parent: &CancellationToken) -> (Self, Publish) {
        let (ep_tx, endpoint) = watch::channel(None);
        let (st_tx, state) = watch::channel(SidecarState::Starting { restarts: 0 });
        let this = Self {
            endpoint,
            state,
            cancel: parent.child_token(),
            tracker: TaskTracker::new(),
        };
        let publish = Publish {
            endpoint: ep_tx,
            state: st_tx,
        };
        (this, publish)
    }

    /// The current LocalAPI endpoint (`None` while the sidecar is not up).
    pub fn endpoint(&self) -> watch::Receiver<Option<Endpoint>> {
        self.endpoint.clone()
    }

    /// The supervisor state.
    pub fn state(&self) -> watch::Receiver<SidecarState> {
        self.state.clone()
    }

    /// A LocalAPI client that follows this sidecar across restarts.
    pub fn client(&self) -> LocalApiClient {
        LocalApiClient::following(self.endpoint())
    }

    /// Waits until an endpoint is published (or `limit` passes).
    pub async fn wait_endpoint(&self, limit: Duration) -> Option<Endpoint> {
        let mut rx = self.endpoint();
        let ready = tokio::time::timeout(limit, rx.wait_for(Option::is_some)).await;
        ready.ok()?.ok()?;
        let current = rx.borrow().clone();
        current
    }

    /// Stops the child gracefully and waits for every task.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

async fn supervise(
    spec: SidecarSpawn,
    publish: Publish,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    let mut restarts = 0u32;
    let mut delay = spec.backoff.0;
    loop {
        publish
            .state
            .send_replace(SidecarState::Starting { restarts });
        let started = Instant::now();
        let outcome = run_once(&spec, &publish, &cancel, &tracker, restarts).await;
        publish.endpoint.send_replace(None);
        let Err(err) = outcome else { break };
        let came_up = matches!(*publish.state.borrow(), SidecarState::Running { .. });
        if came_up || started.elapsed() >= BACKOFF_RESET_AFTER {
            delay = spec.backoff.0;
        }
        tracing::warn!(error = %err, retry_in = ?delay, "Tailscale sidecar stopped; restarting");
        publish.state.send_replace(SidecarState::Backoff {
            restarts,
            retry_in: delay,
            last_error: err.to_string(),
        });
        tokio::select! {
            () = cancel.cancelled() => break,
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(spec.backoff.1);
        restarts += 1;
    }
    publish.endpoint.send_replace(None);
    publish.state.send_replace(SidecarState::Stopped);
}

/// One child lifetime. `Ok(())` = cancelled and shut down; `Err` = it ended or never came up.
async fn run_once(
    spec: &SidecarSpawn,
    publish: &Publish,
    cancel: &CancellationToken,
    tracker: &TaskTracker,
    restarts: u32,
) -> Result<(), SidecarError> {
    let mut child = start_child(spec)?;
    let pid = child.id();
    let stdin = child.stdin.take();
    if let Some(stderr) = child.stderr.take() {
        tracker.spawn(forward_lines(stderr, "stderr", pid));
    }
    let mut stdout = child
        .stdout
        .take()
        .map(BufReader::new)
        .ok_or_else(|| SidecarError::Handshake("no stdout pipe".into()))?;
    let handshake = tokio::select! {
        () = cancel.cancelled() => return stop_child(child, stdin).await,
        st = child.wait() => return Err(exited(st)),
        r = tokio::time::timeout(spec.handshake_timeout, read_line(&mut stdout)) => {
            r.map_err(|_| SidecarError::Handshake(format!("none within {:?}", spec.handshake_timeout)))?
        }
    };
    let line = match handshake {
        Ok(line) => line,
        // Stdout closed: usually the child is exiting; its status says more than the EOF.
        Err(e) => match tokio::time::timeout(EXIT_STATUS_WAIT, child.wait()).await {
            Ok(st) => return Err(exited(st)),
            Err(_) => return Err(e),
        },
    };
    let (hs, ep) = Handshake::parse(&line).map_err(|e| SidecarError::Handshake(e.to_string()))?;
    tracker.spawn(forward_lines(stdout.into_inner(), "stdout", pid));
    tracing::info!(dns_name = %hs.dns_name, endpoint = %ep, pid, "Tailscale sidecar is up");
    publish.endpoint.send_replace(Some(ep));
    publish.state.send_replace(SidecarState::Running {
        pid,
        dns_name: hs.dns_name,
        restarts,
    });
    tokio::select! {
        () = cancel.cancelled() => stop_child(child, stdin).await,
        st = child.wait() => Err(exited(st)),
    }
}

fn start_child(spec: &SidecarSpawn) -> Result<Child, SidecarError> {
    let mut cmd = Command::new(&spec.binary);
    cmd.args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(path) = &spec.auth_key_file {
        cmd.env(ENV_AUTHKEY, read_auth_key(path)?);
    }
    cmd.spawn().map_err(|source| SidecarError::Spawn {
        binary: spec.binary.clone(),
        source,
    })
}

fn read_auth_key(path: &Path) -> Result<String, SidecarError> {
    use std::io::Read as _;
    use std::os::unix::fs::PermissionsExt as _;
    let err = |reason: String| SidecarError::AuthKey {
        path: path.to_owned(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    if file
        .metadata()
        .map(|m| m.permissions().mode() & 0o077 != 0)
        .unwrap_or(false)
    {
        tracing::warn!(path = %path.display(), "auth key file is readable by group/others; chmod 600 it");
    }
    let mut key = String::new();
    file.take(MAX_AUTHKEY_FILE)
        .read_to_string(&mut key)
        .map_err(|e| err(e.to_string()))?;
    let key = key.trim();
    if key.is_empty() {
        return Err(err("empty".into()));
    }
    Ok(key.to_owned())
}

/// Closes stdin (the sidecar's shutdown signal), waits [`SHUTDOWN_GRACE`], then kills.
async fn stop_child(
    mut child: Child,
    stdin: Option<tokio::process::ChildStdin>,
) -> Result<(), SidecarError> {
    drop(stdin);
    if tokio::time::timeout(SHUTDOWN_GRACE, child.wait())
        .await
        .is_err()
    {
        tracing::warn!("Tailscale sidecar ignored stdin EOF; killing it");
        let _ = child.kill().await;
    }
    Ok(())
}

fn exited(status: std::io::Result<std::process::ExitStatus>) -> SidecarError {
    SidecarError::Exited(match status {
        Ok(st) => st.to_string(),
        Err(e) => e.to_string(),
    })
}

/// Reads one bounded line (without the newline); EOF before a newline is an error.
async fn read_line<R: AsyncRead + Unpin>(r: &mut BufReader<R>) -> Result<Vec<u8>, SidecarError> {
    let mut line = Vec::new();
    let n = (&mut *r)
        .take(MAX_HANDSHAKE_LINE as u64)
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| SidecarError::Handshake(e.to_string()))?;
    if n == 0 || line.last() != Some(&b'\n') {
        return Err(SidecarError::Handshake(
            "stdout closed before a complete handshake line".into(),
        ));
    }
    line.pop();
    Ok(line)
}

/// Forwards the sidecar's output lines into tracing until EOF (i.e. until the child exits).
/// Lines carry the target `clawgate::tsnet` and the child's pid field, so they read as
/// `INFO clawgate::tsnet: <sidecar's own line> pid=…`.
async fn forward_lines<R: AsyncRead + Unpin>(r: R, stream: &'static str, pid: Option<u32>) {
    let mut lines = BufReader::new(r).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if stream == "stderr" {
            tracing::info!(target: "clawgate::tsnet", pid, "{line}");
        } else {
            tracing::warn!(target: "clawgate::tsnet", pid, "unexpected stdout: {line}");
        }
    }
}
