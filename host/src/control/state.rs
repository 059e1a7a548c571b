//! The control plane's model: what is stored, the state built from it, and the
//! swap of the serving snapshot after each write.
//!
//! The writes live beside it, one file per resource: [`super::distributions`]
//! (create, replace, delete, copy, alias moves, promote), [`super::policies`]
//! (continuous deployment and its automatic gate), [`super::invalidations`],
//! and [`super::hooks`] (hook modules and KV data). Every write takes the write
//! lock, validates against the current state, commits one store transaction
//! whose compares guard what it read, and publishes the next state.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};

use super::certificates::{CertificateRecord, StoredCertificate};
use super::error::{ApiError, ErrorCode};
use super::fleet::FleetState;
use crate::cache::SharedCache;
use crate::config::policy::{Policy, PolicyConfig};
use crate::config::{Distribution, DistributionConfig};
use crate::metrics::ArmStats;
use crate::metrics::Metrics;
use crate::origin::OriginFetcher;
use crate::proxy::routing::{BehaviorHooks, Deployment, Routing, ServedDistribution};
use crate::store::{Loaded, Op, Revision, Store, Txn, TxnOutcome};
use crate::wasm::{self, BoundHook, CompiledHook, Event, HookRuntime, KvData};

pub(super) const DIST_PREFIX: &str = "distributions/";
pub(super) const ALIAS_PREFIX: &str = "aliases/";
/// `hook-modules/<hex>` → component bytes, shared by every name that uploaded them.
pub(super) const MODULE_PREFIX: &str = "hook-modules/";
/// `hooks/<name>/<version>` → [`HookMeta`].
pub(super) const HOOK_PREFIX: &str = "hooks/";
/// `hook-latest/<name>` → the version `name` alone resolves to.
pub(super) const LATEST_PREFIX: &str = "hook-latest/";
/// `kv/<namespace>/<key>` → the value.
pub(super) const KV_PREFIX: &str = "kv/";
/// `policies/<id>` → [`StoredPolicy`].
pub(super) const POLICY_PREFIX: &str = "policies/";

/// The store key of policy `id`.
pub(super) fn policy_key(id: &str) -> String {
    format!("{POLICY_PREFIX}{id}")
}
/// `invalidations/<distribution id>/<id>` → [`StoredInvalidation`].
pub(super) const INVALIDATION_PREFIX: &str = "invalidations/";
/// `certificates/<name>` → [`StoredCertificate`].
pub(super) const CERTIFICATE_PREFIX: &str = "certificates/";

/// What is recorded about one uploaded version of a hook.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HookMeta {
    pub size: usize,
    pub uploaded: String,
    /// Microseconds since the Unix epoch at upload: orders versions
    /// uploaded within one second (0 in records written before it existed).
    #[serde(default)]
    pub uploaded_us: u64,
}

/// One version of a hook: its record and its compiled form.
#[derive(Debug, Clone)]
pub struct HookVersion {
    pub meta: HookMeta,
    pub compiled: Arc<CompiledHook>,
}

/// Every version of one hook name.
#[derive(Debug, Clone, Default)]
pub struct HookRecord {
    pub latest: String,
    pub versions: BTreeMap<String, HookVersion>,
}

/// A distribution as persisted under `distributions/<id>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredDistribution {
    pub id: String,
    pub domain_name: String,
    /// RFC 3339, UTC.
    pub last_modified: String,
    /// A staging distribution (made by `copy` with `"staging": true`): it has
    /// no aliases and serves a primary's viewers through a policy.
    #[serde(default)]
    pub staging: bool,
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

/// A continuous-deployment policy as persisted under `policies/<id>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredPolicy {
    pub id: String,
    pub last_modified: String,
    pub config: PolicyConfig,
    #[serde(default)]
    pub status: GateStatus,
}

/// What the automatic gate last did to a policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateStatus {
    pub state: GateState,
    /// Why the gate rolled the policy back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

/// `Active` until the gate trips; an operator's write makes it `Active` again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum GateState {
    #[default]
    Active,
    RolledBack,
}

