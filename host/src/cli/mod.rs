//! The `edge` command line: `serve` and `demo` run a host; every other verb
//! talks to a host's control API, in the shape operators know from `aws
//! cloudfront` (`edge dist update --if-match E7 --config f.json`).
//!
//! - [`client`]: the HTTP client of the control API and its errors.
//! - [`verbs`]: which file serves each client verb; one file per resource,
//!   as [`Command`] groups them: [`dist`] (distributions), [`alias`],
//!   [`cd`] (staging copies, policies, promote), [`invalidate`] (and
//!   `edge invalidations`), [`hook`], [`kv`], [`import`] (from CloudFront).
//! - [`edit`]: `edge dist edit`, the config in the operator's editor.
//! - [`files`]: the documents verbs read (a config as `get-config` printed it).
//! - [`render`]: how answers are printed (tables, JSON, ids).
//!
//! Every client verb takes `--endpoint` (`EDGE_ENDPOINT`, default
//! `http://127.0.0.1:9901`), `--token` (`EDGE_TOKEN`, else the file named by
//! `--token-file` / `EDGE_TOKEN_FILE`, default `./edge-data/token`, the one
//! `edge serve` generates) and `--output table|json`. An API error prints its
//! code and message to stderr and exits 1; a usage error exits 2.

mod alias;
mod cd;
pub mod client;
pub mod dev;
mod dist;
mod edit;
mod files;
mod har;
mod hook;
pub mod hook_test;
mod import;
mod invalidate;
mod kv;
mod render;
pub mod scaffold;
mod secret;
mod tail;
mod verbs;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use client::{ApiClient, CliError};

/// The whole command line.
#[derive(Debug, Parser)]
#[command(
    name = "edge",
    version,
    about = "A self-hosted, programmable edge router: run a host, or drive one through its control API"
)]
pub struct Cli {
    /// How client verbs print: `table` for people, `json` (the API's own
    /// answer) for scripts, `id` for the id alone
    /// (`STAGING=$(edge cd create-staging E1 -o id)`). Anywhere on the line.
    #[arg(short, long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    #[command(subcommand)]
    pub command: Command,
}

/// Where `edge hook test` and `edge dev` keep compiled hooks, so a run
/// after the first compiles nothing it compiled before: `--compile-cache DIR`
/// or `EDGE_COMPILE_CACHE`, else `$XDG_CACHE_HOME/edge`, else
/// `~/.cache/edge` (the same `wasm-cache/` and `wasm-functions/` folders a
/// host keeps under its data dir).
#[derive(Debug, Clone, Args)]
pub struct CompileCacheArgs {
    /// The folder compiled hooks are cached in.
    #[arg(long = "compile-cache", env = "EDGE_COMPILE_CACHE", value_name = "DIR")]
    pub compile_cache: Option<PathBuf>,
}

impl CompileCacheArgs {
    /// The folder to use (absolute); `None` when there is no home to put
    /// it in.
    pub fn dir(&self) -> Option<PathBuf> {
        if let Some(dir) = &self.compile_cache {
            return Some(std::path::absolute(dir).unwrap_or_else(|_| dir.clone()));
        }
        let nonempty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        nonempty("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| nonempty("HOME").map(|home| PathBuf::from(home).join(".cache")))
            .map(|base| base.join("edge"))
    }
}

/// The top-level verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve viewers and the control API from the configs under the data dir.
    Serve(ServeArgs),
    /// Start a host with two built-in origins and a demo distribution, and print
    /// what to try.
    Demo(DemoArgs),
    /// A local host for one distribution that reloads its config and hooks
    /// the moment their files change (the real cache, runtime and limits).
    Dev(dev::DevArgs),
    /// Distributions: create, read, update, copy, delete, and wait for a change
    /// to be deployed.
    #[command(subcommand)]
    Dist(DistCommand),
    /// Aliases: move one to another distribution in one atomic step.
    #[command(subcommand)]
    Alias(AliasCommand),
    /// Continuous deployment: staging copies, traffic policies, promote.
    #[command(subcommand)]
    Cd(CdCommand),
    /// Drop cached objects of a distribution by path (`'/img/*'` for a prefix, quoted)
    /// or by tag (`--tag`), or with `--soft` mark them stale.
    Invalidate(InvalidateArgs),
    /// List a distribution's invalidations, newest first.
    Invalidations(IdArgs),
    /// Hooks: upload a WebAssembly component, list hooks and versions.
    #[command(subcommand)]
    Hook(HookCommand),
    /// Key-value data that hooks read (a green weight, a feature flag).
    #[command(subcommand)]
    Kv(KvCommand),
    /// Secrets hooks read (an API key, a signing key): set, listed by name,
    /// never shown.
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Watch hook log lines and access records as they happen.
    Tail(TailArgs),
    /// Bring a distribution over from another CDN.
    #[command(subcommand)]
    Import(ImportCommand),
}

