//! Process-wide counters, rendered as Prometheus text on `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    access_log_dropped: AtomicU64,
    viewer_connections: AtomicU64,
    connections_shed: AtomicU64,
    accept_exhausted: AtomicU64,
    /// What the cache cluster did (see [`crate::cluster`]).
    pub cluster: ClusterCounters,
    /// WebSockets the host relayed.
    pub websockets: WebSocketCounters,
    /// Each distribution's counters, by id.
    distributions: Mutex<BTreeMap<String, Arc<DistributionStats>>>,
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

    /// An access-log record dropped because the writer fell behind.
    pub fn record_access_log_drop(&self) {
        self.access_log_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// A viewer connection was accepted (`opened`) or ended.
    pub fn record_viewer_connection(&self, opened: bool) {
        if opened {
            self.viewer_connections.fetch_add(1, Ordering::Relaxed);
        } else {
            self.viewer_connections.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Idle viewer connections asked to close to free descriptors.
    pub fn record_connections_shed(&self, n: u64) {
        self.connections_shed.fetch_add(n, Ordering::Relaxed);
    }

    /// An accept that failed for want of file descriptors.
    pub fn record_accept_exhausted(&self) {
        self.accept_exhausted.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_config_revision(&self, revision: u64) {
        self.config_revision.store(revision, Ordering::Relaxed);
    }

    pub fn set_store_connected(&self, connected: bool) {
        self.store_connected
            .store(u64::from(connected), Ordering::Relaxed);
    }

    /// Prometheus text exposition, with the cache's current size and the
    /// hooks' counters.
    pub fn render(&self, cache_bytes: u64, cache_objects: u64, hooks: &[Arc<HookStats>]) -> String {
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
                "edge_access_log_dropped_total",
                "counter",
                "Access-log records dropped because the writer fell behind.",
                self.access_log_dropped.load(Ordering::Relaxed),
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
                "edge_viewer_connections",
                "gauge",
                "Open viewer connections (plain and TLS).",
                self.viewer_connections.load(Ordering::Relaxed),
            ),
            (
                "edge_connections_shed_total",
                "counter",
                "Idle viewer connections closed to free file descriptors.",
                self.connections_shed.load(Ordering::Relaxed),
            ),
            (
                "edge_accept_exhausted_total",
                "counter",
                "Accepts that failed because the process was out of file descriptors.",
                self.accept_exhausted.load(Ordering::Relaxed),
            ),
            (
                "edge_cluster_members",
                "gauge",
                "Live members of the cache cluster, this host included (0: not a member).",
                self.cluster.members.load(Ordering::Relaxed),
            ),
            (
                "edge_cluster_asked_total",
                "counter",
                "Misses sent to the key's owner in the cache cluster.",
                self.cluster.asked.load(Ordering::Relaxed),
            ),
            (
                "edge_cluster_fallbacks_total",
                "counter",
                "Asks of an owner that failed, so the origin was asked instead.",
                self.cluster.fallbacks.load(Ordering::Relaxed),
            ),
            (
                "edge_cluster_served_total",
                "counter",
                "Requests this host answered for other members of the cache cluster.",
                self.cluster.served.load(Ordering::Relaxed),
            ),
            (
                "edge_websockets_total",
                "counter",
                "WebSockets opened: handshakes the origin accepted with 101.",
                self.websockets.opened.load(Ordering::Relaxed),
            ),
            (
                "edge_websockets_open",
                "gauge",
                "WebSockets open now.",
                self.websockets.open.load(Ordering::Relaxed),
            ),
            (
                "edge_websockets_idle_closed_total",
                "counter",
                "WebSockets closed by the host after their behavior's idle timeout.",
                self.websockets.idle_closed.load(Ordering::Relaxed),
            ),
            (
                "edge_websocket_viewer_bytes_total",
                "counter",
                "Bytes viewers sent through WebSockets (to origins).",
                self.websockets.from_viewers.load(Ordering::Relaxed),
            ),
            (
                "edge_websocket_origin_bytes_total",
                "counter",
                "Bytes origins sent through WebSockets (to viewers).",
                self.websockets.from_origins.load(Ordering::Relaxed),
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
            write_metric(&mut out, name, kind, help, value);
        }
        render_process(&mut out);
        self.render_labelled(&mut out, hooks);
        out
    }
}

/// One unlabelled metric in the Prometheus text format: its help, type and
/// value.
pub fn write_metric(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

/// What the cache cluster did.
#[derive(Debug, Default)]
pub struct ClusterCounters {
    /// Live members, this host included (0: not a member).
    pub members: AtomicU64,
    /// Misses sent to their owner.
    pub asked: AtomicU64,
    /// Asks that failed (no answer, a broken one, or the owner's own
    /// error), so the origin was asked instead.
    pub fallbacks: AtomicU64,
    /// Requests this host answered for other members.
    pub served: AtomicU64,
}

/// What the host's WebSockets did.
#[derive(Debug, Default)]
pub struct WebSocketCounters {
    /// Opened (the origin answered 101).
    pub opened: AtomicU64,
    /// Open now.
    pub open: AtomicU64,
    /// Closed for passing no bytes within the idle timeout.
    pub idle_closed: AtomicU64,
    /// Bytes viewers sent.
    pub from_viewers: AtomicU64,
    /// Bytes origins sent.
    pub from_origins: AtomicU64,
}

/// The process's open descriptors and resident memory, by the names
/// Prometheus' client libraries give them (Linux; elsewhere nothing).
fn render_process(out: &mut String) {
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        // The directory's own descriptor is one of the entries.
        let open = dir.count().saturating_sub(1);
        let _ = writeln!(
            out,
            "# HELP process_open_fds Open file descriptors.\n# TYPE process_open_fds gauge\nprocess_open_fds {open}"
        );
    }
    let limit = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            limits
                .lines()
                .find(|line| line.starts_with("Max open files"))
                .and_then(|line| line.split_whitespace().nth(3))
                .and_then(|soft| soft.parse::<u64>().ok())
        });
    if let Some(limit) = limit {
        let _ = writeln!(
            out,
            "# HELP process_max_fds Maximum open file descriptors.\n# TYPE process_max_fds gauge\nprocess_max_fds {limit}"
        );
    }
    let resident = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|kib| kib.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        });
    if let Some(kib) = resident {
        let bytes = kib * 1024;
        let _ = writeln!(
            out,
            "# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {bytes}"
        );
    }
}

