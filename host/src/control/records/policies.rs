//! Continuous-deployment policies as stored: `policies/<id>` holds a
//! [`StoredPolicy`], the operator's config with what the automatic gate did.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Change, DecodeError, Write, json};
use crate::config::policy::{Policy, PolicyConfig};
use crate::control::etag::etag_of;
use crate::store::Revision;

pub const POLICY_PREFIX: &str = "policies/";

/// The store key of policy `id`.
pub fn policy_key(id: &str) -> String {
    format!("{POLICY_PREFIX}{id}")
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

/// Applies a write of `policies/<id>`.
pub fn apply(
    policies: &mut BTreeMap<String, Arc<PolicyRecord>>,
    write: Write<'_>,
) -> Result<(), DecodeError> {
    match write.change {
        Change::Delete => {
            policies.remove(write.key);
        }
        Change::Put(value) => {
            let stored: StoredPolicy = json(value)?;
            let policy = Policy::try_from(&stored.config).map_err(|e| e.to_string())?;
            policies.insert(
                stored.id.clone(),
                Arc::new(PolicyRecord {
                    stored,
                    revision: write.revision,
                    policy,
                }),
            );
        }
    }
    Ok(())
}
