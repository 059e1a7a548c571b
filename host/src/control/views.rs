//! What the control API answers, as types: the server builds its bodies from
//! them, and the CLI and the tests read the bodies back into them.

use serde::{Deserialize, Serialize};

use super::fleet_state::FleetView;
use super::records::distributions::DistributionRecord;
use super::records::invalidations::InvalidationRecord;
use super::records::policies::{GateStatus, PolicyRecord};
use super::state::DeployStatus;
use crate::config::DistributionConfig;
use crate::config::policy::PolicyConfig;
use crate::store::Revision;

/// A list: `{"items": [...], "quantity": n}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct List<T> {
    pub items: Vec<T>,
    pub quantity: usize,
}

impl<T> List<T> {
    pub fn new(items: Vec<T>) -> Self {
        Self {
            quantity: items.len(),
            items,
        }
    }
}

/// `GET /healthz`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    /// `connected`, or `disconnected` while the host serves its last snapshot.
    pub store: String,
    /// The store revision of the serving snapshot.
    pub revision: Revision,
}

/// One live host and whether it serves a change yet.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostStatus {
    pub id: String,
    pub revision: Revision,
    pub last_seen: String,
    /// It serves the change this answer is about.
    pub current: bool,
}

impl HostStatus {
    /// Every host of `view`, each saying whether it serves `revision` yet.
    pub fn all(view: &FleetView, revision: Revision) -> Vec<Self> {
        view.hosts
            .iter()
            .map(|h| Self {
                id: h.id.clone(),
                revision: h.revision,
                last_seen: h.last_seen.clone(),
                current: h.revision >= revision,
            })
            .collect()
    }
}

/// A distribution: `GET /v1/distributions/{id}` and every write's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DistributionView {
    pub id: String,
    pub domain_name: String,
    pub status: DeployStatus,
    pub hosts: Vec<HostStatus>,
    pub staging: bool,
    pub etag: String,
    pub last_modified: String,
    pub config: DistributionConfig,
    /// Each origin's addresses as this host sees them: healthy or not, and
    /// why (see README, "Origin addresses and health checks").
    #[serde(default)]
    pub origin_health: Vec<OriginHealth>,
}

/// One origin's addresses and their health on this host.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OriginHealth {
    pub origin: String,
    /// Empty while no config this host serves holds the origin.
    pub addresses: Vec<crate::origin::AddressHealth>,
}

impl DistributionView {
    pub fn new(
        record: &DistributionRecord,
        view: &FleetView,
        fetcher: &crate::origin::OriginFetcher,
    ) -> Self {
        Self {
            id: record.stored.id.clone(),
            domain_name: record.stored.domain_name.clone(),
            status: view.status(record.revision),
            hosts: HostStatus::all(view, record.revision),
            staging: record.stored.staging,
            etag: record.etag(),
            last_modified: record.stored.last_modified.clone(),
            config: record.stored.config.clone(),
            origin_health: record
                .config
                .origins
                .iter()
                .map(|origin| OriginHealth {
                    origin: origin.id.clone(),
                    addresses: fetcher.health_of(origin),
                })
                .collect(),
        }
    }
}

/// One distribution in `GET /v1/distributions`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DistributionItem {
    pub id: String,
    pub domain_name: String,
    pub aliases: Vec<String>,
    pub status: DeployStatus,
    pub enabled: bool,
    pub staging: bool,
    pub etag: String,
    pub comment: String,
}

impl DistributionItem {
    pub fn new(record: &DistributionRecord, view: &FleetView) -> Self {
        Self {
            id: record.stored.id.clone(),
            domain_name: record.stored.domain_name.clone(),
            aliases: record.stored.config.aliases.clone(),
            status: view.status(record.revision),
            enabled: record.stored.config.enabled,
            staging: record.stored.staging,
            etag: record.etag(),
            comment: record.stored.config.comment.clone(),
        }
    }
}

/// A continuous-deployment policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyView {
    pub id: String,
    pub etag: String,
    pub last_modified: String,
    /// What the automatic gate last did.
    pub status: GateStatus,
    pub config: PolicyConfig,
}

impl PolicyView {
    pub fn new(record: &PolicyRecord) -> Self {
        Self {
            id: record.stored.id.clone(),
            etag: record.etag(),
            last_modified: record.stored.last_modified.clone(),
            status: record.stored.status.clone(),
            config: record.stored.config.clone(),
        }
    }
}

/// `Completed` once every live host has dropped an invalidation's objects
/// (the host that took it does so before answering).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InvalidationStatus {
    InProgress,
    Completed,
}

/// An invalidation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InvalidationView {
    pub id: String,
    pub status: InvalidationStatus,
    pub create_time: String,
    pub paths: Vec<String>,
    /// Tags whose objects it purges.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Whether it marks what matches stale instead of dropping it.
    #[serde(default)]
    pub soft: bool,
    /// Objects it matched on the host that took it (dropped, or marked
    /// stale when soft).
    pub dropped: usize,
}

impl InvalidationView {
    pub fn new(record: &InvalidationRecord, view: &FleetView) -> Self {
        let s = &record.stored;
        Self {
            id: s.id.clone(),
            status: match view.status(record.revision) {
                DeployStatus::Deployed => InvalidationStatus::Completed,
                DeployStatus::InProgress => InvalidationStatus::InProgress,
            },
            create_time: s.create_time.clone(),
            paths: s.paths.clone(),
            tags: s.tags.clone(),
            soft: s.soft,
            dropped: s.dropped,
        }
    }
}

/// A viewer certificate as the API shows it: never its private key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CertificateView {
    pub name: String,
    pub uploaded: String,
    pub certificate_chain: String,
}

/// One hook name in `GET /v1/hooks`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HookItem {
    pub name: String,
    pub latest: String,
    /// How many versions are kept.
    pub versions: usize,
}

/// `GET /v1/hooks/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HookView {
    pub name: String,
    pub latest: String,
    pub versions: Vec<HookVersionView>,
}

/// One kept version of a hook.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HookVersionView {
    pub version: String,
    pub size: usize,
    pub uploaded: String,
    /// The hooks world it was built for: `edge:hooks@0.2.0` (one instance
    /// per request) or `edge:hooks@0.1.0` (one per event).
    #[serde(default)]
    pub world: String,
}

/// `PUT /v1/hooks/{name}`: the version the upload made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HookUploaded {
    pub name: String,
    pub version: String,
}

/// One namespace in `GET /v1/kv`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KvNamespaceItem {
    pub namespace: String,
    pub keys: usize,
}

/// One key in `GET /v1/kv/{namespace}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KvKeyItem {
    pub key: String,
    pub size: usize,
}

/// A secret as the API shows it: never its value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecretView {
    pub store: String,
    pub name: String,
    pub version: u64,
    /// When it was last set (RFC 3339).
    pub updated: String,
}

/// One entry of `GET /v1/secrets`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecretStoreItem {
    pub store: String,
    pub secrets: usize,
}

/// `PUT /v1/kv/{namespace}/{key}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KvWritten {
    pub namespace: String,
    pub key: String,
    pub size: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::fleet_state::HostView;

    #[test]
    fn a_host_is_current_once_it_serves_the_revision() {
        let view = FleetView {
            hosts: [7, 9]
                .into_iter()
                .enumerate()
                .map(|(i, revision)| HostView {
                    id: format!("h{i}"),
                    revision,
                    last_seen: String::new(),
                })
                .collect(),
        };
        let hosts = HostStatus::all(&view, 8);
        assert!(!hosts[0].current);
        assert!(hosts[1].current);
    }
}
