//! `clawgate devices …` and `clawgate nodes …`: pairing management and node
//! invocation over the gateway's own RPCs, with readable tables or `--json`.

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::client_cmds::{rpc, RpcOutcome};
use super::TargetArgs;

#[derive(Subcommand, Debug)]
pub enum DevicesCmd {
    /// Pending requests and paired devices.
    List(TargetArgs),
    /// Approve a pending request; --latest shows the newest one and asks for --yes.
    #[command(
        after_help = "Examples:\n  clawgate devices approve <requestId>\n  clawgate devices approve --latest        # show the newest request\n  clawgate devices approve --latest --yes  # approve it"
    )]
    Approve {
        /// The request id (from `clawgate devices list` or the PAIRING_REQUIRED log line).
        request_id: Option<String>,
        /// Pick the newest pending request: shows it, approves only with --yes.
        #[arg(long)]
        latest: bool,
        /// With --latest: approve without asking.
        #[arg(long, requires = "latest")]
        yes: bool,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Reject a pending request.
    Reject {
        /// The request id (from `clawgate devices list`).
        request_id: String,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Remove a paired device (closes its connections).
    Remove {
        /// The device id (from `clawgate devices list`).
        device_id: String,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Set a device's label.
    Rename {
        /// The device id (from `clawgate devices list`).
        device_id: String,
        /// The new display name.
        label: String,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Rotate a device's token for a role.
    Rotate(TokenOp),
    /// Revoke a device's token for a role (closes its connections for that role).
    Revoke(TokenOp),
}

#[derive(Args, Debug)]
pub struct TokenOp {
    /// The device id (from `clawgate devices list`).
    #[arg(long)]
    pub device: String,
    /// The role whose token to change.
    #[arg(long, value_parser = ["operator", "node"])]
    pub role: String,
    /// Scopes for the rotated token (repeatable); default: unchanged.
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
    #[command(flatten)]
    pub target: TargetArgs,
}

#[derive(Subcommand, Debug)]
pub enum NodesCmd {
    /// Known nodes, connected first.
    List(TargetArgs),
    /// One node.
    Describe {
        /// The node id (from `clawgate nodes list`).
        node_id: String,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Node command surfaces waiting for approval.
    Pending(TargetArgs),
    /// Approve a node's command surface.
    Approve {
        /// The request id (from `clawgate nodes pending`).
        request_id: String,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Reject a node's command surface.
    Reject {
        /// The request id (from `clawgate nodes pending`).
        request_id: String,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Invoke a command on a node.
    Invoke {
        /// Node id, display name or IP (as in `openclaw nodes invoke`).
        #[arg(long)]
        node: String,
        /// The node command, e.g. system.which or system.run.
        #[arg(long)]
        command: String,
        /// Command params as JSON.
        #[arg(long, default_value = "{}")]
        params: String,
        /// Node invoke timeout in ms.
        #[arg(long, default_value_t = 15_000)]
        invoke_timeout: u64,
        /// Idempotency key (default: a random UUID); a retry with the same key runs once.
        #[arg(long)]
        idempotency_key: Option<String>,
        #[command(flatten)]
        target: TargetArgs,
    },
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Prints rows as an aligned table.
fn table(title: &str, headers: &[&str], rows: Vec<Vec<String>>) {
    crate::outln!("{title} ({})", rows.len());
    if rows.is_empty() {
        return;
    }
    let mut w: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = w[i]))
            .collect::<Vec<_>>()
            .join("  ")
    };
    crate::outln!("{}", line(headers.iter().map(|h| h.to_string()).collect()));
    for r in rows {
        crate::outln!("{}", line(r));
    }
}

fn rows(list: &Value, keys: &[&str]) -> Vec<Vec<String>> {
    list.as_array()
        .map(|a| {
            a.iter()
                .map(|r| keys.iter().map(|k| cell(&r[*k])).collect())
                .collect()
        })
        .unwrap_or_default()
}

async fn show(
    t: &TargetArgs,
    method: &str,
    params: Value,
    render: impl FnOnce(&Value),
) -> anyhow::Result<i32> {
    match rpc(t, method, params).await? {
        RpcOutcome::Ok(v) => {
            if t.json {
                crate::outln!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                render(&v);
            }
            Ok(0)
        }
        RpcOutcome::Failed(code) => Ok(code),
    }
}

pub async fn devices(cmd: DevicesCmd) -> anyhow::Result<i32> {
    match cmd {
        DevicesCmd::List(t) => {
            show(&t, "device.pair.list", json!({}), |v| {
                table(
                    "Pending",
                    &["REQUEST", "DEVICE", "ROLE", "SCOPES", "REASON", "IP"],
                    rows(
                        &v["pending"],
                        &[
                            "requestId",
                            "deviceId",
                            "role",
                            "scopes",
                            "reason",
                            "remoteIp",
                        ],
                    ),
                );
                table(
                    "Paired",
                    &[
                        "DEVICE",
                        "NAME",
                        "ROLES",
                        "SCOPES",
                        "PLATFORM",
                        "APPROVED BY",
                    ],
                    rows(
                        &v["paired"],
                        &[
                            "deviceId",
                            "displayName",
                            "roles",
                            "approvedScopes",
                            "platform",
                            "approvedBy",
                        ],
                    ),
                );
            })
            .await
        }
        DevicesCmd::Approve {
            request_id,
            latest,
            yes,
            target,
        } => {
            let id = match (request_id, latest) {
                (Some(id), false) => id,
                (Some(_), true) => {
                    return Ok(super::client_cmds::usage_error(
                        target.json,
                        "give a requestId or --latest, not both",
                    ))
                }
                (None, true) => match latest_request(&target).await? {
                    Ok(req) if yes => cell(&req["requestId"]),
                    Ok(req) => return Ok(show_latest(&req, target.json)),
                    Err(code) => return Ok(code),
                },
                (None, false) => {
                    return Ok(super::client_cmds::usage_error(
                        target.json,
                        "give a requestId (see `clawgate devices list`) or --latest",
                    ))
                }
            };
            show(
                &target,
                "device.pair.approve",
                json!({"requestId": id}),
                |v| {
                    crate::outln!(
                        "approved {} for device {}",
                        id,
                        cell(&v["device"]["deviceId"])
                    )
                },
            )
            .await
        }
        DevicesCmd::Reject { request_id, target } => {
            show(
                &target,
                "device.pair.reject",
                json!({"requestId": request_id}),
                |v| crate::outln!("rejected request for device {}", cell(&v["deviceId"])),
            )
            .await
        }
        DevicesCmd::Remove { device_id, target } => {
            show(
                &target,
                "device.pair.remove",
                json!({"deviceId": device_id}),
                |v| crate::outln!("removed {}", cell(&v["deviceId"])),
            )
            .await
        }
        DevicesCmd::Rename {
            device_id,
            label,
            target,
        } => {
            show(
                &target,
                "device.pair.rename",
                json!({"deviceId": device_id, "label": label}),
                |v| crate::outln!("renamed {} to {}", cell(&v["deviceId"]), cell(&v["label"])),
            )
            .await
        }
        DevicesCmd::Rotate(op) => {
            let mut p = json!({"deviceId": op.device, "role": op.role});
            if !op.scopes.is_empty() {
                p["scopes"] = json!(op.scopes);
            }
            show(&op.target, "device.token.rotate", p, |v| {
                crate::outln!(
                    "rotated {} token of {} (scopes {}; token {})",
                    cell(&v["role"]),
                    cell(&v["deviceId"]),
                    cell(&v["scopes"]),
                    cell(&v["tokenDelivery"])
                )
            })
            .await
        }
        DevicesCmd::Revoke(op) => {
            show(
                &op.target,
                "device.token.revoke",
                json!({"deviceId": op.device, "role": op.role}),
                |v| {
                    crate::outln!(
                        "revoked {} token of {}",
                        cell(&v["role"]),
                        cell(&v["deviceId"])
                    )
                },
            )
            .await
        }
    }
}

/// `--node` accepts a node id, display name or IP (like `openclaw nodes invoke`).
async fn resolve_node(t: &TargetArgs, wanted: &str) -> anyhow::Result<Result<String, i32>> {
    let list = match rpc(t, "node.list", json!({})).await? {
        RpcOutcome::Ok(v) => v,
        RpcOutcome::Failed(code) => return Ok(Err(code)),
    };
    let nodes = list["nodes"].as_array().cloned().unwrap_or_default();
    let matches: Vec<&Value> = nodes
        .iter()
        .filter(|n| {
            [&n["nodeId"], &n["displayName"], &n["remoteIp"]]
                .iter()
                .any(|f| f.as_str() == Some(wanted))
        })
        .collect();
    match matches.as_slice() {
        [one] => Ok(Ok(one["nodeId"].as_str().unwrap_or(wanted).to_string())),
        [] => Ok(Ok(wanted.to_string())),
        _ => {
            crate::errln!(
                "error: --node {wanted:?} matches {} nodes; use the node id (clawgate nodes list)",
                matches.len()
            );
            Ok(Err(2))
        }
    }
}

/// The newest pending request, or the exit code after reporting why there is none.
async fn latest_request(t: &TargetArgs) -> anyhow::Result<Result<Value, i32>> {
    let v = match rpc(t, "device.pair.list", json!({})).await? {
        RpcOutcome::Ok(v) => v,
        RpcOutcome::Failed(code) => return Ok(Err(code)),
    };
    let newest = v["pending"].as_array().and_then(|a| {
        a.iter()
            .max_by_key(|r| r["ts"].as_i64().unwrap_or(0))
            .cloned()
    });
    match newest {
        Some(r) if r["requestId"].is_string() => Ok(Ok(r)),
        _ => {
            let msg = "no pending pairing requests";
            if t.json {
                crate::outln!("{}", super::out::json_error("NO_PENDING", msg, None));
            }
            crate::errln!("error: {msg}");
            Ok(Err(1))
        }
    }
}

/// `approve --latest` without `--yes`: shows the request and the explicit command (exit 1, as
/// `openclaw devices approve --latest`: nothing was approved).
fn show_latest(req: &Value, as_json: bool) -> i32 {
    let id = cell(&req["requestId"]);
    let command = format!("clawgate devices approve {id}");
    if as_json {
        crate::outln!(
            "{}",
            json!({"ok": false, "selected": req, "approveCommand": command, "error": {"code": "NOT_APPROVED", "message": "--latest only selects; approve explicitly"}})
        );
    } else {
        crate::outln!("Selected pending device request {id}");
        crate::outln!(
            "  Device: {} ({}, {})",
            cell(&req["deviceId"]),
            cell(&req["displayName"]),
            cell(&req["remoteIp"])
        );
        crate::outln!(
            "  Requested: role {} scopes {}",
            cell(&req["role"]),
            cell(&req["scopes"])
        );
        crate::outln!("Approve it: {command}   (or: clawgate devices approve --latest --yes)");
    }
    1
}

pub async fn nodes(cmd: NodesCmd) -> anyhow::Result<i32> {
    match cmd {
        NodesCmd::List(t) => {
            show(&t, "node.list", json!({}), |v| {
                table(
                    "Nodes",
                    &["NODE", "NAME", "CONNECTED", "PLATFORM", "IP", "COMMANDS"],
                    rows(
                        &v["nodes"],
                        &[
                            "nodeId",
                            "displayName",
                            "connected",
                            "platform",
                            "remoteIp",
                            "commands",
                        ],
                    ),
                );
            })
            .await
        }
        NodesCmd::Describe { node_id, target } => {
            show(&target, "node.describe", json!({"nodeId": node_id}), |v| {
                crate::outln!("{}", serde_json::to_string_pretty(v).unwrap_or_default())
            })
            .await
        }
        NodesCmd::Pending(t) => {
            show(&t, "node.pair.list", json!({}), |v| {
                table(
                    "Pending",
                    &["REQUEST", "NODE", "NAME", "COMMANDS", "APPROVE NEEDS"],
                    rows(
                        &v["pending"],
                        &[
                            "requestId",
                            "nodeId",
                            "displayName",
                            "commands",
                            "requiredApproveScopes",
                        ],
                    ),
                );
            })
            .await
        }
        NodesCmd::Approve { request_id, target } => {
            show(
                &target,
                "node.pair.approve",
                json!({"requestId": request_id}),
                |v| {
                    crate::outln!(
                        "approved commands for node {}: {}",
                        cell(&v["node"]["nodeId"]),
                        cell(&v["node"]["commands"])
                    )
                },
            )
            .await
        }
        NodesCmd::Reject { request_id, target } => {
            show(
                &target,
                "node.pair.reject",
                json!({"requestId": request_id}),
                |v| crate::outln!("rejected surface of node {}", cell(&v["nodeId"])),
            )
            .await
        }
        NodesCmd::Invoke {
            node,
            command,
            params,
            invoke_timeout,
            idempotency_key,
            mut target,
        } => {
            let params: Value = match serde_json::from_str(&params) {
                Ok(p) => p,
                Err(e) => {
                    crate::errln!("error: --params is not valid JSON: {e}");
                    return Ok(2);
                }
            };
            target.timeout = target.timeout.max(invoke_timeout + 5_000);
            let node = match resolve_node(&target, &node).await? {
                Ok(id) => id,
                Err(code) => return Ok(code),
            };
            let key = idempotency_key.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            let p = json!({"nodeId": node, "command": command, "params": params, "timeoutMs": invoke_timeout, "idempotencyKey": key});
            show(&target, "node.invoke", p, |v| {
                let payload = v["payloadJSON"]
                    .as_str()
                    .and_then(|s| serde_json::from_str::<Value>(s).ok())
                    .unwrap_or(v["payload"].clone());
                crate::outln!(
                    "{}",
                    serde_json::to_string_pretty(&payload).unwrap_or_default()
                );
            })
            .await
        }
    }
}

#[derive(Args, Debug)]
pub struct QrArgs {
    /// The URL the device should use (default: plugin config, gateway.remote.url, or the custom bind).
    #[arg(long)]
    pub url: Option<String>,
    /// Bootstrap profile: limited (node + bounded operator) or node.
    #[arg(long, default_value = "limited", value_parser = ["limited", "node"])]
    pub profile: String,
    /// Print only the setup code (no QR, no explanation).
    #[arg(long)]
    pub setup_code_only: bool,
    /// Machine-readable JSON.
    #[arg(long)]
    pub json: bool,
    /// Gateway token (default: configured or generated).
    #[arg(long)]
    pub token: Option<String>,
    /// Gateway password (default: configured).
    #[arg(long)]
    pub password: Option<String>,
    /// Config file.
    #[arg(long)]
    pub config: Option<std::path::PathBuf>,
}

/// `qr`: asks this host's gateway for a single-use setup code.
pub async fn qr(q: QrArgs) -> anyhow::Result<i32> {
    let target = TargetArgs {
        url: None,
        token: q.token,
        password: q.password,
        timeout: 10_000,
        json: q.json,
        config: q.config,
        tls: Default::default(),
    };
    let mut params = json!({"bootstrapProfile": q.profile});
    if let Some(u) = &q.url {
        params["publicUrl"] = json!(u);
    }
    let v = match rpc(&target, "device.pair.setupCode", params).await? {
        RpcOutcome::Ok(v) => v,
        RpcOutcome::Failed(code) => return Ok(code),
    };
    let code = v["setupCode"].as_str().unwrap_or_default();
    if q.json {
        crate::outln!("{}", serde_json::to_string_pretty(&v)?);
    } else if q.setup_code_only {
        crate::outln!("{code}");
    } else {
        if let Some(art) = crate::pairing::setup_code::qr_text(&format!("oc-pair://{code}")) {
            crate::outln!("{art}");
        }
        crate::outln!("setup code: {code}");
        crate::outln!(
            "gateway: {} ({}), access: {}, single use, expires in 10 minutes",
            cell(&v["gatewayUrl"]),
            cell(&v["urlSource"]),
            cell(&v["access"])
        );
        crate::outln!("node host: openclaw node run --pair \"oc-pair://{code}\"");
    }
    Ok(0)
}
