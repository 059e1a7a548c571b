//! The fleet's store: etcd, shared by every host (`--store etcd://host:2379`).
//!
//! Keys live under a prefix (`/edge` by default, then `/`); a key's ETag is
//! its etcd mod revision, so a [`Compare`] is an etcd compare in the same
//! transaction as the writes. Hosts report what they serve under
//! `<prefix>/.hosts/<id>`, bound to a lease that ends when a host stops
//! renewing it; those keys are neither loaded nor watched as config.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Client, Compare as EtcdCompare, CompareOp, ConnectOptions, DeleteOptions, EventType,
    GetOptions, LeaseKeepAliveStream, LeaseKeeper, PutOptions, Txn as EtcdTxn, TxnOp,
    TxnOpResponse, WatchOptions,
};
use tokio::sync::{Mutex, mpsc};

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
    client: Client,
    /// `<prefix>/`.
    prefix: String,
    /// The lease host reports are bound to, and its time to live.
    lease: Arc<Mutex<Option<Lease>>>,
    lease_ttl: Duration,
}

/// A granted lease and the stream that renews it.
struct Lease {
    id: i64,
    keeper: LeaseKeeper,
    answers: LeaseKeepAliveStream,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn etcd_err(err: etcd_client::Error) -> StoreError {
    let message = err.to_string();
    // etcd's own limit (`--max-request-bytes`), or gRPC's message limit.
    if message.contains("request is too large") || message.contains("larger than max") {
        StoreError::TooLarge(message)
    } else {
        StoreError::Unavailable(message)
    }
}

fn revision(r: i64) -> Revision {
    u64::try_from(r).unwrap_or(0)
}

fn signed(r: Revision) -> i64 {
    i64::try_from(r).unwrap_or(i64::MAX)
}

impl EtcdStore {
    /// Connects to `endpoints` (`host:port` or URLs). Host reports are bound to
    /// a lease of `lease_ttl`.
    pub async fn connect(
        endpoints: &[String],
        prefix: &str,
        lease_ttl: Duration,
    ) -> Result<Self, StoreError> {
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(Duration::from_secs(5))
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2))
            .with_keep_alive_while_idle(true);
        let client = Client::connect(endpoints, Some(options))
            .await
            .map_err(etcd_err)?;
        Ok(Self {
            client,
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
        let mut kv = self.client.kv_client();
        let resp = kv
            .get(self.prefix.as_str(), Some(GetOptions::new().with_prefix()))
            .await
            .map_err(etcd_err)?;
        let at = resp.header().map_or(0, |h| revision(h.revision()));
        let entries = resp
            .kvs()
            .iter()
            .filter_map(|kv| {
                Some(KeyValue {
                    key: self.config_key(kv.key())?,
                    value: kv.value().to_vec(),
                    mod_revision: revision(kv.mod_revision()),
                })
            })
            .collect();
        Ok(Loaded {
            revision: at,
            entries,
        })
    }

    async fn commit_inner(&self, txn: Txn) -> Result<TxnOutcome, StoreError> {
        let compares: Vec<EtcdCompare> = txn
            .compares
            .iter()
            .map(|c| {
                let Compare::ModRevision { key, revision } = c;
                EtcdCompare::mod_revision(self.full(key), CompareOp::Equal, signed(*revision))
            })
            .collect();
        let ops: Vec<TxnOp> = txn
            .ops
            .iter()
            .map(|op| match op {
                Op::Put { key, value } => TxnOp::put(self.full(key), value.clone(), None),
                Op::Delete { key } => TxnOp::delete(self.full(key), None),
            })
            .chain([TxnOp::put(self.full(HEAD), Vec::new(), None)])
            .collect();
        // When a compare fails, read the compared keys to say which.
        let reads: Vec<TxnOp> = txn
            .compares
            .iter()
            .map(|c| TxnOp::get(self.full(c.key()), None))
            .collect();
        let request = EtcdTxn::new().when(compares).and_then(ops).or_else(reads);
        let resp = self
            .client
            .kv_client()
            .txn(request)
            .await
            .map_err(etcd_err)?;
        if resp.succeeded() {
            let at = resp.header().map_or(0, |h| revision(h.revision()));
            return Ok(TxnOutcome::Committed { revision: at });
        }
        let found = resp.op_responses();
        for (compare, read) in txn.compares.iter().zip(found) {
            let Compare::ModRevision {
                key,
                revision: expected,
            } = compare;
            let current = match read {
                TxnOpResponse::Get(get) => get
                    .kvs()
                    .first()
                    .map_or(0, |kv| revision(kv.mod_revision())),
                _ => 0,
            };
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
        if let Some(lease) = &*slot {
            return Ok(lease.id);
        }
        let mut client = self.client.lease_client();
        let ttl = i64::try_from(self.lease_ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let granted = client.grant(ttl, None).await.map_err(etcd_err)?;
        let id = granted.id();
        let (keeper, answers) = client.keep_alive(id).await.map_err(etcd_err)?;
        *slot = Some(Lease {
            id,
            keeper,
            answers,
        });
        Ok(id)
    }

    /// Forgets lease `id` if it is still the current one.
    async fn forget_lease(&self, id: i64) {
        let mut slot = self.lease.lock().await;
        if slot.as_ref().is_some_and(|l| l.id == id) {
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
            let options = WatchOptions::new()
                .with_prefix()
                .with_start_revision(signed(after + 1));
            let mut stream = self
                .client
                .watch_client()
                .watch(self.prefix.as_str(), Some(options))
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
                    if resp.canceled() {
                        let reason = format!("the watch was cancelled: {}", resp.cancel_reason());
                        let _ = tx.send(Err(StoreError::Unavailable(reason))).await;
                        return;
                    }
                    let changed = resp.events().iter().any(|e| {
                        matches!(e.event_type(), EventType::Put | EventType::Delete)
                            && e.kv().is_some_and(|kv| this.config_key(kv.key()).is_some())
                    });
                    if changed {
                        let at = resp.header().map_or(0, |h| revision(h.revision()));
                        if tx.send(Ok(at)).await.is_err() {
                            return;
                        }
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
                .kv_client()
                .put(
                    key.as_str(),
                    value.clone(),
                    Some(PutOptions::new().with_lease(lease)),
                )
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
            let Some(lease) = slot.as_mut() else {
                return Ok(());
            };
            let renewed = async {
                lease.keeper.keep_alive().await.map_err(etcd_err)?;
                match lease.answers.message().await.map_err(etcd_err)? {
                    Some(answer) if answer.ttl() > 0 => Ok(()),
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
                .kv_client()
                .delete(key.as_str(), None::<DeleteOptions>)
                .await
                .map_err(etcd_err)?;
            if let Some(lease) = lease {
                self.client
                    .lease_client()
                    .revoke(lease.id)
                    .await
                    .map_err(etcd_err)?;
            }
            Ok(())
        })
    }

    fn head(&self) -> BoxFuture<'_, Result<Revision, StoreError>> {
        Box::pin(async move {
            let resp = self
                .client
                .kv_client()
                .get(self.full(HEAD), None)
                .await
                .map_err(etcd_err)?;
            Ok(resp
                .kvs()
                .first()
                .map_or(0, |kv| revision(kv.mod_revision())))
        })
    }

    fn hosts(&self) -> BoxFuture<'_, Result<Vec<HostReport>, StoreError>> {
        Box::pin(async move {
            let prefix = self.full(HOSTS);
            let resp = self
                .client
                .kv_client()
                .get(prefix.as_str(), Some(GetOptions::new().with_prefix()))
                .await
                .map_err(etcd_err)?;
            Ok(resp
                .kvs()
                .iter()
                .filter_map(|kv| serde_json::from_slice(kv.value()).ok())
                .collect())
        })
    }
}
