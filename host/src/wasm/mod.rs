//! WebAssembly hooks: one engine per process, each component compiled once, a fresh
//! bounded instance for every invocation.
//!
//! The engine uses the pooling allocator with copy-on-write memory images and
//! epoch interruption (a ticker thread advances the epoch every millisecond).
//! Each uploaded component is compiled once (and cached on disk by content hash,
//! so a restart does not recompile) into an `InstancePre`. An invocation gets a
//! new `Store` with a CPU budget (epoch deadline), a memory cap, WASI without
//! files, sockets or host environment, and stdout/stderr captured for the log.

pub mod bindings;
mod config;
pub mod convert;
mod kv;
mod log;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

pub use bindings::{Context, Event, Request, RequestAction, Response};
pub use kv::KvData;

/// How often the epoch advances; CPU budgets are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(1);
/// The largest memory cap an association may ask for.
pub const MAX_MEMORY_LIMIT: usize = 128 << 20;
/// Default memory cap per invocation.
pub const DEFAULT_MEMORY_LIMIT: usize = 16 << 20;
/// Default CPU budgets (Lambda@Edge's viewer events are the tight ones).
pub const DEFAULT_VIEWER_BUDGET: Duration = Duration::from_millis(5);
pub const DEFAULT_ORIGIN_BUDGET: Duration = Duration::from_millis(30);
/// Linear memory kept mapped between instances of a pool slot.
const KEEP_RESIDENT: usize = 1 << 20;
/// Bytes of guest stdout/stderr kept per invocation.
const OUTPUT_CAPTURE: usize = 16 << 10;

/// Why a component was refused at upload.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidHook(pub String);

/// Why one hook invocation failed. Each fails its request alone.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("hook {hook} ({event}) trapped: {reason}")]
    Trap {
        hook: String,
        event: &'static str,
        reason: String,
    },
    #[error("hook {hook} ({event}) ran over its CPU budget of {budget:?}")]
    Timeout {
        hook: String,
        event: &'static str,
        budget: Duration,
    },
    #[error("hook {hook} ({event}) went over its memory cap of {limit} bytes")]
    Memory {
        hook: String,
        event: &'static str,
        limit: usize,
    },
    #[error("hook {hook} ({event}) returned invalid output: {reason}")]
    InvalidOutput {
        hook: String,
        event: &'static str,
        reason: String,
    },
    #[error("hook {hook} ({event}) found no free instance slot")]
    Capacity { hook: String, event: &'static str },
}

impl HookError {
    /// A limit was exceeded (503) rather than the hook failing (502).
    pub fn is_limit(&self) -> bool {
        matches!(
            self,
            Self::Timeout { .. } | Self::Memory { .. } | Self::Capacity { .. }
        )
    }
}

/// The name of an event as configs and logs spell it.
pub fn event_name(event: Event) -> &'static str {
    match event {
        Event::ViewerRequest => "viewer_request",
        Event::OriginRequest => "origin_request",
        Event::OriginResponse => "origin_response",
        Event::ViewerResponse => "viewer_response",
    }
}

/// A component compiled and checked against the `hooks` world.
pub struct CompiledHook {
    pub name: String,
    /// `sha256:<hex>` of the component bytes.
    pub version: String,
    pre: bindings::HooksPre<HookState>,
}

impl std::fmt::Debug for CompiledHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledHook")
            .field("name", &self.name)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// A hook bound to one event of one cache behavior, with its association's
/// config and limits.
#[derive(Debug)]
pub struct BoundHook {
    pub compiled: Arc<CompiledHook>,
    pub event: Event,
    pub config: Arc<serde_json::Map<String, serde_json::Value>>,
    pub budget: Duration,
    pub memory_limit: usize,
}

impl BoundHook {
    /// `name@sha256:...`, for logs.
    pub fn label(&self) -> String {
        format!("{}@{}", self.compiled.name, self.compiled.version)
    }

    /// The error for output of this hook that breaks the contract.
    pub fn invalid_output(&self, reason: String) -> HookError {
        HookError::InvalidOutput {
            hook: self.label(),
            event: event_name(self.event),
            reason,
        }
    }
}

