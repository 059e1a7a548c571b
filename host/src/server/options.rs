//! What a host is configured with: `edge serve`'s settings and their defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::store::StoreSpec;

/// How long a connection may sit with no request in flight and no byte
/// moving (`--idle-timeout`).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a write may make no progress (`--send-timeout`).
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(30);

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
    /// Where the disk tier keeps its files; `None`: memory only.
    pub cache_dir: Option<PathBuf>,
    /// The most bytes of files the disk tier keeps.
    pub cache_disk_bytes: u64,
    /// Names this host in `via` headers and among the fleet's hosts; empty:
    /// the id kept in `<data-dir>/host-id`, generated on first start.
    pub host_id: String,
    /// Where compiled hooks are cached (`wasm-cache/`, `wasm-functions/`);
    /// `None`: the data dir.
    pub compile_cache_dir: Option<PathBuf>,
    /// Compile uploads on every core (`edge dev`, where a person waits);
    /// a host serving viewers leaves the other cores to its workers.
    pub parallel_compile: bool,
    /// Hook instances that may run at once.
    pub max_hook_instances: u32,
    /// MiB that hook instances kept through origin fetches and bodies read
    /// for hooks may hold in all.
    pub hook_held_memory_mib: u32,
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
    /// The internal listener of the cache cluster; `None`: this host is
    /// not a member (see [`crate::cluster`]). Needs a shared store.
    pub cluster_listen: Option<SocketAddr>,
    /// Where the other members reach the internal listener, when its
    /// bound address is not it (a listener on `0.0.0.0`, or behind NAT).
    pub cluster_advertise: Option<SocketAddr>,
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
            cache_dir: None,
            compile_cache_dir: None,
            parallel_compile: false,
            cache_disk_bytes: 10 << 30,
            host_id: String::new(),
            max_hook_instances: 1000,
            hook_held_memory_mib: 1024,
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
            cluster_listen: None,
            cluster_advertise: None,
        }
    }
}
