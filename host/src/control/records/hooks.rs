//! Hooks as stored: `hook-modules/<hex>` holds component bytes (once, whatever
//! names uploaded them), `hooks/<name>/<version>` a [`HookMeta`], and
//! `hook-latest/<name>` the version `name` alone resolves to.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Change, DecodeError, Write, json};
use crate::wasm::CompiledHook;

/// `hook-modules/<hex>` → component bytes.
pub const MODULE_PREFIX: &str = "hook-modules/";
/// `hooks/<name>/<version>` → [`HookMeta`].
pub const HOOK_PREFIX: &str = "hooks/";
/// `hook-latest/<name>` → the version `name` alone resolves to.
pub const LATEST_PREFIX: &str = "hook-latest/";

/// The store key of the module bytes of `version` (`sha256:<hex>`).
pub fn module_key(version: &str) -> String {
    format!("{MODULE_PREFIX}{}", module_hex(version))
}

/// The content hash a version names, without its `sha256:`.
pub fn module_hex(version: &str) -> &str {
    version.strip_prefix("sha256:").unwrap_or(version)
}

/// The store key of `version` of hook `name`.
pub fn version_key(name: &str, version: &str) -> String {
    format!("{HOOK_PREFIX}{name}/{version}")
}

/// The store key of the version `name` resolves to.
pub fn latest_key(name: &str) -> String {
    format!("{LATEST_PREFIX}{name}")
}

/// What is recorded about one uploaded version of a hook.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HookMeta {
    pub size: usize,
    pub uploaded: String,
    /// Microseconds since the Unix epoch at upload: orders versions
    /// uploaded within one second (0 in records written before it existed).
    #[serde(default)]
    pub uploaded_us: u64,
}

/// One version of a hook: its record and its compiled form.
#[derive(Debug, Clone)]
pub struct HookVersion {
    pub meta: HookMeta,
    pub compiled: Arc<CompiledHook>,
}

/// Every version of one hook name.
#[derive(Debug, Clone, Default)]
pub struct HookRecord {
    pub latest: String,
    pub versions: BTreeMap<String, HookVersion>,
}

/// The compiled form of each `(name, version)` a batch of writes puts, made
/// before the batch is applied (compiling is slow and runs off the async
/// workers; decoders do not wait).
pub type Compiled = HashMap<(String, String), Result<Arc<CompiledHook>, DecodeError>>;

/// The name and version a `hooks/` key names.
pub fn split_version_key(key: &str) -> Option<(&str, &str)> {
    key.split_once('/')
}

/// Applies a write of `hooks/<name>/<version>`.
pub fn apply_version(
    hooks: &mut BTreeMap<String, HookRecord>,
    write: Write<'_>,
    compiled: &Compiled,
) -> Result<(), DecodeError> {
    let Some((name, version)) = split_version_key(write.key) else {
        return Err("the key names no version".to_owned());
    };
    match write.change {
        Change::Delete => {
            if let Some(record) = hooks.get_mut(name) {
                record.versions.remove(version);
                if record.versions.is_empty() && record.latest.is_empty() {
                    hooks.remove(name);
                }
            }
        }
        Change::Put(value) => {
            let meta: HookMeta = json(value)?;
            let compiled = compiled
                .get(&(name.to_owned(), version.to_owned()))
                .cloned()
                .unwrap_or_else(|| Err("its module bytes are missing".to_owned()))?;
            hooks
                .entry(name.to_owned())
                .or_default()
                .versions
                .insert(version.to_owned(), HookVersion { meta, compiled });
        }
    }
    Ok(())
}

/// Applies a write of `hook-latest/<name>`.
pub fn apply_latest(
    hooks: &mut BTreeMap<String, HookRecord>,
    write: Write<'_>,
) -> Result<(), DecodeError> {
    match write.change {
        Change::Delete => {
            if let Some(record) = hooks.get_mut(write.key) {
                record.latest.clear();
                if record.versions.is_empty() {
                    hooks.remove(write.key);
                }
            }
        }
        Change::Put(version) => {
            hooks.entry(write.key.to_owned()).or_default().latest =
                String::from_utf8_lossy(version).into_owned();
        }
    }
    Ok(())
}
