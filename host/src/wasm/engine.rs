//! The process's one engine: pooling allocator, epoch ticker, the linker and the hook threads.

use super::*;

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
            .parallel_compilation(opts.parallel_compile)
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
        if let Some(dir) = &opts.function_cache_dir {
            config
                .enable_incremental_compilation(Arc::new(incremental::FunctionCache::open(
                    dir.clone(),
                    incremental::FUNCTION_CACHE_BYTES,
                )))
                .map_err(err)?;
        }
        let engine = Engine::new(&config).map_err(err)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(err)?;
        // Both worlds' imports: their versions are not semver-compatible,
        // so `edge:hooks/kv@0.1.0` and `@0.2.0` are two names in one linker.
        bindings::v0_2::Hooks::add_to_linker::<HookState, HasSelf<HookState>>(&mut linker, |s| s)
            .map_err(err)?;
        bindings::v0_1::Hooks::add_to_linker::<HookState, HasSelf<HookState>>(&mut linker, |s| s)
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
            held: Arc::new(tokio::sync::Semaphore::new(
                opts.held_memory_mib.max(1) as usize
            )),
            held_limit_mib: opts.held_memory_mib.max(1),
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

    /// The runtime's gauges for `/metrics`: name, type, help, value.
    pub fn metrics(&self) -> [(&'static str, &'static str, &'static str, u64); 2] {
        [
            (
                "edge_hook_instances_live",
                "gauge",
                "Hook instances alive: running, or kept for a later event of their request.",
                self.engine
                    .pooling_allocator_metrics()
                    .map_or(0, |m| m.component_instances()),
            ),
            (
                "edge_hook_held_memory_mib",
                "gauge",
                "Memory (MiB) held by hook instances kept through origin fetches for a later event of their request, and by bodies read for hooks.",
                u64::from(self.held_limit_mib).saturating_sub(self.held.available_permits() as u64),
            ),
        ]
    }

    /// Compilations served from the on-disk cache since start.
    pub fn cache_hits(&self) -> usize {
        self.cache.as_ref().map_or(0, wasmtime::Cache::cache_hits)
    }
}

/// Lowers the calling thread's CPU priority to [`HOOK_THREAD_NICE`].
pub(super) fn lower_priority() {
    crate::priority::lower_this_thread(HOOK_THREAD_NICE, "hook");
}
