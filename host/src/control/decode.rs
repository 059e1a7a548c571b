//! The one way a committed write becomes state: every written key goes
//! through its resource's decoder ([`super::records`]), whether this host made
//! the write (its transaction's operations) or learned of it from a shared
//! store (a full load, every key a put at its revision).

use std::collections::HashMap;
use std::sync::Arc;

use super::error::{ApiError, ErrorCode};
use super::records::hooks::{self, Compiled, HOOK_PREFIX, LATEST_PREFIX, MODULE_PREFIX};
use super::records::{
    Change, DecodeError, Write, certificates, distributions, invalidations, kv, policies, secrets,
};
use super::state::ControlState;
use crate::store::{Loaded, Op, Revision};
use crate::wasm::{CompiledHook, HookRuntime};

/// The state a full load of the store describes. Hook versions `previous`
/// has compiled are reused; others are compiled from their stored bytes.
pub(super) async fn load(
    loaded: &Loaded,
    runtime: &Arc<HookRuntime>,
    previous: &ControlState,
) -> ControlState {
    let writes: Vec<Write<'_>> = loaded
        .entries
        .iter()
        .map(|e| Write {
            key: &e.key,
            change: Change::Put(&e.value),
            revision: e.mod_revision,
        })
        .collect();
    let mut state = ControlState {
        revision: loaded.revision,
        ..ControlState::default()
    };
    apply(&mut state, &writes, runtime, previous, &[]).await;
    state
}

/// `state` after a transaction committed at `revision` wrote `ops`.
/// `fresh` holds hooks the writer compiled for it, so nothing compiles twice.
pub(super) async fn committed(
    state: &ControlState,
    ops: &[Op],
    revision: Revision,
    runtime: &Arc<HookRuntime>,
    fresh: &[Arc<CompiledHook>],
) -> ControlState {
    let writes: Vec<Write<'_>> = ops
        .iter()
        .map(|op| match op {
            Op::Put { key, value } => Write {
                key,
                change: Change::Put(value),
                revision,
            },
            Op::Delete { key } => Write {
                key,
                change: Change::Delete,
                revision,
            },
        })
        .collect();
    let mut next = state.clone();
    next.revision = revision;
    apply(&mut next, &writes, runtime, state, fresh).await;
    next
}

/// Applies each write through the decoder its key's prefix names. A record
/// that cannot be decoded is logged and left out, as it would be on a load.
async fn apply(
    state: &mut ControlState,
    writes: &[Write<'_>],
    runtime: &Arc<HookRuntime>,
    previous: &ControlState,
    fresh: &[Arc<CompiledHook>],
) {
    let compiled = compile_versions(writes, runtime, previous, fresh).await;
    for w in writes {
        // The write as its resource's decoder sees it: the key without
        // the prefix.
        let write = |prefix: &str| Write {
            key: &w.key[prefix.len()..],
            ..*w
        };
        let key = w.key;
        let (result, lost): (Result<(), DecodeError>, &str) = if key
            .starts_with(distributions::DIST_PREFIX)
        {
            (
                distributions::apply_distribution(
                    &mut state.distributions,
                    write(distributions::DIST_PREFIX),
                ),
                "the distribution is not served",
            )
        } else if key.starts_with(distributions::ALIAS_PREFIX) {
            (
                distributions::apply_alias(&mut state.aliases, write(distributions::ALIAS_PREFIX)),
                "the alias is not served",
            )
        } else if key.starts_with(policies::POLICY_PREFIX) {
            (
                policies::apply(&mut state.policies, write(policies::POLICY_PREFIX)),
                "the policy sends no traffic",
            )
        } else if key.starts_with(invalidations::INVALIDATION_PREFIX) {
            (
                invalidations::apply(
                    &mut state.invalidations,
                    write(invalidations::INVALIDATION_PREFIX),
                ),
                "it is not listed",
            )
        } else if key.starts_with(certificates::CERTIFICATE_PREFIX) {
            (
                certificates::apply(
                    &mut state.certificates,
                    write(certificates::CERTIFICATE_PREFIX),
                ),
                "the certificate is not served",
            )
        } else if key.starts_with(secrets::SECRET_PREFIX) {
            (
                secrets::apply(Arc::make_mut(&mut state.kv), write(secrets::SECRET_PREFIX)),
                "the secret is not served",
            )
        } else if key.starts_with(kv::KV_PREFIX) {
            (
                kv::apply(Arc::make_mut(&mut state.kv), write(kv::KV_PREFIX)),
                "the value is not served",
            )
        } else if key.starts_with(HOOK_PREFIX) {
            (
                hooks::apply_version(&mut state.hooks, write(HOOK_PREFIX), &compiled),
                "the hook version cannot run",
            )
        } else if key.starts_with(LATEST_PREFIX) {
            (
                hooks::apply_latest(&mut state.hooks, write(LATEST_PREFIX)),
                "the hook cannot run",
            )
        } else {
            // Module bytes are read by `compile_versions`; other keys
            // (a newer release's) are not this host's to serve.
            (Ok(()), "")
        };
        if let Err(error) = result {
            tracing::error!(key, %error, "stored record cannot be read; {lost}");
        }
    }
}

/// The compiled form of every hook version the writes put: the one
/// `previous` or the writer (`fresh`) has, else compiled from the module
/// bytes among the writes.
async fn compile_versions(
    writes: &[Write<'_>],
    runtime: &Arc<HookRuntime>,
    previous: &ControlState,
    fresh: &[Arc<CompiledHook>],
) -> Compiled {
    let modules: HashMap<&str, &[u8]> = writes
        .iter()
        .filter_map(|w| match w.change {
            Change::Put(bytes) => Some((w.key.strip_prefix(MODULE_PREFIX)?, bytes)),
            Change::Delete => None,
        })
        .collect();
    let mut compiled = Compiled::new();
    for w in writes {
        let Change::Put(_) = w.change else { continue };
        let Some((name, version)) = w
            .key
            .strip_prefix(HOOK_PREFIX)
            .and_then(hooks::split_version_key)
        else {
            continue;
        };
        let known = previous
            .hooks
            .get(name)
            .and_then(|r| r.versions.get(version))
            .map(|v| v.compiled.clone())
            .or_else(|| {
                fresh
                    .iter()
                    .find(|c| &*c.name == name && c.version == version)
                    .cloned()
            });
        let result = match (known, modules.get(hooks::module_hex(version))) {
            (Some(known), _) => Ok(known),
            (None, Some(bytes)) => compile(runtime, name, bytes.to_vec())
                .await
                .map_err(|e| e.message),
            (None, None) => Err("its module bytes are missing".to_owned()),
        };
        compiled.insert((name.to_owned(), version.to_owned()), result);
    }
    compiled
}

/// Compiles off the async workers (Cranelift is CPU-heavy on a first compile).
pub(super) async fn compile(
    runtime: &Arc<HookRuntime>,
    name: &str,
    bytes: Vec<u8>,
) -> Result<Arc<CompiledHook>, ApiError> {
    let (rt, n) = (runtime.clone(), name.to_owned());
    match tokio::task::spawn_blocking(move || rt.compile(&n, &bytes)).await {
        Ok(Ok(compiled)) => Ok(Arc::new(compiled)),
        Ok(Err(invalid)) => Err(ApiError::new(ErrorCode::InvalidHook, invalid.0)),
        Err(e) => Err(ApiError::new(ErrorCode::InternalError, e.to_string())),
    }
}