/// `edge import ...`.
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Create a distribution from `aws cloudfront get-distribution-config`
    /// output, and list every setting that could not be carried.
    Cloudfront {
        /// The JSON file (`-` for stdin).
        file: PathBuf,
        /// A custom origin request policy a behavior names: the output of
        /// `aws cloudfront get-origin-request-policy --id ...` (repeatable).
        #[arg(long = "origin-request-policy", value_name = "FILE")]
        origin_request_policies: Vec<PathBuf>,
        /// Print the Edge config and what is not carried; create nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        conn: Connection,
    },
}

/// `edge serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where the config store and the generated token live.
    #[arg(long, env = "EDGE_DATA_DIR", default_value = "./edge-data")]
    pub data_dir: PathBuf,
    /// The viewer listener.
    #[arg(long, env = "EDGE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The control API listener (keep it on loopback or a private network).
    #[arg(long, env = "EDGE_CONTROL", default_value = "127.0.0.1:9901")]
    pub control: SocketAddr,
    /// The control API's bearer token; generated into <data-dir>/token if unset.
    #[arg(long, env = "EDGE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Distributions are named `<id>.<suffix>`.
    #[arg(long, env = "EDGE_DOMAIN_SUFFIX", default_value = "edge.internal")]
    pub domain_suffix: String,
    /// Bytes the shared cache may hold.
    #[arg(long, env = "EDGE_CACHE_BYTES", default_value_t = 256 << 20)]
    pub cache_bytes: u64,
    /// Larger bodies stream through without being stored.
    #[arg(long, env = "EDGE_MAX_OBJECT_BYTES", default_value_t = 16 << 20)]
    pub max_object_bytes: u64,
    /// Keep every stored object on disk here too (made if missing): what
    /// memory lets go is served from disk, and a restarted host serves its
    /// hits at once. Unset: memory only.
    #[arg(long, env = "EDGE_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Bytes of files the disk tier may hold (the oldest writes go first).
    #[arg(long, env = "EDGE_CACHE_DISK_BYTES", default_value_t = 10 << 30, requires = "cache_dir")]
    pub cache_disk_bytes: u64,
    /// Names this host in `via` headers and, on a shared store, among the
    /// fleet's hosts (each host of a fleet needs its own); if unset, one is
    /// generated into <data-dir>/host-id and kept.
    #[arg(long, env = "EDGE_HOST_ID")]
    pub host_id: Option<String>,
    /// Where the config lives: `embedded` (a database under --data-dir, one
    /// host) or `etcd://host:port[,host:port...]` (shared by a fleet).
    #[arg(long, env = "EDGE_STORE", default_value = "embedded")]
    pub store: crate::store::StoreSpec,
    /// The key prefix of this fleet's config in etcd.
    #[arg(long, env = "EDGE_STORE_PREFIX", default_value = "/edge")]
    pub store_prefix: String,
    /// Seconds a host stays listed among the fleet's hosts after its last
    /// renewal (it renews every third of that).
    #[arg(long, env = "EDGE_FLEET_LEASE_SECONDS", default_value_t = 10)]
    pub fleet_lease_seconds: u64,
    /// Worker threads serving requests (default: one per core).
    #[arg(long, env = "EDGE_WORKERS")]
    pub workers: Option<usize>,
    /// Hook instances that may run at once (pooling allocator slots).
    #[arg(long, env = "EDGE_MAX_HOOK_INSTANCES", default_value_t = 1000)]
    pub max_hook_instances: u32,
    /// Memory (MiB) that hook instances kept through origin fetches, for a
    /// later event of their request, and bodies read for hooks
    /// (`include_body`) may hold in all; a request that would pass it gets
    /// 503.
    #[arg(long, env = "EDGE_HOOK_HELD_MEMORY_MIB", default_value_t = 1024)]
    pub hook_held_memory_mib: u32,
    /// Threads, at a lower CPU priority than the workers, that take over hook
    /// invocations running past 250 µs, so a hook burning its budget does not
    /// slow the requests beside it (default: as many as workers; 0 keeps
    /// every invocation on the workers).
    #[arg(long, env = "EDGE_HOOK_THREADS")]
    pub hook_threads: Option<usize>,
    /// PEM certificates to trust for HTTPS origins, besides the system's roots
    /// (a private CA).
    #[arg(long, env = "EDGE_ORIGIN_CA_FILE")]
    pub origin_ca_file: Option<PathBuf>,
    /// Header fields a viewer request may carry; more get 431.
    #[arg(long, env = "EDGE_MAX_HEADER_COUNT", default_value_t = 100)]
    pub max_header_count: usize,
    /// Bytes a viewer request head may take (at least 8192); more get 431.
    #[arg(long, env = "EDGE_MAX_HEADER_BYTES", default_value_t = 64 << 10)]
    pub max_header_bytes: usize,
    /// An HTTPS viewer listener (HTTP/2 and HTTP/1.1 by ALPN; certificates
    /// chosen by SNI from the API's and --tls-cert-dir's).
    #[arg(long, env = "EDGE_TLS_LISTEN")]
    pub tls_listen: Option<SocketAddr>,
    /// A directory of `*.pem` files, each a certificate chain and its key.
    #[arg(long, env = "EDGE_TLS_CERT_DIR")]
    pub tls_cert_dir: Option<PathBuf>,
    /// Where distributions with `"logging": {"enabled": true}` write access
    /// logs, one JSON line per request (a file, appended to; `-` for stdout).
    #[arg(long, env = "EDGE_ACCESS_LOG")]
    pub access_log: Option<PathBuf>,
    /// Largest JSON body the control API reads; larger ones get 413.
    #[arg(long, env = "EDGE_MAX_API_BODY_BYTES", default_value_t = 1 << 20)]
    pub max_api_body_bytes: usize,
    /// Bind with SO_REUSEPORT, so a new host started with it too can take
    /// over the ports while this one drains after SIGTERM.
    #[arg(long, env = "EDGE_REUSE_PORT")]
    pub reuse_port: bool,
    /// Seconds a connection may sit with no request in flight and no byte
    /// moving (an unfinished preface or request head, a silent TLS or
    /// HTTP/2 connection, an idle keep-alive) before it is closed.
    #[arg(long, env = "EDGE_IDLE_TIMEOUT", default_value_t = 60)]
    pub idle_timeout: u64,
    /// Seconds a write to a viewer may make no progress (a viewer that
    /// stopped reading) before its connection is closed.
    #[arg(long, env = "EDGE_SEND_TIMEOUT", default_value_t = 30)]
    pub send_timeout: u64,
    /// Versions of each hook kept: an upload prunes the oldest beyond this
    /// that no distribution pins (`name@sha256:...`).
    #[arg(long, env = "EDGE_HOOK_VERSIONS_KEPT", default_value_t = 5)]
    pub hook_versions_kept: usize,
    /// Bytes of hook modules the store may hold; an upload past it is refused.
    #[arg(long, env = "EDGE_MAX_HOOK_STORE_BYTES", default_value_t = 1 << 30)]
    pub max_hook_store_bytes: u64,
    /// Serve HTTPS requests whose Host the connection's certificate does not
    /// cover (SNI for one name, Host for another: domain fronting) instead
    /// of answering 421 MisdirectedRequest.
    #[arg(long, env = "EDGE_ALLOW_DOMAIN_FRONTING")]
    pub allow_domain_fronting: bool,
    /// Join the fleet's cache cluster with an internal listener here
    /// (`host:port`): misses of distributions with `"cluster": true` are
    /// fetched from the key's owner among the members, so the origin is
    /// asked once per object for the whole fleet. Needs `--store etcd://`.
    #[arg(long, env = "EDGE_CLUSTER_LISTEN", value_name = "ADDR")]
    pub cluster_listen: Option<SocketAddr>,
    /// The address other members reach this host's cluster listener at,
    /// when it is not the one bound (needed for `0.0.0.0`).
    #[arg(
        long,
        env = "EDGE_CLUSTER_ADVERTISE",
        value_name = "ADDR",
        requires = "cluster_listen"
    )]
    pub cluster_advertise: Option<SocketAddr>,
    /// Take over the listening sockets of the host running on the same data
    /// dir (through `<data-dir>/handover.sock`): this host serves on them,
    /// then the old one drains and exits. No connection is lost.
    #[arg(long)]
    pub take_over: bool,
}

