//! Entry points for the fuzz targets in `fuzz/` and for the tests that replay
//! their committed seed corpora: each takes arbitrary bytes and panics only
//! when an invariant of the parser it drives breaks.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use http::header::{CACHE_CONTROL, HeaderName, HeaderValue, VIA};
use http::{HeaderMap, Method, StatusCode};

use crate::cache::freshness::{self, CacheControl, DELTA_MAX};
use crate::cache::{CachedObject, Tags};
use crate::config::{Distribution, DistributionConfig, TtlPolicy, parse_json};
use crate::fields::is_hop_by_hop;
use crate::wasm::bindings::Header;
use crate::wasm::{Request, Response, convert};

/// The config parser and validator: any input is refused or accepted without
/// a panic, and an accepted config survives the store (written as JSON and
/// read back, it is the same config and validates again).
pub fn config(data: &[u8]) {
    let Ok(raw) = parse_json::<DistributionConfig>(data) else {
        return;
    };
    if Distribution::try_from(raw.clone()).is_err() {
        return;
    }
    let stored = serde_json::to_vec(&raw).expect("an accepted config serializes");
    let again: DistributionConfig =
        parse_json(&stored).expect("a config the host wrote parses again");
    assert_eq!(
        again, raw,
        "the stored config differs from the accepted one"
    );
    if let Err(err) = Distribution::try_from(again) {
        panic!("an accepted config no longer validates after a round trip: {err}");
    }
}

/// A hook's output as fuzz bytes describe it.
struct HookOutput {
    status: u16,
    headers: Vec<Header>,
    body: Option<Vec<u8>>,
    /// `METHOD target`, when the first line reads as one.
    request_line: Option<(String, String)>,
}

/// Reads fuzz bytes as a hook's output: two bytes of status (little-endian),
/// then header lines `name:value` separated by `\n`; after an empty line, a
/// body. The first header line doubles as the request line `METHOD target`.
fn hook_output_parts(data: &[u8]) -> HookOutput {
    let status = match data {
        [a, b, ..] => u16::from_le_bytes([*a, *b]),
        _ => 0,
    };
    let rest = data.get(2..).unwrap_or_default();
    let (head, body) = match rest.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&rest[..at], Some(rest[at + 2..].to_vec())),
        None => (rest, None),
    };
    let mut headers = Vec::new();
    let mut request_line = None;
    for (i, line) in head.split(|b| *b == b'\n').enumerate() {
        if i == 0 {
            let line = String::from_utf8_lossy(line);
            if let Some((method, target)) = line.split_once(' ') {
                request_line = Some((method.to_owned(), target.to_owned()));
            }
        }
        let (name, value) = match line.iter().position(|b| *b == b':') {
            Some(at) => (&line[..at], &line[at + 1..]),
            None => (line, &[][..]),
        };
        headers.push(Header {
            name: String::from_utf8_lossy(name).into_owned(),
            value: value.to_vec(),
        });
    }
    HookOutput {
        status,
        headers,
        body,
        request_line,
    }
}

/// The hook-output validator: whatever a guest hands back, what passes is a
/// response (and a request) the host can send as is: status 200-599, no
/// control characters, no hop-by-hop or added `via` fields, a body within the
/// cap, a target that parses.
pub fn hook_output(data: &[u8]) {
    const CAP: usize = 40 * 1024;
    let HookOutput {
        status,
        headers,
        body,
        request_line,
    } = hook_output_parts(data);
    let mut before = HeaderMap::new();
    before.insert(VIA, HeaderValue::from_static("1.1 upstream"));
    let check_headers = |headers: &HeaderMap| {
        for (name, value) in headers {
            assert!(!is_hop_by_hop(name), "hop-by-hop {name} passed");
            assert!(
                !value
                    .as_bytes()
                    .iter()
                    .any(|b| matches!(b, b'\r' | b'\n' | 0)),
                "a control character in {name} passed"
            );
            if name == VIA {
                assert_eq!(value, "1.1 upstream", "an added via passed");
            }
        }
    };
    let response = Response {
        status,
        headers: headers.clone(),
        body,
    };
    if let Ok(checked) = convert::response_from_wit(response, &before, None, CAP) {
        assert!((200..=599).contains(&checked.status.as_u16()));
        assert!(checked.body.as_ref().is_none_or(|b| b.len() <= CAP));
        check_headers(&checked.headers);
    }
    if let Some((method, target)) = request_line {
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
            None => (target, None),
        };
        let request = Request {
            method,
            path,
            query,
            headers: headers.into_iter().skip(1).collect(),
            client_address: "192.0.2.1".to_owned(),
            body: None,
        };
        if let Ok(checked) = convert::request_from_wit(request, &before) {
            assert!(checked.path.starts_with('/'));
            let mut target = checked.path.clone();
            if let Some(q) = &checked.query {
                target.push('?');
                target.push_str(q);
            }
            assert!(target.len() <= convert::MAX_URI);
            http::Uri::try_from(target.as_str()).expect("an accepted target parses as a URI");
            check_headers(&checked.headers);
        }
    }
}