/// Requests and 5xx responses of a staging arm per second, over a window.
#[derive(Debug)]
pub struct ArmStats {
    buckets: Box<[Bucket]>,
}

#[derive(Debug, Default)]
struct Bucket {
    /// The Unix second this bucket counts.
    second: AtomicU64,
    requests: AtomicU64,
    errors: AtomicU64,
}

impl ArmStats {
    /// Counts over the last `window_s` seconds.
    pub fn new(window_s: u64) -> Self {
        let len = usize::try_from(window_s.max(1)).unwrap_or(1);
        Self {
            buckets: (0..len).map(|_| Bucket::default()).collect(),
        }
    }

    /// Counts one response served at Unix second `now`.
    pub fn record(&self, now: u64, error: bool) {
        let len = self.buckets.len() as u64;
        let bucket = &self.buckets[usize::try_from(now % len).unwrap_or(0)];
        let second = bucket.second.load(Ordering::Acquire);
        if second != now
            && bucket
                .second
                .compare_exchange(second, now, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            // This bucket last counted an older second: start it afresh. A
            // response counted by another thread in between may be lost; the
            // gate needs rates, not exact totals.
            bucket.requests.store(0, Ordering::Release);
            bucket.errors.store(0, Ordering::Release);
        }
        bucket.requests.fetch_add(1, Ordering::AcqRel);
        if error {
            bucket.errors.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// `(requests, errors)` over the window ending at Unix second `now`.
    pub fn totals(&self, now: u64) -> (u64, u64) {
        let len = self.buckets.len() as u64;
        self.buckets
            .iter()
            .filter(|b| {
                let s = b.second.load(Ordering::Acquire);
                s <= now && now - s < len
            })
            .fold((0, 0), |(r, e), b| {
                (
                    r + b.requests.load(Ordering::Acquire),
                    e + b.errors.load(Ordering::Acquire),
                )
            })
    }
}

/// Upper bounds of the latency histograms' buckets, in microseconds.
const BUCKETS_US: [u64; 14] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
    5_000_000,
];

/// A latency histogram in Prometheus' shape (cumulative buckets in
/// seconds, a sum and a count), updated with relaxed atomics.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS_US.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        if let Some(i) = BUCKETS_US.iter().position(|&le| us <= le) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// The histogram's lines for one label set (`labels` without braces).
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (le, n) in BUCKETS_US.iter().zip(&self.buckets) {
            cumulative += n.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels},le=\"{}\"}} {cumulative}",
                Seconds(*le)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum{{{labels}}} {}",
            Seconds(self.sum_us.load(Ordering::Relaxed))
        );
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// Microseconds printed as seconds.
struct Seconds(u64);

