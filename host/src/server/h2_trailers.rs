//! A watch on an HTTP/2 viewer's frames that makes trailers carrying
//! pseudo-header fields the stream error RFC 9113 8.1 asks for.
//!
//! h2 decodes such trailers and drops their pseudo-header fields without a
//! word, so the request would go on to the origin as a well-formed one. The
//! watch reads the frames before h2 does and decodes every header block the
//! viewer sends with a decoder of its own (HPACK state is the connection's,
//! so no block can be read without reading them all, RFC 7541 2.2). A block
//! on a stream that already had its head is a trailer block: its frames are
//! held back until the block is complete. When a field of it is a
//! pseudo-header, the watch clears the END_STREAM flag of its HEADERS frame
//! before h2 reads the frame: to h2, trailers that do not end the stream are
//! a malformed request (RFC 9113 8.1), which it answers by resetting that
//! stream with PROTOCOL_ERROR. The block is still decoded by h2, so the
//! connection and its compression state carry on as they were.
//!
//! The watch stops and hands every later byte on unread where h2 ends the
//! connection anyway (bytes that are not the client preface, a frame longer
//! than the host's SETTINGS_MAX_FRAME_SIZE, a header block that does not
//! decode, a CONTINUATION out of place) and once a held block grows past
//! [`MAX_HELD`], far more than the header list size h2 takes. An HTTP/1
//! connection is never watched.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf as _, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The HTTP/2 client connection preface (RFC 9113 3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The largest frame payload the host takes: hyper's server keeps h2's
/// default SETTINGS_MAX_FRAME_SIZE (RFC 9113 6.5.2), and h2 refuses a
/// longer frame with a connection error.
const MAX_FRAME: usize = 16_384;

/// The dynamic table size the host allows (SETTINGS_HEADER_TABLE_SIZE is
/// left at its default of 4,096, RFC 9113 6.5.2), as h2's decoder does.
const TABLE_SIZE: usize = 4_096;

/// The most bytes of one header block held back: past this the watch stops.
pub const MAX_HELD: usize = 1 << 20;

/// The frame types and flags the watch reads (RFC 9113 6).
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

/// Where the watch is in the byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In the client preface.
    Preface,
    /// Before a frame's 9-byte head.
    FrameHead,
    /// In the payload of a frame that is not part of a header block, with
    /// this many bytes left.
    Payload(usize),
    /// Not watching any more.
    Off,
}

/// A header block being collected across its HEADERS and CONTINUATION
/// frames.
#[derive(Debug)]
struct Block {
    /// The block so far.
    fragment: Vec<u8>,
    /// For a trailer block, where its HEADERS frame starts in the buffer:
    /// nothing from there on is handed on until the block is complete.
    held_from: Option<usize>,
}

/// The frame reader: bytes go in at the end of a buffer, and come out at
/// its front once read (with a trailer block's END_STREAM flag cleared when
/// the block is malformed).
pub(crate) struct Watch {
    state: State,
    /// Bytes not handed on yet.
    buf: BytesMut,
    /// How many of `buf`'s first bytes may be handed on.
    ready: usize,
    /// How far into `buf` the frames have been read.
    scanned: usize,
    block: Option<Block>,
    /// The highest stream a HEADERS frame opened.
    last_stream: u32,
    decoder: loona_hpack::Decoder<'static>,
    /// How many trailer blocks were found malformed.
    refused: u64,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("state", &self.state)
            .field("buffered", &self.buf.len())
            .field("ready", &self.ready)
            .field("last_stream", &self.last_stream)
            .finish_non_exhaustive()
    }
}

impl Watch {
    /// A watch on an HTTP/2 connection from its first byte, or (`watch`
    /// false) one that hands every byte on unread.
    pub(crate) fn new(watch: bool) -> Self {
        let mut decoder = loona_hpack::Decoder::new();
        decoder.set_max_allowed_table_size(TABLE_SIZE);
        Self {
            state: if watch { State::Preface } else { State::Off },
            buf: BytesMut::new(),
            ready: 0,
            scanned: 0,
            block: None,
            last_stream: 0,
            decoder,
            refused: 0,
        }
    }

