//! Hook secrets as stored: `secrets/<store>/<name>` holds the secret's
//! version (8 bytes, big-endian), when it was set (8 bytes, Unix seconds)
//! and its value. Apart from KV, and never served by the API.

use bytes::Bytes;

use super::{Change, DecodeError, Write};
use crate::wasm::KvData;
use crate::wasm::secrets::Secret;

pub const SECRET_PREFIX: &str = "secrets/";

/// The largest secret value.
pub const MAX_SECRET_VALUE: usize = 64 * 1024;

/// The store key of secret `name` in `store`.
pub fn secret_key(store: &str, name: &str) -> String {
    format!("{SECRET_PREFIX}{store}/{name}")
}

/// A secret as stored.
pub fn encode(version: u64, updated: u64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + value.len());
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&updated.to_be_bytes());
    out.extend_from_slice(value);
    out
}

fn decode(stored: &[u8]) -> Result<Secret, DecodeError> {
    let (version, rest) = stored
        .split_first_chunk::<8>()
        .ok_or("the record is too short")?;
    let (updated, value) = rest
        .split_first_chunk::<8>()
        .ok_or("the record is too short")?;
    Ok(Secret::new(
        u64::from_be_bytes(*version),
        u64::from_be_bytes(*updated),
        Bytes::copy_from_slice(value),
    ))
}

/// Applies a write of `secrets/<store>/<name>`.
pub fn apply(kv: &mut KvData, write: Write<'_>) -> Result<(), DecodeError> {
    let Some((store, name)) = write.key.split_once('/') else {
        return Err("the key names no store".to_owned());
    };
    match write.change {
        Change::Delete => {
            kv.remove_secret(store, name);
        }
        Change::Put(value) => kv.set_secret(store, name, decode(value)?),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_secret_reads_back() {
        let stored = encode(3, 1_700_000_000, b"s3cr3t");
        let secret = decode(&stored).expect("decodes");
        assert_eq!((secret.version, secret.updated), (3, 1_700_000_000));
        assert!(decode(&stored[..10]).is_err());
    }
}
