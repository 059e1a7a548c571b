//! The KV data hooks read, as stored: `kv/<namespace>/<key>` holds the value.

use bytes::Bytes;

use super::{Change, DecodeError, Write};
use crate::wasm::KvData;

pub const KV_PREFIX: &str = "kv/";

/// The store key of `key` in `namespace`.
pub fn kv_key(namespace: &str, key: &str) -> String {
    format!("{KV_PREFIX}{namespace}/{key}")
}

/// Applies a write of `kv/<namespace>/<key>`.
pub fn apply(kv: &mut KvData, write: Write<'_>) -> Result<(), DecodeError> {
    let Some((namespace, key)) = write.key.split_once('/') else {
        return Err("the key names no namespace".to_owned());
    };
    match write.change {
        Change::Delete => {
            kv.remove(namespace, key);
        }
        Change::Put(value) => kv.insert(namespace, key, Bytes::copy_from_slice(value)),
    }
    Ok(())
}
