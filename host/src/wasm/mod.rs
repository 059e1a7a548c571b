//! WebAssembly hooks: one engine per process, each component compiled once, a fresh
//! bounded instance for every invocation.
//!
//! The engine uses the pooling allocator with copy-on-write memory images and
//! epoch interruption (a ticker thread advances the epoch every millisecond
//! while hooks run; [`ticker`]).
//! Each uploaded component is compiled once (and cached on disk by content hash,
//! so a restart does not recompile) into an `InstancePre`, with the export of
//! each event looked up once. An invocation gets a new `Store` with a CPU budget,
//! a memory cap, WASI without files, sockets or host environment, and
//! stdout/stderr captured for the log, instantiates, and calls the one export
//! its event needs.
//!
//! The CPU budget counts the CPU time of the thread running the guest, not
//! wall time: the epoch deadline only says when to look (every tick), and the
//! deadline callback compares the invocation's thread CPU time (summed over
//! the polls of its future) with the budget. A guest is not charged for time
//! its thread spent descheduled or serving other requests. A hook that runs
//! longer than one tick yields to the executor at every tick, so it never
//! holds a thread from other invocations for long. Waiting (a WASI sleep)
//! costs no CPU, so a second limit bounds the whole invocation in wall time:
//! [`wall_limit`].
//!
//! An invocation that yields (past [`YIELD_AFTER`] of CPU, or to wait) moves
//! to the runtime's own threads ([`RuntimeOptions::threads`]), which run at a lower
//! CPU priority than the threads serving viewers: when the cores are busy,
//! requests that run no hook go first, so a hook burning its whole budget in
//! a loop slows the other long hooks, not the traffic beside it. Such an
//! event's next invocations start on those threads directly, and so do those
//! of an event whose invocation failed (a misbehaving hook). Invocations that
//! finish within a tick, nearly all of them, run where the request is and pay
//! no hand-off between threads (one there and back costs about as much CPU as
//! the invocation itself).

pub mod bindings;
mod config;
pub mod convert;
mod kv;
mod log;
mod ticker;

use crate::metrics::HookStats;
use std::cell::Cell;
use std::future::Future;
use std::path::PathBuf;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use wasmtime::component::{
    Component, ComponentExportIndex, HasSelf, InstancePre, Linker, ResourceTable,
};
use wasmtime::{
    Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap, UpdateDeadline,
};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

pub use bindings::{Context, Event, Request, RequestAction, Response};
pub use kv::KvData;

/// How often the epoch advances; CPU budgets are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(1);
pub use crate::limits::MAX_MEMORY_LIMIT;
/// Default memory cap per invocation.
pub const DEFAULT_MEMORY_LIMIT: usize = 16 << 20;
/// Default CPU budgets (Lambda@Edge's viewer events are the tight ones).
pub const DEFAULT_VIEWER_BUDGET: Duration = Duration::from_millis(5);
pub const DEFAULT_ORIGIN_BUDGET: Duration = Duration::from_millis(30);
/// Default CPU budgets of a hook that embeds a JavaScript engine
/// (componentize-js's StarlingMonkey): it interprets the hook, about 1 ms of
/// CPU an event where a compiled hook takes microseconds, with a long tail
/// (garbage collection, page faults of a 9 MiB heap).
pub const DEFAULT_JS_VIEWER_BUDGET: Duration = Duration::from_millis(50);
pub const DEFAULT_JS_ORIGIN_BUDGET: Duration = Duration::from_millis(100);

/// The CPU budget `event` of `hook` gets when its association names none.
pub fn default_budget(hook: &CompiledHook, event: Event) -> Duration {
    let viewer = matches!(event, Event::ViewerRequest | Event::ViewerResponse);
    match (hook.javascript, viewer) {
        (false, true) => DEFAULT_VIEWER_BUDGET,
        (false, false) => DEFAULT_ORIGIN_BUDGET,
        (true, true) => DEFAULT_JS_VIEWER_BUDGET,
        (true, false) => DEFAULT_JS_ORIGIN_BUDGET,
    }
}

