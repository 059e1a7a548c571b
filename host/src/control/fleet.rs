//! The fleet: following a shared store's changes, reporting the revision this
//! host serves, and what `Deployed` means when several hosts serve one config.
//!
//! A write through this host is served as soon as it commits, decoded from
//! its own operations. A watch on the store's prefix tells the host when any
//! host wrote; it loads again and decodes every key with the same decoders
//! ([`super::decode`]; hook modules it has compiled are reused), drops the
//! objects of invalidations it has not applied yet, swaps the serving
//! snapshot, and reports the load's revision under its lease. A change is `Deployed` when every live host
//! reports a revision at or past the change's. When the store cannot be
//! reached the host keeps serving its last snapshot, says so in `/healthz`
//! and `edge_store_connected`, and catches up with one load when it returns.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::decode;
use super::error::ApiError;
use super::fleet_state::{FleetView, HostView, invalidation_ids};
use super::plane::ControlPlane;
use super::state::ControlState;
use crate::store::{Fleet, HostReport, StoreError};
use crate::time::rfc3339;

/// The longest wait between two attempts to reach the store.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long an API read waits for the store (to catch up, or for the fleet's
/// reports) before answering from what this host already has.
const STORE_READ_TIMEOUT: Duration = Duration::from_secs(1);

/// Doubling waits from 100 ms up to [`MAX_BACKOFF`].
#[derive(Debug)]
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Self(Duration::from_millis(100))
    }

    fn next(&mut self) -> Duration {
        let wait = self.0;
        self.0 = (self.0 * 2).min(MAX_BACKOFF);
        wait
    }
}

impl ControlPlane {
    /// Whether the config store answered the last time this host asked.
    pub fn store_connected(&self) -> bool {
        self.fleet.connected.load(Ordering::Relaxed)
    }

    fn set_connected(&self, connected: bool) {
        if self.fleet.connected.swap(connected, Ordering::Relaxed) != connected {
            if connected {
                tracing::info!("the config store is back; following it again");
            } else {
                tracing::warn!("the config store cannot be reached; serving the last snapshot");
            }
        }
        self.metrics.set_store_connected(connected);
    }

    /// The live hosts and what each serves. A host alone is its own fleet.
    pub async fn fleet_view(&self) -> FleetView {
        let me = |revision| HostView {
            id: self.fleet.host_id.clone(),
            revision,
            last_seen: rfc3339(SystemTime::now()),
        };
        let Some(fleet) = self.store.fleet() else {
            return FleetView {
                hosts: vec![me(self.served_revision())],
            };
        };
        let asked = if self.store_connected() {
            tokio::time::timeout(STORE_READ_TIMEOUT, fleet.hosts())
                .await
                .ok()
        } else {
            None
        };
        let reports = match asked {
            Some(Ok(reports)) => {
                *self
                    .fleet
                    .hosts
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = reports.clone();
                reports
            }
            _ => self
                .fleet
                .hosts
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        };
        // This host's own word is fresher than its last report.
        let mut hosts: Vec<HostView> = reports
            .into_iter()
            .filter(|r| r.id != self.fleet.host_id)
            .map(|r| HostView {
                id: r.id,
                revision: r.revision,
                last_seen: r.last_seen,
            })
            .collect();
        hosts.push(me(self.fleet.loaded.load(Ordering::Relaxed)));
        hosts.sort_by(|a, b| a.id.cmp(&b.id));
        FleetView { hosts }
    }

    /// Whether another live host of the fleet reports under this host's id
    /// (asked once, at start). A report under it from this host's own
    /// instance is not another host: it is this host's from before a crash,
    /// or the host this one takes over from (nor is one without an instance,
    /// from a release before them: it may be either).
    pub async fn host_id_in_use(&self) -> Result<bool, StoreError> {
        let Some(fleet) = self.store.fleet() else {
            return Ok(false);
        };
        let reports = fleet.hosts().await?;
        Ok(reports.iter().any(|r| {
            r.id == self.fleet.host_id
                && !r.instance.is_empty()
                && r.instance != self.fleet.instance
        }))
    }

    /// Brings the state up to the store's last write before a write is
    /// validated, so a write through this host sees every other host's
    /// (the caller holds the write lock).
    pub(super) async fn catch_up(&self) -> Result<(), ApiError> {
        let Some(fleet) = self.store.fleet() else {
            return Ok(());
        };
        let head = fleet.head().await?;
        if head > self.state().revision
            && let Some(next) = self.load_newer().await?
        {
            self.install(next);
        }
        Ok(())
    }

