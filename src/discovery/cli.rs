//! CLI glue: `clawgate discover` and `clawgate dns setup` (clap `Args` + runners).
//!
//! Invariants: `discover` prints routing data (SRV host/port, addresses) and marks TXT-derived
//! values as hints; exit status 0 when the browse ran (found or not), 1 when every browse failed.
//! `dns setup` never changes anything: it prints the Tailscale admin steps for split DNS and
//! reports the checks it could run (local tailnet address, zone file, direct query, split DNS).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};

use super::browse::{self, Beacon};
use super::config::{DEFAULT_WIDE_AREA_PORT, ENV_WIDE_AREA_DOMAIN};
use super::{ifpolicy, widearea::zone};
use crate::net_class::{classify, AddrClass};

/// Default browse time, as `openclaw gateway discover`.
pub const DEFAULT_TIMEOUT_MS: u64 = 2000;
/// Per-query timeout of the `dns setup` direct check.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// `clawgate discover`.
#[derive(Debug, Clone, Args)]
pub struct DiscoverArgs {
    /// How long to browse mDNS, in milliseconds.
    #[arg(long, default_value_t = DEFAULT_TIMEOUT_MS)]
    pub timeout: u64,
    /// Also browse this wide-area DNS-SD domain (through the system resolver only).
    #[arg(long, env = ENV_WIDE_AREA_DOMAIN)]
    pub domain: Option<String>,
    /// Print JSON (`{"beacons":[{"wsUrl":…}]}`).
    #[arg(long)]
    pub json: bool,
}

/// Run `clawgate discover`.
pub async fn run_discover(args: DiscoverArgs) -> anyhow::Result<i32> {
    let timeout = Duration::from_millis(args.timeout.clamp(100, 60_000));
    let (lan, wide) = tokio::join!(browse::browse_mdns(timeout), async {
        match &args.domain {
            Some(d) => Some(browse::browse_wide_area(d).await),
            None => None,
        }
    });
    let mut beacons: Vec<Beacon> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    match lan {
        Ok(b) => beacons.extend(b),
        Err(e) => errors.push(format!("mDNS: {e}")),
    }
    match wide {
        Some(Ok(b)) => beacons.extend(b),
        Some(Err(e)) => errors.push(format!("wide-area: {e}")),
        None => {}
    }
    if args.json {
        let v = serde_json::json!({ "count": beacons.len(), "beacons": beacons, "errors": errors });
        crate::outln!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print_human(&beacons, &errors);
    }
    // Nothing found is an answer, not a failure (ADR 0105): 1 only when every browse failed.
    let browsed = args.domain.is_some() as usize + 1;
    Ok(if beacons.is_empty() && errors.len() >= browsed {
        1
    } else {
        0
    })
}

fn print_human(beacons: &[Beacon], errors: &[String]) {
    for e in errors {
        crate::errln!("warning: {e}");
    }
    if beacons.is_empty() {
        crate::outln!("no gateways found");
        return;
    }
    for b in beacons {
        let addrs: Vec<String> = b.addresses.iter().map(ToString::to_string).collect();
        crate::outln!(
            "{}  {}  ({})  [{}]",
            b.ws_url,
            b.instance_name,
            b.domain,
            addrs.join(", ")
        );
        if let Some(fp) = &b.tls_fingerprint_hint {
            crate::outln!("    advertised TLS sha256 (unverified hint, not a pin): {fp}");
        }
        if !b.tls_hint && !b.plaintext_allowed {
            crate::outln!(
                "    plaintext ws:// to a tailnet/public address is refused by policy; use wss://"
            );
        }
    }
}

/// `clawgate dns setup`.
#[derive(Debug, Clone, Args)]
pub struct DnsSetupArgs {
    /// Wide-area domain (default: `discovery.wideArea.domain` / `OPENCLAW_WIDE_AREA_DOMAIN`).
    #[arg(long, env = ENV_WIDE_AREA_DOMAIN)]
    pub domain: Option<String>,
    /// State directory holding `dns/<domain>.db` (default `$OPENCLAW_STATE_DIR` or `~/.openclaw`).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Tailnet address of this gateway (default: detected from local interfaces).
    #[arg(long)]
    pub tailnet_ip: Vec<IpAddr>,
    /// DNS port of the embedded server.
    #[arg(long, default_value_t = DEFAULT_WIDE_AREA_PORT)]
    pub port: u16,
}

fn default_state_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("OPENCLAW_STATE_DIR") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("OPENCLAW_HOME")
        .or_else(|| std::env::var_os("HOME"))
        .unwrap_or_default();
    PathBuf::from(home).join(".openclaw")
}

fn local_tailnet_ips() -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> = ifpolicy::snapshot()
        .into_iter()
        .map(|e| e.ip)
        .filter(|ip| classify(*ip) == AddrClass::Tailnet)
        .collect();
    v.sort();
    v.dedup();
    v
}

