//! The epoch ticker: advances the engine's epoch every tick while hooks run,
//! and parks once none has run for [`PARK_AFTER`].
//!
//! A host that serves no hooked request for a second stops waking a thousand
//! times a second. The first invocation after that wakes the ticker (one
//! system call); its epoch deadline is a tick away as always.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use wasmtime::Engine;

/// Idle ticks (no invocation running at the tick) before the ticker parks.
const PARK_AFTER: u32 = 1000;

/// The handle invocations and the runtime hold.
#[derive(Debug)]
pub(super) struct Ticker {
    shared: Arc<Shared>,
    thread: std::thread::Thread,
}

#[derive(Debug, Default)]
struct Shared {
    /// Invocations in flight.
    running: AtomicUsize,
    /// The ticker is parked, or about to.
    parked: AtomicBool,
    stop: AtomicBool,
}

/// Held by an invocation while it runs (dropped when it ends or is dropped).
#[derive(Debug)]
pub(super) struct Running(Arc<Shared>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Ticker {
    /// Starts the ticker thread for `engine`, advancing every `tick`.
    pub fn start(engine: Engine, tick: Duration) -> std::io::Result<Self> {
        let shared = Arc::new(Shared::default());
        let theirs = shared.clone();
        let handle = std::thread::Builder::new()
            .name("edge-epoch".into())
            .spawn(move || run(&engine, tick, &theirs))?;
        Ok(Self {
            shared,
            thread: handle.thread().clone(),
        })
    }

    /// Marks an invocation as running, waking the ticker if it sleeps.
    pub fn enter(&self) -> Running {
        self.shared.running.fetch_add(1, Ordering::SeqCst);
        if self.shared.parked.load(Ordering::SeqCst)
            && self.shared.parked.swap(false, Ordering::SeqCst)
        {
            self.thread.unpark();
        }
        Running(self.shared.clone())
    }

    /// Whether the ticker is parked (for tests).
    #[cfg(test)]
    fn is_parked(&self) -> bool {
        self.shared.parked.load(Ordering::SeqCst)
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.thread.unpark();
    }
}

fn run(engine: &Engine, tick: Duration, shared: &Shared) {
    let mut idle = 0u32;
    while !shared.stop.load(Ordering::Relaxed) {
        std::thread::sleep(tick);
        engine.increment_epoch();
        if shared.running.load(Ordering::SeqCst) > 0 {
            idle = 0;
            continue;
        }
        idle += 1;
        if idle < PARK_AFTER {
            continue;
        }
        idle = 0;
        shared.parked.store(true, Ordering::SeqCst);
        // An invocation that began after the count above either sees
        // `parked` and unparks this thread, or is seen here.
        if shared.running.load(Ordering::SeqCst) > 0 {
            shared.parked.store(false, Ordering::SeqCst);
            continue;
        }
        while shared.parked.load(Ordering::SeqCst) && !shared.stop.load(Ordering::SeqCst) {
            std::thread::park();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
        let began = Instant::now();
        while !cond() {
            assert!(began.elapsed() < Duration::from_secs(10), "{what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// `(module (func (export "spin") (loop (br 0))))`
    const SPIN: &[u8] = &[
        0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
        0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type: () -> ()
        0x03, 0x02, 0x01, 0x00, // one function of that type
        0x07, 0x08, 0x01, 0x04, b's', b'p', b'i', b'n', 0x00, 0x00, // export "spin"
        0x0a, 0x09, 0x01, 0x07, 0x00, 0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b, // loop (br 0)
    ];

    /// Runs `spin` with an epoch deadline three ticks away on another
    /// thread; whether it was interrupted within ten seconds.
    fn interrupted(engine: &Engine) -> bool {
        let engine = engine.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let module = wasmtime::Module::new(&engine, SPIN).expect("module");
            let mut store = wasmtime::Store::new(&engine, ());
            store.set_epoch_deadline(3);
            store.epoch_deadline_trap();
            let instance = wasmtime::Instance::new(&mut store, &module, &[]).expect("instance");
            let spin = instance
                .get_typed_func::<(), ()>(&mut store, "spin")
                .expect("spin");
            let _ = tx.send(spin.call(&mut store, ()).is_err());
        });
        rx.recv_timeout(Duration::from_secs(10)).unwrap_or(false)
    }

    #[test]
    fn parks_when_idle_and_ticks_again_for_an_invocation() {
        let engine = Engine::new(wasmtime::Config::new().epoch_interruption(true)).expect("engine");
        // 1,000 idle ticks of 100 µs: parked after about 0.1 s.
        let ticker = Ticker::start(engine.clone(), Duration::from_micros(100)).expect("ticker");
        wait_for("the ticker never parked", || ticker.is_parked());

        // An invocation wakes it: the guest's epoch deadline passes, and the
        // ticker keeps ticking while the invocation runs, well past the idle
        // ticks that would park it.
        let running = ticker.enter();
        assert!(!ticker.is_parked());
        assert!(
            interrupted(&engine),
            "a running invocation's deadline never came"
        );
        std::thread::sleep(Duration::from_millis(300));
        assert!(!ticker.is_parked(), "parked with an invocation running");
        drop(running);
        wait_for("the ticker did not park again", || ticker.is_parked());
    }
}
