//! Edge: a self-hosted, programmable edge router.
//!
//! The request's way through the host is spread over these rooms:
//! - [`config`]: the distribution config as operators write it, and its validated form
//!   (a file per concern: distribution, origin, behavior, ttl, hooks, names).
//! - [`store`]: where configs persist (an embedded database, or etcd for a fleet).
//! - [`control`]: the JSON control API that changes distributions: its
//!   records, the one decoder from a committed write to state, the writes.
//! - [`proxy`]: the per-request pipeline (resolve, behavior, cache, origin, respond).
//! - [`cache`]: the shared, byte-bounded object cache and freshness rules.
//! - [`cluster`]: which host of a fleet owns a cache key, and the members a host asks.
//! - [`origin`]: the trait the proxy reaches origins through; pooled origin clients, timeouts.
//! - [`server`]: listeners and the wiring of a running host (options, host, listen;
//!   a viewer connection in plain, https, connection).
//! - [`cli`]: the `edge` command line (a file of verbs per resource: dist, alias, cd,
//!   invalidate, hook, kv, import) and its control API client.
//! - [`error`]: viewer-side errors and the one place that maps them to statuses.
//! - [`wasm`]: the hook runtime (wasmtime components of the `hooks` world).
//!
//! The ground floor, which every room may use and which uses none of them:
//! [`path`] (request-path normalization), [`fields`] (header-field rules),
//! [`tls`] (viewer certificates), [`time`], [`limits`], [`ids`], [`priority`],
//! [`interim`] (1xx responses written ahead of hyper's), [`upgrade`] (a viewer
//! connection handed on after `101 Switching Protocols`).

#![forbid(unsafe_code)]

pub mod access_log;
pub mod cache;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod control;
pub mod demo;
pub mod error;
pub mod fields;
pub mod fuzzing;
pub mod ids;
pub mod interim;
pub mod limits;
pub mod metrics;
pub mod origin;
pub mod path;
pub mod priority;
pub mod proxy;
pub mod server;
pub mod store;
pub mod tail;
pub mod time;
pub mod tls;
pub mod upgrade;
pub mod wasm;

pub use server::{HostOptions, RunningHost};
