//! Writes of hook modules and the KV data hooks read.

use std::time::SystemTime;

use crate::control::decode::compile;
use crate::control::error::{ApiError, ErrorCode};
use crate::control::plane::ControlPlane;
use crate::control::records::hooks::{HookMeta, HookVersion, latest_key, module_key, version_key};
use crate::control::records::kv::kv_key;
use crate::control::records::put_json;
use crate::control::state::ControlState;
use crate::store::{Op, Txn};
use crate::time::rfc3339;

/// The store operations that remove `version` of hook `name`: its record,
/// and its module bytes unless another hook name uploaded the same bytes.
fn delete_version(state: &ControlState, name: &str, version: &str) -> Vec<Op> {
    let mut ops = vec![Op::Delete {
        key: version_key(name, version),
    }];
    let shared = state
        .hooks
        .iter()
        .any(|(other, r)| other != name && r.versions.contains_key(version));
    if !shared {
        ops.push(Op::Delete {
            key: module_key(version),
        });
    }
    ops
}
use crate::wasm::KvData;

impl ControlPlane {
    /// `PUT /v1/hooks/{name}`: validates the component against the `hooks` world,
    /// stores it by content hash, and makes it the version `name` resolves to.
    /// Distributions naming `name` run it from the next request on.
    pub async fn put_hook(&self, name: &str, bytes: bytes::Bytes) -> Result<String, ApiError> {
        crate::config::validate_hook_name(name).map_err(ApiError::invalid_argument)?;
        let compiled = compile(&self.runtime, name, bytes.to_vec()).await?;
        self.runtime
            .check_exports(&compiled)
            .await
            .map_err(|e| ApiError::new(ErrorCode::InvalidHook, e.0))?;
        let version = compiled.version.clone();
        let now = SystemTime::now();
        let meta = HookMeta {
            size: bytes.len(),
            uploaded: rfc3339(now),
            uploaded_us: now
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
        };
        let (_guard, state) = self.begin_write().await?;
        // Every module stored once, whatever names share it.
        let mut modules: std::collections::HashMap<&str, usize> = state
            .hooks
            .values()
            .flat_map(|r| r.versions.iter())
            .map(|(v, h)| (v.as_str(), h.meta.size))
            .collect();
        modules.insert(&version, bytes.len());
        let pruned = self.versions_to_prune(&state, name, &version);
        for old in &pruned {
            let shared = state
                .hooks
                .iter()
                .any(|(other, r)| other != name && r.versions.contains_key(old));
            if !shared {
                modules.remove(old.as_str());
            }
        }
        let stored: u64 = modules.values().map(|&n| n as u64).sum();
        if stored > self.options.max_hook_store_bytes {
            return Err(ApiError::new(
                ErrorCode::HookStoreFull,
                format!(
                    "hook modules would take {stored} bytes, over the host's {} (--max-hook-store-bytes): delete hooks no distribution runs (edge hook delete NAME), or raise the limit",
                    self.options.max_hook_store_bytes
                ),
            ));
        }
        let mut txn = Txn::default();
        txn.ops.push(Op::Put {
            key: module_key(&version),
            value: bytes.to_vec(),
        });
        txn.ops.push(put_json(version_key(name, &version), &meta)?);
        txn.ops.push(Op::Put {
            key: latest_key(name),
            value: version.clone().into_bytes(),
        });
        for old in &pruned {
            txn.ops.extend(delete_version(&state, name, old));
        }
        self.commit_write(&state, txn, name, &[compiled]).await?;
        if !pruned.is_empty() {
            tracing::info!(hook = name, pruned = ?pruned, "older hook versions pruned");
        }
        Ok(version)
    }

