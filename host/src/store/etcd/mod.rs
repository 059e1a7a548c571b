//! The fleet's store: etcd, shared by every host (`--store etcd://host:2379`).
//!
//! Keys live under a prefix (`/edge` by default, then `/`); a key's ETag is
//! its etcd mod revision, so a [`Compare`] is an etcd compare in the same
//! transaction as the writes. Hosts report what they serve under
//! `<prefix>/.hosts/<id>`, bound to a lease that ends when a host stops
//! renewing it; those keys are neither loaded nor watched as config.

mod client;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, mpsc};

use self::client::{
    Client, Compare as EtcdCompare, DeleteRangeRequest, EtcdError, PutRequest, RangeRequest,
    RequestOp, TxnRequest,
};
use super::{
    BoxFuture, Compare, Fleet, HostReport, KeyValue, Loaded, Op, Revision, Store, StoreError, Txn,
    TxnOutcome,
};

/// Where host reports live, under the prefix. Keys that start with `.` are
/// the fleet's own, never config.
const HOSTS: &str = ".hosts/";
/// Written by every commit, so its mod revision is the last config write's.
const HEAD: &str = ".head";

/// An etcd-backed [`Store`] and [`Fleet`].
#[derive(Clone)]
pub struct EtcdStore {
    client: Arc<Client>,
    /// `<prefix>/`.
    prefix: String,
    /// The lease host reports are bound to (granted on first use), and its
    /// time to live.
    lease: Arc<Mutex<Option<i64>>>,
    lease_ttl: Duration,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn etcd_err(err: EtcdError) -> StoreError {
    if err.is_too_large() {
        StoreError::TooLarge(err.to_string())
    } else {
        StoreError::Unavailable(err.to_string())
    }
}

fn revision(r: i64) -> Revision {
    u64::try_from(r).unwrap_or(0)
}

fn signed(r: Revision) -> i64 {
    i64::try_from(r).unwrap_or(i64::MAX)
}

impl EtcdStore {
    /// A store on the members at `endpoints` (`host:port` or `http://` URLs);
    /// nothing is contacted until the first call. Host reports are bound to
    /// a lease of `lease_ttl`.
    pub async fn connect(
        endpoints: &[String],
        prefix: &str,
        lease_ttl: Duration,
    ) -> Result<Self, StoreError> {
        let client = Client::new(endpoints).map_err(etcd_err)?;
        Ok(Self {
            client: Arc::new(client),
            prefix: format!("{}/", prefix.trim_end_matches('/')),
            lease: Arc::new(Mutex::new(None)),
            lease_ttl,
        })
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// A stored key without the prefix, unless it is not config.
    fn config_key(&self, key: &[u8]) -> Option<String> {
        let key = std::str::from_utf8(key).ok()?.strip_prefix(&self.prefix)?;
        (!key.starts_with('.')).then(|| key.to_owned())
    }

    async fn load_inner(&self) -> Result<Loaded, StoreError> {
        let resp = self
            .client
            .range(&RangeRequest::prefix(self.prefix.as_str()))
            .await
            .map_err(etcd_err)?;
        let entries = resp
            .kvs
            .into_iter()
            .filter_map(|kv| {
                Some(KeyValue {
                    key: self.config_key(&kv.key)?,
                    value: kv.value,
                    mod_revision: revision(kv.mod_revision),
                })
            })
            .collect();
        Ok(Loaded {
            revision: revision(resp.header.revision),
            entries,
        })
    }

    async fn commit_inner(&self, txn: Txn) -> Result<TxnOutcome, StoreError> {
        let compare = txn
            .compares
            .iter()
            .map(|c| {
                let Compare::ModRevision { key, revision } = c;
                EtcdCompare::mod_revision_equals(self.full(key), signed(*revision))
            })
            .collect();
        let success = txn
            .ops
            .iter()
            .map(|op| match op {
                Op::Put { key, value } => RequestOp::Put(PutRequest {
                    key: self.full(key).into_bytes(),
                    value: value.clone(),
                    lease: 0,
                }),
                Op::Delete { key } => RequestOp::DeleteRange(DeleteRangeRequest {
                    key: self.full(key).into_bytes(),
                }),
            })
            .chain([RequestOp::Put(PutRequest {
                key: self.full(HEAD).into_bytes(),
                value: Vec::new(),
                lease: 0,
            })])
            .collect();
        // When a compare fails, read the compared keys to say which.
        let failure = txn
            .compares
            .iter()
            .map(|c| RequestOp::Range(RangeRequest::key(self.full(c.key()))))
            .collect();
        let request = TxnRequest {
            compare,
            success,
            failure,
        };
        let resp = self.client.txn(&request).await.map_err(etcd_err)?;
        if resp.succeeded {
            return Ok(TxnOutcome::Committed {
                revision: revision(resp.header.revision),
            });
        }
        for (compare, read) in txn.compares.iter().zip(&resp.responses) {
            let Compare::ModRevision {
                key,
                revision: expected,
            } = compare;
            let current = read
                .response_range
                .as_ref()
                .and_then(|range| range.kvs.first())
                .map_or(0, |kv| revision(kv.mod_revision));
            if current != *expected {
                return Ok(TxnOutcome::CompareFailed { key: key.clone() });
            }
        }
        // Everything matched by the time of the reads: a write slipped in and out.
        let key = txn
            .compares
            .first()
            .map_or_else(String::new, |c| c.key().to_owned());
        Ok(TxnOutcome::CompareFailed { key })
    }

    /// The lease reports are bound to, granted on first use and again after
    /// one is lost.
    async fn lease(&self) -> Result<i64, StoreError> {
        let mut slot = self.lease.lock().await;
        if let Some(id) = *slot {
            return Ok(id);
        }
        let ttl = i64::try_from(self.lease_ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let id = self.client.lease_grant(ttl).await.map_err(etcd_err)?;
        *slot = Some(id);
        Ok(id)
    }

    /// Forgets lease `id` if it is still the current one.
    async fn forget_lease(&self, id: i64) {
        let mut slot = self.lease.lock().await;
        if *slot == Some(id) {
            *slot = None;
        }
    }
}

impl Store for EtcdStore {
    fn load(&self) -> BoxFuture<'_, Result<Loaded, StoreError>> {
        Box::pin(self.load_inner())
    }

    fn commit(&self, txn: Txn) -> BoxFuture<'_, Result<TxnOutcome, StoreError>> {
        Box::pin(self.commit_inner(txn))
    }

