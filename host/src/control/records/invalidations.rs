//! Invalidations as stored: `invalidations/<distribution id>/<id>` holds a
//! [`StoredInvalidation`]; a distribution's history is its keys in the order
//! they were written.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Change, DecodeError, Write, json};
use crate::store::Revision;

pub const INVALIDATION_PREFIX: &str = "invalidations/";

/// The store key of invalidation `id` of distribution `dist`.
pub fn invalidation_key(dist: &str, id: &str) -> String {
    format!("{INVALIDATION_PREFIX}{dist}/{id}")
}

/// One invalidation, as persisted under `invalidations/<distribution>/<id>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredInvalidation {
    pub id: String,
    #[serde(default)]
    pub paths: Vec<String>,
    /// Tags (`Surrogate-Key`, `Cache-Tag`) whose objects it purges.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Marks what matches stale instead of dropping it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub soft: bool,
    /// RFC 3339.
    pub create_time: String,
    /// How many cached objects it dropped on the host that made it.
    pub dropped: usize,
}

impl StoredInvalidation {
    /// What it purges of its distribution's cached objects.
    pub fn purge(&self) -> crate::cache::Purge<'_> {
        crate::cache::Purge {
            paths: &self.paths,
            tags: &self.tags,
            soft: self.soft,
        }
    }
}

/// An invalidation with the revision that recorded it (for ordering).
#[derive(Debug)]
pub struct InvalidationRecord {
    pub stored: StoredInvalidation,
    pub revision: Revision,
}

/// Each distribution's invalidations, oldest first.
pub type Invalidations = HashMap<String, Vec<Arc<InvalidationRecord>>>;

/// Applies a write of `invalidations/<distribution>/<id>`.
pub fn apply(invalidations: &mut Invalidations, write: Write<'_>) -> Result<(), DecodeError> {
    let Some((dist, id)) = write.key.split_once('/') else {
        return Err("the key names no distribution".to_owned());
    };
    match write.change {
        Change::Delete => {
            if let Some(list) = invalidations.get_mut(dist) {
                list.retain(|r| r.stored.id != id);
                if list.is_empty() {
                    invalidations.remove(dist);
                }
            }
        }
        Change::Put(value) => {
            let stored: StoredInvalidation = json(value)?;
            let list = invalidations.entry(dist.to_owned()).or_default();
            list.retain(|r| r.stored.id != stored.id);
            let at = list.partition_point(|r| r.revision <= write.revision);
            list.insert(
                at,
                Arc::new(InvalidationRecord {
                    stored,
                    revision: write.revision,
                }),
            );
        }
    }
    Ok(())
}