/// A policy with its ETag and validated form.
#[derive(Debug)]
pub struct PolicyRecord {
    pub stored: StoredPolicy,
    pub revision: Revision,
    pub policy: Policy,
}

impl PolicyRecord {
    pub fn etag(&self) -> String {
        etag_of(self.revision)
    }
}

/// One invalidation, as persisted under `invalidations/<distribution>/<id>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredInvalidation {
    pub id: String,
    pub paths: Vec<String>,
    /// RFC 3339.
    pub create_time: String,
    /// How many cached objects it dropped on this host.
    pub dropped: usize,
}

/// An invalidation with the revision that recorded it (for ordering).
#[derive(Debug)]
pub struct InvalidationRecord {
    pub stored: StoredInvalidation,
    pub revision: Revision,
}

/// The ETag string for a store revision.
pub fn etag_of(revision: Revision) -> String {
    format!("E{revision}")
}

/// `InProgress` until every host serving the config has a change, then
/// `Deployed` (see [`super::fleet`]).
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
    /// hook name → versions.
    pub hooks: BTreeMap<String, HookRecord>,
    /// Key-value data for hooks.
    pub kv: Arc<KvData>,
    /// Continuous-deployment policies by id.
    pub policies: BTreeMap<String, Arc<PolicyRecord>>,
    /// Each distribution's invalidations, oldest first.
    pub invalidations: HashMap<String, Vec<Arc<InvalidationRecord>>>,
    /// Viewer TLS certificates uploaded through the API, by name.
    pub certificates: BTreeMap<String, Arc<CertificateRecord>>,
}

impl ControlState {
    /// The compiled hook a config's `module` names: `name` (latest) or
    /// `name@sha256:...` (pinned).
    pub fn resolve_hook(&self, module: &str) -> Option<&Arc<CompiledHook>> {
        let (name, version) = match module.split_once('@') {
            Some((n, v)) => (n, Some(v)),
            None => (module, None),
        };
        let record = self.hooks.get(name)?;
        let version = version.unwrap_or(&record.latest);
        record.versions.get(version).map(|v| &v.compiled)
    }

    /// The distribution `id`, or 404.
    pub fn distribution(&self, id: &str) -> Result<&Arc<DistributionRecord>, ApiError> {
        self.distributions
            .get(id)
            .ok_or_else(|| ApiError::no_such_distribution(id))
    }

    /// The policy `id`, or 404.
    pub fn policy(&self, id: &str) -> Result<&Arc<PolicyRecord>, ApiError> {
        self.policies.get(id).ok_or_else(|| {
            ApiError::new(
                ErrorCode::NoSuchContinuousDeploymentPolicy,
                format!("no continuous-deployment policy has id {id:?}"),
            )
        })
    }

    /// The distribution a policy is attached to, if any.
    pub fn primary_of(&self, policy_id: &str) -> Option<&Arc<DistributionRecord>> {
        self.distributions
            .values()
            .find(|d| d.config.continuous_deployment_policy_id.as_deref() == Some(policy_id))
    }

    /// The policy that names `staging_id` as its staging distribution, if any.
    pub fn policy_of_staging(&self, staging_id: &str) -> Option<&Arc<PolicyRecord>> {
        self.policies
            .values()
            .find(|p| p.policy.staging_distribution_id == staging_id)
    }
}

/// Options of the control plane.
#[derive(Debug, Clone)]
pub struct ControlOptions {
    /// Distributions get `<id>.<domain_suffix>` as their domain name.
    pub domain_suffix: String,
    /// Names this host among the hosts sharing a store.
    pub host_id: String,
    /// Tells this host's reports from another's under the same id (see
    /// `server::host_id`).
    pub instance: String,
    /// Versions of one hook kept; older ones no config pins are pruned.
    pub hook_versions_kept: usize,
    /// The most bytes of hook modules the store may hold.
    pub max_hook_store_bytes: u64,
}

