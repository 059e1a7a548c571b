//! `edge dev`: a local host for one distribution that reloads its config
//! and hooks the moment their files change, with the real cache, runtime and
//! limits (what `wrangler dev` and `fastly compute serve` do for their
//! platforms).
//!
//! The config file is the distribution's JSON; `--origin` points every origin
//! at a local server; `--hook NAME=FILE.wasm` uploads a component and
//! uploads it again when the file changes, `--hook NAME=DIR` builds a plugin
//! crate and builds it again when its sources change (a JavaScript plugin
//! with one builder kept running, so a rebuild does not load componentize-js
//! again). A config or hook that does not validate is reported and the last
//! good one keeps serving.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use notify::{RecursiveMode, Watcher as _};
use tokio::sync::mpsc;

use super::client::CliError;
use crate::config::DistributionConfig;
use crate::control::{ControlPlane, IfMatch};
use crate::server::{HostOptions, RunningHost};

/// `edge dev`.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// The distribution config (JSON), reloaded when it changes.
    #[arg(long)]
    pub config: PathBuf,
    /// Point every origin of the config at this URL (`http://localhost:3000`).
    #[arg(long)]
    pub origin: Option<String>,
    /// A hook the config names: `NAME=FILE.wasm` (uploaded again when the file
    /// changes) or `NAME=DIR` (a plugin crate, built again when its sources
    /// change). Repeatable.
    #[arg(long = "hook", value_name = "NAME=PATH")]
    pub hooks: Vec<String>,
    /// The viewer listener.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The control API listener.
    #[arg(long, default_value = "127.0.0.1:9901")]
    pub control: SocketAddr,
    #[command(flatten)]
    pub compile_cache: super::CompileCacheArgs,
}

/// Where a hook's component comes from.
#[derive(Debug, Clone)]
enum Source {
    /// A built component.
    Wasm(PathBuf),
    /// A plugin folder (a crate, or a JavaScript project), rebuilt on change.
    Crate(PathBuf),
}

/// A JavaScript plugin's builder, kept running between rebuilds.
type Builder = Arc<std::sync::Mutex<Option<super::scaffold::WarmBuilder>>>;

/// Builds the plugin in `dir`: a JavaScript one with its builder kept in
/// `warm` (started with the first build, started again if it stopped), any
/// other as `edge hook build` does. The component, and for a JavaScript
/// plugin what its build took.
fn build(dir: &Path, warm: &Builder) -> Result<(PathBuf, Option<String>), CliError> {
    use super::scaffold::{WarmBuilder, build_plugin, is_js_plugin};
    let plain = || build_plugin(dir, None).map(|wasm| (wasm, None));
    if !is_js_plugin(dir) {
        return plain();
    }
    let mut warm = warm
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for _ in 0..2 {
        if warm.is_none() {
            match WarmBuilder::start(dir)? {
                Some(started) => *warm = Some(started),
                // A build script of the plugin's own.
                None => return plain(),
            }
        }
        let Some(builder) = warm.as_mut() else {
            break;
        };
        match builder.build() {
            Err(_) if !builder.running() => *warm = None,
            Err(e) => return Err(e),
            Ok(built) => {
                let note = format!(
                    "built in {:.1} s by the builder kept running (build {})",
                    built.seconds, built.nth
                );
                return Ok((built.wasm, Some(note)));
            }
        }
    }
    Err(local("the JavaScript builder stopped twice"))
}

fn local(message: impl Into<String>) -> CliError {
    CliError::Local(message.into())
}

/// A running dev host.
#[derive(Debug)]
pub struct DevSession {
    pub host: RunningHost,
    /// The distribution's id and domain name.
    pub id: String,
    pub domain_name: String,
    config: PathBuf,
    origin: Option<(crate::config::raw::Protocol, String)>,
    hooks: Vec<(String, Source)>,
    /// Per hook, the builder of a JavaScript plugin.
    builders: Vec<Builder>,
    _data: tempfile::TempDir,
}

/// `http://host:port` → the protocol and `host:port`.
fn parse_origin(url: &str) -> Result<(crate::config::raw::Protocol, String), CliError> {
    use crate::config::raw::Protocol;
    let (protocol, rest) = if let Some(rest) = url.strip_prefix("http://") {
        (Protocol::Http, rest)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (Protocol::Https, rest)
    } else {
        return Err(local(format!(
            "--origin {url:?}: expected http://host[:port] or https://..."
        )));
    };
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains('/') {
        return Err(local(format!(
            "--origin {url:?}: a scheme and host[:port] only"
        )));
    }
    Ok((protocol, authority.to_owned()))
}

