//! The disk tier: every object the memory tier stores is also written to a
//! file under `--cache-dir` (one file per object, `format.rs`), so objects
//! the memory tier lets go are still served from disk, and a restarted host
//! serves hits at once.
//!
//! - **Writes** go to one low-priority thread through a bounded queue: a
//!   file is written under `tmp/` and renamed into `objects/`, so a file in
//!   `objects/` is whole or absent. A write that finds the queue full is
//!   dropped (and counted); the memory tier still holds the object.
//! - **The index** (key → the write that holds it, its size, tags and how
//!   long it is worth keeping) lives in memory, and is rebuilt at start from
//!   the files' heads and descriptions (bodies are checked when read). It is
//!   bounded by `--cache-disk-bytes`, the oldest writes going first.
//! - **Reads** check the whole file (head, description and body CRCs, its
//!   length, its key and its write number) before the object is served; a
//!   file that fails is removed and the request is a miss, never a wrong
//!   body.
//! - **Purges** (by path, prefix or tag, hard or soft) and the removal an
//!   unsafe method makes drop the matching files from the index at once,
//!   and are appended to `purges.log` (synced) before they return, so a
//!   file a crash left behind is dropped when the tier opens again. A soft
//!   purge drops the disk copy too (the memory copy is kept, stale): what
//!   it marks is never served fresher than the purge allows.

pub mod format;

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future as _;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use sha2::{Digest as _, Sha256};

use self::format::{FormatError, Meta};
use super::{CachedObject, Purge, Tags};

/// Writes waiting for the disk thread at most.
const QUEUE: usize = 1024;
/// Bodies longer than this are served from their files a chunk at a time
/// (checked whole first, a chunk at a time too); shorter ones are read
/// into memory and kept there.
pub const STREAM_FROM: u64 = 1 << 20;
/// What one read of a streamed body takes.
const CHUNK: u64 = 256 << 10;
/// The nice value of the disk thread.
const DISK_THREAD_NICE: i32 = 10;

/// Where the file of `key` is under `objects`.
fn path_in(objects: &Path, key: &str) -> PathBuf {
    let name = file_name(key);
    objects.join(&name[..2]).join(name)
}

/// What a file of the tier names its object by.
fn file_name(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    crate::ids::hex(&digest[..16])
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// One object the tier holds.
#[derive(Debug, Clone)]
struct Entry {
    seq: u64,
    /// The file's length.
    size: u64,
    /// Past this (Unix nanoseconds) it is not worth keeping.
    expires: u64,
    tags: Tags,
}

#[derive(Debug, Default)]
struct Index {
    entries: HashMap<Arc<str>, Entry>,
    /// The keys of each resource (its variants), by base key.
    by_base: HashMap<Arc<str>, HashSet<Arc<str>>>,
    /// Writes in order, for the byte bound (stale pairs are skipped).
    order: VecDeque<(Arc<str>, u64)>,
    bytes: u64,
    next_seq: u64,
}

impl Index {
    fn insert(&mut self, key: Arc<str>, entry: Entry) -> Option<Entry> {
        self.bytes += entry.size;
        self.order.push_back((key.clone(), entry.seq));
        self.by_base
            .entry(entry.tags.base.clone())
            .or_default()
            .insert(key.clone());
        let old = self.entries.insert(key, entry);
        if let Some(old) = &old {
            self.bytes -= old.size;
        }
        old
    }

    fn remove(&mut self, key: &str) -> Option<Entry> {
        let entry = self.entries.remove(key)?;
        self.bytes -= entry.size;
        if let Some(keys) = self.by_base.get_mut(&entry.tags.base) {
            keys.remove(key);
            if keys.is_empty() {
                self.by_base.remove(&entry.tags.base);
            }
        }
        Some(entry)
    }

    /// Drops the oldest writes until the index holds at most `capacity`
    /// bytes; the keys dropped.
    fn shrink_to(&mut self, capacity: u64) -> Vec<(Arc<str>, u64)> {
        let mut dropped = Vec::new();
        while self.bytes > capacity {
            let Some((key, seq)) = self.order.pop_front() else {
                break;
            };
            if self.entries.get(&key).is_some_and(|e| e.seq == seq) {
                self.remove(&key);
                dropped.push((key, seq));
            }
        }
        // Stale pairs (replaced or removed keys) need not wait their turn.
        if self.order.len() > 2 * self.entries.len() + 64 {
            let entries = &self.entries;
            self.order
                .retain(|(key, seq)| entries.get(key).is_some_and(|e| e.seq == *seq));
        }
        dropped
    }
}

/// What the disk thread does.
enum Job {
    /// Writes the file of `key` (write `seq`), unless the index holds
    /// another write for it by then.
    Write {
        key: Arc<str>,
        seq: u64,
        head: Vec<u8>,
        body: Bytes,
    },
    /// Removes the file of `key`, unless the index holds a newer write of
    /// it by then (whose file replaces it).
    Remove { key: Arc<str> },
}

/// One purge as `purges.log` keeps it: what it matched, and the first write
/// number it did not reach.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Record {
    /// Files with a lower write number were stored before it.
    before: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    distribution: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    paths: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tags: Vec<String>,
    /// A resource an unsafe request removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    base: Option<String>,
}

