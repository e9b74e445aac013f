//! Lenient serde models of the LocalAPI answers the gateway reads: `status`, `whois`, `prefs` and
//! IPN bus `Notify` messages (tailscale.md §2.1, §2.2, §2.5, §2.6).
//!
//! Invariants: unknown fields are ignored; every field is optional or defaulted, and Go's `null`
//! for nil slices/maps decodes as empty; unknown enum values (new backend states) decode into an
//! `Other`/`Unknown` variant instead of failing. Only what the gateway uses is modelled.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize};

/// Decodes Go's `null` (nil slice/map/pointer) as `T::default()`. Use with `#[serde(default)]`.
pub(crate) fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `ipn.State`: a string in `Status.BackendState`, an integer in `Notify.State`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum BackendState {
    /// `NoState` (0).
    #[default]
    NoState,
    /// `InUseOtherUser` (1).
    InUseOtherUser,
    /// `NeedsLogin` (2).
    NeedsLogin,
    /// `NeedsMachineAuth` (3).
    NeedsMachineAuth,
    /// `Stopped` (4).
    Stopped,
    /// `Starting` (5).
    Starting,
    /// `Running` (6).
    Running,
    /// A state this build does not know (kept verbatim).
    Other(String),
}

const STATE_NAMES: [&str; 7] = [
    "NoState",
    "InUseOtherUser",
    "NeedsLogin",
    "NeedsMachineAuth",
    "Stopped",
    "Starting",
    "Running",
];

impl BackendState {
    /// Parses the string form; unknown names become `Other`.
    pub fn from_name(s: &str) -> Self {
        match STATE_NAMES.iter().position(|n| *n == s) {
            Some(i) => Self::from_code(i as i64),
            None => Self::Other(s.to_owned()),
        }
    }

    /// Maps the integer form of `Notify.State`; unknown codes become `Other("<n>")`.
    pub fn from_code(n: i64) -> Self {
        match n {
            0 => Self::NoState,
            1 => Self::InUseOtherUser,
            2 => Self::NeedsLogin,
            3 => Self::NeedsMachineAuth,
            4 => Self::Stopped,
            5 => Self::Starting,
            6 => Self::Running,
            other => Self::Other(other.to_string()),
        }
    }

    /// The Go name (as in `Status.BackendState`).
    pub fn name(&self) -> &str {
        match self {
            Self::NoState => STATE_NAMES[0],
            Self::InUseOtherUser => STATE_NAMES[1],
            Self::NeedsLogin => STATE_NAMES[2],
            Self::NeedsMachineAuth => STATE_NAMES[3],
            Self::Stopped => STATE_NAMES[4],
            Self::Starting => STATE_NAMES[5],
            Self::Running => STATE_NAMES[6],
            Self::Other(s) => s,
        }
    }
}

impl<'de> Deserialize<'de> for BackendState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Name(String),
            Code(i64),
        }
        Ok(match Raw::deserialize(d)? {
            Raw::Name(s) => Self::from_name(&s),
            Raw::Code(n) => Self::from_code(n),
        })
    }
}

impl Serialize for BackendState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// `ipnstate.Status` (subset).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Status {
    /// Backend state, e.g. `Running`.
    pub backend_state: BackendState,
    /// tailscaled version string.
    pub version: String,
    /// Login URL while `NeedsLogin`.
    #[serde(rename = "AuthURL")]
    pub auth_url: String,
    /// Health warnings.
    #[serde(deserialize_with = "nullable")]
    pub health: Vec<String>,
    /// This node's addresses (never infer them from 100.64/10).
    #[serde(rename = "TailscaleIPs", deserialize_with = "nullable")]
    pub tailscale_ips: Vec<IpAddr>,
    /// This node.
    #[serde(rename = "Self")]
    pub self_node: Option<PeerStatus>,
    /// MagicDNS suffix, e.g. `tailnet-abc.ts.net`.
    #[serde(rename = "MagicDNSSuffix")]
    pub magic_dns_suffix: String,
    /// The current tailnet.
    pub current_tailnet: Option<TailnetStatus>,
    /// Names this node may get certificates for (no trailing dot); empty ⇒ HTTPS disabled.
    #[serde(deserialize_with = "nullable")]
    pub cert_domains: Vec<String>,
    /// Peers keyed by node key.
    #[serde(deserialize_with = "nullable")]
    pub peer: BTreeMap<String, PeerStatus>,
    /// User profiles keyed by numeric user id (as a string).
    #[serde(deserialize_with = "nullable")]
    pub user: BTreeMap<String, UserProfile>,
    /// Whether tailscaled uses a kernel TUN device; `Some(false)` is userspace networking, which
    /// dials inbound tailnet TCP to host loopback (tailscale.md §12.1). `None`: not reported.
    #[serde(rename = "TUN")]
    pub tun: Option<bool>,
}

