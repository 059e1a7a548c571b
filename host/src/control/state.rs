//! The control plane's state as of one store revision: every decoded record
//! (see [`super::records`]), and the lookups writes validate against.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::error::{ApiError, ErrorCode};
use super::records::certificates::CertificateRecord;
use super::records::distributions::DistributionRecord;
use super::records::hooks::HookRecord;
use super::records::invalidations::Invalidations;
use super::records::policies::PolicyRecord;
use crate::store::Revision;
use crate::wasm::{CompiledHook, KvData};

/// `InProgress` until every host serving the config has a change, then
/// `Deployed` (see [`super::fleet`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
    pub invalidations: Invalidations,
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

    /// A description of everything this state serves, canonical (sorted,
    /// no pointers): two hosts with equal summaries serve the same config.
    pub fn summary(&self) -> serde_json::Value {
        // A record as stored, with the ETag it is served under.
        fn stored<'a, T: Serialize + 'a>(
            records: impl Iterator<Item = (&'a String, (String, &'a T))>,
        ) -> BTreeMap<&'a str, serde_json::Value> {
            records
                .map(|(id, (etag, stored))| {
                    let stored = serde_json::to_value(stored).unwrap_or_default();
                    (
                        id.as_str(),
                        serde_json::json!({"etag": etag, "stored": stored}),
                    )
                })
                .collect()
        }
        let distributions = stored(
            self.distributions
                .iter()
                .map(|(id, r)| (id, (r.etag(), &r.stored))),
        );
        let aliases: BTreeMap<&str, &str> = self
            .aliases
            .iter()
            .map(|(a, d)| (a.as_str(), d.as_str()))
            .collect();
        let hooks: BTreeMap<&str, serde_json::Value> = self
            .hooks
            .iter()
            .map(|(name, r)| {
                let versions: BTreeMap<&str, serde_json::Value> = r
                    .versions
                    .iter()
                    .map(|(v, h)| {
                        let meta = serde_json::to_value(&h.meta).unwrap_or_default();
                        (
                            v.as_str(),
                            serde_json::json!({"meta": meta, "compiled": h.compiled.version}),
                        )
                    })
                    .collect();
                (
                    name.as_str(),
                    serde_json::json!({"latest": r.latest, "versions": versions}),
                )
            })
            .collect();
        let kv: BTreeMap<&str, Vec<(&str, usize)>> = self
            .kv
            .namespaces()
            .into_iter()
            .map(|(ns, _)| (ns, self.kv.keys(ns).unwrap_or_default()))
            .collect();
        let policies = stored(
            self.policies
                .iter()
                .map(|(id, r)| (id, (r.etag(), &r.stored))),
        );
        let invalidations: BTreeMap<&str, Vec<serde_json::Value>> = self
            .invalidations
            .iter()
            .map(|(dist, list)| {
                let list = list
                    .iter()
                    .map(|r| serde_json::json!({"revision": r.revision, "id": r.stored.id, "paths": r.stored.paths}))
                    .collect();
                (dist.as_str(), list)
            })
            .collect();
        let certificates: BTreeMap<&str, &str> = self
            .certificates
            .iter()
            .map(|(name, r)| (name.as_str(), r.stored.uploaded.as_str()))
            .collect();
        serde_json::json!({
            "distributions": distributions,
            "aliases": aliases,
            "hooks": hooks,
            "kv": kv,
            "policies": policies,
            "invalidations": invalidations,
            "certificates": certificates,
        })
    }
}