/// Whether a component embeds StarlingMonkey, the JavaScript engine
/// componentize-js builds hooks with (its sources' paths are in the binary).
fn embeds_javascript_engine(bytes: &[u8]) -> bool {
    const MARK: &[u8] = b"StarlingMonkey";
    bytes.windows(MARK.len()).any(|w| w == MARK)
}
/// Linear memory kept mapped between instances of a pool slot.
const KEEP_RESIDENT: usize = 1 << 20;
/// Bytes of guest stdout/stderr kept per invocation.
const OUTPUT_CAPTURE: usize = 16 << 10;

/// Why a component was refused at upload.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidHook(pub String);

/// Whether a hook may import `name` (`package:namespace/interface@version`):
/// the `hooks` world's own interfaces, and the WASI interfaces a component
/// built with a language's standard library imports, each given a sandbox
/// (no environment variables or arguments, an empty stdin, stdout and
/// stderr captured for the request's log, no preopened directory, clocks
/// and randomness). Whatever
/// reaches outside the host (`wasi:sockets`, `wasi:http`) or any other
/// package is refused at upload, so a component never finds out at its
/// first request that an import it counts on does nothing.
fn is_provided_import(name: &str) -> bool {
    let Some((package, rest)) = name.split_once('/') else {
        return false;
    };
    let interface = rest
        .split_once('@')
        .map_or(rest, |(interface, _)| interface);
    match package {
        "edge:hooks" => matches!(interface, "types" | "kv" | "config" | "log"),
        "wasi:io" => matches!(interface, "error" | "poll" | "streams"),
        "wasi:clocks" => matches!(interface, "wall-clock" | "monotonic-clock"),
        "wasi:random" => matches!(interface, "random" | "insecure" | "insecure-seed"),
        "wasi:cli" => matches!(
            interface,
            "environment"
                | "exit"
                | "stdin"
                | "stdout"
                | "stderr"
                | "terminal-input"
                | "terminal-output"
                | "terminal-stdin"
                | "terminal-stdout"
                | "terminal-stderr"
        ),
        "wasi:filesystem" => matches!(interface, "types" | "preopens"),
        _ => false,
    }
}

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
    #[error("hook {hook} ({event}) did not finish within its time limit of {limit:?}")]
    WallTimeout {
        hook: String,
        event: &'static str,
        limit: Duration,
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
    #[error("hook {hook} ({event}) did not run: the hook runtime is stopping")]
    Stopped { hook: String, event: &'static str },
}

impl HookError {
    /// A limit was exceeded (503) rather than the hook failing (502).
    pub fn is_limit(&self) -> bool {
        matches!(
            self,
            Self::Timeout { .. }
                | Self::WallTimeout { .. }
                | Self::Memory { .. }
                | Self::Capacity { .. }
                | Self::Stopped { .. }
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
    pub name: Arc<str>,
    /// `sha256:<hex>` of the component bytes.
    pub version: String,
    pre: InstancePre<HookState>,
    /// The export of each event, indexed by [`event_index`].
    exports: [ComponentExportIndex; 4],
    /// Counters shared by every version of the name.
    pub stats: Arc<HookStats>,
    /// It embeds a JavaScript engine: larger default budgets.
    pub javascript: bool,
    /// Per event: invocations left that start on the hook threads because a
    /// recent one yielded or failed ([`HookRuntime::run`]).
    demoted: [AtomicU32; 4],
}

impl CompiledHook {
    /// Sends the next [`DEMOTED_RUNS`] invocations of `event` to the hook
    /// threads: one of them ran long or failed.
    fn demote(&self, event: Event) {
        self.demoted[event_index(event)].store(DEMOTED_RUNS, Ordering::Relaxed);
    }
}

/// Where an event's export sits in [`CompiledHook::exports`].
fn event_index(event: Event) -> usize {
    match event {
        Event::ViewerRequest => 0,
        Event::OriginRequest => 1,
        Event::OriginResponse => 2,
        Event::ViewerResponse => 3,
    }
}

/// The export names, as [`event_index`] orders them.
const EXPORT_NAMES: [&str; 4] = [
    "viewer-request",
    "origin-request",
    "origin-response",
    "viewer-response",
];

/// How long an invocation may take in wall time, waits included: ten times
/// its CPU budget, and at least one second.
pub fn wall_limit(budget: Duration) -> Duration {
    (budget * 10).max(Duration::from_secs(1))
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
#[derive(Debug, Clone)]
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

    /// The error for output of this hook that breaks the contract. Like any
    /// failure, it sends the event's next invocations to the hook threads.
    pub fn invalid_output(&self, reason: String) -> HookError {
        self.compiled.demote(self.event);
        HookError::InvalidOutput {
            hook: self.label(),
            event: event_name(self.event),
            reason,
        }
    }
}

/// The store data of one invocation.
pub struct HookState {
    /// Made on the guest's first WASI call: many hooks make none, and a
    /// context (its random generators seeded, its pipes allocated) is a
    /// measurable part of a short invocation.
    wasi: Option<Wasi>,
    table: ResourceTable,
    limiter: MemoryCap,
    kv: Arc<KvData>,
    config: Arc<serde_json::Map<String, serde_json::Value>>,
    request_id: Arc<str>,
    hook: Arc<str>,
    /// The CPU budget, checked by the epoch deadline callback.
    budget: Duration,
    log_lines: u32,
    /// What the guest logged, in order.
    pub logs: Vec<String>,
}

/// A guest's WASI context and the pipes its stdout and stderr go to.
struct Wasi {
    ctx: WasiCtx,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
}

impl Wasi {
    /// No files, sockets, environment or arguments; output captured.
    fn new() -> Self {
        let stdout = MemoryOutputPipe::new(OUTPUT_CAPTURE);
        let stderr = MemoryOutputPipe::new(OUTPUT_CAPTURE);
        let ctx = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .build();
        Self {
            ctx,
            stdout,
            stderr,
        }
    }
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
            ctx: &mut self.wasi.get_or_insert_with(Wasi::new).ctx,
            table: &mut self.table,
        }
    }
}

/// Caps linear memory growth and records that the cap was hit.
struct MemoryCap {
    limit: usize,
    hit: bool,
    /// The most linear memory the instance asked for.
    peak: usize,
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
        self.peak = self.peak.max(desired);
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
    /// Report each invocation's CPU time in [`Ran::cpu`] and the hooks' CPU
    /// histograms: the thread's CPU clock for one that runs past an epoch
    /// tick or waits (the clock is read for the budget then anyway), the wall
    /// time of its one poll for one that finishes within it (no clock read).
    pub measure_cpu: bool,
    /// Threads that take over invocations once they yield, at
    /// [`HOOK_THREAD_NICE`]; 0 runs every invocation on the caller's threads.
    pub threads: usize,
}

/// The CPU time after which an invocation yields at every epoch tick (and so
/// moves to the hook threads): far more than a routing hook takes.
const YIELD_AFTER: Duration = Duration::from_micros(250);

/// How many invocations of an event start on the hook threads after one of
/// its invocations yielded or failed.
const DEMOTED_RUNS: u32 = 100;

/// The nice value of the hook threads: the kernel gives a thread serving
/// viewers (nice 0) about nine times the CPU share of a hook thread when both
/// want it, and lets it preempt one when it wakes.
pub const HOOK_THREAD_NICE: i32 = 10;

/// The process's one hook engine.
pub struct HookRuntime {
    engine: Engine,
    cache: Option<wasmtime::Cache>,
    linker: Linker<HookState>,
    ticker: ticker::Ticker,
    /// Each hook name's counters, shared by its versions.
    stats: std::sync::Mutex<std::collections::BTreeMap<String, Arc<HookStats>>>,
    measure_cpu: bool,
    /// The hook threads' executor, when invocations run apart.
    threads: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for HookRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookRuntime").finish_non_exhaustive()
    }
}