    /// The versions of `name` an upload of `new` lets go: the oldest beyond
    /// the `hook_versions_kept` newest, never the new one nor one a
    /// distribution pins (`name@version`).
    fn versions_to_prune(&self, state: &ControlState, name: &str, new: &str) -> Vec<String> {
        let Some(record) = state.hooks.get(name) else {
            return Vec::new();
        };
        let pinned: std::collections::HashSet<String> = state
            .distributions
            .values()
            .flat_map(|d| {
                d.config
                    .hook_modules()
                    .into_iter()
                    .filter_map(|(_, module)| {
                        module
                            .split_once('@')
                            .map(|(n, v)| (n.to_owned(), v.to_owned()))
                    })
                    .collect::<Vec<_>>()
            })
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v)
            .collect();
        let mut older: Vec<(&String, &HookVersion)> = record
            .versions
            .iter()
            .filter(|(v, _)| v.as_str() != new)
            .collect();
        // Newest first.
        older
            .sort_by_key(|(_, v)| std::cmp::Reverse((v.meta.uploaded.clone(), v.meta.uploaded_us)));
        let keep = self.options.hook_versions_kept.max(1);
        older
            .into_iter()
            .skip(keep.saturating_sub(1))
            .filter(|(v, _)| !pinned.contains(v.as_str()))
            .map(|(v, _)| v.clone())
            .collect()
    }

    /// `DELETE /v1/hooks/{name}`: every version of `name`, and the module
    /// bytes no other hook name shares. Refused (409 `HookInUse`, nothing
    /// changed) while a distribution's config names the hook, pinned or not.
    pub async fn delete_hook(&self, name: &str) -> Result<(), ApiError> {
        let (_guard, state) = self.begin_write().await?;
        let record = state
            .hooks
            .get(name)
            .ok_or_else(|| ApiError::no_such_hook(name))?;
        let users: Vec<String> = state
            .distributions
            .values()
            .filter(|d| {
                d.config
                    .hook_modules()
                    .into_iter()
                    .any(|(_, module)| module.split('@').next() == Some(name))
            })
            .map(|d| d.stored.id.clone())
            .collect();
        if !users.is_empty() {
            return Err(ApiError::new(
                ErrorCode::HookInUse,
                format!(
                    "hook {name:?} runs in distribution(s) {}: remove it from their behaviors first",
                    users.join(", ")
                ),
            ));
        }
        let mut txn = Txn::default();
        for version in record.versions.keys() {
            txn.ops.extend(delete_version(&state, name, version));
        }
        txn.ops.push(Op::Delete {
            key: latest_key(name),
        });
        self.commit_write(&state, txn, name, &[]).await?;
        tracing::info!(hook = name, "hook deleted");
        Ok(())
    }

    /// `PUT /v1/kv/{namespace}/{key}`: hooks read the new value from the next
    /// request on.
    pub async fn kv_put(
        &self,
        namespace: &str,
        key: &str,
        value: bytes::Bytes,
    ) -> Result<(), ApiError> {
        validate_kv_name(namespace, "namespace")?;
        validate_kv_name(key, "key")?;
        let op = Op::Put {
            key: kv_key(namespace, key),
            value: value.to_vec(),
        };
        self.write_kv(op, |_| Ok(())).await
    }

    /// `DELETE /v1/kv/{namespace}/{key}`.
    pub async fn kv_delete(&self, namespace: &str, key: &str) -> Result<(), ApiError> {
        let op = Op::Delete {
            key: kv_key(namespace, key),
        };
        let exists = |kv: &KvData| match kv.get(namespace, key) {
            Some(_) => Ok(()),
            None => Err(no_such_key(namespace, key)),
        };
        self.write_kv(op, exists).await
    }

    /// Commits one KV write after `check` accepts the current data.
    async fn write_kv(
        &self,
        op: Op,
        check: impl FnOnce(&KvData) -> Result<(), ApiError>,
    ) -> Result<(), ApiError> {
        let (_guard, state) = self.begin_write().await?;
        check(&state.kv)?;
        let what = match &op {
            Op::Put { key, .. } | Op::Delete { key } => key.clone(),
        };
        let txn = Txn {
            compares: Vec::new(),
            ops: vec![op],
        };
        self.commit_write(&state, txn, &what, &[]).await?;
        Ok(())
    }

    /// Compilations the on-disk artifact cache answered since start.
    pub fn compile_cache_hits(&self) -> usize {
        self.runtime.cache_hits()
    }
}

/// The error for a KV key that is not set.
pub fn no_such_key(namespace: &str, key: &str) -> ApiError {
    ApiError::new(
        ErrorCode::NoSuchKey,
        format!("no value is set for {namespace}/{key}"),
    )
}

/// Checks a KV namespace or key, a secret store or name: 1-128 of `A-Z
/// a-z 0-9 - _ .`.
pub(super) fn validate_kv_name(name: &str, what: &str) -> Result<(), ApiError> {
    if crate::config::is_valid_id(name) {
        Ok(())
    } else {
        Err(ApiError::invalid_argument(format!(
            "{what} {name:?} must be 1-128 of A-Z a-z 0-9 - _ ."
        )))
    }
}
