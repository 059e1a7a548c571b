//! The shared object cache: one per process, bounded by bytes, with per-object TTLs.

pub mod freshness;
pub mod key;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use moka::Expiry;
use moka::sync::Cache;

/// The `x-cache` result of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    Hit = 0,
    Miss = 1,
    RefreshHit = 2,
    Error = 3,
}

impl CacheStatus {
    pub const ALL: [Self; 4] = [Self::Hit, Self::Miss, Self::RefreshHit, Self::Error];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "Hit",
            Self::Miss => "Miss",
            Self::RefreshHit => "RefreshHit",
            Self::Error => "Error",
        }
    }

    /// The `x-cache` header value.
    pub fn header_value(self) -> http::HeaderValue {
        http::HeaderValue::from_static(match self {
            Self::Hit => "Hit from edge",
            Self::Miss => "Miss from edge",
            Self::RefreshHit => "RefreshHit from edge",
            Self::Error => "Error from edge",
        })
    }
}

/// A stored response. Headers are stored already stripped of hop-by-hop fields.
#[derive(Debug)]
pub struct CachedObject {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// When the host stored it.
    pub stored_at: Instant,
    /// The response's age when it arrived (RFC 9111 4.2.3 corrected initial age).
    pub initial_age: Duration,
    /// Freshness lifetime after the behavior's TTL clamp.
    pub ttl: Duration,
    /// The distribution whose config served it and path it was stored for,
    /// for invalidations.
    pub distribution_id: Arc<str>,
    /// The distribution the viewer asked for: the primary when a staging
    /// distribution served the object, else `distribution_id` again.
    pub primary_id: Arc<str>,
    pub path: Box<str>,
}

impl CachedObject {
    /// The current age (RFC 9111 4.2.3), what the `age` header says.
    pub fn age(&self, now: Instant) -> Duration {
        self.initial_age + now.saturating_duration_since(self.stored_at)
    }

    /// Whether the object is still fresh at `now`.
    pub fn is_fresh(&self, now: Instant) -> bool {
        self.age(now) < self.ttl
    }

    fn weight(key: &str, obj: &Self) -> u32 {
        let headers: usize = obj
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 32)
            .sum();
        let total = key.len() + obj.body.len() + headers + 160;
        u32::try_from(total).unwrap_or(u32::MAX)
    }
}

struct FreshFor;

impl Expiry<Arc<str>, Arc<CachedObject>> for FreshFor {
    fn expire_after_create(
        &self,
        _key: &Arc<str>,
        value: &Arc<CachedObject>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.ttl.saturating_sub(value.initial_age))
    }
}

/// The process-wide cache, shared by every distribution and worker.
#[derive(Clone)]
pub struct SharedCache {
    inner: Cache<Arc<str>, Arc<CachedObject>>,
    max_object_bytes: u64,
    /// Bumped by every invalidation, so a fetch that began before one does
    /// not store what it fetched.
    generation: Arc<AtomicU64>,
}

impl std::fmt::Debug for SharedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedCache")
            .field("weighted_bytes", &self.inner.weighted_size())
            .field("objects", &self.inner.entry_count())
            .finish()
    }
}