/// One direct query (`dig @ip -p port name PTR`); returns the number of answers.
async fn direct_ptr(server: SocketAddr, qname: &str) -> anyhow::Result<usize> {
    let name = Name::from_ascii(qname)?;
    let mut msg = Message::query();
    msg.metadata.id = rand::random();
    msg.add_query(Query::query(name, RecordType::PTR));
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse()?
    } else {
        "[::]:0".parse()?
    };
    let sock = tokio::net::UdpSocket::bind(bind).await?;
    sock.send_to(&msg.to_vec()?, server).await?;
    let mut buf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(CHECK_TIMEOUT, sock.recv_from(&mut buf)).await??;
    let resp = Message::from_vec(&buf[..n])?;
    anyhow::ensure!(
        resp.metadata.response_code.low() == 0,
        "rcode {}",
        resp.metadata.response_code
    );
    Ok(resp.answers.len())
}

fn check(ok: bool, what: &str) -> bool {
    crate::outln!("  [{}] {what}", if ok { "ok" } else { "!!" });
    ok
}

fn print_steps(domain: &str, ns: &str, port: u16, ips: &[IpAddr], zone_path: &std::path::Path) {
    crate::outln!("Wide-area discovery for {domain}");
    crate::outln!("  zone file: {}", zone_path.display());
    let shown: Vec<String> = ips.iter().map(ToString::to_string).collect();
    crate::outln!(
        "  tailnet addresses: {}\n",
        if shown.is_empty() {
            "none found".into()
        } else {
            shown.join(", ")
        }
    );
    crate::outln!("Tailscale admin console (https://login.tailscale.com/admin/dns):");
    crate::outln!("  1. Nameservers → Add nameserver → Custom…");
    crate::outln!("  2. Nameserver: {ns}");
    crate::outln!("  3. Turn on \"Restrict to domain\" (split DNS) and enter: {domain}");
    crate::outln!("  4. Save. Keep MagicDNS on; clients resolve {domain} through 100.100.100.100.");
    crate::outln!("  5. ACLs must let clients reach UDP+TCP port {port} on {ns}.");
    if port == 53 {
        crate::outln!("  6. Port 53 needs privileges: run as a service with AmbientCapabilities=CAP_NET_BIND_SERVICE");
        crate::outln!("     or `sudo setcap cap_net_bind_service=+ep $(command -v clawgate)`.");
    }
    crate::outln!("\nVerify from another tailnet device:");
    crate::outln!("  dig @{ns} -p {port} _openclaw-gw._tcp.{domain} PTR +short");
    crate::outln!("  clawgate discover --domain {domain}\n");
}

async fn run_checks(
    domain: &str,
    v4: Option<IpAddr>,
    port: u16,
    zone_path: &std::path::Path,
) -> bool {
    crate::outln!("Checks:");
    let mut all = check(v4.is_some(), "a tailnet IPv4 is configured on this host");
    let zone_msg = "the zone file exists (the gateway is running with the domain set)";
    all &= check(zone_path.exists(), zone_msg);
    if let Some(ip) = v4 {
        let r = direct_ptr(
            SocketAddr::new(ip, port),
            &format!("_openclaw-gw._tcp.{domain}."),
        )
        .await;
        let msg = format!(
            "the embedded server answers PTR on {ip}:{port} ({})",
            outcome(&r)
        );
        all &= check(matches!(r, Ok(n) if n > 0), &msg);
    }
    let split = browse::browse_wide_area(domain).await.map(|b| b.len());
    let msg = format!(
        "the system resolver (split DNS) returns gateways ({})",
        outcome(&split)
    );
    all &= check(matches!(split, Ok(n) if n > 0), &msg);
    all
}

/// `3 answers` or the error's message (never Rust debug output).
fn outcome<E: std::fmt::Display>(r: &Result<usize, E>) -> String {
    match r {
        Ok(n) => format!("{n} answer(s)"),
        Err(e) => format!("failed: {e}"),
    }
}

/// Run `clawgate dns setup`: print steps, run checks; exit 0 when all checks passed,
/// 1 when one failed, 2 without a domain.
pub async fn run_dns_setup(args: DnsSetupArgs) -> anyhow::Result<i32> {
    let Some(domain) = args
        .domain
        .as_deref()
        .map(|d| d.trim_end_matches('.').to_ascii_lowercase())
    else {
        crate::errln!("no domain: pass --domain or set discovery.wideArea.domain (e.g. \"openclaw.internal\")");
        return Ok(2);
    };
    let ips = if args.tailnet_ip.is_empty() {
        local_tailnet_ips()
    } else {
        args.tailnet_ip.clone()
    };
    let v4 = ips.iter().find(|ip| ip.is_ipv4()).copied();
    let zone_path = zone::zone_path(&args.state_dir.unwrap_or_else(default_state_dir), &domain);
    let ns = v4.map_or_else(
        || "<this gateway's tailnet IPv4>".to_string(),
        |ip| ip.to_string(),
    );
    print_steps(&domain, &ns, args.port, &ips, &zone_path);
    Ok(if run_checks(&domain, v4, args.port, &zone_path).await {
        0
    } else {
        1
    })
}
