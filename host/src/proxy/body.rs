//! Response bodies: stored bytes on a hit, origin streams (with an idle timeout and
//! an optional copy into the cache) on a miss. Generic over the origin's body
//! (hyper's by default, see [`crate::origin::Origins`]).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use super::compress::Encoder;

/// Why a streamed body stopped early.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("origin body failed: {0}")]
    Origin(#[from] hyper::Error),
    #[error("origin sent nothing for {0:?}")]
    IdleTimeout(Duration),
    #[error("reading a cache file failed: {0}")]
    Disk(std::io::Error),
    #[error("compressing the body failed: {0}")]
    Encode(std::io::Error),
}

/// Called with the whole body once an origin stream ends cleanly.
pub type OnComplete = Box<dyn FnOnce(Bytes) + Send + Sync>;

/// Collects a copy of a streamed body for the cache, up to a limit.
pub struct Tee {
    buf: BytesMut,
    limit: usize,
    on_complete: Option<OnComplete>,
}

impl std::fmt::Debug for Tee {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tee")
            .field("len", &self.buf.len())
            .field("limit", &self.limit)
            .finish()
    }
}

impl Tee {
    /// `expected` is the origin's content-length, if it gave one.
    pub fn new(limit: usize, expected: Option<usize>, on_complete: OnComplete) -> Self {
        Self {
            buf: BytesMut::with_capacity(expected.unwrap_or(0).min(limit)),
            limit,
            on_complete: Some(on_complete),
        }
    }

    fn push(&mut self, data: &Bytes) {
        if self.on_complete.is_some() {
            if self.buf.len() + data.len() > self.limit {
                // Too big to store: stop copying and free what was copied.
                self.on_complete = None;
                self.buf = BytesMut::new();
            } else {
                self.buf.extend_from_slice(data);
            }
        }
    }

    /// Completes a body-less exchange (a HEAD) at once.
    pub fn complete_empty(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        if let Some(done) = self.on_complete.take() {
            done(std::mem::take(&mut self.buf).freeze());
        }
    }
}

/// An origin response body on its way to the viewer.
#[derive(Debug)]
pub struct OriginBody<B = Incoming> {
    /// What was read of the body before it streamed (for a hook): it goes
    /// first.
    head: Option<Bytes>,
    inner: B,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
    tee: Option<Tee>,
    /// Compresses the body on its way (the viewer and the cache get the
    /// encoded bytes); taken when the stream ends.
    encoder: Option<Box<Encoder>>,
    /// The origin's trailers, held while the encoder lets out its last bytes.
    trailers: Option<Frame<Bytes>>,
}

impl<B> OriginBody<B> {
    pub fn new(inner: B, idle: Duration, tee: Option<Tee>) -> Self {
        Self::after(Bytes::new(), inner, idle, tee)
    }

    /// The body of which `read` was read already; it goes first.
    pub fn after(read: Bytes, inner: B, idle: Duration, tee: Option<Tee>) -> Self {
        Self {
            head: Some(read).filter(|r| !r.is_empty()),
            inner,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
            tee,
            encoder: None,
            trailers: None,
        }
    }

    /// The body compressed by `encoder` as it streams.
    pub fn encoded(mut self, encoder: Option<Box<Encoder>>) -> Self {
        self.encoder = encoder;
        self
    }
}

impl<B> OriginBody<B>
where
    B: Body<Data = Bytes, Error = hyper::Error> + Unpin,
{
    /// The origin's next frame (after what was read ahead), with the idle
    /// deadline between frames.
    fn poll_origin(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if let Some(head) = self.head.take() {
            return Poll::Ready(Some(Ok(Frame::data(head))));
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                self.deadline.as_mut().reset(Instant::now() + self.idle);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(err.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                ready!(self.deadline.as_mut().poll(cx));
                Poll::Ready(Some(Err(BodyError::IdleTimeout(self.idle))))
            }
        }
    }

    /// The next frame as the viewer gets it: encoded when an encoder is on.
    fn poll_encoded(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        loop {
            if self.encoder.is_none() {
                if let Some(trailers) = self.trailers.take() {
                    return Poll::Ready(Some(Ok(trailers)));
                }
                return self.poll_origin(cx);
            }
            let polled = ready!(self.poll_origin(cx));
            let Some(encoder) = self.encoder.as_mut() else {
                return Poll::Ready(polled);
            };
            let (out, last) = match polled {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => (encoder.chunk(&data), false),
                    Err(trailers) => {
                        self.trailers = Some(trailers);
                        (encoder.finish(), true)
                    }
                },
                None => (encoder.finish(), true),
                Some(Err(err)) => return Poll::Ready(Some(Err(err))),
            };
            if last {
                self.encoder = None;
            }
            match out {
                Err(err) => return Poll::Ready(Some(Err(BodyError::Encode(err)))),
                Ok(bytes) if bytes.is_empty() => {}
                Ok(bytes) => return Poll::Ready(Some(Ok(Frame::data(bytes)))),
            }
        }
    }
}