impl Status {
    /// Canonical public FQDN: `CertDomains[0]`, else `Self.DNSName` without the trailing dot.
    pub fn fqdn(&self) -> Option<&str> {
        if let Some(d) = self.cert_domains.first().filter(|d| !d.is_empty()) {
            return Some(d);
        }
        let dns = self.self_node.as_ref()?.dns_name.trim_end_matches('.');
        (!dns.is_empty()).then_some(dns)
    }

    /// First label of [`Status::fqdn`].
    pub fn short_host(&self) -> Option<&str> {
        self.fqdn().and_then(|f| f.split('.').next())
    }

    /// Whether MagicDNS is enabled for the tailnet.
    pub fn magic_dns_enabled(&self) -> bool {
        self.current_tailnet
            .as_ref()
            .is_some_and(|t| t.magic_dns_enabled)
    }
}

/// `ipnstate.TailnetStatus`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TailnetStatus {
    /// Tailnet name.
    #[serde(rename = "Name")]
    pub name: String,
    /// MagicDNS suffix.
    #[serde(rename = "MagicDNSSuffix")]
    pub magic_dns_suffix: String,
    /// MagicDNS on for the tailnet.
    #[serde(rename = "MagicDNSEnabled")]
    pub magic_dns_enabled: bool,
}

/// `ipnstate.PeerStatus` (subset).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PeerStatus {
    /// Stable node id.
    #[serde(rename = "ID")]
    pub id: String,
    /// `nodekey:…`.
    pub public_key: String,
    /// OS hostname.
    pub host_name: String,
    /// MagicDNS FQDN with trailing dot.
    #[serde(rename = "DNSName")]
    pub dns_name: String,
    /// Operating system.
    #[serde(rename = "OS")]
    pub os: String,
    /// Owning user id (tagged nodes: the tagged-devices pseudo user).
    #[serde(rename = "UserID")]
    pub user_id: i64,
    /// Addresses.
    #[serde(rename = "TailscaleIPs", deserialize_with = "nullable")]
    pub tailscale_ips: Vec<IpAddr>,
    /// Tags (empty for user-owned nodes).
    #[serde(deserialize_with = "nullable")]
    pub tags: Vec<String>,
    /// Online per control.
    pub online: bool,
    /// PeerAPI base URLs.
    #[serde(rename = "PeerAPIURL", deserialize_with = "nullable")]
    pub peer_api_url: Vec<String>,
    /// Node capabilities; keys carry their query string, values are raw JSON or null.
    #[serde(deserialize_with = "nullable")]
    pub cap_map: BTreeMap<String, Option<Vec<serde_json::Value>>>,
}

impl PeerStatus {
    /// Whether the node has capability `cap` (exact key, or key with a `?query`).
    pub fn has_cap(&self, cap: &str) -> bool {
        self.cap_map
            .keys()
            .any(|k| k == cap || k.split_once('?').is_some_and(|(base, _)| base == cap))
    }

    /// Ports allowed for Funnel by the `funnel-ports` capability (`?ports=443,8443,10000-10010`).
    pub fn funnel_ports(&self) -> Vec<u16> {
        const FUNNEL_PORTS_CAP: &str = "https://tailscale.com/cap/funnel-ports";
        let mut out = Vec::new();
        for key in self.cap_map.keys() {
            let Some(query) = key.strip_prefix(FUNNEL_PORTS_CAP) else {
                continue;
            };
            let Some(list) = query.strip_prefix("?ports=") else {
                continue;
            };
            for item in list.split(',') {
                let (lo, hi) = item.split_once('-').unwrap_or((item, item));
                if let (Ok(lo), Ok(hi)) = (lo.trim().parse::<u16>(), hi.trim().parse::<u16>()) {
                    out.extend(lo..=hi);
                }
            }
        }
        out
    }
}

/// `tailcfg.UserProfile`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UserProfile {
    /// Numeric user id.
    #[serde(rename = "ID")]
    pub id: i64,
    /// Login, e.g. `alice@example.com`.
    pub login_name: String,
    /// Display name.
    pub display_name: String,
    /// Avatar URL.
    #[serde(rename = "ProfilePicURL")]
    pub profile_pic_url: String,
}

