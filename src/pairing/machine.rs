//! The pairing state machine (protocol.md §13–§16), pure: no clock, no I/O, no
//! randomness — callers pass `now_ms` and an [`Entropy`] source.
//!
//! Invariants: at most one live pending request per device (refresh or
//! supersede, never one per retry); minted or approved scopes never exceed the
//! caller's; rotation never adds a role; a bootstrap token is redeemed at most
//! once and bound to the first device that presents it; silent approval never
//! grants `operator.admin`.

use std::collections::BTreeSet;

use super::types::*;
use crate::protocol::scopes::{self, ADMIN, PAIRING, WRITE};
use crate::protocol::signature::normalize_metadata;

/// Pending requests expire 5 minutes after their last refresh (`PENDING_TTL_MS`).
pub const PENDING_TTL_MS: i64 = 5 * 60 * 1000;
/// Bootstrap tokens live 10 minutes (`DEVICE_BOOTSTRAP_TOKEN_TTL_MS`).
pub const BOOTSTRAP_TTL_MS: i64 = 10 * 60 * 1000;
/// Node commands whose approval and invocation need `operator.admin` (§16).
pub const SENSITIVE_COMMANDS: &[&str] = &[
    "system.run",
    "system.run.prepare",
    "system.which",
    "browser.proxy",
    "browser.proxy.upload.v1",
    "fs.listDir",
    "system.execApprovals.get",
    "system.execApprovals.set",
];

/// Commands whose direct invocation needs `operator.admin` (the reference's
/// `NODE_ADMIN_ONLY_INVOKE_COMMANDS`); `system.run`/`system.which` are gated by
/// the admin-approved node surface instead (docs/decisions/0013-node-invoke.md).
pub const ADMIN_ONLY_INVOKE: &[&str] = &[
    "browser.proxy",
    "browser.proxy.upload.v1",
    "fs.listDir",
    "terminal.upload",
];

/// Pending requests from one source address before new ones are refused (threats.md RL-5).
pub const MAX_PENDING_PER_SOURCE: usize = 8;
/// Pending requests in total before new ones are refused.
pub const MAX_PENDING_TOTAL: usize = 512;

/// Source of fresh identifiers and secrets.
pub trait Entropy {
    fn request_id(&mut self) -> String;
    fn token(&mut self) -> String;
}

/// Why a device needs (re)approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    NotPaired,
    RoleUpgrade,
    ScopeUpgrade,
    MetadataUpgrade,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NotPaired => "not-paired",
            Reason::RoleUpgrade => "role-upgrade",
            Reason::ScopeUpgrade => "scope-upgrade",
            Reason::MetadataUpgrade => "metadata-upgrade",
        }
    }
}

/// What the silent-approval rule needs to know about a connect.
#[derive(Debug, Clone, Copy)]
pub struct SilentContext {
    /// Loopback peer, no proxy headers, not a Serve/Funnel ingress, no browser `Origin`.
    pub direct_local: bool,
    /// `gateway.nodes.pairing.autoApproveLocal` (default true).
    pub auto_approve_local: bool,
    /// Authenticated with no auth, the shared token or the password (not a device token,
    /// Tailscale identity or bootstrap token).
    pub shared_or_none: bool,
}

/// Whether a pairing request may be approved without an operator (protocol.md §13.4
/// with the project rule: only a direct loopback connect, never through a proxy; scope
/// upgrades only for shared-secret auth; `autoApproveLocal: false` keeps all but
/// metadata upgrades interactive). Silent approval never grants `operator.admin`
/// (see [`PairingData::approve`]).
pub fn silent_approval(ctx: SilentContext, reason: Reason) -> bool {
    if !ctx.direct_local {
        return false;
    }
    if !ctx.auto_approve_local && reason != Reason::MetadataUpgrade {
        return false;
    }
    reason != Reason::ScopeUpgrade || ctx.shared_or_none
}

/// A device-bearing connect, as pairing sees it.
#[derive(Debug, Clone)]
pub struct DeviceConnect {
    pub device_id: String,
    pub public_key: String,
    pub role: String,
    pub scopes: Vec<String>,
    pub meta: ClientMeta,
}

