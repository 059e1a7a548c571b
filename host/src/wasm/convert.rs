//! Conversions between the host's HTTP types and the WIT types, and the rules a
//! hook's output must keep.

use std::net::IpAddr;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, VIA};
use http::{HeaderMap, Method, StatusCode};

use super::bindings::{Header, Request, Response};
use crate::fields::is_hop_by_hop;

/// The longest path plus query a hook may produce (Lambda@Edge: 8 KiB).
pub const MAX_URI: usize = 8 * 1024;
/// The largest body a hook may generate in a viewer event (Lambda@Edge: 40 KB).
pub const MAX_VIEWER_BODY: usize = 40 * 1024;
/// The largest body a hook may generate in an origin event (Lambda@Edge: 1 MB).
pub const MAX_ORIGIN_BODY: usize = 1024 * 1024;

/// The largest body a hook may generate or substitute in `event`.
pub fn max_body(event: super::Event) -> usize {
    match event {
        super::Event::ViewerRequest | super::Event::ViewerResponse => MAX_VIEWER_BODY,
        super::Event::OriginRequest | super::Event::OriginResponse => MAX_ORIGIN_BODY,
    }
}

/// Headers as the WIT list: lower-case names, raw values, repeats kept in order.
pub fn headers_to_wit(headers: &HeaderMap) -> Vec<Header> {
    headers
        .iter()
        .map(|(n, v)| Header {
            name: n.as_str().to_owned(),
            value: v.as_bytes().to_vec(),
        })
        .collect()
}

/// A request for a hook, without its body.
pub fn request_to_wit(
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    client: IpAddr,
) -> Request {
    Request {
        method: method.as_str().to_owned(),
        path: path.to_owned(),
        query: query.map(str::to_owned),
        headers: headers_to_wit(headers),
        client_address: client.to_string(),
        body: None,
    }
}

/// What a hook's dynamic origin names, for the distribution's
/// `dynamic_origins` to check.
pub fn dynamic_target(
    origin: &super::bindings::DynamicOrigin,
) -> crate::config::dynamic::DynamicTarget<'_> {
    use crate::config::raw::Protocol;
    crate::config::dynamic::DynamicTarget {
        domain_name: &origin.domain_name,
        port: origin.port,
        protocol: match origin.protocol {
            super::bindings::Protocol::Http => Protocol::Http,
            super::bindings::Protocol::Https => Protocol::Https,
        },
        origin_path: origin.origin_path.as_deref(),
    }
}

/// A request a hook handed back, checked.
#[derive(Debug)]
pub struct CheckedRequest {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
}

/// Checks a request from a hook: a method token, a path starting with `/`, a
/// URI within [`MAX_URI`], valid headers with no hop-by-hop fields and no `via`
/// beyond the ones in `before` (what the hook was given).
pub fn request_from_wit(req: Request, before: &HeaderMap) -> Result<CheckedRequest, String> {
    let method = Method::from_bytes(req.method.as_bytes())
        .map_err(|_| format!("method {:?} is not a valid token", req.method))?;
    if !req.path.starts_with('/') {
        return Err(format!("path {:?} does not start with '/'", req.path));
    }
    let uri_len = req.path.len() + req.query.as_ref().map_or(0, |q| q.len() + 1);
    if uri_len > MAX_URI {
        return Err(format!(
            "the URI is {uri_len} bytes, over the {MAX_URI} byte limit"
        ));
    }
    let mut pq = req.path.clone();
    if let Some(q) = &req.query {
        pq.push('?');
        pq.push_str(q);
    }
    if http::uri::PathAndQuery::try_from(pq.as_str()).is_err() || pq.contains('#') {
        return Err(format!("{pq:?} is not a valid request target"));
    }
    let headers = headers_from_wit(req.headers, before)?;
    Ok(CheckedRequest {
        method,
        path: req.path,
        query: req.query,
        headers,
    })
}

/// Checks headers from a hook. `before` holds what the hook was given, so a
/// `via` it passed through unchanged is allowed while an added one is not.
pub fn headers_from_wit(headers: Vec<Header>, before: &HeaderMap) -> Result<HeaderMap, String> {
    let mut out = HeaderMap::with_capacity(headers.len());
    for h in headers {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| format!("header name {:?} is not valid", h.name))?;
        let value = HeaderValue::from_bytes(&h.value).map_err(|_| {
            format!("the value of header {name} holds a control character (CR, LF or NUL)")
        })?;
        if is_hop_by_hop(&name) {
            return Err(format!("hop-by-hop header {name} cannot be set by a hook"));
        }
        if name == VIA && !before.get_all(VIA).iter().any(|v| v == value) {
            return Err("the via header is managed by the host".to_owned());
        }
        out.append(name, value);
    }
    Ok(out)
}