/// What one record of `purges.log` reaches, made once for a whole start.
enum Reach<'a> {
    /// The variants of one resource.
    Base(&'a str),
    /// What a purge of a distribution names.
    Purge(super::Matcher<'a>),
    Nothing,
}

impl Record {
    fn reach(&self) -> Reach<'_> {
        if let Some(base) = &self.base {
            return Reach::Base(base);
        }
        match &self.distribution {
            Some(dist) => {
                let purge = Purge {
                    paths: &self.paths,
                    tags: &self.tags,
                    soft: false,
                };
                Reach::Purge(super::Matcher::new(dist, &purge))
            }
            None => Reach::Nothing,
        }
    }
}

impl Reach<'_> {
    fn reaches(&self, tags: &Tags) -> bool {
        match self {
            Self::Base(base) => *tags.base == **base,
            Self::Purge(matcher) => matcher.reaches(tags),
            Self::Nothing => false,
        }
    }
}

/// What the tier counts, for `/metrics`.
#[derive(Debug, Default)]
pub struct DiskCounters {
    /// Objects served from disk (read back into memory).
    pub hits: AtomicU64,
    /// Files that failed their checks when read or at start, removed.
    pub corrupt: AtomicU64,
    /// Writes dropped because the disk thread was behind.
    pub dropped_writes: AtomicU64,
}

/// The request fields a resource varies on, and its variants' epoch.
type VarySpec = (Vec<HeaderName>, u64);

/// What opening the tier found.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Objects indexed.
    pub objects: usize,
    /// Files removed: damaged, expired, purged before a crash, or over the
    /// byte bound.
    pub removed: usize,
    /// What each resource that varies varies on (base key, names, epoch).
    pub vary: Vec<(Arc<str>, Vec<HeaderName>, u64)>,
}

/// The disk tier of the shared cache.
pub struct DiskTier {
    objects: PathBuf,
    capacity: u64,
    index: Mutex<Index>,
    jobs: SyncSender<Job>,
    journal: Mutex<std::fs::File>,
    pub counters: DiskCounters,
}

impl std::fmt::Debug for DiskTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskTier")
            .field("objects", &self.objects)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

/// A disk tier that could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cache dir {path}: {source}")]
pub struct DiskError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