impl Drop for HookRuntime {
    fn drop(&mut self) {
        if let Some(threads) = self.threads.take() {
            // Invocations still running end at their next epoch tick.
            threads.shutdown_background();
        }
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

        let ticker = ticker::Ticker::start(engine.clone(), EPOCH_TICK)
            .map_err(|e| RuntimeError(format!("starting the epoch ticker: {e}")))?;
        let threads = match opts.threads {
            0 => None,
            n => Some(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(n)
                    .thread_name("edge-hook")
                    .enable_time()
                    .on_thread_start(lower_priority)
                    .build()
                    .map_err(|e| RuntimeError(format!("starting the hook threads: {e}")))?,
            ),
        };
        Ok(Self {
            engine,
            cache,
            linker,
            ticker,
            stats: std::sync::Mutex::default(),
            measure_cpu: opts.measure_cpu,
            threads,
        })
    }

    /// Compiles `bytes` and checks it against the `hooks` world. CPU-heavy on a
    /// first compile; call it off the request path.
    pub fn compile(&self, name: &str, bytes: &[u8]) -> Result<CompiledHook, InvalidHook> {
        // A core module (version 1, layer 0) is what a build for
        // wasm32-unknown-unknown or wasm32-wasip1 makes.
        if bytes.starts_with(b"\0asm\x01\0\0\0") {
            return Err(InvalidHook(
                "this is a core WebAssembly module, not a component: build the hook for wasm32-wasip2 (`edge hook build`, or `cargo build --release --target wasm32-wasip2`)".into(),
            ));
        }
        let component = Component::new(&self.engine, bytes)
            .map_err(|e| InvalidHook(format!("not a valid WebAssembly component: {e:#}")))?;
        let refused: Vec<String> = component
            .component_type()
            .imports(&self.engine)
            .map(|(name, _)| name)
            .filter(|name| !is_provided_import(name))
            .map(str::to_owned)
            .collect();
        if !refused.is_empty() {
            return Err(InvalidHook(format!(
                "imports what hooks are not given: {} (a hook may import the hooks world and WASI's io, clocks, random, cli and filesystem interfaces; no sockets, no outbound HTTP)",
                refused.join(", ")
            )));
        }
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| InvalidHook(format!("imports something hooks cannot use: {e:#}")))?;
        // Checks every export's presence and type once, here, so an
        // invocation only looks up the one it calls.
        bindings::HooksPre::new(pre.clone())
            .map_err(|e| InvalidHook(format!("does not export the hooks world: {e:#}")))?;
        let export = |name: &str| {
            component
                .get_export_index(None, name)
                .ok_or_else(|| InvalidHook(format!("does not export {name}")))
        };
        let exports = [
            export(EXPORT_NAMES[0])?,
            export(EXPORT_NAMES[1])?,
            export(EXPORT_NAMES[2])?,
            export(EXPORT_NAMES[3])?,
        ];
        let stats = self
            .stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(HookStats::new(name)))
            .clone();
        Ok(CompiledHook {
            name: name.into(),
            version: version_of(bytes),
            pre,
            exports,
            stats,
            javascript: embeds_javascript_engine(bytes),
            demoted: Default::default(),
        })
    }

    /// Every hook name's counters, for `/metrics`.
    pub fn hook_stats(&self) -> Vec<Arc<HookStats>> {
        self.stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// Compilations served from the on-disk cache since start.
    pub fn cache_hits(&self) -> usize {
        self.cache.as_ref().map_or(0, wasmtime::Cache::cache_hits)
    }

    /// Runs `invocation` here until it first yields (at the first epoch tick
    /// past [`YIELD_AFTER`] of CPU, or to wait), then moves the rest of it to
    /// the hook threads. An event whose invocations lately yielded or failed
    /// (a trap, a limit, invalid output: a misbehaving hook) starts on the
    /// hook threads directly, for its next [`DEMOTED_RUNS`] invocations; a
    /// hook that behaves never pays the hand-off. Dropping the returned future
    /// aborts the invocation at its next epoch tick.
    ///
    /// The invocation comes boxed: its future (wasmtime's instantiation and
    /// call) is several KiB, and every request's future would otherwise be
    /// that much larger, hook or not.
    async fn run<R: Send + 'static>(
        &self,
        hook: &BoundHook,
        mut invocation: Pin<Box<impl Future<Output = Result<Ran<R>, HookError>> + Send + 'static>>,
    ) -> Result<Ran<R>, HookError> {
        let Some(threads) = &self.threads else {
            return invocation.await;
        };
        let demoted = &hook.compiled.demoted[event_index(hook.event)];
        let credit = demoted.load(Ordering::Relaxed);
        if credit == 0 {
            let first = std::future::poll_fn(|cx| Poll::Ready(invocation.as_mut().poll(cx))).await;
            if let Poll::Ready(out) = first {
                if out.is_err() {
                    hook.compiled.demote(hook.event);
                }
                return out;
            }
            hook.compiled.demote(hook.event);
        } else {
            // Spend one credit; an invocation that yields or fails renews them.
            let _ =
                demoted.compare_exchange(credit, credit - 1, Ordering::Relaxed, Ordering::Relaxed);
        }
        hook.compiled.stats.record_offload(event_index(hook.event));
        let (compiled, event) = (Arc::clone(&hook.compiled), hook.event);
        let mut task = AbortOnDrop(threads.spawn(async move {
            let mut polls = 0u32;
            let out = std::future::poll_fn(|cx| {
                polls += 1;
                invocation.as_mut().poll(cx)
            })
            .await;
            if polls > 1 || out.is_err() {
                compiled.demote(event);
            }
            out
        }));
        match (&mut task.0).await {
            Ok(ran) => ran,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(HookError::Stopped {
                hook: hook.label(),
                event: event_name(hook.event),
            }),
        }
    }

    /// Runs a `viewer-request` or `origin-request` event.
    pub async fn request_event(
        &self,
        hook: &BoundHook,
        request_id: &str,
        kv: Arc<KvData>,
        ctx: Context,
        req: Request,
    ) -> Result<Ran<RequestAction>, HookError> {
        let ran = self
            .invoke::<_, (RequestAction,)>(hook, request_id, kv, (ctx, req))
            .await?;
        Ok(ran.map(|(action,)| action))
    }

    /// Runs an `origin-response` or `viewer-response` event.
    pub async fn response_event(
        &self,
        hook: &BoundHook,
        request_id: &str,
        kv: Arc<KvData>,
        ctx: Context,
        req: Request,
        resp: Response,
    ) -> Result<Ran<Response>, HookError> {
        let ran = self
            .invoke::<_, (Response,)>(hook, request_id, kv, (ctx, req, resp))
            .await?;
        Ok(ran.map(|(response,)| response))
    }

    /// One invocation of `hook`'s event export with `params`: a fresh store
    /// and instance, metered, concluded, run through [`Self::run`].
    async fn invoke<P, R>(
        &self,
        hook: &BoundHook,
        request_id: &str,
        kv: Arc<KvData>,
        params: P,
    ) -> Result<Ran<R>, HookError>
    where
        P: wasmtime::component::ComponentNamedList
            + wasmtime::component::Lower
            + Send
            + Sync
            + 'static,
        R: wasmtime::component::ComponentNamedList
            + wasmtime::component::Lift
            + Send
            + Sync
            + 'static,
    {
        use tracing::Instrument as _;
        let mut store = new_store(&self.engine, hook, request_id, kv);
        let measure = self.measure_cpu;
        let hook_owned = hook.clone();
        let running = self.ticker.enter();
        let invocation = async move {
            let _running = running;
            let hook = hook_owned;
            let export = &hook.compiled.exports[event_index(hook.event)];
            let began = Instant::now();
            let mut instantiated = None;
            let call = async {
                let instance = hook.compiled.pre.instantiate_async(&mut store).await?;
                instantiated = Some(began.elapsed());
                let func = instance.get_typed_func::<P, R>(&mut store, export)?;
                func.call_async(&mut store, params).await
            };
            let (result, cpu) = metered(call, hook.budget, wall_limit(hook.budget), measure).await;
            conclude(&hook, store, result, began, instantiated, cpu)
        };
        self.run(hook, Box::pin(invocation.in_current_span())).await
    }
}

