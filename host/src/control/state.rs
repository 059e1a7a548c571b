//! The control plane's model: distributions as stored, the writes that change them,
//! and the swap of the serving snapshot after each write.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use crate::config::{Distribution, DistributionConfig};
use crate::metrics::Metrics;
use crate::origin::OriginFetcher;
use crate::proxy::routing::{Routing, ServedDistribution};
use crate::store::{Compare, Op, Revision, Store, Txn, TxnOutcome};

const DIST_PREFIX: &str = "distributions/";
const ALIAS_PREFIX: &str = "aliases/";

/// A distribution as persisted under `distributions/<id>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredDistribution {
    pub id: String,
    pub domain_name: String,
    /// RFC 3339, UTC.
    pub last_modified: String,
    pub config: DistributionConfig,
}

/// A distribution with its ETag (the store revision that last wrote it).
#[derive(Debug)]
pub struct DistributionRecord {
    pub stored: StoredDistribution,
    pub revision: Revision,
    pub config: Arc<Distribution>,
}

impl DistributionRecord {
    pub fn etag(&self) -> String {
        etag_of(self.revision)
    }
}

/// The ETag string for a store revision.
pub fn etag_of(revision: Revision) -> String {
    format!("E{revision}")
}

/// `InProgress` until the serving snapshot includes a change, then `Deployed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DeployStatus {
    InProgress,
    Deployed,
}

/// Everything the control plane knows, as of one store revision. Immutable;
/// each write makes a new one.
#[derive(Debug, Clone, Default)]
pub struct ControlState {
    pub revision: Revision,
    pub distributions: BTreeMap<String, Arc<DistributionRecord>>,
    /// alias → distribution id.
    pub aliases: HashMap<String, String>,
}

/// Options of the control plane.
#[derive(Debug, Clone)]
pub struct ControlOptions {
    /// Distributions get `<id>.<domain_suffix>` as their domain name.
    pub domain_suffix: String,
}

/// The control plane: validates, persists, then swaps what viewers are served.
#[derive(Debug)]
pub struct ControlPlane {
    store: Arc<dyn Store>,
    /// Serializes writers so each builds on the state the last one left.
    write: tokio::sync::Mutex<()>,
    state: ArcSwap<ControlState>,
    routing: Arc<ArcSwap<Routing>>,
    fetcher: Arc<OriginFetcher>,
    metrics: Arc<Metrics>,
    options: ControlOptions,
}

/// The `If-Match` a write carries.
#[derive(Debug, Clone, Copy)]
pub enum IfMatch<'a> {
    Missing,
    Value(&'a str),
}

impl IfMatch<'_> {
    /// Checks against the current ETag: missing → 400, stale → 412.
    fn check(self, current: Revision, what: &str) -> Result<(), ApiError> {
        match self {
            Self::Missing => Err(ApiError::missing_if_match()),
            Self::Value(v) if etag_matches(v, current) => Ok(()),
            Self::Value(_) => Err(ApiError::precondition_failed(what)),
        }
    }
}

/// Whether an `If-Match` value names `revision` (quotes and `W/` tolerated).
pub fn etag_matches(value: &str, revision: Revision) -> bool {
    let v = value.trim();
    let v = v.strip_prefix("W/").unwrap_or(v).trim_matches('"');
    v == etag_of(revision)
}

impl ControlPlane {
    /// Loads every stored distribution and builds the first serving snapshot.
    pub async fn open(
        store: Arc<dyn Store>,
        routing: Arc<ArcSwap<Routing>>,
        fetcher: Arc<OriginFetcher>,
        metrics: Arc<Metrics>,
        options: ControlOptions,
    ) -> Result<Self, crate::store::StoreError> {
        let loaded = store.load().await?;
        let mut state = ControlState {
            revision: loaded.revision,
            ..ControlState::default()
        };
        for kv in &loaded.entries {
            if let Some(alias) = kv.key.strip_prefix(ALIAS_PREFIX) {
                let owner = String::from_utf8_lossy(&kv.value).into_owned();
                state.aliases.insert(alias.to_owned(), owner);
            } else if kv.key.starts_with(DIST_PREFIX) {
                let record = serde_json::from_slice::<StoredDistribution>(&kv.value)
                    .map_err(|e| e.to_string())
                    .and_then(|stored| {
                        let config = Distribution::try_from(stored.config.clone())
                            .map_err(|e| e.to_string())?;
                        Ok(DistributionRecord {
                            stored,
                            revision: kv.mod_revision,
                            config: Arc::new(config),
                        })
                    });
                match record {
                    Ok(r) => {
                        state.distributions.insert(r.stored.id.clone(), Arc::new(r));
                    }
                    Err(err) => {
                        tracing::error!(key = %kv.key, error = %err, "stored distribution cannot be read; it is not served");
                    }
                }
            }
        }
        let plane = Self {
            store,
            write: tokio::sync::Mutex::new(()),
            state: ArcSwap::from_pointee(ControlState::default()),
            routing,
            fetcher,
            metrics,
            options,
        };
        plane.publish(state);
        Ok(plane)
    }

