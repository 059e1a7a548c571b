//! One request's hook instances: a 0.2.0 component serves every event of a request it is attached to from one instance.
//!
//! The first event of a request that runs a component instantiates it; the
//! instance goes back here after a call that succeeded, for the request's
//! later events, and is dropped (its pool slot freed) when no event still to
//! run uses it ([`RequestHooks::keep_only`]) or when the request ends. An
//! instance whose call failed is never called again. Each call keeps its own
//! association's limits: its CPU budget, its memory cap (memory an earlier
//! event grew stays), its config and its log allowance. Instances kept
//! through an origin fetch share a memory bound ([`RequestHooks::hold`])
//! with the bodies read for hooks ([`RequestHooks::hold_body`]); the pool's
//! instance count bounds them too.

use super::*;

/// The live instances of one request, by component.
#[derive(Default)]
pub struct RequestHooks {
    slots: std::sync::Mutex<Vec<(Arc<CompiledHook>, Box<Live>)>>,
    /// The shares of the bodies read for the request's hooks.
    bodies: std::sync::Mutex<Vec<tokio::sync::OwnedSemaphorePermit>>,
}

impl std::fmt::Debug for RequestHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestHooks")
            .field("live", &self.len())
            .finish()
    }
}

/// An instance between two events of its request, with its store.
pub(super) struct Live {
    pub(super) store: Store<HookState>,
    pub(super) instance: Option<wasmtime::component::Instance>,
    /// Its share of the memory instances may hold through origin fetches.
    hold: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// How long a request waits for memory to keep its instances through an
/// origin fetch before it is refused.
const HOLD_WAIT: Duration = Duration::from_millis(10);

impl RequestHooks {
    /// How many instances the request holds.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops the instances of every component not among `later`, the hooks
    /// of the events still to run: their pool slots go back now.
    pub fn keep_only<'a>(&self, later: impl IntoIterator<Item = Option<&'a BoundHook>> + Clone) {
        let mut slots = self.lock();
        if slots.is_empty() {
            return;
        }
        let used_later = |compiled: &Arc<CompiledHook>| {
            later
                .clone()
                .into_iter()
                .flatten()
                .any(|hook| Arc::ptr_eq(&hook.compiled, compiled))
        };
        let (keep, gone): (Vec<_>, Vec<_>) = std::mem::take(&mut *slots)
            .into_iter()
            .partition(|(compiled, _)| used_later(compiled));
        *slots = keep;
        drop(slots);
        // Dropped outside the lock: a store's drop resets its memory.
        drop(gone);
    }

    /// Before a wait outside hooks (the origin fetch): every instance kept
    /// takes its share of the host's memory for kept instances, its memory
    /// in MiB (as grown so far, at least 1). A request that cannot get it
    /// within [`HOLD_WAIT`] is refused (a 503), so instances waiting on slow
    /// origins cannot hold more than the bound between them.
    pub async fn hold(&self, runtime: &HookRuntime) -> Result<(), HookError> {
        let needed: Vec<(Arc<CompiledHook>, u32)> = self
            .lock()
            .iter()
            .filter(|(_, live)| live.hold.is_none())
            .map(|(compiled, live)| {
                let mib = live.store.data().limiter.peak.div_ceil(1 << 20).max(1);
                let mib = u32::try_from(mib).unwrap_or(u32::MAX);
                (compiled.clone(), mib.min(runtime.held_limit_mib))
            })
            .collect();
        for (compiled, mib) in needed {
            let permit =
                tokio::time::timeout(HOLD_WAIT, runtime.held.clone().acquire_many_owned(mib)).await;
            let Ok(Ok(permit)) = permit else {
                return Err(HookError::Held {
                    hook: compiled.name.to_string(),
                    limit_mib: runtime.held_limit_mib,
                });
            };
            if let Some((_, live)) = self
                .lock()
                .iter_mut()
                .find(|(c, _)| Arc::ptr_eq(c, &compiled))
            {
                live.hold = Some(permit);
            }
        }
        Ok(())
    }

    /// Before a body is read for `hook` (`include_body`): the body takes
    /// its share of the same memory, `limit` bytes rounded up to MiB, for as
    /// long as the request runs. Refused like [`RequestHooks::hold`].
    pub async fn hold_body(
        &self,
        runtime: &HookRuntime,
        hook: &BoundHook,
        limit: usize,
    ) -> Result<(), HookError> {
        let mib = u32::try_from(limit.div_ceil(1 << 20).max(1)).unwrap_or(u32::MAX);
        let permit = tokio::time::timeout(
            HOLD_WAIT,
            runtime
                .held
                .clone()
                .acquire_many_owned(mib.min(runtime.held_limit_mib)),
        )
        .await;
        let Ok(Ok(permit)) = permit else {
            return Err(HookError::Held {
                hook: hook.compiled.name.to_string(),
                limit_mib: runtime.held_limit_mib,
            });
        };
        self.bodies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(permit);
        Ok(())
    }

    /// Drops every instance.
    pub fn clear(&self) {
        let all = std::mem::take(&mut *self.lock());
        drop(all);
    }

    /// The instance of `compiled`, if an earlier event of the request made one.
    pub(super) fn take(&self, compiled: &Arc<CompiledHook>) -> Option<Box<Live>> {
        let mut slots = self.lock();
        let at = slots.iter().position(|(c, _)| Arc::ptr_eq(c, compiled))?;
        Some(slots.swap_remove(at).1)
    }

    /// Keeps `live` for the request's later events.
    pub(super) fn put(&self, compiled: &Arc<CompiledHook>, live: Box<Live>) {
        self.lock().push((compiled.clone(), live));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Arc<CompiledHook>, Box<Live>)>> {
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Live {
    /// A store for `hook`'s component, not yet instantiated.
    pub(super) fn new(
        engine: &Engine,
        hook: &BoundHook,
        request_id: &str,
        kv: Arc<KvData>,
        outbound: Option<Arc<dyn fetch::Outbound>>,
    ) -> Self {
        Self {
            store: new_store(engine, hook, request_id, kv, outbound),
            instance: None,
            hold: None,
        }
    }

    /// Readies the store for a call of `hook`'s event: that association's
    /// budget, memory cap, config, log allowance, the requests it may send
    /// and the secret stores it may read, and an epoch deadline counted from
    /// now.
    pub(super) fn enter(&mut self, hook: &BoundHook, outbound: Option<Arc<dyn fetch::Outbound>>) {
        let state = self.store.data_mut();
        state.fetch = fetch::FetchScope::new(outbound, hook);
        state.secret_stores = hook.secret_stores.clone();
        state.budget = hook.budget;
        state.limiter.limit = hook.memory_limit;
        state.limiter.hit = false;
        state.config = hook.config.clone();
        state.log_lines = 0;
        state.logs.clear();
        self.store.set_epoch_deadline(1);
    }
}
