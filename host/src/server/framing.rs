//! A watch on the bytes a viewer sends before the HTTP/1 parser reads them:
//! it finds each request head (skipping bodies by their framing) and notes the
//! first that carries both `Content-Length` and `Transfer-Encoding`.
//!
//! hyper resolves such a request in favour of `Transfer-Encoding` and closes
//! the connection after it, as RFC 9112 6.3 allows; but the shape is the
//! classic request-smuggling attempt, and this host refuses it outright with
//! 400 (the service checks [`Framing::is_ambiguous`] for each request number).
//! It also flags the first head longer than `--max-header-bytes`: hyper's
//! own limit is on its read buffer, which admits more or less than the
//! number configured depending on how the bytes arrive, so the service
//! refuses that request and every later one on the connection with 431.
//! The watch gives up quietly (and flags nothing more) on anything it cannot
//! follow: a malformed head (hyper refuses those itself), or a connection
//! upgrade.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What the watch found on one connection, shared with the service.
#[derive(Debug, Default)]
pub struct Framing {
    /// 1 + the number of the first ambiguous request; 0 for none.
    ambiguous: AtomicU64,
    /// 1 + the number of the first request whose head was too long; 0 for none.
    oversized: AtomicU64,
    /// Bytes went out to the viewer since [`Framing::clear_wrote`].
    wrote: AtomicBool,
}

impl Framing {
    /// Whether request number `index` (from 0) on the connection carried both
    /// `Content-Length` and `Transfer-Encoding`.
    pub fn is_ambiguous(&self, index: u64) -> bool {
        self.ambiguous.load(Ordering::Acquire) == index + 1
    }

    /// Whether request number `index` (from 0) came at or after a head
    /// longer than the limit (the watch stops there, so none after it is
    /// trusted).
    pub fn is_oversized(&self, index: u64) -> bool {
        let first = self.oversized.load(Ordering::Acquire);
        first != 0 && index + 1 >= first
    }

    /// Whether anything was written to the viewer since the last
    /// [`Framing::clear_wrote`] (a response head has gone out).
    pub fn wrote(&self) -> bool {
        self.wrote.load(Ordering::Acquire)
    }

    pub fn clear_wrote(&self) {
        self.wrote.store(false, Ordering::Release);
    }
}

/// Where the scanner is in the byte stream.
#[derive(Debug)]
enum State {
    /// Collecting a request head.
    Head(Vec<u8>),
    /// Skipping this many body bytes.
    Body(u64),
    /// Reading a chunk-size line.
    ChunkSize(Vec<u8>),
    /// Skipping chunk data and its CRLF.
    ChunkData(u64),
    /// Reading trailer lines until an empty one.
    Trailers(Vec<u8>),
    /// Not watching any more.
    Off,
}

/// The state machine over the bytes.
#[derive(Debug)]
struct Scanner {
    state: State,
    /// The number of the next request head.
    index: u64,
    max_head: usize,
}

const MAX_HEADERS: usize = 512;
const MAX_LINE: usize = 4096;

impl Scanner {
    fn feed(&mut self, mut bytes: &[u8], framing: &Framing) {
        while !bytes.is_empty() {
            let state = std::mem::replace(&mut self.state, State::Off);
            self.state = match state {
                State::Off => return,
                State::Head(mut head) => {
                    // Empty lines before a request line are allowed (RFC 9112 2.2).
                    if head.is_empty() {
                        let skip = bytes
                            .iter()
                            .take_while(|b| matches!(b, b'\r' | b'\n'))
                            .count();
                        bytes = &bytes[skip..];
                        if bytes.is_empty() {
                            self.state = State::Head(head);
                            return;
                        }
                    }
                    // The common case: a whole head in one read, parsed in place.
                    if head.is_empty()
                        && let Some(end) = find(bytes, b"\r\n\r\n")
                    {
                        if end + 4 > self.max_head {
                            self.oversized(framing);
                            return;
                        }
                        let (whole, rest) = bytes.split_at(end + 4);
                        bytes = rest;
                        self.state = self.after_head(whole, framing);
                        continue;
                    }
                    let before = head.len();
                    head.extend_from_slice(bytes);
                    match find(&head, b"\r\n\r\n") {
                        Some(end) if end + 4 > self.max_head => {
                            self.oversized(framing);
                            return;
                        }
                        None if head.len() > self.max_head => {
                            self.oversized(framing);
                            return;
                        }
                        None => {
                            self.state = State::Head(head);
                            return;
                        }
                        Some(end) => {
                            let used = end + 4 - before;
                            bytes = &bytes[used..];
                            self.after_head(&head[..end + 4], framing)
                        }
                    }
                }
                State::Body(left) => {
                    let n = left.min(bytes.len() as u64);
                    bytes = &bytes[usize::try_from(n).unwrap_or(bytes.len())..];
                    if left == n {
                        State::Head(Vec::new())
                    } else {
                        State::Body(left - n)
                    }
                }
                State::ChunkSize(mut line) => match take_line(&mut line, &mut bytes) {
                    false if line.len() > MAX_LINE => State::Off,
                    false => State::ChunkSize(line),
                    true => {
                        let size = line.split(|b| *b == b';').next().unwrap_or(&[]);
                        match std::str::from_utf8(size)
                            .ok()
                            .and_then(|s| u64::from_str_radix(s.trim(), 16).ok())
                        {
                            Some(0) => State::Trailers(Vec::new()),
                            Some(n) => State::ChunkData(n.saturating_add(2)),
                            None => State::Off,
                        }
                    }
                },
                State::ChunkData(left) => {
                    let n = left.min(bytes.len() as u64);
                    bytes = &bytes[usize::try_from(n).unwrap_or(bytes.len())..];
                    if left == n {
                        State::ChunkSize(Vec::new())
                    } else {
                        State::ChunkData(left - n)
                    }
                }
                State::Trailers(mut line) => match take_line(&mut line, &mut bytes) {
                    false if line.len() > MAX_LINE => State::Off,
                    false => State::Trailers(line),
                    true if line.is_empty() => State::Head(Vec::new()),
                    true => State::Trailers(Vec::new()),
                },
            };
        }
    }

