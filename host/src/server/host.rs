//! A running host: the wiring between the store, the control plane, the
//! cache and the proxy, started on its listeners and shut down with them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::connection::ViewerLimits;
use super::https::TlsViewers;
use super::listen::{serve_control, serve_members, serve_viewers};
use super::options::HostOptions;
use super::{data_dir, deadline, handover, host_id, shed};
use crate::cache::SharedCache;
use crate::cache::disk::DiskTier;
use crate::control::PlaneParts;
use crate::control::{ControlApi, ControlOptions, ControlPlane};
use crate::metrics::Metrics;
use crate::origin::OriginFetcher;
use crate::proxy::Proxy;
use crate::proxy::routing::Routing;
use crate::store::{EmbeddedStore, EtcdStore, Store, StoreError, StoreSpec};
use crate::tls;
use crate::wasm::{HookRuntime, KvData, RuntimeOptions};

/// Why a host could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Prepare(#[from] data_dir::DataDirError),
    #[error("data dir {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Runtime(#[from] crate::wasm::RuntimeError),
    #[error("origin CA file {path}: {reason}")]
    OriginCa { path: PathBuf, reason: String },
    #[error("TLS: {0}")]
    Tls(#[from] tls::CertificateError),
    #[error("handing over the listeners: {0}")]
    Handover(std::io::Error),
    /// Another live host of the fleet reports under this host's id.
    #[error(
        "another live host already uses --host-id {id}; give this host its own --host-id {}",
        host_id_remedy(.kept_in.as_deref())
    )]
    HostIdInUse {
        id: String,
        kept_in: Option<PathBuf>,
    },
    #[error("access log {path}: {source}")]
    AccessLog {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    #[error(transparent)]
    CacheDir(#[from] crate::cache::disk::DiskError),
    /// The cluster listener is bound to an address other hosts cannot use.
    #[error(
        "the cluster listener {0} is on every interface: other members cannot reach that address"
    )]
    ClusterAddress(SocketAddr),
}

impl StartError {
    /// What the operator can do about this error, where there is one thing
    /// to say.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Self::Prepare(_) | Self::DataDir { .. } => {
                Some("give --data-dir (EDGE_DATA_DIR) a directory this user may create and write")
            }
            Self::Bind { source, .. } if source.kind() == std::io::ErrorKind::AddrInUse => Some(
                "another process listens there: stop it, or move this host with --listen / --control",
            ),
            Self::Bind { .. } => Some("check the --listen / --control / --tls-listen addresses"),
            Self::Store(StoreError::Database(message)) if message.contains("already open") => Some(
                "another edge serve uses this data dir: stop it, start this one with --take-over, or give another --data-dir",
            ),
            Self::Store(StoreError::Unavailable(_)) => {
                Some("check that the store in --store answers (etcd's client URL)")
            }
            Self::Cluster(crate::cluster::ClusterError::NoFleet) => {
                Some("start every member with the same --store etcd://host:port")
            }
            Self::CacheDir(_) => {
                Some("give --cache-dir (EDGE_CACHE_DIR) a directory this user may create and write")
            }
            Self::ClusterAddress(_) => {
                Some("give --cluster-advertise the address other hosts reach this one at")
            }
            _ => None,
        }
    }
}

/// The second half of [`StartError::HostIdInUse`]'s advice.
fn host_id_remedy(kept_in: Option<&Path>) -> String {
    match kept_in {
        Some(path) => format!(
            "or remove {} (copied from that host's data dir?) so this host generates its own",
            path.display()
        ),
        None => "or stop the other host first".to_owned(),
    }
}

/// A host serving viewers and its control API until shut down.
#[derive(Debug)]
pub struct RunningHost {
    pub viewer_addr: SocketAddr,
    /// The HTTPS viewer listener, when there is one.
    pub tls_addr: Option<SocketAddr>,
    pub control_addr: SocketAddr,
    /// Where the other members of the cache cluster reach this host, when
    /// it is one.
    pub cluster_addr: Option<SocketAddr>,
    pub token: String,
    /// Where a generated token was saved.
    pub token_path: Option<PathBuf>,
    pub control: Arc<ControlApi>,
    pub cache: SharedCache,
    shutdown: watch::Sender<bool>,
    /// Turns true when a new host took over the listeners.
    handed_over: watch::Receiver<bool>,
    tasks: JoinSet<()>,
}

