//! The `secrets` interface: values operators set with `PUT
//! /v1/secrets/{store}/{name}`, readable by the hooks whose association
//! names their store, and by nothing else: the API lists their names and
//! versions, never a value, and no log line, metric, console page or access
//! log carries one.

use super::HookState;
use super::bindings::v0_2::edge::hooks::secrets as wit;
pub use super::kv::Secret;

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
    use bytes::Bytes;

    use super::*;
    use crate::wasm::KvData;

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
