//! WebAssembly hooks: one engine per process, each component compiled once, a fresh
//! bounded instance for every request (for every event, for components of the 0.1.0 world).
//!
//! The engine uses the pooling allocator with copy-on-write memory images and
//! epoch interruption (a ticker thread advances the epoch every millisecond
//! while hooks run; [`ticker`]).
//! Each uploaded component is compiled once (and cached on disk by content hash,
//! so a restart does not recompile) into an `InstancePre`, with the export of
//! each event looked up once, for the world it was built for ([`World`]). The
//! first event of a request that runs a component gets a new `Store` with a
//! memory cap, WASI without files, sockets or host environment, and
//! stdout/stderr captured for the log, and instantiates; each event's call
//! has its own CPU budget. A component of the current world keeps its
//! instance for the request's later events ([`RequestHooks`]); one of the
//! 0.1.0 world gets a fresh instance for every event, as it was built for.
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
//!
//! By concern: the engine and its threads (`engine.rs`), compiling and
//! checking an upload (`compile.rs`), invoking an event (`invoke.rs`), a
//! request's instances (`instance.rs`), an instance's store (`store.rs`), CPU metering (`meter.rs`), errors
//! (`error.rs`), one event of one request as the proxy and `edge hook test`
//! both run it (`stage.rs`); one host file per WIT interface (`kv.rs`, `config.rs`,
//! `log.rs`) and the conversions between WIT and HTTP types (`convert.rs`).

pub mod bindings;
mod config;
pub mod convert;
mod kv;
mod log;
pub mod secrets;
mod ticker;

mod compile;
mod engine;
mod error;
pub mod fetch;
mod incremental;
mod instance;
mod invoke;
mod meter;
pub mod stage;
mod store;

pub use error::{HookError, InvalidHook, RuntimeError};
use instance::Live;
pub use instance::RequestHooks;
pub use invoke::Ran;
use meter::*;
pub use store::HookState;
use store::*;

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

/// Linear memory kept mapped between instances of a pool slot.
const KEEP_RESIDENT: usize = 1 << 20;
/// Bytes of guest stdout/stderr kept per invocation.
const OUTPUT_CAPTURE: usize = 16 << 10;

/// The name of an event as configs and logs spell it.
pub fn event_name(event: Event) -> &'static str {
    match event {
        Event::ViewerRequest => "viewer_request",
        Event::OriginRequest => "origin_request",
        Event::OriginResponse => "origin_response",
        Event::ViewerResponse => "viewer_response",
    }
}

/// The hooks world a component was built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum World {
    /// `edge:hooks@0.1.0`: the four events exported by the world; a fresh
    /// instance per event.
    V0_1,
    /// `edge:hooks@0.2.0`: the four events in the `events` interface; one
    /// instance per request.
    V0_2,
}

impl World {
    /// `@0.2.0`: how the world's interface names end.
    pub fn suffix(self) -> &'static str {
        match self {
            Self::V0_1 => "@0.1.0",
            Self::V0_2 => "@0.2.0",
        }
    }

    /// `edge:hooks@0.2.0`, as the API shows it.
    pub fn name(self) -> &'static str {
        match self {
            Self::V0_1 => "edge:hooks@0.1.0",
            Self::V0_2 => "edge:hooks@0.2.0",
        }
    }
}

/// A component compiled and checked against a `hooks` world.
pub struct CompiledHook {
    pub name: Arc<str>,
    /// `sha256:<hex>` of the component bytes.
    pub version: String,
    pre: InstancePre<HookState>,
    /// The world it was built for.
    pub world: World,
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
    /// How the event is given the body, if it is (`include_body`).
    pub body: Option<BodyRead>,
    /// What the event may send with `fetch` (the association's `fetch`).
    pub fetch: Option<fetch::FetchLimits>,
    /// The secret stores the event may read (the association's
    /// `secret_stores`).
    pub secret_stores: Arc<[Arc<str>]>,
}

/// How a hook association is given a body (`include_body`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyRead {
    /// The most bytes it is given.
    pub limit: usize,
    /// A longer body is refused rather than given truncated.
    pub reject: bool,
}

/// The secret stores an association may read (its `secret_stores`).
pub fn secret_stores(hook: &crate::config::raw::HookRef) -> Arc<[Arc<str>]> {
    hook.secret_stores
        .iter()
        .map(|s| Arc::from(s.as_str()))
        .collect()
}

impl fetch::FetchLimits {
    /// What an association's `fetch` object allows; `None` without one.
    pub fn of(hook: &crate::config::raw::HookRef) -> Option<Self> {
        let fetch = hook.fetch?;
        Some(Self {
            max_requests: fetch.max_requests.unwrap_or(4),
            timeout: Duration::from_millis(fetch.timeout_ms.unwrap_or(2000)),
            max_response: usize::try_from(fetch.max_response_kib.unwrap_or(1024) << 10)
                .unwrap_or(usize::MAX),
            cache: fetch.cache,
        })
    }
}

impl BodyRead {
    /// What an association asks for; `None` without `include_body`.
    pub fn of(hook: &crate::config::raw::HookRef) -> Option<Self> {
        use crate::config::MAX_BODY_LIMIT_KIB;
        hook.include_body.then(|| Self {
            limit: usize::try_from(hook.body_limit_kib.unwrap_or(MAX_BODY_LIMIT_KIB) << 10)
                .unwrap_or(usize::MAX),
            reject: hook.body_over_limit == Some(crate::config::raw::BodyOverLimit::Reject),
        })
    }
}

impl BoundHook {
    /// `name@sha256:...`, for logs.
    pub fn label(&self) -> String {
        format!("{}@{}", self.compiled.name, self.compiled.version)
    }

    /// How long an invocation may take, waiting included: [`wall_limit`]
    /// of its budget, and the longest its requests may wait.
    pub fn wall_limit(&self) -> Duration {
        wall_limit(self.budget) + self.fetch.map_or(Duration::ZERO, |f| f.longest_wait())
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

/// Options of the hook runtime.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Where compiled artifacts are cached by content hash; `None` disables it.
    pub cache_dir: Option<PathBuf>,
    /// Where compiled functions are cached by their own hash, so a
    /// component that changed a little compiles only what changed (a folder
    /// apart: the artifact cache's cleaner removes what it did not write).
    pub function_cache_dir: Option<PathBuf>,
    /// Instances that may run at once (pool slots).
    pub max_instances: u32,
    /// Report each invocation's CPU time in [`Ran::cpu`] and the hooks' CPU
    /// histograms: the thread's CPU clock for one that runs past an epoch
    /// tick or waits (the clock is read for the budget then anyway), the wall
    /// time of its one poll for one that finishes within it (no clock read).
    pub measure_cpu: bool,
    /// The memory (MiB) the instances kept through origin fetches and the
    /// bodies read for hooks may hold in all ([`RequestHooks::hold`],
    /// [`RequestHooks::hold_body`]).
    pub held_memory_mib: u32,
    /// Compile a component's functions on every core: for a command a
    /// person waits on (`edge hook test`, `edge dev`). A host serving viewers
    /// compiles an upload on one thread, beside its workers.
    pub parallel_compile: bool,
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
    /// Permits, one a MiB, for the memory of instances kept through origin
    /// fetches.
    held: Arc<tokio::sync::Semaphore>,
    held_limit_mib: u32,
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

thread_local! {
    static POLL_CPU: Cell<Option<PollCpu>> = const { Cell::new(None) };
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
