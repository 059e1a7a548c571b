//! Distributions and aliases as stored: `distributions/<id>` holds a
//! [`StoredDistribution`], `aliases/<name>` the id of the distribution that
//! answers for the name (one key per alias, so a transaction's compare claims it).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Change, DecodeError, Write, json};
use crate::config::{Distribution, DistributionConfig};
use crate::control::etag::etag_of;
use crate::store::Revision;

pub const DIST_PREFIX: &str = "distributions/";
pub const ALIAS_PREFIX: &str = "aliases/";

/// The store key of distribution `id`.
pub fn dist_key(id: &str) -> String {
    format!("{DIST_PREFIX}{id}")
}

/// The store key of alias `alias`.
pub fn alias_key(alias: &str) -> String {
    format!("{ALIAS_PREFIX}{alias}")
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

/// Applies a write of `distributions/<id>`.
pub fn apply_distribution(
    distributions: &mut BTreeMap<String, Arc<DistributionRecord>>,
    write: Write<'_>,
) -> Result<(), DecodeError> {
    match write.change {
        Change::Delete => {
            distributions.remove(write.key);
        }
        Change::Put(value) => {
            let stored: StoredDistribution = json(value)?;
            let config =
                Distribution::try_from(stored.config.clone()).map_err(|e| e.to_string())?;
            distributions.insert(
                stored.id.clone(),
                Arc::new(DistributionRecord {
                    stored,
                    revision: write.revision,
                    config: Arc::new(config),
                }),
            );
        }
    }
    Ok(())
}

/// Applies a write of `aliases/<name>`.
pub fn apply_alias(
    aliases: &mut HashMap<String, String>,
    write: Write<'_>,
) -> Result<(), DecodeError> {
    match write.change {
        Change::Delete => {
            aliases.remove(write.key);
        }
        Change::Put(owner) => {
            aliases.insert(
                write.key.to_owned(),
                String::from_utf8_lossy(owner).into_owned(),
            );
        }
    }
    Ok(())
}