/// Reads lines as response headers: `Cache-Control` unless a line names
/// another field as `name: value`.
fn response_headers(data: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for line in data.split(|b| *b == b'\n') {
        let (name, value) = match line.iter().position(|b| *b == b':') {
            Some(at) => match HeaderName::from_bytes(&line[..at]) {
                Ok(name) => (name, line[at + 1..].trim_ascii()),
                Err(_) => (CACHE_CONTROL, line),
            },
            None => (CACHE_CONTROL, line),
        };
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(name, value);
        }
    }
    headers
}

/// The `Cache-Control` parser and the storage decision: every line of the
/// input is a response header (`Cache-Control` unless it names another
/// field as `name: value`); whatever the directives, `no-store` and `private`
/// are never stored and nothing stored outlives the behavior's `max_ttl`.
pub fn cache_control(data: &[u8]) {
    let headers = response_headers(data);
    let cc = CacheControl::parse(&headers);
    let ttl = TtlPolicy::new(0, 60, 3600);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let decided = freshness::decide(
        &Method::GET,
        &HeaderMap::new(),
        StatusCode::OK,
        &headers,
        ttl,
        false,
        now,
    );
    if let Some(fresh) = decided {
        let (effective, _) = freshness::effective_cache_control(&headers);
        assert!(
            !effective.no_store && !effective.private,
            "{cc:?} was stored"
        );
        assert!(
            fresh.ttl <= Duration::from_secs(ttl.max),
            "{fresh:?} outlives max_ttl"
        );
    }
}

/// Eight little-endian bytes from `data` at `at` (missing bytes are zero).
fn u64_at(data: &[u8], at: usize) -> u64 {
    let mut bytes = [0u8; 8];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = data.get(at + i).copied().unwrap_or(0);
    }
    u64::from_le_bytes(bytes)
}

