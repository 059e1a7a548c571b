//! An origin's addresses and their health: which address a request goes
//! to, active health checks, and passive ejection on connection failures.
//!
//! An origin with `addresses` has one [`Endpoint`] per address (else one,
//! its `domain_name`), each with its own keep-alive pool that connects to
//! that address while `Host` and TLS stay the origin's name. A request goes
//! to the healthy endpoint with the fewest requests outstanding (round
//! robin among equals); when none is healthy, to any (a health check that
//! is itself wrong must not take a site down). An endpoint a connection
//! to fails is ejected at once: with a `health_check`, until the checker
//! sees `healthy_threshold` passes in a row; without one, for
//! [`EJECTION`], which only moves requests to the origin's other addresses
//! (an origin group orders its members by what health checks say). The
//! checker asks each address `GET path` every
//! `interval`, and `unhealthy_threshold` failures in a row (no answer
//! within `timeout`, or a status not expected) mark it unhealthy.
//!
//! Endpoints outlive config snapshots: the fetcher hands the same one to
//! every snapshot that keeps its origin and address, so health and warm
//! connections carry across changes; a checker stops once no snapshot
//! holds its endpoint.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use http::Request;
use serde::{Deserialize, Serialize};

use super::{PoolClient, UpstreamBody};
use crate::config::{HealthCheck, Origin};

/// How long an address whose connection failed is left out, when its
/// origin has no health check to bring it back.
pub const EJECTION: Duration = Duration::from_secs(10);

/// One address of an origin, with its pool and health.
#[derive(Debug)]
pub struct Endpoint {
    /// The address as configured (`host:port`), or the origin's name.
    pub address: String,
    pub pool: PoolClient,
    /// Set by the checker (and cleared by an ejection) when the origin has
    /// a health check.
    healthy: AtomicBool,
    /// Milliseconds after `born` until which a passive ejection holds
    /// (origins without a health check); 0 for none.
    ejected_until: AtomicU64,
    born: Instant,
    checked: bool,
    /// The checker's passes in a row (an ejection starts them over).
    passes: AtomicU32,
    outstanding: AtomicUsize,
    checks_passed: AtomicU64,
    checks_failed: AtomicU64,
    ejections: AtomicU64,
}

impl Endpoint {
    pub(super) fn new(address: String, pool: PoolClient, checked: bool) -> Self {
        Self {
            address,
            pool,
            healthy: AtomicBool::new(true),
            ejected_until: AtomicU64::new(0),
            born: Instant::now(),
            checked,
            passes: AtomicU32::new(0),
            outstanding: AtomicUsize::new(0),
            checks_passed: AtomicU64::new(0),
            checks_failed: AtomicU64::new(0),
            ejections: AtomicU64::new(0),
        }
    }