/// Who is approving, rotating or removing.
#[derive(Debug, Clone)]
pub struct Caller {
    pub scopes: Vec<String>,
    pub device_id: Option<String>,
    pub via_device_token: bool,
}

impl Caller {
    fn is_admin(&self) -> bool {
        scopes::satisfies(&self.scopes, ADMIN)
    }

    /// Non-admin callers authenticated by a device token may only manage their own device.
    fn may_manage(&self, device_id: &str) -> Result<(), PairingError> {
        if self.via_device_token && !self.is_admin() && self.device_id.as_deref() != Some(device_id)
        {
            return Err(PairingError::NotOwnDevice);
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PairingError {
    #[error("unknown requestId")]
    UnknownRequest,
    #[error("unknown deviceId")]
    UnknownDevice,
    #[error("unknown nodeId")]
    UnknownNode,
    #[error("caller missing scope: {0}")]
    CallerMissingScope(String),
    #[error("role {0} is not approved for this device")]
    RoleNotApproved(String),
    #[error("device tokens may only manage their own device")]
    NotOwnDevice,
    #[error("invalid label")]
    InvalidLabel,
    #[error("too many pending pairing requests; approve or reject some first")]
    TooManyPending,
}

/// Result of checking a device token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCheck {
    Valid,
    Mismatch,
    ScopeMismatch,
}

fn union(a: &[String], b: &[String]) -> Vec<String> {
    let mut out = a.to_vec();
    for s in b {
        if !out.contains(s) {
            out.push(s.clone());
        }
    }
    out
}

fn covers(held: &[String], wanted: &[String]) -> bool {
    wanted.iter().all(|w| scopes::satisfies(held, w))
}

fn sha256_hex(s: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(s.as_bytes()))
}

impl PairingData {
    /// Drops expired pending requests and bootstrap tokens; true when anything changed.
    pub fn prune(&mut self, now: i64) -> bool {
        let before = (self.pending.len(), self.bootstrap.len());
        self.pending.retain(|_, r| now - r.ts < PENDING_TTL_MS);
        self.bootstrap
            .retain(|b| !b.consumed && b.expires_at_ms > now);
        for n in self.nodes.values_mut() {
            if n.pending
                .as_ref()
                .is_some_and(|p| now - p.ts >= PENDING_TTL_MS)
            {
                n.pending = None;
            }
        }
        before != (self.pending.len(), self.bootstrap.len())
    }

    /// What a device-bearing connect still needs, if anything.
    pub fn evaluate(&self, c: &DeviceConnect) -> Option<Reason> {
        let Some(p) = self
            .paired
            .get(&c.device_id)
            .filter(|p| p.public_key == c.public_key)
        else {
            return Some(Reason::NotPaired);
        };
        if !p.effective_roles().contains(&c.role) {
            return Some(Reason::RoleUpgrade);
        }
        if c.role == "operator" && !covers(&p.approved_scopes, &c.scopes) {
            return Some(Reason::ScopeUpgrade);
        }
        let same = |a: &Option<String>, b: &Option<String>| {
            normalize_metadata(a.as_deref()) == normalize_metadata(b.as_deref())
        };
        if !same(&p.meta.platform, &c.meta.platform)
            || !same(&p.meta.device_family, &c.meta.device_family)
        {
            return Some(Reason::MetadataUpgrade);
        }
        None
    }

    /// Records benign metadata drift for a device that proved its key (threats.md PR-2).
    pub fn update_metadata(&mut self, c: &DeviceConnect) {
        if let Some(p) = self.paired.get_mut(&c.device_id) {
            p.meta.platform = c.meta.platform.clone();
            p.meta.device_family = c.meta.device_family.clone();
        }
    }

