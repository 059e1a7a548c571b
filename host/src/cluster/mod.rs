//! The cache cluster: which live host of the fleet owns a cache key, and how
//! a host reaches the owners it asks.
//!
//! Hosts started with `--cluster-listen` on one etcd store form a cluster:
//! each reports the address of its internal listener beside what it serves
//! (`HostReport::cluster`), and every host follows the reports
//! ([`follow`]). A key's owner is the member with the highest rendezvous
//! score for it (SHA-256 of the member's id and the key), so every host
//! agrees on owners without talking to the others, and a member that joins
//! or leaves moves only its own share of keys.
//!
//! A host that misses on a key of a distribution with `cluster: true` asks
//! the key's owner over the internal listener (the proxy's `peer.rs`), and
//! the owner answers from its cache or fetches from the origin once for the
//! whole cluster. The internal listener takes only requests that carry the
//! cluster's secret (kept in the store, made by the first member), and
//! never asks another member itself, so a request crosses at most one hop.
//! An owner that cannot be reached is set aside for [`DOWN_FOR`], and its
//! keys go to the others meanwhile.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http::HeaderValue;
use http::uri::{Authority, Scheme};
use sha2::{Digest as _, Sha256};
use tokio::sync::watch;

use crate::config::Origin;
use crate::metrics::{ClusterCounters, Metrics};
use crate::origin::{OriginFetcher, PoolClient};
use crate::store::{Fleet, HostReport, Store};

pub mod wire;

/// How long an owner that failed to answer is set aside.
pub const DOWN_FOR: Duration = Duration::from_secs(5);
/// How long connecting to an owner may take before the origin is asked
/// instead (members are on one network).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// One other member: its id and how to reach it.
#[derive(Debug)]
pub struct Peer {
    pub id: Arc<str>,
    /// The member's internal listener, as an origin the fetcher can pool.
    pub origin: Arc<Origin>,
    pub pool: PoolClient,
}

/// This host's view of the cluster.
pub struct Cluster {
    /// This host's id.
    me: Arc<str>,
    /// The secret every internal request carries.
    secret: HeaderValue,
    /// The other live members, by id.
    peers: ArcSwap<HashMap<Arc<str>, Arc<Peer>>>,
    /// Members set aside until the instant given.
    down: Mutex<HashMap<Arc<str>, Instant>>,
    fetcher: Arc<OriginFetcher>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("me", &self.me)
            .field("peers", &self.peers.load().keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// A cluster in which this host (`me`) is, so far, alone.
    pub fn new(
        me: &str,
        secret: &str,
        fetcher: Arc<OriginFetcher>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, ClusterError> {
        let secret = HeaderValue::from_str(secret).map_err(|_| ClusterError::Secret)?;
        metrics.cluster.members.store(1, Ordering::Relaxed);
        Ok(Self {
            me: me.into(),
            secret,
            peers: ArcSwap::from_pointee(HashMap::new()),
            down: Mutex::new(HashMap::new()),
            fetcher,
            metrics,
        })
    }

    /// The counters the cluster's work is recorded in.
    pub fn counters(&self) -> &ClusterCounters {
        &self.metrics.cluster
    }

    /// This host's id.
    pub fn me(&self) -> &str {
        &self.me
    }

    /// The secret internal requests carry.
    pub fn secret(&self) -> &HeaderValue {
        &self.secret
    }

    /// Whether `given` is the cluster's secret.
    pub fn admits(&self, given: &[u8]) -> bool {
        crate::ids::constant_time_eq(given, self.secret.as_bytes())
    }

    /// The owner of `key` when it is another member; `None` when it is this
    /// host (or this host is alone).
    pub fn owner(&self, key: &str) -> Option<Arc<Peer>> {
        let peers = self.peers.load();
        if peers.is_empty() {
            return None;
        }
        let now = Instant::now();
        let down = self.down.lock().unwrap_or_else(PoisonError::into_inner);
        let mut best = (score(&self.me, key), None);
        for (id, peer) in peers.iter() {
            if down.get(id).is_some_and(|until| *until > now) {
                continue;
            }
            let s = score(id, key);
            if s > best.0 {
                best = (s, Some(peer));
            }
        }
        best.1.cloned()
    }

    /// Sets `peer` aside for [`DOWN_FOR`]: its keys go to the others.
    pub fn set_down(&self, peer: &Peer) {
        tracing::warn!(peer = %peer.id, "cluster member did not answer; its keys go to the others for a while");
        self.down
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(peer.id.clone(), Instant::now() + DOWN_FOR);
    }

    /// Takes the fleet's reports as the members: every live host that
    /// reported an internal listener.
    pub fn set_members(&self, reports: &[HostReport]) {
        let current = self.peers.load();
        let mut next = HashMap::new();
        for report in reports {
            if report.id == *self.me || report.cluster.is_empty() {
                continue;
            }
            let Ok(addr) = report.cluster.parse::<SocketAddr>() else {
                tracing::debug!(peer = %report.id, address = %report.cluster, "a cluster address that is not host:port");
                continue;
            };
            let id: Arc<str> = report.id.as_str().into();
            let kept = current
                .get(&id)
                .filter(|p| p.origin.authority.as_str() == addr.to_string());
            let peer = match kept {
                Some(peer) => peer.clone(),
                None => match self.peer(&id, addr) {
                    Some(peer) => Arc::new(peer),
                    None => continue,
                },
            };
            next.insert(id, peer);
        }
        let changed =
            next.len() != current.len() || next.keys().any(|id| !current.contains_key(id));
        if changed {
            let mut ids: Vec<_> = next.keys().map(|id| id.to_string()).collect();
            ids.sort();
            tracing::info!(peers = ?ids, "cluster members changed");
        }
        self.metrics
            .cluster
            .members
            .store(next.len() as u64 + 1, Ordering::Relaxed);
        self.down
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|id, until| next.contains_key(id) && *until > Instant::now());
        self.peers.store(Arc::new(next));
    }

    fn peer(&self, id: &Arc<str>, addr: SocketAddr) -> Option<Peer> {
        let authority: Authority = addr.to_string().parse().ok()?;
        let host_header = HeaderValue::from_str(authority.as_str()).ok()?;
        let origin = Arc::new(Origin {
            id: format!("cluster member {id}"),
            scheme: Scheme::HTTP,
            authority,
            host_header,
            origin_path: String::new(),
            custom_headers: Vec::new(),
            connect_timeout: CONNECT_TIMEOUT,
            // The ask's own deadline (the proxy's) bounds the wait.
            read_timeout: Duration::from_secs(3600),
            keepalive_timeout: Duration::from_secs(60),
            version: crate::config::raw::ProtocolVersion::H1,
            addresses: Vec::new(),
            health_check: None,
        });
        let pool = self.fetcher.pool_for(&origin);
        Some(Peer {
            id: id.clone(),
            origin,
            pool,
        })
    }
}

/// The rendezvous score of `member` for `key`.
fn score(member: &str, key: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(member.as_bytes());
    h.update([0]);
    h.update(key.as_bytes());
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// A cluster that could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("the cluster secret in the store is not a valid header value")]
    Secret,
    #[error(
        "--cluster-listen needs a shared store (--store etcd://...): a host alone has no one to share its cache with"
    )]
    NoFleet,
    #[error("the cluster secret could not be read from the store: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// The cluster's secret: the one in the store, or `proposed` when this host
