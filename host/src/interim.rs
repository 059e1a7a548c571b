//! Informational (1xx) responses to HTTP/1.1 viewers, written on the
//! connection ahead of the response hyper writes.
//!
//! hyper's server sends one response per request (and `100 Continue` of its
//! own accord); it has no way to send a `103 Early Hints` first. So the
//! viewer connection's I/O is wrapped in [`Interleaved`], and each HTTP/1.1
//! request carries an [`InterimSender`] in its extensions. What the sender
//! queues is written between hyper's writes, never inside one of hyper's
//! messages:
//!
//! - hyper flushes its I/O only once its own buffer is empty, so a flush is
//!   the moment its output is whole: queued bytes are written then (and
//!   sending wakes the connection's task, whose next turn flushes);
//! - a queued response is written before hyper's next bytes, which are the
//!   final response's head (hyper writes nothing for a request before its
//!   service returns, but a `100 Continue`, itself a whole message);
//! - when the request's service returns its response, the sender is closed
//!   ([`InterimSender::close`]): what it queued still goes first if hyper's
//!   output is whole (its next bytes are that response), and is dropped
//!   otherwise, so a 1xx never follows its final response. A 1xx partly
//!   written is always finished first.
//!
//! HTTP/2 viewers get no 1xx: the h2 crate's server has no way to send one
//! on a stream (nor does hyper over it).

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;

