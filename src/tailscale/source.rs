//! Turning `gateway.tailscale` into a running backend ([`TailscaleRuntime`]) and reporting which
//! backend is in use ([`TailscaleSource`], for `clawgate status`).
//!
//! Invariant: `mode = off` produces no runtime at all — no client, no sidecar, no socket access.

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::api::{Endpoint, LocalApi};
use super::client::LocalApiClient;
use super::config::{Backend, TailscaleConfig};
use super::sidecar::{Sidecar, SidecarSpawn, SidecarState};

/// Which LocalAPI backs the gateway.
#[derive(Debug, Clone)]
pub enum TailscaleSource {
    /// `mode = off`.
    Off,
    /// The system tailscaled.
    SystemSocket(Endpoint),
    /// clawgate's sidecar (spawned or attached) in its current state.
    Sidecar {
        /// Attached to an externally run sidecar.
        attached: bool,
        /// Current supervisor state.
        state: SidecarState,
        /// Current endpoint.
        endpoint: Option<Endpoint>,
    },
}

/// A serializable status line for `clawgate status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceReport {
    /// `off`, `system` or `sidecar`.
    pub backend: &'static str,
    /// `unix:/path` or `tcp:127.0.0.1:port` (no password).
    pub endpoint: Option<String>,
    /// `off`, `configured`, `starting`, `running`, `backoff`, `stopped`.
    pub state: &'static str,
    /// Sidecar pid when spawned.
    pub pid: Option<u32>,
    /// Sidecar restarts.
    pub restarts: u32,
    /// Why the sidecar last stopped.
    pub last_error: Option<String>,
}

impl TailscaleSource {
    /// The status report.
    pub fn report(&self) -> SourceReport {
        let mut r = SourceReport {
            backend: "off",
            endpoint: None,
            state: "off",
            pid: None,
            restarts: 0,
            last_error: None,
        };
        match self {
            Self::Off => {}
            Self::SystemSocket(ep) => {
                r.backend = "system";
                r.endpoint = Some(ep.to_string());
                r.state = "configured";
            }
            Self::Sidecar {
                state, endpoint, ..
            } => {
                r.backend = "sidecar";
                r.endpoint = endpoint.as_ref().map(ToString::to_string);
                fill_sidecar_state(&mut r, state);
            }
        }
        r
    }
}

fn fill_sidecar_state(r: &mut SourceReport, state: &SidecarState) {
    match state {
        SidecarState::Starting { restarts } => (r.state, r.restarts) = ("starting", *restarts),
        SidecarState::Running { pid, restarts, .. } => {
            (r.state, r.pid, r.restarts) = ("running", *pid, *restarts);
        }
        SidecarState::Backoff {
            restarts,
            last_error,
            ..
        } => {
            (r.state, r.restarts) = ("backoff", *restarts);
            r.last_error = Some(last_error.clone());
        }
        SidecarState::Stopped => r.state = "stopped",
    }
}

/// Reports the backend in use (see [`TailscaleRuntime::source_probe`]).
#[derive(Clone)]
pub struct SourceProbe(Arc<dyn Fn() -> TailscaleSource + Send + Sync>);

impl SourceProbe {
    /// The backend right now.
    pub fn get(&self) -> TailscaleSource {
        (self.0)()
    }
}

impl std::fmt::Debug for SourceProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SourceProbe({:?})", self.get())
    }
}

/// The running Tailscale backend: the LocalAPI client and, in sidecar mode, its supervisor.
#[derive(Debug)]
pub struct TailscaleRuntime {
    client: Arc<LocalApiClient>,
    sidecar: Option<(Sidecar, bool)>,
    system: Option<Endpoint>,
}

impl TailscaleRuntime {
    /// Starts what `cfg` selects; `None` for `mode = off`. `state_root` is clawgate's state
    /// directory (default sidecar state lives in `<state_root>/tailscale`). Call
    /// [`TailscaleConfig::validate`] first.
    pub fn start(
        cfg: &TailscaleConfig,
        state_root: &Path,
        cancel: &CancellationToken,
    ) -> Option<Self> {
        let (client, sidecar, system) = match cfg.backend() {
            Backend::None => return None,
            Backend::System(ep) => (LocalApiClient::new(ep.clone()), None, Some(ep)),
            Backend::SpawnSidecar(sc) => {
                let s = Sidecar::spawn(SidecarSpawn::from_config(&sc, state_root), cancel);
                (s.client(), Some((s, false)), None)
            }
            Backend::AttachSidecar(path) => {
                let s = Sidecar::attach(path, cancel);
                (s.client(), Some((s, true)), None)
            }
        };
        Some(Self {
            client: Arc::new(client),
            sidecar,
            system,
        })
    }

    /// The LocalAPI to use.
    pub fn api(&self) -> Arc<dyn LocalApi> {
        self.client.clone()
    }

    /// The sidecar supervisor, in sidecar mode.
    pub fn sidecar(&self) -> Option<&Sidecar> {
        self.sidecar.as_ref().map(|(s, _)| s)
    }

    /// Which backend is in use, right now.
    pub fn source(&self) -> TailscaleSource {
        match (&self.sidecar, &self.system) {
            (Some((s, attached)), _) => TailscaleSource::Sidecar {
                attached: *attached,
                state: s.state().borrow().clone(),
                endpoint: s.endpoint().borrow().clone(),
            },
            (None, Some(ep)) => TailscaleSource::SystemSocket(ep.clone()),
            (None, None) => TailscaleSource::Off,
        }
    }

    /// A cheap, cloneable view of [`Self::source`] for status reporting from other tasks.
    pub fn source_probe(&self) -> SourceProbe {
        let sidecar = self
            .sidecar
            .as_ref()
            .map(|(s, attached)| (*attached, s.state(), s.endpoint()));
        let system = self.system.clone();
        SourceProbe(Arc::new(move || match (&sidecar, &system) {
            (Some((attached, state, endpoint)), _) => TailscaleSource::Sidecar {
                attached: *attached,
                state: state.borrow().clone(),
                endpoint: endpoint.borrow().clone(),
            },
            (None, Some(ep)) => TailscaleSource::SystemSocket(ep.clone()),
            (None, None) => TailscaleSource::Off,
        }))
    }

    /// Stops the sidecar (if any) and waits for its tasks.
    pub async fn shutdown(self) {
        if let Some((s, _)) = self.sidecar {
            s.shutdown().await;
        }
    }
}
