//! What this host knows of the hosts sharing its store: the revision it
//! serves, whether the store answers, the invalidations it has applied, and
//! the fleet's reports as an API answer shows them.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Mutex, PoisonError};

use serde::Serialize;

use super::state::{ControlState, DeployStatus};
use crate::store::{HostReport, Revision};

/// What this host knows of its fleet.
#[derive(Debug)]
pub struct FleetState {
    /// Names this host's report.
    pub(super) host_id: String,
    /// Tells this host's reports from another's under the same id.
    pub(super) instance: String,
    /// This host's internal listener, reported for the cache cluster.
    pub(super) cluster: String,
    /// The store revision of the last full load this host serves.
    pub(super) loaded: AtomicU64,
    /// Whether the store answered the last time it was asked.
    pub(super) connected: AtomicBool,
    /// The invalidations whose objects this host has dropped.
    pub(super) applied: Mutex<HashSet<String>>,
    /// The last hosts the store listed.
    pub(super) hosts: Mutex<Vec<HostReport>>,
}

impl FleetState {
    /// What host `host_id` (of `instance`, reachable by the cache cluster
    /// at `cluster`) knows of its fleet when it opens `state`.
    pub(super) fn new(host_id: &str, instance: &str, cluster: &str, state: &ControlState) -> Self {
        Self {
            host_id: host_id.to_owned(),
            instance: instance.to_owned(),
            cluster: cluster.to_owned(),
            loaded: AtomicU64::new(state.revision),
            connected: AtomicBool::new(true),
            // The cache starts empty: nothing stored so far needs dropping.
            applied: Mutex::new(invalidation_ids(state)),
            hosts: Mutex::new(Vec::new()),
        }
    }

    /// Records that this host has dropped the objects of invalidation `id`.
    pub(super) fn mark_applied(&self, id: &str) {
        self.applied
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.to_owned());
    }
}

pub(super) fn invalidation_ids(state: &ControlState) -> HashSet<String> {
    state
        .invalidations
        .values()
        .flatten()
        .map(|r| r.stored.id.clone())
        .collect()
}

/// One host as an API answer shows it.
#[derive(Debug, Clone, Serialize)]
pub struct HostView {
    pub id: String,
    pub revision: Revision,
    pub last_seen: String,
}

/// The live hosts and the revision each serves, as of one API answer.
#[derive(Debug, Clone)]
pub struct FleetView {
    pub hosts: Vec<HostView>,
}

impl FleetView {
    /// `Deployed` when every live host serves `revision` or later.
    pub fn status(&self, revision: Revision) -> DeployStatus {
        if self.hosts.iter().all(|h| h.revision >= revision) {
            DeployStatus::Deployed
        } else {
            DeployStatus::InProgress
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(revisions: &[Revision]) -> FleetView {
        FleetView {
            hosts: revisions
                .iter()
                .enumerate()
                .map(|(i, r)| HostView {
                    id: format!("h{i}"),
                    revision: *r,
                    last_seen: String::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn deployed_needs_every_host() {
        assert_eq!(view(&[7, 9, 12]).status(7), DeployStatus::Deployed);
        assert_eq!(view(&[7, 9, 12]).status(8), DeployStatus::InProgress);
    }
}
