//! Phase 1, resolve: the checks a request passes before anything serves it,
//! and the distribution its `Host` names.

use std::sync::Arc;

use http::header::HOST;
use http::{HeaderMap, Method, Request};
use http_body::Body;

use crate::error::ProxyError;
use crate::origin::Origins;
use crate::tls::ServedCertificate;

use super::Proxy;
use super::ctx::RequestCtx;
use super::routing::ServedDistribution;

/// Marks a request that carried both `Content-Length` and `Transfer-Encoding`
/// (seen by the listener before hyper dropped one of them): it is refused.
#[derive(Debug, Clone, Copy)]
pub struct AmbiguousFraming;

/// Marks a request whose head was longer than `--max-header-bytes`, or that
/// came after one on its connection: it is refused with 431.
#[derive(Debug, Clone, Copy)]
pub struct OversizedHead;

/// What the resolve phase found for a request.
pub(super) struct Resolved {
    /// The host asked for: lower-case, without a port.
    pub host: String,
    /// The distribution that serves it.
    pub dist: Arc<ServedDistribution>,
    /// The path in the one form every later phase sees: behavior matching,
    /// hooks, the cache key and the origin. (The access log keeps the path
    /// as the viewer sent it.)
    pub path: String,
}

impl<O: Origins> Proxy<O> {
    /// Refuses what the host does not serve (malformed HTTP/2, ambiguous or
    /// oversized heads, unknown transfer codings, a `Host` the connection's
    /// certificate does not cover, an unknown or disabled distribution, a
    /// path that does not normalize, a GET or HEAD with a body) and resolves
    /// the distribution by `Host`.
    pub(super) fn resolve<B: Body>(
        &self,
        req: &Request<B>,
        ctx: &mut RequestCtx,
    ) -> Result<Resolved, ProxyError> {
        if req.version() == http::Version::HTTP_2 {
            check_http2(req)?;
        }
        if req.extensions().get::<AmbiguousFraming>().is_some() {
            return Err(ProxyError::AmbiguousFraming);
        }
        if req.extensions().get::<OversizedHead>().is_some() {
            return Err(ProxyError::HeadTooLarge);
        }
        // hyper decodes the final `chunked` and passes the body on still
        // in any coding before it (RFC 9112 6.1: a server that does not
        // understand a transfer coding answers 501).
        if let Some(coding) = unknown_transfer_coding(req.headers()) {
            return Err(ProxyError::TransferCodingNotImplemented { coding });
        }
        let host = viewer_host(req)?;
        // A TLS connection serves the names of its certificate: SNI for one
        // distribution and Host for another (domain fronting) is misdirected
        // (RFC 9110 15.5.20), before any hook or origin sees the request.
        if let Some(certificate) = req.extensions().get::<ServedCertificate>()
            && !certificate.covers(&host)
        {
            return Err(ProxyError::MisdirectedRequest { host });
        }
        let dist = self
            .routing
            .load()
            .resolve(&host)
            .ok_or_else(|| ProxyError::UnknownHost { host: host.clone() })?
            .clone();
        ctx.stats = Some(dist.stats.clone());
        if !dist.config.enabled {
            return Err(ProxyError::DistributionDisabled {
                id: dist.id.to_string(),
            });
        }
        if !req.uri().path().starts_with('/') {
            return Err(ProxyError::BadTarget);
        }
        // The access-log record, for the log or for `edge tail`.
        ctx.log_to_file = dist.config.raw.logging.enabled && self.access_log.is_some();
        if ctx.log_to_file || self.tail.watching() {
            ctx.log = Some(Box::new(self.log_record(req, &dist, &host, ctx)));
        }
        let path = crate::path::normalize(req.uri().path())?.into_owned();
        // A GET or HEAD with a body (RFC 9110 9.3.1: content with no defined
        // semantics) is refused: forwarded, it could change what the origin
        // answers for a key that does not hold it (a "fat GET").
        if matches!(*req.method(), Method::GET | Method::HEAD) && !req.body().is_end_stream() {
            return Err(ProxyError::BodyNotAllowed {
                method: req.method().clone(),
            });
        }
        Ok(Resolved { host, dist, path })
    }
}

/// A request's transfer codings, when they are more than the one final
/// `chunked` the host decodes (`gzip, chunked`; `chunked, chunked`, which
/// RFC 9112 7 forbids).
fn unknown_transfer_coding(headers: &HeaderMap) -> Option<String> {
    let mut codings = Vec::new();
    for value in headers.get_all(http::header::TRANSFER_ENCODING) {
        let value = String::from_utf8_lossy(value.as_bytes());
        codings.extend(
            value
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned),
        );
    }
    match codings.as_slice() {
        [] => None,
        [only] if only.eq_ignore_ascii_case("chunked") => None,
        _ => Some(codings.join(", ")),
    }
}

