//! Where the control plane's state persists: a small transactional key-value trait.
//!
//! The trait has etcd's shape on purpose (keys with a modification revision, one
//! global revision, transactions of compares then writes), so the embedded
//! database and a fleet store are interchangeable behind it. The ETag of a stored
//! object is its key's modification revision; `If-Match` becomes a compare.

mod embedded;

use std::future::Future;
use std::pin::Pin;

pub use embedded::EmbeddedStore;

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
}

/// The persistence trait of the control plane.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Reads every key and the current revision.
    fn load(&self) -> BoxFuture<'_, Result<Loaded, StoreError>>;
    /// Applies `txn` atomically and durably before returning.
    fn commit(&self, txn: Txn) -> BoxFuture<'_, Result<TxnOutcome, StoreError>>;
}
