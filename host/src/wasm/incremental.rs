//! Cranelift's incremental compilation cache in a folder: a component whose functions mostly did not change compiles only the ones that did.
//!
//! The whole-component cache ([`wasmtime::Cache`]) is keyed by the
//! component's bytes, so any edit misses it. A JavaScript hook is a few MiB
//! of the engine's functions, identical from one build to the next, and the
//! hook's own code in a data snapshot: after an edit, this cache gives back
//! every function the edit did not touch. One file per function, named by a
//! hash of Cranelift's key (which covers the function's body and the
//! compiler's settings), written whole or not at all. A folder grown past
//! [`FUNCTION_CACHE_BYTES`] (each new engine build adds its functions) is
//! emptied when a runtime opens it, and fills again with what is compiled
//! next.

use std::borrow::Cow;
use std::path::PathBuf;

/// The function cache of one folder.
#[derive(Debug)]
pub(super) struct FunctionCache {
    dir: PathBuf,
}

/// The most bytes the function cache keeps (a JavaScript hook's engine is
/// about 76 MiB of compiled functions).
pub(super) const FUNCTION_CACHE_BYTES: u64 = 1 << 30;

impl FunctionCache {
    /// The cache in `dir`; emptied, on a thread of its own, when it holds
    /// more than `limit` bytes.
    pub(super) fn open(dir: PathBuf, limit: u64) -> Self {
        let scanned = dir.clone();
        let _ = std::thread::Builder::new()
            .name("edge-fn-cache".into())
            .spawn(move || {
                if folder_bytes(&scanned) > limit {
                    let _ = std::fs::remove_dir_all(&scanned);
                }
            });
        Self { dir }
    }

    fn path(&self, key: &[u8]) -> PathBuf {
        use sha2::Digest as _;
        let name = crate::ids::hex(&sha2::Sha256::digest(key));
        self.dir.join(&name[..2]).join(&name[2..])
    }
}

/// The bytes of the files under `dir` (two levels, as the cache lays them out).
fn folder_bytes(dir: &std::path::Path) -> u64 {
    let Ok(shards) = std::fs::read_dir(dir) else {
        return 0;
    };
    shards
        .flatten()
        .filter_map(|shard| std::fs::read_dir(shard.path()).ok())
        .flat_map(|files| files.flatten())
        .filter_map(|file| file.metadata().ok())
        .map(|meta| meta.len())
        .sum()
}

impl wasmtime::CacheStore for FunctionCache {
    fn get(&self, key: &[u8]) -> Option<Cow<'_, [u8]>> {
        std::fs::read(self.path(key)).ok().map(Cow::Owned)
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> bool {
        let path = self.path(key);
        let Some(parent) = path.parent() else {
            return false;
        };
        if std::fs::create_dir_all(parent).is_err() {
            return false;
        }
        // Written under a name of its own, then renamed into place: a reader
        // never sees half a file, and two writers of one key race harmlessly.
        let tmp = parent.join(format!(
            ".{}.{}.tmp",
            std::process::id(),
            crate::ids::request_id()
        ));
        if std::fs::write(&tmp, &value).is_err() {
            let _ = std::fs::remove_file(&tmp);
            return false;
        }
        std::fs::rename(&tmp, &path).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::CacheStore as _;

    #[test]
    fn what_is_inserted_is_read_back_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FunctionCache::open(dir.path().join("functions"), u64::MAX);
        assert!(cache.get(b"a").is_none());
        assert!(cache.insert(b"a", b"compiled a".to_vec()));
        assert_eq!(cache.get(b"a").as_deref(), Some(&b"compiled a"[..]));
        assert!(cache.get(b"b").is_none());
        // Another cache on the same folder (a later run) finds it.
        let again = FunctionCache::open(dir.path().join("functions"), u64::MAX);
        assert_eq!(again.get(b"a").as_deref(), Some(&b"compiled a"[..]));
        assert_eq!(folder_bytes(&dir.path().join("functions")), 10);
    }

    #[test]
    fn a_cache_over_its_bound_is_emptied_when_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("functions");
        let cache = FunctionCache::open(path.clone(), u64::MAX);
        assert!(cache.insert(b"a", vec![0; 100]));
        let _reopened = FunctionCache::open(path.clone(), 50);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while path.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(!path.exists(), "a cache over its bound was kept");
        // Still usable: the next insert makes the folder again.
        assert!(cache.insert(b"b", b"compiled b".to_vec()));
        assert_eq!(cache.get(b"b").as_deref(), Some(&b"compiled b"[..]));
    }
}
