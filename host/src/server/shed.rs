//! Out of file descriptors: the accept loops shed the longest-idle viewer
//! connections instead of spinning or locking every new viewer out.
//!
//! Every viewer connection is [`Connections::register`]ed from its accept
//! to its end. When `accept` fails with `EMFILE`/`ENFILE`, the loop lets go
//! of its [`Reserve`] descriptor (so that the very next accept, or the
//! origin connection of a request already in flight, finds one free), asks
//! the [`SHED_BATCH`] connections that have been idle longest to close
//! ([`Connections::shed_idle`]: no request in flight, oldest activity
//! first), and tries again. With nothing to shed it
//! backs off ([`ACCEPT_BACKOFF`]) rather than spin on a listener that stays
//! readable. A connection with a request in flight is never shed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::deadline::Progress;
use crate::metrics::Metrics;

/// How many idle connections one exhausted accept sheds.
pub const SHED_BATCH: usize = 32;

/// How long an accept loop waits after a failed accept that shed nothing.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Whether an accept error is the process or the system running out of
/// descriptors (the one the loop can do something about).
pub fn is_descriptor_exhaustion(err: &std::io::Error) -> bool {
    // EMFILE (24) and ENFILE (23) on Linux and the BSDs.
    matches!(err.raw_os_error(), Some(23 | 24))
}

/// One connection as the registry sees it.
#[derive(Debug)]
struct Entry {
    accepted: Instant,
    /// Its IO's progress, once the connection has wrapped its IO (before
    /// that, during a TLS handshake or the wait for a first byte, it is idle
    /// since its accept).
    progress: OnceLock<Arc<Progress>>,
    shed: Notify,
}

impl Entry {
    /// Since when the connection has done nothing worth keeping it for, or
    /// `None` while a request is in flight.
    fn idle_since(&self) -> Option<Instant> {
        match self.progress.get() {
            None => Some(self.accepted),
            Some(progress) => progress.idle_since(),
        }
    }
}

/// The open viewer connections of one host.
#[derive(Debug)]
pub struct Connections {
    entries: Mutex<HashMap<u64, Arc<Entry>>>,
    next: AtomicU64,
    metrics: Arc<Metrics>,
}

impl Connections {
    /// An empty registry whose counts go to `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            entries: Mutex::default(),
            next: AtomicU64::new(0),
            metrics,
        })
    }

    /// Registers a connection just accepted; it leaves the registry when the
    /// guard drops.
    pub fn register(self: &Arc<Self>) -> Registered {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let entry = Arc::new(Entry {
            accepted: Instant::now(),
            progress: OnceLock::new(),
            shed: Notify::new(),
        });
        self.lock().insert(id, entry.clone());
        self.metrics.record_viewer_connection(true);
        Registered {
            connections: self.clone(),
            id,
            entry,
        }
    }

    /// Asks up to `n` of the connections idle longest to close; returns how
    /// many were asked.
    pub fn shed_idle(&self, n: usize) -> usize {
        let mut idle: Vec<(Instant, Arc<Entry>)> = self
            .lock()
            .values()
            .filter_map(|entry| entry.idle_since().map(|since| (since, entry.clone())))
            .collect();
        let n = n.min(idle.len());
        if n == 0 {
            return 0;
        }
        if n < idle.len() {
            idle.select_nth_unstable_by_key(n - 1, |(since, _)| *since);
        }
        for (_, entry) in &idle[..n] {
            // `notify_one` keeps the permit for a connection not yet waiting.
            entry.shed.notify_one();
        }
        self.metrics.record_connections_shed(n as u64);
        n
    }

    /// Notes an accept that failed for want of descriptors.
    pub fn note_exhausted(&self) {
        self.metrics.record_accept_exhausted();
    }

    /// Open viewer connections.
    #[cfg(test)]
    fn open(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Entry>>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A registered connection (see [`Connections::register`]).
#[derive(Debug)]
pub struct Registered {
    connections: Arc<Connections>,
    id: u64,
    entry: Arc<Entry>,
}

impl Registered {
    /// Tells the registry how the connection's IO is doing, once it is
    /// wrapped (the first call counts).
    pub fn track(&self, progress: &Arc<Progress>) {
        let _ = self.entry.progress.set(progress.clone());
    }

    /// Resolves when the connection is to be closed to free its descriptor.
    pub async fn shed(&self) {
        self.entry.shed.notified().await;
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.connections.lock().remove(&self.id);
        self.connections.metrics.record_viewer_connection(false);
    }
}

/// A descriptor held back for the moment the process runs out: released
/// when an accept fails, taken again once descriptors are free.
#[derive(Debug)]
pub struct Reserve(Option<std::fs::File>);

impl Reserve {
    pub fn new() -> Self {
        Self(Self::open())
    }

    fn open() -> Option<std::fs::File> {
        std::fs::File::open("/dev/null").ok()
    }

    /// Frees the held descriptor, if any.
    pub fn release(&mut self) {
        self.0 = None;
    }

    /// Takes a descriptor again if it was released (a no-op otherwise).
    pub fn refill(&mut self) {
        if self.0.is_none() {
            self.0 = Self::open();
        }
    }
}

impl Default for Reserve {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_longest_idle_connections_are_shed_and_busy_ones_kept() {
        let metrics = Arc::new(Metrics::default());
        let connections = Connections::new(metrics.clone());
        let oldest = connections.register();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let busy = connections.register();
        let (_io, progress) = super::super::deadline::Timed::new(tokio::io::empty());
        busy.track(&progress);
        let _in_flight = progress.request();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let newer = connections.register();
        assert_eq!(connections.open(), 3);

        // One to shed: the oldest idle one, not the busy one (older than
        // `newer` but with a request in flight).
        assert_eq!(connections.shed_idle(1), 1);
        tokio::time::timeout(Duration::from_secs(1), oldest.shed())
            .await
            .expect("the oldest idle connection is asked to close");
        drop(oldest);
        assert_eq!(connections.shed_idle(5), 1, "only `newer` is idle now too");
        tokio::time::timeout(Duration::from_secs(1), newer.shed())
            .await
            .expect("the next idle connection is asked to close");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), busy.shed())
                .await
                .is_err(),
            "a connection with a request in flight is never shed"
        );
        drop(newer);
        assert_eq!(connections.open(), 1);
        let text = metrics.render(0, 0, &[]);
        assert!(text.contains("edge_connections_shed_total 2"), "{text}");
        assert!(text.contains("edge_viewer_connections 1"), "{text}");
    }
}