    fn millis(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether requests may go here.
    pub fn is_healthy(&self) -> bool {
        if self.checked {
            self.healthy.load(Ordering::Acquire)
        } else {
            self.ejected_until.load(Ordering::Acquire) <= self.millis()
        }
    }

    /// A connection to the address failed: leave it out.
    pub fn eject(&self) {
        self.ejections.fetch_add(1, Ordering::Relaxed);
        if self.checked {
            self.passes.store(0, Ordering::Release);
            self.healthy.store(false, Ordering::Release);
        } else {
            let until = self.millis() + u64::try_from(EJECTION.as_millis()).unwrap_or(u64::MAX);
            self.ejected_until.store(until, Ordering::Release);
        }
    }

    /// Counts a request in flight here until the guard drops.
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Its state, as the API and metrics show it.
    pub fn report(&self) -> AddressHealth {
        AddressHealth {
            address: self.address.clone(),
            healthy: self.is_healthy(),
            checked: self.checked,
            outstanding: self.outstanding.load(Ordering::Relaxed) as u64,
            checks_passed: self.checks_passed.load(Ordering::Relaxed),
            checks_failed: self.checks_failed.load(Ordering::Relaxed),
            ejections: self.ejections.load(Ordering::Relaxed),
        }
    }
}

/// A request in flight at an endpoint.
#[derive(Debug)]
pub struct InFlight(Arc<Endpoint>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One address's health, as `GET /v1/distributions/{id}` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddressHealth {
    pub address: String,
    pub healthy: bool,
    /// An active health check watches it.
    pub checked: bool,
    pub outstanding: u64,
    pub checks_passed: u64,
    pub checks_failed: u64,
    /// Connection failures that took it out of rotation.
    pub ejections: u64,
}

/// An origin's endpoints, as one config snapshot serves them.
#[derive(Debug, Clone)]
pub struct OriginPools {
    endpoints: Vec<Arc<Endpoint>>,
    next: Arc<AtomicUsize>,
}

impl OriginPools {
    pub(super) fn new(endpoints: Vec<Arc<Endpoint>>) -> Self {
        Self {
            endpoints,
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn endpoints(&self) -> &[Arc<Endpoint>] {
        &self.endpoints
    }

    /// Whether its health check says no address is healthy (an origin
    /// without one is never known down: a group tries it in its turn).
    pub fn known_down(&self) -> bool {
        self.endpoints.iter().all(|e| e.checked && !e.is_healthy())
    }

    /// The endpoint for the next request, leaving out those `tried`
    /// (indexes): the healthy one with the fewest requests outstanding,
    /// round robin among equals; any, when none is healthy.
    pub fn pick(&self, tried: &[usize]) -> Option<(usize, &Arc<Endpoint>)> {
        let n = self.endpoints.len();
        if n == 1 {
            return (!tried.contains(&0)).then(|| (0, &self.endpoints[0]));
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let candidates = || {
            (0..n)
                .map(move |k| (start + k) % n)
                .filter(|i| !tried.contains(i))
        };
        let least = |healthy_only: bool| {
            candidates()
                .filter(|&i| !healthy_only || self.endpoints[i].is_healthy())
                .min_by_key(|&i| self.endpoints[i].outstanding.load(Ordering::Relaxed))
        };
        least(true)
            .or_else(|| least(false))
            .map(|i| (i, &self.endpoints[i]))
    }
}

/// Checks `endpoint` every interval while anything holds it.
pub(super) fn spawn_checker(endpoint: &Arc<Endpoint>, origin: &Origin, check: HealthCheck) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let weak: Weak<Endpoint> = Arc::downgrade(endpoint);
    let uri = http::Uri::builder()
        .scheme(origin.scheme.clone())
        .authority(origin.authority.clone())
        .path_and_query(check.path.clone())
        .build();
    let Ok(uri) = uri else {
        return;
    };
    let host = origin.host_header.clone();
    handle.spawn(async move {
        let mut failures = 0u32;
        loop {
            let Some(endpoint) = weak.upgrade() else {
                return;
            };
            let mut request = Request::new(UpstreamBody::Empty);
            *request.uri_mut() = uri.clone();
            request
                .headers_mut()
                .insert(http::header::HOST, host.clone());
            request.headers_mut().insert(
                http::header::USER_AGENT,
                http::HeaderValue::from_static("edge-health-check"),
            );
            let answered =
                tokio::time::timeout(check.timeout, endpoint.pool.request(request)).await;
            let passed = matches!(&answered, Ok(Ok(resp)) if check.passes(resp.status()));
            if passed {
                endpoint.checks_passed.fetch_add(1, Ordering::Relaxed);
                failures = 0;
                let passes = endpoint
                    .passes
                    .fetch_add(1, Ordering::AcqRel)
                    .saturating_add(1);
                if passes >= check.healthy_threshold
                    && !endpoint.healthy.swap(true, Ordering::AcqRel)
                {
                    tracing::info!(address = %endpoint.address, "origin address healthy");
                }
            } else {
                endpoint.checks_failed.fetch_add(1, Ordering::Relaxed);
                endpoint.passes.store(0, Ordering::Release);
                failures = failures.saturating_add(1);
                if failures >= check.unhealthy_threshold
                    && endpoint.healthy.swap(false, Ordering::AcqRel)
                {
                    tracing::warn!(address = %endpoint.address, "origin address unhealthy");
                }
            }
            drop(endpoint);
            tokio::time::sleep(check.interval).await;
        }
    });
}
