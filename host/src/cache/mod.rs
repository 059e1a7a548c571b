//! The shared object cache: one per process, bounded by bytes, with per-object
//! freshness. Stale objects stay (within a retention) so they can be
//! revalidated or served stale as their `stale-*` directives allow.

pub mod flight;
pub mod freshness;
pub mod key;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{AGE, DATE, ETAG, HeaderName, LAST_MODIFIED, VARY};
use http::{HeaderMap, HeaderValue, StatusCode};
use moka::Expiry;
use moka::sync::Cache;

use flight::Flights;
use freshness::Freshness;

/// How long past its freshness (and `stale-*` windows) an object is kept,
/// space allowing, when it has a validator (to be revalidated) or its
/// behavior serves stale while the origin cannot be reached; the most stale
/// such an object is ever served.
pub const STALE_RETENTION: Duration = Duration::from_secs(86_400);

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
    pub fn header_value(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Self::Hit => "Hit from edge",
            Self::Miss => "Miss from edge",
            Self::RefreshHit => "RefreshHit from edge",
            Self::Error => "Error from edge",
        })
    }
}

/// Fields a `304` does not replace: they describe the stored body (its length,
/// coding, digest, range and entity tag), which the 304 did not send.
const KEPT_ON_304: [&str; 5] = [
    "content-length",
    "content-encoding",
    "content-md5",
    "content-range",
    "etag",
];

/// What an object is stored for, so invalidations can find it.
#[derive(Debug, Clone)]
pub struct Tags {
    /// The distribution whose config served it.
    pub distribution_id: Arc<str>,
    /// The distribution the viewer asked for: the primary when a staging
    /// distribution served the object, else `distribution_id` again.
    pub primary_id: Arc<str>,
    pub path: Box<str>,
    /// The key of the resource (its variants, if it varies, hang off it).
    pub base: Arc<str>,
}

/// A stored response. Headers are stored already stripped of hop-by-hop fields.
#[derive(Debug)]
pub struct CachedObject {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// When the host stored (or last revalidated) it.
    pub stored_at: Instant,
    pub freshness: Freshness,
    pub tags: Tags,
}

impl CachedObject {
    pub fn new(
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
        stored_at: Instant,
        freshness: Freshness,
        tags: Tags,
    ) -> Self {
        Self {
            status,
            headers,
            body,
            stored_at,
            freshness,
            tags,
        }
    }

    /// The current age (RFC 9111 4.2.3), what the `age` header says.
    pub fn age(&self, now: Instant) -> Duration {
        self.freshness
            .initial_age
            .saturating_add(now.saturating_duration_since(self.stored_at))
    }

    /// Whether the object is still fresh at `now`.
    pub fn is_fresh(&self, now: Instant) -> bool {
        self.age(now) < self.freshness.ttl
    }

    /// Whether a stale object is within `window` past its freshness, so it may
    /// still be served (never for `must-revalidate` and the like).
    pub fn stale_within(&self, now: Instant, window: Duration) -> bool {
        !self.freshness.must_revalidate && self.age(now) < self.freshness.ttl.saturating_add(window)
    }

    /// Whether a stale object may be served while its origin cannot be
    /// reached (a behavior's `serve_stale_on_error`, RFC 9111 4.2.4): up to
    /// [`STALE_RETENTION`] past its freshness, or its `stale-if-error` window
    /// when longer; never for `must-revalidate` and the like.
    pub fn servable_while_unreachable(&self, now: Instant) -> bool {
        self.stale_within(now, self.freshness.stale_if_error.max(STALE_RETENTION))
    }

    /// The validators to revalidate it with: its `ETag` and `Last-Modified`.
    pub fn validators(&self) -> (Option<&HeaderValue>, Option<&HeaderValue>) {
        (self.headers.get(ETAG), self.headers.get(LAST_MODIFIED))
    }

