//! A running host: the viewer and control listeners and the wiring between the
//! store, the control plane, the cache and the proxy.

pub mod data_dir;
pub mod deadline;
pub(crate) mod framing;
pub(crate) mod h2_trailers;
pub mod handover;
pub mod host_id;
mod shed;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::cache::SharedCache;
use crate::control::state::PlaneParts;
use crate::control::{ControlApi, ControlOptions, ControlPlane};
use crate::metrics::Metrics;
use crate::origin::OriginFetcher;
use crate::proxy::Proxy;
use crate::proxy::routing::Routing;
use crate::store::{EmbeddedStore, EtcdStore, Store, StoreError, StoreSpec};
use crate::tls;
use crate::wasm::{HookRuntime, KvData, RuntimeOptions};

/// How long an idle viewer may take to send a request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a connection may sit with no request in flight and no byte
/// moving (`--idle-timeout`).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a write may make no progress (`--send-timeout`).
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a viewer may take to finish a TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything `edge serve` is configured with.
#[derive(Debug, Clone)]
pub struct HostOptions {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub control: SocketAddr,
    /// The control API's bearer token; generated and saved under the data dir
    /// when not given.
    pub token: Option<String>,
    pub domain_suffix: String,
    pub cache_bytes: u64,
    pub max_object_bytes: u64,
    /// Names this host in `via` headers and among the fleet's hosts; empty:
    /// the id kept in `<data-dir>/host-id`, generated on first start.
    pub host_id: String,
    /// Hook instances that may run at once.
    pub max_hook_instances: u32,
    /// Threads, below the workers' CPU priority, that take over hook
    /// invocations running past 250 µs; 0 keeps every invocation on the
    /// workers.
    pub hook_threads: usize,
    /// PEM certificates trusted for HTTPS origins besides the system's roots.
    pub origin_ca_file: Option<PathBuf>,
    /// Header fields a viewer request may carry (more: 431).
    pub max_header_count: usize,
    /// Bytes a viewer request head may take (more: 431); at least 8 KiB.
    pub max_header_bytes: usize,
    /// The viewer listener for HTTPS (HTTP/2 and HTTP/1.1 by ALPN).
    pub tls_listen: Option<SocketAddr>,
    /// A directory of `*.pem` files (chain and key) served beside the
    /// certificates uploaded through the API.
    pub tls_cert_dir: Option<PathBuf>,
    /// Where the config lives: the embedded database, or etcd for a fleet.
    pub store: StoreSpec,
    /// The key prefix of the fleet's config in etcd.
    pub store_prefix: String,
    /// How long a host stays listed among the fleet's hosts after its last
    /// renewal.
    pub fleet_lease: Duration,
    /// Where distributions with logging on write access logs (`-`: stdout).
    pub access_log: Option<PathBuf>,
    /// Largest JSON body the control API reads (more: 413).
    pub max_api_body_bytes: usize,
    /// Bind the listeners with `SO_REUSEPORT`, so a new host can take over
    /// the ports while this one drains.
    pub reuse_port: bool,
    /// Offer the listeners to a new host (`edge serve --take-over`) on
    /// `<data-dir>/handover.sock`.
    pub offer_handover: bool,
    /// A connection with no request in flight and no byte moving this long
    /// is closed (viewer and control listeners).
    pub idle_timeout: Duration,
    /// A connection whose writes make no progress this long is closed.
    pub send_timeout: Duration,
    /// Versions of one hook kept; older ones no config pins are pruned.
    pub hook_versions_kept: usize,
    /// The most bytes of hook modules the store may hold (more: refused).
    pub max_hook_store_bytes: u64,
    /// Serve TLS requests whose host the connection's certificate does not
    /// cover (SNI for one name, `Host` for another) instead of answering
    /// 421.
    pub allow_domain_fronting: bool,
}