/// A response a hook produced, checked.
#[derive(Debug)]
pub struct CheckedResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Option<Bytes>,
}

/// A response for a hook, with the body it is given (`include_body`).
pub fn response_to_wit(status: StatusCode, headers: &HeaderMap, body: Option<&Bytes>) -> Response {
    Response {
        status: status.as_u16(),
        headers: headers_to_wit(headers),
        body: body.map(|b| b.to_vec()),
    }
}

/// Checks a response from a hook: status 200-599 (or the `given` status
/// the hook was handed, kept: a `101` on a WebSocket handshake), valid
/// headers, a body within `max_body`.
pub fn response_from_wit(
    resp: Response,
    before: &HeaderMap,
    given: Option<StatusCode>,
    max_body: usize,
) -> Result<CheckedResponse, String> {
    let kept = given.is_some_and(|given| given.as_u16() == resp.status);
    if !kept && !(200..=599).contains(&resp.status) {
        return Err(format!("status {} is outside 200-599", resp.status));
    }
    let status = StatusCode::from_u16(resp.status)
        .map_err(|_| format!("status {} is not valid", resp.status))?;
    if let Some(body) = &resp.body
        && body.len() > max_body
    {
        return Err(format!(
            "the body is {} bytes, over the {max_body} byte limit",
            body.len()
        ));
    }
    let headers = headers_from_wit(resp.headers, before)?;
    Ok(CheckedResponse {
        status,
        headers,
        body: resp.body.map(Bytes::from),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_from_wit_empty(req: Request) -> Result<CheckedRequest, String> {
        request_from_wit(req, &HeaderMap::new())
    }

    fn header(name: &str, value: &[u8]) -> Header {
        Header {
            name: name.to_owned(),
            value: value.to_vec(),
        }
    }

    fn request(path: &str, headers: Vec<Header>) -> Request {
        Request {
            method: "GET".into(),
            path: path.into(),
            query: None,
            headers,
            client_address: "127.0.0.1".into(),
            body: None,
        }
    }

    #[test]
    fn request_rules() {
        assert!(
            request_from_wit_empty(request(
                "/ok",
                vec![header("x-a", b"1"), header("x-a", b"2")]
            ))
            .is_ok()
        );
        assert!(request_from_wit_empty(request("no-slash", vec![])).is_err());
        assert!(
            request_from_wit_empty(request(&format!("/{}", "a".repeat(MAX_URI)), vec![])).is_err()
        );
        assert!(
            request_from_wit_empty(request("/", vec![header("x-a", b"bad\r\nx-b: 1")])).is_err()
        );
        assert!(request_from_wit_empty(request("/", vec![header("x-a", b"nul\0")])).is_err());
        assert!(request_from_wit_empty(request("/", vec![header("bad name", b"1")])).is_err());
        assert!(
            request_from_wit_empty(request("/", vec![header("connection", b"close")])).is_err()
        );
        assert!(request_from_wit_empty(request("/", vec![header("via", b"1.1 spoof")])).is_err());
        let mut bad_method = request("/", vec![]);
        bad_method.method = "GE T".into();
        assert!(request_from_wit_empty(bad_method).is_err());
    }

    #[test]
    fn response_rules() {
        let ok = Response {
            status: 200,
            headers: vec![],
            body: Some(b"x".to_vec()),
        };
        assert!(response_from_wit(ok, &HeaderMap::new(), None, 10).is_ok());
        for status in [100, 199, 600, 999] {
            let r = Response {
                status,
                headers: vec![],
                body: None,
            };
            assert!(
                response_from_wit(r, &HeaderMap::new(), None, 10).is_err(),
                "{status}"
            );
        }
        // A 101 the hook was handed (a WebSocket's) may be kept, never made.
        let switching = || Response {
            status: 101,
            headers: vec![],
            body: None,
        };
        assert!(
            response_from_wit(
                switching(),
                &HeaderMap::new(),
                Some(StatusCode::SWITCHING_PROTOCOLS),
                10
            )
            .is_ok()
        );
        assert!(
            response_from_wit(switching(), &HeaderMap::new(), Some(StatusCode::OK), 10).is_err()
        );
        let big = Response {
            status: 200,
            headers: vec![],
            body: Some(vec![0; 11]),
        };
        assert!(response_from_wit(big, &HeaderMap::new(), None, 10).is_err());
        // A via the hook was given may pass through; a new one may not.
        let mut before = HeaderMap::new();
        before.insert(VIA, "1.1 origin".parse().unwrap());
        let kept = Response {
            status: 200,
            headers: vec![header("via", b"1.1 origin")],
            body: None,
        };
        assert!(response_from_wit(kept, &before, None, 10).is_ok());
        let added = Response {
            status: 200,
            headers: vec![header("via", b"1.1 other")],
            body: None,
        };
        assert!(response_from_wit(added, &before, None, 10).is_err());
    }
}
