//! Lower CPU priority for threads that do background work (hooks that
//! yielded, removals after a purge), so threads serving viewers go first.

/// Lowers the calling thread's CPU priority to `nice` (Linux: per thread).
pub fn lower_this_thread(nice: i32, what: &str) {
    let tid = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(tid), nice) {
        tracing::warn!("{what} thread keeps its CPU priority: setpriority: {e}");
    }
}