/// `edge demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The viewer listener.
    #[arg(long, env = "EDGE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The control API listener.
    #[arg(long, env = "EDGE_CONTROL", default_value = "127.0.0.1:9901")]
    pub control: SocketAddr,
}

/// How a client verb reaches the control API, and how it prints.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// The control API's address.
    #[arg(
        long,
        global = true,
        env = "EDGE_ENDPOINT",
        default_value = "http://127.0.0.1:9901"
    )]
    pub endpoint: String,
    /// The bearer token (else read from --token-file).
    #[arg(long, global = true, env = "EDGE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A file holding the token, as `edge serve` writes it.
    #[arg(
        long,
        global = true,
        env = "EDGE_TOKEN_FILE",
        default_value = "./edge-data/token"
    )]
    pub token_file: PathBuf,
}

/// The output format of client verbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
    Id,
}

/// `edge dist ...`.
#[derive(Debug, Subcommand)]
pub enum DistCommand {
    /// Create a distribution from a config file (JSON); prints it with its ETag.
    Create {
        /// The config (`-` for stdin).
        #[arg(long)]
        config: PathBuf,
        #[command(flatten)]
        conn: Connection,
    },
    /// Show a distribution: id, domain name, status, ETag, config.
    Get(IdArgs),
    /// Print a distribution's config alone (JSON), ready to edit and feed to
    /// `update --config`; its ETag goes to stderr (and to --etag-file).
    /// With `-o json`: `{"etag", "config"}`, which `update` reads whole.
    GetConfig {
        /// The distribution.
        id: String,
        /// Also write the ETag to this file (`update --if-match "$(cat F)"`).
        #[arg(long)]
        etag_file: Option<PathBuf>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Open a distribution's config in $VISUAL or $EDITOR and apply it when
    /// the editor exits (If-Match handled); a refused change reopens the
    /// editor with the error at the top.
    Edit {
        /// The distribution.
        id: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Serve a distribution's aliases again (`enabled: true`).
    Enable(IdArgs),
    /// Stop serving a distribution's aliases (`enabled: false`; viewers get
    /// 421); a disabled distribution can be deleted.
    Disable(IdArgs),
    /// List distributions.
    List {
        #[command(flatten)]
        conn: Connection,
    },
    /// Replace a distribution's whole config (what `get-config` printed,
    /// edited). The ETag the change is based on comes from --if-match, from
    /// the file (`get-config -o json` output carries it), or, with
    /// --from-current, from the API.
    Update {
        /// The distribution.
        id: String,
        /// The config (`-` for stdin): the config alone, or `get-config -o
        /// json` / `get -o json` output.
        #[arg(long)]
        config: PathBuf,
        /// The ETag the change is based on; a stale one is refused (412).
        #[arg(long, conflicts_with = "from_current")]
        if_match: Option<String>,
        /// Fetch the current ETag first (last writer wins: use with care).
        #[arg(long)]
        from_current: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Copy a distribution (without its aliases); `--staging` makes the copy a
    /// staging distribution for continuous deployment.
    Copy {
        /// The distribution to copy.
        id: String,
        /// Make the copy a staging distribution.
        #[arg(long)]
        staging: bool,
        /// Send the copy's default behavior to this origin (or group) id.
        #[arg(long)]
        target: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Delete a disabled distribution (--if-match, or the current ETag).
    Delete {
        /// The distribution.
        id: String,
        /// Its current ETag (fetched when not given).
        #[arg(long)]
        if_match: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Wait until a distribution's status is Deployed, showing progress.
    WaitDeployed {
        /// The distribution.
        id: String,
        /// Give up after this many seconds (exit 1).
        #[arg(long, default_value_t = 600)]
        timeout: u64,
        #[command(flatten)]
        conn: Connection,
    },
}

/// A verb that takes one id.
#[derive(Debug, Args)]
pub struct IdArgs {
    /// The id (`E...` for a distribution, `P...` for a policy).
    pub id: String,
    #[command(flatten)]
    pub conn: Connection,
}

/// `edge alias ...`.
#[derive(Debug, Subcommand)]
pub enum AliasCommand {
    /// List every alias and the distribution that serves it.
    List {
        #[command(flatten)]
        conn: Connection,
    },
    /// Move an alias (exact or `*.wildcard`) to a distribution, from whichever
    /// holds it, atomically: viewers are served by one or the other throughout.
    Move {
        /// The alias: `www.example.com` or `*.example.com`.
        alias: String,
        /// The distribution that takes the alias.
        #[arg(long)]
        to: String,
        #[command(flatten)]
        conn: Connection,
    },
}

/// `edge cd ...`.
#[derive(Debug, Subcommand)]
pub enum CdCommand {
    /// Copy a primary as a staging distribution (no aliases, its own id).
    CreateStaging {
        /// The primary distribution.
        id: String,
        /// Send the staging's default behavior to this origin (or group) id:
        /// blue/green between two origins the primary already lists.
        #[arg(long)]
        target: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Continuous-deployment policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Copy a staging distribution's config onto its primary in one step
    /// (the primary keeps its aliases and policy). Fetches both ETags unless
    /// --if-match gives them.
    Promote {
        /// The primary distribution.
        id: String,
        /// The staging distribution whose config is promoted.
        #[arg(long)]
        staging: String,
        /// `<primary ETag>, <staging ETag>`.
        #[arg(long)]
        if_match: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
}

/// `edge cd policy ...`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Create a policy from flags (or --config with the JSON body). Attach it
    /// to a primary by its config's `continuous_deployment_policy_id`, or
    /// with --attach.
    Create {
        #[command(flatten)]
        spec: PolicySpec,
        /// Attach the new policy to this primary distribution.
        #[arg(long)]
        attach: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Show a policy with its ETag and gate status.
    Get(IdArgs),
    /// List policies.
    List {
        #[command(flatten)]
        conn: Connection,
    },
    /// Detach a primary's policy (its viewers all get the primary again);
    /// the policy stays, to attach again or delete.
    Detach {
        /// The primary distribution.
        primary: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Delete a detached policy (--if-match, or the current ETag).
    Delete {
        /// The policy.
        id: String,
        /// Its current ETag (fetched when not given).
        #[arg(long)]
        if_match: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Change a policy: the flags given replace those settings, the rest
    /// keep their current values (--config replaces the whole policy). The
    /// ETag is fetched unless --if-match gives it.
    Update {
        /// The policy.
        id: String,
        #[command(flatten)]
        spec: PolicySpec,
        /// Its current ETag (fetched when not given).
        #[arg(long)]
        if_match: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
}

/// A policy given by flags, or whole by `--config`.
#[derive(Debug, Clone, Args)]
pub struct PolicySpec {
    /// The policy as JSON (`-` for stdin); the other flags are then not used.
    #[arg(long, conflicts_with_all = ["staging", "weight", "header"])]
    pub config: Option<PathBuf>,
    /// The staging distribution (needed to create a policy).
    #[arg(long)]
    pub staging: Option<String>,
    /// Share of viewers sent to staging, as a fraction (0.05) or a percentage (5%).
    #[arg(long, conflicts_with = "header")]
    pub weight: Option<String>,
    /// Keep a viewer on its arm this many seconds without a request
    /// (session stickiness, with --max-ttl; weight policies only).
    #[arg(long)]
    pub idle_ttl: Option<u64>,
    /// Keep a viewer on its arm at most this many seconds.
    #[arg(long)]
    pub max_ttl: Option<u64>,
    /// Send requests with this header (and --value) to staging.
    #[arg(long, requires = "value")]
    pub header: Option<String>,
    /// The --header value that selects staging.
    #[arg(long)]
    pub value: Option<String>,
    /// Turn the policy off: every viewer gets the primary.
    #[arg(long, conflicts_with = "enabled")]
    pub disabled: bool,
    /// Turn a disabled policy on again.
    #[arg(long)]
    pub enabled: bool,
    /// Roll back by itself when staging's 5xx share is above this fraction.
    #[arg(long)]
    pub auto_max_error_rate: Option<f64>,
    /// The window the automatic gate counts over, in seconds (default 60).
    #[arg(long)]
    pub auto_window: Option<u64>,
    /// The staging requests the gate needs in its window before it may trip
    /// (default 100).
    #[arg(long)]
    pub auto_min_requests: Option<u64>,
}

/// `edge invalidate`: paths, tags, or both.
#[derive(Debug, Args)]
#[command(
    group(clap::ArgGroup::new("what").required(true).multiple(true).args(["paths", "tags"])),
    override_usage = "edge invalidate <ID> <PATHS>... [--soft]\n       edge invalidate <ID> --tag <TAG>... [--soft]"
)]
pub struct InvalidateArgs {
    /// The distribution.
    pub id: String,
    /// Paths to drop: exact (`/index.html`) or a prefix (`'/img/*'`, quoted so the shell does not expand it).
    pub paths: Vec<String>,
    /// A tag to drop the objects of: what origins name in `Surrogate-Key`
    /// or `Cache-Tag` (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Mark what matches stale instead of dropping it: served within its
    /// `stale-while-revalidate` and `stale-if-error` windows, revalidated
    /// on its next request.
    #[arg(long)]
    pub soft: bool,
    #[command(flatten)]
    pub conn: Connection,
}

/// `edge hook ...`.
#[derive(Debug, Subcommand)]
#[expect(
    clippy::large_enum_variant,
    reason = "parsed once per process; `test`'s flags are simply many"
)]
pub enum HookCommand {
    /// Upload a component as a new version of NAME; prints the version.
    Upload {
        /// The hook's name (a-z 0-9 - _).
        name: String,
        /// The `.wasm` component.
        file: PathBuf,
        #[command(flatten)]
        conn: Connection,
    },
    /// Delete a hook and every version of it; refused while a distribution
    /// runs it.
    Delete {
        /// The hook's name.
        name: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// List hooks, or the versions of one.
    List {
        /// A hook whose versions to list.
        name: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Run a plugin's four events on one request, locally, in the host's
    /// runtime with the host's limits, and print what each event did.
    Test(hook_test::HookTestArgs),
    /// Write a new plugin (with the SDK beside it) that builds as is.
    New {
        /// The plugin's name (a-z 0-9 - _, starting with a letter).
        name: String,
        /// Where to create it (the plugin is DIR/NAME).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The plugin's language.
        #[arg(long, value_enum, default_value = "rust")]
        lang: scaffold::Lang,
    },
    /// Build a plugin (a crate for wasm32-wasip2, or a JavaScript project
    /// with componentize-js); prints the `.wasm` path.
    Build {
        /// The plugin crate.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Cargo's target directory (default: DIR/target).
        #[arg(long)]
        target_dir: Option<PathBuf>,
    },
}

/// `edge kv ...`.
#[derive(Debug, Subcommand)]
pub enum KvCommand {
    /// Set a value (from the argument, or --file).
    Put {
        /// The namespace (a hook reads `kv::get(namespace, key)`).
        namespace: String,
        /// The key.
        key: String,
        /// The value.
        #[arg(required_unless_present = "file")]
        value: Option<String>,
        /// Read the value from this file (`-` for stdin).
        #[arg(long, conflicts_with = "value")]
        file: Option<PathBuf>,
        #[command(flatten)]
        conn: Connection,
    },
    /// List namespaces, or the keys of one with their sizes.
    List {
        /// A namespace whose keys to list.
        namespace: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Print a value.
    Get {
        /// The namespace.
        namespace: String,
        /// The key.
        key: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Remove a value.
    Delete {
        /// The namespace.
        namespace: String,
        /// The key.
        key: String,
        #[command(flatten)]
        conn: Connection,
    },
}

/// `edge tail`.
#[derive(Debug, Args)]
pub struct TailArgs {
    /// Only this distribution's lines.
    #[arg(long)]
    pub distribution: Option<String>,
    /// Only this hook's log lines.
    #[arg(long)]
    pub hook: Option<String>,
    /// Only access records with this status (`503`) or class (`5xx`).
    #[arg(long)]
    pub status: Option<String>,
    /// Stop after this many lines (default: run until interrupted).
    #[arg(long)]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub conn: Connection,
}

/// `edge secret ...`.
#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Set a secret from a file (`-` for stdin), never from an argument (it
    /// would stay in the shell's history and the process list).
    Put {
        /// The store (an association reads it when its `secret_stores` names it).
        store: String,
        /// The secret's name.
        name: String,
        /// Read the value from this file (`-` for stdin).
        #[arg(long)]
        file: PathBuf,
        #[command(flatten)]
        conn: Connection,
    },
    /// List stores, or the secrets of one with their versions (never values).
    List {
        /// A store whose secrets to list.
        store: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Remove a secret.
    Delete {
        /// The store.
        store: String,
        /// The secret's name.
        name: String,
        #[command(flatten)]
        conn: Connection,
    },
}

/// Runs a client verb (anything but `serve` and `demo`), printing to `out`
/// and errors to `err`; `interactive` when `out` is a terminal. Returns the
/// process exit code.
pub async fn run(
    command: Command,
    output: Output,
    out: &mut dyn Write,
    err: &mut dyn Write,
    interactive: bool,
) -> i32 {
    match verbs::run(command, output, out, err, interactive).await {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            e.exit_code()
        }
    }
}

/// Parses `args` (the program name first) and runs a client verb: what the
/// binary does, with the output captured. Usage errors exit 2.
pub async fn run_args<I, T>(args: I, out: &mut dyn Write, err: &mut dyn Write) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    match Cli::try_parse_from(args) {
        Ok(cli) => run(cli.command, cli.output, out, err, false).await,
        Err(e) => {
            let _ = write!(err, "{e}");
            if e.use_stderr() { 2 } else { 0 }
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    /// Every verb, at every depth, and every flag has a help text.
    #[test]
    fn every_verb_and_flag_is_described() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for sub in cmd.get_subcommands() {
                let name = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() {
                    missing.push(name.clone());
                }
                for arg in sub.get_arguments() {
                    let id = arg.get_id().as_str();
                    if arg.get_help().is_none() && !matches!(id, "help" | "version") {
                        missing.push(format!("{name} --{id}"));
                    }
                }
                walk(sub, &name, missing);
            }
        }
        let cli = Cli::command();
        cli.clone().debug_assert();
        let mut missing = Vec::new();
        walk(&cli, "edge", &mut missing);
        assert!(missing.is_empty(), "without a help text: {missing:#?}");
    }
}