impl HostOptions {
    /// Defaults for a data dir: loopback listeners on 8080 and 9901, 256 MiB of
    /// cache, objects up to 16 MiB stored.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            control: SocketAddr::from(([127, 0, 0, 1], 9901)),
            token: None,
            domain_suffix: "edge.internal".to_owned(),
            cache_bytes: 256 << 20,
            max_object_bytes: 16 << 20,
            host_id: String::new(),
            max_hook_instances: 1000,
            hook_threads: std::thread::available_parallelism().map_or(1, usize::from),
            origin_ca_file: None,
            max_header_count: 100,
            max_header_bytes: 64 << 10,
            tls_listen: None,
            tls_cert_dir: None,
            store: StoreSpec::Embedded,
            store_prefix: "/edge".to_owned(),
            fleet_lease: Duration::from_secs(10),
            access_log: None,
            max_api_body_bytes: crate::control::MAX_JSON_BODY,
            reuse_port: false,
            offer_handover: false,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            send_timeout: DEFAULT_SEND_TIMEOUT,
            hook_versions_kept: 5,
            max_hook_store_bytes: 1 << 30,
            allow_domain_fronting: false,
        }
    }
}

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
        let cache = SharedCache::new(opts.cache_bytes, opts.max_object_bytes);
        let routing = Arc::new(ArcSwap::from_pointee(Routing::default()));
        let extra_roots = match &opts.origin_ca_file {
            Some(path) => load_certificates(path).map_err(|reason| StartError::OriginCa {
                path: path.clone(),
                reason,
            })?,
            None => Vec::new(),
        };
        let fetcher = Arc::new(OriginFetcher::with_roots(&extra_roots));
        let runtime = Arc::new(HookRuntime::new(&RuntimeOptions {
            cache_dir: Some(opts.data_dir.join("wasm-cache")),
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
        let control = Arc::new(
            ControlApi::new(plane, token.clone(), metrics.clone(), cache.clone())
                .with_max_body(opts.max_api_body_bytes),
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
        let proxy = Proxy::new(
            routing,
            cache.clone(),
            metrics.clone(),
            runtime,
            kv,
            fetcher,
            &identity.id,
            access_log,
        );

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
        tasks.spawn(
            control
                .plane()
                .clone()
                .follow(rx, (opts.fleet_lease / 3).max(Duration::from_millis(100))),
        );
        tracing::info!(%viewer_addr, ?tls_addr, %control_addr, "edge host serving");
        Ok(Self {
            viewer_addr,
            tls_addr,
            control_addr,
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

/// Limits on what a viewer request head may hold.
#[derive(Debug, Clone, Copy)]
struct ViewerLimits {
    max_header_count: usize,
    max_header_bytes: usize,
    /// When a connection is closed for idling or for not reading.
    watchdog: deadline::Watchdog,
}

impl ViewerLimits {
    /// hyper's read buffer: twice the head limit, so that hyper parses
    /// every head up to the limit however its bytes arrive, and the watch
    /// on the connection (`framing.rs`) refuses the longer ones exactly.
    fn parser_buffer(&self) -> usize {
        self.max_header_bytes.saturating_mul(2)
    }
}

/// What the HTTPS viewer listener serves with.
#[derive(Clone)]
struct TlsViewers {
    acceptor: tokio_rustls::TlsAcceptor,
    /// Where the handshakes' certificates come from.
    certificates: Arc<tls::CertStore>,
    /// `--allow-domain-fronting`.
    allow_domain_fronting: bool,
}

async fn serve_viewers(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    (limits, connections): (ViewerLimits, Arc<shed::Connections>),
    tls: Option<TlsViewers>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    let mut reserve = shed::Reserve::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    out_of_descriptors(&err, &connections, &mut reserve, "viewer").await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        reserve.refill();
        let _ = stream.set_nodelay(true);
        let (proxy, stop, tls) = (proxy.clone(), shutdown.clone(), tls.clone());
        let registered = connections.register();
        conns.spawn(async move {
            let serve = async {
                match tls {
                    None => serve_plain(stream, peer, proxy, (limits, &registered), stop).await,
                    Some(tls) => {
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.acceptor.accept(stream))
                            .await
                        {
                            Ok(Ok(stream)) => {
                                // Boxed, so a plain connection's task is not
                                // sized for a TLS one's state.
                                Box::pin(serve_tls(
                                    stream,
                                    peer,
                                    &tls,
                                    proxy,
                                    (limits, &registered),
                                    stop,
                                ))
                                .await;
                            }
                            Ok(Err(err)) => {
                                tracing::debug!(%peer, error = %err, "TLS handshake failed");
                            }
                            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                        }
                    }
                }
            };
            tokio::select! {
                () = serve => {}
                () = registered.shed() => {
                    tracing::debug!(%peer, "idle viewer connection closed: out of file descriptors");
                }
            }
        });
        // Reap finished connection tasks so the set does not grow.
        while conns.try_join_next().is_some() {}
    }
    while conns.join_next().await.is_some() {}
}

/// After a failed accept: out of descriptors, frees the reserve and sheds
/// the longest-idle viewer connections; backs off when that freed nothing
/// (or for any other error), so the loop never spins on a listener that
/// stays readable.
async fn out_of_descriptors(
    err: &std::io::Error,
    connections: &shed::Connections,
    reserve: &mut shed::Reserve,
    listener: &str,
) {
    if shed::is_descriptor_exhaustion(err) {
        connections.note_exhausted();
        reserve.release();
        let shed = connections.shed_idle(shed::SHED_BATCH);
        tracing::warn!(
            listener,
            shed,
            "accept failed: out of file descriptors; shedding idle viewer connections"
        );
        if shed > 0 {
            // Let the shed connections' tasks run and close their sockets.
            tokio::task::yield_now().await;
            return;
        }
    } else {
        tracing::warn!(listener, error = %err, "accept failed");
    }
    tokio::time::sleep(shed::ACCEPT_BACKOFF).await;
}

/// How long a new connection's first request is waited for once the host
/// stops.
const FIRST_REQUEST_GRACE: Duration = Duration::from_secs(1);

/// The start of the HTTP/2 connection preface (prior knowledge, h2c).
const H2_PREFACE_START: &[u8] = b"PRI ";

/// What the service saw of the request a one-request HTTP/1 connection
/// serves.
#[derive(Debug, Default)]
struct Cycle {
    /// The request had no body and lets the connection live on (HTTP/1.1,
    /// no `Connection: close`): once its response head is out, the parser
    /// may be let go and the connection parked.
    parkable: std::sync::atomic::AtomicBool,
}

/// Serves a plain-TCP viewer connection, holding no parser state or buffers
/// while it sits idle between requests (as nginx frees its buffers on idle
/// keep-alive connections): each request gets a fresh HTTP/1 connection
/// state; once a bodiless request's response head is out, the parser is
/// asked to stop after that response, the socket is taken back with any
/// bytes read ahead, and the connection waits for its next request with
/// only the socket. Anything else (HTTP/2 prior knowledge, a request with a
/// body, `Connection: close`, HTTP/1.0) is served by the parser to the end as
/// before.
async fn serve_plain(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    proxy: Arc<Proxy>,
    (limits, registered): (ViewerLimits, &shed::Registered),
    mut stop: watch::Receiver<bool>,
) {
    // A new connection's viewer has its first request on the way: when the
    // host stops meanwhile (a drain or a takeover), it is still waited for,
    // briefly, and answered.
    let first = tokio::select! {
        ready = stream.readable() => ready.is_ok(),
        () = tokio::time::sleep(HEADER_READ_TIMEOUT.min(limits.watchdog.idle)) => false,
        _ = stop.changed() => {
            tokio::time::timeout(FIRST_REQUEST_GRACE, stream.readable())
                .await
                .is_ok_and(|ready| ready.is_ok())
        }
    };
    if !first {
        return;
    }
    let mut start = [0u8; 4];
    match stream.peek(&mut start).await {
        Ok(0) | Err(_) => return,
        Ok(n) if H2_PREFACE_START.starts_with(&start[..n]) => {
            let viewer = Viewer {
                peer,
                tls: false,
                certificate: None,
            };
            Box::pin(serve_connection(
                stream,
                viewer,
                Protocol::Detect,
                proxy,
                (limits, registered),
                stop,
            ))
            .await;
            return;
        }
        Ok(_) => {}
    }
    let (stream, progress) = deadline::Timed::new(stream);
    registered.track(&progress);
    let expired = limits.watchdog.expired(progress.clone());
    let serve = serve_plain_cycles(stream, progress, peer, proxy, limits, stop);
    tokio::select! {
        () = serve => {}
        why = expired => {
            tracing::debug!(%peer, deadline = why.as_str(), "viewer connection closed: past its deadline");
        }
    }
}

/// [`serve_plain`]'s request cycles on a connection past its first byte.
async fn serve_plain_cycles(
    stream: deadline::Timed<tokio::net::TcpStream>,
    progress: Arc<deadline::Progress>,
    peer: SocketAddr,
    proxy: Arc<Proxy>,
    limits: ViewerLimits,
    mut stop: watch::Receiver<bool>,
) {
    use std::sync::atomic::{AtomicU64, Ordering};

    let (mut io, framing) =
        framing::Watched::new(stream, limits.max_header_bytes, limits.max_header_count);
    let served = Arc::new(AtomicU64::new(0));
    let mut leftover = bytes::Bytes::new();
    let mut stopped = Box::pin(async move {
        if !*stop.borrow_and_update() {
            let _ = stop.changed().await;
        }
    });
    loop {
        if leftover.is_empty() && served.load(Ordering::Relaxed) > 0 {
            let idle = tokio::select! {
                ready = io.get_ref().get_ref().readable() => ready.is_ok(),
                () = stopped.as_mut() => false,
                () = tokio::time::sleep(HEADER_READ_TIMEOUT) => false,
            };
            if !idle {
                return;
            }
        }
        framing.clear_wrote();
        let cycle = Arc::new(Cycle::default());
        let service = {
            let (served, framing, cycle, proxy, progress) = (
                served.clone(),
                framing.clone(),
                cycle.clone(),
                proxy.clone(),
                progress.clone(),
            );
            service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                use hyper::body::Body as _;
                let index = served.fetch_add(1, Ordering::Relaxed);
                if framing.is_ambiguous(index) {
                    req.extensions_mut().insert(crate::proxy::AmbiguousFraming);
                }
                if framing.is_oversized(index) {
                    req.extensions_mut().insert(crate::proxy::OversizedHead);
                }
                // This request's response head has not gone out yet.
                framing.clear_wrote();
                let closing = req
                    .headers()
                    .get_all(http::header::CONNECTION)
                    .iter()
                    .any(|v| {
                        v.to_str().is_ok_and(|v| {
                            v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close"))
                        })
                    });
                cycle.parkable.store(
                    req.version() == http::Version::HTTP_11
                        && !closing
                        && req.body().is_end_stream(),
                    Ordering::Release,
                );
                let in_flight = progress.request();
                let handled = proxy.clone().handle(req, peer, false);
                Box::pin(async move {
                    let response = handled.await;
                    drop(in_flight);
                    response
                })
            })
        };
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .keep_alive(true)
            .max_headers(limits.max_header_count)
            .max_buf_size(limits.parser_buffer());
        let mut conn = Box::new(builder.serve_connection(
            TokioIo::new(framing::Rewind::new(std::mem::take(&mut leftover), io)),
            service,
        ));
        let (mut asked, mut stop_asked, mut stopping) = (false, false, false);
        let ended = std::future::poll_fn(|cx| {
            loop {
                if let std::task::Poll::Ready(result) = conn.poll_without_shutdown(cx) {
                    return std::task::Poll::Ready(result);
                }
                if !stop_asked && stopped.as_mut().poll(cx).is_ready() {
                    stop_asked = true;
                }
                // The host stops: end the connection after the response
                // going out (a cycle starts with a request arriving, which
                // is answered rather than reset).
                if stop_asked && !stopping && framing.wrote() {
                    stopping = true;
                    std::pin::Pin::new(&mut *conn).graceful_shutdown();
                    continue;
                }
                if !asked && framing.wrote() && cycle.parkable.load(Ordering::Acquire) {
                    asked = true;
                    std::pin::Pin::new(&mut *conn).graceful_shutdown();
                    continue;
                }
                return std::task::Poll::Pending;
            }
        })
        .await;
        if let Err(err) = &ended {
            tracing::debug!(%peer, error = %err, "viewer connection ended with an error");
        }
        // The parser stopped on its own (the viewer closed, an error, a
        // request it would not keep the connection for) or the host stops:
        // the connection ends here, as it would have.
        if ended.is_err() || !asked || stop_asked {
            let parts = conn.into_parts();
            let mut rewind = parts.io.into_inner();
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut rewind).await;
            return;
        }
        let parts = conn.into_parts();
        let (unread, watched) = parts.io.into_inner().into_parts();
        io = watched;
        leftover = if unread.is_empty() {
            parts.read_buf
        } else {
            let mut all = bytes::BytesMut::from(&parts.read_buf[..]);
            all.extend_from_slice(&unread);
            all.freeze()
        };
    }
}

/// The HTTP/2 connection preface (RFC 9113 3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What a client that agreed on `h2` but sent no preface gets (RFC 9113
/// 3.4): the server's preface (an empty SETTINGS frame), then a GOAWAY with
/// last stream 0 and PROTOCOL_ERROR.
const H2_BAD_PREFACE: [u8; 26] = [
    0, 0, 0, 0x4, 0, 0, 0, 0, 0, // SETTINGS, no settings
    0, 0, 8, 0x7, 0, 0, 0, 0, 0, // GOAWAY, 8 bytes, stream 0
    0, 0, 0, 0, // last stream id
    0, 0, 0, 0x1, // PROTOCOL_ERROR
];

/// Which protocol a connection is served with.
#[derive(Debug, Clone, Copy)]
enum Protocol {
    /// HTTP/2 when the bytes start with its preface, HTTP/1.1 otherwise
    /// (prior knowledge in clear).
    Detect,
    /// HTTP/1.1 alone (TLS agreed on `http/1.1`, or on nothing).
    Http1,
    /// HTTP/2 alone (TLS agreed on `h2`).
    Http2,
}

/// Who a viewer connection is, for each of its requests.
#[derive(Debug, Clone)]
struct Viewer {
    peer: SocketAddr,
    tls: bool,
    /// The certificate a TLS connection was opened with, when requests are
    /// held to its names (no `--allow-domain-fronting`).
    certificate: Option<tls::ServedCertificate>,
}

/// Serves a viewer connection past its TLS handshake in the protocol ALPN
/// agreed on and in that one alone (RFC 9113 3.2, RFC 7301): after `h2`,
/// bytes that are not the HTTP/2 preface get a GOAWAY and the connection
/// closes; after `http/1.1` (or no ALPN), an HTTP/2 preface is an HTTP/1.1
/// request hyper refuses.
async fn serve_tls(
    mut stream: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    peer: SocketAddr,
    tls: &TlsViewers,
    proxy: Arc<Proxy>,
    (limits, registered): (ViewerLimits, &shed::Registered),
    stop: watch::Receiver<bool>,
) {
    let (_, session) = stream.get_ref();
    let h2 = session.alpn_protocol() == Some(b"h2");
    // Without SNI there is no handshake (the resolver has no name to choose
    // by), so every connection here has the certificate of its name.
    let certificate = (!tls.allow_domain_fronting).then(|| {
        tls::ServedCertificate::for_name(&tls.certificates, session.server_name().unwrap_or(""))
    });
    let viewer = Viewer {
        peer,
        tls: true,
        certificate,
    };
    let (prefix, protocol) = if h2 {
        match read_preface(&mut stream, limits, stop.clone()).await {
            Some(preface) => (preface, Protocol::Http2),
            None => return,
        }
    } else {
        (bytes::Bytes::new(), Protocol::Http1)
    };
    let io = framing::Rewind::new(prefix, stream);
    serve_connection(io, viewer, protocol, proxy, (limits, registered), stop).await;
}

/// Reads the HTTP/2 preface of a connection that agreed on `h2`, within the
/// head timeout (and a moment once the host stops). Anything else is
/// answered with a GOAWAY and the connection closed; `None` then, and when
/// the viewer closes or stays silent.
async fn read_preface<IO>(
    io: &mut IO,
    limits: ViewerLimits,
    mut stop: watch::Receiver<bool>,
) -> Option<bytes::Bytes>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let read = async {
        let mut got = [0u8; H2_PREFACE.len()];
        let mut filled = 0;
        while filled < got.len() {
            let n = io.read(&mut got[filled..]).await.ok()?;
            if n == 0 {
                return None;
            }
            if got[filled..filled + n] != H2_PREFACE[filled..filled + n] {
                return Some(Err(()));
            }
            filled += n;
        }
        Some(Ok(bytes::Bytes::copy_from_slice(&got)))
    };
    tokio::pin!(read);
    let read = tokio::select! {
        got = tokio::time::timeout(HEADER_READ_TIMEOUT.min(limits.watchdog.idle), &mut read) => got,
        _ = stop.changed() => tokio::time::timeout(FIRST_REQUEST_GRACE, &mut read).await,
    };
    match read.ok().flatten()? {
        Ok(preface) => Some(preface),
        Err(()) => {
            let refuse = async {
                io.write_all(&H2_BAD_PREFACE).await?;
                io.shutdown().await
            };
            let _ = tokio::time::timeout(limits.watchdog.send, refuse).await;
            None
        }
    }
}