impl DiskTier {
    /// Opens the tier in `dir` (made if missing), holding at most
    /// `capacity` bytes of files: indexes what is there, drops what
    /// `purges.log` says was purged, and starts the disk thread. Blocking.
    pub fn open(dir: &Path, capacity: u64) -> Result<(Arc<Self>, Recovered), DiskError> {
        let err = |path: &Path| {
            let path = path.to_owned();
            move |source| DiskError { path, source }
        };
        let objects = dir.join("objects");
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&objects).map_err(err(&objects))?;
        // Writes a crash cut short.
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(err(&tmp))?;
        let log = dir.join("purges.log");
        let records: Vec<Record> = match std::fs::read_to_string(&log) {
            Ok(text) => text
                .lines()
                .filter_map(|line| serde_json::from_str(line).ok())
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(err(&log)(e)),
        };
        let reaches: Vec<(u64, Reach<'_>)> =
            records.iter().map(|r| (r.before, r.reach())).collect();
        let now = unix_nanos(SystemTime::now());
        let mut found: Vec<(Arc<str>, Entry, Option<VarySpec>)> = Vec::new();
        let mut recovered = Recovered::default();
        let mut next_seq = records.iter().map(|r| r.before).max().unwrap_or(0);
        let shards = std::fs::read_dir(&objects).map_err(err(&objects))?;
        for shard in shards.flatten() {
            let Ok(files) = std::fs::read_dir(shard.path()) else {
                continue;
            };
            for file in files.flatten() {
                let path = file.path();
                let kept = describe(&path).ok().and_then(|(_, head, meta)| {
                    let entry = Entry {
                        seq: head.seq,
                        size: head.file_len(),
                        expires: expires_of(&meta),
                        tags: tags_of(&meta),
                    };
                    let keep = path.file_name().and_then(|n| n.to_str())
                        == Some(&file_name(&meta.key))
                        && entry.expires > now
                        && !reaches
                            .iter()
                            .any(|(before, r)| entry.seq < *before && r.reaches(&entry.tags));
                    keep.then_some((entry, meta))
                });
                let Some((entry, meta)) = kept else {
                    let _ = std::fs::remove_file(&path);
                    recovered.removed += 1;
                    continue;
                };
                next_seq = next_seq.max(entry.seq + 1);
                let key: Arc<str> = meta.key.as_str().into();
                let vary = meta.vary.as_ref().map(|(names, epoch)| {
                    let names = names
                        .iter()
                        .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
                        .collect();
                    (names, *epoch)
                });
                found.push((key, entry, vary));
            }
        }
        found.sort_by_key(|(_, entry, _)| entry.seq);
        let mut index = Index {
            next_seq,
            ..Index::default()
        };
        let mut vary: HashMap<Arc<str>, VarySpec> = HashMap::new();
        for (key, entry, spec) in found {
            if let Some(spec) = spec {
                // The latest write's spec is the resource's.
                vary.insert(entry.tags.base.clone(), spec);
            }
            index.insert(key, entry);
        }
        for (key, _) in index.shrink_to(capacity) {
            let _ = std::fs::remove_file(path_in(&objects, &key));
            recovered.removed += 1;
        }
        recovered.objects = index.entries.len();
        recovered.vary = vary
            .into_iter()
            .filter(|(base, _)| index.by_base.contains_key(base))
            .map(|(base, (names, epoch))| (base, names, epoch))
            .collect();
        // Every record is applied: the log starts over.
        let journal = std::fs::File::create(&log).map_err(err(&log))?;
        journal.sync_all().map_err(err(&log))?;
        let (jobs, queue) = std::sync::mpsc::sync_channel(QUEUE);
        let tier = Arc::new(Self {
            objects,
            capacity,
            index: Mutex::new(index),
            jobs,
            journal: Mutex::new(journal),
            counters: DiskCounters::default(),
        });
        let worker = Arc::downgrade(&tier);
        std::thread::Builder::new()
            .name("cache-disk".to_owned())
            .spawn(move || run(&worker, &queue, &tmp))
            .map_err(err(dir))?;
        Ok((tier, recovered))
    }

    fn path_of(&self, key: &str) -> PathBuf {
        path_in(&self.objects, key)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the index holds `key` (what [`Self::load`] would read).
    pub fn holds(&self, key: &str) -> bool {
        self.lock().entries.contains_key(key)
    }

    /// Objects indexed.
    pub fn objects(&self) -> u64 {
        self.lock().entries.len() as u64
    }

    /// Bytes of files indexed.
    pub fn bytes(&self) -> u64 {
        self.lock().bytes
    }

    /// The tier's metrics for `/metrics`: name, type, help and value.
    pub fn metrics(&self) -> [(&'static str, &'static str, &'static str, u64); 5] {
        let c = &self.counters;
        [
            (
                "edge_cache_disk_objects",
                "gauge",
                "Objects held by the disk tier.",
                self.objects(),
            ),
            (
                "edge_cache_disk_bytes",
                "gauge",
                "Bytes of files held by the disk tier.",
                self.bytes(),
            ),
            (
                "edge_cache_disk_hits_total",
                "counter",
                "Objects read back from the disk tier.",
                c.hits.load(Ordering::Relaxed),
            ),
            (
                "edge_cache_disk_corrupt_total",
                "counter",
                "Files of the disk tier that failed their checks, removed (a miss each).",
                c.corrupt.load(Ordering::Relaxed),
            ),
            (
                "edge_cache_disk_dropped_writes_total",
                "counter",
                "Writes to the disk tier dropped because its thread was behind.",
                c.dropped_writes.load(Ordering::Relaxed),
            ),
        ]
    }

    /// Writes `obj` for `key` (replacing what the tier held for it), with
    /// what its resource varies on.
    pub fn store(&self, key: &Arc<str>, obj: &CachedObject, vary: Option<(&[HeaderName], u64)>) {
        let stored = SystemTime::now()
            .checked_sub(obj.stored_at.elapsed())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let meta = Meta {
            key: key.to_string(),
            status: obj.status.as_u16(),
            headers: obj
                .headers
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
                .collect(),
            stored_unix_nanos: unix_nanos(stored),
            freshness: obj.freshness,
            distribution_id: obj.tags.distribution_id.to_string(),
            primary_id: obj.tags.primary_id.to_string(),
            path: obj.tags.path.to_string(),
            base: obj.tags.base.to_string(),
            cache_tags: obj.tags.cache_tags.iter().map(|t| t.to_string()).collect(),
            vary: vary.map(|(names, epoch)| {
                (names.iter().map(|n| n.as_str().to_owned()).collect(), epoch)
            }),
        };
        let seq = {
            let mut index = self.lock();
            index.next_seq += 1;
            index.next_seq - 1
        };
        // The body's CRC is taken outside the lock.
        let head = format::encode(seq, &meta, &obj.body);
        let retention = u64::try_from(obj.retention().as_nanos()).unwrap_or(u64::MAX);
        let entry = Entry {
            seq,
            size: (head.len() + obj.body.len()) as u64,
            expires: meta.stored_unix_nanos.saturating_add(retention),
            tags: obj.tags.clone(),
        };
        let mut index = self.lock();
        if index.entries.get(key).is_some_and(|e| e.seq > seq) {
            // A newer write of the key got in first.
            return;
        }
        index.insert(key.clone(), entry);
        let job = Job::Write {
            key: key.clone(),
            seq,
            head,
            body: obj.body.clone(),
        };
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                index.remove(key);
                self.counters.dropped_writes.fetch_add(1, Ordering::Relaxed);
            }
        }
        let dropped = index.shrink_to(self.capacity);
        drop(index);
        for (key, _) in dropped {
            self.unlink(key);
        }
    }