/// The control plane: validates, persists, then swaps what viewers are served.
#[derive(Debug)]
pub struct ControlPlane {
    pub(super) store: Arc<dyn Store>,
    /// Serializes writers so each builds on the state the last one left.
    pub(super) write: tokio::sync::Mutex<()>,
    state: ArcSwap<ControlState>,
    routing: Arc<ArcSwap<Routing>>,
    fetcher: Arc<OriginFetcher>,
    pub(super) runtime: Arc<HookRuntime>,
    /// The KV data hooks read, shared with the proxy.
    kv: Arc<ArcSwap<KvData>>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) cache: SharedCache,
    /// The certificates viewers' handshakes are answered from.
    tls: Arc<crate::tls::CertStore>,
    /// Certificates from `--tls-cert-dir`, served after the API's.
    dir_certificates: Vec<Arc<crate::tls::Certificate>>,
    /// The staging-arm counts of each policy with an automatic gate, kept
    /// across snapshots while the policy's revision stays the same.
    pub(super) gates: Mutex<HashMap<String, (Revision, Arc<ArmStats>)>>,
    pub(super) options: ControlOptions,
    /// What this host knows of the hosts sharing its store.
    pub(super) fleet: FleetState,
}

/// The parts a control plane is built from.
#[derive(Debug, Clone)]
pub struct PlaneParts {
    pub store: Arc<dyn Store>,
    pub routing: Arc<ArcSwap<Routing>>,
    pub fetcher: Arc<OriginFetcher>,
    pub runtime: Arc<HookRuntime>,
    pub kv: Arc<ArcSwap<KvData>>,
    pub metrics: Arc<Metrics>,
    pub cache: SharedCache,
    pub tls: Arc<crate::tls::CertStore>,
    pub dir_certificates: Vec<Arc<crate::tls::Certificate>>,
}

/// The `If-Match` a write carries.
#[derive(Debug, Clone, Copy)]
pub enum IfMatch<'a> {
    Missing,
    Value(&'a str),
}

impl<'a> IfMatch<'a> {
    /// From a request's `If-Match` header value, if it has one.
    pub fn from_header(value: Option<&'a str>) -> Self {
        value.map_or(Self::Missing, Self::Value)
    }

