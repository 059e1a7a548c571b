//! The embedded default store: one redb database file under the data dir.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{
    BoxFuture, Compare, KeyValue, Loaded, Op, Revision, Store, StoreError, Txn, TxnOutcome,
};

/// key → 8-byte little-endian mod revision, then the value.
const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
/// "revision" → the store's current revision.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// A redb-backed [`Store`]; every commit is fsynced before it returns.
#[derive(Clone)]
pub struct EmbeddedStore {
    path: Arc<PathBuf>,
    /// `None` while released to a host taking over (redb allows one process).
    db: Arc<RwLock<Option<Arc<Database>>>>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").finish_non_exhaustive()
    }
}

fn db_err(err: impl std::fmt::Display) -> StoreError {
    StoreError::Database(err.to_string())
}

impl EmbeddedStore {
    /// Opens (or creates) the database file at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(Self {
            path: Arc::new(path.to_owned()),
            db: Arc::new(RwLock::new(Some(Arc::new(Self::open_db(path)?)))),
        })
    }

    fn open_db(path: &Path) -> Result<Database, StoreError> {
        let db = Database::create(path).map_err(db_err)?;
        let txn = db.begin_write().map_err(db_err)?;
        {
            txn.open_table(KV).map_err(db_err)?;
            txn.open_table(META).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        Ok(db)
    }

    /// The open database, unless it was released.
    fn db(&self) -> Result<Arc<Database>, StoreError> {
        self.db
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| {
                StoreError::Unavailable("the database was handed to a new host".to_owned())
            })
    }

    /// Closes the database once the operations using it are done.
    fn release_blocking(&self) {
        let taken = self
            .db
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(db) = taken {
            while Arc::strong_count(&db) > 1 {
                std::thread::sleep(Duration::from_millis(1));
            }
            drop(db);
        }
    }

    fn reacquire_blocking(&self) -> Result<(), StoreError> {
        let mut slot = self.db.write().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(Arc::new(Self::open_db(&self.path)?));
        }
        Ok(())
    }

    fn load_blocking(&self) -> Result<Loaded, StoreError> {
        let db = self.db()?;
        let txn = db.begin_read().map_err(db_err)?;
        let meta = txn.open_table(META).map_err(db_err)?;
        let revision = meta
            .get("revision")
            .map_err(db_err)?
            .map_or(0, |v| v.value());
        let kv = txn.open_table(KV).map_err(db_err)?;
        let mut entries = Vec::new();
        for item in kv.iter().map_err(db_err)? {
            let (k, v) = item.map_err(db_err)?;
            let (mod_revision, value) = split(v.value())?;
            entries.push(KeyValue {
                key: k.value().to_owned(),
                value: value.to_vec(),
                mod_revision,
            });
        }
        Ok(Loaded { revision, entries })
    }

    fn commit_blocking(&self, txn: Txn) -> Result<TxnOutcome, StoreError> {
        let db = self.db()?;
        let write = db.begin_write().map_err(db_err)?;
        let revision;
        {
            let mut kv = write.open_table(KV).map_err(db_err)?;
            for compare in &txn.compares {
                let Compare::ModRevision { key, revision } = compare;
                let current = match kv.get(key.as_str()).map_err(db_err)? {
                    Some(v) => split(v.value())?.0,
                    None => 0,
                };
                if current != *revision {
                    return Ok(TxnOutcome::CompareFailed { key: key.clone() });
                }
            }
            let mut meta = write.open_table(META).map_err(db_err)?;
            revision = meta
                .get("revision")
                .map_err(db_err)?
                .map_or(0, |v| v.value())
                + 1;
            meta.insert("revision", revision).map_err(db_err)?;
            for op in &txn.ops {
                match op {
                    Op::Put { key, value } => {
                        let mut stored = Vec::with_capacity(8 + value.len());
                        stored.extend_from_slice(&revision.to_le_bytes());
                        stored.extend_from_slice(value);
                        kv.insert(key.as_str(), stored.as_slice()).map_err(db_err)?;
                    }
                    Op::Delete { key } => {
                        kv.remove(key.as_str()).map_err(db_err)?;
                    }
                }
            }
        }
        write.commit().map_err(db_err)?;
        Ok(TxnOutcome::Committed { revision })
    }
}