/// The store data of one invocation.
pub struct HookState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryCap,
    kv: Arc<KvData>,
    config: Arc<serde_json::Map<String, serde_json::Value>>,
    request_id: Arc<str>,
    hook: Arc<str>,
    log_lines: u32,
    /// What the guest logged, in order.
    pub logs: Vec<String>,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
}

impl std::fmt::Debug for HookState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookState")
            .field("request_id", &self.request_id)
            .field("hook", &self.hook)
            .finish_non_exhaustive()
    }
}

impl WasiView for HookState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Caps linear memory growth and records that the cap was hit.
struct MemoryCap {
    limit: usize,
    hit: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("memory cap exceeded")]
struct MemoryCapExceeded;

impl wasmtime::ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.hit = true;
            return Err(MemoryCapExceeded.into());
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// Options of the hook runtime.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Where compiled artifacts are cached by content hash; `None` disables it.
    pub cache_dir: Option<PathBuf>,
    /// Instances that may run at once (pool slots).
    pub max_instances: u32,
}

/// The process's one hook engine.
pub struct HookRuntime {
    engine: Engine,
    cache: Option<wasmtime::Cache>,
    linker: Linker<HookState>,
    stop_ticker: Arc<AtomicBool>,
}

impl std::fmt::Debug for HookRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookRuntime").finish_non_exhaustive()
    }
}

impl Drop for HookRuntime {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

/// A runtime that could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("hook runtime: {0}")]
pub struct RuntimeError(String);

impl HookRuntime {
    pub fn new(opts: &RuntimeOptions) -> Result<Self, RuntimeError> {
        let err = |e: wasmtime::Error| RuntimeError(format!("{e:#}"));
        let n = opts.max_instances.max(1);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(n)
            .total_core_instances(n * 8)
            .total_memories(n)
            .total_tables(n * 4)
            .total_stacks(n)
            .max_memory_size(MAX_MEMORY_LIMIT)
            .decommit_batch_size(32)
            // Reset the pages an instance touched in place (found with the
            // PAGEMAP_SCAN ioctl where the kernel has it) instead of unmapping
            // them, so the next instance takes no page faults on them.
            .pagemap_scan(wasmtime::Enabled::Auto)
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(16 << 10);
        let mut config = wasmtime::Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .memory_init_cow(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let cache = match &opts.cache_dir {
            Some(dir) => {
                let mut cache = wasmtime::CacheConfig::new();
                cache.with_directory(dir);
                Some(wasmtime::Cache::new(cache).map_err(err)?)
            }
            None => None,
        };
        config.cache(cache.clone());
        let engine = Engine::new(&config).map_err(err)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(err)?;
        bindings::Hooks::add_to_linker::<HookState, HasSelf<HookState>>(&mut linker, |s| s)
            .map_err(err)?;

        let stop_ticker = Arc::new(AtomicBool::new(false));
        let (ticker_engine, stop) = (engine.clone(), stop_ticker.clone());
        std::thread::Builder::new()
            .name("edge-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    ticker_engine.increment_epoch();
                }
            })
            .map_err(|e| RuntimeError(format!("starting the epoch ticker: {e}")))?;
        Ok(Self {
            engine,
            cache,
            linker,
            stop_ticker,
        })
    }