    /// Notes that the head being read is too long, and stops watching.
    fn oversized(&mut self, framing: &Framing) {
        let _ = framing.oversized.compare_exchange(
            0,
            self.index + 1,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        self.state = State::Off;
    }

    /// Reads a whole head: notes an ambiguous one, and picks how to skip its body.
    fn after_head(&mut self, head: &[u8], framing: &Framing) -> State {
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut fields);
        if !matches!(req.parse(head), Ok(httparse::Status::Complete(_))) {
            return State::Off;
        }
        let index = self.index;
        self.index += 1;
        let has = |name: &str| {
            req.headers
                .iter()
                .any(|h| h.name.eq_ignore_ascii_case(name))
        };
        let (te, cl, upgrade) = (
            has("transfer-encoding"),
            has("content-length"),
            has("upgrade") || req.method == Some("CONNECT"),
        );
        if te && cl {
            let _ = framing.ambiguous.compare_exchange(
                0,
                index + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
            // hyper closes the connection after this request.
            return State::Off;
        }
        if upgrade {
            return State::Off;
        }
        if te {
            return State::ChunkSize(Vec::new());
        }
        if cl {
            let len = req
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            return match len {
                Some(0) => State::Head(Vec::new()),
                Some(n) => State::Body(n),
                None => State::Off,
            };
        }
        State::Head(Vec::new())
    }
}

/// Moves bytes into `line` up to a CRLF; true once the line is whole (then
/// `line` holds it without the CRLF).
fn take_line(line: &mut Vec<u8>, bytes: &mut &[u8]) -> bool {
    let before = line.len();
    line.extend_from_slice(bytes);
    match find(line, b"\r\n") {
        Some(end) => {
            *bytes = &bytes[end + 2 - before..];
            line.truncate(end);
            true
        }
        None => {
            *bytes = &[];
            false
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A viewer connection with the watch on what it reads.
#[derive(Debug)]
pub struct Watched<IO> {
    io: IO,
    scanner: Scanner,
    framing: Arc<Framing>,
}

impl<IO> Watched<IO> {
    /// The connection underneath.
    pub fn get_ref(&self) -> &IO {
        &self.io
    }

    fn note_write(&self, written: &Poll<io::Result<usize>>) {
        if matches!(written, Poll::Ready(Ok(n)) if *n > 0) {
            self.framing.wrote.store(true, Ordering::Release);
        }
    }

    /// Watches `io`; heads longer than `max_head` are flagged.
    pub fn new(io: IO, max_head: usize) -> (Self, Arc<Framing>) {
        let framing = Arc::new(Framing::default());
        (
            Self {
                io,
                scanner: Scanner {
                    state: State::Head(Vec::new()),
                    index: 0,
                    max_head,
                },
                framing: framing.clone(),
            },
            framing,
        )
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            this.scanner.feed(&buf.filled()[before..], &this.framing);
        }
        result
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.io).poll_write(cx, buf);
        this.note_write(&written);
        written
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.note_write(&written);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// An IO that first yields `prefix` (bytes read earlier and not consumed),
/// then reads from `io`.
#[derive(Debug)]
pub struct Rewind<IO> {
    prefix: bytes::Bytes,
    io: IO,
}

impl<IO> Rewind<IO> {
    pub fn new(prefix: bytes::Bytes, io: IO) -> Self {
        Self { prefix, io }
    }

    /// The prefix bytes not read yet, and the IO.
    pub fn into_parts(self) -> (bytes::Bytes, IO) {
        (self.prefix, self.io)
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Rewind<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Rewind<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(chunks: &[&[u8]]) -> (Framing, u64) {
        let framing = Framing::default();
        let mut scanner = Scanner {
            state: State::Head(Vec::new()),
            index: 0,
            max_head: 1 << 16,
        };
        for chunk in chunks {
            scanner.feed(chunk, &framing);
        }
        (framing, scanner.index)
    }

    #[test]
    fn heads_are_found_across_bodies_of_every_framing() {
        let stream: &[&[u8]] = &[
            b"GET / HTTP/1.1\r\nhost: a\r\n\r\n",
            b"POST /x HTTP/1.1\r\nhost: a\r\ncontent-length: 30\r\n\r\nGET /fake HTTP/1.1\r\ncontent-",
            b"POST /c HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhe",
            b"llo\r\n3;ext=1\r\nabc\r\n0\r\nx-trailer: 1\r\n\r\n",
            b"\r\nGET /last HTTP/1.1\r\nhost: a\r\n\r\n",
        ];
        let (framing, heads) = scan(stream);
        assert_eq!(heads, 4, "a body that looks like a head is skipped");
        assert!(!(0..4).any(|i| framing.is_ambiguous(i)));
    }

    #[test]
    fn both_lengths_flag_that_request_only() {
        let (framing, _) = scan(&[
            b"GET / HTTP/1.1\r\nhost: a\r\n\r\n",
            b"POST / HTTP/1.1\r\nhost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
        ]);
        assert!(!framing.is_ambiguous(0));
        assert!(framing.is_ambiguous(1));
        // Split in the middle of the head, byte by byte.
        let head = b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\ncontent-length: 1\r\n\r\n";
        let bytes: Vec<&[u8]> = head.chunks(1).collect();
        let (framing, _) = scan(&bytes);
        assert!(framing.is_ambiguous(0));
    }
}