    /// Queues the removal of `key`'s file (the index no longer holds it).
    fn unlink(&self, key: Arc<str>) {
        if self
            .jobs
            .try_send(Job::Remove { key: key.clone() })
            .is_err()
        {
            // The thread is behind: remove it here rather than leave it.
            let _ = std::fs::remove_file(self.path_of(&key));
        }
    }

    /// The object stored for `key`, read back and checked whole; `None` when
    /// there is none, or its file fails a check (then it is removed).
    /// Blocking.
    pub fn load(&self, key: &str) -> Option<CachedObject> {
        let entry = self.lock().entries.get(key).cloned()?;
        let now = SystemTime::now();
        if entry.expires <= unix_nanos(now) {
            self.forget(key, entry.seq);
            return None;
        }
        let path = self.path_of(key);
        let obj = if entry.size > STREAM_FROM {
            // Left in its file, read from the descriptor it was checked on.
            let (file, head, meta) = self.accept(key, &entry, &path, check_file(&path))?;
            let mut obj = object_of(&meta, Bytes::new(), now)?;
            obj.file = Some(Arc::new(FileBody {
                file: Arc::new(file),
                offset: head.body_offset(),
                len: head.body_len,
            }));
            obj
        } else {
            let (body, _, meta) = self.accept(key, &entry, &path, read_small(&path, entry.size))?;
            object_of(&meta, body, now)?
        };
        self.counters.hits.fetch_add(1, Ordering::Relaxed);
        Some(obj)
    }

    /// What a read of `key`'s file found, when it is the write the index
    /// holds, whole: a file not written yet (or another write of the key)
    /// is `None` alone; one that fails a check is counted and removed.
    fn accept<T>(
        &self,
        key: &str,
        entry: &Entry,
        path: &Path,
        read: Result<(T, format::Head, Meta), ReadError>,
    ) -> Option<(T, format::Head, Meta)> {
        match read {
            Ok((_, head, _)) if head.seq != entry.seq => None,
            Ok((_, _, meta)) if meta.key != key => {
                self.corrupt(key, entry.seq);
                None
            }
            Ok(whole) => Some(whole),
            // Not written yet (the disk thread is behind).
            Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "a damaged or unreadable cache file; dropped");
                self.corrupt(key, entry.seq);
                None
            }
        }
    }

    /// Forgets what the tier holds for `key`.
    pub fn forget_key(&self, key: &str) {
        let Some(seq) = self.lock().entries.get(key).map(|e| e.seq) else {
            return;
        };
        self.forget(key, seq);
    }

    /// Drops `key`'s write `seq` from the index (if it is still the one
    /// held) and its file.
    fn forget(&self, key: &str, seq: u64) {
        let mut index = self.lock();
        if index.entries.get(key).is_some_and(|e| e.seq == seq) {
            index.remove(key);
            drop(index);
            self.unlink(key.into());
        }
    }

    fn corrupt(&self, key: &str, seq: u64) {
        self.counters.corrupt.fetch_add(1, Ordering::Relaxed);
        self.forget(key, seq);
    }

    /// Drops what `purge` names of `distribution_id` (hard or soft alike:
    /// see the module's comment); how many files it matched. Logged before
    /// it returns.
    pub fn purge(&self, distribution_id: &str, purge: &Purge<'_>) -> usize {
        let matcher = super::Matcher::new(distribution_id, purge);
        let mut index = self.lock();
        let matched: Vec<Arc<str>> = index
            .entries
            .iter()
            .filter(|(_, e)| matcher.reaches(&e.tags))
            .map(|(k, _)| k.clone())
            .collect();
        let record = Record {
            before: index.next_seq,
            distribution: Some(distribution_id.to_owned()),
            paths: purge.paths.to_vec(),
            tags: purge.tags.to_vec(),
            base: None,
        };
        self.log(&record);
        for key in &matched {
            index.remove(key);
        }
        drop(index);
        let count = matched.len();
        for key in matched {
            self.unlink(key);
        }
        count
    }

    /// Drops every variant of the resource `base` (an unsafe request
    /// succeeded on it).
    pub fn remove_base(&self, base: &str) {
        let mut index = self.lock();
        let Some(keys) = index.by_base.get(base).cloned() else {
            return;
        };
        let record = Record {
            before: index.next_seq,
            distribution: None,
            paths: Vec::new(),
            tags: Vec::new(),
            base: Some(base.to_owned()),
        };
        self.log(&record);
        for key in &keys {
            index.remove(key);
        }
        drop(index);
        for key in keys {
            self.unlink(key);
        }
    }

    /// Appends `record` to `purges.log` and syncs it.
    fn log(&self, record: &Record) {
        let Ok(mut line) = serde_json::to_vec(record) else {
            return;
        };
        line.push(b'\n');
        let mut journal = self.journal.lock().unwrap_or_else(PoisonError::into_inner);
        let written = journal.write_all(&line).and_then(|()| journal.sync_data());
        if let Err(e) = written {
            tracing::warn!(error = %e, "the cache's purge log could not be written: a crash now may bring purged objects back");
        }
    }
}