use bytes::{Buf as _, Bytes};
use http::{HeaderMap, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What one connection's requests queue and its I/O writes. The flags let
/// the I/O pass hyper's bytes without taking the lock while nothing is
/// queued.
#[derive(Debug, Default)]
struct Shared {
    /// Something is queued (or partly written).
    queued: AtomicBool,
    /// hyper's own output is all out (it flushed with nothing buffered),
    /// and nothing of its since.
    quiet: AtomicBool,
    /// The connection's task, woken when something is queued.
    waker: AtomicWaker,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Encoded 1xx responses still to write; the first may be partly written.
    queue: VecDeque<Bytes>,
    /// Bytes of the first in `queue` already written.
    written: usize,
    /// Which request's sender may queue (the others were closed).
    current: u64,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Where a connection's 1xx responses are queued: one per connection (or
/// per parser's life on it), handing a sender to each request.
#[derive(Debug, Clone)]
pub struct Interim {
    shared: Arc<Shared>,
}

impl Interim {
    /// A queue for I/O that hyper has written nothing to yet.
    pub fn new() -> Self {
        let shared = Shared::default();
        shared.quiet.store(true, Ordering::Relaxed);
        Self {
            shared: Arc::new(shared),
        }
    }

    /// The sender of the request about to be served; the one before it can
    /// queue nothing more.
    pub fn sender(&self) -> InterimSender {
        let mut state = self.shared.lock();
        state.current += 1;
        InterimSender {
            shared: self.shared.clone(),
            request: state.current,
        }
    }

    /// `io` with this queue's responses written between hyper's writes.
    pub fn wrap<IO>(&self, io: IO) -> Interleaved<IO> {
        Interleaved {
            io,
            shared: self.shared.clone(),
        }
    }
}

impl Default for Interim {
    fn default() -> Self {
        Self::new()
    }
}

/// Queues one request's 1xx responses (a request extension).
#[derive(Debug, Clone)]
pub struct InterimSender {
    shared: Arc<Shared>,
    request: u64,
}

impl InterimSender {
    /// Queues a 1xx response with `headers` (hop-by-hop fields left out);
    /// nothing once the request's response is on its way.
    pub fn send(&self, status: StatusCode, headers: &HeaderMap) {
        if !status.is_informational() {
            return;
        }
        let mut state = self.shared.lock();
        if state.current != self.request {
            return;
        }
        state.queue.push_back(encode(status, headers));
        self.shared.queued.store(true, Ordering::Release);
        drop(state);
        self.shared.waker.wake();
    }

    /// The request's response is on its way, and nothing more is taken.
    /// What was queued still goes out ahead of it while hyper's output is
    /// whole (hyper's next bytes are that response's); otherwise what was
    /// not started is dropped, since it could only follow the response.
    pub fn close(&self) {
        let mut state = self.shared.lock();
        if state.current != self.request {
            return;
        }
        state.current += 1;
        if !self.shared.quiet.load(Ordering::Acquire) {
            let keep = usize::from(state.written > 0);
            state.queue.truncate(keep);
            self.shared
                .queued
                .store(!state.queue.is_empty(), Ordering::Release);
        }
    }
}

/// `HTTP/1.1 103 Early Hints` and its fields.
fn encode(status: StatusCode, headers: &HeaderMap) -> Bytes {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(
        status
            .canonical_reason()
            .unwrap_or("Informational")
            .as_bytes(),
    );
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        if crate::fields::is_hop_by_hop(name) {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.into()
}

/// A connection's I/O with its queued 1xx responses written between
/// hyper's messages (see the module's comment).
#[derive(Debug)]
pub struct Interleaved<IO> {
    io: IO,
    shared: Arc<Shared>,
}

impl<IO> Interleaved<IO> {
    pub fn get_ref(&self) -> &IO {
        &self.io
    }

    pub fn into_inner(self) -> IO {
        self.io
    }
}

impl<IO: AsyncWrite + Unpin> Interleaved<IO> {
    /// Writes what is queued, when it may go now: while hyper's output is
    /// whole, or to finish one partly written.
    fn poll_queued(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.shared.queued.load(Ordering::Acquire) {
            return Poll::Ready(Ok(()));
        }
        let mut state = self.shared.lock();
        while self.shared.quiet.load(Ordering::Acquire) || state.written > 0 {
            let Some(front) = state.queue.front() else {
                break;
            };
            let mut rest = front.clone();
            rest.advance(state.written);
            let n = match Pin::new(&mut self.io).poll_write(cx, &rest) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => return Poll::Pending,
            };
            if n == rest.len() {
                state.queue.pop_front();
                state.written = 0;
            } else {
                state.written += n;
            }
        }
        self.shared
            .queued
            .store(!state.queue.is_empty(), Ordering::Release);
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Interleaved<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.shared.waker.register(cx.waker());
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Interleaved<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_queued(cx))?;
        this.shared.quiet.store(false, Ordering::Release);
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_queued(cx))?;
        this.shared.quiet.store(false, Ordering::Release);
        Pin::new(&mut this.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    /// hyper flushes its I/O only with its own buffer empty: its output is
    /// whole, and what is queued goes out first.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.shared.quiet.store(true, Ordering::Release);
        this.shared.waker.register(cx.waker());
        std::task::ready!(this.poll_queued(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    fn hints() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("link", "</style.css>; rel=preload".parse().expect("value"));
        headers.insert("connection", "keep-alive".parse().expect("value"));
        headers
    }

    const EARLY_HINTS: &str = "HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n";

    async fn read_all(mut client: tokio::io::DuplexStream) -> String {
        let mut text = String::new();
        client.read_to_string(&mut text).await.expect("read");
        text
    }

    #[tokio::test]
    async fn a_hint_goes_out_at_the_flush_and_before_the_next_response() {
        let interim = Interim::new();
        let (client, server) = tokio::io::duplex(1 << 16);
        let mut io = interim.wrap(server);
        io.write_all(b"HTTP/1.1 200 OK\r\n\r\n")
            .await
            .expect("write");
        io.flush().await.expect("flush");
        let sender = interim.sender();
        sender.send(StatusCode::EARLY_HINTS, &hints());
        // A 100 is hyper's own business, and a 200 is not informational.
        sender.send(StatusCode::OK, &hints());
        io.flush().await.expect("flush");
        sender.close();
        io.write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
            .await
            .expect("write");
        io.shutdown().await.expect("shutdown");
        drop(io);
        assert_eq!(
            read_all(client).await,
            format!("HTTP/1.1 200 OK\r\n\r\n{EARLY_HINTS}HTTP/1.1 204 No Content\r\n\r\n")
        );
    }

    #[tokio::test]
    async fn a_hint_queued_just_before_the_response_still_goes_first() {
        let interim = Interim::new();
        let (client, server) = tokio::io::duplex(1 << 16);
        let mut io = interim.wrap(server);
        io.flush().await.expect("flush");
        let sender = interim.sender();
        // The origin's hint and its final answer came together: the
        // response is returned before the connection's task ran again.
        sender.send(StatusCode::EARLY_HINTS, &hints());
        sender.close();
        io.write_all(b"HTTP/1.1 200 OK\r\n\r\n")
            .await
            .expect("write");
        io.shutdown().await.expect("shutdown");
        drop(io);
        assert_eq!(
            read_all(client).await,
            format!("{EARLY_HINTS}HTTP/1.1 200 OK\r\n\r\n")
        );
    }

    #[tokio::test]
    async fn nothing_is_written_inside_hypers_output_or_after_the_response() {
        let interim = Interim::new();
        let (client, server) = tokio::io::duplex(1 << 16);
        let mut io = interim.wrap(server);
        // hyper wrote part of a response and has not flushed: a hint queued
        // now waits.
        io.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n")
            .await
            .expect("write");
        let first = interim.sender();
        first.send(StatusCode::EARLY_HINTS, &hints());
        io.write_all(b"body").await.expect("write");
        // Its request's response goes out: the hint is dropped, unsent.
        first.close();
        io.flush().await.expect("flush");
        // A closed sender queues nothing more.
        first.send(StatusCode::EARLY_HINTS, &hints());
        io.flush().await.expect("flush");
        io.shutdown().await.expect("shutdown");
        drop(io);
        assert_eq!(
            read_all(client).await,
            "HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nbody"
        );
    }

    #[tokio::test]
    async fn a_hint_partly_written_is_finished_before_anything_else() {
        let interim = Interim::new();
        // Room for 10 bytes at a time.
        let (mut client, server) = tokio::io::duplex(10);
        let mut io = interim.wrap(server);
        let sender = interim.sender();
        sender.send(StatusCode::EARLY_HINTS, &hints());
        let writer = tokio::spawn(async move {
            io.flush().await.expect("flush");
            sender.close();
            io.write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
                .await
                .expect("write");
            io.shutdown().await.expect("shutdown");
        });
        let mut text = String::new();
        client.read_to_string(&mut text).await.expect("read");
        writer.await.expect("writer");
        assert_eq!(
            text,
            format!("{EARLY_HINTS}HTTP/1.1 204 No Content\r\n\r\n")
        );
    }
}