/// A spawned invocation, aborted when the request waiting for it goes away.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Lowers the calling thread's CPU priority to [`HOOK_THREAD_NICE`].
fn lower_priority() {
    let tid = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(tid), HOOK_THREAD_NICE) {
        tracing::warn!("hook thread keeps its CPU priority: setpriority: {e}");
    }
}

/// A fresh store for one invocation of `hook`, with its limits.
fn new_store(
    engine: &Engine,
    hook: &BoundHook,
    request_id: &str,
    kv: Arc<KvData>,
) -> Store<HookState> {
    let state = HookState {
        wasi: None,
        table: ResourceTable::new(),
        limiter: MemoryCap {
            limit: hook.memory_limit,
            hit: false,
            peak: 0,
        },
        kv,
        config: hook.config.clone(),
        request_id: request_id.into(),
        hook: hook.compiled.name.clone(),
        budget: hook.budget,
        log_lines: 0,
        logs: Vec::new(),
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    // Look at the CPU used at every epoch tick: a hook that has run for
    // YIELD_AFTER yields its thread to other tasks at each look (and moves to
    // the hook threads), so it holds a thread for at most a tick at a time.
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|ctx| {
        let used = cpu_used();
        if used >= ctx.data().budget {
            return Ok(UpdateDeadline::Interrupt);
        }
        // One that a tick merely caught in passing carries on.
        if used < YIELD_AFTER {
            return Ok(UpdateDeadline::Continue(1));
        }
        Ok(UpdateDeadline::Yield(1))
    });
    store
}

