//! Request collapsing: at most one origin fetch per cache key at a time. The
//! first miss leads; concurrent misses for the key follow, waiting for the
//! leader to land, then look in the cache again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

/// How a leader's fetch ended, as its followers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Landing {
    /// Still fetching.
    Pending,
    /// The response was stored: look again and it is there.
    Stored,
    /// The response may not be stored: go to the origin without waiting.
    Pass,
    /// The fetch failed or was abandoned: look again, and maybe lead.
    Failed,
}

/// Whether this request leads the fetch for its key or follows another's.
#[derive(Debug)]
pub enum Flight {
    Leader(FlightGuard),
    Follower(watch::Receiver<Landing>),
}

type InFlight = HashMap<Arc<str>, (u64, watch::Receiver<Landing>)>;

/// The fetches in flight, by cache key.
#[derive(Debug, Default)]
pub struct Flights {
    inflight: Arc<Mutex<InFlight>>,
    next_id: AtomicU64,
}

impl Flights {
    /// Leads the fetch for `key`, or follows the one in flight.
    pub fn join(&self, key: &Arc<str>) -> Flight {
        let mut inflight = self.inflight.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, rx)) = inflight.get(key) {
            return Flight::Follower(rx.clone());
        }
        let (tx, rx) = watch::channel(Landing::Pending);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        inflight.insert(key.clone(), (id, rx));
        Flight::Leader(FlightGuard {
            key: key.clone(),
            id,
            tx,
            inflight: self.inflight.clone(),
        })
    }

    /// Fetches in flight now.
    pub fn len(&self) -> usize {
        self.inflight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Held by the leader for as long as its fetch may still store something.
/// Dropped without [`FlightGuard::land`], its followers see `Failed`.
#[derive(Debug)]
pub struct FlightGuard {
    key: Arc<str>,
    id: u64,
    tx: watch::Sender<Landing>,
    inflight: Arc<Mutex<InFlight>>,
}

impl FlightGuard {
    /// Ends the flight: followers wake and act on `how`.
    pub fn land(self, how: Landing) {
        self.tx.send_replace(how);
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        {
            let mut inflight = self.inflight.lock().unwrap_or_else(PoisonError::into_inner);
            if inflight
                .get(&self.key)
                .is_some_and(|(id, _)| *id == self.id)
            {
                inflight.remove(&self.key);
            }
        }
        // Only a flight that did not land says Failed; `land` already spoke.
        self.tx.send_if_modified(|landing| {
            let pending = *landing == Landing::Pending;
            if pending {
                *landing = Landing::Failed;
            }
            pending
        });
    }
}

/// Waits until the leader lands, or `patience` runs out (then `Failed`).
pub async fn follow(mut rx: watch::Receiver<Landing>, patience: Duration) -> Landing {
    match tokio::time::timeout(patience, rx.wait_for(|l| *l != Landing::Pending)).await {
        Ok(Ok(landing)) => *landing,
        // The leader is gone without a word (its sender dropped), or too slow.
        Ok(Err(_)) | Err(_) => Landing::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_leader_then_followers_see_how_it_landed() {
        let flights = Flights::default();
        let key: Arc<str> = "k".into();
        let Flight::Leader(guard) = flights.join(&key) else {
            panic!("the first one leads");
        };
        let Flight::Follower(rx) = flights.join(&key) else {
            panic!("the second one follows");
        };
        let waiting = tokio::spawn(follow(rx, Duration::from_secs(5)));
        guard.land(Landing::Stored);
        assert_eq!(waiting.await.unwrap(), Landing::Stored);
        assert!(flights.is_empty());
        // The key is free again.
        assert!(matches!(flights.join(&key), Flight::Leader(_)));
    }

    #[tokio::test]
    async fn a_dropped_leader_fails_its_followers_and_frees_the_key() {
        let flights = Flights::default();
        let key: Arc<str> = "k".into();
        let leader = flights.join(&key);
        let Flight::Follower(rx) = flights.join(&key) else {
            panic!("follows");
        };
        drop(leader);
        assert_eq!(follow(rx, Duration::from_secs(5)).await, Landing::Failed);
        assert!(matches!(flights.join(&key), Flight::Leader(_)));
    }

    #[tokio::test]
    async fn a_slow_leader_is_given_up_on() {
        let flights = Flights::default();
        let key: Arc<str> = "k".into();
        let _leader = flights.join(&key);
        let Flight::Follower(rx) = flights.join(&key) else {
            panic!("follows");
        };
        assert_eq!(follow(rx, Duration::from_millis(20)).await, Landing::Failed);
    }
}
