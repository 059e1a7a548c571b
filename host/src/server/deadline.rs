//! Deadlines on a connection: closed when idle too long, or when its peer
//! stops taking what is written to it.
//!
//! [`Timed`] wraps a connection's IO and records when bytes last moved, in
//! either direction, and since when a write has been waiting on a full send
//! buffer. [`Watchdog::expired`] resolves when the connection is to be
//! closed:
//!
//! - *idle*: no request in flight and no byte read or written for the idle
//!   timeout: a connection that never finishes its preface, its TLS-protected
//!   first request or its HTTP/2 settings, or a keep-alive connection left
//!   open;
//! - *send*: a write has made no progress for the send timeout (nginx's
//!   `send_timeout`): a viewer that stopped reading a large response holds
//!   no socket and no send queue past it.
//!
//! A request waiting on its origin is not idle; its origin's own timeouts
//! bound it.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// No write is waiting.
const NOT_BLOCKED: u64 = u64::MAX;

/// What a connection's IO has done, as the watchdog reads it.
#[derive(Debug)]
pub struct Progress {
    base: Instant,
    /// Milliseconds since `base` when bytes last moved.
    last: AtomicU64,
    /// Milliseconds since `base` since when a write has waited, or
    /// [`NOT_BLOCKED`].
    blocked_since: AtomicU64,
    /// Requests whose handler has not finished.
    in_flight: AtomicUsize,
    /// The watchdog sleeps with no send deadline to keep: a write that
    /// starts waiting is to wake it.
    watching: AtomicBool,
    /// Wakes the watchdog when a write starts waiting.
    wake: tokio::sync::Notify,
}

impl Progress {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            base: Instant::now(),
            last: AtomicU64::new(0),
            blocked_since: AtomicU64::new(NOT_BLOCKED),
            in_flight: AtomicUsize::new(0),
            watching: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
        })
    }

    fn now(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    fn moved(&self) {
        self.last.store(self.now(), Ordering::Relaxed);
        self.blocked_since.store(NOT_BLOCKED, Ordering::Relaxed);
    }

    fn blocked(&self) {
        let now = self.now();
        // SeqCst, with the watchdog's store of `watching` and load of
        // `blocked_since`: one of the two sides sees the other's write, so a
        // write that starts waiting never goes unseen by a sleeping watchdog.
        let started = self
            .blocked_since
            .compare_exchange(NOT_BLOCKED, now, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok();
        if started
            && self.watching.load(Ordering::SeqCst)
            && self.watching.swap(false, Ordering::SeqCst)
        {
            self.wake.notify_one();
        }
    }

    /// Since when the connection has had no request in flight and moved no
    /// byte, or `None` while a request is in flight.
    pub fn idle_since(&self) -> Option<Instant> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        Some(self.base + Duration::from_millis(self.last.load(Ordering::Relaxed)))
    }

    /// Marks a request in flight until the guard drops.
    pub fn request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }
}

/// A request in flight on a connection (see [`Progress::request`]).
#[derive(Debug)]
pub struct InFlight(Arc<Progress>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        // The handler's end is progress: the idle time counts from here.
        self.0.last.store(self.0.now(), Ordering::Relaxed);
    }
}

/// A connection's IO, recording its [`Progress`].
#[derive(Debug)]
pub struct Timed<IO> {
    io: IO,
    progress: Arc<Progress>,
}

impl<IO> Timed<IO> {
    /// Wraps `io`; the progress is what a [`Watchdog`] watches.
    pub fn new(io: IO) -> (Self, Arc<Progress>) {
        let progress = Progress::new();
        (
            Self {
                io,
                progress: progress.clone(),
            },
            progress,
        )
    }