/// Logs what the guest printed, then maps the outcome to a [`HookError`].
/// `result` is `None` when the invocation ran past its wall-time limit.
fn finish<R>(
    hook: &BoundHook,
    mut store: Store<HookState>,
    result: Option<wasmtime::Result<R>>,
) -> Result<Ran<R>, HookError> {
    let state = store.data_mut();
    let pipes = state
        .wasi
        .as_ref()
        .map(|w| [("stdout", &w.stdout), ("stderr", &w.stderr)]);
    for (stream, pipe) in pipes.iter().flatten() {
        let out = pipe.contents();
        for line in String::from_utf8_lossy(&out)
            .lines()
            .filter(|l| !l.is_empty())
        {
            tracing::info!(request_id = %state.request_id, hook = %state.hook, stream, "{line}");
        }
    }
    let logs = std::mem::take(&mut state.logs);
    let err = match result {
        Some(Ok(value)) => {
            return Ok(Ran {
                value,
                logs,
                memory_peak: state.limiter.peak,
                instantiate: None,
                took: Duration::ZERO,
                cpu: None,
            });
        }
        Some(Err(err)) => err,
        None => {
            return Err(HookError::WallTimeout {
                hook: hook.label(),
                event: event_name(hook.event),
                limit: wall_limit(hook.budget),
            });
        }
    };
    let (hook_label, event) = (hook.label(), event_name(hook.event));
    Err(if state.limiter.hit {
        HookError::Memory {
            hook: hook_label,
            event,
            limit: hook.memory_limit,
        }
    } else if err.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        HookError::Timeout {
            hook: hook_label,
            event,
            budget: hook.budget,
        }
    } else if err
        .downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
        .is_some()
    {
        HookError::Capacity {
            hook: hook_label,
            event,
        }
    } else {
        HookError::Trap {
            hook: hook_label,
            event,
            reason: format!("{err:#}"),
        }
    })
}