fn split(stored: &[u8]) -> Result<(Revision, &[u8]), StoreError> {
    let (rev, value) = stored
        .split_first_chunk::<8>()
        .ok_or_else(|| StoreError::Database("stored value is shorter than its header".into()))?;
    Ok((u64::from_le_bytes(*rev), value))
}

impl Store for EmbeddedStore {
    fn load(&self) -> BoxFuture<'_, Result<Loaded, StoreError>> {
        let this = self.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || this.load_blocking())
                .await
                .map_err(|e| StoreError::Task(e.to_string()))?
        })
    }

    fn commit(&self, txn: Txn) -> BoxFuture<'_, Result<TxnOutcome, StoreError>> {
        let this = self.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || this.commit_blocking(txn))
                .await
                .map_err(|e| StoreError::Task(e.to_string()))?
        })
    }

    fn release(&self) -> BoxFuture<'_, ()> {
        let this = self.clone();
        Box::pin(async move {
            let _ = tokio::task::spawn_blocking(move || this.release_blocking()).await;
        })
    }

    fn reacquire(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        let this = self.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || this.reacquire_blocking())
                .await
                .map_err(|e| StoreError::Task(e.to_string()))?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &str) -> Op {
        Op::Put {
            key: key.into(),
            value: value.as_bytes().to_vec(),
        }
    }

    #[tokio::test]
    async fn compares_guard_writes_and_state_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("edge.redb");
        {
            let store = EmbeddedStore::open(&path).unwrap();
            let create = Txn {
                compares: vec![Compare::ModRevision {
                    key: "a".into(),
                    revision: 0,
                }],
                ops: vec![put("a", "1"), put("b", "x")],
            };
            assert_eq!(
                store.commit(create.clone()).await.unwrap(),
                TxnOutcome::Committed { revision: 1 }
            );
            // The same create again fails its compare and writes nothing.
            let again = Txn {
                ops: vec![put("a", "2"), put("c", "y")],
                ..create
            };
            assert_eq!(
                store.commit(again).await.unwrap(),
                TxnOutcome::CompareFailed { key: "a".into() }
            );
            let update = Txn {
                compares: vec![Compare::ModRevision {
                    key: "a".into(),
                    revision: 1,
                }],
                ops: vec![put("a", "3"), Op::Delete { key: "b".into() }],
            };
            assert_eq!(
                store.commit(update).await.unwrap(),
                TxnOutcome::Committed { revision: 2 }
            );
        }
        let store = EmbeddedStore::open(&path).unwrap();
        let loaded = store.load().await.unwrap();
        assert_eq!(loaded.revision, 2);
        assert_eq!(
            loaded.entries,
            vec![KeyValue {
                key: "a".into(),
                value: b"3".to_vec(),
                mod_revision: 2
            }]
        );
    }

    #[tokio::test]
    async fn a_released_database_can_be_opened_by_another_and_taken_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("edge.redb");
        let first = EmbeddedStore::open(&path).unwrap();
        first
            .commit(Txn {
                compares: vec![],
                ops: vec![put("k", "v")],
            })
            .await
            .unwrap();
        // redb lets one handle at a time hold the file.
        assert!(EmbeddedStore::open(&path).is_err());
        first.release().await;
        assert!(matches!(
            first.load().await,
            Err(StoreError::Unavailable(_))
        ));
        let second = EmbeddedStore::open(&path).unwrap();
        assert_eq!(second.load().await.unwrap().revision, 1);
        drop(second);
        first.reacquire().await.unwrap();
        assert_eq!(first.load().await.unwrap().entries.len(), 1);
    }
}
