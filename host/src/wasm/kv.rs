//! The `kv` interface: read-only key-value data set through the control API,
//! in the snapshot hooks also read their secrets from.

use std::collections::HashMap;

use bytes::Bytes;

use super::HookState;
use super::bindings::v0_2::edge::hooks::kv;

/// Every namespace's keys, and every secret store's secrets, as of one
/// control-plane write. Immutable; swapped whole.
#[derive(Debug, Default, Clone)]
pub struct KvData {
    namespaces: HashMap<String, HashMap<String, Bytes>>,
    /// Hooks' secrets, by store (see [`super::secrets`]); never listed with
    /// the namespaces.
    secrets: HashMap<String, HashMap<String, Secret>>,
}

impl KvData {
    pub fn get(&self, namespace: &str, key: &str) -> Option<&Bytes> {
        self.namespaces.get(namespace)?.get(key)
    }

    /// Every namespace and how many keys it holds, sorted by name.
    pub fn namespaces(&self) -> Vec<(&str, usize)> {
        let mut all: Vec<_> = self
            .namespaces
            .iter()
            .map(|(name, keys)| (name.as_str(), keys.len()))
            .collect();
        all.sort_unstable();
        all
    }

    /// The keys of `namespace` and their values' sizes, sorted, or `None`
    /// when it holds none.
    pub fn keys(&self, namespace: &str) -> Option<Vec<(&str, usize)>> {
        let mut keys: Vec<_> = self
            .namespaces
            .get(namespace)?
            .iter()
            .map(|(key, value)| (key.as_str(), value.len()))
            .collect();
        keys.sort_unstable();
        Some(keys)
    }

    pub fn insert(&mut self, namespace: &str, key: &str, value: Bytes) {
        self.namespaces
            .entry(namespace.to_owned())
            .or_default()
            .insert(key.to_owned(), value);
    }

    pub fn remove(&mut self, namespace: &str, key: &str) -> Option<Bytes> {
        let keys = self.namespaces.get_mut(namespace)?;
        let value = keys.remove(key);
        if keys.is_empty() {
            self.namespaces.remove(namespace);
        }
        value
    }
}

impl kv::Host for HookState {
    fn get(&mut self, namespace: String, key: String) -> Option<Vec<u8>> {
        self.kv.get(&namespace, &key).map(|v| v.to_vec())
    }
}

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
        let secrets = self.secrets.get(store)?;
        let mut all: Vec<_> = secrets.iter().map(|(n, s)| (n.as_str(), s)).collect();
        all.sort_unstable_by(|a, b| a.0.cmp(b.0));
        Some(all)
    }
}