/// [`Self::finish`], timed and counted in the hook's stats.
fn conclude<R>(
    hook: &BoundHook,
    store: Store<HookState>,
    result: Option<wasmtime::Result<R>>,
    began: Instant,
    instantiated: Option<Duration>,
    cpu: Option<Duration>,
) -> Result<Ran<R>, HookError> {
    let took = began.elapsed();
    let finished = finish(hook, store, result).map(|ran| Ran {
        instantiate: instantiated,
        took,
        cpu,
        ..ran
    });
    hook.compiled.stats.record(
        event_index(hook.event),
        crate::metrics::Invocation {
            instantiate: instantiated,
            took,
            cpu,
            ok: finished.is_ok(),
        },
    );
    finished
}
/// What one invocation returned, and what it took.
#[derive(Debug)]
pub struct Ran<R> {
    pub value: R,
    /// What the guest logged through the `log` interface, in order.
    pub logs: Vec<String>,
    /// The most linear memory the instance grew to (bytes).
    pub memory_peak: usize,
    /// Creating the fresh instance.
    pub instantiate: Option<Duration>,
    /// From instantiation to the export's return (wall time).
    pub took: Duration,
    /// The CPU time the invocation used, when the runtime measures it
    /// ([`RuntimeOptions::measure_cpu`]).
    pub cpu: Option<Duration>,
}