impl DevSession {
    /// Starts the host, uploads the hooks, creates the distribution.
    pub async fn start(args: &DevArgs) -> Result<Self, CliError> {
        let data = tempfile::tempdir().map_err(|e| local(format!("a data dir: {e}")))?;
        let mut opts = HostOptions::new(data.path());
        opts.listen = args.listen;
        opts.control = args.control;
        opts.host_id = "edge-dev".to_owned();
        opts.compile_cache_dir = args.compile_cache.dir();
        opts.parallel_compile = true;
        let host = RunningHost::start(opts)
            .await
            .map_err(|e| local(format!("starting the host: {e}")))?;
        let mut hooks = Vec::new();
        for spec in &args.hooks {
            let (name, path) = spec
                .split_once('=')
                .ok_or_else(|| local(format!("--hook {spec:?}: expected NAME=PATH")))?;
            let path = PathBuf::from(path);
            let source = if path.is_dir() {
                Source::Crate(path)
            } else {
                Source::Wasm(path)
            };
            hooks.push((name.to_owned(), source));
        }
        let origin = args.origin.as_deref().map(parse_origin).transpose()?;
        let mut session = Self {
            host,
            id: String::new(),
            domain_name: String::new(),
            config: args.config.clone(),
            origin,
            builders: hooks.iter().map(|_| Builder::default()).collect(),
            hooks,
            _data: data,
        };
        for i in 0..session.hooks.len() {
            session.upload(i).await?;
        }
        let config = session.read_config()?;
        let record = session
            .plane()
            .create(config)
            .await
            .map_err(|e| local(format!("{}: {}", args.config.display(), e.message)))?;
        session.id.clone_from(&record.stored.id);
        session.domain_name.clone_from(&record.stored.domain_name);
        Ok(session)
    }

    fn plane(&self) -> &Arc<ControlPlane> {
        self.host.control.plane()
    }

    fn read_config(&self) -> Result<DistributionConfig, CliError> {
        let bytes = std::fs::read(&self.config)
            .map_err(|e| local(format!("reading {}: {e}", self.config.display())))?;
        let mut config: DistributionConfig = crate::config::parse_json(&bytes)
            .map_err(|e| local(format!("{}: {e}", self.config.display())))?;
        if let Some((protocol, authority)) = &self.origin {
            for origin in &mut config.origins {
                origin.protocol = *protocol;
                origin.domain_name.clone_from(authority);
            }
        }
        Ok(config)
    }

    /// Builds (for a crate) and uploads hook `i`; its version, and what
    /// its build took when that is known.
    async fn upload(&self, i: usize) -> Result<(String, Option<String>), CliError> {
        let (name, source) = &self.hooks[i];
        let (wasm, note) = match source {
            Source::Wasm(path) => (path.clone(), None),
            Source::Crate(dir) => {
                let (dir, warm) = (dir.clone(), self.builders[i].clone());
                tokio::task::spawn_blocking(move || build(&dir, &warm))
                    .await
                    .map_err(|e| local(e.to_string()))??
            }
        };
        let bytes =
            std::fs::read(&wasm).map_err(|e| local(format!("reading {}: {e}", wasm.display())))?;
        let began = std::time::Instant::now();
        let version = self
            .plane()
            .put_hook(name, bytes.into())
            .await
            .map_err(|e| local(format!("hook {name}: {}", e.message)))?;
        let compiled = format!("compiled in {:.1} s", began.elapsed().as_secs_f64());
        let note = match note {
            Some(built) => format!("{built}, {compiled}"),
            None => compiled,
        };
        Ok((version, Some(note)))
    }

    /// Replaces the distribution's config with the file's.
    async fn reload_config(&self) -> Result<String, CliError> {
        let config = self.read_config()?;
        let current = self.plane().state();
        let revision = current
            .distribution(&self.id)
            .map_err(|e| local(e.message))?
            .revision;
        let etag = crate::control::etag::etag_of(revision);
        let record = self
            .plane()
            .replace_config(&self.id, IfMatch::Value(&etag), config)
            .await
            .map_err(|e| local(format!("{}: {}", self.config.display(), e.message)))?;
        Ok(record.etag())
    }

