//! Embedded authoritative DNS server for the wide-area domain (hickory-server; spec
//! discovery.md §6.4 option 1).
//!
//! Invariants: binds only the given tailnet addresses (UDP + TCP); answers only sources inside
//! the tailnet ranges, loopback or this node's own addresses (others get `REFUSED`); AXFR denied;
//! records are built programmatically (never via hickory's zone parser, §6.5); a content update
//! swaps the whole record map under one write lock so readers never see a partial zone.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::rdata::{A, AAAA, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordSet, RrKey};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};
use hickory_server::Server;
use ipnet::IpNet;

use super::zone::{ZoneSpec, SERVICE_LABELS, ZONE_TTL};
use crate::net_class::{CGNAT_V4, TAILSCALE_ULA};

/// Idle TCP connection timeout for DNS-over-TCP clients.
const TCP_TIMEOUT: Duration = Duration::from_secs(5);
/// Response buffer per TCP connection (responses in flight before back-pressure).
const TCP_RESPONSE_BUFFER: usize = 8;

/// Errors from building or serving the zone.
#[derive(Debug, thiserror::Error)]
pub enum DnsServerError {
    /// Invalid name or record.
    #[error("building record: {0}")]
    Build(String),
    /// Socket bind failed.
    #[error("binding {addr}: {source}")]
    Bind {
        /// Address we tried.
        addr: SocketAddr,
        /// OS error.
        source: std::io::Error,
    },
}

fn name(labels: &[&str], origin: &Name) -> Result<Name, DnsServerError> {
    let rel = Name::from_labels(labels.iter().map(|l| l.as_bytes()))
        .map_err(|e| DnsServerError::Build(e.to_string()))?;
    rel.append_domain(origin)
        .map_err(|e| DnsServerError::Build(e.to_string()))
}

/// The SRV target: the out-of-zone FQDN if set, else the in-zone host.
fn srv_target(z: &ZoneSpec, host: &Name) -> Result<Name, DnsServerError> {
    match &z.srv_target {
        Some(fqdn) => {
            Name::from_ascii(format!("{fqdn}.")).map_err(|e| DnsServerError::Build(e.to_string()))
        }
        None => Ok(host.clone()),
    }
}

/// The zone's records as hickory rrsets.
pub fn build_records(
    z: &ZoneSpec,
    serial: u32,
) -> Result<(Name, BTreeMap<RrKey, RecordSet>), DnsServerError> {
    let origin = Name::from_ascii(format!("{}.", z.domain))
        .map_err(|e| DnsServerError::Build(e.to_string()))?;
    let ns1 = name(&["ns1"], &origin)?;
    let host = name(&[&z.host], &origin)?;
    let svc = name(&SERVICE_LABELS, &origin)?;
    let inst = name(
        &[&z.instance, SERVICE_LABELS[0], SERVICE_LABELS[1]],
        &origin,
    )?;
    let soa = SOA::new(
        ns1.clone(),
        name(&["hostmaster"], &origin)?,
        serial,
        7200,
        3600,
        1_209_600,
        ZONE_TTL,
    );
    let txt = TXT::new(z.txt.iter().map(|(k, v)| format!("{k}={v}")).collect());
    let mut recs = vec![
        Record::from_rdata(origin.clone(), ZONE_TTL, RData::SOA(soa)),
        Record::from_rdata(origin.clone(), ZONE_TTL, RData::NS(NS(ns1.clone()))),
        Record::from_rdata(ns1, ZONE_TTL, RData::A(A(z.v4))),
        Record::from_rdata(host.clone(), ZONE_TTL, RData::A(A(z.v4))),
        Record::from_rdata(svc, ZONE_TTL, RData::PTR(PTR(inst.clone()))),
        Record::from_rdata(
            inst.clone(),
            ZONE_TTL,
            RData::SRV(SRV::new(0, 0, z.port, srv_target(z, &host)?)),
        ),
        Record::from_rdata(inst, ZONE_TTL, RData::TXT(txt)),
    ];
    recs.extend(
        z.v6.iter()
            .map(|v6| Record::from_rdata(host.clone(), ZONE_TTL, RData::AAAA(AAAA(*v6)))),
    );
    let mut map: BTreeMap<RrKey, RecordSet> = BTreeMap::new();
    for r in recs {
        let key = RrKey::new(LowerName::new(&r.name), r.record_type());
        map.entry(key)
            .or_insert_with(|| RecordSet::new(r.name.clone(), r.record_type(), serial))
            .insert(r, serial);
    }
    Ok((origin, map))
}