impl<R> Ran<R> {
    /// The same run with its value mapped.
    fn map<T>(self, f: impl FnOnce(R) -> T) -> Ran<T> {
        Ran {
            value: f(self.value),
            logs: self.logs,
            memory_peak: self.memory_peak,
            instantiate: self.instantiate,
            took: self.took,
            cpu: self.cpu,
        }
    }
}

/// The CPU accounting of the invocation being polled on this thread, kept in
/// a thread-local so the epoch deadline callback (which runs inside the poll)
/// can read it without touching the store.
#[derive(Debug, Clone, Copy)]
struct PollCpu {
    /// The thread's CPU time when measuring began in this poll (ns).
    baseline: Option<u64>,
    /// When this poll began.
    started: Instant,
    /// CPU charged before this poll's measurement (ns).
    charged: u64,
    /// The most the unmeasured start of an invocation is charged (ns).
    unmeasured_cap: u64,
}

thread_local! {
    static POLL_CPU: Cell<Option<PollCpu>> = const { Cell::new(None) };
}

/// The calling thread's CPU time, in nanoseconds (a system call: kept off the
/// path of an invocation that finishes within half its budget).
fn thread_cpu_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(t.tv_nsec).unwrap_or(0)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl PollCpu {
    /// CPU used by the invocation so far, starting the measurement if this
    /// poll has none yet. Until the first look the thread's CPU time is not
    /// read; that stretch is charged its wall time, at most `unmeasured_cap`:
    /// never less than the CPU it used (wall time bounds CPU time), and never
    /// more than half the budget, however long the thread was descheduled.
    fn used(&mut self) -> u64 {
        match self.baseline {
            Some(b) => self.charged + thread_cpu_ns().saturating_sub(b),
            None => {
                self.charged += nanos(self.started.elapsed()).min(self.unmeasured_cap);
                self.baseline = Some(thread_cpu_ns());
                self.charged
            }
        }
    }

    /// CPU used by the invocation, at its end. One that never looked (it
    /// finished within its first poll, before an epoch tick) is charged the
    /// poll's wall time: a bound on its CPU time, equal to it unless the
    /// thread was preempted, for no system call.
    fn total(&mut self) -> u64 {
        match self.baseline {
            Some(_) => self.used(),
            None => self.charged + nanos(self.started.elapsed()),
        }
    }
}

/// For the deadline callback: the CPU the invocation on this thread has used.
fn cpu_used() -> Duration {
    POLL_CPU.with(|cell| {
        let Some(mut poll) = cell.get() else {
            return Duration::ZERO;
        };
        let used = poll.used();
        cell.set(Some(poll));
        Duration::from_nanos(used)
    })
}