    /// Whether the watch still reads the frames.
    pub(crate) fn is_watching(&self) -> bool {
        self.state != State::Off
    }

    /// How many trailer blocks carried a pseudo-header field.
    pub(crate) fn refused(&self) -> u64 {
        self.refused
    }

    /// Takes in bytes read from the viewer.
    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        self.scan();
    }

    /// Reads from `io` into the watch and reads the frames that came.
    fn poll_fill<IO: AsyncRead + Unpin>(
        &mut self,
        io: &mut IO,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        self.buf.reserve(READ_CHUNK);
        let n = ready!(tokio_util::io::poll_read_buf(
            Pin::new(io),
            cx,
            &mut self.buf
        ))?;
        self.scan();
        Poll::Ready(Ok(n))
    }

    /// The bytes that may be handed on now.
    pub(crate) fn ready(&self) -> &[u8] {
        &self.buf[..self.ready]
    }

    /// Drops the first `n` bytes of [`Watch::ready`], handed on.
    pub(crate) fn consume(&mut self, n: usize) {
        assert!(n <= self.ready, "consumed more than was ready");
        self.buf.advance(n);
        self.ready -= n;
        self.scanned -= n;
        if let Some(Block {
            held_from: Some(at),
            ..
        }) = &mut self.block
        {
            *at -= n;
        }
    }

    /// The viewer sent no more: whatever is held is handed on as it is.
    pub(crate) fn finish(&mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.state = State::Off;
        self.block = None;
        self.scanned = self.buf.len();
        self.ready = self.buf.len();
    }

    fn scan(&mut self) {
        loop {
            match self.state {
                State::Off => {
                    self.stop();
                    return;
                }
                State::Preface => {
                    let have = self.buf.len().min(PREFACE.len());
                    if self.buf[..have] != PREFACE[..have] {
                        self.stop();
                        return;
                    }
                    if have < PREFACE.len() {
                        break;
                    }
                    self.scanned = PREFACE.len();
                    self.state = State::FrameHead;
                }
                State::Payload(left) => {
                    let take = left.min(self.buf.len() - self.scanned);
                    self.scanned += take;
                    if take < left {
                        self.state = State::Payload(left - take);
                        break;
                    }
                    self.state = State::FrameHead;
                }
                State::FrameHead => {
                    if !self.frame() {
                        break;
                    }
                }
            }
        }
        self.ready = match &self.block {
            Some(Block {
                held_from: Some(at),
                ..
            }) => *at,
            _ => self.scanned,
        };
        if self.buf.len() - self.ready > MAX_HELD {
            self.stop();
        }
    }

    /// Reads the frame at `scanned`; false when more bytes are needed.
    fn frame(&mut self) -> bool {
        let at = self.scanned;
        let Some(head) = self.buf.get(at..at + 9) else {
            return false;
        };
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        if len > MAX_FRAME {
            self.stop();
            return true;
        }
        // A block cut by another frame, a CONTINUATION with no block to
        // continue, a HEADERS frame on stream 0: h2 ends the connection
        // (RFC 9113 6.2, 6.10).
        if self.block.is_some() != (kind == CONTINUATION) || (kind == HEADERS && stream == 0) {
            self.stop();
            return true;
        }
        if kind != HEADERS && kind != CONTINUATION {
            self.scanned = at + 9;
            self.state = State::Payload(len);
            return true;
        }
        if self.buf.len() < at + 9 + len {
            return false;
        }
        let payload = &self.buf[at + 9..at + 9 + len];
        let fragment = if kind == HEADERS {
            let mut start = 0;
            let mut pad = 0;
            if flags & PADDED != 0 {
                pad = usize::from(payload.first().copied().unwrap_or(0));
                start = 1;
            }
            if flags & PRIORITY != 0 {
                start += 5;
            }
            if start + pad > len {
                self.stop();
                return true;
            }
            let trailers = stream <= self.last_stream;
            if !trailers {
                self.last_stream = stream;
            }
            self.block = Some(Block {
                fragment: Vec::new(),
                held_from: trailers.then_some(at),
            });
            &payload[start..len - pad]
        } else {
            payload
        };
        let Some(block) = &mut self.block else {
            self.stop();
            return true;
        };
        block.fragment.extend_from_slice(fragment);
        self.scanned = at + 9 + len;
        if flags & END_HEADERS != 0 {
            let Some(block) = self.block.take() else {
                return true;
            };
            let mut pseudo = false;
            let decoded = self.decoder.decode_with_cb(&block.fragment, |name, _| {
                pseudo |= name.first() == Some(&b':')
            });
            match decoded {
                // A block that is only a size update at its start is one h2
                // takes; the update is applied before this error.
                Ok(()) | Err(loona_hpack::decoder::DecoderError::SizeUpdateAtEnd) => {}
                Err(_) => {
                    self.stop();
                    return true;
                }
            }
            // A trailer block without END_STREAM is h2's to refuse already.
            if let Some(start) = block.held_from
                && pseudo
                && self.buf[start + 4] & END_STREAM != 0
            {
                self.buf[start + 4] &= !END_STREAM;
                self.refused += 1;
            }
        }
        true
    }
}

