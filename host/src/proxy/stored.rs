//! Answers from a stored object: the whole response, `304 Not Modified` to a
//! viewer's conditional request, `206`/`416` to a `Range` request, and no body
//! for `HEAD` (which a stored `GET` answers).

use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::header::{
    AGE, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_LOCATION, CONTENT_RANGE, DATE, ETAG, EXPIRES,
    HeaderMap, HeaderValue, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, LAST_MODIFIED, RANGE, VARY,
};
use http::{Method, Response, StatusCode};

use super::body::EdgeBody;
use crate::cache::CachedObject;
use crate::cache::freshness::DELTA_MAX;

/// The response to a request for a stored object.
pub fn respond<B>(
    obj: &CachedObject,
    method: &Method,
    req: &HeaderMap,
    now: Instant,
) -> Response<EdgeBody<B>> {
    // RFC 9111 1.2.2: a cache sends no delta-seconds above 2^31.
    let age = HeaderValue::from(obj.age(now).as_secs().min(DELTA_MAX));
    if obj.status == StatusCode::OK && not_modified(obj, req) {
        let mut resp = Response::new(EdgeBody::Empty);
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        let headers = resp.headers_mut();
        // RFC 9110 15.4.5: what a 200 would have said about caching and
        // validation, not the representation.
        for name in [
            CACHE_CONTROL,
            CONTENT_LOCATION,
            DATE,
            ETAG,
            EXPIRES,
            VARY,
            LAST_MODIFIED,
        ] {
            for value in obj.headers.get_all(&name) {
                headers.append(name.clone(), value.clone());
            }
        }
        headers.insert(AGE, age);
        return resp;
    }
    let head = method == Method::HEAD;
    let range = (obj.status == StatusCode::OK && method == Method::GET && if_range_holds(obj, req))
        .then(|| req.get(RANGE).and_then(|v| v.to_str().ok()))
        .flatten()
        .and_then(|spec| parse_range(spec, obj.body_len()));
    let mut resp = match range {
        Some(Ok((first, last))) => {
            let body = match &obj.file {
                Some(file) => EdgeBody::file(file, first, last + 1 - first),
                None => EdgeBody::full(slice(&obj.body, first, last)),
            };
            let mut resp = Response::new(body);
            *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
            resp.headers_mut().clone_from(&obj.headers);
            let len = obj.body_len();
            set(
                resp.headers_mut(),
                CONTENT_RANGE,
                &format!("bytes {first}-{last}/{len}"),
            );
            resp.headers_mut()
                .insert(CONTENT_LENGTH, HeaderValue::from(last + 1 - first));
            resp
        }
        Some(Err(())) => {
            let mut resp = Response::new(EdgeBody::Empty);
            *resp.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            let len = obj.body_len();
            set(resp.headers_mut(), CONTENT_RANGE, &format!("bytes */{len}"));
            resp
        }
        None => {
            let body = match (&obj.file, head) {
                (_, true) => EdgeBody::Empty,
                (Some(file), false) => EdgeBody::file(file, 0, file.len()),
                (None, false) => EdgeBody::full(obj.body.clone()),
            };
            let mut resp = Response::new(body);
            *resp.status_mut() = obj.status;
            resp.headers_mut().clone_from(&obj.headers);
            if !resp.headers().contains_key(CONTENT_LENGTH) && obj.status != StatusCode::NO_CONTENT
            {
                resp.headers_mut()
                    .insert(CONTENT_LENGTH, HeaderValue::from(obj.body_len()));
            }
            resp
        }
    };
    resp.headers_mut().insert(AGE, age);
    resp
}

fn set(headers: &mut HeaderMap, name: http::header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

/// Whether a viewer's `If-None-Match` (or, without one, `If-Modified-Since`)
/// says it already has the stored object (RFC 9110 13.1.2, 13.1.3).
fn not_modified(obj: &CachedObject, req: &HeaderMap) -> bool {
    if req.contains_key(IF_NONE_MATCH) {
        let Some(etag) = obj.headers.get(ETAG).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let stored = opaque_tag(etag);
        return req
            .get_all(IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .any(|tag| tag == "*" || opaque_tag(tag) == stored);
    }
    let since = req
        .get(IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok());
    let modified = obj
        .headers
        .get(LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok());
    match (since, modified) {
        (Some(since), Some(modified)) => modified <= since && since <= SystemTime::now(),
        _ => false,
    }
}

/// An entity tag without its weakness indicator (weak comparison).
fn opaque_tag(tag: &str) -> &str {
    tag.strip_prefix("W/").unwrap_or(tag)
}

/// Whether an `If-Range` (if any) lets a `Range` apply: a strong entity tag
/// equal to the stored one, or the stored `Last-Modified` exactly.
fn if_range_holds(obj: &CachedObject, req: &HeaderMap) -> bool {
    let Some(cond) = req.get(IF_RANGE).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let cond = cond.trim();
    if cond.starts_with('"') {
        obj.headers.get(ETAG).and_then(|v| v.to_str().ok()) == Some(cond)
    } else if cond.starts_with("W/") {
        false
    } else {
        obj.headers.get(LAST_MODIFIED).and_then(|v| v.to_str().ok()) == Some(cond)
    }
}

/// A single byte range of a `len`-byte body: `Some(Ok((first, last)))`,
/// `Some(Err(()))` when unsatisfiable, `None` when the header is not one
/// byte range this host serves (several ranges, another unit): then the whole
/// body is sent, as RFC 9110 14.2 allows.
fn parse_range(spec: &str, len: u64) -> Option<Result<(u64, u64), ()>> {
    let ranges = spec.trim().strip_prefix("bytes=")?;
    if ranges.contains(',') {
        return None;
    }
    let (first, last) = ranges.trim().split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    let parsed = if first.is_empty() {
        let suffix: u64 = last.parse().ok()?;
        if suffix == 0 || len == 0 {
            return Some(Err(()));
        }
        (len.saturating_sub(suffix), len - 1)
    } else {
        let first: u64 = first.parse().ok()?;
        let last = if last.is_empty() {
            u64::MAX
        } else {
            last.parse().ok()?
        };
        if last < first {
            return None;
        }
        if first >= len {
            return Some(Err(()));
        }
        (first, last.min(len - 1))
    };
    Some(Ok(parsed))
}

/// Bytes `first..=last` of `body` (a range [`parse_range`] made).
fn slice(body: &Bytes, first: u64, last: u64) -> Bytes {
    body.slice(usize::try_from(first).unwrap_or(0)..usize::try_from(last + 1).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(Ok((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=-200", 100), Some(Ok((0, 99))));
        assert_eq!(parse_range("bytes=50-500", 100), Some(Ok((50, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Some(Err(())));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
        assert_eq!(parse_range("bytes=9-1", 100), None);
    }

    #[test]
    fn entity_tags_compare_weakly_for_if_none_match() {
        assert_eq!(opaque_tag("W/\"a\""), "\"a\"");
        assert_eq!(opaque_tag("\"a\""), "\"a\"");
    }
}
