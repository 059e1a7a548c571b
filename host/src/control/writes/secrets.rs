//! Writes of hook secrets: `PUT`/`DELETE /v1/secrets/{store}/{name}`. Hooks
//! read a new value from the next request on; the API never gives one back.

use bytes::Bytes;

use super::hooks::validate_kv_name;
use crate::control::error::{ApiError, ErrorCode};
use crate::control::plane::ControlPlane;
use crate::control::records::secrets::{MAX_SECRET_VALUE, encode, secret_key};
use crate::store::{Op, Txn};

/// The error for a secret that is not set.
pub fn no_such_secret(store: &str, name: &str) -> ApiError {
    ApiError::new(
        ErrorCode::NoSuchSecret,
        format!("no secret {name:?} is set in store {store:?}"),
    )
}

impl ControlPlane {
    /// `PUT /v1/secrets/{store}/{name}`: sets a secret, one version more
    /// than the one it replaces. Returns its version.
    pub async fn put_secret(&self, store: &str, name: &str, value: Bytes) -> Result<u64, ApiError> {
        validate_kv_name(store, "store")?;
        validate_kv_name(name, "name")?;
        if value.len() > MAX_SECRET_VALUE {
            return Err(ApiError::new(
                ErrorCode::RequestEntityTooLarge,
                format!("a secret is at most {MAX_SECRET_VALUE} bytes"),
            ));
        }
        let (_guard, state) = self.begin_write().await?;
        let version = state.kv.secret(store, name).map_or(1, |s| s.version + 1);
        let updated = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let txn = Txn {
            compares: Vec::new(),
            ops: vec![Op::Put {
                key: secret_key(store, name),
                value: encode(version, updated, &value),
            }],
        };
        // The written key names the secret, never its value.
        self.commit_write(&state, txn, &secret_key(store, name), &[])
            .await?;
        Ok(version)
    }

    /// `DELETE /v1/secrets/{store}/{name}`.
    pub async fn delete_secret(&self, store: &str, name: &str) -> Result<(), ApiError> {
        let (_guard, state) = self.begin_write().await?;
        if state.kv.secret(store, name).is_none() {
            return Err(no_such_secret(store, name));
        }
        let txn = Txn {
            compares: Vec::new(),
            ops: vec![Op::Delete {
                key: secret_key(store, name),
            }],
        };
        self.commit_write(&state, txn, &secret_key(store, name), &[])
            .await?;
        Ok(())
    }
}
