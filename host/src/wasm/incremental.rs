//! Cranelift's incremental compilation cache in a folder: a component whose functions mostly did not change compiles only the ones that did.
//!
//! The whole-component cache ([`wasmtime::Cache`]) is keyed by the
//! component's bytes, so any edit misses it. A JavaScript hook is a few MiB
//! of the engine's functions, identical from one build to the next, and the
//! hook's own code in a data snapshot: after an edit, this cache gives back
//! every function the edit did not touch. One file per function, named by a
//! hash of Cranelift's key (which covers the function's body and the
//! compiler's settings), written whole or not at all.

use std::borrow::Cow;
use std::path::PathBuf;

/// The function cache of one folder.
#[derive(Debug)]
pub(super) struct FunctionCache {
    dir: PathBuf,
}

impl FunctionCache {
    pub(super) fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn path(&self, key: &[u8]) -> PathBuf {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(key);
        let mut name = String::with_capacity(64);
        for b in digest {
            name.push_str(&format!("{b:02x}"));
        }
        self.dir.join(&name[..2]).join(&name[2..])
    }
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
        let cache = FunctionCache::new(dir.path().join("functions"));
        assert!(cache.get(b"a").is_none());
        assert!(cache.insert(b"a", b"compiled a".to_vec()));
        assert_eq!(cache.get(b"a").as_deref(), Some(&b"compiled a"[..]));
        assert!(cache.get(b"b").is_none());
        // Another cache on the same folder (a later run) finds it.
        let again = FunctionCache::new(dir.path().join("functions"));
        assert_eq!(again.get(b"a").as_deref(), Some(&b"compiled a"[..]));
    }
}
