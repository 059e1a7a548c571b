//! Hook associations: the module a behavior runs at an event (a hook name,
//! optionally pinned to a version) and the limits it may ask for.

use super::error::ConfigError;
use super::raw;

/// The largest CPU budget a hook association may ask for.
pub const MAX_HOOK_BUDGET_MS: u64 = 10_000;

/// The most of a body a hook may be given, in KiB, and the default.
pub const MAX_BODY_LIMIT_KIB: u64 = 1024;

/// The bounds of an association's `fetch` object.
pub const MAX_FETCH_REQUESTS: u64 = 16;
pub const MAX_FETCH_TIMEOUT_MS: u64 = 30_000;
pub const MAX_FETCH_RESPONSE_KIB: u64 = 1024;

/// Checks a hook name: 1-64 of `a-z 0-9 - _`.
pub fn validate_hook_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!("{name:?} is not a hook name (1-64 of a-z 0-9 - _)"))
    }
}

/// Checks a behavior's hook associations (`field` names the behavior): each
/// module a hook name with an optional version, each CPU budget and memory
/// limit within the host's bounds.
pub(super) fn validate_hooks(hooks: &raw::HooksConfig, field: &str) -> Result<(), ConfigError> {
    for (event, hook) in hooks.iter() {
        let hfield = format!("{field}.hooks.{event}");
        let (name, version) = match hook.module.split_once('@') {
            Some((n, v)) => (n, Some(v)),
            None => (hook.module.as_str(), None),
        };
        validate_hook_name(name).map_err(|m| ConfigError::new(format!("{hfield}.module"), m))?;
        if let Some(v) = version {
            let hex = v.strip_prefix("sha256:").unwrap_or("");
            if hex.len() != 64
                || !hex
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            {
                return Err(ConfigError::new(
                    format!("{hfield}.module"),
                    format!("{v:?} is not a version (sha256: and 64 lower-case hex digits)"),
                ));
            }
        }
        if let Some(ms) = hook.cpu_budget_ms
            && !(1..=MAX_HOOK_BUDGET_MS).contains(&ms)
        {
            return Err(ConfigError::new(
                format!("{hfield}.cpu_budget_ms"),
                format!("must be between 1 and {MAX_HOOK_BUDGET_MS}"),
            ));
        }
        let max_mib = (crate::limits::MAX_MEMORY_LIMIT >> 20) as u64;
        if let Some(mib) = hook.memory_limit_mib
            && !(1..=max_mib).contains(&mib)
        {
            return Err(ConfigError::new(
                format!("{hfield}.memory_limit_mib"),
                format!("must be between 1 and {max_mib}"),
            ));
        }
        if hook.include_body && event == "viewer_response" {
            return Err(ConfigError::new(
                format!("{hfield}.include_body"),
                "viewer_response is never given a body; read it in origin_response (bodies reach viewer_request, origin_request and origin_response)",
            ));
        }
        if let Some(kib) = hook.body_limit_kib
            && !(1..=MAX_BODY_LIMIT_KIB).contains(&kib)
        {
            return Err(ConfigError::new(
                format!("{hfield}.body_limit_kib"),
                format!("must be between 1 and {MAX_BODY_LIMIT_KIB}"),
            ));
        }
        if let Some(fetch) = &hook.fetch {
            let checks: [(&str, Option<u64>, u64); 3] = [
                (
                    "max_requests",
                    fetch.max_requests.map(u64::from),
                    MAX_FETCH_REQUESTS,
                ),
                ("timeout_ms", fetch.timeout_ms, MAX_FETCH_TIMEOUT_MS),
                (
                    "max_response_kib",
                    fetch.max_response_kib,
                    MAX_FETCH_RESPONSE_KIB,
                ),
            ];
            for (name, value, max) in checks {
                if let Some(v) = value
                    && !(1..=max).contains(&v)
                {
                    return Err(ConfigError::new(
                        format!("{hfield}.fetch.{name}"),
                        format!("must be between 1 and {max}"),
                    ));
                }
            }
        }
        for (i, store) in hook.secret_stores.iter().enumerate() {
            if !super::is_valid_id(store) {
                return Err(ConfigError::new(
                    format!("{hfield}.secret_stores[{i}]"),
                    format!("{store:?} is not a secret store name (1-128 of A-Z a-z 0-9 - _ .)"),
                ));
            }
        }
        if !hook.include_body {
            for (set, name) in [
                (hook.body_limit_kib.is_some(), "body_limit_kib"),
                (hook.body_over_limit.is_some(), "body_over_limit"),
            ] {
                if set {
                    return Err(ConfigError::new(
                        format!("{hfield}.{name}"),
                        "applies only with include_body: true",
                    ));
                }
            }
        }
    }
    Ok(())
}