/// Networks allowed to query: tailnet ranges, loopback, and this node's own addresses.
pub fn allowed_networks(own: &[IpAddr]) -> Vec<IpNet> {
    let mut v = vec![
        IpNet::V4(CGNAT_V4),
        IpNet::V6(TAILSCALE_ULA),
        IpNet::new(IpAddr::from([127, 0, 0, 0]), 8).unwrap_or_default(),
        IpNet::from(IpAddr::from(std::net::Ipv6Addr::LOCALHOST)),
    ];
    v.extend(own.iter().map(|ip| IpNet::from(*ip)));
    v
}

/// Bind UDP and TCP on one address (both or neither).
async fn bind_pair(
    addr: SocketAddr,
) -> Result<(tokio::net::UdpSocket, tokio::net::TcpListener), DnsServerError> {
    let err = |source| DnsServerError::Bind { addr, source };
    let udp = tokio::net::UdpSocket::bind(addr).await.map_err(err)?;
    let tcp = tokio::net::TcpListener::bind(addr).await.map_err(err)?;
    Ok((udp, tcp))
}

/// A running embedded server and the handle to update its zone.
pub struct DnsServer {
    handler: Arc<InMemoryZoneHandler>,
    server: Server<Catalog>,
}

impl DnsServer {
    /// Bind UDP + TCP on every address in `bind` and serve the zone.
    pub async fn start(
        z: &ZoneSpec,
        serial: u32,
        bind: &[SocketAddr],
    ) -> Result<Self, DnsServerError> {
        let (origin, map) = build_records(z, serial)?;
        let handler =
            InMemoryZoneHandler::new(origin.clone(), map, ZoneType::Primary, AxfrPolicy::Deny)
                .map_err(DnsServerError::Build)?;
        let handler = Arc::new(handler);
        let mut catalog = Catalog::new();
        catalog.upsert(
            LowerName::new(&origin),
            vec![handler.clone() as Arc<dyn ZoneHandler>],
        );
        let own: Vec<IpAddr> = bind.iter().map(|a| a.ip()).collect();
        let mut server = Server::with_access(catalog, Vec::<IpNet>::new(), allowed_networks(&own));
        let mut first_err = None;
        let mut bound = 0usize;
        for addr in bind {
            match bind_pair(*addr).await {
                Ok((udp, tcp)) => {
                    server.register_socket(udp);
                    server.register_listener(tcp, TCP_TIMEOUT, TCP_RESPONSE_BUFFER);
                    bound += 1;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "wide-area DNS: address skipped");
                    first_err.get_or_insert(e);
                }
            }
        }
        if let (0, Some(e)) = (bound, first_err) {
            return Err(e);
        }
        Ok(DnsServer { handler, server })
    }

    /// Replace the zone content atomically.
    pub async fn replace(&self, z: &ZoneSpec, serial: u32) -> Result<(), DnsServerError> {
        let (origin, map) = build_records(z, serial)?;
        let mut fresh =
            InMemoryZoneHandler::<hickory_server::net::runtime::TokioRuntimeProvider>::new(
                origin,
                map,
                ZoneType::Primary,
                AxfrPolicy::Deny,
            )
            .map_err(DnsServerError::Build)?;
        let new_map = std::mem::take(fresh.records_get_mut());
        *self.handler.records_mut().await = new_map;
        Ok(())
    }

    /// Stop all listeners and wait for their tasks.
    pub async fn shutdown(mut self) {
        if let Err(e) = self.server.shutdown_gracefully().await {
            tracing::debug!(error = %e, "wide-area DNS server shutdown");
        }
    }
}
