//! CPU metering: the thread CPU time an invocation uses across its polls.

use super::*;

/// The CPU accounting of the invocation being polled on this thread, kept in
/// a thread-local so the epoch deadline callback (which runs inside the poll)
/// can read it without touching the store.
#[derive(Debug, Clone, Copy)]
pub(super) struct PollCpu {
    /// The thread's CPU time when measuring began in this poll (ns).
    pub(super) baseline: Option<u64>,
    /// When this poll began.
    pub(super) started: Instant,
    /// CPU charged before this poll's measurement (ns).
    pub(super) charged: u64,
    /// The most the unmeasured start of an invocation is charged (ns).
    pub(super) unmeasured_cap: u64,
}

/// The calling thread's CPU time, in nanoseconds (a system call: kept off the
/// path of an invocation that finishes within half its budget).
pub(super) fn thread_cpu_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(t.tv_nsec).unwrap_or(0)
}

pub(super) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl PollCpu {
    /// CPU used by the invocation so far, starting the measurement if this
    /// poll has none yet. Until the first look the thread's CPU time is not
    /// read; that stretch is charged its wall time, at most `unmeasured_cap`:
    /// never less than the CPU it used (wall time bounds CPU time), and never
    /// more than half the budget, however long the thread was descheduled.
    pub(super) fn used(&mut self) -> u64 {
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
    pub(super) fn total(&mut self) -> u64 {
        match self.baseline {
            Some(_) => self.used(),
            None => self.charged + nanos(self.started.elapsed()),
        }
    }
}

/// For the deadline callback: the CPU the invocation on this thread has used.
pub(super) fn cpu_used() -> Duration {
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
pub(super) async fn metered<F: Future>(
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
