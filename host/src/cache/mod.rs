//! The shared object cache: one per process, bounded by bytes, with per-object
//! freshness. Stale objects stay (within a retention) so they can be
//! revalidated or served stale as their `stale-*` directives allow.

pub mod disk;
pub mod flight;
pub mod freshness;
pub mod key;
pub mod tags;

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{AGE, DATE, ETAG, HeaderName, LAST_MODIFIED, VARY};
use http::{HeaderMap, HeaderValue, StatusCode};
use moka::Expiry;
use moka::notification::RemovalCause;
use moka::sync::Cache;

use flight::Flights;
use freshness::Freshness;
use tags::TagIndex;

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
    /// The tags its `Surrogate-Key` and `Cache-Tag` fields named.
    pub cache_tags: Arc<[Arc<str>]>,
}

impl Tags {
    /// Whether an invalidation of `distribution_id` reaches the object: it
    /// is the one that served it, or the one the viewer asked for.
    fn reached_by(&self, distribution_id: &str) -> bool {
        &*self.distribution_id == distribution_id || &*self.primary_id == distribution_id
    }

    /// The distributions an invalidation of which reaches the object: the
    /// one that served it and, if another, the one the viewer asked for.
    fn scopes(&self) -> ([&str; 2], usize) {
        let served = &*self.distribution_id;
        let primary = &*self.primary_id;
        ([served, primary], if served == primary { 1 } else { 2 })
    }
}

/// A stored response. Headers are stored already stripped of hop-by-hop fields.
#[derive(Debug)]
pub struct CachedObject {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The body, unless it is served from its file in the disk tier.
    pub body: Bytes,
    /// The body's place in the disk tier, for an object served from its
    /// file (`body` is then empty).
    pub file: Option<Arc<disk::FileBody>>,
    /// When the host stored (or last revalidated) it.
    pub stored_at: Instant,
    pub freshness: Freshness,
    pub tags: Tags,
    /// When a soft purge marked it stale (its freshness then ends there).
    soft_purged: OnceLock<Instant>,
    /// A purge dropped it: never served again, whatever the cache still
    /// holds until the purge's removal reaches it.
    dropped: AtomicBool,
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
            file: None,
            stored_at,
            freshness,
            tags,
            soft_purged: OnceLock::new(),
            dropped: AtomicBool::new(false),
        }
    }

    /// The body's length, in memory or in its file.
    pub fn body_len(&self) -> u64 {
        self.file
            .as_ref()
            .map_or(self.body.len() as u64, |file| file.len())
    }

    /// The current age (RFC 9111 4.2.3), what the `age` header says.
    pub fn age(&self, now: Instant) -> Duration {
        self.freshness
            .initial_age
            .saturating_add(now.saturating_duration_since(self.stored_at))
    }

    /// Whether the object is still fresh at `now` (a soft purge ends that).
    pub fn is_fresh(&self, now: Instant) -> bool {
        self.staleness(now).is_none()
    }

    /// How long past its freshness the object is at `now` (`None` while
    /// fresh): past its lifetime, or since a soft purge marked it stale,
    /// whichever is longer.
    pub fn staleness(&self, now: Instant) -> Option<Duration> {
        let age = self.age(now);
        let aged = age.checked_sub(self.freshness.ttl);
        let purged = self
            .soft_purged
            .get()
            .map(|at| now.saturating_duration_since(*at));
        match (aged, purged) {
            (Some(a), Some(p)) => Some(a.max(p)),
            (a, p) => a.or(p),
        }
    }

    /// Whether a stale object is within `window` past its freshness, so it may
    /// still be served (never for `must-revalidate` and the like).
    pub fn stale_within(&self, now: Instant, window: Duration) -> bool {
        !self.freshness.must_revalidate && self.staleness(now).is_none_or(|s| s < window)
    }

    /// Marks the object stale from `now` on (a soft purge); an object already
    /// marked keeps its first mark.
    pub fn mark_stale(&self, now: Instant) {
        let _ = self.soft_purged.set(now);
    }

    /// The object with `freshness` in place of its own.
    pub fn with_freshness(self, freshness: Freshness) -> Self {
        Self { freshness, ..self }
    }

    /// Marks the object dropped (a purge): it is never served again.
    fn mark_dropped(&self) {
        self.dropped.store(true, Ordering::Release);
    }

    /// Whether a purge dropped it.
    pub fn is_dropped(&self) -> bool {
        self.dropped.load(Ordering::Acquire)
    }

    /// Whether a soft purge has marked it.
    pub fn is_soft_purged(&self) -> bool {
        self.soft_purged.get().is_some()
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
            file: self.file.clone(),
            stored_at: now,
            freshness,
            tags: self.tags.clone(),
            soft_purged: OnceLock::new(),
            dropped: AtomicBool::new(false),
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

/// The nice value of the thread that removes a purge's objects.
const PURGE_THREAD_NICE: i32 = 15;
/// Dropped objects removed at a time, and the pause after each batch: at
/// most 2,000 a second, a few percent of one core (a removal costs moka
/// about 10 µs, part of it on the threads serving viewers).
const REAP_BATCH: usize = 10;
const REAP_PAUSE: Duration = Duration::from_millis(5);

/// How long the removal thread waits for more work before it ends.
const REAP_IDLE: Duration = Duration::from_secs(1);

/// What the removal thread has to do, whether it runs, and how it is woken.
#[derive(Default)]
struct Reaper {
    work: Mutex<ReaperWork>,
    wake: Condvar,
}

#[derive(Default)]
struct ReaperWork {
    queue: VecDeque<(Arc<CachedObject>, Arc<str>)>,
    running: bool,
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
    /// The stored objects by tag, for purges by tag.
    tag_index: Arc<TagIndex<CachedObject>>,
    /// Removes what hard purges dropped, behind them.
    reaper: Arc<Reaper>,
    /// Where objects are also kept on disk (`--cache-dir`).
    disk: Option<Arc<disk::DiskTier>>,
    /// Purges and removals so far, so an object read from disk while one
    /// runs is not put in memory.
    purges: Arc<AtomicU64>,
}

/// What one invalidation purges of a distribution: objects whose path
/// matches one of `paths` (exact, or a prefix when it ends with `*`) or that
/// carry one of `tags`; dropped, or with `soft`, marked stale.
#[derive(Debug, Clone, Copy, Default)]
pub struct Purge<'a> {
    pub paths: &'a [String],
    pub tags: &'a [String],
    pub soft: bool,
}

