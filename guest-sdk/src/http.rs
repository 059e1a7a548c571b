//! Helpers on requests, responses and actions: headers, cookies, redirects,
//! bodies.

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;

use crate::{DynamicOrigin, Forward, Header, Protocol, Request, RequestAction, Response};

fn get<'a>(headers: &'a [Header], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .and_then(|h| core::str::from_utf8(&h.value).ok())
}

fn set(headers: &mut Vec<Header>, name: &str, value: &str) {
    remove(headers, name);
    headers.push(Header {
        name: name.to_ascii_lowercase(),
        value: value.as_bytes().to_vec(),
    });
}

fn remove(headers: &mut Vec<Header>, name: &str) {
    headers.retain(|h| !h.name.eq_ignore_ascii_case(name));
}

fn append(headers: &mut Vec<Header>, name: &str, value: &str) {
    headers.push(Header {
        name: name.to_ascii_lowercase(),
        value: value.as_bytes().to_vec(),
    });
}

impl Request {
    /// The first value of a header, as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        get(&self.headers, name)
    }

    /// Replaces every value of a header with one.
    pub fn set_header(&mut self, name: &str, value: &str) {
        set(&mut self.headers, name, value);
    }

    /// Adds a value, keeping the others.
    pub fn append_header(&mut self, name: &str, value: &str) {
        append(&mut self.headers, name, value);
    }

    pub fn remove_header(&mut self, name: &str) {
        remove(&mut self.headers, name);
    }

    /// The value of a cookie the viewer sent (every `Cookie` header is read).
    #[cfg(feature = "std")]
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookie_headers()
            .flat_map(cookie::Cookie::split_parse)
            .flatten()
            .find(|c| c.name() == name)
            .map(|c| c.value().to_owned())
    }

    /// The value of a cookie the viewer sent (every `Cookie` header is read;
    /// `name=value` pairs split on `;`, blanks around them trimmed, as the
    /// `cookie` crate reads them).
    #[cfg(not(feature = "std"))]
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookie_headers()
            .flat_map(|h| h.split(';'))
            .filter_map(|pair| pair.split_once('='))
            .find(|(n, _)| n.trim() == name && !name.is_empty())
            .map(|(_, v)| v.trim().to_owned())
    }

    fn cookie_headers(&self) -> impl Iterator<Item = &str> {
        self.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("cookie"))
            .filter_map(|h| core::str::from_utf8(&h.value).ok())
    }

    /// The body as text, when the event was given it (`include_body` on the
    /// association) and it is UTF-8. `ctx.body_truncated` says whether it is
    /// only the body's start.
    pub fn body_text(&self) -> Option<&str> {
        core::str::from_utf8(self.body.as_deref()?).ok()
    }

    /// Replaces the body the origin gets (not sent with GET or HEAD); the
    /// host sets its length.
    pub fn set_body(&mut self, body: impl Into<Vec<u8>>) {
        self.body = Some(body.into());
        remove(&mut self.headers, "content-length");
    }

    /// The value of a query parameter (not percent-decoded).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.as_deref()?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then_some(v)
        })
    }
}

impl Response {
    /// A response with a status, a content type and a body.
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: alloc::vec![Header {
                name: "content-type".into(),
                value: content_type.as_bytes().to_vec(),
            }],
            body: Some(body.into()),
        }
    }

    /// A plain-text response.
    pub fn text(status: u16, body: &str) -> Self {
        Self::new(status, "text/plain; charset=utf-8", body)
    }

    /// A redirect (`301`, `302`, `303`, `307` or `308`) to `location`.
    pub fn redirect(status: u16, location: &str) -> Self {
        let mut resp = Self {
            status,
            headers: Vec::new(),
            body: None,
        };
        set(&mut resp.headers, "location", location);
        resp
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        get(&self.headers, name)
    }

    pub fn set_header(&mut self, name: &str, value: &str) {
        set(&mut self.headers, name, value);
    }

    pub fn append_header(&mut self, name: &str, value: &str) {
        append(&mut self.headers, name, value);
    }

    pub fn remove_header(&mut self, name: &str) {
        remove(&mut self.headers, name);
    }

    /// The body as text, when the event was given it (origin-response with
    /// `include_body`) and it is UTF-8.
    pub fn body_text(&self) -> Option<&str> {
        core::str::from_utf8(self.body.as_deref()?).ok()
    }

    /// Replaces the body; the host sets its length.
    pub fn set_body(&mut self, body: impl Into<Vec<u8>>) {
        self.body = Some(body.into());
        remove(&mut self.headers, "content-length");
    }

    /// Adds a `Set-Cookie` header.
    #[cfg(feature = "std")]
    pub fn set_cookie(&mut self, cookie: &cookie::Cookie<'_>) {
        append(
            &mut self.headers,
            "set-cookie",
            &std::string::ToString::to_string(&cookie.encoded()),
        );
    }
}