/// The freshness arithmetic at arbitrary times: the input is three
/// little-endian `u64`s (the response time in seconds since the epoch, the
/// seconds elapsed since the object was stored, the behavior's `max_ttl`),
/// then response header lines as [`cache_control`] reads them. Nothing
/// panics (no sum of durations overflows, however large the directives,
/// `Age`, `Date`, `Expires` or TTLs), every duration stays within 2^31
/// seconds (RFC 9111 1.2.2), and the object's age, freshness, stale windows,
/// retention and `Age` header agree with each other at the given time.
pub fn freshness(data: &[u8]) {
    let response_time = SystemTime::UNIX_EPOCH
        .checked_add(Duration::from_secs(u64_at(data, 0)))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let elapsed = Duration::from_secs(u64_at(data, 8));
    let max = u64_at(data, 16);
    let ttl = TtlPolicy::new(max / 4, max / 2, max);
    let headers = response_headers(data.get(24..).unwrap_or_default());
    let Some(fresh) = freshness::decide(
        &Method::GET,
        &HeaderMap::new(),
        StatusCode::OK,
        &headers,
        ttl,
        false,
        response_time,
    ) else {
        return;
    };
    let bound = Duration::from_secs(DELTA_MAX);
    for (what, d) in [
        ("ttl", fresh.ttl),
        ("initial age", fresh.initial_age),
        ("stale-while-revalidate", fresh.stale_while_revalidate),
        ("stale-if-error", fresh.stale_if_error),
    ] {
        assert!(d <= bound, "{what} {d:?} is over 2^31 s: {fresh:?}");
    }
    assert!(fresh.ttl <= Duration::from_secs(ttl.max), "{fresh:?}");
    let stored_at = Instant::now();
    let object = CachedObject::new(
        StatusCode::OK,
        headers,
        Bytes::new(),
        stored_at,
        fresh,
        Tags {
            distribution_id: "E".into(),
            primary_id: "E".into(),
            path: "/".into(),
            base: "E/".into(),
            cache_tags: Arc::from([]),
        },
    );
    let retention = object.retention();
    assert!(retention <= bound * 2 + crate::cache::STALE_RETENTION);
    for now in [Some(stored_at), stored_at.checked_add(elapsed)]
        .into_iter()
        .flatten()
    {
        let age = object.age(now);
        assert!(age >= fresh.initial_age, "the age went back: {age:?}");
        let is_fresh = object.is_fresh(now);
        let swr = object.stale_within(now, fresh.stale_while_revalidate);
        let sie = object.stale_within(now, fresh.stale_if_error);
        if is_fresh {
            assert!(
                fresh.must_revalidate || (swr && sie),
                "fresh, yet not within its stale windows: {fresh:?} at {age:?}"
            );
        }
        if swr || sie {
            assert!(age < fresh.usable_until(), "{fresh:?} at {age:?}");
        }
        let resp: http::Response<crate::proxy::body::EdgeBody> =
            crate::proxy::stored::respond(&object, &Method::GET, &HeaderMap::new(), now);
        let sent: u64 = resp
            .headers()
            .get(http::header::AGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .expect("a stored response carries an Age");
        assert!(sent <= DELTA_MAX, "Age {sent} is over 2^31");
    }
}

/// The path normalizer: whatever the bytes (read as a path after a `/`),
/// it refuses or gives a canonical path: starting with `/`, no empty, `.`
/// or `..` segment, every escape two upper-case hex digits of a byte that
/// needs one (never `/`, `\` or NUL), no backslash, and normalizing it again
/// changes nothing.
pub fn path(data: &[u8]) {
    let text = format!("/{}", String::from_utf8_lossy(data));
    if let Ok(out) = crate::path::normalize(&text) {
        check_normalized(&text, &out);
    }
}

/// What [`path`] checks of `out`, the normalized form of `text`.
fn check_normalized(text: &str, out: &str) {
    assert!(out.starts_with('/'), "{text:?} gave {out:?}");
    assert!(!out.contains('\\'), "{text:?} gave {out:?}");
    let segments: Vec<&str> = out[1..].split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        assert!(
            !matches!(*segment, "." | ".."),
            "{text:?} gave a dot-segment in {out:?}"
        );
        assert!(
            !segment.is_empty() || i + 1 == segments.len(),
            "{text:?} gave an empty segment in {out:?}"
        );
    }
    let bytes = out.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'%' {
            let digits = bytes.get(i + 1..i + 3).unwrap_or_default();
            assert!(
                digits.len() == 2
                    && digits
                        .iter()
                        .all(|d| d.is_ascii_digit() || (b'A'..=b'F').contains(d)),
                "{text:?} gave a malformed escape in {out:?}"
            );
            let value =
                u8::from_str_radix(std::str::from_utf8(digits).unwrap_or("0"), 16).unwrap_or(0);
            assert!(
                !(value.is_ascii_alphanumeric()
                    || matches!(value, b'-' | b'.' | b'_' | b'~' | b'/' | b'\\' | 0)),
                "{text:?} kept %{value:02X} in {out:?}"
            );
        }
    }
    let again = crate::path::normalize(out).expect("a normalized path normalizes");
    assert_eq!(again, out, "normalizing {text:?} twice changed it");
}

