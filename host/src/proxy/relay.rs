//! A WebSocket once the origin switched protocols: the viewer's and the
//! origin's connections handed over, then their bytes relayed both ways
//! until either side closes (the other then gets [`HALF_CLOSED_GRACE`]) or
//! neither sends a byte for the behavior's idle timeout; counted in the
//! metrics and written to the access log when it closes.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::time::Instant;

use crate::access_log;
use crate::metrics::Metrics;
use crate::upgrade::{Io, ViewerUpgrade};

/// How long the two connections may take to be handed over once the
/// origin's `101` is in.
const SWITCH_WAIT: Duration = Duration::from_secs(10);

/// A WebSocket the origin accepted: opened once its `101` (an HTTP/2
/// viewer's `200`) has gone to the viewer.
pub(super) struct Tunnel {
    pub(super) viewer: ViewerUpgrade,
    /// The viewer speaks HTTP/2: it is answered `200`.
    pub(super) over_h2: bool,
    pub(super) origin: hyper::upgrade::OnUpgrade,
    pub(super) idle: Duration,
    /// The access-log record, finished when the tunnel closes.
    pub(super) log: Option<access_log::Pending>,
}

impl std::fmt::Debug for Tunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tunnel")
            .field("idle", &self.idle)
            .finish_non_exhaustive()
    }
}

impl Tunnel {
    /// Whether the response going to the viewer opens the tunnel (rather
    /// than a hook's or an error's answer in its place).
    pub(super) fn opens_with(&self, status: StatusCode) -> bool {
        if self.over_h2 {
            status == StatusCode::OK
        } else {
            status == StatusCode::SWITCHING_PROTOCOLS
        }
    }

    /// Relays the two connections on a task of its own, once both are
    /// handed over, until either side closes or neither sends a byte
    /// within the idle timeout; then counts and logs the tunnel.
    pub(super) fn open(self, metrics: Arc<Metrics>, request_id: String) {
        tokio::spawn(async move {
            let Self {
                viewer,
                over_h2: _,
                origin,
                idle,
                log,
            } = self;
            let switched = tokio::time::timeout(SWITCH_WAIT, async {
                let viewer = viewer.switched().await.map_err(|e| e.to_string())?;
                let origin = origin.await.map_err(|e| e.to_string())?;
                Ok::<_, String>((viewer, origin))
            })
            .await;
            let (viewer, origin) = match switched {
                Ok(Ok(both)) => both,
                Ok(Err(err)) => {
                    tracing::debug!(request_id, error = %err, "WebSocket not opened");
                    return;
                }
                Err(_) => {
                    tracing::debug!(request_id, "WebSocket not opened: the switch took too long");
                    return;
                }
            };
            let counters = &metrics.websockets;
            counters.opened.fetch_add(1, Ordering::Relaxed);
            counters.open.fetch_add(1, Ordering::Relaxed);
            let activity = Arc::new(Activity::new());
            let viewer = Counted::new(viewer, activity.clone(), VIEWER);
            let origin = Counted::new(
                hyper_util::rt::TokioIo::new(origin),
                activity.clone(),
                ORIGIN,
            );
            let relayed = tokio::select! {
                relayed = relay(viewer, origin) => Some(relayed),
                () = activity.idle_for(idle) => None,
            };
            match relayed {
                None => {
                    counters.idle_closed.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(request_id, ?idle, "WebSocket closed: idle");
                }
                Some(Err(err)) => {
                    tracing::debug!(request_id, error = %err, "WebSocket ended with an error");
                }
                Some(Ok(())) => {}
            }
            let from_viewer = activity.read[VIEWER].load(Ordering::Relaxed);
            let from_origin = activity.read[ORIGIN].load(Ordering::Relaxed);
            counters.open.fetch_sub(1, Ordering::Relaxed);
            counters
                .from_viewers
                .fetch_add(from_viewer, Ordering::Relaxed);
            counters
                .from_origins
                .fetch_add(from_origin, Ordering::Relaxed);
            if let Some(log) = log {
                log.finish_tunnel(from_origin, from_viewer);
            }
        });
    }
}

/// How long one side of a tunnel may stay open after the other closed
/// (sent its last byte and FIN): a peer that half-closes is done.
const HALF_CLOSED_GRACE: Duration = Duration::from_secs(5);

/// Copies each side's bytes to the other until both have closed, or one
/// has and the other has not within [`HALF_CLOSED_GRACE`]. Each side's
/// end is passed on as the end of the other side's writes.
async fn relay<V: Io, G: Io>(viewer: V, origin: G) -> std::io::Result<()> {
    let (mut viewer_read, mut viewer_write) = tokio::io::split(viewer);
    let (mut origin_read, mut origin_write) = tokio::io::split(origin);
    let up = async {
        let copied = tokio::io::copy(&mut viewer_read, &mut origin_write).await;
        let _ = origin_write.shutdown().await;
        copied
    };
    let down = async {
        let copied = tokio::io::copy(&mut origin_read, &mut viewer_write).await;
        let _ = viewer_write.shutdown().await;
        copied
    };
    tokio::pin!(up, down);
    let first = tokio::select! {
        first = &mut up => {
            let _ = tokio::time::timeout(HALF_CLOSED_GRACE, &mut down).await;
            first
        }
        first = &mut down => {
            let _ = tokio::time::timeout(HALF_CLOSED_GRACE, &mut up).await;
            first
        }
    };
    first.map(|_| ())
}

/// The side a tunnel read bytes from.
const VIEWER: usize = 0;
const ORIGIN: usize = 1;

/// What a tunnel's two sides sent, and when either last sent a byte.
#[derive(Debug)]
struct Activity {
    since: Instant,
    /// Milliseconds after `since`.
    last: AtomicU64,
    /// Bytes read from the viewer, and from the origin.
    read: [AtomicU64; 2],
}

impl Activity {
    fn new() -> Self {
        Self {
            since: Instant::now(),
            last: AtomicU64::new(0),
            read: [AtomicU64::new(0), AtomicU64::new(0)],
        }
    }

    fn touch(&self) {
        let millis = u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(millis, Ordering::Relaxed);
    }

    /// Ends once `idle` has passed with no byte either way.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let last = self.since + Duration::from_millis(self.last.load(Ordering::Relaxed));
            let deadline = last + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// One side of a tunnel: the bytes read from it are counted, and stamp the
/// tunnel's activity.
struct Counted<IO> {
    io: IO,
    activity: Arc<Activity>,
    side: usize,
}

impl<IO> Counted<IO> {
    fn new(io: IO, activity: Arc<Activity>, side: usize) -> Self {
        Self { io, activity, side }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Counted<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            this.activity.read[this.side].fetch_add(n as u64, Ordering::Relaxed);
            this.activity.touch();
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Counted<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
