//! The `kv` interface: read-only key-value data set through the control API.

use std::collections::HashMap;

use bytes::Bytes;

use super::HookState;
use super::bindings::v0_2::edge::hooks::kv;
use super::secrets::Secret;

/// Every namespace's keys, and every secret store's secrets, as of one
/// control-plane write. Immutable; swapped whole.
#[derive(Debug, Default, Clone)]
pub struct KvData {
    namespaces: HashMap<String, HashMap<String, Bytes>>,
    /// Hooks' secrets, by store (see [`super::secrets`]); never listed with
    /// the namespaces.
    pub(super) secrets: HashMap<String, HashMap<String, Secret>>,
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
