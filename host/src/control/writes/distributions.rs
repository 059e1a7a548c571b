//! Writes of distributions: create, replace, delete, and the blue/green moves
//! (copy as staging, alias moves, promote). Each is one store transaction.

use std::sync::Arc;
use std::time::SystemTime;

use serde::Deserialize;

use crate::config::{Distribution, DistributionConfig};
use crate::control::error::{ApiError, ErrorCode};
use crate::control::etag::{IfMatch, etag_matches};
use crate::control::plane::ControlPlane;
use crate::control::records::distributions::{
    DistributionRecord, StoredDistribution, alias_key, dist_key,
};
use crate::control::records::invalidations::invalidation_key;
use crate::control::records::policies::policy_key;
use crate::control::records::put_json;
use crate::control::state::ControlState;
use crate::store::{Compare, Op, Revision, Txn};
use crate::time::rfc3339;

/// The body of `POST /v1/distributions/{id}/copy`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyRequest {
    /// Make the copy a staging distribution.
    #[serde(default)]
    pub staging: bool,
    /// The copy's `enabled`; the source's when absent.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// The copy's `comment`; the source's when absent.
    #[serde(default)]
    pub comment: Option<String>,
}

/// The body of `POST /v1/distributions/{id}/associate-alias`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AliasRequest {
    #[serde(deserialize_with = "lower_case_name")]
    pub alias: String,
}

/// The body of `POST /v1/distributions/{id}/promote`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromoteRequest {
    pub staging_distribution_id: String,
}

/// Puts a distribution in `txn`, guarded by its current revision (0: absent).
fn put_distribution(
    txn: &mut Txn,
    stored: &StoredDistribution,
    current: Revision,
) -> Result<(), ApiError> {
    txn.compares.push(Compare::ModRevision {
        key: dist_key(&stored.id),
        revision: current,
    });
    txn.ops.push(put_json(dist_key(&stored.id), stored)?);
    Ok(())
}

/// Claims an alias nobody holds for `id`.
fn claim_alias(txn: &mut Txn, alias: &str, id: &str) {
    txn.compares.push(Compare::ModRevision {
        key: alias_key(alias),
        revision: 0,
    });
    txn.ops.push(Op::Put {
        key: alias_key(alias),
        value: id.as_bytes().to_vec(),
    });
}

impl ControlPlane {
    /// Commits `txn` (which writes distribution `id`) and serves it; the
    /// record as committed.
    async fn commit_record(
        &self,
        state: &ControlState,
        txn: Txn,
        id: &str,
    ) -> Result<Arc<DistributionRecord>, ApiError> {
        let next = self.commit_write(state, txn, id, &[]).await?;
        Ok(next.distribution(id)?.clone())
    }

    /// `POST /v1/distributions`: the config as created
    /// ([`DistributionConfig::as_created`]).
    pub async fn create(
        &self,
        raw: DistributionConfig,
    ) -> Result<Arc<DistributionRecord>, ApiError> {
        let (_guard, state) = self.begin_write().await?;
        self.create_locked(&state, raw.as_created(), false).await
    }

    /// Creates a distribution; the caller holds the write lock.
    async fn create_locked(
        &self,
        state: &ControlState,
        raw: DistributionConfig,
        staging: bool,
    ) -> Result<Arc<DistributionRecord>, ApiError> {
        let config = Distribution::try_from(raw.clone())?;
        let id = loop {
            let id = crate::ids::distribution_id();
            if !state.distributions.contains_key(&id) {
                break id;
            }
        };
        self.validate_in_context(state, &config, &id, staging)?;
        let stored = StoredDistribution {
            domain_name: format!("{}.{}", id.to_ascii_lowercase(), self.options.domain_suffix),
            id: id.clone(),
            last_modified: rfc3339(SystemTime::now()),
            staging,
            config: raw,
        };
        let mut txn = Txn::default();
        put_distribution(&mut txn, &stored, 0)?;
        for alias in &config.aliases {
            claim_alias(&mut txn, alias, &id);
        }
        self.commit_record(state, txn, &id).await
    }

    /// `PUT /v1/distributions/{id}/config`.
    pub async fn replace_config(
        &self,
        id: &str,
        if_match: IfMatch<'_>,
        raw: DistributionConfig,
    ) -> Result<Arc<DistributionRecord>, ApiError> {
        let (_guard, state) = self.begin_write().await?;
        let current = state.distribution(id)?.clone();
        if_match.check(current.revision, id)?;
        let config = Distribution::try_from(raw.clone())?;
        self.validate_in_context(&state, &config, id, current.stored.staging)?;
        let stored = StoredDistribution {
            config: raw,
            last_modified: rfc3339(SystemTime::now()),
            ..current.stored.clone()
        };
        let mut txn = Txn::default();
        put_distribution(&mut txn, &stored, current.revision)?;
        let old = &current.config.aliases;
        for alias in config.aliases.iter().filter(|a| !old.contains(a)) {
            claim_alias(&mut txn, alias, id);
        }
        for alias in old.iter().filter(|a| !config.aliases.contains(a)) {
            txn.ops.push(Op::Delete {
                key: alias_key(alias),
            });
        }
        self.commit_record(&state, txn, id).await
    }