/// A whole request target, as hyper hands it to the service: every target
/// `http::Uri` accepts (origin-form with a query, absolute-form,
/// authority-form, `*`) goes through the host's normalization without a
/// panic; a path that does not start with `/` (authority-form, `*`) is
/// refused, any other normalizes as [`path`] checks (the query untouched),
/// and the normalized path and query form a valid origin request target.
pub fn request_target(data: &[u8]) {
    let Ok(uri) = http::Uri::from_maybe_shared(Bytes::copy_from_slice(data)) else {
        return;
    };
    let target = uri.path();
    let Ok(out) = crate::path::normalize(target) else {
        return;
    };
    assert!(
        target.starts_with('/'),
        "{uri:?}: {target:?} is not a path, yet normalized to {out:?}"
    );
    check_normalized(target, &out);
    let mut pq = out.into_owned();
    if let Some(query) = uri.query() {
        pq.push('?');
        pq.push_str(query);
    }
    let forwarded = http::Uri::builder()
        .scheme("http")
        .authority("origin.test")
        .path_and_query(pq.as_str())
        .build();
    assert!(
        forwarded.is_ok(),
        "{uri:?} normalized to {pq:?}, which is no request target"
    );
}

/// What the hyper side of [`framing`] saw of one request.
#[derive(Debug, Clone, Default)]
struct Delivered {
    /// Where in the stream its head ended (bytes read when hyper called the
    /// service; hyper reads one byte at a time here).
    head_end: usize,
    /// What the watch said of it when it arrived.
    ambiguous: bool,
    oversized: bool,
    /// hyper kept a `Transfer-Encoding` (and dropped any `Content-Length`).
    te: bool,
    /// The `Content-Length` hyper kept, without a `Transfer-Encoding`.
    length: Option<u64>,
    /// Something else may end the connection after it: `Connection: close`,
    /// HTTP/1.0, an upgrade, a body hyper refused.
    may_close: bool,
}

/// The viewer's side of [`framing`]'s connection: the stream, one byte per
/// read, then nothing (pending) until `eof`, then the end; what the server
/// writes is dropped.
struct Viewer {
    stream: Vec<u8>,
    feed: Arc<Feed>,
}

#[derive(Debug, Default)]
struct Feed {
    read: AtomicUsize,
    eof: AtomicBool,
}

impl tokio::io::AsyncRead for Viewer {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let at = self.feed.read.load(Ordering::Relaxed);
        match self.stream.get(at) {
            Some(b) if buf.remaining() > 0 => {
                buf.put_slice(&[*b]);
                self.feed.read.store(at + 1, Ordering::Relaxed);
                Poll::Ready(Ok(()))
            }
            Some(_) => Poll::Ready(Ok(())),
            None if self.feed.eof.load(Ordering::Relaxed) => Poll::Ready(Ok(())),
            // The driver in `framing` polls again once it sets `eof`.
            None => Poll::Pending,
        }
    }
}