    fn fleet(&self) -> Option<&dyn Fleet> {
        Some(self)
    }
}

impl Fleet for EtcdStore {
    fn watch(
        &self,
        after: Revision,
    ) -> BoxFuture<'_, Result<mpsc::Receiver<Result<Revision, StoreError>>, StoreError>> {
        Box::pin(async move {
            let mut stream = self
                .client
                .watch_prefix(self.prefix.as_bytes(), signed(after + 1))
                .await
                .map_err(etcd_err)?;
            let (tx, rx) = mpsc::channel(64);
            let this = self.clone();
            tokio::spawn(async move {
                loop {
                    let message = tokio::select! {
                        m = stream.message() => m,
                        () = tx.closed() => return,
                    };
                    let resp = match message {
                        Ok(Some(resp)) => resp,
                        Ok(None) => {
                            let _ = tx
                                .send(Err(StoreError::Unavailable("the watch ended".into())))
                                .await;
                            return;
                        }
                        Err(err) => {
                            let _ = tx.send(Err(etcd_err(err))).await;
                            return;
                        }
                    };
                    if resp.canceled {
                        let reason = if resp.compact_revision > 0 {
                            format!(
                                "the watch was cancelled: revision {} is compacted",
                                resp.compact_revision
                            )
                        } else {
                            format!("the watch was cancelled: {}", resp.cancel_reason)
                        };
                        let _ = tx.send(Err(StoreError::Unavailable(reason))).await;
                        return;
                    }
                    // A put or a delete of a config key (not a host's report).
                    let changed = resp
                        .events
                        .iter()
                        .any(|e| this.config_key(&e.kv.key).is_some());
                    if changed && tx.send(Ok(revision(resp.header.revision))).await.is_err() {
                        return;
                    }
                }
            });
            Ok(rx)
        })
    }