    /// Checks against the current ETag: missing → 400, stale → 412.
    pub fn check(self, current: Revision, what: &str) -> Result<(), ApiError> {
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
    /// Loads everything stored and builds the first serving snapshot.
    pub async fn open(
        parts: PlaneParts,
        options: ControlOptions,
    ) -> Result<Self, crate::store::StoreError> {
        let PlaneParts {
            store,
            routing,
            fetcher,
            runtime,
            kv,
            metrics,
            cache,
            tls,
            dir_certificates,
        } = parts;
        let loaded = store.load().await?;
        let state = build_state(&loaded, &runtime, &ControlState::default()).await;
        metrics.set_store_connected(true);
        let fleet = FleetState::new(&options.host_id, &options.instance, &state);
        let plane = Self {
            store,
            write: tokio::sync::Mutex::new(()),
            state: ArcSwap::from_pointee(ControlState::default()),
            routing,
            fetcher,
            runtime,
            kv,
            metrics,
            cache,
            tls,
            dir_certificates,
            gates: Mutex::new(HashMap::new()),
            options,
            fleet,
        };
        plane.publish(state);
        Ok(plane)
    }

    /// The current state.
    pub fn state(&self) -> Arc<ControlState> {
        self.state.load_full()
    }

    /// The store revision of the serving snapshot.
    pub fn served_revision(&self) -> Revision {
        self.routing.load().revision
    }

    /// Takes the write lock and the state to validate a write against, first
    /// catching up with writes other hosts made to a shared store.
    pub(super) async fn begin_write(
        &self,
    ) -> Result<(tokio::sync::MutexGuard<'_, ()>, Arc<ControlState>), ApiError> {
        let guard = self.write.lock().await;
        self.catch_up().await?;
        Ok((guard, self.state()))
    }

    /// Swaps in a new state, then the serving snapshot built from it. Between the
    /// two a reader sees the change `InProgress`.
    pub(super) fn publish(&self, state: ControlState) {
        let revision = state.revision;
        let serve = |r: &DistributionRecord| {
            let origins: Vec<String> = r.config.origins.iter().map(|o| o.id.clone()).collect();
            ServedDistribution::new(
                &r.stored.id,
                &r.stored.domain_name,
                r.config.clone(),
                r.revision,
                &self.fetcher,
                bind_hooks(&state, &r.config),
                self.metrics.distribution(&r.stored.id, &origins),
            )
        };
        self.metrics
            .retain_distributions(|id| state.distributions.contains_key(id));
        // Staging distributions (and every one without a deployment) first,
        // so a primary can point at its staging's served form.
        let mut served: HashMap<&str, Arc<ServedDistribution>> = HashMap::new();
        let mut primaries = Vec::new();
        for r in state.distributions.values() {
            match self.deployment_policy(&state, r) {
                Some(policy) => primaries.push((r, policy)),
                None => {
                    served.insert(&r.stored.id, Arc::new(serve(r)));
                }
            }
        }
        let gates = self.gate_stats(&state);
        for (r, policy) in primaries {
            let staging = served
                .get(policy.policy.staging_distribution_id.as_str())
                .cloned();
            let deployment = staging.map(|staging| Deployment {
                policy_id: policy.stored.id.as_str().into(),
                policy: policy.policy.clone(),
                staging,
                stats: gates.get(&policy.stored.id).cloned(),
            });
            served.insert(&r.stored.id, Arc::new(serve(r).with_deployment(deployment)));
        }
        let served: Vec<Arc<ServedDistribution>> = served.into_values().collect();
        self.tls.replace(
            state
                .certificates
                .values()
                .map(|r| r.certificate.clone())
                .chain(self.dir_certificates.iter().cloned())
                .collect(),
        );
        let kv = state.kv.clone();
        self.state.store(Arc::new(state));
        self.kv.store(kv);
        self.routing
            .store(Arc::new(Routing::build(revision, served)));
        self.metrics.set_config_revision(revision);
    }

    /// The policy that sends some of `r`'s viewers to an enabled staging
    /// distribution, if one does.
    fn deployment_policy<'s>(
        &self,
        state: &'s ControlState,
        r: &DistributionRecord,
    ) -> Option<&'s Arc<PolicyRecord>> {
        let policy = state
            .policies
            .get(r.config.continuous_deployment_policy_id.as_deref()?)?;
        let staging = state
            .distributions
            .get(&policy.policy.staging_distribution_id)?;
        (policy.policy.sends_traffic() && staging.config.enabled && !r.stored.staging)
            .then_some(policy)
    }

    /// The counters of every policy with an automatic gate, new ones for a
    /// policy written since the last snapshot.
    fn gate_stats(&self, state: &ControlState) -> HashMap<String, Arc<ArmStats>> {
        let mut gates = self
            .gates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        gates.retain(|id, (revision, _)| {
            state
                .policies
                .get(id)
                .is_some_and(|p| p.revision == *revision)
        });
        for p in state.policies.values() {
            if let Some(auto) = &p.policy.auto {
                gates
                    .entry(p.stored.id.clone())
                    .or_insert_with(|| (p.revision, Arc::new(ArmStats::new(auto.window_s))));
            }
        }
        gates
            .iter()
            .map(|(id, (_, stats))| (id.clone(), stats.clone()))
            .collect()
    }

    /// Commits nothing; builds the state after a committed write: `state`
    /// with `change` applied at `revision`, then publishes it.
    pub(super) fn publish_change(
        &self,
        state: &ControlState,
        revision: Revision,
        change: impl FnOnce(&mut ControlState),
    ) {
        let mut next = state.clone();
        next.revision = revision;
        change(&mut next);
        self.publish(next);
    }

    /// Validates a config against the rules no single config can check alone:
    /// alias ownership, uploaded hooks, the policy it attaches, and what a
    /// staging distribution may not have.
    pub(super) fn validate_in_context(
        &self,
        state: &ControlState,
        config: &Distribution,
        id: &str,
        staging: bool,
    ) -> Result<(), ApiError> {
        if staging && !config.aliases.is_empty() {
            return Err(ApiError::invalid_argument(
                "aliases: a staging distribution has no aliases; viewers reach it through its primary's continuous-deployment policy",
            ));
        }
        for (i, alias) in config.aliases.iter().enumerate() {
            self.check_alias_domain(alias)
                .map_err(|m| ApiError::invalid_argument(format!("aliases[{i}]: {m}")))?;
            if let Some(owner) = state.aliases.get(alias).filter(|o| *o != id) {
                return Err(ApiError::alias_taken(alias, owner));
            }
        }
        for (field, module) in config.hook_modules() {
            if state.resolve_hook(module).is_none() {
                return Err(ApiError::invalid_argument(format!(
                    "{field}: no hook {module:?} has been uploaded"
                )));
            }
        }
        if let Some(policy_id) = &config.continuous_deployment_policy_id {
            const FIELD: &str = "continuous_deployment_policy_id";
            if staging {
                return Err(ApiError::invalid_argument(format!(
                    "{FIELD}: a staging distribution cannot have a continuous-deployment policy"
                )));
            }
            let policy = state.policies.get(policy_id).ok_or_else(|| {
                ApiError::invalid_argument(format!(
                    "{FIELD}: no continuous-deployment policy has id {policy_id:?}"
                ))
            })?;
            if policy.policy.staging_distribution_id == id {
                return Err(ApiError::invalid_argument(format!(
                    "{FIELD}: policy {policy_id} sends traffic to this distribution itself"
                )));
            }
            if let Some(other) = state.primary_of(policy_id).filter(|d| d.stored.id != id) {
                return Err(ApiError::new(
                    ErrorCode::ContinuousDeploymentPolicyInUse,
                    format!(
                        "policy {policy_id} is already attached to distribution {}",
                        other.stored.id
                    ),
                ));
            }
        }
        Ok(())
    }

    /// An alias may not be inside the host's own domain suffix.
    pub(super) fn check_alias_domain(&self, alias: &str) -> Result<(), String> {
        let suffix = &self.options.domain_suffix;
        let bare = alias.strip_prefix("*.").unwrap_or(alias);
        if bare == suffix || bare.ends_with(&format!(".{suffix}")) {
            return Err(format!(
                "{alias:?} is inside the host's own domain {suffix:?}"
            ));
        }
        Ok(())
    }

    /// Commits a transaction; a failed compare means another writer got there
    /// first (possible only with a shared store) and is reported as such.
    pub(super) async fn commit(&self, txn: Txn, what: &str) -> Result<Revision, ApiError> {
        match self.store.commit(txn).await? {
            TxnOutcome::Committed { revision } => Ok(revision),
            TxnOutcome::CompareFailed { key } => match key.strip_prefix(ALIAS_PREFIX) {
                Some(alias) => Err(ApiError::alias_taken(alias, "another distribution")),
                None => Err(ApiError::precondition_failed(what)),
            },
        }
    }
}