impl std::fmt::Display for Seconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:06}", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

/// A label value with `\` and `"` escaped.
pub fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
}

/// One distribution's counters: responses by arm, cache result and status
/// class, and the origins' response-head latency. Kept across config
/// changes while its origins stay the same.
#[derive(Debug)]
pub struct DistributionStats {
    id: String,
    /// `[arm][cache][class]`: arm 0 primary, 1 staging.
    responses: [[[AtomicU64; 5]; 4]; 2],
    /// By origin, in the config's order.
    origins: Vec<(String, Histogram)>,
}

impl DistributionStats {
    fn new(id: &str, origins: &[String]) -> Self {
        Self {
            id: id.to_owned(),
            responses: Default::default(),
            origins: origins
                .iter()
                .map(|o| (o.clone(), Histogram::default()))
                .collect(),
        }
    }

    /// A response to a viewer of this distribution.
    pub fn record(&self, staging: bool, cache: CacheStatus, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.responses[usize::from(staging)][cache as usize][class].fetch_add(1, Ordering::Relaxed);
    }

    /// How long origin `index` (in the config's order) took to answer.
    pub fn origin_latency(&self, index: usize, took: Duration) {
        if let Some((_, histogram)) = self.origins.get(index) {
            histogram.observe(took);
        }
    }
}

/// One hook name's counters, by event (every version of the name together).
#[derive(Debug)]
pub struct HookStats {
    name: String,
    invocations: [AtomicU64; 4],
    errors: [AtomicU64; 4],
    /// Invocations handed to the lower-priority hook threads.
    offloaded: [AtomicU64; 4],
    /// Instantiation to the export's return (wall time; hooks are CPU-bound,
    /// and their CPU budget is enforced apart from this).
    duration: [Histogram; 4],
    /// A fresh instance's creation.
    instantiate: Histogram,
    /// CPU time per invocation, when the runtime measures it.
    cpu: [Histogram; 4],
    /// `fetch` requests, by [`FETCH_OUTCOMES`].
    fetches: [AtomicU64; 3],
    /// `fetch` requests through the shared cache: hits, then misses.
    fetch_cache: [AtomicU64; 2],
}

/// How a hook's `fetch` request ended: an answer came, the host refused it
/// (not permitted, not declared, over the count, invalid), or it failed
/// (timeout, too large, the server unreachable).
pub const FETCH_OUTCOMES: [&str; 3] = ["answered", "refused", "failed"];

/// What one hook invocation took.
#[derive(Debug, Clone, Copy)]
pub struct Invocation {
    /// Creating the fresh instance, when it was created.
    pub instantiate: Option<Duration>,
    /// Instantiation to the export's return (wall time).
    pub took: Duration,
    /// The CPU time used, when measured.
    pub cpu: Option<Duration>,
    pub ok: bool,
}

/// Event names in the order hook counters keep them.
const EVENTS: [&str; 4] = [
    "viewer-request",
    "origin-request",
    "origin-response",
    "viewer-response",
];