/// Serves one viewer connection in `protocol` until it ends or the host
/// shuts down.
async fn serve_connection<IO>(
    io: IO,
    viewer: Viewer,
    protocol: Protocol,
    proxy: Arc<Proxy>,
    (limits, registered): (ViewerLimits, &shed::Registered),
    mut stop: watch::Receiver<bool>,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let Viewer {
        peer,
        tls,
        certificate,
    } = viewer;
    let (io, progress) = deadline::Timed::new(io);
    registered.track(&progress);
    let (io, framing) = framing::Watched::new(io, limits.max_header_bytes, limits.max_header_count);
    let io = h2_trailers::Watched::new(io, !matches!(protocol, Protocol::Http1));
    let served = std::sync::atomic::AtomicU64::new(0);
    let watched = progress.clone();
    let service = service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
        let index = served.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if framing.is_ambiguous(index) {
            req.extensions_mut().insert(crate::proxy::AmbiguousFraming);
        }
        if framing.is_oversized(index) {
            req.extensions_mut().insert(crate::proxy::OversizedHead);
        }
        if let Some(certificate) = &certificate {
            req.extensions_mut().insert(certificate.clone());
        }
        let in_flight = watched.request();
        let handled = proxy.clone().handle(req, peer, tls);
        // Boxed: hyper keeps the space for one in-flight request future for
        // the life of the connection, and the proxy's future is tens of KiB.
        // Boxing each request's future keeps an idle keep-alive connection
        // from holding that space.
        Box::pin(async move {
            let response = handled.await;
            drop(in_flight);
            response
        })
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let mut builder = match protocol {
        Protocol::Detect => builder,
        Protocol::Http1 => builder.http1_only(),
        Protocol::Http2 => builder.http2_only(),
    };
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true)
        .max_headers(limits.max_header_count)
        .max_buf_size(limits.parser_buffer());
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let expired = limits.watchdog.expired(progress.clone());
    tokio::pin!(expired);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(err) = res {
                tracing::debug!(%peer, error = %err, "viewer connection ended with an error");
            }
        }
        why = expired.as_mut() => {
            tracing::debug!(%peer, deadline = why.as_str(), "viewer connection closed: past its deadline");
        }
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                _ = conn => {}
                why = expired => {
                    tracing::debug!(%peer, deadline = why.as_str(), "viewer connection closed while draining: past its deadline");
                }
            }
        }
    }
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

async fn serve_control(
    listener: TcpListener,
    api: Arc<ControlApi>,
    (watchdog, viewers): (deadline::Watchdog, Arc<shed::Connections>),
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    let mut reserve = shed::Reserve::new();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Viewers that exhausted the descriptors do not lock
                    // the operator out: their idle connections go first.
                    out_of_descriptors(&err, &viewers, &mut reserve, "control").await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        reserve.refill();
        let api = api.clone();
        let mut stop = shutdown.clone();
        conns.spawn(async move {
            let (stream, progress) = deadline::Timed::new(stream);
            let watched = progress.clone();
            let service = service_fn(move |req| {
                let in_flight = watched.request();
                let handled = api.clone().handle(req);
                async move {
                    let response = handled.await;
                    drop(in_flight);
                    response
                }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT.min(watchdog.idle))
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let expired = watchdog.expired(progress);
            tokio::select! {
                _ = conn.as_mut() => {}
                why = expired => {
                    tracing::debug!(deadline = why.as_str(), "control connection closed: past its deadline");
                }
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
        while conns.try_join_next().is_some() {}
    }
    while conns.join_next().await.is_some() {}
}