/// Builds the state a store load describes. Hook versions `previous` has
/// compiled are reused; others are compiled (off the async workers).
pub(super) async fn build_state(
    loaded: &Loaded,
    runtime: &Arc<HookRuntime>,
    previous: &ControlState,
) -> ControlState {
    let mut state = ControlState {
        revision: loaded.revision,
        ..ControlState::default()
    };
    let modules: HashMap<&str, &[u8]> = loaded
        .entries
        .iter()
        .filter_map(|e| Some((e.key.strip_prefix(MODULE_PREFIX)?, e.value.as_slice())))
        .collect();
    let mut kv_data = KvData::default();
    for entry in &loaded.entries {
        if let Some(rest) = entry.key.strip_prefix(KV_PREFIX)
            && let Some((ns, key)) = rest.split_once('/')
        {
            kv_data.insert(ns, key, bytes::Bytes::from(entry.value.clone()));
        } else if let Some(name) = entry.key.strip_prefix(LATEST_PREFIX) {
            state.hooks.entry(name.to_owned()).or_default().latest =
                String::from_utf8_lossy(&entry.value).into_owned();
        } else if let Some(rest) = entry.key.strip_prefix(HOOK_PREFIX)
            && let Some((name, version)) = rest.split_once('/')
        {
            let meta: Result<HookMeta, String> =
                serde_json::from_slice(&entry.value).map_err(|e| e.to_string());
            let hex = version.strip_prefix("sha256:").unwrap_or(version);
            let bytes = modules.get(hex).map(|b| b.to_vec());
            let compiled = match (meta, bytes) {
                (Ok(meta), Some(bytes)) => match previous
                    .hooks
                    .get(name)
                    .and_then(|r| r.versions.get(version))
                {
                    Some(known) => Ok(HookVersion {
                        meta,
                        compiled: known.compiled.clone(),
                    }),
                    None => compile(runtime, name, bytes)
                        .await
                        .map(|compiled| HookVersion { meta, compiled })
                        .map_err(|e| e.message),
                },
                (Err(e), _) => Err(e),
                (_, None) => Err("its module bytes are missing".to_owned()),
            };
            match compiled {
                Ok(v) => {
                    state
                        .hooks
                        .entry(name.to_owned())
                        .or_default()
                        .versions
                        .insert(version.to_owned(), v);
                }
                Err(err) => {
                    tracing::error!(key = %entry.key, error = %err, "stored hook cannot be loaded")
                }
            }
        } else if entry.key.starts_with(POLICY_PREFIX) {
            let record = serde_json::from_slice::<StoredPolicy>(&entry.value)
                .map_err(|e| e.to_string())
                .and_then(|stored| {
                    let policy = Policy::try_from(&stored.config).map_err(|e| e.to_string())?;
                    Ok(PolicyRecord {
                        stored,
                        revision: entry.mod_revision,
                        policy,
                    })
                });
            match record {
                Ok(r) => {
                    state.policies.insert(r.stored.id.clone(), Arc::new(r));
                }
                Err(err) => {
                    tracing::error!(key = %entry.key, error = %err, "stored policy cannot be read; it sends no traffic");
                }
            }
        } else if let Some(rest) = entry.key.strip_prefix(INVALIDATION_PREFIX)
            && let Some((dist, _)) = rest.split_once('/')
        {
            match serde_json::from_slice::<StoredInvalidation>(&entry.value) {
                Ok(stored) => state
                    .invalidations
                    .entry(dist.to_owned())
                    .or_default()
                    .push(Arc::new(InvalidationRecord {
                        stored,
                        revision: entry.mod_revision,
                    })),
                Err(err) => {
                    tracing::error!(key = %entry.key, error = %err, "stored invalidation cannot be read");
                }
            }
        } else if entry.key.starts_with(CERTIFICATE_PREFIX) {
            let record = serde_json::from_slice::<StoredCertificate>(&entry.value)
                .map_err(|e| e.to_string())
                .and_then(CertificateRecord::from_stored);
            match record {
                Ok(r) => {
                    state
                        .certificates
                        .insert(r.stored.name.clone(), Arc::new(r));
                }
                Err(err) => {
                    tracing::error!(key = %entry.key, error = %err, "stored certificate cannot be read; it is not served");
                }
            }
        } else if let Some(alias) = entry.key.strip_prefix(ALIAS_PREFIX) {
            let owner = String::from_utf8_lossy(&entry.value).into_owned();
            state.aliases.insert(alias.to_owned(), owner);
        } else if entry.key.starts_with(DIST_PREFIX) {
            let record = serde_json::from_slice::<StoredDistribution>(&entry.value)
                .map_err(|e| e.to_string())
                .and_then(|stored| {
                    let config =
                        Distribution::try_from(stored.config.clone()).map_err(|e| e.to_string())?;
                    Ok(DistributionRecord {
                        stored,
                        revision: entry.mod_revision,
                        config: Arc::new(config),
                    })
                });
            match record {
                Ok(r) => {
                    state.distributions.insert(r.stored.id.clone(), Arc::new(r));
                }
                Err(err) => {
                    tracing::error!(key = %entry.key, error = %err, "stored distribution cannot be read; it is not served");
                }
            }
        }
    }
    state.kv = Arc::new(kv_data);
    for list in state.invalidations.values_mut() {
        list.sort_by_key(|i| i.revision);
    }
    state
}