    /// The connection underneath.
    pub fn get_ref(&self) -> &IO {
        &self.io
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Timed<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.progress.moved();
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Timed<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        self.note(&polled);
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.note(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_flush(cx);
        if polled.is_pending() {
            self.progress.blocked();
        }
        polled
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl<IO> Timed<IO> {
    fn note(&self, polled: &Poll<io::Result<usize>>) {
        match polled {
            Poll::Ready(Ok(n)) if *n > 0 => self.progress.moved(),
            Poll::Pending => self.progress.blocked(),
            _ => {}
        }
    }
}

/// The timeouts of one connection.
#[derive(Debug, Clone, Copy)]
pub struct Watchdog {
    pub idle: Duration,
    pub send: Duration,
}

/// Why a connection was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    Idle,
    Send,
}

impl Expired {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Send => "send",
        }
    }
}

impl Watchdog {
    /// Resolves once the connection behind `progress` has passed one of its
    /// deadlines.
    ///
    /// The watchdog sleeps until the nearest deadline it knows of and looks
    /// again then, rather than on a tick: bytes that move meanwhile only push
    /// a deadline back, and are seen when it wakes. A waiting write sets a
    /// send deadline; one that starts waiting while the watchdog sleeps wakes
    /// it. With a request in flight and no write waiting there is no
    /// deadline, and the watchdog looks again after an idle timeout. So ten
    /// thousand idle connections, or ten thousand viewers that stopped
    /// reading, cost one wake-up each per deadline, not one a second each.
    pub async fn expired(self, progress: Arc<Progress>) -> Expired {
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 2);
        let (idle, send) = (millis(self.idle), millis(self.send));
        loop {
            let now = progress.now();
            let blocked = progress.blocked_since.load(Ordering::SeqCst);
            if blocked != NOT_BLOCKED {
                let waited = now.saturating_sub(blocked);
                if waited >= send {
                    return Expired::Send;
                }
                tokio::time::sleep(Duration::from_millis((send - waited).max(10))).await;
                continue;
            }
            let wait = if progress.in_flight.load(Ordering::Relaxed) == 0 {
                let quiet = now.saturating_sub(progress.last.load(Ordering::Relaxed));
                if quiet >= idle {
                    return Expired::Idle;
                }
                idle - quiet
            } else {
                idle
            };
            progress.watching.store(true, Ordering::SeqCst);
            if progress.blocked_since.load(Ordering::SeqCst) != NOT_BLOCKED {
                continue;
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(wait.max(10))) => {}
                () = progress.wake.notified() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    const SHORT: Watchdog = Watchdog {
        idle: Duration::from_millis(200),
        send: Duration::from_millis(200),
    };

    #[tokio::test]
    async fn an_idle_connection_expires_and_a_busy_one_does_not() {
        let (a, mut b) = tokio::io::duplex(1 << 10);
        let (mut timed, progress) = Timed::new(a);
        let started = Instant::now();
        let watch = tokio::spawn(SHORT.expired(progress.clone()));
        // Bytes every 50 ms keep it alive.
        for _ in 0..8 {
            b.write_all(b"x").await.unwrap();
            let mut one = [0u8; 1];
            timed.read_exact(&mut one).await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(!watch.is_finished());
        // A request in flight is not idle, however long it waits.
        let guard = progress.request();
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(!watch.is_finished());
        drop(guard);
        assert_eq!(watch.await.unwrap(), Expired::Idle);
        assert!(started.elapsed() >= Duration::from_millis(600));
    }

    #[tokio::test]
    async fn a_peer_that_stops_reading_expires_the_send_deadline() {
        let (a, _b) = tokio::io::duplex(64);
        let (mut timed, progress) = Timed::new(a);
        let _guard = progress.request();
        let watch = tokio::spawn(SHORT.expired(progress));
        // The peer never reads: the write blocks once the pipe is full.
        let writer = tokio::spawn(async move {
            let _ = timed.write_all(&[0u8; 4096]).await;
        });
        assert_eq!(watch.await.unwrap(), Expired::Send);
        writer.abort();
    }
}