impl SharedCache {
    /// A cache holding at most `capacity_bytes` (keys, headers and bodies), and
    /// no single object whose body is over `max_object_bytes`.
    pub fn new(capacity_bytes: u64, max_object_bytes: u64) -> Self {
        let inner = Cache::builder()
            .max_capacity(capacity_bytes)
            .weigher(|k: &Arc<str>, v: &Arc<CachedObject>| CachedObject::weight(k, v))
            .expire_after(FreshFor)
            .build();
        Self {
            inner,
            max_object_bytes,
            generation: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The invalidation generation; take it before fetching what will be stored.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Bodies above this size stream through and are not stored.
    pub fn max_object_bytes(&self) -> u64 {
        self.max_object_bytes
    }

    /// A fresh object for `key`, if any.
    pub fn get(&self, key: &str) -> Option<Arc<CachedObject>> {
        let obj = self.inner.get(key)?;
        obj.is_fresh(Instant::now()).then_some(obj)
    }

    /// Stores an object (replacing any previous one for the key), unless an
    /// invalidation came after `since` (a [`Self::generation`] taken before
    /// the object was fetched): it may be what the invalidation meant to drop.
    pub fn insert(&self, key: Arc<str>, obj: CachedObject, since: u64) {
        if obj.body.len() as u64 > self.max_object_bytes || self.generation() != since {
            return;
        }
        self.inner.insert(key, Arc::new(obj));
    }

    /// Drops every object of `distribution_id` (served by its config, or to
    /// its viewers through a staging distribution) whose path matches `path`
    /// (exact, or a prefix when `path` ends with `*`). Returns how many matched.
    pub fn invalidate(&self, distribution_id: &str, path: &str) -> usize {
        self.generation.fetch_add(1, Ordering::AcqRel);
        let prefix = path.strip_suffix('*');
        let mut dropped = 0;
        for (key, obj) in &self.inner {
            let matches = (&*obj.distribution_id == distribution_id
                || &*obj.primary_id == distribution_id)
                && match prefix {
                    Some(p) => obj.path.starts_with(p),
                    None => &*obj.path == path,
                };
            if matches {
                self.inner.invalidate(&*key);
                dropped += 1;
            }
        }
        dropped
    }

    /// Bytes currently weighed (after pending maintenance).
    pub fn weighted_bytes(&self) -> u64 {
        self.inner.run_pending_tasks();
        self.inner.weighted_size()
    }

    pub fn object_count(&self) -> u64 {
        self.inner.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(dist: &str, path: &str, body: usize, ttl: u64) -> CachedObject {
        CachedObject {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::from(vec![b'x'; body]),
            stored_at: Instant::now(),
            initial_age: Duration::ZERO,
            ttl: Duration::from_secs(ttl),
            distribution_id: dist.into(),
            primary_id: dist.into(),
            path: path.into(),
        }
    }

    #[test]
    fn capacity_is_in_bytes_not_entries() {
        let cache = SharedCache::new(64 * 1024, 1024 * 1024);
        for i in 0..100 {
            cache.insert(format!("k{i}").into(), object("E1", "/a", 4096, 60), 0);
        }
        assert!(
            cache.weighted_bytes() <= 64 * 1024,
            "{}",
            cache.weighted_bytes()
        );
        assert!(cache.object_count() < 20);
    }

    #[test]
    fn objects_over_the_size_limit_are_not_stored() {
        let cache = SharedCache::new(1 << 20, 1000);
        cache.insert("big".into(), object("E1", "/big", 1001, 60), 0);
        cache.insert("small".into(), object("E1", "/small", 1000, 60), 0);
        assert!(cache.get("big").is_none());
        assert!(cache.get("small").is_some());
    }

    #[test]
    fn stale_objects_are_not_returned() {
        let cache = SharedCache::new(1 << 20, 1 << 20);
        let mut old = object("E1", "/a", 10, 60);
        old.initial_age = Duration::from_secs(61);
        cache.insert("old".into(), old, 0);
        assert!(cache.get("old").is_none());
    }

    #[test]
    fn invalidation_by_exact_path_and_prefix() {
        let cache = SharedCache::new(1 << 20, 1 << 20);
        cache.insert("1".into(), object("E1", "/img/a.png", 1, 60), 0);
        cache.insert("2".into(), object("E1", "/img/b.png", 1, 60), 0);
        cache.insert("3".into(), object("E1", "/index.html", 1, 60), 0);
        cache.insert("4".into(), object("E2", "/img/a.png", 1, 60), 0);
        assert_eq!(cache.invalidate("E1", "/img/*"), 2);
        assert_eq!(cache.invalidate("E1", "/index.html"), 1);
        assert!(cache.get("4").is_some());
        assert!(cache.get("1").is_none());
    }

    #[test]
    fn a_fetch_older_than_an_invalidation_is_not_stored() {
        let cache = SharedCache::new(1 << 20, 1 << 20);
        let before = cache.generation();
        cache.invalidate("E1", "/other");
        cache.insert("1".into(), object("E1", "/a", 1, 60), before);
        assert!(cache.get("1").is_none());
        cache.insert("1".into(), object("E1", "/a", 1, 60), cache.generation());
        assert!(cache.get("1").is_some());
    }

    #[test]
    fn invalidating_a_primary_drops_its_staging_arm_too() {
        let cache = SharedCache::new(1 << 20, 1 << 20);
        let mut staged = object("ESTAGE", "/a", 1, 60);
        staged.primary_id = "EPRIMARY".into();
        cache.insert("s".into(), staged, 0);
        cache.insert("p".into(), object("EPRIMARY", "/a", 1, 60), 0);
        assert_eq!(cache.invalidate("EPRIMARY", "/a"), 2);
    }
}