/// Binds each behavior's hook associations to compiled hooks, with their limits.
fn bind_hooks(state: &ControlState, config: &Distribution) -> Vec<BehaviorHooks> {
    (0..config.behavior_count())
        .map(|i| {
            let Some(hooks) = config.hooks_of(i) else {
                return BehaviorHooks::default();
            };
            let bind = |event: Event, hook: &Option<crate::config::raw::HookRef>| {
                let hook = hook.as_ref()?;
                let compiled = state.resolve_hook(&hook.module)?.clone();
                let default_budget = wasm::default_budget(&compiled, event);
                Some(Arc::new(BoundHook {
                    compiled,
                    event,
                    config: Arc::new(hook.config.clone()),
                    budget: hook
                        .cpu_budget_ms
                        .map_or(default_budget, std::time::Duration::from_millis),
                    memory_limit: hook
                        .memory_limit_mib
                        .map_or(wasm::DEFAULT_MEMORY_LIMIT, |m| {
                            usize::try_from(m << 20).unwrap_or(usize::MAX)
                        }),
                }))
            };
            BehaviorHooks {
                viewer_request: bind(Event::ViewerRequest, &hooks.viewer_request),
                origin_request: bind(Event::OriginRequest, &hooks.origin_request),
                origin_response: bind(Event::OriginResponse, &hooks.origin_response),
                viewer_response: bind(Event::ViewerResponse, &hooks.viewer_response),
            }
        })
        .collect()
}