    fn report(&self, report: &HostReport) -> BoxFuture<'_, Result<(), StoreError>> {
        let value = serde_json::to_vec(report).unwrap_or_default();
        let key = self.full(&format!("{HOSTS}{}", report.id));
        Box::pin(async move {
            let lease = self.lease().await?;
            let put = self
                .client
                .put(&PutRequest {
                    key: key.into_bytes(),
                    value,
                    lease,
                })
                .await;
            if let Err(err) = put {
                // The lease may be gone (etcd was away longer than its TTL):
                // forget it, so the next report grants a new one.
                self.forget_lease(lease).await;
                return Err(etcd_err(err));
            }
            Ok(())
        })
    }

    fn keep_alive(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let mut slot = self.lease.lock().await;
            let Some(id) = *slot else {
                return Ok(());
            };
            let renewed = async {
                match self.client.lease_keep_alive(id).await.map_err(etcd_err)? {
                    ttl if ttl > 0 => Ok(()),
                    _ => Err(StoreError::Unavailable("the host's lease has ended".into())),
                }
            };
            let renewed = tokio::time::timeout(self.lease_ttl, renewed)
                .await
                .unwrap_or_else(|_| {
                    Err(StoreError::Unavailable(
                        "renewing the lease timed out".into(),
                    ))
                });
            if renewed.is_err() {
                *slot = None;
            }
            renewed
        })
    }

    fn leave(&self, id: &str) -> BoxFuture<'_, Result<(), StoreError>> {
        let key = self.full(&format!("{HOSTS}{id}"));
        Box::pin(async move {
            let lease = self.lease.lock().await.take();
            self.client
                .delete(&DeleteRangeRequest {
                    key: key.into_bytes(),
                })
                .await
                .map_err(etcd_err)?;
            if let Some(lease) = lease {
                self.client.lease_revoke(lease).await.map_err(etcd_err)?;
            }
            Ok(())
        })
    }

    fn head(&self) -> BoxFuture<'_, Result<Revision, StoreError>> {
        Box::pin(async move {
            let resp = self
                .client
                .range(&RangeRequest::key(self.full(HEAD)))
                .await
                .map_err(etcd_err)?;
            Ok(resp.kvs.first().map_or(0, |kv| revision(kv.mod_revision)))
        })
    }

    fn hosts(&self) -> BoxFuture<'_, Result<Vec<HostReport>, StoreError>> {
        Box::pin(async move {
            let resp = self
                .client
                .range(&RangeRequest::prefix(self.full(HOSTS)))
                .await
                .map_err(etcd_err)?;
            Ok(resp
                .kvs
                .iter()
                .filter_map(|kv| serde_json::from_slice(&kv.value).ok())
                .collect())
        })
    }

    fn shared_secret<'a>(
        &'a self,
        name: &'a str,
        proposed: &'a str,
    ) -> BoxFuture<'a, Result<String, StoreError>> {
        debug_assert!(name.starts_with('.'), "a fleet key, never config");
        Box::pin(async move {
            let key = self.full(name);
            // A key that does not exist has mod revision 0.
            let request = TxnRequest {
                compare: vec![EtcdCompare::mod_revision_equals(key.clone(), 0)],
                success: vec![RequestOp::Put(PutRequest {
                    key: key.clone().into_bytes(),
                    value: proposed.as_bytes().to_vec(),
                    lease: 0,
                })],
                failure: vec![RequestOp::Range(RangeRequest::key(key))],
            };
            let resp = self.client.txn(&request).await.map_err(etcd_err)?;
            if resp.succeeded {
                return Ok(proposed.to_owned());
            }
            let value = resp
                .responses
                .first()
                .and_then(|r| r.response_range.as_ref())
                .and_then(|range| range.kvs.first())
                .map(|kv| kv.value.clone())
                .ok_or_else(|| {
                    StoreError::Unavailable(format!("{name} vanished as it was read"))
                })?;
            String::from_utf8(value)
                .map_err(|_| StoreError::Unavailable(format!("{name} is not UTF-8")))
        })
    }
}
