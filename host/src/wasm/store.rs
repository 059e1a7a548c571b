//! The store of an instance: its WASI context (made on first use), memory cap and log.

use super::*;

/// The store data of one invocation.
pub struct HookState {
    /// Made on the guest's first WASI call: many hooks make none, and a
    /// context (its random generators seeded, its pipes allocated) is a
    /// measurable part of a short invocation.
    pub(super) wasi: Option<Wasi>,
    pub(super) table: ResourceTable,
    pub(super) limiter: MemoryCap,
    pub(super) kv: Arc<KvData>,
    pub(super) config: Arc<serde_json::Map<String, serde_json::Value>>,
    pub(super) request_id: Arc<str>,
    pub(super) hook: Arc<str>,
    /// The CPU budget, checked by the epoch deadline callback.
    pub(super) budget: Duration,
    pub(super) log_lines: u32,
    /// What the guest logged, in order.
    pub logs: Vec<String>,
    /// What the event may send with `fetch`, and has sent.
    pub(super) fetch: fetch::FetchScope,
    /// The secret stores the event may read.
    pub(super) secret_stores: Arc<[Arc<str>]>,
}

/// A guest's WASI context and the pipes its stdout and stderr go to.
pub(super) struct Wasi {
    pub(super) ctx: WasiCtx,
    pub(super) stdout: MemoryOutputPipe,
    pub(super) stderr: MemoryOutputPipe,
    /// How much of stdout and stderr is in the log already.
    pub(super) printed: [usize; 2],
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
            printed: [0; 2],
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
pub(super) struct MemoryCap {
    pub(super) limit: usize,
    pub(super) hit: bool,
    /// The most linear memory the instance asked for.
    pub(super) peak: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("memory cap exceeded")]
pub(super) struct MemoryCapExceeded;

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

/// A fresh store for one invocation of `hook`, with its limits.
pub(super) fn new_store(
    engine: &Engine,
    hook: &BoundHook,
    request_id: &str,
    kv: Arc<KvData>,
    outbound: Option<Arc<dyn fetch::Outbound>>,
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
        fetch: fetch::FetchScope::new(outbound, hook),
        secret_stores: hook.secret_stores.clone(),
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
