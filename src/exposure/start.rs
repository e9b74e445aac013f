//! Wiring exposure into a running gateway: parse `gateway.tailscale`, start the LocalAPI backend
//! only when something needs it, bind the dedicated ingress listener and spawn the route and
//! tailnet-bind tasks on the gateway's tracker.
//!
//! Invariants: with `tailscale.mode = off` and `bind != tailnet` nothing Tailscale-related is
//! constructed — no client, no socket touched (SL-1); `bind = tailnet` needs the LocalAPI for
//! its addresses and therefore uses the configured backend even with mode off (the one explicit
//! opt-in); every task observes the gateway's cancellation.

use std::sync::Arc;

use crate::config::{BindMode, ConfigError, Settings, TailscaleMode};
use crate::server::Gateway;
use crate::tailscale::{self, LocalApi, TailscaleConfig, TailscaleRuntime};

use super::route::RouteSpec;
use super::{ingress, route, tailnet_bind, WhoisCache};

/// `gateway.tailscale` parsed, with `mode` set from the resolved settings (flag > file).
pub fn tailscale_config(s: &Settings) -> Result<TailscaleConfig, ConfigError> {
    let raw = &s.file.gateway.tailscale;
    let mut cfg: TailscaleConfig = if raw.is_null() {
        TailscaleConfig::default()
    } else {
        serde_path_to_error::deserialize(raw.clone()).map_err(|e| {
            ConfigError::new(
                format!("gateway.tailscale.{}", e.path()),
                e.inner().to_string(),
                "use the keys in docs/tailscale.md (mode, socket, sidecar, funnelPort)",
            )
        })?
    };
    cfg.mode = s.tailscale_mode.into();
    cfg.validate().map_err(|e| {
        ConfigError::new("gateway.tailscale", e.to_string(), "see docs/tailscale.md")
    })?;
    Ok(cfg)
}

/// The public port of the route: the Funnel port in funnel mode, else 443.
pub fn public_port(s: &Settings) -> u16 {
    match (s.tailscale_mode, tailscale_config(s)) {
        (TailscaleMode::Funnel, Ok(cfg)) => u16::from(cfg.funnel_port),
        _ => 443,
    }
}

/// The backend to use: the configured one for serve/funnel, and for `bind = tailnet` even with
/// mode off. `None` means: touch nothing.
pub fn runtime_config(s: &Settings) -> Result<Option<TailscaleConfig>, ConfigError> {
    let mut cfg = tailscale_config(s)?;
    let wanted = s.tailscale_mode != TailscaleMode::Off || s.bind == BindMode::Tailnet;
    if !wanted {
        return Ok(None);
    }
    if cfg.mode == tailscale::TailscaleMode::Off {
        cfg.mode = tailscale::TailscaleMode::Serve; // backend selection only; no route is claimed
    }
    Ok(Some(cfg))
}

/// What `start` created; shut it down after the gateway drained.
#[derive(Debug, Default)]
pub struct ExposureRuntime {
    runtime: Option<TailscaleRuntime>,
}

impl ExposureRuntime {
    /// The LocalAPI in use, if any (for `doctor`-style reporting).
    pub fn api(&self) -> Option<Arc<dyn LocalApi>> {
        self.runtime.as_ref().map(TailscaleRuntime::api)
    }

    /// Stops the sidecar (if any).
    pub async fn shutdown(self) {
        if let Some(rt) = self.runtime {
            rt.shutdown().await;
        }
    }
}

/// Starts exposure for `gw` using the real backend.
pub async fn start(gw: &Arc<Gateway>) -> anyhow::Result<ExposureRuntime> {
    let Some(cfg) = runtime_config(&gw.settings)? else {
        return Ok(ExposureRuntime::default());
    };
    let rt = TailscaleRuntime::start(&cfg, &gw.settings.paths.state_dir, &gw.cancel)
        .ok_or_else(|| anyhow::anyhow!("tailscale backend not selected"))?;
    gw.exposure.set_source(rt.source_probe());
    match rt.source() {
        // Only a system tailscaled can forward tailnet peers to host loopback (§12.1).
        tailscale::TailscaleSource::SystemSocket(_) => gw.exposure.loopback.set_prover(rt.api()),
        _ => gw.exposure.loopback.set_sidecar(),
    }
    start_with(gw, rt.api(), &cfg).await?;
    wait_for_name(gw).await;
    Ok(ExposureRuntime { runtime: Some(rt) })
}

/// Bound on waiting for the MagicDNS name before the banner is printed (the route task keeps
/// going regardless; the banner then says "pending").
pub const NAME_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

async fn wait_for_name(gw: &Gateway) {
    let deadline = tokio::time::Instant::now() + NAME_WAIT;
    while gw.exposure.snapshot().fqdn.is_none() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Starts the tasks over an existing LocalAPI (tests pass a `FakeLocalApi`).
pub async fn start_with(
    gw: &Arc<Gateway>,
    api: Arc<dyn LocalApi>,
    cfg: &TailscaleConfig,
) -> std::io::Result<()> {
    if gw.settings.bind == BindMode::Tailnet {
        gw.tracker.spawn(tailnet_bind::run(
            gw.clone(),
            api.clone(),
            gw.exposure.clone(),
        ));
    }
    if gw.settings.tailscale_mode == TailscaleMode::Off {
        return Ok(());
    }
    let listener = ingress::bind().await?;
    let addr = listener.local_addr()?;
    gw.exposure.update(|s| s.ingress = Some(addr));
    ingress::serve(gw, listener, Arc::new(WhoisCache::new(api.clone())));
    let spec = RouteSpec {
        mode: cfg.mode,
        funnel_port: cfg.funnel_port,
        ingress: addr,
        sidecar: matches!(
            cfg.backend(),
            tailscale::Backend::SpawnSidecar(_) | tailscale::Backend::AttachSidecar(_)
        ),
    };
    gw.tracker.spawn(route::run(
        api,
        spec,
        gw.exposure.clone(),
        gw.cancel.child_token(),
    ));
    Ok(())
}
