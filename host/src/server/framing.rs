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
//!
//! The request numbers are hyper's only if the watch reads the bytes exactly
//! as hyper 1's server does, so it follows hyper step for step: a head ends
//! where httparse (hyper's parser, with hyper's settings and field limit)
//! says, bare `\n` line endings included; the body's length is hyper's pick
//! (the last `Transfer-Encoding` must end in `chunked` and then wins, a
//! `Content-Length` after it is ignored, repeated ones must agree); a chunked
//! body is read by hyper's decoder's own state machine. Bytes hyper refuses
//! end the connection: the watch stops there (flagging nothing more), or,
//! past the few limits it does not keep (on chunk extensions and trailers),
//! reads on where no request follows. It never reads on past bytes hyper
//! reads differently. The fuzz target `framing` runs the watch and hyper's
//! server on the same bytes and checks that they agree on every request.

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
    /// The connection switched protocols: its bytes are not HTTP/1 any more.
    switched: AtomicBool,
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

    /// Stops the watch: the connection switched protocols (a WebSocket),
    /// and what follows is not requests.
    pub fn switched(&self) {
        self.switched.store(true, Ordering::Release);
    }
}

/// Where the scanner is in the byte stream.
#[derive(Debug)]
enum State {
    /// Collecting a request head (without the empty lines before it).
    Head(Vec<u8>),
    /// Skipping this many body bytes.
    Body(u64),
    /// In a chunked body.
    Chunked(Chunk),
    /// Not watching any more.
    Off,
}

/// Where a chunked body is, step for step as hyper's decoder
/// (`proto/h1/decode.rs`) reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Before a chunk size's first hex digit.
    Start,
    /// In a chunk size (the value so far).
    Size(u64),
    /// Spaces or tabs after a chunk size.
    SizeLws(u64),
    /// In a chunk extension, up to its CR.
    Extension(u64),
    /// The LF after a chunk-size line's CR.
    SizeLf(u64),
    /// This many chunk data bytes left.
    Data(u64),
    /// The CR after chunk data.
    DataCr,
    /// The LF after chunk data.
    DataLf,
    /// After the last chunk or a trailer line: a CR (the end) or a trailer.
    EndCr,
    /// In a trailer line, up to its CR.
    Trailer,
    /// The LF after a trailer line.
    TrailerLf,
    /// The LF of the final empty line.
    EndLf,
}

/// The state machine over the bytes.
#[derive(Debug)]
pub(crate) struct Scanner {
    state: State,
    /// The number of the next request head.
    index: u64,
    max_head: usize,
    /// hyper's `max_headers`: a head with more fields is one it refuses.
    max_headers: usize,
}

impl Scanner {
    pub(crate) fn new(max_head: usize, max_headers: usize) -> Self {
        Self {
            state: State::Head(Vec::new()),
            index: 0,
            max_head,
            max_headers,
        }
    }

    /// The number of request heads read so far.
    pub(crate) fn heads(&self) -> u64 {
        self.index
    }

    /// Reads the next bytes from the viewer; what it finds goes to `framing`.
    pub(crate) fn feed(&mut self, mut bytes: &[u8], framing: &Framing) {
        while !bytes.is_empty() {
            let state = std::mem::replace(&mut self.state, State::Off);
            self.state = match state {
                State::Off => return,
                State::Head(head) => self.head(head, &mut bytes, framing),
                State::Body(left) => {
                    let n = usize::try_from(left).map_or(bytes.len(), |l| l.min(bytes.len()));
                    bytes = &bytes[n..];
                    match left - n as u64 {
                        0 => State::Head(Vec::new()),
                        left => State::Body(left),
                    }
                }
                State::Chunked(at) => chunked(at, &mut bytes),
            };
        }
    }

    /// Reads head bytes: a head ends where httparse (which hyper parses
    /// with) says it does, at the first empty line, `\r\n` or a bare `\n`.
    fn head(&mut self, mut head: Vec<u8>, bytes: &mut &[u8], framing: &Framing) -> State {
        if head.is_empty() {
            // Empty lines before a request line (RFC 9112 2.2), which
            // httparse skips (a CR without its LF there is an error hyper
            // answers, so skipping it too changes nothing).
            let skip = bytes
                .iter()
                .take_while(|b| matches!(b, b'\r' | b'\n'))
                .count();
            *bytes = &bytes[skip..];
            if bytes.is_empty() {
                return State::Head(head);
            }
        }
        let Some(end) = end_candidate(&head, bytes) else {
            if head.len() + bytes.len() > self.max_head {
                return self.oversized(framing);
            }
            head.extend_from_slice(bytes);
            *bytes = &[];
            return State::Head(head);
        };
        if head.len() + end > self.max_head {
            return self.oversized(framing);
        }
        let (used, rest) = bytes.split_at(end);
        *bytes = rest;
        if head.is_empty() {
            // The common case: a whole head in one read, parsed in place.
            self.after_head(used, framing)
        } else {
            head.extend_from_slice(used);
            self.after_head(&head, framing)
        }
    }

