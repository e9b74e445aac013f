//! Node scenarios (pairing issue targets), run only against gateways named in `--node-servers`
//! (`node.invoke`) and `--pairing-servers` (`pairing.retry`).
//!
//! - `node.invoke`: operator → gateway → node → gateway → operator round trips of `COMMAND`,
//!   closed loop on one operator connection, paced at `PACED_RATE` and unpaced, next to the same
//!   two client sockets talking through an in-process relay (`node::Relay`, the direct path).
//!   `node.invoke.overhead_p50_ms` = paced invoke p50 − paced direct p50.
//! - `pairing.retry`: a node seen as remote (`X-Forwarded-For`) is refused with a `requestId`, an
//!   operator approves it (`device.pair.approve`), and the node retries at once: the metrics are the
//!   approve acknowledgement and retry → `hello-ok` latencies.
//!
//! Setup (node pairing, command approval) happens before every measuring window and is not timed.

use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::client::{bounded, ws_connect, ClientError, Conn, Target, Ws};
use crate::node::{self, Identity, NodeConnect, Relay, COMMAND};
use crate::scenarios::{
    errors_metric, throughput_metrics, Ctx, Scenario, ScenarioError, Window, WorkerResult,
};
use crate::stats::{latency_metrics, Better, Latencies, Metric};

/// The issue's invoke rate: 1,000 invokes per second.
const PACED_RATE: f64 = 1000.0;
/// Scopes of the setup operator: `operator.admin` approves pairing and implies invoke rights.
const ADMIN_SCOPES: &[&str] = &["operator.admin"];
/// A documentation address (RFC 5737): the gateway must treat the node as remote.
const REMOTE_HEADER: (&str, &str) = ("x-forwarded-for", "203.0.113.9");
/// Node pairings measured per round of `pairing.retry`.
const PAIRINGS_PER_ROUND: usize = 20;
/// Invoke deadline passed to the gateway; far above any expected round trip.
const INVOKE_TIMEOUT_MS: u64 = 10_000;
/// How far the paced loop may fall behind its schedule before it stops catching up.
const MAX_LAG: Duration = Duration::from_millis(10);

pub fn plan() -> Vec<Box<dyn Scenario>> {
    vec![Box::new(NodeInvoke), Box::new(PairingRetry)]
}

fn setup_err(what: &str, v: impl std::fmt::Display) -> ScenarioError {
    ScenarioError::Setup(format!("{what}: {v}"))
}