    /// Creates, refreshes or supersedes the device's one pending request.
    /// Returns the live request and whether it is new (to be announced); fails with
    /// `TooManyPending` when a new device would exceed the per-source or total cap.
    pub fn request(
        &mut self,
        c: &DeviceConnect,
        reason: Reason,
        silent: bool,
        now: i64,
        e: &mut dyn Entropy,
    ) -> Result<(PendingRequest, bool), PairingError> {
        self.prune(now);
        let mine: Vec<String> = self
            .pending
            .values()
            .filter(|r| r.device_id == c.device_id)
            .map(|r| r.request_id.clone())
            .collect();
        let same_source = |r: &&PendingRequest| {
            r.meta.remote_ip.is_some() && r.meta.remote_ip == c.meta.remote_ip
        };
        let from_source = self.pending.values().filter(same_source).count();
        if mine.is_empty()
            && (from_source >= MAX_PENDING_PER_SOURCE || self.pending.len() >= MAX_PENDING_TOTAL)
        {
            return Err(PairingError::TooManyPending);
        }
        if let [only] = mine.as_slice() {
            let r = self.pending.get_mut(only).expect("listed above");
            if r.role == c.role
                && r.scopes == c.scopes
                && r.public_key == c.public_key
                && r.reason == reason.as_str()
            {
                r.ts = now;
                r.meta.remote_ip = c.meta.remote_ip.clone();
                return Ok((r.clone(), false));
            }
        }
        let (mut roles, mut scopes, mut all_silent) =
            (vec![c.role.clone()], c.scopes.clone(), silent);
        for id in &mine {
            if let Some(old) = self.pending.remove(id) {
                roles = union(&roles, &old.roles);
                scopes = union(&scopes, &old.scopes);
                all_silent &= old.silent;
            }
        }
        let r = PendingRequest {
            request_id: e.request_id(),
            device_id: c.device_id.clone(),
            public_key: c.public_key.clone(),
            ts: now,
            meta: c.meta.clone(),
            role: c.role.clone(),
            roles,
            scopes,
            reason: reason.as_str().to_string(),
            silent: all_silent,
            is_repair: self.paired.contains_key(&c.device_id),
        };
        self.pending.insert(r.request_id.clone(), r.clone());
        Ok((r, true))
    }

    /// Approves a pending request on behalf of `caller` (`None` = silent local approval).
    pub fn approve(
        &mut self,
        request_id: &str,
        caller: Option<&Caller>,
        now: i64,
        e: &mut dyn Entropy,
    ) -> Result<(PendingRequest, PairedDevice), PairingError> {
        self.prune(now);
        let req = self
            .pending
            .get(request_id)
            .ok_or(PairingError::UnknownRequest)?
            .clone();
        let mut granted: Vec<String> = req.scopes.clone();
        match caller {
            Some(c) => {
                if let Some(s) = granted.iter().find(|s| !scopes::satisfies(&c.scopes, s)) {
                    return Err(PairingError::CallerMissingScope(s.clone()));
                }
                if req.roles.iter().any(|r| r != "operator") && !c.is_admin() {
                    return Err(PairingError::CallerMissingScope(ADMIN.into()));
                }
            }
            None => granted.retain(|s| s != ADMIN),
        }
        self.pending.remove(request_id);
        let by = if caller.is_some() {
            "operator"
        } else {
            "silent-local"
        };
        let device = self.grant(&req, &granted, by, now, e);
        Ok((req, device))
    }

    /// Upserts the paired record for `req` with `granted` operator scopes and mints tokens.
    fn grant(
        &mut self,
        req: &PendingRequest,
        granted: &[String],
        by: &str,
        now: i64,
        e: &mut dyn Entropy,
    ) -> PairedDevice {
        let fresh = PairedDevice {
            device_id: req.device_id.clone(),
            public_key: req.public_key.clone(),
            meta: req.meta.clone(),
            roles: vec![],
            approved_scopes: vec![],
            tokens: Default::default(),
            created_at_ms: now,
            approved_at_ms: now,
            label: None,
            approved_by: by.to_string(),
        };
        let p = self
            .paired
            .entry(req.device_id.clone())
            .or_insert_with(|| fresh.clone());
        if p.public_key != req.public_key {
            *p = fresh;
        }
        p.roles = union(&p.roles, &req.roles);
        p.approved_scopes = union(&p.approved_scopes, granted);
        p.meta = ClientMeta {
            display_name: p
                .meta
                .display_name
                .clone()
                .or(req.meta.display_name.clone()),
            ..req.meta.clone()
        };
        p.approved_at_ms = now;
        p.approved_by = by.to_string();
        for role in &req.roles {
            let token_scopes = if role == "operator" {
                p.approved_scopes.clone()
            } else {
                vec![]
            };
            p.tokens.insert(
                role.clone(),
                DeviceToken {
                    token: e.token(),
                    role: role.clone(),
                    scopes: token_scopes,
                    created_at_ms: now,
                    rotated_at_ms: None,
                    revoked_at_ms: None,
                    last_used_at_ms: None,
                },
            );
        }
        p.clone()
    }

