//! Who is behind a connection that arrived on the dedicated Serve/Funnel listener: whois of the
//! PROXY-v2 source (tailscale.md §2.2, §5; threats.md PX-9..PX-11, TN-6), cached.
//!
//! Invariants: identity comes only from the LocalAPI's whois of the PROXY source — never from a
//! header; a tagged node has no user login (PX-11); a source whois does not know (a Funnel client
//! on the public internet, or anything unresolvable) is [`IngressPeer::Public`] and never gets
//! tailnet identity (PX-10); the cache is bounded ([`MAX_ENTRIES`]) and expires positive answers
//! after [`HIT_TTL`] and failures after [`MISS_TTL`] (as golink and OpenClaw do).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::tailscale::{LocalApi, LocalApiError, WhoIs};

/// Positive whois answers are reused this long (node ownership changes are rare).
pub const HIT_TTL: Duration = Duration::from_secs(60);
/// Negative answers (public/Funnel sources) are reused this long.
pub const MISS_TTL: Duration = Duration::from_secs(5);
/// Bound on cached sources; the cache is cleared when full (simple and bounded).
pub const MAX_ENTRIES: usize = 4096;

/// A tailnet node identified by whois.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailnetPeer {
    /// Owner's login (`user@example.com`); `None` for tagged nodes.
    pub login: Option<String>,
    /// Owner's display name (untagged only).
    pub display_name: Option<String>,
    /// MagicDNS name of the node (no trailing dot).
    pub node: String,
    /// ACL tags (non-empty ⇒ no user identity).
    pub tags: Vec<String>,
}

impl TailnetPeer {
    pub(crate) fn from_whois(w: &WhoIs) -> Self {
        let user = w.user();
        let node = w.node.as_ref();
        Self {
            login: user.map(|u| u.login_name.clone()),
            display_name: user.map(|u| u.display_name.clone()),
            node: node
                .map(|n| n.name.trim_end_matches('.').to_owned())
                .unwrap_or_default(),
            tags: node.map(|n| n.tags.clone()).unwrap_or_default(),
        }
    }
}

/// The provenance of a connection on the dedicated listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngressPeer {
    /// A tailnet node (Serve).
    Tailnet(TailnetPeer),
    /// Not a tailnet node: a Funnel client (or unresolvable); never gets tailnet identity.
    Public,
}

impl IngressPeer {
    /// The verified user login, when there is one (untagged tailnet node).
    pub fn login(&self) -> Option<&str> {
        match self {
            Self::Tailnet(p) => p.login.as_deref(),
            Self::Public => None,
        }
    }

    /// Short label for logs and `status`.
    pub fn describe(&self) -> String {
        match self {
            Self::Tailnet(p) => match &p.login {
                Some(l) => format!("tailnet {} ({l})", p.node),
                None => format!("tailnet {} (tagged {:?})", p.node, p.tags),
            },
            Self::Public => "public (Funnel)".into(),
        }
    }
}

/// A bounded, expiring whois cache in front of the LocalAPI.
pub struct WhoisCache {
    api: Arc<dyn LocalApi>,
    entries: Mutex<HashMap<IpAddr, (Instant, Arc<IngressPeer>)>>,
}

impl std::fmt::Debug for WhoisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WhoisCache")
    }
}

impl WhoisCache {
    /// A cache over `api`.
    pub fn new(api: Arc<dyn LocalApi>) -> Self {
        Self {
            api,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, ip: IpAddr, now: Instant) -> Option<Arc<IngressPeer>> {
        let g = self.entries.lock().ok()?;
        let (at, peer) = g.get(&ip)?;
        let ttl = match **peer {
            IngressPeer::Tailnet(_) => HIT_TTL,
            IngressPeer::Public => MISS_TTL,
        };
        (now.duration_since(*at) < ttl).then(|| peer.clone())
    }

    /// Identifies `ip`. A 404 (not a tailnet node) is `Public`; other LocalAPI failures are
    /// errors (the connection is refused rather than given a guessed provenance).
    pub async fn lookup(&self, ip: IpAddr) -> Result<Arc<IngressPeer>, LocalApiError> {
        let ip = ip.to_canonical();
        let now = Instant::now();
        if let Some(p) = self.cached(ip, now) {
            return Ok(p);
        }
        let peer = match self.api.whois(ip.into()).await {
            Ok(w) if w.node.is_some() => IngressPeer::Tailnet(TailnetPeer::from_whois(&w)),
            Ok(_) => IngressPeer::Public,
            Err(LocalApiError::Status { status: 404, .. }) => IngressPeer::Public,
            Err(e) => return Err(e),
        };
        let peer = Arc::new(peer);
        if let Ok(mut g) = self.entries.lock() {
            if g.len() >= MAX_ENTRIES {
                g.clear();
            }
            g.insert(ip, (now, peer.clone()));
        }
        Ok(peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tailscale::{FakeLocalApi, Status};

    fn whois(json: serde_json::Value) -> WhoIs {
        serde_json::from_value(json).unwrap()
    }

    #[tokio::test]
    async fn users_tags_and_unknown_sources() {
        let fake = Arc::new(FakeLocalApi::new(Status::default()));
        let user: IpAddr = "100.64.0.4".parse().unwrap();
        let bot: IpAddr = "100.64.0.5".parse().unwrap();
        fake.insert_whois(user, whois(serde_json::json!({"Node":{"Name":"vienna.ts.net.","Tags":null},"UserProfile":{"LoginName":"v@example.com","DisplayName":"V"}})));
        fake.insert_whois(bot, whois(serde_json::json!({"Node":{"Name":"bot.ts.net.","Tags":["tag:ci"]},"UserProfile":{"LoginName":"tagged-devices"}})));
        let cache = WhoisCache::new(fake.clone());
        let u = cache.lookup(user).await.unwrap();
        assert_eq!(u.login(), Some("v@example.com"));
        let b = cache.lookup(bot).await.unwrap();
        assert_eq!(b.login(), None);
        assert!(b.describe().contains("tag:ci"));
        let public = cache.lookup("203.0.113.7".parse().unwrap()).await.unwrap();
        assert_eq!(*public, IngressPeer::Public);
        let calls = fake.call_count();
        cache.lookup(user).await.unwrap();
        cache.lookup("203.0.113.7".parse().unwrap()).await.unwrap();
        assert_eq!(fake.call_count(), calls, "answers come from the cache");
    }
}