/// Drives one invocation, keeping [`POLL_CPU`] current for the deadline
/// callback, and gives up (`None`) once `wall` has passed. An invocation that
/// runs straight through before the next epoch tick costs two reads of the
/// (vDSO) monotonic clock; the thread's CPU clock (a system call) and the
/// wall-time timer are only used by one that runs longer or waits. With
/// `measure`, the CPU time is returned ([`PollCpu::total`]).
async fn metered<F: Future>(
    call: F,
    budget: Duration,
    wall: Duration,
    measure: bool,
) -> (Option<F::Output>, Option<Duration>) {
    let started = Instant::now();
    let mut call = pin!(call);
    let mut charged = 0u64;
    let mut first = true;
    let mut timer = None;
    std::future::poll_fn(|cx| {
        if let Some(timer) = timer.as_mut() {
            let timer: &mut Pin<Box<tokio::time::Sleep>> = timer;
            if timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready((None, measure.then(|| Duration::from_nanos(charged))));
            }
        }
        let poll = PollCpu {
            // The first poll is measured lazily; later ones (after a wait) at once.
            baseline: (!std::mem::take(&mut first)).then(thread_cpu_ns),
            started: Instant::now(),
            charged,
            unmeasured_cap: nanos(budget / 2),
        };
        POLL_CPU.set(Some(poll));
        let out = call.as_mut().poll(cx);
        let mut poll = POLL_CPU.take().unwrap_or(poll);
        if let Poll::Ready(out) = out {
            let cpu = measure.then(|| Duration::from_nanos(poll.total()));
            return Poll::Ready((Some(out), cpu));
        }
        charged = poll.used();
        if timer.is_none() {
            let mut sleep = Box::pin(tokio::time::sleep_until((started + wall).into()));
            if sleep.as_mut().poll(cx).is_ready() {
                return Poll::Ready((None, measure.then(|| Duration::from_nanos(charged))));
            }
            timer = Some(sleep);
        }
        Poll::Pending
    })
    .await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unmeasured_stretch_is_charged_at_most_the_cap() {
        // A poll that began a second ago (the thread descheduled, say) is
        // charged the cap, not the second, then measured from there on.
        let mut poll = PollCpu {
            baseline: None,
            started: Instant::now() - Duration::from_secs(1),
            charged: 0,
            unmeasured_cap: nanos(Duration::from_micros(2500)),
        };
        let first = poll.used();
        assert_eq!(first, 2_500_000);
        assert!(poll.baseline.is_some());
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = std::hint::black_box(x.wrapping_add(i));
        }
        let later = poll.used();
        assert!(later > first, "{later} after spinning, {first} before");
        assert!(later < first + 1_000_000_000, "{later}");
    }

    #[test]
    fn an_invocation_done_within_its_first_poll_is_charged_that_polls_wall_time() {
        let mut poll = PollCpu {
            baseline: None,
            started: Instant::now() - Duration::from_millis(3),
            charged: 1_000,
            unmeasured_cap: nanos(Duration::from_micros(2500)),
        };
        let total = poll.total();
        assert!((3_001_000..1_000_000_000).contains(&total), "{total}");
        assert!(poll.baseline.is_none(), "the thread's CPU clock was read");

        // One that looked at its CPU time during the poll is charged by it.
        let mut poll = PollCpu {
            started: Instant::now() - Duration::from_secs(1),
            ..poll
        };
        poll.used();
        assert!(poll.total() < 1_000_000_000, "charged wall time");
    }

    #[test]
    fn the_wall_limit_is_ten_budgets_and_at_least_a_second() {
        assert_eq!(wall_limit(Duration::from_millis(5)), Duration::from_secs(1));
        assert_eq!(wall_limit(Duration::from_secs(2)), Duration::from_secs(20));
    }
}
