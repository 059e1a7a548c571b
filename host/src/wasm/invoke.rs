//! Invoking an event: the request's instance (or a fresh one), run here until it yields, then on the hook threads.

use super::*;

impl HookRuntime {
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
        mut invocation: Pin<Box<impl Future<Output = Invoked<R>> + Send + 'static>>,
    ) -> Invoked<R> {
        let Some(threads) = &self.threads else {
            return invocation.await;
        };
        let demoted = &hook.compiled.demoted[event_index(hook.event)];
        let credit = demoted.load(Ordering::Relaxed);
        if credit == 0 {
            let first = std::future::poll_fn(|cx| Poll::Ready(invocation.as_mut().poll(cx))).await;
            if let Poll::Ready(out) = first {
                if out.1.is_err() {
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
            if polls > 1 || out.1.is_err() {
                compiled.demote(event);
            }
            out
        }));
        match (&mut task.0).await {
            Ok(out) => out,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => (
                None,
                Err(HookError::Stopped {
                    hook: hook.label(),
                    event: event_name(hook.event),
                }),
            ),
        }
    }

    /// Runs a `viewer-request` or `origin-request` event, in the request's
    /// instance of the component when `instances` holds one.
    #[expect(clippy::too_many_arguments, reason = "one event's whole input")]
    pub async fn request_event(
        &self,
        hook: &BoundHook,
        instances: &RequestHooks,
        request_id: &str,
        kv: Arc<KvData>,
        outbound: Option<Arc<dyn fetch::Outbound>>,
        ctx: Context,
        req: Request,
    ) -> Result<Ran<RequestAction>, HookError> {
        match hook.compiled.world {
            World::V0_2 => {
                let ran = self
                    .invoke::<_, (RequestAction,)>(
                        hook,
                        Some(instances),
                        (request_id, kv, outbound),
                        (ctx, req),
                    )
                    .await?;
                Ok(ran.map(|(action,)| action))
            }
            World::V0_1 => {
                use bindings::v0_1::edge::hooks::types as old;
                let ran = self
                    .invoke::<_, (old::RequestAction,)>(
                        hook,
                        None,
                        (request_id, kv, None),
                        (old::Context::from(ctx), old::Request::from(req)),
                    )
                    .await?;
                Ok(ran.map(|(action,)| action.into()))
            }
        }
    }

    /// Runs an `origin-response` or `viewer-response` event, in the
    /// request's instance of the component when `instances` holds one.
    #[expect(clippy::too_many_arguments, reason = "one event's whole input")]
    pub async fn response_event(
        &self,
        hook: &BoundHook,
        instances: &RequestHooks,
        request_id: &str,
        kv: Arc<KvData>,
        outbound: Option<Arc<dyn fetch::Outbound>>,
        ctx: Context,
        req: Request,
        resp: Response,
    ) -> Result<Ran<Response>, HookError> {
        match hook.compiled.world {
            World::V0_2 => {
                let ran = self
                    .invoke::<_, (Response,)>(
                        hook,
                        Some(instances),
                        (request_id, kv, outbound),
                        (ctx, req, resp),
                    )
                    .await?;
                Ok(ran.map(|(response,)| response))
            }
            World::V0_1 => {
                use bindings::v0_1::edge::hooks::types as old;
                let ran = self
                    .invoke::<_, (old::Response,)>(
                        hook,
                        None,
                        (request_id, kv, None),
                        (
                            old::Context::from(ctx),
                            old::Request::from(req),
                            old::Response::from(resp),
                        ),
                    )
                    .await?;
                Ok(ran.map(|(response,)| response.into()))
            }
        }
    }

    /// One invocation of `hook`'s event export with `params`: in the
    /// request's instance of the component if `instances` has one, else in a
    /// fresh one (kept in `instances` afterwards when given and the call
    /// succeeded); metered, concluded, run through [`Self::run`].
    async fn invoke<P, R>(
        &self,
        hook: &BoundHook,
        instances: Option<&RequestHooks>,
        (request_id, kv, outbound): (&str, Arc<KvData>, Option<Arc<dyn fetch::Outbound>>),
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
        let mut live = match instances.and_then(|i| i.take(&hook.compiled)) {
            Some(mut live) => {
                live.enter(hook, outbound);
                live
            }
            None => Box::new(Live::new(&self.engine, hook, request_id, kv, outbound)),
        };
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
                let Live {
                    store, instance, ..
                } = &mut *live;
                let instance = match instance {
                    Some(instance) => *instance,
                    None => {
                        let made = hook.compiled.pre.instantiate_async(&mut *store).await?;
                        instantiated = Some(began.elapsed());
                        *instance.insert(made)
                    }
                };
                let func = instance.get_typed_func::<P, R>(&mut *store, export)?;
                func.call_async(&mut *store, params).await
            };
            let (result, cpu) = metered(call, hook.budget, hook.wall_limit(), measure).await;
            let out = conclude(&hook, &mut live.store, result, began, instantiated, cpu);
            (out.is_ok().then_some(live), out)
        };
        let (live, out) = self.run(hook, Box::pin(invocation.in_current_span())).await;
        if let (Some(instances), Some(live)) = (instances, live) {
            instances.put(&hook.compiled, live);
        }
        out
    }
}

/// What an invocation gives back: the instance, when it may serve a later
/// event of the request, and the outcome.
type Invoked<R> = (Option<Box<Live>>, Result<Ran<R>, HookError>);

/// A spawned invocation, aborted when the request waiting for it goes away.
pub(super) struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Logs what the guest printed, then maps the outcome to a [`HookError`].
/// `result` is `None` when the invocation ran past its wall-time limit.
pub(super) fn finish<R>(
    hook: &BoundHook,
    store: &mut Store<HookState>,
    result: Option<wasmtime::Result<R>>,
) -> Result<Ran<R>, HookError> {
    let state = store.data_mut();
    if let Some(wasi) = &mut state.wasi {
        // What this call printed: an instance that served an earlier event
        // of the request printed the start of each pipe.
        let [out_printed, err_printed] = &mut wasi.printed;
        for (stream, pipe, printed) in [
            ("stdout", &wasi.stdout, out_printed),
            ("stderr", &wasi.stderr, err_printed),
        ] {
            let out = pipe.contents();
            let new = out.get(*printed..).unwrap_or_default();
            *printed = out.len();
            for line in String::from_utf8_lossy(new)
                .lines()
                .filter(|l| !l.is_empty())
            {
                tracing::info!(request_id = %state.request_id, hook = %state.hook, stream, "{line}");
            }
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
                limit: hook.wall_limit(),
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
pub(super) fn conclude<R>(
    hook: &BoundHook,
    store: &mut Store<HookState>,
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
    /// Creating the instance; `None` when an earlier event of the request
    /// made it.
    pub instantiate: Option<Duration>,
    /// From instantiation to the export's return (wall time).
    pub took: Duration,
    /// The CPU time the invocation used, when the runtime measures it
    /// ([`RuntimeOptions::measure_cpu`]).
    pub cpu: Option<Duration>,
}

impl<R> Ran<R> {
    /// The same run with its value mapped.
    pub(crate) fn map<T>(self, f: impl FnOnce(R) -> T) -> Ran<T> {
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
