//! The managed SSH tunnel (issue 16 item 5, threats.md SSH-1): runs the system `ssh -N -L`
//! with the arguments of [`super::ssh::argv`] and keeps it up — reconnecting with capped
//! exponential backoff and jitter after the process dies or a keepalive gives up, moving to an
//! ephemeral local port when the current one is taken, and stopping for good on a host-key or
//! login failure.
//!
//! Owns at most one ssh child at a time and the supervisor task that holds it; both end when
//! the [`Tunnel`] is closed or dropped (the child is killed; `kill_on_drop` backs that up if the
//! runtime goes first). Invariants: the state is [`TunnelState::Up`] only while a child runs
//! that has itself reported listening on `127.0.0.1:<port>` (a TCP connect alone could reach
//! another local process that raced for the port); ssh's stderr is read in bounded lines and
//! only a bounded tail of its non-debug lines is kept, to explain a failure; nothing secret
//! passes through argv (keys stay in files ssh reads).

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStderr, Command};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::ssh::{self, Backoff, SshFailure, TunnelSpec};

/// The ssh client, looked up in `PATH` like a user's own `ssh`.
pub const PROGRAM: &str = "ssh";
/// How long one start may take before ssh confirms its listener: `ConnectTimeout` (5 s) for
/// TCP, then key exchange and authentication on a slow link.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// A tunnel that stayed up this long resets the backoff (it was not flapping).
pub const STABLE_AFTER: Duration = Duration::from_secs(10);
/// Lines of ssh's non-debug stderr kept to explain a failure.
const MAX_TAIL: usize = 32;
/// One stderr line is cut at this length.
const MAX_LINE: u64 = 2048;
/// How long ssh's reported listener may take to accept.
const ACCEPT_WAIT: Duration = Duration::from_secs(2);
/// How long an exited ssh gets to flush the rest of its stderr.
const DRAIN_WAIT: Duration = Duration::from_secs(1);

/// What the tunnel is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TunnelState {
    /// ssh listens on `127.0.0.1:<port>`.
    Up(u16),
    /// Down, reconnecting; why it went down.
    Down(String),
    /// Stopped for good (host key, login), or closed.
    Failed(SshFailure),
}

/// A running tunnel and its supervisor.
pub struct Tunnel {
    state: watch::Receiver<TunnelState>,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Tunnel {
    /// Starts ssh and waits until it listens, on `preferred` when free, else on an ephemeral
    /// port. A first failure is returned as is (the caller reports it); later ones reconnect.
    pub async fn open(spec: TunnelSpec, preferred: u16) -> Result<Tunnel, SshFailure> {
        let mut port = pick_port(preferred);
        let run = match start(&spec, port).await {
            Err(SshFailure::LocalPortBusy(_)) => {
                port = pick_port(0);
                start(&spec, port).await?
            }
            other => other?,
        };
        let (tx, rx) = watch::channel(TunnelState::Up(port));
        let cancel = CancellationToken::new();
        let span = tracing::info_span!("ssh_tunnel", target = %spec.target);
        let sup = Supervisor {
            spec,
            port,
            tx,
            cancel: cancel.clone(),
        };
        let task = tokio::spawn(sup.run(run).instrument(span));
        Ok(Tunnel {
            state: rx,
            cancel,
            task: Some(task),
        })
    }

    /// The current state.
    pub fn state(&self) -> TunnelState {
        self.state.borrow().clone()
    }

    /// A receiver that sees every state change.
    pub fn watch(&self) -> watch::Receiver<TunnelState> {
        self.state.clone()
    }

    /// Stops ssh and waits for the supervisor.
    pub async fn close(mut self) {
        self.cancel.cancel();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// `preferred` on 127.0.0.1 if it is free now, else an ephemeral port the OS hands out.
fn pick_port(preferred: u16) -> u16 {
    let try_bind = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).ok();
    let l = (preferred != 0).then(|| try_bind(preferred)).flatten();
    l.or_else(|| try_bind(0))
        .and_then(|l| l.local_addr().ok())
        .map_or(preferred, |a| a.port())
}

/// One ssh child and what it said.
struct Running {
    child: Child,
    tail: Arc<Mutex<Vec<String>>>,
    reader: JoinHandle<()>,
    target: ssh::SshTarget,
}

impl Running {
    /// Why it ended, from its exit status and stderr (waits briefly for the last lines).
    async fn failure(mut self) -> SshFailure {
        let status = self.child.wait().await;
        let _ = tokio::time::timeout(DRAIN_WAIT, self.reader).await;
        let mut lines = self.tail.lock().map(|t| t.clone()).unwrap_or_default();
        if lines.is_empty() {
            let how = status.map_or_else(|e| e.to_string(), |s| s.to_string());
            lines.push(format!("ssh ended ({how})"));
        }
        ssh::classify(&self.target, &lines)
    }

    async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// Spawns ssh for `port` and waits for its own "listening" line, its exit, or the timeout.
async fn start(spec: &TunnelSpec, port: u16) -> Result<Running, SshFailure> {
    let mut child = Command::new(PROGRAM)
        .args(ssh::argv(spec, port))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| SshFailure::Transient(format!("cannot run {PROGRAM}: {e}")))?;
    let (ready_tx, ready_rx) = oneshot::channel();
    let tail = Arc::new(Mutex::new(Vec::new()));
    let stderr = child.stderr.take();
    let reader = tokio::spawn(read_stderr(stderr, port, tail.clone(), ready_tx));
    let mut run = Running {
        child,
        tail,
        reader,
        target: spec.target.clone(),
    };
    tokio::select! {
        r = ready_rx => match r {
            Ok(()) => accepting(run, port).await,
            Err(_) => Err(run.failure().await),
        },
        _ = run.child.wait() => Err(run.failure().await),
        () = tokio::time::sleep(READY_TIMEOUT) => {
            run.stop().await;
            Err(SshFailure::Transient(format!("ssh did not open the tunnel within {READY_TIMEOUT:?}")))
        }
    }
}

/// After ssh's "listening" line: waits until the port accepts (OpenSSH logs the line a moment
/// before its listener takes connections; a probe right then would be refused).
async fn accepting(mut run: Running, port: u16) -> Result<Running, SshFailure> {
    let deadline = Instant::now() + ACCEPT_WAIT;
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            tracing::info!(port, "SSH tunnel up");
            return Ok(run);
        }
        if Instant::now() >= deadline {
            run.stop().await;
            return Err(SshFailure::Transient(format!(
                "ssh reported its listener on 127.0.0.1:{port}, but it did not accept within {ACCEPT_WAIT:?}"
            )));
        }
        tokio::select! {
            _ = run.child.wait() => return Err(run.failure().await),
            () = tokio::time::sleep(Duration::from_millis(5)) => {}
        }
    }
}