/// Which stored objects one purge of a distribution reaches.
struct Matcher<'a> {
    distribution_id: &'a str,
    /// Paths named exactly, normalized as stored paths are.
    exact: HashSet<String>,
    /// Prefixes (paths named with a trailing `*`).
    prefixes: Vec<String>,
    tags: &'a [String],
}

impl<'a> Matcher<'a> {
    fn new(distribution_id: &'a str, purge: &Purge<'a>) -> Self {
        let mut exact = HashSet::new();
        let mut prefixes = Vec::new();
        for path in purge.paths {
            let path = crate::path::normalize_invalidation(path).into_owned();
            match path.strip_suffix('*') {
                Some(prefix) => prefixes.push(prefix.to_owned()),
                None => {
                    exact.insert(path);
                }
            }
        }
        Self {
            distribution_id,
            exact,
            prefixes,
            tags: purge.tags,
        }
    }

    /// Whether the purge names the object's path.
    fn reaches_path(&self, tags: &Tags) -> bool {
        tags.reached_by(self.distribution_id)
            && (self.exact.contains(&*tags.path)
                || self
                    .prefixes
                    .iter()
                    .any(|p| tags.path.starts_with(p.as_str())))
    }

    /// Whether the purge names the object's path or one of its tags.
    fn reaches(&self, tags: &Tags) -> bool {
        self.reaches_path(tags)
            || (tags.reached_by(self.distribution_id)
                && tags
                    .cache_tags
                    .iter()
                    .any(|t| self.tags.iter().any(|n| **n == **t)))
    }
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
        let tag_index = Arc::new(TagIndex::default());
        let index = tag_index.clone();
        let inner = Cache::builder()
            .max_capacity(capacity_bytes)
            .weigher(|k: &Arc<str>, v: &Arc<CachedObject>| CachedObject::weight(k, v))
            .expire_after(KeepFor)
            .eviction_listener(
                move |_: Arc<Arc<str>>, obj: Arc<CachedObject>, _: RemovalCause| {
                    if !obj.tags.cache_tags.is_empty() {
                        let (scopes, n) = obj.tags.scopes();
                        index.remove(&scopes[..n], &obj.tags.cache_tags, &obj);
                    }
                },
            )
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
            tag_index,
            reaper: Arc::new(Reaper::default()),
            disk: None,
            purges: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The cache with `tier` beneath its memory, and what resources varied
    /// on when the tier was written (so their variants are found again).
    pub fn with_disk(mut self, tier: Arc<disk::DiskTier>, recovered: &disk::Recovered) -> Self {
        let mut latest = 0;
        for (base, names, epoch) in &recovered.vary {
            latest = latest.max(*epoch);
            self.vary.insert(
                base.clone(),
                Arc::new(VarySpec {
                    names: names.clone(),
                    epoch: *epoch,
                }),
            );
        }
        self.vary_epochs.fetch_max(latest, Ordering::Relaxed);
        self.disk = Some(tier);
        self
    }