    pub fn reject(&mut self, request_id: &str) -> Result<PendingRequest, PairingError> {
        self.pending
            .remove(request_id)
            .ok_or(PairingError::UnknownRequest)
    }

    /// Removes a device; device-token callers without admin may only remove themselves.
    pub fn remove(
        &mut self,
        device_id: &str,
        caller: &Caller,
    ) -> Result<PairedDevice, PairingError> {
        caller.may_manage(device_id)?;
        self.pending.retain(|_, r| r.device_id != device_id);
        self.nodes.remove(device_id);
        self.bootstrap_surfaces.remove(device_id);
        self.paired
            .remove(device_id)
            .ok_or(PairingError::UnknownDevice)
    }

    pub fn rename(&mut self, device_id: &str, label: &str) -> Result<PairedDevice, PairingError> {
        let label = label.trim();
        if label.is_empty() || label.chars().count() > 64 {
            return Err(PairingError::InvalidLabel);
        }
        let p = self
            .paired
            .get_mut(device_id)
            .ok_or(PairingError::UnknownDevice)?;
        p.label = Some(label.to_string());
        Ok(p.clone())
    }

    /// Rotates a role's token; never adds a role, never exceeds the caller's scopes.
    pub fn rotate(
        &mut self,
        device_id: &str,
        role: &str,
        wanted: Option<&[String]>,
        caller: &Caller,
        now: i64,
        e: &mut dyn Entropy,
    ) -> Result<DeviceToken, PairingError> {
        caller.may_manage(device_id)?;
        let p = self
            .paired
            .get_mut(device_id)
            .ok_or(PairingError::UnknownDevice)?;
        if !p.roles.iter().any(|r| r == role) {
            return Err(PairingError::RoleNotApproved(role.to_string()));
        }
        let scopes = match (role, wanted) {
            ("operator", Some(w)) => w.to_vec(),
            ("operator", None) => p
                .tokens
                .get(role)
                .map(|t| t.scopes.clone())
                .unwrap_or_else(|| p.approved_scopes.clone()),
            _ => vec![],
        };
        if let Some(s) = scopes.iter().find(|s| {
            !scopes::satisfies(&caller.scopes, s) || !scopes::satisfies(&p.approved_scopes, s)
        }) {
            return Err(PairingError::CallerMissingScope(s.clone()));
        }
        let created = p.tokens.get(role).map(|t| t.created_at_ms).unwrap_or(now);
        let t = DeviceToken {
            token: e.token(),
            role: role.to_string(),
            scopes,
            created_at_ms: created,
            rotated_at_ms: Some(now),
            revoked_at_ms: None,
            last_used_at_ms: None,
        };
        p.tokens.insert(role.to_string(), t.clone());
        Ok(t)
    }

    pub fn revoke(
        &mut self,
        device_id: &str,
        role: &str,
        caller: &Caller,
        now: i64,
    ) -> Result<DeviceToken, PairingError> {
        caller.may_manage(device_id)?;
        let p = self
            .paired
            .get_mut(device_id)
            .ok_or(PairingError::UnknownDevice)?;
        let t = p
            .tokens
            .get_mut(role)
            .ok_or_else(|| PairingError::RoleNotApproved(role.to_string()))?;
        t.revoked_at_ms = Some(now);
        Ok(t.clone())
    }

    /// Device-token auth: requested ⊆ token scopes ⊆ approved scopes.
    pub fn check_device_token(
        &self,
        device_id: &str,
        public_key: &str,
        role: &str,
        token: &str,
        requested: &[String],
    ) -> TokenCheck {
        let Some(p) = self
            .paired
            .get(device_id)
            .filter(|p| p.public_key == public_key)
        else {
            return TokenCheck::Mismatch;
        };
        let Some(t) = p.tokens.get(role).filter(|t| t.is_live()) else {
            return TokenCheck::Mismatch;
        };
        if !crate::auth::secret_eq(&t.token, token) {
            return TokenCheck::Mismatch;
        }
        if !covers(&t.scopes, requested) || !covers(&p.approved_scopes, &t.scopes) {
            return TokenCheck::ScopeMismatch;
        }
        TokenCheck::Valid
    }

