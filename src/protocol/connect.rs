//! `connect` params (`ConnectParams`): closed enums, validation and protocol
//! negotiation (protocol.md §4, §5). Pure: no clock, no I/O.

use serde::Deserialize;
use serde_json::{json, Value};

use super::errors::{close, Rejection, WireError};
use super::{MIN_NODE_PROTOCOL_VERSION, MIN_PROBE_PROTOCOL_VERSION, PROTOCOL_VERSION};

/// `GATEWAY_CLIENT_IDS` (closed).
pub const CLIENT_IDS: &[&str] = &[
    "webchat-ui",
    "openclaw-control-ui",
    "openclaw-browser-copilot",
    "openclaw-tui",
    "webchat",
    "cli",
    "gateway-client",
    "openclaw-macos",
    "openclaw-linux",
    "openclaw-ios",
    "openclaw-watchos",
    "openclaw-android",
    "node-host",
    "openclaw-worker",
    "test",
    "fingerprint",
    "openclaw-probe",
];

/// `GATEWAY_CLIENT_MODES` (closed).
pub const CLIENT_MODES: &[&str] = &[
    "webchat", "cli", "ui", "backend", "node", "worker", "probe", "test",
];

/// `client` object of `connect`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClientInfo {
    pub id: String,
    pub mode: String,
    pub version: String,
    pub platform: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub device_family: Option<String>,
    #[serde(default)]
    pub model_identifier: Option<String>,
    #[serde(default)]
    pub instance_id: Option<String>,
    #[serde(default)]
    pub build_id: Option<String>,
    #[serde(default)]
    pub time_zone: Option<String>,
}

/// The device proof (all five fields required when present).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeviceProof {
    pub id: String,
    pub public_key: String,
    pub signature: String,
    pub signed_at: u64,
    pub nonce: String,
}

/// Credentials offered in `connect.auth`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConnectAuth {
    pub token: Option<String>,
    pub bootstrap_token: Option<String>,
    pub device_token: Option<String>,
    pub password: Option<String>,
    pub approval_runtime_token: Option<String>,
    pub agent_runtime_identity_token: Option<String>,
}

impl ConnectAuth {
    /// The token that goes into the signature payload: first present of
    /// `token`, `deviceToken`, `bootstrapToken` (a JavaScript `??` chain).
    pub fn signature_token(&self) -> &str {
        self.token
            .as_deref()
            .or(self.device_token.as_deref())
            .or(self.bootstrap_token.as_deref())
            .unwrap_or("")
    }

    /// `authProvided`: first present of password, token, bootstrap, device token.
    pub fn provided(&self) -> &'static str {
        if self.password.is_some() {
            "password"
        } else if self.token.is_some() {
            "token"
        } else if self.bootstrap_token.is_some() {
            "bootstrap-token"
        } else if self.device_token.is_some() {
            "device-token"
        } else {
            "none"
        }
    }
}

/// Role of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Operator,
    Node,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Node => "node",
        }
    }
}

/// `ConnectParams` (required: `minProtocol`, `maxProtocol`, `client`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConnectParams {
    pub min_protocol: u32,
    pub max_protocol: u32,
    pub client: ClientInfo,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    #[serde(default)]
    pub caps: Option<Vec<String>>,
    #[serde(default)]
    pub commands: Option<Vec<String>>,
    #[serde(default)]
    pub permissions: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    pub path_env: Option<String>,
    #[serde(default)]
    pub device: Option<DeviceProof>,
    #[serde(default)]
    pub auth: Option<ConnectAuth>,
    #[serde(default)]
    pub locale: Option<String>,
    #[serde(default)]
    pub user_agent: Option<String>,
}

/// Validated connect params with the negotiated protocol.
#[derive(Debug, Clone)]
pub struct Connect {
    pub params: ConnectParams,
    pub role: Role,
    pub protocol: u32,
}

impl Connect {
    pub fn scopes(&self) -> &[String] {
        self.params.scopes.as_deref().unwrap_or(&[])
    }

    pub fn auth(&self) -> ConnectAuth {
        self.params.auth.clone().unwrap_or_default()
    }

    pub fn client(&self) -> &ClientInfo {
        &self.params.client
    }
}

fn invalid_params(why: String) -> Rejection {
    Rejection::policy(WireError::invalid(format!("invalid connect params: {why}")))
}

/// Validates raw connect params JSON and negotiates the protocol.
pub fn validate(raw: Option<&str>) -> Result<Connect, Rejection> {
    let raw = raw.ok_or_else(|| invalid_params("params required".into()))?;
    let params: ConnectParams =
        serde_json::from_str(raw).map_err(|e| invalid_params(e.to_string()))?;
    check_client(&params.client).map_err(invalid_params)?;
    if params.min_protocol < 1 || params.max_protocol < 1 {
        return Err(invalid_params("protocol versions must be >= 1".into()));
    }
    let role = match params.role.as_deref() {
        None | Some("operator") => Role::Operator,
        Some("node") => Role::Node,
        Some(_) => {
            let error = WireError::invalid("invalid role");
            return Err(Rejection::with_close(error, close::POLICY, "invalid role"));
        }
    };
    let protocol = negotiate(&params, role)?;
    Ok(Connect {
        params,
        role,
        protocol,
    })
}

