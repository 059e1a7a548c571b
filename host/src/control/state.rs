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
use crate::proxy::routing::{BehaviorHooks, Routing, ServedDistribution};
use crate::store::{Compare, Op, Revision, Store, Txn, TxnOutcome};
use crate::wasm::{self, BoundHook, CompiledHook, Event, HookRuntime, KvData};

const DIST_PREFIX: &str = "distributions/";
const ALIAS_PREFIX: &str = "aliases/";
/// `hook-modules/<hex>` → component bytes, shared by every name that uploaded them.
const MODULE_PREFIX: &str = "hook-modules/";
/// `hooks/<name>/<version>` → [`HookMeta`].
const HOOK_PREFIX: &str = "hooks/";
/// `hook-latest/<name>` → the version `name` alone resolves to.
const LATEST_PREFIX: &str = "hook-latest/";
/// `kv/<namespace>/<key>` → the value.
const KV_PREFIX: &str = "kv/";

/// What is recorded about one uploaded version of a hook.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HookMeta {
    pub size: usize,
    pub uploaded: String,
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
    /// hook name → versions.
    pub hooks: BTreeMap<String, HookRecord>,
    /// Key-value data for hooks.
    pub kv: Arc<KvData>,
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
    runtime: Arc<HookRuntime>,
    /// The KV data hooks read, shared with the proxy.
    kv: Arc<ArcSwap<KvData>>,
    metrics: Arc<Metrics>,
    options: ControlOptions,
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
        } = parts;
        let loaded = store.load().await?;
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
                    (Ok(meta), Some(bytes)) => compile(&runtime, name, bytes)
                        .await
                        .map(|compiled| HookVersion { meta, compiled })
                        .map_err(|e| e.message),
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
            } else if let Some(alias) = entry.key.strip_prefix(ALIAS_PREFIX) {
                let owner = String::from_utf8_lossy(&entry.value).into_owned();
                state.aliases.insert(alias.to_owned(), owner);
            } else if entry.key.starts_with(DIST_PREFIX) {
                let record = serde_json::from_slice::<StoredDistribution>(&entry.value)
                    .map_err(|e| e.to_string())
                    .and_then(|stored| {
                        let config = Distribution::try_from(stored.config.clone())
                            .map_err(|e| e.to_string())?;
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
        let plane = Self {
            store,
            write: tokio::sync::Mutex::new(()),
            state: ArcSwap::from_pointee(ControlState::default()),
            routing,
            fetcher,
            runtime,
            kv,
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
        let served: Vec<Arc<ServedDistribution>> = state
            .distributions
            .values()
            .map(|r| {
                Arc::new(ServedDistribution::new(
                    &r.stored.id,
                    &r.stored.domain_name,
                    r.config.clone(),
                    r.revision,
                    &self.fetcher,
                    bind_hooks(&state, &r.config),
                ))
            })
            .collect();
        let kv = state.kv.clone();
        self.state.store(Arc::new(state));
        self.kv.store(kv);
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
        for (field, module) in config.hook_modules() {
            if state.resolve_hook(module).is_none() {
                return Err(ApiError::invalid_argument(format!(
                    "{field}: no hook {module:?} has been uploaded"
                )));
            }
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

    /// `PUT /v1/hooks/{name}`: validates the component against the `hooks` world,
    /// stores it by content hash, and makes it the version `name` resolves to.
    /// Distributions naming `name` run it from the next request on.
    pub async fn put_hook(&self, name: &str, bytes: bytes::Bytes) -> Result<String, ApiError> {
        crate::config::validate_hook_name(name).map_err(ApiError::invalid_argument)?;
        let compiled = compile(&self.runtime, name, bytes.to_vec()).await?;
        let version = compiled.version.clone();
        let hex = version.trim_start_matches("sha256:").to_owned();
        let meta = HookMeta {
            size: bytes.len(),
            uploaded: rfc3339(SystemTime::now()),
        };
        let _guard = self.write.lock().await;
        let state = self.state();
        let mut txn = Txn::default();
        txn.ops.push(Op::Put {
            key: format!("{MODULE_PREFIX}{hex}"),
            value: bytes.to_vec(),
        });
        txn.ops
            .push(put_json(format!("{HOOK_PREFIX}{name}/{version}"), &meta)?);
        txn.ops.push(Op::Put {
            key: format!("{LATEST_PREFIX}{name}"),
            value: version.clone().into_bytes(),
        });
        let revision = self.commit(txn, name).await?;
        let mut next = (*state).clone();
        next.revision = revision;
        let record = next.hooks.entry(name.to_owned()).or_default();
        record.latest = version.clone();
        record
            .versions
            .insert(version.clone(), HookVersion { meta, compiled });
        self.publish(next);
        Ok(version)
    }

    /// `PUT /v1/kv/{namespace}/{key}`: hooks read the new value from the next
    /// request on.
    pub async fn kv_put(
        &self,
        namespace: &str,
        key: &str,
        value: bytes::Bytes,
    ) -> Result<(), ApiError> {
        validate_kv_name(namespace, "namespace")?;
        validate_kv_name(key, "key")?;
        let op = Op::Put {
            key: format!("{KV_PREFIX}{namespace}/{key}"),
            value: value.to_vec(),
        };
        self.write_kv(op, |_| Ok(()), |kv| kv.insert(namespace, key, value))
            .await
    }

    /// `DELETE /v1/kv/{namespace}/{key}`.
    pub async fn kv_delete(&self, namespace: &str, key: &str) -> Result<(), ApiError> {
        let op = Op::Delete {
            key: format!("{KV_PREFIX}{namespace}/{key}"),
        };
        let exists = |kv: &KvData| match kv.get(namespace, key) {
            Some(_) => Ok(()),
            None => Err(no_such_key(namespace, key)),
        };
        self.write_kv(op, exists, |kv| {
            kv.remove(namespace, key);
        })
        .await
    }

    /// Commits one KV write after `check` accepts the current data, then
    /// publishes the data as `change` leaves it.
    async fn write_kv(
        &self,
        op: Op,
        check: impl FnOnce(&KvData) -> Result<(), ApiError>,
        change: impl FnOnce(&mut KvData),
    ) -> Result<(), ApiError> {
        let _guard = self.write.lock().await;
        let state = self.state();
        check(&state.kv)?;
        let what = match &op {
            Op::Put { key, .. } | Op::Delete { key } => key.clone(),
        };
        let txn = Txn {
            compares: Vec::new(),
            ops: vec![op],
        };
        let revision = self.commit(txn, &what).await?;
        let mut next = (*state).clone();
        next.revision = revision;
        let mut kv = (*state.kv).clone();
        change(&mut kv);
        next.kv = Arc::new(kv);
        self.publish(next);
        Ok(())
    }

    /// Compilations the on-disk artifact cache answered since start.
    pub fn compile_cache_hits(&self) -> usize {
        self.runtime.cache_hits()
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
                let default_budget = match event {
                    Event::ViewerRequest | Event::ViewerResponse => wasm::DEFAULT_VIEWER_BUDGET,
                    _ => wasm::DEFAULT_ORIGIN_BUDGET,
                };
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

fn status_for(record_revision: Revision, served_revision: Revision) -> DeployStatus {
    if served_revision >= record_revision {
        DeployStatus::Deployed
    } else {
        DeployStatus::InProgress
    }
}

/// Compiles off the async workers (Cranelift is CPU-heavy on a first compile).
async fn compile(
    runtime: &Arc<HookRuntime>,
    name: &str,
    bytes: Vec<u8>,
) -> Result<Arc<CompiledHook>, ApiError> {
    let (rt, n) = (runtime.clone(), name.to_owned());
    match tokio::task::spawn_blocking(move || rt.compile(&n, &bytes)).await {
        Ok(Ok(compiled)) => Ok(Arc::new(compiled)),
        Ok(Err(invalid)) => Err(ApiError::new(
            http::StatusCode::BAD_REQUEST,
            "InvalidHook",
            invalid.0,
        )),
        Err(e) => Err(ApiError::new(
            http::StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            e.to_string(),
        )),
    }
}

/// The error for a KV key that is not set.
pub fn no_such_key(namespace: &str, key: &str) -> ApiError {
    ApiError::new(
        http::StatusCode::NOT_FOUND,
        "NoSuchKey",
        format!("no value is set for {namespace}/{key}"),
    )
}

fn validate_kv_name(name: &str, what: &str) -> Result<(), ApiError> {
    if crate::config::is_valid_id(name) {
        Ok(())
    } else {
        Err(ApiError::invalid_argument(format!(
            "{what} {name:?} must be 1-128 of A-Z a-z 0-9 - _ ."
        )))
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