impl<B> Body for OriginBody<B>
where
    B: Body<Data = Bytes, Error = hyper::Error> + Unpin,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        let polled = this.poll_encoded(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(tee), Some(data)) = (this.tee.as_mut(), frame.data_ref()) {
                    tee.push(data);
                }
                // Nothing follows: the viewer's side will not poll again.
                if this.is_end_stream()
                    && let Some(tee) = this.tee.as_mut()
                {
                    tee.finish();
                }
            }
            Poll::Ready(Some(Err(_))) => this.tee = None,
            Poll::Ready(None) => {
                if let Some(tee) = this.tee.as_mut() {
                    tee.finish();
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.head.is_none()
            && self.encoder.is_none()
            && self.trailers.is_none()
            && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        if self.encoder.is_some() {
            return SizeHint::default();
        }
        let head = self.head.as_ref().map_or(0, Bytes::len);
        hint_after(head, self.inner.size_hint())
    }
}

/// The size of a body of which `head` bytes are in hand and the rest is
/// `hint`.
pub(super) fn hint_after(head: usize, hint: SizeHint) -> SizeHint {
    let head = head as u64;
    let mut out = SizeHint::new();
    out.set_lower(hint.lower() + head);
    if let Some(upper) = hint.upper() {
        out.set_upper(upper + head);
    }
    out
}

/// Every body the viewer side sends; `B` is the origin's.
#[derive(Debug)]
pub enum EdgeBody<B = Incoming> {
    Empty,
    Full(Option<Bytes>),
    Origin(Box<OriginBody<B>>),
    /// A body whose end (or abandonment) finishes an access-log record.
    Logged(Box<LoggedBody<B>>),
    /// Bytes of a file of the disk tier, read a chunk at a time.
    File(Box<crate::cache::disk::FileChunks>),
}

/// Counts what reaches the viewer and finishes the access-log record when
/// the body ends, fails, or is dropped (the viewer went away).
#[derive(Debug)]
pub struct LoggedBody<B = Incoming> {
    inner: EdgeBody<B>,
    sent: u64,
    pending: Option<crate::access_log::Pending>,
}

impl<B> LoggedBody<B> {
    pub fn wrap(inner: EdgeBody<B>, pending: crate::access_log::Pending) -> EdgeBody<B> {
        EdgeBody::Logged(Box::new(Self {
            inner,
            sent: 0,
            pending: Some(pending),
        }))
    }

    fn finish(&mut self) {
        if let Some(pending) = self.pending.take() {
            pending.finish(self.sent);
        }
    }
}

impl<B> Drop for LoggedBody<B> {
    fn drop(&mut self) {
        self.finish();
    }
}

impl<B> EdgeBody<B> {
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        Self::Full(Some(bytes.into()))
    }

    /// A response a hook generated, with its body (its length the host's).
    pub fn generated(generated: crate::wasm::convert::CheckedResponse) -> http::Response<Self> {
        let mut resp = http::Response::new(generated.body.map_or(Self::Empty, Self::full));
        *resp.status_mut() = generated.status;
        *resp.headers_mut() = generated.headers;
        resp.headers_mut().remove(http::header::CONTENT_LENGTH);
        resp
    }

    /// `len` bytes of a disk-tier object's body from `start`, read from
    /// its file as the viewer takes them.
    pub fn file(file: &crate::cache::disk::FileBody, start: u64, len: u64) -> Self {
        Self::File(Box::new(file.chunks(start, len)))
    }
}

impl<B> Body for EdgeBody<B>
where
    B: Body<Data = Bytes, Error = hyper::Error> + Unpin,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            Self::Empty => Poll::Ready(None),
            Self::Full(bytes) => Poll::Ready(
                bytes
                    .take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(b))),
            ),
            Self::Origin(body) => Pin::new(body.as_mut()).poll_frame(cx),
            Self::File(chunks) => chunks
                .poll_chunk(cx)
                .map(|read| read.map(|r| r.map(Frame::data).map_err(BodyError::Disk))),
            Self::Logged(logged) => {
                let polled = Pin::new(&mut logged.inner).poll_frame(cx);
                match &polled {
                    Poll::Ready(Some(Ok(frame))) => {
                        if let Some(data) = frame.data_ref() {
                            logged.sent += data.len() as u64;
                        }
                    }
                    Poll::Ready(None | Some(Err(_))) => logged.finish(),
                    Poll::Pending => {}
                }
                polled
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Empty => true,
            Self::Full(bytes) => bytes.as_ref().is_none_or(Bytes::is_empty),
            Self::Origin(body) => body.is_end_stream(),
            Self::File(chunks) => chunks.remaining() == 0,
            Self::Logged(logged) => logged.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Empty => SizeHint::with_exact(0),
            Self::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Self::Origin(body) => body.size_hint(),
            Self::File(chunks) => SizeHint::with_exact(chunks.remaining()),
            Self::Logged(logged) => logged.inner.size_hint(),
        }
    }
}