impl DynamicOrigin {
    /// `domain_name` over HTTPS on its default port.
    pub fn https(domain_name: &str) -> Self {
        Self {
            domain_name: domain_name.to_owned(),
            port: None,
            protocol: Protocol::Https,
            origin_path: None,
        }
    }

    /// `domain_name` over plain HTTP on its default port.
    pub fn http(domain_name: &str) -> Self {
        Self {
            protocol: Protocol::Http,
            ..Self::https(domain_name)
        }
    }

    /// On `port` instead of the protocol's default.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// With `path` (`/v2`) before the request's path.
    pub fn origin_path(mut self, path: &str) -> Self {
        self.origin_path = Some(path.to_owned());
        self
    }
}

impl RequestAction {
    /// Go on with `req` to the behavior's target.
    pub fn forward(req: Request) -> Self {
        Self::Forward(Forward {
            request: req,
            origin_id: None,
            dynamic_origin: None,
        })
    }

    /// Go on with `req` to the origin or origin group `origin_id`.
    pub fn forward_to(req: Request, origin_id: &str) -> Self {
        Self::Forward(Forward {
            request: req,
            origin_id: Some(origin_id.to_owned()),
            dynamic_origin: None,
        })
    }

    /// Go on with `req` to an origin named by host, which the
    /// distribution's `dynamic_origins` must allow.
    pub fn forward_to_host(req: Request, origin: DynamicOrigin) -> Self {
        Self::Forward(Forward {
            request: req,
            origin_id: None,
            dynamic_origin: Some(origin),
        })
    }

    /// Answer the viewer with `resp`.
    pub fn respond(resp: Response) -> Self {
        Self::Respond(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> Request {
        Request {
            method: "GET".into(),
            path: "/".into(),
            query: Some("a=1&b=two".into()),
            headers: headers
                .iter()
                .map(|(n, v)| Header {
                    name: (*n).into(),
                    value: v.as_bytes().to_vec(),
                })
                .collect(),
            client_address: "127.0.0.1".into(),
            body: None,
        }
    }

    #[test]
    fn cookies_headers_and_query() {
        let mut r = req(&[
            ("cookie", "a=1; deployment=green"),
            ("cookie", "z=9"),
            ("x-one", "1"),
        ]);
        assert_eq!(r.cookie("deployment").as_deref(), Some("green"));
        assert_eq!(r.cookie("z").as_deref(), Some("9"));
        assert_eq!(r.cookie("nope"), None);
        assert_eq!(r.header("X-One"), Some("1"));
        r.set_header("X-One", "2");
        assert_eq!(r.header("x-one"), Some("2"));
        assert_eq!(r.headers.iter().filter(|h| h.name == "x-one").count(), 1);
        assert_eq!(r.query_param("b"), Some("two"));
    }

    #[test]
    fn bodies_as_text_and_replaced() {
        let mut r = req(&[("content-length", "3")]);
        assert_eq!(r.body_text(), None);
        r.body = Some(b"abc".to_vec());
        assert_eq!(r.body_text(), Some("abc"));
        r.set_body("abcd");
        assert_eq!(r.body.as_deref(), Some(&b"abcd"[..]));
        assert_eq!(r.header("content-length"), None);
        let mut resp = Response::text(200, "x");
        resp.set_body(alloc::vec![0xff]);
        assert_eq!(resp.body_text(), None);
    }

    #[test]
    #[cfg(feature = "std")]
    fn redirects_and_cookies_on_responses() {
        let mut resp = Response::redirect(302, "https://example.com/login");
        assert_eq!(resp.header("location"), Some("https://example.com/login"));
        resp.set_cookie(
            &cookie::Cookie::build(("deployment", "blue"))
                .path("/")
                .build(),
        );
        assert_eq!(resp.header("set-cookie"), Some("deployment=blue; Path=/"));
    }
}