    /// What a changed path means: the config, a hook file, or a crate's sources.
    fn affected(&self, path: &Path) -> (bool, Vec<usize>) {
        let same = |a: &Path, b: &Path| {
            a == b
                || a.canonicalize()
                    .ok()
                    .zip(b.canonicalize().ok())
                    .is_some_and(|(x, y)| x == y)
        };
        let config = same(path, &self.config);
        let hooks = self
            .hooks
            .iter()
            .enumerate()
            .filter(|(_, (_, source))| match source {
                Source::Wasm(file) => same(path, file),
                Source::Crate(dir) => {
                    let dir = dir.canonicalize().unwrap_or_else(|_| dir.clone());
                    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
                    path.starts_with(dir.join("src"))
                        || path == dir.join("Cargo.toml")
                        || path.starts_with(dir.join("edge-sdk"))
                        // A JavaScript plugin's modules sit at its top level
                        // (its build writes hook.wasm there, which is not one).
                        || (path.parent() == Some(dir.as_path())
                            && matches!(
                                path.extension().and_then(|e| e.to_str()),
                                Some("js" | "mjs")
                            ))
                }
            })
            .map(|(i, _)| i)
            .collect();
        (config, hooks)
    }

    /// Reloads what `changed` touches, saying what happened on `out`.
    pub async fn apply(&self, changed: &[PathBuf], out: &mut dyn Write) {
        let mut config = false;
        let mut hooks: Vec<usize> = Vec::new();
        for path in changed {
            let (c, h) = self.affected(path);
            config |= c;
            for i in h {
                if !hooks.contains(&i) {
                    hooks.push(i);
                }
            }
        }
        for i in hooks {
            let name = &self.hooks[i].0;
            let line = match self.upload(i).await {
                Ok((version, note)) => format!(
                    "hook {name}: {version}{}, serving from the next request",
                    note.map_or_else(String::new, |note| format!(", {note}"))
                ),
                Err(e) => {
                    format!("hook {name} not reloaded: {e}; the last good version keeps serving")
                }
            };
            let _ = writeln!(out, "{line}");
        }
        if config {
            let line = match self.reload_config().await {
                Ok(etag) => format!("config {etag}, serving from the next request"),
                Err(e) => format!("config not reloaded: {e}; the last good one keeps serving"),
            };
            let _ = writeln!(out, "{line}");
        }
    }

    /// Watches the files until `stop` resolves, reloading on each change
    /// (changes within 100 ms are taken together).
    pub async fn watch(
        &self,
        out: &mut (dyn Write + Send),
        stop: impl Future<Output = ()>,
    ) -> Result<(), CliError> {
        let (tx, mut rx) = mpsc::unbounded_channel::<PathBuf>();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if let Ok(event) = event
                    && !matches!(event.kind, notify::EventKind::Access(_))
                {
                    for path in event.paths {
                        let _ = tx.send(path);
                    }
                }
            })
            .map_err(|e| local(format!("watching files: {e}")))?;
        // Editors replace files by renaming: watch the folders they live in.
        let mut folders: HashMap<PathBuf, RecursiveMode> = HashMap::new();
        let parent = |p: &Path| {
            p.parent()
                .filter(|d| !d.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
        };
        folders.insert(parent(&self.config), RecursiveMode::NonRecursive);
        for (_, source) in &self.hooks {
            match source {
                Source::Wasm(file) => {
                    folders
                        .entry(parent(file))
                        .or_insert(RecursiveMode::NonRecursive);
                }
                Source::Crate(dir) => {
                    if dir.join("src").is_dir() {
                        folders.insert(dir.join("src"), RecursiveMode::Recursive);
                    }
                    folders
                        .entry(dir.clone())
                        .or_insert(RecursiveMode::NonRecursive);
                }
            }
        }
        for (folder, mode) in &folders {
            watcher
                .watch(folder, *mode)
                .map_err(|e| local(format!("watching {}: {e}", folder.display())))?;
        }
        tokio::pin!(stop);
        loop {
            let first = tokio::select! {
                path = rx.recv() => match path {
                    Some(path) => path,
                    None => return Ok(()),
                },
                () = &mut stop => return Ok(()),
            };
            let mut changed = vec![first];
            tokio::time::sleep(Duration::from_millis(100)).await;
            while let Ok(path) = rx.try_recv() {
                if !changed.contains(&path) {
                    changed.push(path);
                }
            }
            self.apply(&changed, out).await;
            let _ = out.flush();
        }
    }
}
