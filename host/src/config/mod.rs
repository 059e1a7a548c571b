//! Distribution configs: the raw serde shape and the validated form the proxy serves from.
//!
//! Raw structs ([`raw`]) mirror the JSON exactly and refuse unknown fields; they are
//! converted with `TryFrom` into [`Distribution`], whose invariants the request path
//! relies on (every target names an origin or group, TTLs are ordered, header names
//! are valid). A [`ConfigError`] names the field that broke a rule.
//!
//! The validated form, one file per concern (their types are re-exported here):
//! - `distribution.rs`: [`Distribution`], built from the raw config, and its lookups.
//! - `origin.rs`: [`Origin`]s and the [`Target`]s behaviors send requests to.
//! - `behavior.rs`: [`Behavior`]s: the cache key, what goes to the origin.
//! - `ttl.rs`: [`TtlPolicy`], TTL defaults, lifetimes by status.
//! - `hooks.rs`: hook associations and hook names.
//! - `names.rs`: ids and aliases; `error.rs`: [`ConfigError`], [`parse_json`].
//!
//! Beside it: path patterns ([`pattern`]), continuous-deployment policies
//! ([`policy`]), and the CloudFront importer ([`cloudfront`]).

pub mod cloudfront;
pub mod pattern;
pub mod policy;
pub mod raw;

mod behavior;
mod distribution;
pub mod dynamic;
mod error;
mod hooks;
mod names;
mod origin;
mod ttl;

#[cfg(test)]
mod tests;

pub use behavior::{Behavior, CacheKeyPolicy, ForwardPolicy, Forwarding, not_forwardable};
pub use distribution::Distribution;
pub use error::{ConfigError, ParseError, parse_json};
pub use hooks::{MAX_BODY_LIMIT_KIB, MAX_HOOK_BUDGET_MS, validate_hook_name};
pub use names::{is_valid_id, validate_alias};
pub use origin::{
    DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_KEEPALIVE_TIMEOUT_MS, DEFAULT_READ_TIMEOUT_MS, HealthCheck,
    Origin, Target,
};
pub use pattern::PathPattern;
pub use raw::DistributionConfig;
pub use ttl::{
    DEFAULT_DEFAULT_TTL, DEFAULT_MAX_TTL, DEFAULT_MIN_TTL, DEFAULT_STATUS_TTL, STATUS_TTL_CODES,
    TtlPolicy,
};
