//! Entry points for the fuzz targets in `fuzz/` and for the tests that replay
//! their committed seed corpora: each takes arbitrary bytes and panics only
//! when an invariant of the parser it drives breaks.

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use http::header::{CACHE_CONTROL, HeaderName, HeaderValue, VIA};
use http::{HeaderMap, Method, StatusCode};

use crate::cache::freshness::{self, CacheControl, DELTA_MAX};
use crate::cache::{CachedObject, Tags};
use crate::config::{Distribution, DistributionConfig, TtlPolicy, parse_json};
use crate::proxy::headers::is_hop_by_hop;
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
    if let Ok(checked) = convert::response_from_wit(response, &before, CAP) {
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
        },
    );
    let retention = object.retention();
    assert!(retention <= bound * 2 + crate::cache::REVALIDATION_RETENTION);
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
        let resp = crate::proxy::stored::respond(&object, &Method::GET, &HeaderMap::new(), now);
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
    let Ok(out) = crate::proxy::path::normalize(&text) else {
        return;
    };
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
    let again = crate::proxy::path::normalize(&out).expect("a normalized path normalizes");
    assert_eq!(again, out, "normalizing {text:?} twice changed it");
}