    /// Catches up before an API read, so a read through this host sees a
    /// write just made through another. Without the store the read answers
    /// from the last snapshot.
    pub async fn sync(&self) {
        if self.store.fleet().is_none() || !self.store_connected() {
            return;
        }
        let _guard = self.write.lock().await;
        match tokio::time::timeout(STORE_READ_TIMEOUT, self.catch_up()).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::debug!(error = %err.message, "reading without the store"),
            Err(_) => tracing::debug!("reading without the store: it is slow to answer"),
        }
    }

    /// A full load, built into a state, if it is newer than what this host
    /// last loaded.
    async fn load_newer(&self) -> Result<Option<ControlState>, StoreError> {
        let loaded = self.store.load().await?;
        if loaded.revision <= self.fleet.loaded.load(Ordering::Relaxed) {
            return Ok(None);
        }
        Ok(Some(
            decode::load(&loaded, &self.runtime, &self.state()).await,
        ))
    }

    /// Serves a loaded state (the caller holds the write lock): drops the
    /// objects of invalidations other hosts recorded, then swaps. A state
    /// older than one a write through this host already published is left
    /// for the load that write's own change notice brings.
    fn install(&self, next: ControlState) -> bool {
        if next.revision < self.state().revision {
            return false;
        }
        let revision = next.revision;
        {
            let mut applied = self
                .fleet
                .applied
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for (dist, list) in &next.invalidations {
                for record in list {
                    if applied.insert(record.stored.id.clone()) {
                        let dropped = self.cache.purge(dist, record.stored.purge());
                        tracing::info!(distribution = %dist, id = %record.stored.id, dropped, "invalidated by another host");
                    }
                }
            }
            let present = invalidation_ids(&next);
            applied.retain(|id| present.contains(id));
        }
        self.publish(next);
        self.fleet.loaded.store(revision, Ordering::Relaxed);
        true
    }

    /// Follows the shared store until `shutdown`: reloads on every change,
    /// reports what this host serves, renews its lease, and reconnects with
    /// backoff when the store goes away. Returns at once for a store no other
    /// host shares.
    pub async fn follow(self: Arc<Self>, mut shutdown: watch::Receiver<bool>, heartbeat: Duration) {
        let Some(fleet) = self.store.fleet() else {
            return;
        };
        let mut backoff = Backoff::new();
        loop {
            let ended = self
                .follow_once(fleet, &mut shutdown, heartbeat, &mut backoff)
                .await;
            match ended {
                Ok(()) => {
                    if let Err(err) = fleet.leave(&self.fleet.host_id).await {
                        tracing::debug!(error = %err, "withdrawing this host's report");
                    }
                    return;
                }
                Err(err) => {
                    self.set_connected(false);
                    let wait = backoff.next();
                    tracing::debug!(error = %err, ?wait, "the config store is away");
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        _ = shutdown.changed() => return,
                    }
                }
            }
        }
    }

    /// One connected stretch: catch up, watch, and report until the store
    /// fails (an error) or the host shuts down (`Ok`).
    async fn follow_once(
        &self,
        fleet: &dyn Fleet,
        shutdown: &mut watch::Receiver<bool>,
        heartbeat: Duration,
        backoff: &mut Backoff,
    ) -> Result<(), StoreError> {
        self.reload().await?;
        let mut changes = fleet
            .watch(self.fleet.loaded.load(Ordering::Relaxed))
            .await?;
        // Changes between the load and the watch's start are in the watch.
        self.report(fleet).await?;
        self.set_connected(true);
        *backoff = Backoff::new();
        let mut tick = tokio::time::interval(heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                change = changes.recv() => {
                    let mut newest = match change {
                        Some(Ok(revision)) => revision,
                        Some(Err(err)) => return Err(err),
                        None => return Err(StoreError::Unavailable("the watch ended".into())),
                    };
                    // One load covers every change already queued.
                    while let Ok(more) = changes.try_recv() {
                        newest = newest.max(more?);
                    }
                    if newest > self.fleet.loaded.load(Ordering::Relaxed) && self.reload().await? {
                        self.report(fleet).await?;
                    }
                }
                _ = tick.tick() => {
                    // A lapsed lease is granted again by the report.
                    if let Err(err) = fleet.keep_alive().await {
                        tracing::debug!(error = %err, "renewing this host's lease");
                    }
                    self.report(fleet).await?;
                }
                _ = shutdown.changed() => return Ok(()),
            }
        }
    }

    /// Loads and installs the store's state if it is newer; whether it was.
    async fn reload(&self) -> Result<bool, StoreError> {
        let Some(next) = self.load_newer().await? else {
            return Ok(false);
        };
        let _guard = self.write.lock().await;
        Ok(self.install(next))
    }

    /// Reports this host to the fleet once, before it serves: a host that
    /// has started is listed at once, so another host started under its id
    /// afterwards is refused (see [`Self::host_id_in_use`]), not only one
    /// started after this host's first heartbeat. Nothing for a store no
    /// other host shares.
    pub async fn announce(&self) -> Result<(), StoreError> {
        match self.store.fleet() {
            Some(fleet) => self.report(fleet).await,
            None => Ok(()),
        }
    }

    async fn report(&self, fleet: &dyn Fleet) -> Result<(), StoreError> {
        fleet
            .report(&HostReport {
                id: self.fleet.host_id.clone(),
                instance: self.fleet.instance.clone(),
                revision: self.fleet.loaded.load(Ordering::Relaxed),
                last_seen: rfc3339(SystemTime::now()),
                cluster: self.fleet.cluster.clone(),
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_ceiling() {
        let mut b = Backoff::new();
        let waits: Vec<_> = (0..8).map(|_| b.next()).collect();
        assert_eq!(waits[0], Duration::from_millis(100));
        assert_eq!(waits[1], Duration::from_millis(200));
        assert_eq!(waits[7], MAX_BACKOFF);
    }
}
