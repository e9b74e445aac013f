//! Pairing records, with the reference's field names so list output renders in
//! the real OpenClaw CLI (protocol.md §13.2, §13.7, §14, §15.1).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// A per-(device, role) token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceToken {
    pub token: String,
    pub role: String,
    pub scopes: Vec<String>,
    pub created_at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at_ms: Option<i64>,
}

impl DeviceToken {
    pub fn is_live(&self) -> bool {
        self.revoked_at_ms.is_none()
    }
}

/// Client metadata captured at request time (platform and family pinned on approval).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_family: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_ip: Option<String>,
}

/// A paired device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PairedDevice {
    pub device_id: String,
    pub public_key: String,
    #[serde(flatten)]
    pub meta: ClientMeta,
    pub roles: Vec<String>,
    pub approved_scopes: Vec<String>,
    #[serde(default)]
    pub tokens: BTreeMap<String, DeviceToken>,
    pub created_at_ms: i64,
    pub approved_at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// How it was approved: `operator`, `silent-local`, `bootstrap`.
    #[serde(default)]
    pub approved_by: String,
}

impl PairedDevice {
    /// Effective roles: approved roles that hold a live token.
    pub fn effective_roles(&self) -> Vec<String> {
        self.roles
            .iter()
            .filter(|r| self.tokens.get(*r).is_some_and(DeviceToken::is_live))
            .cloned()
            .collect()
    }
}

/// A pending pairing request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingRequest {
    pub request_id: String,
    pub device_id: String,
    pub public_key: String,
    pub ts: i64,
    #[serde(flatten)]
    pub meta: ClientMeta,
    pub role: String,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
    pub reason: String,
    pub silent: bool,
    pub is_repair: bool,
}

/// A bootstrap profile: what redeeming a setup code grants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapProfile {
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
}

/// A bootstrap token record; the token itself is stored only as its SHA-256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapRecord {
    pub token_sha256: String,
    pub issued_at_ms: i64,
    pub expires_at_ms: i64,
    pub profile: BootstrapProfile,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    #[serde(default)]
    pub consumed: bool,
}

/// Approved command surface of a node, and a pending widening.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSurface {
    pub node_id: String,
    #[serde(default)]
    pub approved_commands: Vec<String>,
    #[serde(default)]
    pub approved_caps: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<NodeRequest>,
}

/// A pending node capability request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRequest {
    pub request_id: String,
    pub node_id: String,
    pub commands: Vec<String>,
    pub caps: Vec<String>,
    pub ts: i64,
    pub required_approve_scopes: Vec<String>,
}

/// Everything the pairing store persists.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PairingData {
    #[serde(default)]
    pub version: u32,
    #[serde(default)]
    pub paired: BTreeMap<String, PairedDevice>,
    #[serde(default)]
    pub pending: BTreeMap<String, PendingRequest>,
    #[serde(default)]
    pub bootstrap: Vec<BootstrapRecord>,
    #[serde(default)]
    pub nodes: BTreeMap<String, NodeSurface>,
    /// Devices paired through a setup code with the node role whose *first* declared node command
    /// surface is approved on arrival (protocol.md §16, the reference's one-step onboarding).
    /// One-shot: consumed by that first surface, so a later `node.pair.remove` or a widened
    /// surface needs an explicit approval again.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub bootstrap_surfaces: BTreeSet<String>,
}