/// Connects a fresh node on direct loopback (silently paired) and approves its command surface.
async fn paired_node(
    target: &Target,
    admin: &mut Conn,
) -> Result<(Identity, Box<Ws>), ScenarioError> {
    let ident = Identity::generate();
    let ws = match node::connect(target, &ident, &[]).await? {
        NodeConnect::Connected(ws) => ws,
        NodeConnect::Rejected(res) => return Err(setup_err("node connect", res)),
    };
    let list = admin.request_json("node.pair.list", &json!({})).await?;
    let pending = list["payload"]["pending"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let rid = pending
        .iter()
        .find(|p| p["nodeId"] == ident.id.as_str())
        .and_then(|p| p["requestId"].as_str())
        .ok_or_else(|| setup_err("node.pair.list has no request for the node", &list))?;
    let ok = admin
        .request_json("node.pair.approve", &json!({"requestId": rid}))
        .await?;
    if ok["ok"] != true {
        return Err(setup_err("node.pair.approve", ok));
    }
    Ok((ident, ws))
}

/// Writes one `node.invoke` request for `node_id`.
fn write_invoke(buf: &mut String, id: u64, node_id: &str) {
    use std::fmt::Write as _;
    let _ = write!(
        buf,
        r#"{{"type":"req","id":"{id}","method":"node.invoke","params":{{"nodeId":"{node_id}","command":"{COMMAND}","params":{{}},"idempotencyKey":"bench-{id}","timeoutMs":{INVOKE_TIMEOUT_MS}}}}}"#
    );
}

/// Closed-loop operator worker: one invoke in flight, started on a `period` schedule if given.
async fn invoke_worker(
    mut conn: Conn,
    node_id: String,
    win: Window,
    period: Option<Duration>,
) -> WorkerResult {
    let mut r = WorkerResult::default();
    let mut next = Instant::now();
    loop {
        if let Some(p) = period {
            let now = Instant::now();
            if next + MAX_LAG < now {
                next = now;
            }
            tokio::time::sleep_until(next.into()).await;
            next += p;
        }
        let start = Instant::now();
        if start >= win.end {
            break;
        }
        match conn
            .call_with(|buf, id| write_invoke(buf, id, &node_id))
            .await
        {
            Ok(()) if start >= win.begin => r.lat.record(start.elapsed()),
            Ok(()) => {}
            Err(ClientError::Rejected(text)) => {
                if r.errors == 0 {
                    tracing::warn!(response = %text, "node.invoke rejected (first of this window)");
                }
                r.errors += 1;
            }
            Err(e) => {
                tracing::warn!(error = %e, "node.invoke connection failed");
                r.errors += 1;
                return r;
            }
        }
    }
    conn.close().await;
    r
}

/// `node.invoke` through the gateway versus the direct relay path.
struct NodeInvoke;

impl NodeInvoke {
    /// One measuring window of `conn` invoking `node_id`, as rate/p50/p99/errors/CPU metrics.
    async fn measure(
        ctx: &Ctx,
        prefix: &str,
        label: &str,
        conn: Conn,
        node_id: &str,
        period: Option<Duration>,
    ) -> Result<Vec<Metric>, ScenarioError> {
        let win = Window::new(ctx);
        let mut set = JoinSet::new();
        set.spawn(invoke_worker(conn, node_id.to_owned(), win, period));
        throughput_metrics(prefix, label, ctx, win, set).await
    }

    async fn direct(ctx: &Ctx, period: Duration) -> Result<Vec<Metric>, ScenarioError> {
        let relay = Relay::start().await.map_err(|e| setup_err("relay", e))?;
        let t = ctx.target.io_timeout;
        let (node_ws, _) = bounded(t, ws_connect(relay.url.as_str())).await??;
        let mut responders = JoinSet::new();
        responders.spawn(node::respond(node_ws, "direct".to_owned()));
        let (op_ws, _) = bounded(t, ws_connect(relay.url.as_str())).await??;
        let conn = Conn::from_ws(op_ws, t);
        let no_server = Ctx {
            target: ctx.target.clone(),
            server_pid: None,
            warmup: ctx.warmup,
            duration: ctx.duration,
            settle: ctx.settle,
        };
        let label = "direct round trip (operator → relay → node → relay → operator), 1,000/s";
        let m = Self::measure(
            &no_server,
            "node.direct.paced",
            label,
            conn,
            "direct",
            Some(period),
        )
        .await;
        relay.stop();
        m
    }
}

fn value(metrics: &[Metric], key: &str) -> Option<f64> {
    metrics.iter().find(|m| m.key == key).map(|m| m.value)
}

impl Scenario for NodeInvoke {
    fn name(&self) -> String {
        "node.invoke".to_owned()
    }

    fn needs_nodes(&self) -> bool {
        true
    }

    fn run<'a>(&'a self, ctx: &'a Ctx) -> BoxFuture<'a, Result<Vec<Metric>, ScenarioError>> {
        Box::pin(async move {
            let period = Duration::from_secs_f64(1.0 / PACED_RATE);
            let mut metrics = Self::direct(ctx, period).await?;
            let mut admin = Conn::open_scoped(&ctx.target, ADMIN_SCOPES).await?;
            let (ident, node_ws) = paired_node(&ctx.target, &mut admin).await?;
            let mut responders = JoinSet::new();
            responders.spawn(node::respond(*node_ws, ident.id.clone()));
            let label = "`node.invoke` round trip via gateway, 1,000/s";
            metrics.extend(
                Self::measure(
                    ctx,
                    "node.invoke.paced",
                    label,
                    admin,
                    &ident.id,
                    Some(period),
                )
                .await?,
            );
            let conn = Conn::open_scoped(&ctx.target, ADMIN_SCOPES).await?;
            let label = "`node.invoke` round trip via gateway, unpaced (max rate)";
            metrics
                .extend(Self::measure(ctx, "node.invoke.max", label, conn, &ident.id, None).await?);
            let direct = value(&metrics, "node.direct.paced.p50_ms");
            let invoke = value(&metrics, "node.invoke.paced.p50_ms");
            let invoked = value(&metrics, "node.invoke.paced.rate").unwrap_or(0.0) > 0.0;
            if let Some((d, i)) = direct.zip(invoke).filter(|_| invoked) {
                metrics.push(Metric::new(
                    "node.invoke.overhead_p50_ms",
                    "`node.invoke` p50 overhead over the direct round trip, 1,000/s",
                    i - d,
                    "ms",
                    Better::Lower,
                ));
            }
            Ok(metrics)
        })
    }
}

/// Remote node pairing: refused → approved → retry → `hello-ok`.
struct PairingRetry;

impl PairingRetry {
    /// One pairing; returns (approve ack, retry → hello-ok).
    async fn once(
        target: &Target,
        admin: &mut Conn,
    ) -> Result<(Duration, Duration), ScenarioError> {
        let ident = Identity::generate();
        let headers = [REMOTE_HEADER];
        let res = match node::connect(target, &ident, &headers).await? {
            NodeConnect::Rejected(res) => res,
            NodeConnect::Connected(_) => {
                return Err(setup_err("remote node", "paired without approval"))
            }
        };
        let rid: Value = res["error"]["details"]["requestId"].clone();
        if !rid.is_string() {
            return Err(setup_err("refusal without requestId", res));
        }
        let start = Instant::now();
        let ok = admin
            .request_json("device.pair.approve", &json!({"requestId": rid}))
            .await?;
        let ack = start.elapsed();
        if ok["ok"] != true {
            return Err(setup_err("device.pair.approve", ok));
        }
        let start = Instant::now();
        match node::connect(target, &ident, &headers).await? {
            NodeConnect::Connected(ws) => {
                let retry = start.elapsed();
                drop(ws);
                Ok((ack, retry))
            }
            NodeConnect::Rejected(res) => Err(setup_err("retry after approval", res)),
        }
    }
}

impl Scenario for PairingRetry {
    fn name(&self) -> String {
        "pairing.retry".to_owned()
    }

    fn needs_remote_pairing(&self) -> bool {
        true
    }

    fn run<'a>(&'a self, ctx: &'a Ctx) -> BoxFuture<'a, Result<Vec<Metric>, ScenarioError>> {
        Box::pin(async move {
            let mut admin = Conn::open_scoped(&ctx.target, ADMIN_SCOPES).await?;
            let (mut ack, mut retry) = (Latencies::new(), Latencies::new());
            let mut errors = 0;
            for _ in 0..PAIRINGS_PER_ROUND {
                match Self::once(&ctx.target, &mut admin).await {
                    Ok((a, r)) => {
                        ack.record(a);
                        retry.record(r);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "pairing.retry attempt failed");
                        errors += 1;
                    }
                }
            }
            admin.close().await;
            if retry.count() == 0 {
                return Err(setup_err(
                    "pairing.retry",
                    "no pairing attempt succeeded (see the log)",
                ));
            }
            let n = PAIRINGS_PER_ROUND;
            let mut m = latency_metrics(
                "pairing.approve_ack",
                &format!("`device.pair.approve` ack ({n} remote nodes)"),
                &ack,
            );
            m.extend(latency_metrics(
                "pairing.retry_hello_ok",
                &format!("approved node retry → `hello-ok` ({n} remote nodes)"),
                &retry,
            ));
            m.push(errors_metric(
                "pairing.retry",
                "remote node pairing",
                errors,
            ));
            Ok(m)
        })
    }
}