impl HookStats {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            invocations: Default::default(),
            errors: Default::default(),
            offloaded: Default::default(),
            duration: Default::default(),
            instantiate: Histogram::default(),
            cpu: Default::default(),
            fetches: Default::default(),
            fetch_cache: Default::default(),
        }
    }

    /// A `fetch` request that ended as `FETCH_OUTCOMES[outcome]`.
    pub fn record_fetch(&self, outcome: usize) {
        if let Some(n) = self.fetches.get(outcome) {
            n.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A `fetch` request the shared cache answered (`hit`) or sent on.
    pub fn record_fetch_cache(&self, hit: bool) {
        self.fetch_cache[usize::from(!hit)].fetch_add(1, Ordering::Relaxed);
    }

    /// An invocation of event `event` handed to the hook threads.
    pub fn record_offload(&self, event: usize) {
        if let Some(n) = self.offloaded.get(event) {
            n.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One invocation of event `event` (0-3, in WIT order).
    pub fn record(&self, event: usize, run: Invocation) {
        let Some(invocations) = self.invocations.get(event) else {
            return;
        };
        invocations.fetch_add(1, Ordering::Relaxed);
        if !run.ok {
            self.errors[event].fetch_add(1, Ordering::Relaxed);
        }
        self.duration[event].observe(run.took);
        if let Some(instantiate) = run.instantiate {
            self.instantiate.observe(instantiate);
        }
        if let Some(cpu) = run.cpu {
            self.cpu[event].observe(cpu);
        }
    }
}

impl Metrics {
    /// The counters of distribution `id` with `origins` (new ones when its
    /// origins changed).
    pub fn distribution(&self, id: &str, origins: &[String]) -> Arc<DistributionStats> {
        let mut map = self
            .distributions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(stats) = map.get(id)
            && stats.origins.iter().map(|(o, _)| o).eq(origins.iter())
        {
            return stats.clone();
        }
        let stats = Arc::new(DistributionStats::new(id, origins));
        map.insert(id.to_owned(), stats.clone());
        stats
    }

    /// Forgets the counters of distributions that no longer exist.
    pub fn retain_distributions(&self, keep: impl Fn(&str) -> bool) {
        self.distributions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|id, _| keep(id));
    }

    /// Every distribution's response counters by deployment arm, for the
    /// console's live rates: `{"distributions": [{"id", "arms": {"primary":
    /// {"requests", "hits", "errors_4xx", "errors_5xx"}, "staging": {..}}}]}`.
    pub fn traffic_json(&self) -> serde_json::Value {
        let distributions: Vec<serde_json::Value> = self
            .distributions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .map(|d| {
                let arm = |by_cache: &[[AtomicU64; 5]; 4]| {
                    let count = |cache: Option<CacheStatus>, class: Option<usize>| -> u64 {
                        by_cache
                            .iter()
                            .enumerate()
                            .filter(|(c, _)| cache.is_none_or(|want| want as usize == *c))
                            .flat_map(|(_, classes)| classes.iter().enumerate())
                            .filter(|(k, _)| class.is_none_or(|want| want == *k))
                            .map(|(_, n)| n.load(Ordering::Relaxed))
                            .sum()
                    };
                    serde_json::json!({
                        "requests": count(None, None),
                        "hits": count(Some(CacheStatus::Hit), None)
                            + count(Some(CacheStatus::RefreshHit), None),
                        "errors_4xx": count(None, Some(3)),
                        "errors_5xx": count(None, Some(4)),
                    })
                };
                serde_json::json!({
                    "id": d.id,
                    "arms": {
                        "primary": arm(&d.responses[0]),
                        "staging": arm(&d.responses[1]),
                    },
                })
            })
            .collect();
        serde_json::json!({ "distributions": distributions })
    }

    /// Per-distribution and per-hook series.
    fn render_labelled(&self, out: &mut String, hooks: &[Arc<HookStats>]) {
        let distributions: Vec<Arc<DistributionStats>> = self
            .distributions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        out.push_str("# HELP edge_distribution_responses_total Viewer responses by distribution, deployment arm, cache result and status class.\n");
        out.push_str("# TYPE edge_distribution_responses_total counter\n");
        for d in &distributions {
            for (arm, by_cache) in ["primary", "staging"].iter().zip(&d.responses) {
                for cache in CacheStatus::ALL {
                    for (class, n) in by_cache[cache as usize].iter().enumerate() {
                        let n = n.load(Ordering::Relaxed);
                        if n > 0 {
                            let _ = writeln!(
                                out,
                                "edge_distribution_responses_total{{distribution=\"{}\",arm=\"{arm}\",cache=\"{}\",class=\"{}xx\"}} {n}",
                                label(&d.id),
                                cache.as_str(),
                                class + 1
                            );
                        }
                    }
                }
            }
        }
        out.push_str("# HELP edge_origin_response_seconds Time from sending a request to an origin to its response head.\n");
        out.push_str("# TYPE edge_origin_response_seconds histogram\n");
        for d in &distributions {
            for (origin, histogram) in &d.origins {
                let labels = format!(
                    "distribution=\"{}\",origin=\"{}\"",
                    label(&d.id),
                    label(origin)
                );
                histogram.render(out, "edge_origin_response_seconds", &labels);
            }
        }
        out.push_str("# HELP edge_hook_invocations_total Hook invocations by hook and event.\n");
        out.push_str("# TYPE edge_hook_invocations_total counter\n");
        for h in hooks {
            for (event, n) in EVENTS.iter().zip(&h.invocations) {
                let _ = writeln!(
                    out,
                    "edge_hook_invocations_total{{hook=\"{}\",event=\"{event}\"}} {}",
                    label(&h.name),
                    n.load(Ordering::Relaxed)
                );
            }
        }
        out.push_str("# HELP edge_hook_offloaded_total Hook invocations handed to the lower-priority hook threads (they ran past 250 µs of CPU, or their event's recent ones did or failed).\n");
        out.push_str("# TYPE edge_hook_offloaded_total counter\n");
        for h in hooks {
            for (event, n) in EVENTS.iter().zip(&h.offloaded) {
                let _ = writeln!(
                    out,
                    "edge_hook_offloaded_total{{hook=\"{}\",event=\"{event}\"}} {}",
                    label(&h.name),
                    n.load(Ordering::Relaxed)
                );
            }
        }
        out.push_str("# HELP edge_hook_fetches_total Requests hooks sent with fetch, by how they ended (answered, refused by the host, failed).\n");
        out.push_str("# TYPE edge_hook_fetches_total counter\n");
        for h in hooks {
            for (outcome, n) in FETCH_OUTCOMES.iter().zip(&h.fetches) {
                let n = n.load(Ordering::Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "edge_hook_fetches_total{{hook=\"{}\",outcome=\"{outcome}\"}} {n}",
                        label(&h.name),
                    );
                }
            }
        }
        out.push_str("# HELP edge_hook_fetch_cache_total Requests hooks sent with fetch through the shared cache, by whether it answered them (hit) or sent them on (miss).\n");
        out.push_str("# TYPE edge_hook_fetch_cache_total counter\n");
        for h in hooks {
            for (result, n) in ["hit", "miss"].iter().zip(&h.fetch_cache) {
                let n = n.load(Ordering::Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "edge_hook_fetch_cache_total{{hook=\"{}\",result=\"{result}\"}} {n}",
                        label(&h.name),
                    );
                }
            }
        }
        out.push_str("# HELP edge_hook_errors_total Hook invocations that failed (trap, limit, invalid output).\n");
        out.push_str("# TYPE edge_hook_errors_total counter\n");
        for h in hooks {
            for (event, n) in EVENTS.iter().zip(&h.errors) {
                let _ = writeln!(
                    out,
                    "edge_hook_errors_total{{hook=\"{}\",event=\"{event}\"}} {}",
                    label(&h.name),
                    n.load(Ordering::Relaxed)
                );
            }
        }
        out.push_str("# HELP edge_hook_duration_seconds One invocation, from instantiation to the export's return.\n");
        out.push_str("# TYPE edge_hook_duration_seconds histogram\n");
        for h in hooks {
            for (event, histogram) in EVENTS.iter().zip(&h.duration) {
                let labels = format!("hook=\"{}\",event=\"{event}\"", label(&h.name));
                histogram.render(out, "edge_hook_duration_seconds", &labels);
            }
        }
        out.push_str(
            "# HELP edge_hook_cpu_seconds CPU time of one invocation, instantiation included.\n",
        );
        out.push_str("# TYPE edge_hook_cpu_seconds histogram\n");
        for h in hooks {
            for (event, histogram) in EVENTS.iter().zip(&h.cpu) {
                let labels = format!("hook=\"{}\",event=\"{event}\"", label(&h.name));
                histogram.render(out, "edge_hook_cpu_seconds", &labels);
            }
        }
        out.push_str(
            "# HELP edge_hook_instantiate_seconds Creating a fresh instance for one invocation.\n",
        );
        out.push_str("# TYPE edge_hook_instantiate_seconds histogram\n");
        for h in hooks {
            let labels = format!("hook=\"{}\"", label(&h.name));
            h.instantiate
                .render(out, "edge_hook_instantiate_seconds", &labels);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_count_a_sliding_window() {
        let stats = ArmStats::new(10);
        for s in 100..110 {
            stats.record(s, s % 2 == 0);
        }
        assert_eq!(stats.totals(109), (10, 5));
        // At 115 the window is 106..=115: four old seconds and the new one.
        stats.record(115, true);
        assert_eq!(stats.totals(115), (5, 3));
        assert_eq!(stats.totals(200), (0, 0));
    }
}
