//! What the control plane stores, one file per resource: its key layout, its
//! stored form, the record it decodes to, and the decoder that applies one
//! committed write of its keys to its part of the state.
//!
//! A decoder sees a write as a key (its prefix removed), the value put or
//! [`Change::Delete`], and the revision that committed it. Both ways a host
//! learns of a write go through these decoders ([`super::decode`]): the host
//! that made it applies its transaction's operations, and a host following a
//! shared store applies every stored key of a full load.

pub mod certificates;
pub mod distributions;
pub mod hooks;
pub mod invalidations;
pub mod kv;
pub mod policies;
pub mod secrets;

use serde::Serialize;

use super::error::{ApiError, ErrorCode};
use crate::store::{Op, Revision};

/// One committed write of a key, as a decoder sees it.
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    Put(&'a [u8]),
    Delete,
}

/// One committed write of a key: the whole key as [`super::decode`] reads
/// it, the key without its resource's prefix as a decoder sees it.
#[derive(Debug, Clone, Copy)]
pub struct Write<'a> {
    pub key: &'a str,
    pub change: Change<'a>,
    /// The revision that committed it (the key's ETag after a put).
    pub revision: Revision,
}

/// Why a stored record cannot be decoded: the host logs it and serves
/// without that record, as it does for a record a newer release wrote.
pub type DecodeError = String;

/// A JSON value as the operation that stores it under `key`.
pub fn put_json<T: Serialize>(key: String, value: &T) -> Result<Op, ApiError> {
    let value = serde_json::to_vec(value)
        .map_err(|e| ApiError::new(ErrorCode::InternalError, e.to_string()))?;
    Ok(Op::Put { key, value })
}

/// Reads a stored JSON record.
fn json<'a, T: serde::Deserialize<'a>>(value: &'a [u8]) -> Result<T, DecodeError> {
    serde_json::from_slice(value).map_err(|e| e.to_string())
}
