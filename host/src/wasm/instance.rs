//! One request's hook instances: a 0.2.0 component serves every event of a request it is attached to from one instance.
//!
//! The first event of a request that runs a component instantiates it; the
//! instance goes back here after a call that succeeded, for the request's
//! later events, and is dropped (its pool slot freed) when no event still to
//! run uses it ([`RequestHooks::keep_only`]) or when the request ends. An
//! instance whose call failed is never called again. Each call keeps its own
//! association's limits: its CPU budget, its memory cap (memory an earlier
//! event grew stays), its config and its log allowance.

use super::*;

/// The live instances of one request, by component.
#[derive(Default)]
pub struct RequestHooks {
    slots: std::sync::Mutex<Vec<(Arc<CompiledHook>, Box<Live>)>>,
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
}

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
        let dropped: Vec<_> = {
            let (keep, drop): (Vec<_>, Vec<_>) =
                std::mem::take(&mut *slots)
                    .into_iter()
                    .partition(|(compiled, _)| {
                        later
                            .clone()
                            .into_iter()
                            .flatten()
                            .any(|hook| Arc::ptr_eq(&hook.compiled, compiled))
                    });
            *slots = keep;
            drop
        };
        drop(slots);
        drop(dropped);
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
    ) -> Self {
        Self {
            store: new_store(engine, hook, request_id, kv),
            instance: None,
        }
    }

    /// Readies the store for a call of `hook`'s event: that association's
    /// budget, memory cap, config and log allowance, and an epoch deadline
    /// counted from now.
    pub(super) fn enter(&mut self, hook: &BoundHook) {
        let state = self.store.data_mut();
        state.budget = hook.budget;
        state.limiter.limit = hook.memory_limit;
        state.limiter.hit = false;
        state.config = hook.config.clone();
        state.log_lines = 0;
        state.logs.clear();
        self.store.set_epoch_deadline(1);
    }
}