/// A viewer connection with the watch on what it reads.
#[derive(Debug)]
pub struct Watched<IO> {
    io: IO,
    watch: Watch,
}

impl<IO> Watched<IO> {
    /// Watches `io` when `http2` (the connection may be HTTP/2); hands its
    /// bytes on unread otherwise.
    pub fn new(io: IO, http2: bool) -> Self {
        Self {
            io,
            watch: Watch::new(http2),
        }
    }
}

/// How much is read from the viewer at a time while the watch reads.
const READ_CHUNK: usize = 16 * 1024;

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            let ready = this.watch.ready();
            if !ready.is_empty() {
                let n = ready.len().min(buf.remaining());
                buf.put_slice(&ready[..n]);
                this.watch.consume(n);
                return Poll::Ready(Ok(()));
            }
            if !this.watch.is_watching() && this.watch.buf.is_empty() {
                return Pin::new(&mut this.io).poll_read(cx, buf);
            }
            if ready!(this.watch.poll_fill(&mut this.io, cx))? == 0 {
                if this.watch.buf.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                this.watch.finish();
            }
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
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

    /// Literal fields without indexing, new names, no Huffman coding.
    fn hpack(fields: &[(&str, &str)]) -> Vec<u8> {
        let mut block = Vec::new();
        for (name, value) in fields {
            block.push(0);
            for s in [name, value] {
                block.push(u8::try_from(s.len()).expect("short"));
                block.extend_from_slice(s.as_bytes());
            }
        }
        block
    }

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = u32::try_from(payload.len()).expect("small").to_be_bytes();
        let mut out = vec![len[1], len[2], len[3], kind, flags];
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// The bytes the watch hands on, fed `chunk` bytes at a time.
    fn through(bytes: &[u8], chunk: usize) -> (Vec<u8>, Watch) {
        let mut watch = Watch::new(true);
        let mut out = Vec::new();
        for piece in bytes.chunks(chunk) {
            watch.feed(piece);
            out.extend_from_slice(watch.ready());
            let n = watch.ready().len();
            watch.consume(n);
        }
        watch.finish();
        out.extend_from_slice(watch.ready());
        (out, watch)
    }

    fn head() -> Vec<u8> {
        hpack(&[
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/upload"),
            (":authority", "a.test"),
        ])
    }

    #[test]
    fn trailers_with_a_pseudo_header_lose_end_stream_and_nothing_else() {
        let mut conn = PREFACE.to_vec();
        conn.extend(frame(0x4, 0, 0, &[]));
        conn.extend(frame(HEADERS, END_HEADERS, 1, &head()));
        conn.extend(frame(0x0, 0, 1, b"body"));
        let trailers_at = conn.len();
        conn.extend(frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            1,
            &hpack(&[("x-sum", "1"), (":path", "/evil")]),
        ));
        for chunk in [1, 7, 9, 100, conn.len()] {
            let (out, watch) = through(&conn, chunk);
            assert_eq!(out.len(), conn.len(), "chunk {chunk}");
            let mut want = conn.clone();
            want[trailers_at + 4] &= !END_STREAM;
            assert_eq!(out, want, "chunk {chunk}");
            assert_eq!(watch.refused(), 1);
        }
    }

    #[test]
    fn clean_trailers_and_heads_pass_unchanged() {
        let mut conn = PREFACE.to_vec();
        conn.extend(frame(HEADERS, END_HEADERS, 1, &head()));
        conn.extend(frame(0x0, 0, 1, b"body"));
        conn.extend(frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            1,
            &hpack(&[("x-sum", "1")]),
        ));
        conn.extend(frame(HEADERS, END_HEADERS | END_STREAM, 3, &head()));
        for chunk in [1, 5, conn.len()] {
            let (out, watch) = through(&conn, chunk);
            assert_eq!(out, conn);
            assert_eq!(watch.refused(), 0);
        }
    }

    #[test]
    fn a_pseudo_header_indexed_from_the_dynamic_table_is_found() {
        // The head inserts `:path: /evil` into the dynamic table (literal
        // with incremental indexing, indexed name 4); the trailers refer to
        // it by index 62, the newest dynamic entry.
        let mut block = head();
        block.push(0x44);
        block.push(5);
        block.extend_from_slice(b"/evil");
        let mut conn = PREFACE.to_vec();
        // Stream 1 is malformed (two :path), which is h2's to refuse; the
        // table entry stays.
        conn.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &block));
        conn.extend(frame(HEADERS, END_HEADERS, 3, &head()));
        let trailers_at = conn.len();
        // A CONTINUATION carries the reference.
        conn.extend(frame(HEADERS, END_STREAM, 3, &hpack(&[("x-sum", "1")])));
        conn.extend(frame(CONTINUATION, END_HEADERS, 3, &[0x80 | 62]));
        let (out, watch) = through(&conn, 3);
        assert_eq!(watch.refused(), 1);
        assert_eq!(out[trailers_at + 4], 0);
    }

    #[test]
    fn a_padded_trailers_frame_is_read_past_its_padding() {
        let mut conn = PREFACE.to_vec();
        conn.extend(frame(HEADERS, END_HEADERS, 1, &head()));
        let mut payload = vec![3];
        payload.extend(hpack(&[(":method", "GET")]));
        payload.extend([0, 0, 0]);
        let trailers_at = conn.len();
        conn.extend(frame(
            HEADERS,
            END_HEADERS | END_STREAM | PADDED,
            1,
            &payload,
        ));
        let (out, watch) = through(&conn, 4);
        assert_eq!(watch.refused(), 1);
        assert_eq!(out[trailers_at + 4], END_HEADERS | PADDED);
    }

    #[test]
    fn bytes_that_are_not_http2_pass_unread() {
        let request = b"GET / HTTP/1.1\r\nhost: a\r\n\r\n";
        let (out, watch) = through(request, 2);
        assert_eq!(out, request);
        assert!(!watch.is_watching());
    }

    #[test]
    fn an_incomplete_held_block_is_handed_on_when_the_viewer_stops() {
        let mut conn = PREFACE.to_vec();
        conn.extend(frame(HEADERS, END_HEADERS, 1, &head()));
        conn.extend(frame(HEADERS, END_STREAM, 1, &hpack(&[(":path", "/x")])));
        let (out, _) = through(&conn, 10);
        assert_eq!(out, conn);
    }
}