    /// Notes that the head being read is too long, and stops watching.
    fn oversized(&mut self, framing: &Framing) -> State {
        let _ = framing.oversized.compare_exchange(
            0,
            self.index + 1,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        State::Off
    }

    /// Reads a whole head as hyper's server does (`proto/h1/role.rs`):
    /// notes an ambiguous one, and picks how to skip its body. A head hyper
    /// refuses ends the connection, and the watch.
    fn after_head(&mut self, head: &[u8], framing: &Framing) -> State {
        let mut fields = vec![httparse::EMPTY_HEADER; self.max_headers];
        let mut req = httparse::Request::new(&mut fields);
        if !matches!(req.parse(head), Ok(httparse::Status::Complete(n)) if n == head.len()) {
            return State::Off;
        }
        let index = self.index;
        self.index += 1;
        let http11 = req.version == Some(1);
        let (mut te, mut chunked, mut cl, mut length) = (false, false, false, None);
        for field in req.headers.iter() {
            if field.name.eq_ignore_ascii_case("transfer-encoding") {
                if !http11 {
                    return State::Off;
                }
                te = true;
                // The last field decides, by its last coding.
                chunked = is_chunked(field.value);
            } else if field.name.eq_ignore_ascii_case("content-length") {
                cl = true;
                // After a Transfer-Encoding, hyper ignores (drops) it.
                if te {
                    continue;
                }
                match digits(field.value) {
                    // Repeated, only with the same value.
                    Some(n) if length.is_none_or(|first| first == n) && n <= u64::MAX - 2 => {
                        length = Some(n);
                    }
                    _ => return State::Off,
                }
            }
        }
        if te && !chunked {
            return State::Off;
        }
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
        // An `Upgrade` or a `CONNECT` goes on as any request: hyper ends the
        // connection after a 101 or a 2xx to `CONNECT`, and reads the next
        // request after anything else.
        match (te, length) {
            (true, _) => State::Chunked(Chunk::Start),
            (false, None | Some(0)) => State::Head(Vec::new()),
            (false, Some(n)) => State::Body(n),
        }
    }
}

/// Where a head could end: just past the first `\n\n` or `\n\r\n` in `bytes`,
/// with the last bytes of `head` (the head so far, where none ended) before
/// them. Every `\n` in a head httparse accepts ends a line.
fn end_candidate(head: &[u8], bytes: &[u8]) -> Option<usize> {
    let tail = &head[head.len().saturating_sub(2)..];
    let at = |i: usize| match i.checked_sub(tail.len()) {
        None => tail.get(i).copied(),
        Some(i) => bytes.get(i).copied(),
    };
    (0..tail.len() + bytes.len())
        .filter(|i| at(*i) == Some(b'\n'))
        .find_map(|i| match (at(i + 1), at(i + 2)) {
            (Some(b'\n'), _) => Some(i + 2),
            (Some(b'\r'), Some(b'\n')) => Some(i + 3),
            _ => None,
        })
        .map(|end| end - tail.len())
}

/// hyper's test for a chunked body: the field is visible ASCII and its last
/// coding is `chunked`.
fn is_chunked(value: &[u8]) -> bool {
    value.iter().all(|b| matches!(b, b'\t' | b' '..=b'~'))
        && value
            .rsplit(|b| *b == b',')
            .next()
            .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"))
}

/// A `Content-Length` as hyper reads it: decimal digits only, no sign, no
/// overflow.
fn digits(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |n, b| {
        let digit = (*b as char).to_digit(10)?;
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

fn hex(b: u8) -> Option<u64> {
    (b as char).to_digit(16).map(u64::from)
}

/// Reads chunked-body bytes from `at`, as hyper's decoder does; anything it
/// refuses ends the connection, and the watch.
fn chunked(mut at: Chunk, bytes: &mut &[u8]) -> State {
    use Chunk::{
        Data, DataCr, DataLf, EndCr, EndLf, Extension, Size, SizeLf, SizeLws, Start, Trailer,
        TrailerLf,
    };
    while let Some((&b, rest)) = bytes.split_first() {
        if let Data(left) = at {
            let n = usize::try_from(left).map_or(bytes.len(), |l| l.min(bytes.len()));
            *bytes = &bytes[n..];
            at = match left - n as u64 {
                0 => DataCr,
                left => Data(left),
            };
            continue;
        }
        *bytes = rest;
        at = match (at, b) {
            (Start, b) => match hex(b) {
                Some(digit) => Size(digit),
                None => return State::Off,
            },
            (Size(size), b) if b.is_ascii_hexdigit() => {
                let digit = hex(b).unwrap_or_default();
                match size.checked_mul(16).and_then(|s| s.checked_add(digit)) {
                    Some(size) => Size(size),
                    None => return State::Off,
                }
            }
            (Size(size) | SizeLws(size), b' ' | b'\t') => SizeLws(size),
            (Size(size) | SizeLws(size), b';') => Extension(size),
            (Size(size) | SizeLws(size) | Extension(size), b'\r') => SizeLf(size),
            (Extension(_), b'\n') => return State::Off,
            (Extension(size), _) => Extension(size),
            (SizeLf(0), b'\n') => EndCr,
            (SizeLf(size), b'\n') => Data(size),
            (DataCr, b'\r') => DataLf,
            (DataLf, b'\n') => Start,
            (EndCr, b'\r') => EndLf,
            (Trailer, b'\r') => TrailerLf,
            (EndCr | Trailer, _) => Trailer,
            (TrailerLf, b'\n') => EndCr,
            (EndLf, b'\n') => return State::Head(Vec::new()),
            _ => return State::Off,
        };
    }
    State::Chunked(at)
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

    /// Watches `io`; heads longer than `max_head` are flagged. `max_headers`
    /// is the parser's limit on fields in a head.
    pub fn new(io: IO, max_head: usize, max_headers: usize) -> (Self, Arc<Framing>) {
        let framing = Arc::new(Framing::default());
        (
            Self {
                io,
                scanner: Scanner::new(max_head, max_headers),
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
        if let Poll::Ready(Ok(())) = result
            && !this.framing.switched.load(Ordering::Acquire)
        {
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
        let mut scanner = Scanner::new(1 << 16, 100);
        for chunk in chunks {
            scanner.feed(chunk, &framing);
        }
        (framing, scanner.heads())
    }

    /// `stream` scanned whole, and again one byte at a time: both agree.
    fn scan_both(stream: &[u8]) -> (Framing, u64) {
        let (whole, heads) = scan(&[stream]);
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        let (split, split_heads) = scan(&bytes);
        assert_eq!(heads, split_heads, "{:?}", String::from_utf8_lossy(stream));
        for i in 0..=heads {
            assert_eq!(whole.is_ambiguous(i), split.is_ambiguous(i));
            assert_eq!(whole.is_oversized(i), split.is_oversized(i));
        }
        (whole, heads)
    }

    fn flagged(framing: &Framing, heads: u64) -> Vec<u64> {
        (0..=heads).filter(|i| framing.is_ambiguous(*i)).collect()
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
        assert_eq!(scan_both(&stream.concat()).1, 4);
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

    const CL_TE: &[u8] = b"POST /b HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n";

    #[test]
    fn a_bare_lf_head_then_both_lengths_flags_the_second() {
        for first in [
            &b"GET /a HTTP/1.1\nhost: a\n\n"[..],
            b"GET /a HTTP/1.1\r\nhost: a\n\r\n",
            b"GET /a HTTP/1.1\nhost: a\r\n\n",
            b"\n\r\nGET /a HTTP/1.1\n\n",
        ] {
            let (framing, heads) = scan_both(&[first, CL_TE].concat());
            assert_eq!(heads, 2, "{:?}", String::from_utf8_lossy(first));
            assert_eq!(flagged(&framing, heads), [1]);
        }
        // Bare LF in the ambiguous head itself.
        let (framing, heads) = scan_both(
            b"GET /a HTTP/1.1\nhost: a\n\nPOST / HTTP/1.1\ncontent-length: 1\ntransfer-encoding: chunked\n\n",
        );
        assert_eq!((heads, flagged(&framing, heads)), (2, vec![1]));
    }

    #[test]
    fn a_bare_lf_head_pipelined_with_a_well_formed_one_blames_neither() {
        let stream = [
            &b"GET /a HTTP/1.1\nhost: a\n\n"[..],
            b"GET /b HTTP/1.1\r\nhost: a\r\n\r\n",
            CL_TE,
        ]
        .concat();
        let (framing, heads) = scan_both(&stream);
        assert_eq!(heads, 3);
        assert_eq!(flagged(&framing, heads), [2], "only the third is ambiguous");
        let (framing, heads) = scan_both(&stream[..stream.len() - CL_TE.len()]);
        assert_eq!((heads, flagged(&framing, heads)), (2, vec![]));
    }

    #[test]
    fn body_length_is_picked_as_hyper_picks_it() {
        let get = "GET /next HTTP/1.1\r\nhost: a\r\n\r\n";
        let cases = [
            // The same length twice: one body.
            ("content-length: 3\r\ncontent-length: 3", "abc", 2),
            // Transfer-Encoding decides by its last field's last coding.
            ("transfer-encoding: gzip, chunked", "1\r\na\r\n0\r\n\r\n", 2),
            (
                "transfer-encoding: gzip\r\ntransfer-encoding: chunked",
                "0\r\n\r\n",
                2,
            ),
            // An Upgrade is read on as any request.
            ("upgrade: websocket\r\ncontent-length: 2", "ab", 2),
        ];
        for (fields, body, heads) in cases {
            let stream = format!("POST / HTTP/1.1\r\nhost: a\r\n{fields}\r\n\r\n{body}{get}");
            let (framing, got) = scan_both(stream.as_bytes());
            assert_eq!(got, heads, "{fields}");
            assert_eq!(flagged(&framing, got), Vec::<u64>::new(), "{fields}");
        }
        // What hyper refuses ends the watch: nothing after it is counted.
        for fields in [
            "content-length: 3\r\ncontent-length: 4",
            "content-length: +3",
            "content-length: 3, 3",
            "transfer-encoding: chunked, gzip",
            "transfer-encoding: chunked\r\ntransfer-encoding: gzip",
        ] {
            let stream = format!("POST / HTTP/1.1\r\nhost: a\r\n{fields}\r\n\r\nabc{get}");
            assert_eq!(scan_both(stream.as_bytes()).1, 1, "{fields}");
        }
        let stream = format!("POST / HTTP/1.0\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n{get}");
        assert_eq!(scan_both(stream.as_bytes()).1, 1);
        // A Content-Length after Transfer-Encoding is ignored (even if not a
        // number) but still makes the request ambiguous.
        let stream = "POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\ncontent-length: x\r\n\r\n";
        let (framing, heads) = scan_both(stream.as_bytes());
        assert_eq!((heads, flagged(&framing, heads)), (1, vec![0]));
    }

    #[test]
    fn chunked_bodies_are_read_as_hyper_reads_them() {
        let get = "GET /next HTTP/1.1\r\nhost: a\r\n\r\n";
        for body in [
            "5 \t;a=b;c\r\nhello\r\n0\r\n\r\n",
            "005\r\nhello\r\n000\r\n\r\n",
            "A\r\n0123456789\r\n0\r\nx: 1\r\ny: 2\r\n\r\n",
        ] {
            let stream =
                format!("POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n{body}{get}");
            assert_eq!(scan_both(stream.as_bytes()).1, 2, "{body:?}");
        }
        // hyper refuses bare LF in chunked framing, and so the watch stops.
        for body in [
            "5\nhello\r\n0\r\n\r\n",
            "5\r\nhello\n0\r\n\r\n",
            "5;x\nhello\r\n0\r\n\r\n",
            "0\r\n\n",
            " 5\r\nhello\r\n0\r\n\r\n",
            "5 5\r\nhello\r\n0\r\n\r\n",
            "10000000000000000\r\n",
        ] {
            let stream =
                format!("POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n{body}{get}");
            assert_eq!(scan_both(stream.as_bytes()).1, 1, "{body:?}");
        }
    }

    #[test]
    fn a_long_head_is_measured_whatever_its_line_endings() {
        let framing = Framing::default();
        let mut scanner = Scanner::new(32, 100);
        // 31 bytes, then 32: both within the limit.
        scanner.feed(b"\r\nGET /a HTTP/1.1\nx: 0123456789\n\n", &framing);
        scanner.feed(b"GET /a HTTP/1.1\r\nx: 01234567\r\n\r\n", &framing);
        assert_eq!(scanner.heads(), 2);
        assert!(!framing.is_oversized(1));
        scanner.feed(b"GET /a HTTP/1.1\nx: 0123456789ab\n\n", &framing);
        assert!(framing.is_oversized(2) && !framing.is_oversized(1));
    }

    #[test]
    fn a_head_with_more_fields_than_the_parser_takes_ends_the_watch() {
        let framing = Framing::default();
        let mut scanner = Scanner::new(1 << 16, 2);
        scanner.feed(b"GET / HTTP/1.1\r\na: 1\r\nb: 2\r\n\r\n", &framing);
        scanner.feed(b"GET / HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\n\r\n", &framing);
        scanner.feed(CL_TE, &framing);
        assert_eq!(scanner.heads(), 1);
        assert!(!framing.is_ambiguous(1));
    }
}