    /// `DELETE /v1/distributions/{id}`: only a disabled distribution, and not
    /// a staging distribution a policy still sends viewers to.
    pub async fn delete(&self, id: &str, if_match: IfMatch<'_>) -> Result<(), ApiError> {
        let (_guard, state) = self.begin_write().await?;
        let current = state.distribution(id)?.clone();
        if_match.check(current.revision, id)?;
        if current.config.enabled {
            return Err(ApiError::new(
                ErrorCode::DistributionNotDisabled,
                format!(
                    "distribution {id} is enabled; disable it (PUT its config with \"enabled\": false) before deleting it"
                ),
            ));
        }
        if let Some(policy) = state.policy_of_staging(id) {
            return Err(ApiError::new(
                ErrorCode::StagingDistributionInUse,
                format!(
                    "distribution {id} is the staging distribution of policy {}; delete the policy first",
                    policy.stored.id
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
        for inv in state.invalidations.get(id).into_iter().flatten() {
            txn.ops.push(Op::Delete {
                key: invalidation_key(id, &inv.stored.id),
            });
        }
        self.commit_write(&state, txn, id, &[]).await?;
        Ok(())
    }

    /// `POST /v1/distributions/{id}/copy`: a new distribution with the
    /// source's config, without its aliases (they belong to one distribution)
    /// or its policy; a staging distribution when asked. `If-Match`, when
    /// given, must be the source's current ETag.
    pub async fn copy(
        &self,
        source_id: &str,
        if_match: Option<&str>,
        request: CopyRequest,
    ) -> Result<Arc<DistributionRecord>, ApiError> {
        let (_guard, state) = self.begin_write().await?;
        let source = state.distribution(source_id)?.clone();
        if let Some(value) = if_match {
            IfMatch::Value(value).check(source.revision, source_id)?;
        }
        let mut raw = source.stored.config.clone();
        raw.aliases.clear();
        raw.continuous_deployment_policy_id = None;
        if let Some(enabled) = request.enabled {
            raw.enabled = enabled;
        }
        if let Some(comment) = request.comment {
            raw.comment = comment;
        }
        self.create_locked(&state, raw, request.staging).await
    }

    /// `POST /v1/distributions/{id}/associate-alias`: moves `alias` here from
    /// whichever distribution holds it, in one transaction that rewrites both,
    /// so viewers of the alias are served by one or the other at every moment.
    pub async fn associate_alias(
        &self,
        target_id: &str,
        alias: &str,
    ) -> Result<Arc<DistributionRecord>, ApiError> {
        crate::config::validate_alias(alias)
            .and_then(|()| self.check_alias_domain(alias))
            .map_err(|m| ApiError::invalid_argument(format!("alias: {m}")))?;
        let (_guard, state) = self.begin_write().await?;
        let target = state.distribution(target_id)?.clone();
        if target.stored.staging {
            return Err(ApiError::invalid_argument(format!(
                "distribution {target_id} is a staging distribution and has no aliases"
            )));
        }
        let owner = state.aliases.get(alias).cloned();
        if owner.as_deref() == Some(target_id) {
            return Ok(target);
        }
        let now = rfc3339(SystemTime::now());
        let mut raw = target.stored.config.clone();
        raw.aliases.push(alias.to_owned());
        Distribution::try_from(raw.clone())?;
        let stored = StoredDistribution {
            config: raw,
            last_modified: now.clone(),
            ..target.stored.clone()
        };
        let mut txn = Txn::default();
        put_distribution(&mut txn, &stored, target.revision)?;
        match &owner {
            Some(owner_id) => {
                let from = state.distribution(owner_id)?.clone();
                let mut from_raw = from.stored.config.clone();
                from_raw.aliases.retain(|a| a != alias);
                Distribution::try_from(from_raw.clone())?;
                let from_stored = StoredDistribution {
                    config: from_raw,
                    last_modified: now,
                    ..from.stored.clone()
                };
                put_distribution(&mut txn, &from_stored, from.revision)?;
                txn.ops.push(Op::Put {
                    key: alias_key(alias),
                    value: target_id.as_bytes().to_vec(),
                });
            }
            None => claim_alias(&mut txn, alias, target_id),
        }
        let record = self.commit_record(&state, txn, target_id).await?;
        tracing::info!(
            alias,
            to = target_id,
            from = owner.as_deref().unwrap_or("-"),
            "alias moved"
        );
        Ok(record)
    }

    /// `POST /v1/distributions/{id}/promote`: copies the staging
    /// distribution's config onto the primary in one write. The primary keeps
    /// its aliases, its policy, `enabled` and `comment`; everything else
    /// (origins, groups, behaviors, hooks) becomes the staging's. `If-Match`
    /// carries both ETags, `<primary>, <staging>`; either stale is a 412.
    pub async fn promote(
        &self,
        primary_id: &str,
        if_match: Option<&str>,
        request: PromoteRequest,
    ) -> Result<Arc<DistributionRecord>, ApiError> {
        let staging_id = request.staging_distribution_id.as_str();
        let (primary_etag, staging_etag) = match if_match.map(|v| v.split_once(',')) {
            None => return Err(ApiError::missing_if_match()),
            Some(Some((p, s))) => (p.trim().to_owned(), s.trim().to_owned()),
            Some(None) => {
                return Err(ApiError::new(
                    ErrorCode::InvalidIfMatchVersion,
                    "promote needs If-Match: <primary ETag>, <staging ETag>",
                ));
            }
        };
        let (_guard, state) = self.begin_write().await?;
        let primary = state.distribution(primary_id)?.clone();
        let staging = state.distribution(staging_id)?.clone();
        if !staging.stored.staging {
            return Err(ApiError::invalid_argument(format!(
                "staging_distribution_id: {staging_id} is not a staging distribution"
            )));
        }
        if primary.stored.staging {
            return Err(ApiError::invalid_argument(format!(
                "distribution {primary_id} is a staging distribution; promote onto its primary"
            )));
        }
        // Only the staging distribution of the primary's own policy: any
        // other staging copy (another primary's, or a detached one) would
        // replace production with a config nobody tested behind it.
        let policy = primary
            .config
            .continuous_deployment_policy_id
            .as_deref()
            .and_then(|id| state.policies.get(id))
            .filter(|p| p.policy.staging_distribution_id == staging_id)
            .cloned()
            .ok_or_else(|| not_this_primarys_staging(&state, primary_id, staging_id))?;
        if !etag_matches(&primary_etag, primary.revision) {
            return Err(ApiError::precondition_failed(primary_id));
        }
        if !etag_matches(&staging_etag, staging.revision) {
            return Err(ApiError::precondition_failed(staging_id));
        }
        let mut raw = staging.stored.config.clone();
        let kept = &primary.stored.config;
        raw.aliases.clone_from(&kept.aliases);
        raw.continuous_deployment_policy_id
            .clone_from(&kept.continuous_deployment_policy_id);
        raw.enabled = kept.enabled;
        raw.comment.clone_from(&kept.comment);
        let config = Distribution::try_from(raw.clone())?;
        self.validate_in_context(&state, &config, primary_id, false)?;
        let stored = StoredDistribution {
            config: raw,
            last_modified: rfc3339(SystemTime::now()),
            ..primary.stored.clone()
        };
        let mut txn = Txn::default();
        put_distribution(&mut txn, &stored, primary.revision)?;
        // The staging config must be the one that was checked, and still
        // the staging of the primary's policy.
        txn.compares.push(Compare::ModRevision {
            key: dist_key(staging_id),
            revision: staging.revision,
        });
        txn.compares.push(Compare::ModRevision {
            key: policy_key(&policy.stored.id),
            revision: policy.revision,
        });
        let record = self.commit_record(&state, txn, primary_id).await?;
        tracing::info!(
            primary = primary_id,
            staging = staging_id,
            "staging promoted"
        );
        Ok(record)
    }
}

/// Promote's refusal of a staging distribution that is not the staging of
/// the primary's policy, saying which one is.
fn not_this_primarys_staging(state: &ControlState, primary_id: &str, staging_id: &str) -> ApiError {
    let primary = state.distributions.get(primary_id);
    let policy_id = primary.and_then(|p| p.config.continuous_deployment_policy_id.clone());
    let expected = policy_id
        .as_deref()
        .and_then(|id| state.policies.get(id))
        .map(|p| p.policy.staging_distribution_id.clone());
    let owner = state
        .policy_of_staging(staging_id)
        .and_then(|p| state.primary_of(&p.stored.id))
        .map(|d| d.stored.id.clone());
    let why = match (&owner, &expected) {
        (Some(owner), _) if owner != primary_id => {
            format!("{staging_id} is the staging distribution of {owner}, not of {primary_id}")
        }
        (_, Some(expected)) => format!(
            "{primary_id}'s continuous-deployment policy {} stages {expected}, not {staging_id}",
            policy_id.as_deref().unwrap_or("-")
        ),
        (_, None) => format!(
            "{primary_id} has no continuous-deployment policy staging {staging_id}; attach one first (edge cd policy create --staging {staging_id} --attach {primary_id})"
        ),
    };
    ApiError::new(
        ErrorCode::IllegalUpdate,
        format!("promote takes the staging distribution of the primary's own policy: {why}"),
    )
}

/// A host name, lower-cased.
fn lower_case_name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(<String as Deserialize>::deserialize(d)?.to_ascii_lowercase())
}
