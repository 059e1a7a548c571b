//! The serving snapshot: which distribution answers a Host, with its origin pools
//! and resolved hooks. Built whole on every change and swapped in one atomic store.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::Distribution;
use crate::config::policy::Policy;
use crate::metrics::{ArmStats, DistributionStats};
use crate::origin::dynamic::DynamicPools;
use crate::origin::{OriginFetcher, OriginPools, PoolClient};
use crate::wasm::{BoundHook, Event};

/// The hooks bound to one cache behavior, by event.
#[derive(Debug, Default)]
pub struct BehaviorHooks {
    pub viewer_request: Option<Arc<BoundHook>>,
    pub origin_request: Option<Arc<BoundHook>>,
    pub origin_response: Option<Arc<BoundHook>>,
    pub viewer_response: Option<Arc<BoundHook>>,
}

impl BehaviorHooks {
    /// The hooks of the events that may still run after `event`, so a
    /// request drops the instances no later event can use.
    pub fn after(&self, event: Event) -> [Option<&BoundHook>; 3] {
        let (req, resp, viewer) = (
            self.origin_request.as_deref(),
            self.origin_response.as_deref(),
            self.viewer_response.as_deref(),
        );
        match event {
            Event::ViewerRequest => [req, resp, viewer],
            Event::OriginRequest => [resp, viewer, None],
            Event::OriginResponse => [viewer, None, None],
            Event::ViewerResponse => [None, None, None],
        }
    }
}

/// One distribution as the request path sees it.
#[derive(Debug)]
pub struct ServedDistribution {
    pub id: Arc<str>,
    pub domain_name: String,
    pub config: Arc<Distribution>,
    /// Each origin's addresses and their pools, in `config.origins` order.
    pub pools: Vec<OriginPools>,
    /// One pool per backend hooks may send to, in `config.backends` order.
    pub backend_pools: Vec<PoolClient>,
    /// The pools of the origins hooks route to by name (`dynamic_origins`).
    /// Made anew with each config snapshot: a change drops their idle
    /// connections.
    pub dynamic: Option<DynamicPools>,
    /// Hooks per behavior, numbered as `Distribution::behavior_for` numbers them.
    pub hooks: Vec<BehaviorHooks>,
    /// The store revision of this distribution's config.
    pub revision: u64,
    /// The continuous deployment that sends some viewers to a staging
    /// distribution; `None` when no policy sends any.
    pub deployment: Option<Deployment>,
    /// Its counters on `/metrics`.
    pub stats: Arc<DistributionStats>,
}

impl ServedDistribution {
    pub fn new(
        id: &str,
        domain_name: &str,
        config: Arc<Distribution>,
        revision: u64,
        fetcher: &Arc<OriginFetcher>,
        hooks: Vec<BehaviorHooks>,
        stats: Arc<DistributionStats>,
    ) -> Self {
        let pools = config
            .origins
            .iter()
            .map(|o| fetcher.origin_pools(o))
            .collect();
        let backend_pools = config
            .backends
            .iter()
            .map(|o| fetcher.pool_for(o))
            .collect();
        let dynamic = config
            .dynamic_origins
            .clone()
            .map(|allowed| DynamicPools::new(fetcher.clone(), allowed));
        Self {
            backend_pools,
            dynamic,
            stats,
            id: id.into(),
            domain_name: domain_name.to_owned(),
            config,
            pools,
            hooks,
            revision,
            deployment: None,
        }
    }

    /// The same distribution with a continuous deployment attached.
    pub fn with_deployment(mut self, deployment: Option<Deployment>) -> Self {
        self.deployment = deployment;
        self
    }
}

/// A primary's continuous deployment as the request path sees it.
#[derive(Debug)]
pub struct Deployment {
    pub policy_id: Arc<str>,
    pub policy: Policy,
    pub staging: Arc<ServedDistribution>,
    /// Counts of the staging arm, when the policy has an automatic gate.
    pub stats: Option<Arc<ArmStats>>,
}

/// Host → distribution tables, immutable once built.
#[derive(Debug, Default)]
pub struct Routing {
    /// The store revision this snapshot reflects.
    pub revision: u64,
    exact: HashMap<String, Arc<ServedDistribution>>,
    /// `*.example.com` is kept under `example.com`.
    wildcard: HashMap<String, Arc<ServedDistribution>>,
    by_domain: HashMap<String, Arc<ServedDistribution>>,
}

impl Routing {
    /// Builds the tables; aliases are unique across distributions (the control
    /// plane guarantees it), so no entry overwrites another.
    pub fn build(
        revision: u64,
        distributions: impl IntoIterator<Item = Arc<ServedDistribution>>,
    ) -> Self {
        let mut routing = Self {
            revision,
            ..Self::default()
        };
        for d in distributions {
            for alias in &d.config.aliases {
                match alias.strip_prefix("*.") {
                    Some(suffix) => routing.wildcard.insert(suffix.to_owned(), d.clone()),
                    None => routing.exact.insert(alias.clone(), d.clone()),
                };
            }
            routing.by_domain.insert(d.domain_name.clone(), d);
        }
        routing
    }

    /// Step 1: exact alias, then the most specific wildcard alias, then the
    /// distribution's own domain name. `host` is lower-case without a port.
    pub fn resolve(&self, host: &str) -> Option<&Arc<ServedDistribution>> {
        if let Some(d) = self.exact.get(host) {
            return Some(d);
        }
        let mut rest = host;
        while let Some((_, suffix)) = rest.split_once('.') {
            if let Some(d) = self.wildcard.get(suffix) {
                return Some(d);
            }
            rest = suffix;
        }
        self.by_domain.get(host)
    }

    pub fn distributions(&self) -> impl Iterator<Item = &Arc<ServedDistribution>> {
        self.by_domain.values()
    }

    /// What viewers are served, canonical (sorted): for each name a viewer
    /// may ask for, the distribution, its revision, the hook version each
    /// behavior's events run, and the staging arm. Two hosts with equal
    /// summaries answer every viewer alike.
    pub fn summary(&self) -> serde_json::Value {
        fn served(d: &ServedDistribution) -> serde_json::Value {
            let hook = |h: &Option<Arc<BoundHook>>| {
                h.as_ref()
                    .map(|h| format!("{}@{}", h.compiled.name, h.compiled.version))
            };
            let hooks: Vec<_> = d
                .hooks
                .iter()
                .map(|b| {
                    [
                        hook(&b.viewer_request),
                        hook(&b.origin_request),
                        hook(&b.origin_response),
                        hook(&b.viewer_response),
                    ]
                })
                .collect();
            serde_json::json!({
                "id": &*d.id,
                "revision": d.revision,
                "hooks": hooks,
                "staging": d.deployment.as_ref().map(|dep| serde_json::json!({
                    "policy": &*dep.policy_id,
                    "distribution": served(&dep.staging),
                })),
            })
        }
        let table = |t: &HashMap<String, Arc<ServedDistribution>>| {
            t.iter()
                .map(|(name, d)| (name.clone(), served(d)))
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        serde_json::json!({
            "exact": table(&self.exact),
            "wildcard": table(&self.wildcard),
            "by_domain": table(&self.by_domain),
        })
    }
}