    /// The object as a `304 Not Modified` refreshed it (RFC 9111 3.2): the
    /// 304's fields replace the stored ones, except those that describe the
    /// stored body ([`KEPT_ON_304`]); the body stays, and freshness starts
    /// over from `freshness`. The stored
    /// `Age` and `Date` described the old response: the 304's own (or none,
    /// and the time it arrived) describe this one.
    pub fn refreshed(&self, not_modified: &HeaderMap, freshness: Freshness, now: Instant) -> Self {
        let mut headers = self.headers.clone();
        headers.remove(AGE);
        if !not_modified.contains_key(DATE) {
            headers.insert(
                DATE,
                HeaderValue::from_str(&httpdate::fmt_http_date(std::time::SystemTime::now()))
                    .unwrap_or_else(|_| HeaderValue::from_static("")),
            );
        }
        for name in not_modified.keys() {
            if KEPT_ON_304.contains(&name.as_str()) {
                continue;
            }
            headers.remove(name);
            for value in not_modified.get_all(name) {
                headers.append(name.clone(), value.clone());
            }
        }
        Self {
            status: self.status,
            headers,
            body: self.body.clone(),
            stored_at: now,
            freshness,
            tags: self.tags.clone(),
        }
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

/// Keeps an object while it is fresh, usable stale, or worth revalidating
/// or serving while the origin cannot be reached.
struct KeepFor;

impl Expiry<Arc<str>, Arc<CachedObject>> for KeepFor {
    fn expire_after_create(
        &self,
        _key: &Arc<str>,
        value: &Arc<CachedObject>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.retention())
    }
}

impl CachedObject {
    /// How long from its storing the cache keeps the object: while fresh,
    /// usable stale, or (with a validator, or kept for outages) worth
    /// revalidating or serving while the origin cannot be reached.
    pub fn retention(&self) -> Duration {
        let f = &self.freshness;
        let mut keep = f.stale_while_revalidate.max(f.stale_if_error);
        if f.keep_stale || freshness::has_validator(&self.headers) {
            keep = keep.max(STALE_RETENTION);
        }
        f.ttl.saturating_add(keep).saturating_sub(f.initial_age)
    }
}

/// Buckets of distribution invalidation counters.
const BUCKETS: usize = 1024;
/// Resources whose `Vary` the cache remembers.
const VARY_SPECS: u64 = 1 << 20;
/// Removals remembered, and for how long: longer than any origin fetch.
const REMOVALS: u64 = 1 << 16;
const REMOVAL_MEMORY: Duration = Duration::from_secs(600);

/// The bucket of a distribution id (FNV-1a).
fn bucket(name: &str) -> usize {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash % BUCKETS as u64) as usize
}

/// The invalidation counters a fetch began under; see [`SharedCache::stamp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp([u64; 3]);

/// The process-wide cache, shared by every distribution and worker.
#[derive(Clone)]
pub struct SharedCache {
    inner: Cache<Arc<str>, Arc<CachedObject>>,
    max_object_bytes: u64,
    /// Invalidation counters in buckets, bumped by every invalidation of a
    /// distribution that hashes to the bucket, so a fetch that began before
    /// one does not store what it fetched.
    generations: Arc<[AtomicU64; BUCKETS]>,
    /// When each recently removed resource was removed (a count), for the same
    /// purpose, exactly: a fetch older than the removal stores nothing.
    removed: Cache<Arc<str>, u64>,
    removals: Arc<AtomicU64>,
    /// Origin fetches in flight, for request collapsing.
    pub flights: Arc<Flights>,
    /// What each resource that varies varies on, by its base key.
    vary: Cache<Arc<str>, Arc<VarySpec>>,
    vary_epochs: Arc<AtomicU64>,
}

/// The request fields a resource's `Vary` names, and the epoch its variants
/// are stored under (a new spec, or an invalidation, starts a new epoch, so
/// variants of the old one are never found again).
#[derive(Debug, PartialEq, Eq)]
struct VarySpec {
    names: Vec<HeaderName>,
    epoch: u64,
}

