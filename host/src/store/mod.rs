//! Where the control plane's state persists: a small transactional key-value trait.
//!
//! The trait has etcd's shape on purpose (keys with a modification revision, one
//! global revision, transactions of compares then writes), so the embedded
//! database ([`EmbeddedStore`]) and the fleet's etcd ([`EtcdStore`]) are
//! interchangeable behind it. The ETag of a stored object is its key's
//! modification revision; `If-Match` becomes a compare. A shared store also
//! implements [`Fleet`]: change notices, and which hosts serve what.

mod embedded;
mod etcd;

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

pub use embedded::EmbeddedStore;
pub use etcd::EtcdStore;

/// A store-wide, strictly increasing change number.
pub type Revision = u64;

/// A boxed future, so the trait stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One stored key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// The revision of the transaction that last wrote this key.
    pub mod_revision: Revision,
}

/// Everything under the store's prefix, as of `revision`.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub revision: Revision,
    pub entries: Vec<KeyValue>,
}

/// A condition a transaction requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compare {
    /// The key's modification revision equals `revision`; 0 means "absent".
    ModRevision { key: String, revision: Revision },
}

impl Compare {
    pub fn key(&self) -> &str {
        match self {
            Self::ModRevision { key, .. } => key,
        }
    }
}

/// A write in a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put { key: String, value: Vec<u8> },
    Delete { key: String },
}

/// Compares, then writes: all writes land at one new revision, or none does.
#[derive(Debug, Clone, Default)]
pub struct Txn {
    pub compares: Vec<Compare>,
    pub ops: Vec<Op>,
}

/// What a transaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOutcome {
    Committed {
        revision: Revision,
    },
    /// A compare did not hold; nothing was written.
    CompareFailed {
        key: String,
    },
}

/// A store failure (I/O, corruption, an unreachable backend).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store database error: {0}")]
    Database(String),
    #[error("store task failed: {0}")]
    Task(String),
    #[error("the store cannot be reached: {0}")]
    Unavailable(String),
    /// A write over the store's size limit (etcd: `--max-request-bytes`,
    /// 1.5 MiB unless raised).
    #[error("the store refused a write that large: {0}")]
    TooLarge(String),
}

/// The persistence trait of the control plane.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Reads every key and the current revision.
    fn load(&self) -> BoxFuture<'_, Result<Loaded, StoreError>>;
    /// Applies `txn` atomically and durably before returning.
    fn commit(&self, txn: Txn) -> BoxFuture<'_, Result<TxnOutcome, StoreError>>;
    /// The fleet side of a store several hosts share; `None` for one only
    /// this host uses.
    fn fleet(&self) -> Option<&dyn Fleet> {
        None
    }
    /// Lets go of the store so another process on this machine can open it
    /// (a handover to a new host); reads and writes fail as unavailable
    /// until [`Store::reacquire`]. A shared store has nothing to let go.
    fn release(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
    /// Takes the store back after a handover that did not happen.
    fn reacquire(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }
}

/// Which store a host keeps its config in (`--store`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StoreSpec {
    /// The embedded database under the data dir: one host.
    #[default]
    Embedded,
    /// etcd, shared by a fleet: `etcd://host:port[,host:port...]`.
    Etcd {
        /// `http://host:port` for each member.
        endpoints: Vec<String>,
    },
}

impl std::str::FromStr for StoreSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "embedded" {
            return Ok(Self::Embedded);
        }
        let Some(list) = s.strip_prefix("etcd://") else {
            return Err(format!(
                "{s:?}: the store is `embedded` or `etcd://host:port[,host:port...]`"
            ));
        };
        let endpoints = list
            .split(',')
            .map(|member| {
                let member = member.trim().trim_end_matches('/');
                let (host, port) = member
                    .rsplit_once(':')
                    .ok_or_else(|| format!("etcd member {member:?} needs host:port"))?;
                if host.is_empty() || port.parse::<u16>().is_err() {
                    return Err(format!("etcd member {member:?} needs host:port"));
                }
                Ok(format!("http://{member}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::Etcd { endpoints })
    }
}

/// What one host serves, as it tells the fleet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostReport {
    pub id: String,
    /// Which host (machine and data dir) reports under `id`, so a host can
    /// tell its own report from another host's (empty from hosts that
    /// predate it).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub instance: String,
    /// The store revision its serving snapshot reflects.
    pub revision: Revision,
    /// When it last reported (RFC 3339).
    pub last_seen: String,
    /// Where the other members of the cache cluster reach its internal
    /// listener (`host:port`); empty when it is not a member.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cluster: String,
}

/// A store shared by a fleet of hosts.
///
/// Reports live under a lease that [`Fleet::keep_alive`] renews: a host that
/// stops renewing (it crashed, or lost the store for longer than the lease)
/// drops out of [`Fleet::hosts`] when the lease ends.
pub trait Fleet: Send + Sync {
    /// The revisions of config changes under the prefix after `after`, as
    /// they happen; an error (then the end) when the connection breaks.
    fn watch(
        &self,
        after: Revision,
    ) -> BoxFuture<'_, Result<mpsc::Receiver<Result<Revision, StoreError>>, StoreError>>;
    /// Records what this host serves under the lease (granted on first use,
    /// and again after one is lost).
    fn report(&self, report: &HostReport) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Renews the lease once; an error when it is gone (the next report
    /// grants a new one).
    fn keep_alive(&self) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Withdraws this host's report at once (a clean shutdown).
    fn leave(&self, id: &str) -> BoxFuture<'_, Result<(), StoreError>>;
    /// The revision of the last config write (by any host).
    fn head(&self) -> BoxFuture<'_, Result<Revision, StoreError>>;
    /// The hosts whose reports are alive.
    fn hosts(&self) -> BoxFuture<'_, Result<Vec<HostReport>, StoreError>>;
    /// The value of the fleet's own key `name` (a `.` key, never config):
    /// `proposed`, written now, when the key has none yet; else the value
    /// the first host to ask wrote.
    fn shared_secret<'a>(
        &'a self,
        name: &'a str,
        proposed: &'a str,
    ) -> BoxFuture<'a, Result<String, StoreError>>;
}

#[cfg(test)]
mod tests {
    use super::StoreSpec;

    #[test]
    fn store_specs_parse() {
        assert_eq!("embedded".parse(), Ok(StoreSpec::Embedded));
        assert_eq!(
            "etcd://127.0.0.1:2379,10.0.0.2:2379".parse(),
            Ok(StoreSpec::Etcd {
                endpoints: vec![
                    "http://127.0.0.1:2379".to_owned(),
                    "http://10.0.0.2:2379".to_owned()
                ]
            })
        );
        assert!("etcd://".parse::<StoreSpec>().is_err());
        assert!("etcd://host".parse::<StoreSpec>().is_err());
        assert!("redis://x:1".parse::<StoreSpec>().is_err());
    }
}