    /// Compiles `bytes` and checks it against the `hooks` world. CPU-heavy on a
    /// first compile; call it off the request path.
    pub fn compile(&self, name: &str, bytes: &[u8]) -> Result<CompiledHook, InvalidHook> {
        let component = Component::new(&self.engine, bytes)
            .map_err(|e| InvalidHook(format!("not a valid WebAssembly component: {e:#}")))?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| InvalidHook(format!("imports something hooks cannot use: {e:#}")))?;
        let pre = bindings::HooksPre::new(pre)
            .map_err(|e| InvalidHook(format!("does not export the hooks world: {e:#}")))?;
        Ok(CompiledHook {
            name: name.to_owned(),
            version: version_of(bytes),
            pre,
        })
    }

    /// Compilations served from the on-disk cache since start.
    pub fn cache_hits(&self) -> usize {
        self.cache.as_ref().map_or(0, wasmtime::Cache::cache_hits)
    }

    fn store(&self, hook: &BoundHook, request_id: &str, kv: Arc<KvData>) -> Store<HookState> {
        let stdout = MemoryOutputPipe::new(OUTPUT_CAPTURE);
        let stderr = MemoryOutputPipe::new(OUTPUT_CAPTURE);
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .build();
        let state = HookState {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryCap {
                limit: hook.memory_limit,
                hit: false,
            },
            kv,
            config: hook.config.clone(),
            request_id: request_id.into(),
            hook: hook.compiled.name.as_str().into(),
            log_lines: 0,
            logs: Vec::new(),
            stdout,
            stderr,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        let ticks = hook
            .budget
            .as_millis()
            .div_ceil(EPOCH_TICK.as_millis())
            .max(1)
            + 1;
        store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
        store.epoch_deadline_trap();
        store
    }

    fn finish<R>(
        &self,
        hook: &BoundHook,
        mut store: Store<HookState>,
        result: wasmtime::Result<R>,
    ) -> Result<(R, Vec<String>), HookError> {
        let state = store.data_mut();
        for (stream, pipe) in [("stdout", &state.stdout), ("stderr", &state.stderr)] {
            let out = pipe.contents();
            for line in String::from_utf8_lossy(&out)
                .lines()
                .filter(|l| !l.is_empty())
            {
                tracing::info!(request_id = %state.request_id, hook = %state.hook, stream, "{line}");
            }
        }
        let logs = std::mem::take(&mut state.logs);
        let memory_hit = state.limiter.hit;
        let event = event_name(hook.event);
        let name = hook.label();
        match result {
            Ok(value) => Ok((value, logs)),
            Err(_) if memory_hit => Err(HookError::Memory {
                hook: name,
                event,
                limit: hook.memory_limit,
            }),
            Err(e) if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) => {
                Err(HookError::Timeout {
                    hook: name,
                    event,
                    budget: hook.budget,
                })
            }
            Err(e)
                if e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
                    .is_some() =>
            {
                Err(HookError::Capacity { hook: name, event })
            }
            Err(e) => Err(HookError::Trap {
                hook: name,
                event,
                reason: format!("{e:#}"),
            }),
        }
    }

    /// Runs a `viewer-request` or `origin-request` event.
    pub async fn request_event(
        &self,
        hook: &BoundHook,
        request_id: &str,
        kv: Arc<KvData>,
        ctx: &Context,
        req: &Request,
    ) -> Result<(RequestAction, Vec<String>), HookError> {
        let mut store = self.store(hook, request_id, kv);
        let result = async {
            let hooks = hook.compiled.pre.instantiate_async(&mut store).await?;
            match hook.event {
                Event::OriginRequest => hooks.call_origin_request(&mut store, ctx, req).await,
                _ => hooks.call_viewer_request(&mut store, ctx, req).await,
            }
        }
        .await;
        self.finish(hook, store, result)
    }

    /// Runs an `origin-response` or `viewer-response` event.
    pub async fn response_event(
        &self,
        hook: &BoundHook,
        request_id: &str,
        kv: Arc<KvData>,
        ctx: &Context,
        req: &Request,
        resp: &Response,
    ) -> Result<(Response, Vec<String>), HookError> {
        let mut store = self.store(hook, request_id, kv);
        let result = async {
            let hooks = hook.compiled.pre.instantiate_async(&mut store).await?;
            match hook.event {
                Event::OriginResponse => {
                    hooks.call_origin_response(&mut store, ctx, req, resp).await
                }
                _ => hooks.call_viewer_response(&mut store, ctx, req, resp).await,
            }
        }
        .await;
        self.finish(hook, store, result)
    }
}

/// `sha256:<hex>` of a component's bytes.
pub fn version_of(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(bytes);
    let mut out = String::with_capacity(71);
    out.push_str("sha256:");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}
