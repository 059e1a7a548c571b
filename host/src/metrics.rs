//! Process-wide counters, rendered as Prometheus text on `GET /metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::cache::CacheStatus;

/// Counters updated on the request path with relaxed atomics (no locks).
#[derive(Debug, Default)]
pub struct Metrics {
    by_cache_status: [AtomicU64; 4],
    by_status_class: [AtomicU64; 5],
    origin_requests: AtomicU64,
    origin_errors: AtomicU64,
    config_revision: AtomicU64,
    /// 1 while the config store answers (always 1 for the embedded store).
    store_connected: AtomicU64,
    staging_responses: AtomicU64,
    staging_errors: AtomicU64,
}

impl Metrics {
    pub fn record_response(&self, cache: CacheStatus, status: u16) {
        self.by_cache_status[cache as usize].fetch_add(1, Ordering::Relaxed);
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.by_status_class[class].fetch_add(1, Ordering::Relaxed);
    }

    /// A response served by a staging distribution through a policy.
    pub fn record_staging_response(&self, status: u16) {
        self.staging_responses.fetch_add(1, Ordering::Relaxed);
        if status >= 500 {
            self.staging_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn record_origin_request(&self) {
        self.origin_requests.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_origin_error(&self) {
        self.origin_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_config_revision(&self, revision: u64) {
        self.config_revision.store(revision, Ordering::Relaxed);
    }

    pub fn set_store_connected(&self, connected: bool) {
        self.store_connected
            .store(u64::from(connected), Ordering::Relaxed);
    }

    /// Prometheus text exposition, with the cache's current size.
    pub fn render(&self, cache_bytes: u64, cache_objects: u64) -> String {
        let mut out = String::with_capacity(1024);
        out.push_str("# HELP edge_requests_total Viewer responses by cache result.\n");
        out.push_str("# TYPE edge_requests_total counter\n");
        for status in CacheStatus::ALL {
            let _ = writeln!(
                out,
                "edge_requests_total{{cache=\"{}\"}} {}",
                status.as_str(),
                self.by_cache_status[status as usize].load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP edge_responses_total Viewer responses by status class.\n");
        out.push_str("# TYPE edge_responses_total counter\n");
        for (i, n) in self.by_status_class.iter().enumerate() {
            let _ = writeln!(
                out,
                "edge_responses_total{{class=\"{}xx\"}} {}",
                i + 1,
                n.load(Ordering::Relaxed)
            );
        }
        let gauges = [
            (
                "edge_origin_requests_total",
                "counter",
                "Requests sent to origins.",
                self.origin_requests.load(Ordering::Relaxed),
            ),
            (
                "edge_origin_errors_total",
                "counter",
                "Origin fetches that failed (connect, timeout, protocol).",
                self.origin_errors.load(Ordering::Relaxed),
            ),
            (
                "edge_staging_responses_total",
                "counter",
                "Responses served by staging distributions through continuous-deployment policies.",
                self.staging_responses.load(Ordering::Relaxed),
            ),
            (
                "edge_staging_errors_total",
                "counter",
                "Staging responses with a 5xx status.",
                self.staging_errors.load(Ordering::Relaxed),
            ),
            (
                "edge_cache_bytes",
                "gauge",
                "Bytes held by the shared cache.",
                cache_bytes,
            ),
            (
                "edge_cache_objects",
                "gauge",
                "Objects held by the shared cache.",
                cache_objects,
            ),
            (
                "edge_config_revision",
                "gauge",
                "Store revision of the config being served.",
                self.config_revision.load(Ordering::Relaxed),
            ),
            (
                "edge_store_connected",
                "gauge",
                "1 while the config store answers; 0 while the host serves its last snapshot without it.",
                self.store_connected.load(Ordering::Relaxed),
            ),
        ];
        for (name, kind, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        out
    }
}