impl tokio::io::AsyncWrite for Viewer {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A waker that notes it was woken.
struct Woken(AtomicBool);

impl std::task::Wake for Woken {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// How hyper's server ended [`framing`]'s connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// On its own, with all it had been sent read or not: it would not keep
    /// the connection after the last request.
    ClosedItself,
    /// With an error before the viewer's end (the next bytes were refused).
    Refused,
    /// After the viewer's end.
    AtEof,
}

/// Runs hyper's HTTP/1 server, as the host configures it, over `stream` with
/// the watch on the connection as the host has it; what it delivered, and how
/// it ended (`None` if it never did).
fn serve_with_hyper(
    stream: &[u8],
    max_head: usize,
    max_headers: usize,
) -> (Vec<Delivered>, Option<Ended>) {
    use http_body_util::BodyExt as _;
    let feed = Arc::new(Feed::default());
    let viewer = Viewer {
        stream: stream.to_vec(),
        feed: feed.clone(),
    };
    let (io, watch) = crate::server::framing::Watched::new(viewer, max_head, max_headers);
    let seen = Arc::new(Mutex::new(Vec::<Delivered>::new()));
    let service = {
        let (seen, feed) = (seen.clone(), feed.clone());
        hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let mut list = seen.lock().expect("not poisoned");
            let index = list.len();
            let headers = req.headers();
            let close = headers.get_all(http::header::CONNECTION).iter().any(|v| {
                v.to_str()
                    .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
            });
            list.push(Delivered {
                head_end: feed.read.load(Ordering::Relaxed),
                ambiguous: watch.is_ambiguous(index as u64),
                oversized: watch.is_oversized(index as u64),
                te: headers.contains_key(http::header::TRANSFER_ENCODING),
                length: headers
                    .get(http::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok()),
                may_close: close
                    || req.version() != http::Version::HTTP_11
                    || *req.method() == Method::CONNECT
                    || headers.contains_key(http::header::UPGRADE),
            });
            drop(list);
            let seen = seen.clone();
            async move {
                if req.into_body().collect().await.is_err() {
                    seen.lock().expect("not poisoned")[index].may_close = true;
                }
                let mut response = http::Response::new(http_body_util::Empty::<Bytes>::new());
                *response.status_mut() = StatusCode::NOT_FOUND;
                Ok::<_, std::convert::Infallible>(response)
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.keep_alive(true).max_headers(max_headers);
    let mut conn =
        std::pin::pin!(builder.serve_connection(hyper_util::rt::TokioIo::new(io), service));
    let woken = Arc::new(Woken(AtomicBool::new(false)));
    let waker = std::task::Waker::from(woken.clone());
    let mut cx = Context::from_waker(&waker);
    let mut ended = None;
    // Far more polls than any small input needs.
    for _ in 0..(stream.len() + 64) * 64 {
        woken.0.store(false, Ordering::Relaxed);
        let eof = feed.eof.load(Ordering::Relaxed);
        match conn.as_mut().poll(&mut cx) {
            Poll::Ready(result) => {
                ended = Some(match (eof, result) {
                    (true, _) => Ended::AtEof,
                    (false, Ok(())) => Ended::ClosedItself,
                    (false, Err(_)) => Ended::Refused,
                });
                break;
            }
            Poll::Pending if woken.0.load(Ordering::Relaxed) => {}
            // Waiting for bytes the viewer has not sent: it sends its end.
            Poll::Pending if !eof && feed.read.load(Ordering::Relaxed) == stream.len() => {
                feed.eof.store(true, Ordering::Relaxed);
            }
            Poll::Pending => break,
        }
    }
    let delivered = seen.lock().expect("not poisoned").clone();
    (delivered, ended)
}

/// The watch on viewer connections (`server/framing.rs`) against hyper's
/// own HTTP/1 server on the same bytes: the input is a byte of limits (the
/// head limit, the field count), a byte choosing the size of the pieces the
/// watch is also fed in, then what a viewer sends. For every request hyper
/// delivers, the watch found its head where hyper did (no request number is
/// ever off by one), flags it ambiguous exactly when hyper saw both
/// `Content-Length` and `Transfer-Encoding` (hyper drops the length and then
/// closes the connection after the request), and oversized exactly when it
/// or an earlier head was longer than the limit; and the watch reads the
/// same whatever the pieces the bytes arrive in.
pub fn framing(data: &[u8]) {
    let [limits, piece, stream @ ..] = data else {
        return;
    };
    let stream = &stream[..stream.len().min(4096)];
    let max_head = 24 + usize::from(limits & 0x1f) * 24;
    let max_headers = 1 + usize::from(limits >> 5) * 4;

    // The watch alone, one byte at a time: where each head ended.
    let alone = crate::server::framing::Framing::default();
    let mut scanner = crate::server::framing::Scanner::new(max_head, max_headers);
    let mut ends = Vec::new();
    for (at, byte) in stream.iter().enumerate() {
        scanner.feed(std::slice::from_ref(byte), &alone);
        if scanner.heads() > ends.len() as u64 {
            ends.push(at + 1);
        }
    }
    // In pieces: the same.
    let pieces = crate::server::framing::Framing::default();
    let mut again = crate::server::framing::Scanner::new(max_head, max_headers);
    for chunk in stream.chunks(1 + usize::from(*piece)) {
        again.feed(chunk, &pieces);
    }
    assert_eq!(
        again.heads(),
        scanner.heads(),
        "the pieces changed the count"
    );
    for i in 0..=scanner.heads() {
        assert_eq!(alone.is_ambiguous(i), pieces.is_ambiguous(i), "request {i}");
        assert_eq!(alone.is_oversized(i), pieces.is_oversized(i), "request {i}");
    }

    let (delivered, ended) = serve_with_hyper(stream, max_head, max_headers);
    let Some(ended) = ended else {
        return;
    };
    // Where each delivered head started (after the empty lines before it),
    // while every body before it had a known length.
    let mut start = Some(0usize);
    let mut long = false;
    for (i, got) in delivered.iter().enumerate() {
        let index = i as u64;
        assert_eq!(
            (got.ambiguous, got.oversized),
            (alone.is_ambiguous(index), alone.is_oversized(index)),
            "request {i}: the watch on hyper's reads and the watch alone differ"
        );
        match start {
            Some(at) => {
                let at = at.min(got.head_end);
                let at = at
                    + stream[at..got.head_end]
                        .iter()
                        .take_while(|b| matches!(b, b'\r' | b'\n'))
                        .count();
                long |= got.head_end - at > max_head;
                assert_eq!(
                    got.oversized,
                    long,
                    "request {i}: a head of {} bytes against a limit of {max_head}",
                    got.head_end - at
                );
            }
            // After a chunked body: where the head started is the watch's word.
            None => long |= got.oversized,
        }
        if !got.oversized {
            assert_eq!(
                ends.get(i),
                Some(&got.head_end),
                "request {i}: hyper's head ended at {}, the watch's at {:?}",
                got.head_end,
                ends.get(i)
            );
        }
        // hyper's view: a request it kept `Transfer-Encoding` on had a
        // `Content-Length` too when hyper would not go on after it.
        let ambiguous = match (got.te, i + 1 == delivered.len()) {
            (false, _) | (true, false) => Some(false),
            (true, true) if got.may_close => None,
            (true, true) => Some(ended == Ended::ClosedItself),
        };
        // A head past the limit is refused with 431 whatever its framing:
        // the watch stops reading there, so it has no word on the lengths.
        if let Some(ambiguous) = ambiguous
            && !got.oversized
        {
            assert_eq!(
                got.ambiguous, ambiguous,
                "request {i}: the watch and hyper disagree on both lengths"
            );
        }
        start = match (got.te, got.length) {
            (true, _) => None,
            (false, length) => usize::try_from(length.unwrap_or(0))
                .ok()
                .and_then(|n| got.head_end.checked_add(n)),
        };
    }
}

/// The HTTP/2 trailer watch, on a connection's frames after the client
/// preface (the first byte picks the size of the pieces they arrive in):
/// every byte is handed on, each changed byte is a frame's END_STREAM flag
/// cleared, one for each trailer block found malformed, and the watch reads
/// the same whatever the pieces.
pub fn h2_trailers(data: &[u8]) {
    use crate::server::h2_trailers::Watch;
    let Some((&piece, frames)) = data.split_first() else {
        return;
    };
    let mut input = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    input.extend_from_slice(frames);
    let run = |piece: usize| {
        let mut watch = Watch::new(true);
        let mut out = Vec::with_capacity(input.len());
        for bytes in input.chunks(piece) {
            watch.feed(bytes);
            out.extend_from_slice(watch.ready());
            let n = watch.ready().len();
            watch.consume(n);
        }
        watch.finish();
        out.extend_from_slice(watch.ready());
        (out, watch.refused())
    };
    let (whole, refused) = run(input.len());
    assert_eq!(whole.len(), input.len(), "bytes were lost or added");
    let changed = whole
        .iter()
        .zip(&input)
        .filter(|(out, got)| {
            assert!(
                out == got || (**got & 1 == 1 && **out == **got & !1),
                "a byte changed other than by clearing END_STREAM"
            );
            out != got
        })
        .count();
    assert_eq!(
        u64::try_from(changed).expect("small"),
        refused,
        "each refused block clears one flag"
    );
    let pieces = run(usize::from(piece.max(1)));
    assert_eq!(pieces, (whole, refused), "the pieces changed what was read");
}