/// Compiles off the async workers (Cranelift is CPU-heavy on a first compile).
pub(super) async fn compile(
    runtime: &Arc<HookRuntime>,
    name: &str,
    bytes: Vec<u8>,
) -> Result<Arc<CompiledHook>, ApiError> {
    let (rt, n) = (runtime.clone(), name.to_owned());
    match tokio::task::spawn_blocking(move || rt.compile(&n, &bytes)).await {
        Ok(Ok(compiled)) => Ok(Arc::new(compiled)),
        Ok(Err(invalid)) => Err(ApiError::new(ErrorCode::InvalidHook, invalid.0)),
        Err(e) => Err(ApiError::new(ErrorCode::InternalError, e.to_string())),
    }
}

/// The error for a KV key that is not set.
pub fn no_such_key(namespace: &str, key: &str) -> ApiError {
    ApiError::new(
        ErrorCode::NoSuchKey,
        format!("no value is set for {namespace}/{key}"),
    )
}

pub(super) fn validate_kv_name(name: &str, what: &str) -> Result<(), ApiError> {
    if crate::config::is_valid_id(name) {
        Ok(())
    } else {
        Err(ApiError::invalid_argument(format!(
            "{what} {name:?} must be 1-128 of A-Z a-z 0-9 - _ ."
        )))
    }
}

pub(super) fn dist_key(id: &str) -> String {
    format!("{DIST_PREFIX}{id}")
}

pub(super) fn alias_key(alias: &str) -> String {
    format!("{ALIAS_PREFIX}{alias}")
}

pub(super) fn put_json<T: Serialize>(key: String, value: &T) -> Result<Op, ApiError> {
    let value = serde_json::to_vec(value)
        .map_err(|e| ApiError::new(ErrorCode::InternalError, e.to_string()))?;
    Ok(Op::Put { key, value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_accepts_quoted_and_weak_forms() {
        assert!(etag_matches("E7", 7));
        assert!(etag_matches("\"E7\"", 7));
        assert!(etag_matches("W/\"E7\"", 7));
        assert!(!etag_matches("E8", 7));
        assert!(IfMatch::Missing.check(7, "x").is_err());
    }
}