/// Reads stderr: signals readiness once, keeps the non-debug tail, logs the rest at debug.
async fn read_stderr(
    stderr: Option<ChildStderr>,
    port: u16,
    tail: Arc<Mutex<Vec<String>>>,
    ready: oneshot::Sender<()>,
) {
    let Some(stderr) = stderr else { return };
    let mut reader = BufReader::new(stderr);
    let mut ready = Some(ready);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match (&mut reader)
            .take(MAX_LINE)
            .read_until(b'\n', &mut buf)
            .await
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&buf).trim_end().to_string();
        if ssh::ready_port(&line) == Some(port) {
            if let Some(tx) = ready.take() {
                let _ = tx.send(());
            }
        }
        if line.starts_with("debug") || benign(&line) {
            tracing::trace!("ssh: {line}");
            continue;
        }
        tracing::debug!("ssh: {line}");
        if let Ok(mut t) = tail.lock() {
            if t.len() == MAX_TAIL {
                t.remove(0);
            }
            t.push(line);
        }
    }
}

/// ssh's informational (non-debug) lines: not reasons for anything.
fn benign(line: &str) -> bool {
    [
        "OpenSSH_",
        "Authenticated to ",
        "Transferred: ",
        "Bytes per second",
    ]
    .iter()
    .any(|p| line.starts_with(p))
}

/// Keeps the tunnel up after the first start.
struct Supervisor {
    spec: TunnelSpec,
    port: u16,
    tx: watch::Sender<TunnelState>,
    cancel: CancellationToken,
}

impl Supervisor {
    async fn run(mut self, mut run: Running) {
        let mut backoff = Backoff::new();
        loop {
            let since = Instant::now();
            tokio::select! {
                () = self.cancel.cancelled() => return run.stop().await,
                _ = run.child.wait() => {}
            }
            let failure = run.failure().await;
            if failure.is_fatal() {
                tracing::error!("SSH tunnel stopped: {failure}");
                self.tx.send_replace(TunnelState::Failed(failure));
                return;
            }
            if since.elapsed() >= STABLE_AFTER {
                backoff.reset();
            }
            tracing::warn!("SSH tunnel down, reconnecting: {failure}");
            self.tx.send_replace(TunnelState::Down(failure.to_string()));
            run = match self.reconnect(&mut backoff).await {
                Some(r) => r,
                None => return,
            };
            self.tx.send_replace(TunnelState::Up(self.port));
        }
    }

    /// Retries until a child is up (`Some`), a fatal failure, or cancellation (`None`).
    async fn reconnect(&mut self, backoff: &mut Backoff) -> Option<Running> {
        loop {
            let delay = backoff.next(rand::random::<f64>());
            tokio::select! {
                () = self.cancel.cancelled() => return None,
                () = tokio::time::sleep(delay) => {}
            }
            let started = tokio::select! {
                () = self.cancel.cancelled() => return None,
                r = start(&self.spec, self.port) => r,
            };
            match started {
                Ok(run) => return Some(run),
                Err(f) if f.is_fatal() => {
                    tracing::error!("SSH tunnel stopped: {f}");
                    self.tx.send_replace(TunnelState::Failed(f));
                    return None;
                }
                Err(SshFailure::LocalPortBusy(why)) => {
                    self.port = pick_port(0);
                    tracing::warn!(port = self.port, "local tunnel port taken ({why}); moving");
                }
                Err(f) => {
                    tracing::warn!(retry_in = ?delay, "SSH tunnel reconnect failed: {f}");
                    self.tx.send_replace(TunnelState::Down(f.to_string()));
                }
            }
        }
    }
}