    /// The disk tier, when there is one.
    pub fn disk(&self) -> Option<&disk::DiskTier> {
        self.disk.as_deref()
    }

    /// The object stored for `key` in the disk tier, read back into memory;
    /// `None` without a disk tier, or when the file is missing or damaged
    /// (or a purge ran meanwhile).
    pub async fn load(&self, key: &Arc<str>) -> Option<Arc<CachedObject>> {
        let tier = self.disk.clone()?;
        // Most misses are misses on disk too: no trip to a blocking thread.
        if !tier.holds(key) {
            return None;
        }
        let before = self.purges.load(Ordering::Acquire);
        let wanted = key.clone();
        let obj = tokio::task::spawn_blocking(move || tier.load(&wanted))
            .await
            .ok()
            .flatten()?;
        if self.purges.load(Ordering::Acquire) != before {
            return None;
        }
        let obj = Arc::new(obj);
        if obj.file.is_none() && self.fits_in_memory(key, &obj) {
            self.index(key, &obj);
            self.inner.insert(key.clone(), obj.clone());
        }
        Some(obj)
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

    /// The object stored for `key`, fresh or stale (never one a purge
    /// dropped).
    pub fn lookup(&self, key: &str) -> Option<Arc<CachedObject>> {
        self.inner.get(key).filter(|obj| !obj.is_dropped())
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
        if obj.body_len() > self.max_object_bytes || self.stamp(&obj.tags) != since {
            return;
        }
        if obj.file.is_some() {
            // A disk object a 304 refreshed: its file says the old freshness,
            // and its body is not at hand to write again. The tier lets it
            // go; the next request fetches it whole.
            if let Some(tier) = &self.disk {
                tier.forget_key(&key);
            }
            return;
        }
        if let Some(tier) = &self.disk {
            let spec = (*key != *obj.tags.base)
                .then(|| self.vary.get(&obj.tags.base))
                .flatten();
            tier.store(&key, &obj, spec.as_ref().map(|s| (&s.names[..], s.epoch)));
            if !self.fits_in_memory(&key, &obj) {
                // On disk alone: in memory it would only push the rest out.
                self.inner.invalidate(&key);
                return;
            }
        }
        // Indexed before it can be found, so a purge by tag never misses
        // it; the eviction listener takes it out again.
        self.index(&key, &obj);
        self.inner.insert(key, obj);
    }

    /// Whether `obj` weighs no more than the whole memory tier.
    fn fits_in_memory(&self, key: &str, obj: &CachedObject) -> bool {
        self.inner
            .policy()
            .max_capacity()
            .is_none_or(|max| u64::from(CachedObject::weight(key, obj)) <= max)
    }

    /// Adds `obj`, about to be stored under `key`, to the tag index.
    fn index(&self, key: &Arc<str>, obj: &Arc<CachedObject>) {
        if !obj.tags.cache_tags.is_empty() {
            let (scopes, n) = obj.tags.scopes();
            self.tag_index
                .add(&scopes[..n], &obj.tags.cache_tags, obj, key);
        }
    }

    /// Drops every object of `distribution_id` (served by its config, or to
    /// its viewers through a staging distribution) whose path matches `path`
    /// (exact, or a prefix when `path` ends with `*`). Returns how many matched.
    #[cfg(test)]
    pub fn invalidate(&self, distribution_id: &str, path: &str) -> usize {
        let paths = [path.to_owned()];
        self.purge(
            distribution_id,
            Purge {
                paths: &paths,
                ..Purge::default()
            },
        )
    }

    /// Purges what `purge` names of `distribution_id` (served by its config,
    /// or to its viewers through a staging distribution): paths by one scan
    /// of the cache, tags through the tag index. Returns how many objects
    /// matched. Fetches under way when it begins store nothing.
    ///
    /// Each match is marked, which is all a viewer can notice: a soft
    /// purge's match is stale from now on, a hard purge's is never served
    /// again. A hard purge's matches then leave the cache in the background,
    /// a batch at a time, so a purge of many objects costs the requests
    /// beside it little.
    pub fn purge(&self, distribution_id: &str, purge: Purge<'_>) -> usize {
        self.bump(distribution_id);
        self.purges.fetch_add(1, Ordering::AcqRel);
        let on_disk = self
            .disk
            .as_ref()
            .map_or(0, |tier| tier.purge(distribution_id, &purge));
        let now = Instant::now();
        let mut matched: Vec<(Arc<CachedObject>, Arc<str>)> = Vec::new();
        if !purge.paths.is_empty() {
            let matcher = Matcher::new(distribution_id, &purge);
            for (key, obj) in &self.inner {
                if matcher.reaches_path(&obj.tags) {
                    matched.push((obj, Arc::clone(&key)));
                }
            }
        }
        for tag in purge.tags {
            for (obj, key) in self.tag_index.objects(distribution_id, tag) {
                if obj.tags.reached_by(distribution_id)
                    && obj.tags.cache_tags.iter().any(|t| **t == **tag)
                {
                    matched.push((obj, key));
                }
            }
        }
        // An object two tags (or a path and a tag) name counts once.
        matched.sort_unstable_by_key(|(obj, _)| Arc::as_ptr(obj) as usize);
        matched.dedup_by(|a, b| Arc::ptr_eq(&a.0, &b.0));
        matched.retain(|(obj, _)| !obj.is_dropped());
        for (obj, _) in &matched {
            if purge.soft {
                obj.mark_stale(now);
            } else {
                obj.mark_dropped();
            }
        }
        let count = matched.len().max(on_disk);
        if !purge.soft && !matched.is_empty() {
            self.remove_in_background(matched);
        }
        count
    }

    /// Hands dropped objects to the thread that removes them from the cache,
    /// starting it if it does not run (it ends after [`REAP_IDLE`] without
    /// work, so an idle cache holds no thread).
    fn remove_in_background(&self, dropped: Vec<(Arc<CachedObject>, Arc<str>)>) {
        let reaper = &self.reaper;
        let mut work = reaper.work.lock().unwrap_or_else(PoisonError::into_inner);
        work.queue.extend(dropped);
        if work.running {
            reaper.wake.notify_one();
            return;
        }
        let cache = self.clone();
        let spawned = std::thread::Builder::new()
            .name("cache-purge".to_owned())
            .spawn(move || cache.reap());
        match spawned {
            Ok(_) => work.running = true,
            // No thread to spare: the objects stay marked, never served,
            // until the cache evicts them or the next purge's thread
            // removes them.
            Err(err) => tracing::warn!(error = %err, "purged objects are left to eviction"),
        }
    }

    /// The removal thread: takes dropped objects out of the cache at a
    /// bounded rate ([`REAP_BATCH`] every [`REAP_PAUSE`]), at a low CPU
    /// priority, so the requests beside it keep their latency however many
    /// objects purges drop. A key that holds another object by then keeps
    /// it: one stored between the check and the removal is put back (and
    /// indexed again).
    fn reap(&self) {
        crate::priority::lower_this_thread(PURGE_THREAD_NICE, "cache purge");
        let reaper = &self.reaper;
        loop {
            let batch: Vec<_> = {
                let mut work = reaper.work.lock().unwrap_or_else(PoisonError::into_inner);
                if work.queue.is_empty() {
                    work = reaper
                        .wake
                        .wait_timeout(work, REAP_IDLE)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                if work.queue.is_empty() {
                    work.running = false;
                    return;
                }
                let n = work.queue.len().min(REAP_BATCH);
                work.queue.drain(..n).collect()
            };
            for (obj, key) in batch {
                let ours = |current: &Arc<CachedObject>| Arc::ptr_eq(current, &obj);
                if !self.inner.get(&key).is_some_and(|current| ours(&current)) {
                    continue;
                }
                if let Some(current) = self.inner.remove(&key)
                    && !ours(&current)
                {
                    self.index(&key, &current);
                    self.inner.insert(key, current);
                }
            }
            std::thread::sleep(REAP_PAUSE);
        }
    }

    /// Drops what is stored for the resource with base key `base`, its
    /// variants included.
    pub fn remove(&self, base: &Arc<str>) {
        let when = self.removals.fetch_add(1, Ordering::AcqRel) + 1;
        self.removed.insert(base.clone(), when);
        self.purges.fetch_add(1, Ordering::AcqRel);
        if let Some(tier) = &self.disk {
            tier.remove_base(base);
        }
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

    /// How many (distribution, tag) names the tag index holds.
    pub fn indexed_tags(&self) -> usize {
        self.tag_index.len()
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
                cache_tags: Arc::from([]),
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

    fn tagged(dist: &str, path: &str, tags: &[&str]) -> CachedObject {
        let mut obj = object(dist, path, 1, 60);
        obj.tags.cache_tags = tags.iter().map(|t| Arc::from(*t)).collect();
        obj
    }

    #[test]
    fn a_tag_purge_marks_at_once_and_removes_behind_sparing_what_replaced_it() {
        let cache = SharedCache::new(1 << 24, 1 << 20);
        for i in 0..1000 {
            let tag = if i % 10 == 0 { "hot" } else { "cold" };
            cache.insert(
                format!("k{i}").into(),
                tagged("E1", &format!("/{i}"), &[tag, "all"]),
                STAMP,
            );
        }
        fn purge(tags: &[String], soft: bool) -> Purge<'_> {
            Purge {
                tags,
                soft,
                ..Purge::default()
            }
        }
        let hot = ["hot".to_owned()];
        // Soft: still found, but stale; a second soft purge finds them again.
        assert_eq!(cache.purge("E1", purge(&hot, true)), 100);
        let k0 = cache.lookup("k0").expect("kept");
        assert!(k0.is_soft_purged() && !k0.is_fresh(Instant::now()));
        assert!(cache.get("k1").is_some());
        // Two tags naming one object count it once.
        let both = ["hot".to_owned(), "all".to_owned()];
        assert_eq!(cache.purge("E2", purge(&both, false)), 0);
        assert_eq!(cache.purge("E1", purge(&both, false)), 1000);
        assert!(cache.lookup("k0").is_none() && cache.lookup("k1").is_none());
        // Stored again right after: the removal behind leaves the new one.
        cache.insert(
            "k0".into(),
            tagged("E1", "/0", &["hot"]),
            cache.stamp(&tagged("E1", "/0", &[]).tags),
        );
        for _ in 0..500 {
            cache.weighted_bytes();
            if cache.object_count() == 1 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(
            cache.object_count(),
            1,
            "the dropped objects left the cache"
        );
        assert!(cache.get("k0").is_some());
        // The index let the removed objects go.
        assert_eq!(cache.indexed_tags(), 1);
        assert_eq!(cache.purge("E1", purge(&hot, false)), 1);
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