    /// The current state.
    pub fn state(&self) -> Arc<ControlState> {
        self.state.load_full()
    }

    /// Deployed once the serving snapshot has the record's revision.
    pub fn status_of(&self, record: &DistributionRecord) -> DeployStatus {
        status_for(record.revision, self.routing.load().revision)
    }

    /// Swaps in a new state, then the serving snapshot built from it. Between the
    /// two a reader sees the change `InProgress`.
    fn publish(&self, state: ControlState) {
        let revision = state.revision;
        let previous = self.routing.load_full();
        let served: Vec<Arc<ServedDistribution>> = state
            .distributions
            .values()
            .map(|r| {
                // Keep an unchanged distribution's served form (and its pools).
                previous
                    .distributions()
                    .find(|d| *d.id == *r.stored.id && d.revision == r.revision)
                    .cloned()
                    .unwrap_or_else(|| {
                        Arc::new(ServedDistribution::new(
                            &r.stored.id,
                            &r.stored.domain_name,
                            r.config.clone(),
                            r.revision,
                            &self.fetcher,
                        ))
                    })
            })
            .collect();
        self.state.store(Arc::new(state));
        self.routing
            .store(Arc::new(Routing::build(revision, served)));
        self.metrics.set_config_revision(revision);
    }

    /// Validates a config against the rules no single config can check alone.
    fn validate_in_context(
        &self,
        state: &ControlState,
        config: &Distribution,
        id: &str,
    ) -> Result<(), ApiError> {
        let suffix = &self.options.domain_suffix;
        for (i, alias) in config.aliases.iter().enumerate() {
            let bare = alias.strip_prefix("*.").unwrap_or(alias);
            if bare == suffix || bare.ends_with(&format!(".{suffix}")) {
                return Err(ApiError::invalid_argument(format!(
                    "aliases[{i}]: {alias:?} is inside the host's own domain {suffix:?}"
                )));
            }
            if let Some(owner) = state.aliases.get(alias).filter(|o| *o != id) {
                return Err(ApiError::alias_taken(alias, owner));
            }
        }
        if let Some((field, module)) = config.hook_modules().into_iter().next() {
            return Err(ApiError::invalid_argument(format!(
                "{field}: no hook named {module:?} has been uploaded"
            )));
        }
        if let Some(policy) = &config.continuous_deployment_policy_id {
            return Err(ApiError::invalid_argument(format!(
                "continuous_deployment_policy_id: no continuous-deployment policy has id {policy:?}"
            )));
        }
        Ok(())
    }

    /// Commits a transaction; a failed compare means another writer got there
    /// first (possible only with a shared store) and is reported as such.
    async fn commit(&self, txn: Txn, what: &str) -> Result<Revision, ApiError> {
        match self.store.commit(txn).await? {
            TxnOutcome::Committed { revision } => Ok(revision),
            TxnOutcome::CompareFailed { key } => match key.strip_prefix(ALIAS_PREFIX) {
                Some(alias) => Err(ApiError::alias_taken(alias, "another distribution")),
                None => Err(ApiError::precondition_failed(what)),
            },
        }
    }

    /// `POST /v1/distributions`.
    pub async fn create(
        &self,
        raw: DistributionConfig,
    ) -> Result<Arc<DistributionRecord>, ApiError> {
        let config = Distribution::try_from(raw.clone())?;
        let _guard = self.write.lock().await;
        let state = self.state();
        let id = loop {
            let id = crate::ids::distribution_id();
            if !state.distributions.contains_key(&id) {
                break id;
            }
        };
        self.validate_in_context(&state, &config, &id)?;
        let stored = StoredDistribution {
            domain_name: format!("{}.{}", id.to_ascii_lowercase(), self.options.domain_suffix),
            id: id.clone(),
            last_modified: rfc3339(SystemTime::now()),
            config: raw,
        };
        let mut txn = Txn::default();
        txn.compares.push(Compare::ModRevision {
            key: dist_key(&id),
            revision: 0,
        });
        txn.ops.push(put_json(dist_key(&id), &stored)?);
        for alias in &config.aliases {
            txn.compares.push(Compare::ModRevision {
                key: alias_key(alias),
                revision: 0,
            });
            txn.ops.push(Op::Put {
                key: alias_key(alias),
                value: id.clone().into_bytes(),
            });
        }
        let revision = self.commit(txn, &id).await?;
        let record = Arc::new(DistributionRecord {
            stored,
            revision,
            config: Arc::new(config),
        });
        let mut next = (*state).clone();
        next.revision = revision;
        for alias in &record.config.aliases {
            next.aliases.insert(alias.clone(), id.clone());
        }
        next.distributions.insert(id, record.clone());
        self.publish(next);
        Ok(record)
    }