    /// The token for a connected paired device, rotated when it no longer covers the request.
    pub fn ensure_token(
        &mut self,
        device_id: &str,
        role: &str,
        requested: &[String],
        now: i64,
        e: &mut dyn Entropy,
    ) -> Option<DeviceToken> {
        let p = self.paired.get_mut(device_id)?;
        let approved = p.approved_scopes.clone();
        let t = p
            .tokens
            .get(role)
            .filter(|t| t.is_live() && covers(&t.scopes, requested))
            .cloned();
        if let Some(t) = t {
            return Some(t);
        }
        let scopes = if role == "operator" { approved } else { vec![] };
        let t = DeviceToken {
            token: e.token(),
            role: role.to_string(),
            scopes,
            created_at_ms: now,
            rotated_at_ms: Some(now),
            revoked_at_ms: None,
            last_used_at_ms: None,
        };
        p.tokens.insert(role.to_string(), t.clone());
        Some(t)
    }

    /// Issues a bootstrap token; only its hash is stored.
    pub fn issue_bootstrap(
        &mut self,
        profile: BootstrapProfile,
        now: i64,
        e: &mut dyn Entropy,
    ) -> (String, i64) {
        self.prune(now);
        let token = e.token();
        let expires = now + BOOTSTRAP_TTL_MS;
        self.bootstrap.push(BootstrapRecord {
            token_sha256: sha256_hex(&token),
            issued_at_ms: now,
            expires_at_ms: expires,
            profile,
            device_id: None,
            public_key: None,
            consumed: false,
        });
        (token, expires)
    }

    /// Redeems a bootstrap token for a device: single use, first device wins.
    pub fn redeem_bootstrap(
        &mut self,
        token: &str,
        device_id: &str,
        public_key: &str,
        now: i64,
    ) -> Option<BootstrapProfile> {
        let hash = sha256_hex(token);
        let rec = self
            .bootstrap
            .iter_mut()
            .find(|b| crate::auth::secret_eq(&b.token_sha256, &hash))?;
        let bound_elsewhere = rec.device_id.as_deref().is_some_and(|d| d != device_id)
            || rec.public_key.as_deref().is_some_and(|k| k != public_key);
        if rec.consumed || rec.expires_at_ms <= now || bound_elsewhere {
            return None;
        }
        rec.device_id = Some(device_id.to_string());
        rec.public_key = Some(public_key.to_string());
        rec.consumed = true;
        Some(rec.profile.clone())
    }

    /// Silently pairs a device that redeemed a bootstrap token with its profile.
    pub fn approve_bootstrap(
        &mut self,
        c: &DeviceConnect,
        profile: &BootstrapProfile,
        now: i64,
        e: &mut dyn Entropy,
    ) -> PairedDevice {
        let req = PendingRequest {
            request_id: e.request_id(),
            device_id: c.device_id.clone(),
            public_key: c.public_key.clone(),
            ts: now,
            meta: c.meta.clone(),
            role: c.role.clone(),
            roles: union(std::slice::from_ref(&c.role), &profile.roles),
            scopes: profile.scopes.clone(),
            reason: Reason::NotPaired.as_str().into(),
            silent: true,
            is_repair: false,
        };
        let granted: Vec<String> = profile
            .scopes
            .iter()
            .filter(|s| *s != ADMIN && *s != PAIRING)
            .cloned()
            .collect();
        let dev = self.grant(&req, &granted, "bootstrap", now, e);
        if dev.roles.iter().any(|r| r == "node") && !self.nodes.contains_key(&c.device_id) {
            self.bootstrap_surfaces.insert(c.device_id.clone());
        }
        dev
    }

    /// Scopes needed to approve a node command surface (§16).
    pub fn node_approve_scopes(commands: &[String]) -> Vec<String> {
        if commands.is_empty() {
            vec![PAIRING.into()]
        } else if commands
            .iter()
            .any(|c| SENSITIVE_COMMANDS.contains(&c.as_str()))
        {
            vec![PAIRING.into(), ADMIN.into()]
        } else {
            vec![PAIRING.into(), WRITE.into()]
        }
    }