/// is the first member (it is written then, so the next members read it).
pub async fn secret(store: &dyn Store, proposed: &str) -> Result<String, ClusterError> {
    let fleet = store.fleet().ok_or(ClusterError::NoFleet)?;
    Ok(fleet.shared_secret(wire::SECRET_KEY, proposed).await?)
}

/// Keeps the members current from the fleet's reports, every `interval`,
/// until `shutdown`.
pub async fn follow(
    cluster: Arc<Cluster>,
    store: Arc<dyn Store>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(fleet) = store.fleet() else {
        return;
    };
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => refresh(&cluster, fleet).await,
            _ = shutdown.changed() => return,
        }
    }
}

async fn refresh(cluster: &Cluster, fleet: &dyn Fleet) {
    match fleet.hosts().await {
        Ok(reports) => cluster.set_members(&reports),
        // Keep the members known: a store outage is not a member's.
        Err(err) => tracing::debug!(error = %err, "reading the cluster's members"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(id: &str, cluster: &str) -> HostReport {
        HostReport {
            id: id.to_owned(),
            instance: String::new(),
            revision: 1,
            last_seen: String::new(),
            cluster: cluster.to_owned(),
        }
    }

    fn cluster(me: &str) -> Cluster {
        Cluster::new(
            me,
            "s3cret",
            Arc::new(OriginFetcher::new()),
            Arc::new(Metrics::default()),
        )
        .expect("a cluster")
    }

    fn owners(c: &Cluster, keys: &[String]) -> Vec<String> {
        keys.iter()
            .map(|k| {
                c.owner(k)
                    .map_or_else(|| c.me().to_owned(), |p| p.id.to_string())
            })
            .collect()
    }

    #[tokio::test]
    async fn every_member_names_the_same_owners_and_a_leaving_member_moves_only_its_keys() {
        let reports = [
            report("a", "127.0.0.1:7001"),
            report("b", "127.0.0.1:7002"),
            report("c", "127.0.0.1:7003"),
            report("d", ""),
        ];
        let (a, b, c) = (cluster("a"), cluster("b"), cluster("c"));
        for member in [&a, &b, &c] {
            member.set_members(&reports);
            assert_eq!(member.counters().members.load(Ordering::Relaxed), 3);
        }
        let keys: Vec<String> = (0..300).map(|i| format!("d1|GET|/object/{i}")).collect();
        let seen = owners(&a, &keys);
        assert_eq!(seen, owners(&b, &keys));
        assert_eq!(seen, owners(&c, &keys));
        for id in ["a", "b", "c"] {
            let share = seen.iter().filter(|o| *o == id).count();
            assert!((60..=140).contains(&share), "{id} owns {share} of 300");
        }
        assert!(
            !seen.iter().any(|o| o == "d"),
            "a host without a listener owns nothing"
        );

        // c leaves: a and b keep theirs, c's are shared between them.
        a.set_members(&reports[..2]);
        let after = owners(&a, &keys);
        for (before, now) in seen.iter().zip(&after) {
            if before == "c" {
                assert_ne!(now, "c");
            } else {
                assert_eq!(before, now);
            }
        }
    }

    #[tokio::test]
    async fn a_member_set_down_owns_nothing_until_its_time_is_up() {
        let reports = [report("a", "127.0.0.1:7001"), report("b", "127.0.0.1:7002")];
        let a = cluster("a");
        a.set_members(&reports);
        let keys: Vec<String> = (0..50).map(|i| format!("k{i}")).collect();
        let b = keys
            .iter()
            .find_map(|k| a.owner(k))
            .expect("b owns some of 50 keys");
        a.set_down(&b);
        assert!(keys.iter().all(|k| a.owner(k).is_none()));
        a.down
            .lock()
            .expect("lock")
            .insert(b.id.clone(), Instant::now());
        assert!(keys.iter().any(|k| a.owner(k).is_some()));
    }

    #[test]
    fn the_secret_is_compared_whole() {
        let c = cluster("a");
        assert!(c.admits(b"s3cret"));
        assert!(!c.admits(b"s3cre"));
        assert!(!c.admits(b"s3cret!"));
    }
}
