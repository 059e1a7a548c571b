//! Writes of continuous-deployment policies, and the rollback the automatic
//! gate makes on its own.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::config::policy::{Policy, PolicyConfig, TrafficConfig};
use crate::control::error::{ApiError, ErrorCode};
use crate::control::etag::IfMatch;
use crate::control::plane::ControlPlane;
use crate::control::records::policies::{
    GateState, GateStatus, PolicyRecord, StoredPolicy, policy_key,
};
use crate::control::records::put_json;
use crate::control::state::ControlState;
use crate::store::{Compare, Op, Revision, Txn};
use crate::time::rfc3339;

impl ControlPlane {
    /// Checks what one policy alone cannot: its staging distribution exists,
    /// is a staging distribution, and no other policy uses it.
    fn validate_policy(
        state: &ControlState,
        policy: &Policy,
        id: Option<&str>,
    ) -> Result<(), ApiError> {
        let staging_id = &policy.staging_distribution_id;
        let staging = state.distributions.get(staging_id).ok_or_else(|| {
            ApiError::invalid_argument(format!(
                "staging_distribution_id: no distribution has id {staging_id:?}"
            ))
        })?;
        if !staging.stored.staging {
            return Err(ApiError::invalid_argument(format!(
                "staging_distribution_id: {staging_id} is not a staging distribution (make one with POST /v1/distributions/{{id}}/copy {{\"staging\": true}})"
            )));
        }
        if let Some(other) = state
            .policy_of_staging(staging_id)
            .filter(|p| Some(p.stored.id.as_str()) != id)
        {
            return Err(ApiError::new(
                ErrorCode::StagingDistributionInUse,
                format!(
                    "staging distribution {staging_id} already belongs to policy {}",
                    other.stored.id
                ),
            ));
        }
        Ok(())
    }

    /// `POST /v1/continuous-deployment-policies`.
    pub async fn create_policy(&self, raw: PolicyConfig) -> Result<Arc<PolicyRecord>, ApiError> {
        let policy = Policy::try_from(&raw)?;
        let (_guard, state) = self.begin_write().await?;
        Self::validate_policy(&state, &policy, None)?;
        let id = loop {
            let id = crate::ids::prefixed_id('P');
            if !state.policies.contains_key(&id) {
                break id;
            }
        };
        let stored = StoredPolicy {
            id: id.clone(),
            last_modified: rfc3339(SystemTime::now()),
            config: raw,
            status: GateStatus::default(),
        };
        self.write_policy(&state, stored, 0).await
    }

    /// `PUT /v1/continuous-deployment-policies/{id}`: replaces the config and
    /// makes the gate `Active` again.
    pub async fn replace_policy(
        &self,
        id: &str,
        if_match: IfMatch<'_>,
        raw: PolicyConfig,
    ) -> Result<Arc<PolicyRecord>, ApiError> {
        let (_guard, state) = self.begin_write().await?;
        let current = state.policy(id)?.clone();
        if_match.check(current.revision, id)?;
        let policy = Policy::try_from(&raw)?;
        Self::validate_policy(&state, &policy, Some(id))?;
        let stored = StoredPolicy {
            id: id.to_owned(),
            last_modified: rfc3339(SystemTime::now()),
            config: raw,
            status: GateStatus::default(),
        };
        self.write_policy(&state, stored, current.revision).await
    }

    /// Commits a policy guarded by its current revision and publishes it.
    async fn write_policy(
        &self,
        state: &ControlState,
        stored: StoredPolicy,
        current: Revision,
    ) -> Result<Arc<PolicyRecord>, ApiError> {
        let id = stored.id.clone();
        let txn = Txn {
            compares: vec![Compare::ModRevision {
                key: policy_key(&id),
                revision: current,
            }],
            ops: vec![put_json(policy_key(&id), &stored)?],
        };
        let next = self.commit_write(state, txn, &id, &[]).await?;
        Ok(next.policy(&id)?.clone())
    }

    /// `DELETE /v1/continuous-deployment-policies/{id}`: only a policy no
    /// distribution uses.
    pub async fn delete_policy(&self, id: &str, if_match: IfMatch<'_>) -> Result<(), ApiError> {
        let (_guard, state) = self.begin_write().await?;
        let current = state.policy(id)?.clone();
        if_match.check(current.revision, id)?;
        if let Some(primary) = state.primary_of(id) {
            return Err(ApiError::new(
                ErrorCode::ContinuousDeploymentPolicyInUse,
                format!(
                    "policy {id} is attached to distribution {}; detach it first",
                    primary.stored.id
                ),
            ));
        }
        let txn = Txn {
            compares: vec![Compare::ModRevision {
                key: policy_key(id),
                revision: current.revision,
            }],
            ops: vec![Op::Delete {
                key: policy_key(id),
            }],
        };
        self.commit_write(&state, txn, id, &[]).await?;
        Ok(())
    }

    /// The automatic gate's rollback: the policy's weight to 0 (a header
    /// policy is disabled), with the reason in its status. Does nothing when
    /// the policy changed since the gate read it at `seen`.
    pub async fn roll_back(
        &self,
        id: &str,
        seen: Revision,
        reason: String,
    ) -> Result<(), ApiError> {
        let (_guard, state) = self.begin_write().await?;
        let Some(current) = state
            .policies
            .get(id)
            .filter(|p| p.revision == seen)
            .cloned()
        else {
            return Ok(());
        };
        let mut config = current.stored.config.clone();
        match &mut config.traffic {
            TrafficConfig::Weight { weight, .. } => *weight = 0.0,
            TrafficConfig::Header { .. } => config.enabled = false,
        }
        Policy::try_from(&config)?;
        let now = rfc3339(SystemTime::now());
        let stored = StoredPolicy {
            id: id.to_owned(),
            last_modified: now.clone(),
            config,
            status: GateStatus {
                state: GateState::RolledBack,
                reason: Some(reason.clone()),
                at: Some(now),
            },
        };
        self.write_policy(&state, stored, seen).await?;
        tracing::warn!(policy = id, %reason, "continuous deployment rolled back");
        Ok(())
    }

    /// One pass of the automatic gate: rolls back every active policy whose
    /// staging arm failed too often over its window.
    pub async fn check_gates(&self) {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        let state = self.state();
        let gates: Vec<(String, Revision, Arc<crate::metrics::ArmStats>)> = {
            let gates = self
                .gates
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            gates
                .iter()
                .map(|(id, (rev, stats))| (id.clone(), *rev, stats.clone()))
                .collect()
        };
        for (id, revision, stats) in gates {
            let Some(record) = state.policies.get(&id).filter(|p| p.revision == revision) else {
                continue;
            };
            let Some(gate) = record.policy.auto else {
                continue;
            };
            if record.stored.status.state != GateState::Active || !record.policy.sends_traffic() {
                continue;
            }
            let (requests, errors) = stats.totals(now);
            if requests < gate.min_requests || requests == 0 {
                continue;
            }
            let rate = errors as f64 / requests as f64;
            if rate > gate.max_error_rate {
                let reason = format!(
                    "staging 5xx rate {:.2} % over the last {} s ({errors} of {requests} requests) is above the limit of {:.2} %",
                    rate * 100.0,
                    gate.window_s,
                    gate.max_error_rate * 100.0
                );
                if let Err(err) = self.roll_back(&id, revision, reason).await {
                    tracing::error!(policy = %id, error = %err, "automatic rollback failed");
                }
            }
        }
    }
}
