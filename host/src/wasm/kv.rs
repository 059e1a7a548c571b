//! The `kv` interface: read-only key-value data set through the control API.

use std::collections::HashMap;

use bytes::Bytes;

use super::HookState;
use super::bindings::edge::hooks::kv;

/// Every namespace's keys, as of one control-plane write. Immutable; swapped whole.
#[derive(Debug, Default, Clone)]
pub struct KvData {
    namespaces: HashMap<String, HashMap<String, Bytes>>,
}

impl KvData {
    pub fn get(&self, namespace: &str, key: &str) -> Option<&Bytes> {
        self.namespaces.get(namespace)?.get(key)
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