/// The field names of a response's `Vary` (lower-case, in order, once each);
/// `None` for `Vary: *`, which matches no later request.
pub fn vary_names(headers: &HeaderMap) -> Option<Vec<HeaderName>> {
    let mut names: Vec<HeaderName> = Vec::new();
    for value in headers.get_all(VARY) {
        for name in value.to_str().unwrap_or("*").split(',') {
            let name = name.trim();
            if name == "*" {
                return None;
            }
            if let Ok(name) = HeaderName::from_bytes(name.as_bytes())
                && !names.contains(&name)
            {
                names.push(name);
            }
        }
    }
    Some(names)
}

/// The key of one variant: the base key, the epoch, and each named request
/// field's values (absent and empty told apart).
fn variant_of(base: &str, spec: &VarySpec, request: &HeaderMap) -> Arc<str> {
    let mut key = String::with_capacity(base.len() + 32 * spec.names.len());
    key.push_str(base);
    key.push_str(&format!("\nvary#{}", spec.epoch));
    for name in &spec.names {
        key.push('\n');
        key.push_str(name.as_str());
        let mut values = request.get_all(name).iter().peekable();
        if values.peek().is_none() {
            key.push('!');
            continue;
        }
        key.push('=');
        for (i, v) in values.enumerate() {
            if i > 0 {
                key.push_str(", ");
            }
            key.push_str(
                &String::from_utf8_lossy(v.as_bytes())
                    .escape_default()
                    .to_string(),
            );
        }
    }
    key.into()
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
            .expire_after(KeepFor)
            .build();
        Self {
            inner,
            max_object_bytes,
            generations: Arc::new(std::array::from_fn(|_| AtomicU64::new(0))),
            removed: Cache::builder()
                .max_capacity(REMOVALS)
                .time_to_live(REMOVAL_MEMORY)
                .build(),
            removals: Arc::new(AtomicU64::new(0)),
            flights: Arc::new(Flights::default()),
            vary: Cache::builder()
                .max_capacity(VARY_SPECS)
                .time_to_idle(STALE_RETENTION)
                .build(),
            vary_epochs: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The key to look `base` up under for a request with `request` fields:
    /// the variant's key when the resource varies, else `base` itself.
    pub fn lookup_key(&self, base: &Arc<str>, request: &HeaderMap) -> Arc<str> {
        match self.vary.get(base) {
            Some(spec) => variant_of(base, &spec, request),
            None => base.clone(),
        }
    }

    /// The key to store a response with `response` fields under, for a request
    /// with `request` fields: a variant's when the response varies (recording
    /// what it varies on), else `base` (forgetting any earlier variants).
    pub fn store_key(
        &self,
        base: &Arc<str>,
        request: &HeaderMap,
        response: &HeaderMap,
    ) -> Arc<str> {
        let names = vary_names(response).unwrap_or_default();
        if names.is_empty() {
            self.vary.invalidate(base);
            return base.clone();
        }
        let current = self.vary.get(base);
        let spec = match current {
            Some(spec) if spec.names == names => spec,
            _ => {
                let spec = Arc::new(VarySpec {
                    names,
                    epoch: self.vary_epochs.fetch_add(1, Ordering::Relaxed) + 1,
                });
                self.vary.insert(base.clone(), spec.clone());
                spec
            }
        };
        variant_of(base, &spec, request)
    }

    /// What invalidations of the resource or of the distributions in `tags`
    /// have done so far; take it before fetching what will be stored.
    pub fn stamp(&self, tags: &Tags) -> Stamp {
        let generation = |name: &str| self.generations[bucket(name)].load(Ordering::Acquire);
        Stamp([
            self.removed.get(&tags.base).unwrap_or(0),
            generation(&tags.distribution_id),
            generation(&tags.primary_id),
        ])
    }

    fn bump(&self, name: &str) {
        self.generations[bucket(name)].fetch_add(1, Ordering::AcqRel);
    }

    /// Bodies above this size stream through and are not stored.
    pub fn max_object_bytes(&self) -> u64 {
        self.max_object_bytes
    }

    /// The object stored for `key`, fresh or stale.
    pub fn lookup(&self, key: &str) -> Option<Arc<CachedObject>> {
        self.inner.get(key)
    }

    /// A fresh object for `key`, if any.
    pub fn get(&self, key: &str) -> Option<Arc<CachedObject>> {
        self.lookup(key).filter(|obj| obj.is_fresh(Instant::now()))
    }

    /// Stores an object (replacing any previous one for the key), unless an
    /// invalidation that could touch it came after `since` (a [`Self::stamp`]
    /// taken before the object was fetched): it may be what the invalidation
    /// meant to drop.
    pub fn insert(&self, key: Arc<str>, obj: CachedObject, since: Stamp) {
        self.insert_arc(key, Arc::new(obj), since);
    }

    /// [`Self::insert`] for an object already shared.
    pub fn insert_arc(&self, key: Arc<str>, obj: Arc<CachedObject>, since: Stamp) {
        if obj.body.len() as u64 > self.max_object_bytes || self.stamp(&obj.tags) != since {
            return;
        }
        self.inner.insert(key, obj);
    }

    /// Drops every object of `distribution_id` (served by its config, or to
    /// its viewers through a staging distribution) whose path matches `path`
    /// (exact, or a prefix when `path` ends with `*`). Returns how many matched.
    pub fn invalidate(&self, distribution_id: &str, path: &str) -> usize {
        self.bump(distribution_id);
        // Stored paths are normalized; so is what names them.
        let path = crate::path::normalize_invalidation(path);
        let prefix = path.strip_suffix('*');
        let mut dropped = 0;
        for (key, obj) in &self.inner {
            let tags = &obj.tags;
            let matches = (&*tags.distribution_id == distribution_id
                || &*tags.primary_id == distribution_id)
                && match prefix {
                    Some(p) => tags.path.starts_with(p),
                    None => *tags.path == *path,
                };
            if matches {
                self.inner.invalidate(&*key);
                dropped += 1;
            }
        }
        dropped
    }

    /// Drops what is stored for the resource with base key `base`, its
    /// variants included.
    pub fn remove(&self, base: &Arc<str>) {
        let when = self.removals.fetch_add(1, Ordering::AcqRel) + 1;
        self.removed.insert(base.clone(), when);
        self.vary.invalidate(base);
        self.inner.invalidate(base);
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
    use http::header::CONTENT_LENGTH;

    use super::*;

    /// Objects stored by the tests below were not fetched across an invalidation.
    const STAMP: Stamp = Stamp([0; 3]);

    fn freshness(ttl: u64) -> Freshness {
        Freshness {
            ttl: Duration::from_secs(ttl),
            initial_age: Duration::ZERO,
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::ZERO,
            must_revalidate: false,
            keep_stale: false,
        }
    }

    fn object(dist: &str, path: &str, body: usize, ttl: u64) -> CachedObject {
        CachedObject::new(
            StatusCode::OK,
            HeaderMap::new(),
            Bytes::from(vec![b'x'; body]),
            Instant::now(),
            freshness(ttl),
            Tags {
                distribution_id: dist.into(),
                primary_id: dist.into(),
                path: path.into(),
                base: format!("{dist}{path}").into(),
            },
        )
    }

    #[test]
    fn capacity_is_in_bytes_not_entries() {
        let cache = SharedCache::new(64 * 1024, 1024 * 1024);
        for i in 0..100 {
            cache.insert(format!("k{i}").into(), object("E1", "/a", 4096, 60), STAMP);
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
        cache.insert("big".into(), object("E1", "/big", 1001, 60), STAMP);
        cache.insert("small".into(), object("E1", "/small", 1000, 60), STAMP);
        assert!(cache.get("big").is_none());
        assert!(cache.get("small").is_some());
    }

    #[test]
    fn stale_objects_are_not_returned() {
        let cache = SharedCache::new(1 << 20, 1 << 20);
        let mut old = object("E1", "/a", 10, 60);
        old.freshness.initial_age = Duration::from_secs(61);
        cache.insert("old".into(), old, STAMP);
        assert!(cache.get("old").is_none());
    }

    #[test]
    fn invalidation_by_exact_path_and_prefix() {
        let cache = SharedCache::new(1 << 20, 1 << 20);
        cache.insert("1".into(), object("E1", "/img/a.png", 1, 60), STAMP);
        cache.insert("2".into(), object("E1", "/img/b.png", 1, 60), STAMP);
        cache.insert("3".into(), object("E1", "/index.html", 1, 60), STAMP);
        cache.insert("4".into(), object("E2", "/img/a.png", 1, 60), STAMP);
        assert_eq!(cache.invalidate("E1", "/img/*"), 2);
        assert_eq!(cache.invalidate("E1", "//index.html"), 1);
        // Stored paths are normalized: so are the paths that invalidate them.
        for (key, path) in [("5", "/~user/a"), ("6", "/~user/b")] {
            let obj = object("E1", path, 1, 60);
            let stamp = cache.stamp(&obj.tags);
            cache.insert(key.into(), obj, stamp);
        }
        assert_eq!(cache.invalidate("E1", "/%7euser/./a"), 1);
        assert_eq!(cache.invalidate("E1", "/x/../%7Euser/*"), 1);
        assert!(cache.get("4").is_some());
        assert!(cache.get("1").is_none());
    }

    #[test]
    fn stale_objects_with_validators_are_kept_and_refreshed_by_a_304() {
        let cache = SharedCache::new(1 << 20, 1 << 20);
        let mut obj = object("E1", "/a", 10, 60);
        obj.freshness.initial_age = Duration::from_secs(61);
        obj.headers.insert(ETAG, HeaderValue::from_static("\"v1\""));
        obj.headers
            .insert(CONTENT_LENGTH, HeaderValue::from_static("10"));
        cache.insert("k".into(), obj, STAMP);
        let stale = cache.lookup("k").expect("kept for revalidation");
        assert!(!stale.is_fresh(Instant::now()));
        assert!(cache.get("k").is_none());
        let mut not_modified = HeaderMap::new();
        not_modified.insert(ETAG, HeaderValue::from_static("\"v1\""));
        not_modified.insert("x-new", HeaderValue::from_static("1"));
        not_modified.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        let fresh = stale.refreshed(&not_modified, freshness(60), Instant::now());
        assert!(fresh.is_fresh(Instant::now()));
        assert_eq!(fresh.headers["x-new"], "1");
        assert_eq!(fresh.headers[CONTENT_LENGTH], "10");
        assert_eq!(fresh.body.len(), 10);
    }

    #[test]
    fn objects_kept_for_outages_outlive_their_freshness_validator_or_not() {
        let cache = SharedCache::new(1 << 20, 1 << 20);
        let stale = |keep_stale: bool| {
            let mut obj = object("E1", "/a", 10, 60);
            obj.freshness.initial_age = Duration::from_secs(61);
            obj.freshness.keep_stale = keep_stale;
            obj
        };
        cache.insert("kept".into(), stale(true), STAMP);
        cache.insert("dropped".into(), stale(false), STAMP);
        let kept = cache.lookup("kept").expect("kept for outages");
        assert!(!kept.is_fresh(Instant::now()));
        assert!(kept.servable_while_unreachable(Instant::now()));
        assert!(
            cache.lookup("dropped").is_none(),
            "no validator, no window, not kept: gone once stale"
        );
        assert_eq!(
            stale(true).retention(),
            Duration::from_secs(60) + STALE_RETENTION - Duration::from_secs(61)
        );
    }

    #[test]
    fn served_while_unreachable_up_to_a_day_or_its_stale_if_error_window() {
        let now = Instant::now();
        let mut obj = object("E1", "/a", 1, 10);
        obj.freshness.initial_age = Duration::from_secs(10) + STALE_RETENTION;
        assert!(!obj.servable_while_unreachable(now), "a day past freshness");
        obj.freshness.initial_age -= Duration::from_secs(1);
        assert!(obj.servable_while_unreachable(now));
        obj.freshness.initial_age = Duration::from_secs(10) + 2 * STALE_RETENTION;
        obj.freshness.stale_if_error = 3 * STALE_RETENTION;
        assert!(
            obj.servable_while_unreachable(now),
            "a longer stale-if-error"
        );
        obj.freshness.must_revalidate = true;
        assert!(!obj.servable_while_unreachable(now));
    }

    #[test]
    fn stale_windows_end_and_must_revalidate_closes_them() {
        let mut obj = object("E1", "/a", 1, 10);
        obj.freshness.initial_age = Duration::from_secs(15);
        let now = Instant::now();
        assert!(obj.stale_within(now, Duration::from_secs(10)));
        assert!(!obj.stale_within(now, Duration::from_secs(5)));
        obj.freshness.must_revalidate = true;
        assert!(!obj.stale_within(now, Duration::from_secs(10)));
    }

    #[test]
    fn a_fetch_older_than_an_invalidation_is_not_stored() {
        let cache = SharedCache::new(1 << 20, 1 << 20);
        let obj = || object("E1", "/a", 1, 60);
        let before = cache.stamp(&obj().tags);
        cache.invalidate("E1", "/other");
        cache.insert("1".into(), obj(), before);
        assert!(cache.get("1").is_none());
        cache.insert("1".into(), obj(), cache.stamp(&obj().tags));
        assert!(cache.get("1").is_some());
        // An invalidation of another distribution or resource does not hold it up.
        let before = cache.stamp(&obj().tags);
        cache.invalidate("E2", "/a");
        cache.remove(&"E1/other".into());
        cache.insert("2".into(), obj(), before);
        assert!(cache.get("2").is_some());
        // A removal of the resource itself does.
        let before = cache.stamp(&obj().tags);
        cache.remove(&obj().tags.base);
        cache.insert("3".into(), obj(), before);
        assert!(cache.get("3").is_none());
    }

    #[test]
    fn variants_are_keyed_by_the_fields_vary_names() {
        let cache = SharedCache::new(1 << 20, 1 << 20);
        let base: Arc<str> = "E1/v".into();
        let req = |lang: Option<&str>| {
            let mut h = HeaderMap::new();
            if let Some(l) = lang {
                h.insert("accept-language", HeaderValue::from_str(l).unwrap());
            }
            h
        };
        let mut resp = HeaderMap::new();
        resp.insert(VARY, HeaderValue::from_static("Accept-Language"));
        assert_eq!(cache.lookup_key(&base, &req(Some("en"))), base);
        let en = cache.store_key(&base, &req(Some("en")), &resp);
        let fr = cache.store_key(&base, &req(Some("fr")), &resp);
        let none = cache.store_key(&base, &req(None), &resp);
        let empty = cache.store_key(&base, &req(Some("")), &resp);
        assert_ne!(en, fr);
        assert_ne!(none, empty);
        assert_eq!(cache.lookup_key(&base, &req(Some("en"))), en);
        // The resource stops varying: its variants are forgotten.
        assert_eq!(
            cache.store_key(&base, &req(Some("en")), &HeaderMap::new()),
            base
        );
        assert_eq!(cache.lookup_key(&base, &req(Some("en"))), base);
        // A new Vary starts a new epoch: old variant keys are not reused.
        let again = cache.store_key(&base, &req(Some("en")), &resp);
        assert_ne!(again, en);
        let mut star = HeaderMap::new();
        star.insert(VARY, HeaderValue::from_static("accept, *"));
        assert!(vary_names(&star).is_none());
    }

    #[test]
    fn invalidating_a_primary_drops_its_staging_arm_too() {
        let cache = SharedCache::new(1 << 20, 1 << 20);
        let mut staged = object("ESTAGE", "/a", 1, 60);
        staged.tags.primary_id = "EPRIMARY".into();
        cache.insert("s".into(), staged, STAMP);
        cache.insert("p".into(), object("EPRIMARY", "/a", 1, 60), STAMP);
        assert_eq!(cache.invalidate("EPRIMARY", "/a"), 2);
    }
}