/// What RFC 9113 makes a malformed request that hyper and h2 pass on: a
/// `host` field that names another host than `:authority` (8.3.1; compared
/// case-insensitively), and a field value that starts or ends with a space
/// or a tab (8.2.1), which an HTTP/1.1 origin would read without them.
fn check_http2<B>(req: &Request<B>) -> Result<(), ProxyError> {
    if let Some(authority) = req.uri().authority() {
        for host in req.headers().get_all(HOST) {
            if !host
                .as_bytes()
                .eq_ignore_ascii_case(authority.as_str().as_bytes())
            {
                return Err(ProxyError::MalformedHttp2 {
                    reason: "the host field differs from :authority".to_owned(),
                });
            }
        }
    }
    for (name, value) in req.headers() {
        let bytes = value.as_bytes();
        let blank = |b: Option<&u8>| matches!(b, Some(b' ' | b'\t'));
        if blank(bytes.first()) || blank(bytes.last()) {
            return Err(ProxyError::MalformedHttp2 {
                reason: format!("the value of {name} starts or ends with whitespace"),
            });
        }
    }
    Ok(())
}

/// The host a request is for (RFC 9112 3.2): an absolute-form target's
/// authority, else the one `Host` field. More than one `Host`, or one that is
/// not `host[:port]`, is refused.
fn viewer_host<B>(req: &Request<B>) -> Result<String, ProxyError> {
    let mut fields = req.headers().get_all(HOST).iter();
    let field = fields.next();
    if fields.next().is_some() {
        return Err(ProxyError::BadHost {
            reason: "more than one Host field",
        });
    }
    let raw = match (req.uri().authority(), field) {
        (Some(authority), _) => authority.as_str(),
        (None, Some(value)) => value
            .to_str()
            .map_err(|_| ProxyError::BadHost { reason: "not text" })?,
        (None, None) => return Err(ProxyError::MissingHost),
    };
    let valid =
        |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'[' | b']' | b'_');
    if raw.is_empty() || !raw.bytes().all(valid) {
        return Err(ProxyError::BadHost {
            reason: "not host[:port]",
        });
    }
    let host = if raw.starts_with('[') {
        raw.find(']').map_or(raw, |i| &raw[..=i])
    } else {
        match raw.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => raw,
        }
    };
    let host = host.trim_end_matches('.');
    if host.is_empty() {
        return Err(ProxyError::MissingHost);
    }
    Ok(host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_of(h: &str) -> Option<String> {
        let req = Request::builder()
            .uri("/")
            .header(HOST, h)
            .body(())
            .unwrap();
        viewer_host(&req).ok()
    }

    #[test]
    fn host_is_lowercased_without_port() {
        assert_eq!(
            host_of("WWW.Example.com:8080").as_deref(),
            Some("www.example.com")
        );
        assert_eq!(host_of("example.com.").as_deref(), Some("example.com"));
        assert_eq!(host_of("[::1]:80").as_deref(), Some("[::1]"));
        assert_eq!(host_of("").as_deref(), None);
        assert_eq!(host_of("a b").as_deref(), None);
        assert_eq!(host_of("a/b").as_deref(), None);
    }

    #[test]
    fn two_hosts_or_an_absolute_target_follow_rfc_9112() {
        let two = Request::builder()
            .uri("/")
            .header(HOST, "a.example")
            .header(HOST, "b.example")
            .body(())
            .unwrap();
        assert!(matches!(viewer_host(&two), Err(ProxyError::BadHost { .. })));
        let absolute = Request::builder()
            .uri("http://target.example/x")
            .header(HOST, "a.example")
            .body(())
            .unwrap();
        assert_eq!(
            viewer_host(&absolute).ok().as_deref(),
            Some("target.example")
        );
    }

    #[test]
    fn http2_fields_that_disagree_or_are_padded_are_malformed() {
        let request = |host: &str, value: &str| {
            Request::builder()
                .uri("https://Shop.Example/x")
                .header(HOST, host)
                .header("x-field", value)
                .body(())
                .unwrap()
        };
        assert!(check_http2(&request("shop.example", "a b")).is_ok());
        for (host, value) in [
            ("other.example", "v"),
            ("shop.example:443", "v"),
            ("shop.example", " v"),
            ("shop.example", "v\t"),
        ] {
            assert!(
                matches!(
                    check_http2(&request(host, value)),
                    Err(ProxyError::MalformedHttp2 { .. })
                ),
                "{host} {value:?}"
            );
        }
    }
}