    /// `PUT /v1/distributions/{id}/config`.
    pub async fn replace_config(
        &self,
        id: &str,
        if_match: IfMatch<'_>,
        raw: DistributionConfig,
    ) -> Result<Arc<DistributionRecord>, ApiError> {
        let _guard = self.write.lock().await;
        let state = self.state();
        let current = state
            .distributions
            .get(id)
            .ok_or_else(|| ApiError::no_such_distribution(id))?
            .clone();
        if_match.check(current.revision, id)?;
        let config = Distribution::try_from(raw.clone())?;
        self.validate_in_context(&state, &config, id)?;
        let stored = StoredDistribution {
            config: raw,
            last_modified: rfc3339(SystemTime::now()),
            ..current.stored.clone()
        };
        let mut txn = Txn::default();
        txn.compares.push(Compare::ModRevision {
            key: dist_key(id),
            revision: current.revision,
        });
        txn.ops.push(put_json(dist_key(id), &stored)?);
        let old: Vec<&String> = current.config.aliases.iter().collect();
        for alias in &config.aliases {
            if !old.contains(&alias) {
                txn.compares.push(Compare::ModRevision {
                    key: alias_key(alias),
                    revision: 0,
                });
                txn.ops.push(Op::Put {
                    key: alias_key(alias),
                    value: id.as_bytes().to_vec(),
                });
            }
        }
        for alias in &old {
            if !config.aliases.contains(alias) {
                txn.ops.push(Op::Delete {
                    key: alias_key(alias),
                });
            }
        }
        let revision = self.commit(txn, id).await?;
        let record = Arc::new(DistributionRecord {
            stored,
            revision,
            config: Arc::new(config),
        });
        let mut next = (*state).clone();
        next.revision = revision;
        next.aliases.retain(|_, owner| owner != id);
        for alias in &record.config.aliases {
            next.aliases.insert(alias.clone(), id.to_owned());
        }
        next.distributions.insert(id.to_owned(), record.clone());
        self.publish(next);
        Ok(record)
    }

    /// `DELETE /v1/distributions/{id}`: only a disabled distribution.
    pub async fn delete(&self, id: &str, if_match: IfMatch<'_>) -> Result<(), ApiError> {
        let _guard = self.write.lock().await;
        let state = self.state();
        let current = state
            .distributions
            .get(id)
            .ok_or_else(|| ApiError::no_such_distribution(id))?
            .clone();
        if_match.check(current.revision, id)?;
        if current.config.enabled {
            return Err(ApiError::new(
                http::StatusCode::CONFLICT,
                "DistributionNotDisabled",
                format!(
                    "distribution {id} is enabled; disable it (PUT its config with \"enabled\": false) before deleting it"
                ),
            ));
        }
        let mut txn = Txn::default();
        txn.compares.push(Compare::ModRevision {
            key: dist_key(id),
            revision: current.revision,
        });
        txn.ops.push(Op::Delete { key: dist_key(id) });
        for alias in &current.config.aliases {
            txn.ops.push(Op::Delete {
                key: alias_key(alias),
            });
        }
        let revision = self.commit(txn, id).await?;
        let mut next = (*state).clone();
        next.revision = revision;
        next.aliases.retain(|_, owner| owner != id);
        next.distributions.remove(id);
        self.publish(next);
        Ok(())
    }
}

fn status_for(record_revision: Revision, served_revision: Revision) -> DeployStatus {
    if served_revision >= record_revision {
        DeployStatus::Deployed
    } else {
        DeployStatus::InProgress
    }
}

fn dist_key(id: &str) -> String {
    format!("{DIST_PREFIX}{id}")
}

fn alias_key(alias: &str) -> String {
    format!("{ALIAS_PREFIX}{alias}")
}

fn put_json<T: Serialize>(key: String, value: &T) -> Result<Op, ApiError> {
    let value = serde_json::to_vec(value).map_err(|e| {
        ApiError::new(
            http::StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            e.to_string(),
        )
    })?;
    Ok(Op::Put { key, value })
}

/// Formats a time as RFC 3339 in UTC with seconds precision.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn status_follows_the_served_revision() {
        assert_eq!(status_for(5, 4), DeployStatus::InProgress);
        assert_eq!(status_for(5, 5), DeployStatus::Deployed);
        assert_eq!(status_for(5, 9), DeployStatus::Deployed);
    }

    #[test]
    fn if_match_accepts_quoted_and_weak_forms() {
        assert!(etag_matches("E7", 7));
        assert!(etag_matches("\"E7\"", 7));
        assert!(etag_matches("W/\"E7\"", 7));
        assert!(!etag_matches("E8", 7));
        assert!(IfMatch::Missing.check(7, "x").is_err());
    }

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        assert_eq!(rfc3339(t), "2026-11-18T11:06:40Z");
    }
}
