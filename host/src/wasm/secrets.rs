//! The `secrets` interface: values operators set with `PUT
//! /v1/secrets/{store}/{name}`, readable by the hooks whose association
//! names their store, and by nothing else: the API lists their names and
//! versions, never a value, and no log line, metric, console page or access
//! log carries one.

use std::collections::HashMap;

use bytes::Bytes;

use super::HookState;
use super::bindings::v0_2::edge::hooks::secrets as wit;
use super::kv::KvData;

/// One secret: its value, and when and how often it was set.
#[derive(Clone)]
pub struct Secret {
    /// 1 for the first value, one more for each replacement.
    pub version: u64,
    /// When it was last set (Unix seconds).
    pub updated: u64,
    value: Bytes,
}

impl Secret {
    pub fn new(version: u64, updated: u64, value: Bytes) -> Self {
        Self {
            version,
            updated,
            value,
        }
    }

    /// The value, for a hook allowed to read it.
    pub(super) fn value(&self) -> &Bytes {
        &self.value
    }
}

/// Never the value.
impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field("version", &self.version)
            .field("updated", &self.updated)
            .field("value", &"<redacted>")
            .finish()
    }
}

impl KvData {
    /// Secret `name` of `store`.
    pub fn secret(&self, store: &str, name: &str) -> Option<&Secret> {
        self.secrets.get(store)?.get(name)
    }

    pub fn set_secret(&mut self, store: &str, name: &str, secret: Secret) {
        self.secrets
            .entry(store.to_owned())
            .or_default()
            .insert(name.to_owned(), secret);
    }

    pub fn remove_secret(&mut self, store: &str, name: &str) -> Option<Secret> {
        let secrets = self.secrets.get_mut(store)?;
        let removed = secrets.remove(name);
        if secrets.is_empty() {
            self.secrets.remove(store);
        }
        removed
    }

    /// Every secret store and how many secrets it holds, sorted by name.
    pub fn secret_stores(&self) -> Vec<(&str, usize)> {
        let mut all: Vec<_> = self
            .secrets
            .iter()
            .map(|(store, secrets)| (store.as_str(), secrets.len()))
            .collect();
        all.sort_unstable();
        all
    }

    /// The secrets of `store` (never their values' bytes), sorted by name;
    /// `None` when it holds none.
    pub fn secrets_of(&self, store: &str) -> Option<Vec<(&str, &Secret)>> {
        let secrets: &HashMap<String, Secret> = self.secrets.get(store)?;
        let mut all: Vec<_> = secrets.iter().map(|(n, s)| (n.as_str(), s)).collect();
        all.sort_unstable_by(|a, b| a.0.cmp(b.0));
        Some(all)
    }
}

impl wit::Host for HookState {
    fn get(&mut self, store: String, name: String) -> Result<Vec<u8>, wit::Error> {
        if !self.secret_stores.iter().any(|s| **s == *store) {
            return Err(wit::Error::NotPermitted);
        }
        self.kv
            .secret(&store, &name)
            .map(|s| s.value().to_vec())
            .ok_or(wit::Error::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints_its_value() {
        let mut kv = KvData::default();
        kv.set_secret(
            "pay",
            "key",
            Secret::new(2, 1, Bytes::from_static(b"hunter2")),
        );
        let shown = format!("{kv:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
        assert!(kv.namespaces().is_empty(), "a secret store listed as KV");
        assert_eq!(kv.secret_stores(), [("pay", 1)]);
        assert!(kv.remove_secret("pay", "key").is_some());
        assert!(kv.secret_stores().is_empty());
    }
}