/// The object a file describes, with `body`, as of `now`.
fn object_of(meta: &Meta, body: Bytes, now: SystemTime) -> Option<CachedObject> {
    let mut headers = HeaderMap::with_capacity(meta.headers.len());
    for (name, value) in &meta.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            headers.append(name, value);
        }
    }
    let stored = SystemTime::UNIX_EPOCH + Duration::from_nanos(meta.stored_unix_nanos);
    let age = now.duration_since(stored).unwrap_or(Duration::ZERO);
    let stored_at = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
    let status = StatusCode::from_u16(meta.status).ok()?;
    Some(CachedObject::new(
        status,
        headers,
        body,
        stored_at,
        meta.freshness,
        tags_of(meta),
    ))
}

/// A file read through: its head and description decoded, its length and
/// its body's CRC checked (a chunk at a time); the open file, for the body
/// to be read from.
fn check_file(path: &Path) -> Result<(std::fs::File, format::Head, Meta), ReadError> {
    use std::os::unix::fs::FileExt as _;
    let (file, head, meta) = describe(path)?;
    let mut crc = crc32fast::Hasher::new();
    let mut buf = vec![0u8; usize::try_from(CHUNK).unwrap_or(1 << 18)];
    let mut at = head.body_offset();
    let end = head.file_len();
    while at < end {
        let n = usize::try_from((end - at).min(CHUNK)).unwrap_or(buf.len());
        file.read_exact_at(&mut buf[..n], at)?;
        crc.update(&buf[..n]);
        at += n as u64;
    }
    if crc.finalize() != head.body_crc {
        return Err(FormatError::BodyCrc.into());
    }
    Ok((file, head, meta))
}

/// Where a disk-tier object's body is: its open file (checked when opened),
/// the body's offset in it and its length.
#[derive(Debug)]
pub struct FileBody {
    file: Arc<std::fs::File>,
    offset: u64,
    len: u64,
}

impl FileBody {
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `len` bytes of the body from `start`, to read a chunk at a time.
    pub fn chunks(&self, start: u64, len: u64) -> FileChunks {
        FileChunks {
            file: self.file.clone(),
            at: self.offset + start,
            remaining: len.min(self.len.saturating_sub(start)),
            reading: None,
        }
    }
}

/// Part of a body read from its file a chunk at a time, each read on a
/// blocking thread.
#[derive(Debug)]
pub struct FileChunks {
    file: Arc<std::fs::File>,
    at: u64,
    remaining: u64,
    reading: Option<tokio::task::JoinHandle<std::io::Result<Bytes>>>,
}