    /// Compares a node's declared surface with the approved one. Returns the
    /// effective commands and, when the surface is new or wider, the live request
    /// plus whether it is new.
    pub fn reconcile_node(
        &mut self,
        node_id: &str,
        commands: &[String],
        caps: &[String],
        display_name: Option<&str>,
        now: i64,
        e: &mut dyn Entropy,
    ) -> (Vec<String>, Option<(NodeRequest, bool)>) {
        let n = self
            .nodes
            .entry(node_id.to_string())
            .or_insert_with(|| NodeSurface {
                node_id: node_id.to_string(),
                ..Default::default()
            });
        if let Some(d) = display_name {
            n.display_name = Some(d.to_string());
        }
        if self.bootstrap_surfaces.remove(node_id) && n.approved_at_ms.is_none() {
            // Paired through a setup code: its first surface was authorised by the code's issuer.
            n.approved_commands = commands.to_vec();
            n.approved_caps = caps.to_vec();
            n.approved_at_ms = Some(now);
            n.pending = None;
            return (commands.to_vec(), None);
        }
        let approved: BTreeSet<&String> = n.approved_commands.iter().collect();
        let effective: Vec<String> = commands
            .iter()
            .filter(|c| approved.contains(c))
            .cloned()
            .collect();
        let wider = commands.iter().any(|c| !approved.contains(c))
            || caps.iter().any(|c| !n.approved_caps.contains(c));
        if !wider {
            n.pending = None;
            return (effective, None);
        }
        if let Some(p) = n
            .pending
            .as_mut()
            .filter(|p| p.commands == commands && p.caps == caps && now - p.ts < PENDING_TTL_MS)
        {
            p.ts = now;
            return (effective, Some((p.clone(), false)));
        }
        let req = NodeRequest {
            request_id: e.request_id(),
            node_id: node_id.to_string(),
            commands: commands.to_vec(),
            caps: caps.to_vec(),
            ts: now,
            required_approve_scopes: Self::node_approve_scopes(commands),
        };
        n.pending = Some(req.clone());
        (effective, Some((req, true)))
    }

    fn find_node_request(&self, request_id: &str) -> Option<String> {
        self.nodes
            .values()
            .find(|n| {
                n.pending
                    .as_ref()
                    .is_some_and(|p| p.request_id == request_id)
            })
            .map(|n| n.node_id.clone())
    }

    pub fn approve_node(
        &mut self,
        request_id: &str,
        caller: &Caller,
        now: i64,
    ) -> Result<NodeSurface, PairingError> {
        let id = self
            .find_node_request(request_id)
            .ok_or(PairingError::UnknownRequest)?;
        let n = self
            .nodes
            .get_mut(&id)
            .ok_or(PairingError::UnknownRequest)?;
        let req = n.pending.clone().ok_or(PairingError::UnknownRequest)?;
        if let Some(s) = req
            .required_approve_scopes
            .iter()
            .find(|s| !scopes::satisfies(&caller.scopes, s))
        {
            return Err(PairingError::CallerMissingScope(s.clone()));
        }
        n.approved_commands = req.commands;
        n.approved_caps = req.caps;
        n.approved_at_ms = Some(now);
        n.pending = None;
        Ok(n.clone())
    }

    /// Forgets a node's approved command surface (its device pairing stays).
    pub fn remove_node(&mut self, node_id: &str) -> Result<NodeSurface, PairingError> {
        self.nodes.remove(node_id).ok_or(PairingError::UnknownNode)
    }

    /// Sets a node's display name.
    pub fn rename_node(&mut self, node_id: &str, name: &str) -> Result<NodeSurface, PairingError> {
        let n = self
            .nodes
            .get_mut(node_id)
            .ok_or(PairingError::UnknownNode)?;
        n.display_name = Some(name.to_string());
        Ok(n.clone())
    }

    pub fn reject_node(&mut self, request_id: &str) -> Result<NodeRequest, PairingError> {
        let id = self
            .find_node_request(request_id)
            .ok_or(PairingError::UnknownRequest)?;
        self.nodes
            .get_mut(&id)
            .and_then(|n| n.pending.take())
            .ok_or(PairingError::UnknownRequest)
    }
}

#[cfg(test)]
mod tests;
