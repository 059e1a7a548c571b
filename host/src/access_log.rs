//! Access logs: one JSON line per viewer request, with CloudFront's standard
//! log fields, written by a thread of its own off the request path.
//!
//! A distribution opts in with `"logging": {"enabled": true}` in its config;
//! the host writes to `--access-log` (a file, appended to, or `-` for
//! stdout). A record is finished when the response body has been sent (or
//! the viewer went away), so `sc_bytes` and `time_taken` are what the viewer
//! got. Records wait in a bounded queue; when the writer falls behind, new
//! records are dropped and counted (`edge_access_log_dropped_total`), never
//! waited for.

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Instant, SystemTime};

use serde::Serialize;

use crate::metrics::Metrics;

/// Records that may wait for the writer.
const QUEUE: usize = 65_536;

/// One viewer request, as the log line carries it (CloudFront's standard log
/// fields in snake case, absent ones `null`, plus `distribution_id`, `arm`,
/// `origin` and `hook_time_ms`).
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// UTC, `YYYY-MM-DD` and `HH:MM:SS`, when the response was done.
    pub date: String,
    pub time: String,
    /// The host that served it (`--host-id`).
    pub edge_id: String,
    /// Body bytes sent to the viewer.
    pub sc_bytes: u64,
    pub c_ip: String,
    pub cs_method: String,
    /// The distribution's own domain name.
    pub cs_host: String,
    pub cs_uri_stem: String,
    pub sc_status: u16,
    pub cs_referer: Option<String>,
    pub cs_user_agent: Option<String>,
    pub cs_uri_query: Option<String>,
    /// Only with `"include_cookies": true`.
    pub cs_cookie: Option<String>,
    /// `Hit`, `RefreshHit`, `Miss`, `Error` (as `x-cache`).
    pub result_type: &'static str,
    pub request_id: String,
    /// The `Host` the viewer sent.
    pub host_header: String,
    /// `http` or `https`.
    pub cs_protocol: &'static str,
    pub cs_protocol_version: String,
    /// Seconds from the request's arrival to its last byte sent.
    pub time_taken: f64,
    pub distribution_id: String,
    /// `primary` or `staging`.
    pub arm: &'static str,
    /// The origin or origin group the request was routed to.
    pub origin: Option<String>,
    /// Milliseconds spent in hooks.
    pub hook_time_ms: f64,
    /// Bytes the viewer sent through a WebSocket (whose `sc_bytes` are the
    /// bytes the origin sent it, and `time_taken` its life); `null` for
    /// other requests.
    pub cs_bytes: Option<u64>,
}

impl Record {
    /// Stamps the record done now: its date, time and `time_taken` since
    /// `started`.
    pub fn done(&mut self, started: Instant) {
        self.time_taken = started.elapsed().as_secs_f64();
        let now = crate::time::rfc3339(SystemTime::now());
        if let Some((date, time)) = now.trim_end_matches('Z').split_once('T') {
            self.date = date.to_owned();
            self.time = time.to_owned();
        }
    }
}

/// Where records go.
#[derive(Debug)]
pub struct AccessLog {
    queue: SyncSender<Record>,
    metrics: Arc<Metrics>,
}

impl AccessLog {
    /// Opens `destination` (a file, appended to, or `-` for stdout) and starts
    /// the writer thread.
    pub fn open(destination: &Path, metrics: Arc<Metrics>) -> std::io::Result<Arc<Self>> {
        let out: Box<dyn std::io::Write + Send> = if destination == Path::new("-") {
            Box::new(std::io::stdout())
        } else {
            Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(destination)?,
            )
        };
        let (queue, records) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("edge-access-log".into())
            .spawn(move || write_records(&records, out))?;
        Ok(Arc::new(Self { queue, metrics }))
    }

    /// Queues a record; drops (and counts) it when the queue is full.
    pub fn send(&self, record: Record) {
        match self.queue.try_send(record) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.metrics.record_access_log_drop();
            }
        }
    }
}

/// Writes until every sender is gone, flushing whenever the queue is empty.
fn write_records(records: &Receiver<Record>, out: Box<dyn std::io::Write + Send>) {
    let mut out = std::io::BufWriter::with_capacity(64 << 10, out);
    while let Ok(first) = records.recv() {
        let mut next = Some(first);
        while let Some(record) = next {
            if serde_json::to_writer(&mut out, &record).is_err() || out.write_all(b"\n").is_err() {
                return;
            }
            next = records.try_recv().ok();
        }
        if out.flush().is_err() {
            return;
        }
    }
}

/// A record waiting for its response to finish.
#[derive(Debug)]
pub struct Pending {
    pub record: Record,
    pub started: Instant,
    pub log: Arc<AccessLog>,
}

impl Pending {
    /// Completes the record with what was sent and queues it.
    pub fn finish(mut self, bytes: u64) {
        self.record.sc_bytes = bytes;
        self.record.done(self.started);
        self.log.send(self.record);
    }

    /// Completes a WebSocket's record when it closed: the bytes each side
    /// sent through it.
    pub fn finish_tunnel(mut self, to_viewer: u64, from_viewer: u64) {
        self.record.cs_bytes = Some(from_viewer);
        self.finish(to_viewer);
    }
}