fn check_client(c: &ClientInfo) -> Result<(), String> {
    if !CLIENT_IDS.contains(&c.id.as_str()) {
        return Err(format!("unknown client.id {:?}", c.id));
    }
    if !CLIENT_MODES.contains(&c.mode.as_str()) {
        return Err(format!("unknown client.mode {:?}", c.mode));
    }
    if c.version.is_empty() || c.platform.is_empty() {
        return Err("client.version and client.platform must be non-empty".into());
    }
    let optional = [
        &c.display_name,
        &c.device_family,
        &c.model_identifier,
        &c.instance_id,
    ];
    if optional.iter().any(|o| o.as_deref() == Some("")) {
        return Err("optional client strings must be non-empty when present".into());
    }
    if c.build_id.as_ref().is_some_and(|b| b.len() > 96) {
        return Err("client.buildId longer than 96 characters".into());
    }
    if c.time_zone.as_ref().is_some_and(|t| t.len() > 64) {
        return Err("client.timeZone longer than 64 characters".into());
    }
    Ok(())
}

/// The three acceptance rules of protocol.md §5.
fn negotiate(p: &ConnectParams, role: Role) -> Result<u32, Rejection> {
    let (min, max) = (p.min_protocol, p.max_protocol);
    let v4 = max >= PROTOCOL_VERSION && min <= PROTOCOL_VERSION;
    let probe =
        p.client.mode == "probe" && max >= MIN_PROBE_PROTOCOL_VERSION && min <= PROTOCOL_VERSION;
    let legacy_node = role == Role::Node
        && p.client.mode == "node"
        && max >= MIN_NODE_PROTOCOL_VERSION
        && min <= MIN_NODE_PROTOCOL_VERSION;
    if v4 || probe || legacy_node {
        return Ok(PROTOCOL_VERSION);
    }
    let error = WireError::invalid("protocol mismatch").with_details(json!({
        "code": "PROTOCOL_MISMATCH",
        "clientMinProtocol": min,
        "clientMaxProtocol": max,
        "expectedProtocol": PROTOCOL_VERSION,
        "minimumProbeProtocol": MIN_PROBE_PROTOCOL_VERSION,
    }));
    Err(Rejection::with_close(
        error,
        close::PROTOCOL_MISMATCH,
        "protocol mismatch",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(extra: Value) -> String {
        let mut base = json!({
            "minProtocol": 4, "maxProtocol": 4,
            "client": {"id":"cli","version":"2026.9.6","platform":"linux","mode":"cli",
                       "deviceFamily":"Linux","instanceId":"x"},
            "caps": [], "auth": {"token":"T"}, "role":"operator", "scopes":["operator.read"]
        });
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        base.to_string()
    }

    #[test]
    fn accepts_the_observed_cli_connect() {
        let c = validate(Some(&params(json!({})))).unwrap();
        assert_eq!(c.role, Role::Operator);
        assert_eq!(c.protocol, 4);
        assert_eq!(c.scopes(), ["operator.read"]);
    }

    #[test]
    fn closed_enums_reject_unknown_values() {
        let bad_mode =
            json!({"client":{"id":"cli","version":"1","platform":"l","mode":"operator"}});
        let r = validate(Some(&params(bad_mode))).unwrap_err();
        assert_eq!(r.close_code, 1008);
        assert!(r
            .close_reason
            .starts_with("invalid connect params: unknown client.mode"));
        let bad_id = json!({"client":{"id":"evil","version":"1","platform":"l","mode":"cli"}});
        assert!(validate(Some(&params(bad_id))).is_err());
    }

    #[test]
    fn partial_device_is_invalid() {
        let r = validate(Some(&params(json!({"device": {"id": "x"}})))).unwrap_err();
        assert_eq!(r.close_code, 1008);
    }

    #[test]
    fn invalid_role_closes_with_reason() {
        let r = validate(Some(&params(json!({"role": "worker"})))).unwrap_err();
        assert_eq!(r.close_reason, "invalid role");
    }

    #[test]
    fn negotiation_rules() {
        let mismatch =
            validate(Some(&params(json!({"minProtocol":2,"maxProtocol":2})))).unwrap_err();
        assert_eq!(mismatch.close_code, 1002);
        let d = mismatch.error.details.unwrap();
        assert_eq!(d["code"], "PROTOCOL_MISMATCH");
        assert_eq!(d["clientMinProtocol"], 2);
        assert_eq!(d["expectedProtocol"], 4);
        assert_eq!(d["minimumProbeProtocol"], 3);
        // v3 operator: refused
        assert!(validate(Some(&params(json!({"minProtocol":3,"maxProtocol":3})))).is_err());
        // v3 probe: accepted
        let probe = json!({"minProtocol":3,"maxProtocol":3,
            "client":{"id":"cli","version":"1","platform":"l","mode":"probe"}});
        assert!(validate(Some(&params(probe))).is_ok());
        // v3 node host: accepted
        let node = json!({"minProtocol":3,"maxProtocol":3,"role":"node",
            "client":{"id":"node-host","version":"1","platform":"l","mode":"node"}});
        assert!(validate(Some(&params(node))).is_ok());
        // v3 node role in cli mode: refused
        let odd = json!({"minProtocol":3,"maxProtocol":3,"role":"node"});
        assert!(validate(Some(&params(odd))).is_err());
    }

    #[test]
    fn signature_token_follows_nullish_chain() {
        let a = ConnectAuth {
            token: Some(String::new()),
            device_token: Some("D".into()),
            ..Default::default()
        };
        assert_eq!(a.signature_token(), "");
        let b = ConnectAuth {
            device_token: Some("D".into()),
            bootstrap_token: Some("B".into()),
            ..Default::default()
        };
        assert_eq!(b.signature_token(), "D");
        assert_eq!(ConnectAuth::default().signature_token(), "");
    }
}