impl RunningHost {
    /// Opens the store under the data dir, binds both listeners, and starts serving.
    pub async fn start(opts: HostOptions) -> Result<Self, StartError> {
        Self::start_on(opts, None).await
    }

    /// Starts serving on `inherited` listeners (taken over from a running
    /// host) instead of binding new ones.
    pub async fn start_on(
        mut opts: HostOptions,
        inherited: Option<handover::Inherited>,
    ) -> Result<Self, StartError> {
        // The handover socket keeps the path as given: an absolute one may
        // pass the 107 bytes a Unix socket's path may take.
        let given_dir = opts.data_dir.clone();
        opts.data_dir = data_dir::prepare(&opts.data_dir)?;
        let identity = host_id::resolve(&opts.data_dir, &opts.host_id).map_err(|source| {
            StartError::DataDir {
                path: opts.data_dir.join(host_id::HOST_ID_FILE),
                source,
            }
        })?;
        let (token, token_path) = match &opts.token {
            Some(t) => (t.clone(), None),
            None => {
                let path = opts.data_dir.join("token");
                let token = load_or_create_token(&path).map_err(|source| StartError::DataDir {
                    path: path.clone(),
                    source,
                })?;
                (token, Some(path))
            }
        };
        let store: Arc<dyn Store> = match &opts.store {
            StoreSpec::Embedded => {
                let path = opts.data_dir.join("edge.redb");
                data_dir::touch_private(&path)?;
                Arc::new(EmbeddedStore::open(&path)?)
            }
            StoreSpec::Etcd { endpoints } => {
                Arc::new(EtcdStore::connect(endpoints, &opts.store_prefix, opts.fleet_lease).await?)
            }
        };

        let metrics = Arc::new(Metrics::default());
        let mut cache = SharedCache::new(opts.cache_bytes, opts.max_object_bytes);
        if let Some(dir) = &opts.cache_dir {
            let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
            let capacity = opts.cache_disk_bytes;
            let path = dir.clone();
            let (tier, recovered) =
                tokio::task::spawn_blocking(move || DiskTier::open(&dir, capacity))
                    .await
                    .map_err(|e| crate::cache::disk::DiskError {
                        path,
                        source: std::io::Error::other(e),
                    })??;
            tracing::info!(
                objects = recovered.objects,
                removed = recovered.removed,
                "disk tier opened"
            );
            cache = cache.with_disk(tier, &recovered);
        }
        let routing = Arc::new(ArcSwap::from_pointee(Routing::default()));
        let extra_roots = match &opts.origin_ca_file {
            Some(path) => load_certificates(path).map_err(|reason| StartError::OriginCa {
                path: path.clone(),
                reason,
            })?,
            None => Vec::new(),
        };
        let fetcher = Arc::new(OriginFetcher::with_roots(&extra_roots));
        let compile_cache = opts.compile_cache_dir.as_ref().unwrap_or(&opts.data_dir);
        let runtime = Arc::new(HookRuntime::new(&RuntimeOptions {
            cache_dir: Some(compile_cache.join("wasm-cache")),
            function_cache_dir: Some(compile_cache.join("wasm-functions")),
            parallel_compile: opts.parallel_compile,
            held_memory_mib: opts.hook_held_memory_mib,
            max_instances: opts.max_hook_instances,
            measure_cpu: true,
            threads: opts.hook_threads,
        })?);
        let kv = Arc::new(ArcSwap::from_pointee(KvData::default()));
        let certificates = Arc::new(tls::CertStore::default());
        let dir_certificates = match &opts.tls_cert_dir {
            Some(dir) => tls::load_dir(dir)?.into_iter().map(Arc::new).collect(),
            None => Vec::new(),
        };
        let store_for_handover = store.clone();
        let store_for_cluster = store.clone();
        let cluster_listener = match opts.cluster_listen {
            Some(addr) => {
                if store.fleet().is_none() {
                    return Err(crate::cluster::ClusterError::NoFleet.into());
                }
                let listener = bind(addr, opts.reuse_port)?;
                let bound = listener
                    .local_addr()
                    .map_err(|source| StartError::Bind { addr, source })?;
                let advertised = opts.cluster_advertise.unwrap_or(bound);
                if advertised.ip().is_unspecified() {
                    return Err(StartError::ClusterAddress(advertised));
                }
                Some((listener, advertised))
            }
            None => None,
        };
        let parts = PlaneParts {
            store,
            routing: routing.clone(),
            fetcher: fetcher.clone(),
            runtime: runtime.clone(),
            kv: kv.clone(),
            metrics: metrics.clone(),
            cache: cache.clone(),
            tls: certificates.clone(),
            dir_certificates,
        };
        let options = ControlOptions {
            domain_suffix: opts.domain_suffix.clone(),
            host_id: identity.id.clone(),
            instance: identity.instance.clone(),
            cluster: cluster_listener
                .as_ref()
                .map(|(_, advertised)| advertised.to_string())
                .unwrap_or_default(),
            hook_versions_kept: opts.hook_versions_kept.max(1),
            max_hook_store_bytes: opts.max_hook_store_bytes,
        };
        let plane = Arc::new(open_plane(parts, options).await?);
        if plane.host_id_in_use().await? {
            return Err(StartError::HostIdInUse {
                id: identity.id,
                kept_in: identity.kept_in,
            });
        }
        plane.announce().await?;
        let tail = Arc::new(crate::tail::TailHub::default());
        let control = Arc::new(
            ControlApi::new(plane, token.clone(), metrics.clone(), cache.clone())
                .with_max_body(opts.max_api_body_bytes)
                .with_tail(tail.clone()),
        );
        let access_log = match &opts.access_log {
            Some(path) => Some(
                crate::access_log::AccessLog::open(path, metrics.clone()).map_err(|source| {
                    StartError::AccessLog {
                        path: path.clone(),
                        source,
                    }
                })?,
            ),
            None => None,
        };
        let cluster = match &cluster_listener {
            Some(_) => {
                let secret =
                    crate::cluster::secret(&*store_for_cluster, &crate::ids::token()).await?;
                Some(Arc::new(crate::cluster::Cluster::new(
                    &identity.id,
                    &secret,
                    fetcher.clone(),
                    metrics.clone(),
                )?))
            }
            None => None,
        };
        let proxy = Proxy::new(
            routing,
            cache.clone(),
            metrics.clone(),
            runtime,
            kv,
            fetcher,
            &identity.id,
            access_log,
            tail.clone(),
        );
        if let Some(cluster) = &cluster {
            proxy.join_cluster(cluster.clone());
        }

        let adopt = |listener: std::net::TcpListener| {
            TcpListener::from_std(listener).map_err(StartError::Handover)
        };
        let (viewer, control_listener, tls_listener) = match inherited {
            Some(inherited) => (
                adopt(inherited.viewer)?,
                adopt(inherited.control)?,
                inherited.tls.map(adopt).transpose()?,
            ),
            None => (
                bind(opts.listen, opts.reuse_port)?,
                bind(opts.control, opts.reuse_port)?,
                match opts.tls_listen {
                    Some(addr) => Some(bind(addr, opts.reuse_port)?),
                    None => None,
                },
            ),
        };
        let viewer_addr = viewer.local_addr().map_err(|source| StartError::Bind {
            addr: opts.listen,
            source,
        })?;
        let control_addr = control_listener
            .local_addr()
            .map_err(|source| StartError::Bind {
                addr: opts.control,
                source,
            })?;

        let tls_addr = match &tls_listener {
            Some(l) => Some(l.local_addr().map_err(|source| StartError::Bind {
                addr: viewer_addr,
                source,
            })?),
            None => None,
        };

        let (shutdown, rx) = watch::channel(false);
        let (handed_over_tx, handed_over) = watch::channel(false);
        let mut tasks = JoinSet::new();
        if opts.offer_handover {
            let dup = |name: &'static str, listener: &TcpListener| {
                use std::os::fd::AsFd as _;
                listener
                    .as_fd()
                    .try_clone_to_owned()
                    .map(|fd| (name, fd))
                    .map_err(StartError::Handover)
            };
            let mut offered = vec![dup("viewer", &viewer)?, dup("control", &control_listener)?];
            if let Some(tls) = &tls_listener {
                offered.push(dup("tls", tls)?);
            }
            tasks.spawn(handover::offer(
                handover::socket_path(&given_dir),
                offered,
                store_for_handover,
                handed_over_tx,
                rx.clone(),
            ));
        }
        let limits = ViewerLimits {
            max_header_count: opts.max_header_count.max(1),
            max_header_bytes: opts.max_header_bytes.max(8 << 10),
            watchdog: deadline::Watchdog {
                idle: opts.idle_timeout.max(Duration::from_millis(100)),
                send: opts.send_timeout.max(Duration::from_millis(100)),
            },
        };
        let connections = shed::Connections::new(metrics.clone());
        if let Some(listener) = tls_listener {
            let config = tls::server_config(certificates.clone())?;
            let viewers = TlsViewers {
                acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
                certificates,
                allow_domain_fronting: opts.allow_domain_fronting,
            };
            tasks.spawn(serve_viewers(
                listener,
                proxy.clone(),
                (limits, connections.clone()),
                Some(viewers),
                rx.clone(),
            ));
        }
        let heartbeat = (opts.fleet_lease / 3).max(Duration::from_millis(100));
        let cluster_addr = match (cluster_listener, cluster) {
            (Some((listener, advertised)), Some(cluster)) => {
                tasks.spawn(crate::cluster::follow(
                    cluster,
                    store_for_cluster,
                    heartbeat,
                    rx.clone(),
                ));
                tasks.spawn(serve_members(
                    listener,
                    proxy.clone(),
                    limits.watchdog,
                    rx.clone(),
                ));
                Some(advertised)
            }
            _ => None,
        };
        tasks.spawn(serve_viewers(
            viewer,
            proxy,
            (limits, connections.clone()),
            None,
            rx.clone(),
        ));
        tasks.spawn(serve_control(
            control_listener,
            control.clone(),
            (limits.watchdog, connections),
            rx.clone(),
        ));
        tasks.spawn(run_gates(control.plane().clone(), rx.clone()));
        tasks.spawn(control.plane().clone().follow(rx, heartbeat));
        tracing::info!(%viewer_addr, ?tls_addr, %control_addr, ?cluster_addr, "edge host serving");
        Ok(Self {
            viewer_addr,
            tls_addr,
            control_addr,
            cluster_addr,
            token,
            token_path,
            control,
            cache,
            shutdown,
            handed_over,
            tasks,
        })
    }

    /// Returns once a new host has taken over the listeners (never, unless
    /// `offer_handover` is set and `edge serve --take-over` ran).
    pub async fn handed_over(&mut self) {
        while !*self.handed_over.borrow_and_update() {
            if self.handed_over.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Stops accepting, lets in-flight requests finish (up to 10 s), and returns.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        let drain = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(10), drain)
            .await
            .is_err()
        {
            self.tasks.abort_all();
        }
    }

    /// Stops at once, the way a crashed host does: no draining, and on a
    /// shared store no goodbye (its report stays listed until its lease ends).
    pub async fn abort(mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }

    /// Waits until the listeners stop (they stop only on shutdown).
    pub async fn wait(&mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

/// A listening socket on `addr`; with `reuse_port`, one that another host
/// with the same option can bind too (a handover: the new host starts, the
/// old one drains).
fn bind(addr: SocketAddr, reuse_port: bool) -> Result<TcpListener, StartError> {
    let bound = (|| {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        if reuse_port {
            socket.set_reuseport(true)?;
        }
        socket.bind(addr)?;
        socket.listen(1024)
    })();
    bound.map_err(|source| StartError::Bind { addr, source })
}

/// Loads the config to serve first. A shared store that cannot be reached
/// is retried with backoff: a host of a fleet never serves an empty config
/// in place of the fleet's (an embedded store fails at once instead).
async fn open_plane(
    parts: PlaneParts,
    options: ControlOptions,
) -> Result<ControlPlane, StoreError> {
    let mut wait = Duration::from_millis(200);
    loop {
        match ControlPlane::open(parts.clone(), options.clone()).await {
            Err(StoreError::Unavailable(reason)) if parts.store.fleet().is_some() => {
                tracing::warn!(%reason, retry_in = ?wait, "the config store cannot be reached; not serving until it can");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            opened => return opened,
        }
    }
}

/// The certificates of a PEM file (at least one).
fn load_certificates(
    path: &Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject as _;
    let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
        .map_err(|e| e.to_string())?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no PEM certificate in it".to_owned());
    }
    Ok(certs)
}

fn load_or_create_token(path: &Path) -> std::io::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(t) if !t.trim().is_empty() => return Ok(t.trim().to_owned()),
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    let token = crate::ids::token();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    use std::io::Write as _;
    let mut file = options.open(path)?;
    file.write_all(token.as_bytes())?;
    file.sync_all()?;
    Ok(token)
}

/// How often the automatic gates of continuous-deployment policies look at
/// the staging arms' counts.
const GATE_INTERVAL: Duration = Duration::from_secs(1);

async fn run_gates(plane: Arc<ControlPlane>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(GATE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => plane.check_gates().await,
            _ = shutdown.changed() => break,
        }
    }
}