impl FileChunks {
    /// Bytes still to read.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// The next chunk; `None` at the end.
    pub fn poll_chunk(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<std::io::Result<Bytes>>> {
        use std::os::unix::fs::FileExt as _;
        if self.remaining == 0 && self.reading.is_none() {
            return std::task::Poll::Ready(None);
        }
        let reading = self.reading.get_or_insert_with(|| {
            let (file, at) = (self.file.clone(), self.at);
            let n = usize::try_from(self.remaining.min(CHUNK)).unwrap_or(1 << 18);
            tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; n];
                file.read_exact_at(&mut buf, at)?;
                Ok(Bytes::from(buf))
            })
        });
        let read = std::task::ready!(std::pin::Pin::new(reading).poll(cx));
        self.reading = None;
        let chunk = match read {
            Ok(Ok(chunk)) => chunk,
            Ok(Err(e)) => return std::task::Poll::Ready(Some(Err(e))),
            Err(e) => return std::task::Poll::Ready(Some(Err(std::io::Error::other(e)))),
        };
        self.at += chunk.len() as u64;
        self.remaining -= chunk.len() as u64;
        std::task::Poll::Ready(Some(Ok(chunk)))
    }
}

/// When an object stops being worth keeping (Unix nanoseconds).
fn expires_of(meta: &Meta) -> u64 {
    let obj = CachedObject::new(
        StatusCode::OK,
        meta.headers
            .iter()
            .filter_map(|(n, v)| {
                Some((
                    HeaderName::from_bytes(n.as_bytes()).ok()?,
                    HeaderValue::from_bytes(v).ok()?,
                ))
            })
            .collect(),
        Bytes::new(),
        Instant::now(),
        meta.freshness,
        tags_of(meta),
    );
    let keep = u64::try_from(obj.retention().as_nanos()).unwrap_or(u64::MAX);
    meta.stored_unix_nanos.saturating_add(keep)
}

fn tags_of(meta: &Meta) -> Tags {
    Tags {
        distribution_id: meta.distribution_id.as_str().into(),
        primary_id: meta.primary_id.as_str().into(),
        path: meta.path.as_str().into(),
        base: meta.base.as_str().into(),
        cache_tags: meta
            .cache_tags
            .iter()
            .map(|t| Arc::from(t.as_str()))
            .collect(),
    }
}

/// Opens a file and reads its head and description (not its body),
/// checking its length against the head.
fn describe(path: &Path) -> Result<(std::fs::File, format::Head, Meta), ReadError> {
    use std::os::unix::fs::FileExt as _;
    let file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let mut fixed = [0u8; format::HEAD];
    file.read_exact_at(&mut fixed, 0)?;
    let head = format::decode_head(&fixed)?;
    if len != head.file_len() {
        return Err(FormatError::Truncated.into());
    }
    let mut meta = vec![0u8; head.meta_len as usize];
    file.read_exact_at(&mut meta, format::HEAD as u64)?;
    let meta = format::decode_meta(&head, &meta)?;
    Ok((file, head, meta))
}

/// A small file read whole, every check passed: its body, head and
/// description.
fn read_small(path: &Path, size: u64) -> Result<(Bytes, format::Head, Meta), ReadError> {
    let mut file = std::fs::File::open(path)?;
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.read_to_end(&mut bytes)?;
    let head = format::decode_head(bytes.get(..format::HEAD).ok_or(FormatError::Truncated)?)?;
    if bytes.len() as u64 != head.file_len() {
        return Err(FormatError::Truncated.into());
    }
    let body_at = usize::try_from(head.body_offset()).map_err(|_| FormatError::Truncated)?;
    let meta = format::decode_meta(&head, &bytes[format::HEAD..body_at])?;
    format::check_body(&head, &bytes[body_at..])?;
    let body = Bytes::from(bytes).slice(body_at..);
    Ok((body, head, meta))
}

#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Format(#[from] FormatError),
}

/// The disk thread: writes and removes files in the order asked, until
/// the tier is gone.
fn run(tier: &std::sync::Weak<DiskTier>, queue: &Receiver<Job>, tmp: &Path) {
    crate::priority::lower_this_thread(DISK_THREAD_NICE, "cache disk");
    while let Ok(job) = queue.recv() {
        let Some(tier) = tier.upgrade() else {
            return;
        };
        match job {
            Job::Write {
                key,
                seq,
                head,
                body,
            } => {
                let current = tier.lock().entries.get(&key).is_some_and(|e| e.seq == seq);
                if !current {
                    continue;
                }
                let path = tier.path_of(&key);
                if let Err(e) = write_file(tmp, &path, seq, &head, &body) {
                    tracing::warn!(file = %path.display(), error = %e, "a cache file could not be written");
                    tier.forget(&key, seq);
                }
            }
            Job::Remove { key } => {
                if tier.lock().entries.contains_key(&key) {
                    // A newer write of the key replaces the file.
                    continue;
                }
                let _ = std::fs::remove_file(tier.path_of(&key));
            }
        }
    }
}

