//! The pools of a distribution's dynamic origins: one per origin, made on
//! first use, at most `max_pools` of them, the least recently used dropped
//! first (its idle connections close with it).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::{Guard, OriginFetcher, PoolClient};
use crate::config::Origin;
use crate::config::dynamic::DynamicOrigins;

/// One dynamic origin's pool.
struct Entry {
    origin: Arc<Origin>,
    pool: PoolClient,
    /// When it was last used, in `DynamicPools::tick`s.
    used: u64,
}

/// A distribution's dynamic origins and their pools.
pub struct DynamicPools {
    fetcher: Arc<OriginFetcher>,
    allowed: Arc<DynamicOrigins>,
    pools: Mutex<HashMap<String, Entry>>,
    tick: AtomicU64,
}

impl std::fmt::Debug for DynamicPools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamicPools")
            .field("pools", &self.len())
            .finish_non_exhaustive()
    }
}

impl DynamicPools {
    pub fn new(fetcher: Arc<OriginFetcher>, allowed: Arc<DynamicOrigins>) -> Self {
        Self {
            fetcher,
            allowed,
            pools: Mutex::new(HashMap::new()),
            tick: AtomicU64::new(0),
        }
    }

    /// The origin a dynamic target id names (checked against the
    /// allow-list again) and its pool; why not, when the id is not allowed.
    pub fn get(&self, target_id: &str) -> Result<(Arc<Origin>, PoolClient), String> {
        let now = self.tick.fetch_add(1, Ordering::Relaxed);
        let mut pools = self
            .pools
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(entry) = pools.get_mut(target_id) {
            entry.used = now;
            return Ok((entry.origin.clone(), entry.pool.clone()));
        }
        let origin = Arc::new(self.allowed.origin(target_id)?);
        let guard = Guard::Dynamic {
            allow_private: self.allowed.allow_private_addresses,
        };
        let pool = self.fetcher.dynamic_pool(&origin, guard);
        if pools.len() >= self.allowed.max_pools
            && let Some(oldest) = pools
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(id, _)| id.clone())
        {
            pools.remove(&oldest);
        }
        pools.insert(
            target_id.to_owned(),
            Entry {
                origin: origin.clone(),
                pool: pool.clone(),
                used: now,
            },
        );
        Ok((origin, pool))
    }

    /// How many pools it keeps.
    pub fn len(&self) -> usize {
        self.pools
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// Whether it keeps none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether it keeps a pool for `target_id`.
    pub fn holds(&self, target_id: &str) -> bool {
        self.pools
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains_key(target_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::dynamic::DynamicTarget;
    use crate::config::raw;

    #[test]
    fn at_most_max_pools_are_kept_and_the_least_recently_used_goes() {
        let raw: raw::DynamicOriginsConfig = serde_json::from_value(serde_json::json!({
            "allow": ["*.t.example"], "max_pools": 2
        }))
        .expect("config");
        let allowed = Arc::new(DynamicOrigins::new(&raw).expect("valid"));
        let id = |tenant: &str| {
            allowed
                .target_id(&DynamicTarget {
                    domain_name: &format!("{tenant}.t.example"),
                    port: None,
                    protocol: raw::Protocol::Https,
                    origin_path: None,
                })
                .expect("allowed")
        };
        let pools = DynamicPools::new(Arc::new(OriginFetcher::new()), allowed.clone());
        let (a, b, c) = (id("a"), id("b"), id("c"));
        pools.get(&a).expect("a");
        pools.get(&b).expect("b");
        pools.get(&a).expect("a again");
        pools.get(&c).expect("c");
        assert_eq!(pools.len(), 2);
        assert!(pools.holds(&a) && pools.holds(&c) && !pools.holds(&b));
        assert!(pools.get("dynamic:https://elsewhere.example:443").is_err());
        assert_eq!(pools.len(), 2);
    }
}