/// `apitype.WhoIsResponse`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct WhoIs {
    /// The peer node.
    pub node: Option<Node>,
    /// Its owner's profile (for tagged nodes: a pseudo user — see [`WhoIs::user`]).
    pub user_profile: Option<UserProfile>,
    /// Peer capabilities granted to that source.
    #[serde(deserialize_with = "nullable")]
    pub cap_map: BTreeMap<String, Option<Vec<serde_json::Value>>>,
}

impl WhoIs {
    /// The human user behind the peer, or `None` for tagged nodes (which carry no user identity,
    /// tailscale.md §5) and for answers without a usable login.
    pub fn user(&self) -> Option<&UserProfile> {
        if self.is_tagged() {
            return None;
        }
        self.user_profile
            .as_ref()
            .filter(|u| !u.login_name.is_empty())
    }

    /// Whether the peer is a tagged node.
    pub fn is_tagged(&self) -> bool {
        self.node.as_ref().is_some_and(|n| !n.tags.is_empty())
    }
}

/// `tailcfg.Node` (subset; many fields are `omitzero` since v1.94).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Node {
    /// Numeric node id.
    #[serde(rename = "ID")]
    pub id: i64,
    /// Stable node id.
    #[serde(rename = "StableID")]
    pub stable_id: String,
    /// MagicDNS FQDN with trailing dot.
    pub name: String,
    /// Owning user id.
    pub user: i64,
    /// Node addresses as prefixes (`100.x.y.z/32`).
    #[serde(deserialize_with = "nullable")]
    pub addresses: Vec<String>,
    /// Tags.
    #[serde(deserialize_with = "nullable")]
    pub tags: Vec<String>,
    /// Short computed name.
    pub computed_name: Option<String>,
    /// Host info.
    pub hostinfo: Option<Hostinfo>,
}

/// `tailcfg.Hostinfo` (subset).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Hostinfo {
    /// OS hostname.
    #[serde(rename = "Hostname")]
    pub hostname: Option<String>,
    /// Operating system.
    #[serde(rename = "OS")]
    pub os: Option<String>,
}

/// `ipn.Prefs` (subset, read-only).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Prefs {
    /// Control server URL.
    #[serde(rename = "ControlURL")]
    pub control_url: String,
    /// Whether the node should be connected.
    pub want_running: bool,
    /// Logged out.
    pub logged_out: bool,
    /// Requested hostname.
    pub hostname: String,
    /// Requested tags.
    #[serde(deserialize_with = "nullable")]
    pub advertise_tags: Vec<String>,
    /// Shields up blocks incoming connections (and Funnel).
    pub shields_up: bool,
    /// Accept DNS (`--accept-dns`).
    #[serde(rename = "CorpDNS")]
    pub corp_dns: bool,
    /// Operator user allowed to write.
    pub operator_user: String,
}

/// One `ipn.Notify` from the IPN bus (subset; the large payloads stay raw JSON).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Notify {
    /// tailscaled version (first message).
    pub version: Option<String>,
    /// Watch session id (first message with `NotifyInitialState`).
    #[serde(rename = "SessionID")]
    pub session_id: Option<String>,
    /// Backend error.
    pub err_message: Option<String>,
    /// New backend state (integer on the bus).
    pub state: Option<BackendState>,
    /// Login URL to show.
    #[serde(rename = "BrowseToURL")]
    pub browse_to_url: Option<String>,
    /// Changed prefs (raw).
    pub prefs: Option<serde_json::Value>,
    /// Changed self node (raw; v1.98+).
    pub self_change: Option<serde_json::Value>,
    /// Health state (raw).
    pub health: Option<serde_json::Value>,
}

impl Notify {
    /// Whether the gateway should re-read `status` (state, prefs or self changed).
    pub fn wants_status_refresh(&self) -> bool {
        self.state.is_some() || self.prefs.is_some() || self.self_change.is_some()
    }
}

/// `GET cert/<domain>?type=pair` split into its parts.
#[derive(Clone, PartialEq, Eq)]
pub struct CertPair {
    /// Certificate chain PEM (leaf first).
    pub cert_pem: String,
    /// Private key PEM (secret: never logged).
    pub key_pem: String,
}

impl std::fmt::Debug for CertPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertPair")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// IPN bus mask bits (tailscale.md §2.6).
pub mod notify_mask {
    /// First message carries State, BrowseToURL and SessionID.
    pub const INITIAL_STATE: u64 = 2;
    /// First message carries Prefs.
    pub const INITIAL_PREFS: u64 = 4;
    /// Portable pattern for following state changes (InitialState | InitialPrefs).
    pub const PORTABLE: u64 = INITIAL_STATE | INITIAL_PREFS;
}