/// Writes a file under `tmp` and renames it to `path`: whole or absent.
fn write_file(tmp: &Path, path: &Path, seq: u64, head: &[u8], body: &[u8]) -> std::io::Result<()> {
    let partial = tmp.join(seq.to_string());
    let mut file = std::fs::File::create(&partial)?;
    file.write_all(head)?;
    file.write_all(body)?;
    drop(file);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::rename(&partial, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::freshness::Freshness;

    fn object(path: &str, body: &str, tags: &[&str]) -> CachedObject {
        let mut headers = HeaderMap::new();
        headers.insert("cache-control", HeaderValue::from_static("max-age=60"));
        CachedObject::new(
            StatusCode::OK,
            headers,
            Bytes::from(body.to_owned()),
            Instant::now(),
            Freshness {
                ttl: Duration::from_secs(60),
                initial_age: Duration::ZERO,
                stale_while_revalidate: Duration::ZERO,
                stale_if_error: Duration::ZERO,
                must_revalidate: false,
                keep_stale: false,
            },
            Tags {
                distribution_id: "E1".into(),
                primary_id: "E1".into(),
                path: path.into(),
                base: format!("E1|{path}").into(),
                cache_tags: tags.iter().map(|t| Arc::from(*t)).collect(),
            },
        )
    }

    fn key(path: &str) -> Arc<str> {
        format!("E1|{path}").into()
    }

    /// Waits until the disk thread has written what was stored for `key`.
    fn written(tier: &DiskTier, key: &str) -> PathBuf {
        let path = tier.path_of(key);
        let seq = tier.lock().entries.get(key).expect("indexed").seq;
        for _ in 0..500 {
            if describe(&path)
                .map(|(_, head, meta)| (head, meta))
                .is_ok_and(|(head, _)| head.seq == seq)
            {
                return path;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("{key} was never written");
    }

    fn store(tier: &DiskTier, path: &str, body: &str, tags: &[&str]) -> PathBuf {
        tier.store(&key(path), &object(path, body, tags), None);
        written(tier, &key(path))
    }

    #[test]
    fn an_object_is_read_back_and_found_again_after_a_restart() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (tier, recovered) = DiskTier::open(dir.path(), 1 << 20).expect("open");
        assert_eq!(recovered.objects, 0);
        store(&tier, "/a", "alpha", &["t"]);
        let names = [HeaderName::from_static("accept-language")];
        let variant: Arc<str> = "E1|/v\nvary#7\naccept-language=en".into();
        tier.store(&variant, &object("/v", "english", &[]), Some((&names, 7)));
        written(&tier, &variant);
        let back = tier.load(&key("/a")).expect("a hit");
        assert_eq!(back.body, "alpha");
        assert_eq!(back.headers["cache-control"], "max-age=60");
        assert!(back.is_fresh(Instant::now()));
        assert_eq!(&*back.tags.cache_tags, [Arc::from("t")]);
        drop(tier);

        let (tier, recovered) = DiskTier::open(dir.path(), 1 << 20).expect("open again");
        assert_eq!(recovered.objects, 2);
        assert_eq!(recovered.vary.len(), 1);
        assert_eq!(&*recovered.vary[0].0, "E1|/v");
        assert_eq!(recovered.vary[0].2, 7);
        assert_eq!(tier.load(&key("/a")).expect("a hit").body, "alpha");
        assert_eq!(tier.load(&variant).expect("a hit").body, "english");
        assert!(tier.load(&key("/b")).is_none());
    }

    #[test]
    fn a_damaged_or_cut_file_is_a_miss_and_is_removed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (tier, _) = DiskTier::open(dir.path(), 1 << 20).expect("open");
        let flipped = store(&tier, "/flipped", "a body to damage", &[]);
        let mut bytes = std::fs::read(&flipped).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 0x20;
        std::fs::write(&flipped, &bytes).expect("damage");
        assert!(tier.load(&key("/flipped")).is_none());
        assert_eq!(tier.counters.corrupt.load(Ordering::Relaxed), 1);
        assert!(tier.load(&key("/flipped")).is_none(), "still indexed");
        for _ in 0..500 {
            if !flipped.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!flipped.exists(), "the damaged file is still there");

        // Cut short while the host was down: gone when the tier opens.
        let cut = store(&tier, "/cut", "a body to cut short", &[]);
        drop(tier);
        let bytes = std::fs::read(&cut).expect("read");
        std::fs::write(&cut, &bytes[..bytes.len() - 3]).expect("cut");
        let (tier, recovered) = DiskTier::open(dir.path(), 1 << 20).expect("open again");
        assert_eq!((recovered.objects, recovered.removed), (0, 1));
        assert!(tier.load(&key("/cut")).is_none());
        assert!(!cut.exists());
    }

    #[test]
    fn a_purge_outlives_a_crash_that_left_its_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (tier, _) = DiskTier::open(dir.path(), 1 << 20).expect("open");
        let tagged = store(&tier, "/tagged", "tagged", &["sale"]);
        let under = store(&tier, "/img/1", "image", &[]);
        store(&tier, "/kept", "kept", &["other"]);
        let copies: Vec<(PathBuf, Vec<u8>)> = [&tagged, &under]
            .iter()
            .map(|p| ((*p).clone(), std::fs::read(p).expect("read")))
            .collect();
        let tags = ["sale".to_owned()];
        let paths = ["/img/*".to_owned()];
        let purge = Purge {
            paths: &paths,
            tags: &tags,
            soft: false,
        };
        assert_eq!(tier.purge("E1", &purge), 2);
        assert!(tier.load(&key("/tagged")).is_none());
        assert!(tier.load(&key("/img/1")).is_none());
        assert_eq!(tier.load(&key("/kept")).expect("kept").body, "kept");
        // Another distribution's purge reaches nothing here.
        assert_eq!(
            tier.purge(
                "E2",
                &Purge {
                    paths: &["/kept".to_owned()],
                    tags: &[],
                    soft: false
                }
            ),
            0
        );
        for (path, _) in &copies {
            for _ in 0..500 {
                if !path.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            assert!(!path.exists(), "a purged file is still there");
        }
        drop(tier);
        // Say the crash came before the files were removed.
        for (path, bytes) in &copies {
            std::fs::create_dir_all(path.parent().expect("a shard")).expect("shard");
            std::fs::write(path, bytes).expect("put back");
        }
        let (tier, recovered) = DiskTier::open(dir.path(), 1 << 20).expect("open again");
        assert_eq!((recovered.objects, recovered.removed), (1, 2));
        assert!(tier.load(&key("/tagged")).is_none());
        assert!(tier.load(&key("/img/1")).is_none());
        // Stored again after the purge: kept.
        store(&tier, "/tagged", "tagged again", &["sale"]);
        drop(tier);
        let (tier, _) = DiskTier::open(dir.path(), 1 << 20).expect("open again");
        assert_eq!(
            tier.load(&key("/tagged")).expect("a hit").body,
            "tagged again"
        );
    }

    #[tokio::test]
    async fn a_large_body_is_served_from_its_file_checked_first() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (tier, _) = DiskTier::open(dir.path(), 64 << 20).expect("open");
        let body: String = (0..(3 << 20) / 8)
            .map(|i| format!("{:07}\n", i % 10_000_000))
            .collect();
        let path = store(&tier, "/big", &body, &[]);
        let wanted = key("/big");
        let tier2 = tier.clone();
        let obj = tokio::task::spawn_blocking(move || tier2.load(&wanted))
            .await
            .expect("join")
            .expect("a hit");
        // Nothing of the body in memory: it is read from the file as sent.
        assert!(obj.body.is_empty());
        let file = obj.file.as_ref().expect("served from its file");
        assert_eq!(obj.body_len(), body.len() as u64);
        let mut chunks = file.chunks(0, file.len());
        let mut read = Vec::new();
        while let Some(chunk) = std::future::poll_fn(|cx| chunks.poll_chunk(cx)).await {
            read.extend_from_slice(&chunk.expect("a chunk"));
        }
        assert_eq!(read, body.as_bytes());
        let mut part = file.chunks(8, 16);
        let piece = std::future::poll_fn(|cx| part.poll_chunk(cx))
            .await
            .expect("a chunk")
            .expect("read");
        assert_eq!(&piece[..], &body.as_bytes()[8..24]);

        // One byte wrong near the end: a miss before anything is sent.
        let mut bytes = std::fs::read(&path).expect("read");
        let at = bytes.len() - 100;
        bytes[at] ^= 0x04;
        std::fs::write(&path, bytes).expect("damage");
        let wanted = key("/big");
        let tier2 = tier.clone();
        let again = tokio::task::spawn_blocking(move || tier2.load(&wanted))
            .await
            .expect("join");
        assert!(again.is_none());
        assert_eq!(tier.counters.corrupt.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn the_oldest_writes_go_past_the_byte_bound() {
        let dir = tempfile::tempdir().expect("temp dir");
        let body = "x".repeat(1000);
        // Room for about three objects.
        let (tier, _) = DiskTier::open(dir.path(), 3500).expect("open");
        for n in 0..5 {
            store(&tier, &format!("/{n}"), &body, &[]);
        }
        assert!(tier.bytes() <= 3500);
        assert!(tier.load(&key("/0")).is_none());
        assert!(tier.load(&key("/1")).is_none());
        assert!(tier.load(&key("/4")).is_some());
    }
}
