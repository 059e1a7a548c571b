//! What one request carries through the phases: its context, the request as
//! the phases change it, and a trip to the origin.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use http::HeaderValue;

use crate::access_log;
use crate::cache::flight::FlightGuard;
use crate::cache::{CacheStatus, CachedObject};
use crate::interim::InterimSender;
use crate::metrics::{ArmStats, DistributionStats};
use crate::wasm::RequestHooks;

use super::routing::ServedDistribution;

/// Per-request state the phases fill in and [`super::respond`] reads.
pub(super) struct RequestCtx {
    pub request_id: String,
    pub client: SocketAddr,
    pub cache_status: CacheStatus,
    /// The arm phase's choice: served by the staging distribution.
    pub staging: bool,
    /// The staging arm's counters, when an automatic gate watches it.
    pub gate: Option<Arc<ArmStats>>,
    /// The sticky cookie to set on the response.
    pub sticky: Option<HeaderValue>,
    /// The distribution the viewer asked for (the primary of a staging arm).
    pub primary_id: Option<Arc<str>>,
    /// When the request arrived.
    pub started: Instant,
    /// Whether it came over TLS.
    pub tls: bool,
    /// Microseconds spent in hooks.
    hook_micros: AtomicU64,
    /// The access-log record, when the distribution logs or `edge tail`
    /// watches.
    pub log: Option<Box<access_log::Record>>,
    /// The record goes to the access log (the distribution logs).
    pub log_to_file: bool,
    /// The counters of the distribution the viewer asked for.
    pub stats: Option<Arc<DistributionStats>>,
    /// The tags of the stored object that answered, or of the answer on its
    /// way to be stored (a member of the cache cluster passes them on).
    pub tags: Option<Arc<[Arc<str>]>>,
    /// Where the origin's 1xx responses go on their way to the viewer (an
    /// HTTP/1.1 viewer's connection).
    pub interim: Option<InterimSender>,
    /// The hook instances that serve the request's later events.
    pub hooks: RequestHooks,
    /// The WebSocket the origin accepted, opened once its 101 is out.
    pub tunnel: Option<super::relay::Tunnel>,
    /// A gRPC call: errors are answered with a gRPC status, and the
    /// origin is told the caller takes trailers (`te: trailers`).
    pub grpc: bool,
}

impl RequestCtx {
    pub fn new(client: SocketAddr, tls: bool) -> Self {
        Self {
            request_id: crate::ids::request_id(),
            client,
            cache_status: CacheStatus::Miss,
            staging: false,
            gate: None,
            sticky: None,
            primary_id: None,
            started: Instant::now(),
            tls,
            hook_micros: AtomicU64::new(0),
            log: None,
            log_to_file: false,
            stats: None,
            tags: None,
            interim: None,
            hooks: RequestHooks::default(),
            tunnel: None,
            grpc: false,
        }
    }

    /// Adds the time a hook took.
    pub fn add_hook_time(&self, since: Instant) {
        let micros = u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.hook_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Milliseconds spent in hooks so far.
    pub fn hook_millis(&self) -> f64 {
        self.hook_micros.load(Ordering::Relaxed) as f64 / 1000.0
    }

    /// The arm serving the request, as keys and logs name it.
    pub fn arm(&self) -> &'static str {
        if self.staging { "staging" } else { "primary" }
    }
}

pub(super) use crate::wasm::stage::{Decision, Exchange};

/// A request on its way to the origin, and what the cache knows of it.
pub(super) struct Trip<'a> {
    pub dist: &'a Arc<ServedDistribution>,
    /// The host the viewer asked for (lower-case, no port).
    pub host: &'a str,
    /// The behavior's index in the distribution.
    pub index: usize,
    /// The viewer's request (after the viewer-request hook).
    pub ex: &'a Exchange,
    /// The request the origin will see.
    pub out: Exchange,
    /// The base key of the resource, for a request whose response may be stored.
    pub base: Option<Arc<str>>,
    /// The stale object to revalidate, or to serve on an origin error.
    pub stale: Option<Arc<CachedObject>>,
    /// This request leads the fetch for `key`.
    pub guard: Option<FlightGuard>,
}
