//! Live lines for `edge tail`: hook log lines and access records, handed to
//! the control API's watchers as they happen.
//!
//! Nothing is built while no one watches: the request path asks
//! [`TailHub::watching`] (one atomic load) first. Lines go through a bounded
//! broadcast channel; a watcher that falls behind loses the oldest and is
//! told how many ([`Next::Dropped`]), and never slows a request. Several
//! watchers may watch at once, each with its own [`Filter`].

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;
use tokio::sync::broadcast;

use crate::access_log::Record;

/// Lines a watcher may fall behind by before it loses some.
pub const CAPACITY: usize = 1024;

/// One line of `edge tail`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TailEvent {
    /// A line a hook logged (or printed), or the failure that ended it.
    Log {
        /// RFC 3339.
        time: String,
        distribution: String,
        request_id: String,
        hook: String,
        event: &'static str,
        line: String,
    },
    /// A viewer request, when its response head was sent (the access log's
    /// fields; `time_taken` up to the head).
    Access(Box<Record>),
}

impl TailEvent {
    fn distribution(&self) -> &str {
        match self {
            Self::Log { distribution, .. } => distribution,
            Self::Access(record) => &record.distribution_id,
        }
    }
}

/// What a watcher is shown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only this distribution's lines.
    pub distribution: Option<String>,
    /// Only this hook's log lines (no access records).
    pub hook: Option<String>,
    /// Only access records with this status (`503`) or class (`5xx`); no
    /// log lines.
    pub status: Option<StatusFilter>,
}

/// A status, or a class of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    Exact(u16),
    Class(u16),
}

impl StatusFilter {
    /// `503` or `5xx`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not a status (503) or a class (5xx)");
        let lower = text.to_ascii_lowercase();
        if let Some(class) = lower.strip_suffix("xx") {
            let class: u16 = class.parse().map_err(|_| bad())?;
            return if (1..=5).contains(&class) {
                Ok(Self::Class(class))
            } else {
                Err(bad())
            };
        }
        let status: u16 = lower.parse().map_err(|_| bad())?;
        if (100..=599).contains(&status) {
            Ok(Self::Exact(status))
        } else {
            Err(bad())
        }
    }

    fn matches(self, status: u16) -> bool {
        match self {
            Self::Exact(s) => s == status,
            Self::Class(c) => status / 100 == c,
        }
    }
}

impl Filter {
    pub fn matches(&self, event: &TailEvent) -> bool {
        if self
            .distribution
            .as_deref()
            .is_some_and(|d| d != event.distribution())
        {
            return false;
        }
        match event {
            TailEvent::Log { hook, .. } => {
                self.status.is_none() && self.hook.as_deref().is_none_or(|h| h == hook)
            }
            TailEvent::Access(record) => {
                self.hook.is_none() && self.status.is_none_or(|s| s.matches(record.sc_status))
            }
        }
    }
}

/// Where the request path hands lines to the watchers.
#[derive(Debug)]
pub struct TailHub {
    sender: broadcast::Sender<Arc<TailEvent>>,
    watchers: AtomicUsize,
}

impl Default for TailHub {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(CAPACITY).0,
            watchers: AtomicUsize::new(0),
        }
    }
}

impl TailHub {
    /// Whether anyone watches: ask before building a line.
    pub fn watching(&self) -> bool {
        self.watchers.load(Ordering::Relaxed) > 0
    }

    /// Hands `event` to the watchers (lost when none watches).
    pub fn publish(&self, event: TailEvent) {
        if self.watching() {
            let _ = self.sender.send(Arc::new(event));
        }
    }

    /// A new watcher, seeing what is published from now on.
    pub fn watch(self: &Arc<Self>) -> Watcher {
        self.watchers.fetch_add(1, Ordering::Relaxed);
        Watcher {
            hub: self.clone(),
            receiver: self.sender.subscribe(),
        }
    }
}

/// One watcher; it stops counting as one when dropped.
#[derive(Debug)]
pub struct Watcher {
    hub: Arc<TailHub>,
    receiver: broadcast::Receiver<Arc<TailEvent>>,
}

/// What a watcher gets next.
#[derive(Debug)]
pub enum Next {
    Event(Arc<TailEvent>),
    /// This many lines were lost: the watcher fell behind.
    Dropped(u64),
}

impl Watcher {
    pub async fn next(&mut self) -> Next {
        loop {
            match self.receiver.recv().await {
                Ok(event) => return Next::Event(event),
                Err(broadcast::error::RecvError::Lagged(n)) => return Next::Dropped(n),
                // The hub lives as long as any watcher: never closed.
                Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.hub.watchers.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(distribution: &str, hook: &str) -> TailEvent {
        TailEvent::Log {
            time: String::new(),
            distribution: distribution.to_owned(),
            request_id: "r".to_owned(),
            hook: hook.to_owned(),
            event: "viewer-request",
            line: "hello".to_owned(),
        }
    }

    #[tokio::test]
    async fn nothing_is_sent_without_a_watcher_and_a_slow_one_is_told_what_it_lost() {
        let hub = Arc::new(TailHub::default());
        assert!(!hub.watching());
        hub.publish(log("E1", "h"));
        let mut watcher = hub.watch();
        assert!(hub.watching());
        for _ in 0..CAPACITY + 10 {
            hub.publish(log("E1", "h"));
        }
        assert!(matches!(watcher.next().await, Next::Dropped(10)));
        assert!(matches!(watcher.next().await, Next::Event(_)));
        drop(watcher);
        assert!(!hub.watching());
    }

    #[test]
    fn filters_pick_distribution_hook_and_status() {
        let by_hook = Filter {
            hook: Some("auth".into()),
            ..Filter::default()
        };
        assert!(by_hook.matches(&log("E1", "auth")));
        assert!(!by_hook.matches(&log("E1", "other")));
        let by_dist = Filter {
            distribution: Some("E2".into()),
            ..Filter::default()
        };
        assert!(!by_dist.matches(&log("E1", "auth")));
        let errors = Filter {
            status: Some(StatusFilter::parse("5xx").expect("class")),
            ..Filter::default()
        };
        assert!(!errors.matches(&log("E1", "auth")));
        assert_eq!(StatusFilter::parse("503"), Ok(StatusFilter::Exact(503)));
        assert!(StatusFilter::parse("6xx").is_err());
        assert!(StatusFilter::parse("abc").is_err());
    }
}
