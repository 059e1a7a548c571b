//! The control plane: validates a write against the current state, commits
//! it as one store transaction whose compares guard what it read, decodes
//! the committed operations into the next state ([`super::decode`]), and
//! swaps the serving snapshot.
//!
//! The writes live in [`super::writes`], one file per resource:
//! [`super::writes::distributions`] (create, replace, delete, copy, alias
//! moves, promote), [`super::writes::policies`] (continuous deployment and
//! its automatic gate), [`super::writes::invalidations`],
//! [`super::writes::certificates`] and [`super::writes::hooks`] (hook
//! modules and KV data).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use super::decode;
use super::error::{ApiError, ErrorCode};
use super::fleet_state::FleetState;
use super::records::distributions::{ALIAS_PREFIX, DistributionRecord};
use super::records::policies::PolicyRecord;
use super::state::ControlState;
use crate::cache::SharedCache;
use crate::config::Distribution;
use crate::metrics::{ArmStats, Metrics};
use crate::origin::OriginFetcher;
use crate::proxy::routing::{BehaviorHooks, Deployment, Routing, ServedDistribution};
use crate::store::{Revision, Store, Txn, TxnOutcome};
use crate::wasm::{self, BoundHook, CompiledHook, Event, HookRuntime, KvData};

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
    /// Where the cache cluster's other members reach this host (`host:port`
    /// of its internal listener); empty when it is not a member.
    pub cluster: String,
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
    pub(super) fetcher: Arc<OriginFetcher>,
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
        let state = decode::load(&loaded, &runtime, &ControlState::default()).await;
        metrics.set_store_connected(true);
        let fleet = FleetState::new(
            &options.host_id,
            &options.instance,
            &options.cluster,
            &state,
        );
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

    /// The state a host following the store would build from a full load
    /// of it now, hook versions this host compiled reused: what this host
    /// serves, unless the store changed since.
    pub async fn load_from_store(&self) -> Result<ControlState, crate::store::StoreError> {
        let loaded = self.store.load().await?;
        Ok(decode::load(&loaded, &self.runtime, &self.state()).await)
    }

    /// The serving snapshot viewers are answered from.
    pub fn routing(&self) -> Arc<Routing> {
        self.routing.load_full()
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

    /// Commits `txn`, then serves the state its operations make through the
    /// same decoders a host following the store uses; returns that state.
    /// `fresh`: hooks the write compiled, so none compiles twice.
    pub(super) async fn commit_write(
        &self,
        state: &ControlState,
        txn: Txn,
        what: &str,
        fresh: &[Arc<CompiledHook>],
    ) -> Result<Arc<ControlState>, ApiError> {
        let ops = txn.ops.clone();
        let revision = self.commit(txn, what).await?;
        let next = decode::committed(state, &ops, revision, &self.runtime, fresh).await;
        self.publish(next);
        Ok(self.state())
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
        for (field, hook) in config.hook_refs() {
            let module = &hook.module;
            let Some(compiled) = state.resolve_hook(module) else {
                return Err(ApiError::invalid_argument(format!(
                    "{field}.module: no hook {module:?} has been uploaded"
                )));
            };
            // What 0.1.0 components cannot be given.
            let newer = [
                ("secret_stores", !hook.secret_stores.is_empty(), "secrets"),
                ("include_body", hook.include_body, "bodies"),
                ("fetch", hook.fetch.is_some(), "fetch"),
            ];
            if compiled.world == wasm::World::V0_1
                && let Some((name, _, what)) = newer.iter().find(|(_, asked, _)| *asked)
            {
                return Err(ApiError::invalid_argument(format!(
                    "{field}.{name}: hook {module:?} is built for edge:hooks@0.1.0, which has no {what}; rebuild it with the current SDK"
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
    async fn commit(&self, txn: Txn, what: &str) -> Result<Revision, ApiError> {
        match self.store.commit(txn).await? {
            TxnOutcome::Committed { revision } => Ok(revision),
            TxnOutcome::CompareFailed { key } => match key.strip_prefix(ALIAS_PREFIX) {
                Some(alias) => Err(ApiError::alias_taken(alias, "another distribution")),
                None => Err(ApiError::precondition_failed(what)),
            },
        }
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
                    body: wasm::BodyRead::of(hook),
                    fetch: wasm::fetch::FetchLimits::of(hook),
                    secret_stores: wasm::secret_stores(hook),
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
