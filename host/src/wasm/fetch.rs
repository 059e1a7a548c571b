//! The `fetch` interface: a hook's HTTP requests to the backends its distribution declares.
//!
//! The runtime checks what a hook sends (the association permits it, the
//! event's count, a URL that is absolute, `http` or `https`, without user
//! information) and hands it to an [`Outbound`], which the proxy implements
//! for the distribution serving the request: it finds the declared backend
//! or origin by scheme, host and port (none: `not-declared`, and no
//! connection is made) and sends on that backend's pool, within the
//! association's timeout and response size.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::{HeaderMap, Method, StatusCode};

use super::bindings::v0_2::edge::hooks::fetch as wit;
use super::{BoundHook, HookState, convert};
use crate::metrics::HookStats;

/// What an association lets each of its events send (its `fetch` object).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchLimits {
    /// Requests per event.
    pub max_requests: u32,
    /// From sending to the whole answer, per request.
    pub timeout: Duration,
    /// The longest answer body, in bytes.
    pub max_response: usize,
    /// Whether `GET` and `HEAD` go through the shared cache.
    pub cache: bool,
}

impl FetchLimits {
    /// The most an event may spend waiting on its requests.
    pub fn longest_wait(&self) -> Duration {
        self.timeout * self.max_requests
    }
}

/// A request a hook sends, checked.
#[derive(Debug)]
pub struct Outgoing {
    pub method: Method,
    pub scheme: Scheme,
    /// The host (lower case) and port, the scheme's default when the URL
    /// gave none.
    pub host: String,
    pub port: u16,
    /// The path and query, `/` at least.
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A backend's answer, whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// For a request through the shared cache, whether the cache answered
    /// it; `None` for one sent straight to the backend.
    pub cache_hit: Option<bool>,
}

/// Why a request was not answered.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("the association has no fetch object")]
    NotPermitted,
    #[error("{0}")]
    NotDeclared(String),
    #[error("the event already sent its {0} requests")]
    TooMany(u32),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the answer's body is longer than {0} bytes")]
    TooLarge(usize),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Failed(String),
}

/// The name the WIT gives `err`'s case (`not-declared`, `timeout`, ...).
pub fn wit_name(err: &FetchError) -> &'static str {
    match err {
        FetchError::NotPermitted => "not-permitted",
        FetchError::NotDeclared(_) => "not-declared",
        FetchError::TooMany(_) => "too-many-requests",
        FetchError::Timeout(_) => "timeout",
        FetchError::TooLarge(_) => "too-large",
        FetchError::Invalid(_) => "invalid-request",
        FetchError::Failed(_) => "failed",
    }
}

impl From<FetchError> for wit::Error {
    fn from(err: FetchError) -> Self {
        match err {
            FetchError::NotPermitted => Self::NotPermitted,
            FetchError::NotDeclared(why) => Self::NotDeclared(why),
            FetchError::TooMany(_) => Self::TooManyRequests,
            FetchError::Timeout(_) => Self::Timeout,
            FetchError::TooLarge(_) => Self::TooLarge,
            FetchError::Invalid(why) => Self::InvalidRequest(why),
            FetchError::Failed(why) => Self::Failed(why),
        }
    }
}

/// A future an [`Outbound`] answers with.
pub type Sent = Pin<Box<dyn Future<Output = Result<Answer, FetchError>> + Send>>;

/// Sends a hook's requests to the backends of the distribution serving its
/// request.
pub trait Outbound: Send + Sync {
    /// Sends `req` to the declared backend it names, within `limits`.
    fn send(&self, req: Outgoing, limits: FetchLimits) -> Sent;
}

/// What an event may send, and has sent.
pub(super) struct FetchScope {
    pub(super) outbound: Option<Arc<dyn Outbound>>,
    pub(super) limits: Option<FetchLimits>,
    pub(super) sent: u32,
    /// The hook's counters.
    stats: Arc<HookStats>,
}

impl FetchScope {
    pub(super) fn new(outbound: Option<Arc<dyn Outbound>>, hook: &BoundHook) -> Self {
        Self {
            outbound,
            limits: hook.fetch,
            sent: 0,
            stats: hook.compiled.stats.clone(),
        }
    }
}

impl FetchError {
    /// Its place in [`crate::metrics::FETCH_OUTCOMES`].
    fn outcome(&self) -> usize {
        match self {
            Self::NotPermitted | Self::NotDeclared(_) | Self::TooMany(_) | Self::Invalid(_) => 1,
            Self::Timeout(_) | Self::TooLarge(_) | Self::Failed(_) => 2,
        }
    }
}

/// Reads a hook's URL: absolute, `http` or `https`, a host, no user
/// information, no fragment.
pub fn parse_url(url: &str) -> Result<(Scheme, String, u16, String), FetchError> {
    let invalid = |why: &str| FetchError::Invalid(format!("url {url:?}: {why}"));
    let uri: http::Uri = url.parse().map_err(|_| invalid("not a URL"))?;
    let scheme = match uri.scheme_str() {
        Some("http") => Scheme::HTTP,
        Some("https") => Scheme::HTTPS,
        Some(_) => return Err(invalid("the scheme is neither http nor https")),
        None => return Err(invalid("not absolute (http(s)://host/path)")),
    };
    let authority: &Authority = uri.authority().ok_or_else(|| invalid("no host"))?;
    if authority.as_str().contains('@') {
        return Err(invalid("user information is not allowed"));
    }
    if url.contains('#') {
        return Err(invalid("a fragment is not sent"));
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    if host.is_empty() {
        return Err(invalid("no host"));
    }
    let port = authority
        .port_u16()
        .unwrap_or(if scheme == Scheme::HTTPS { 443 } else { 80 });
    let path_and_query = uri
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |pq| pq.as_str().to_owned());
    let path_and_query = if path_and_query.is_empty() {
        "/".to_owned()
    } else {
        path_and_query
    };
    Ok((scheme, host, port, path_and_query))
}

/// Checks a hook's request and reads it into an [`Outgoing`].
fn outgoing(req: wit::OutboundRequest) -> Result<Outgoing, FetchError> {
    let method = Method::from_bytes(req.method.as_bytes())
        .map_err(|_| FetchError::Invalid(format!("method {:?} is not a token", req.method)))?;
    let (scheme, host, port, path_and_query) = parse_url(&req.url)?;
    let headers =
        convert::headers_from_wit(req.headers, &HeaderMap::new()).map_err(FetchError::Invalid)?;
    Ok(Outgoing {
        method,
        scheme,
        host,
        port,
        path_and_query,
        headers,
        body: req.body.map(Bytes::from).unwrap_or_default(),
    })
}

impl HookState {
    /// One `fetch` request of the event, checked and sent.
    async fn fetch(&mut self, req: wit::OutboundRequest) -> Result<Answer, FetchError> {
        let (Some(limits), Some(outbound)) = (self.fetch.limits, self.fetch.outbound.clone())
        else {
            return Err(FetchError::NotPermitted);
        };
        if self.fetch.sent >= limits.max_requests {
            return Err(FetchError::TooMany(limits.max_requests));
        }
        let req = outgoing(req)?;
        self.fetch.sent += 1;
        outbound.send(req, limits).await
    }
}

impl wit::Host for HookState {
    async fn send(
        &mut self,
        req: wit::OutboundRequest,
    ) -> Result<wit::OutboundResponse, wit::Error> {
        let sent = self.fetch(req).await;
        let stats = &self.fetch.stats;
        match sent {
            Ok(answer) => {
                stats.record_fetch(0);
                if let Some(hit) = answer.cache_hit {
                    stats.record_fetch_cache(hit);
                }
                Ok(wit::OutboundResponse {
                    status: answer.status.as_u16(),
                    headers: convert::headers_to_wit(&answer.headers),
                    body: answer.body.to_vec(),
                })
            }
            Err(err) => {
                stats.record_fetch(err.outcome());
                tracing::debug!(request_id = %self.request_id, hook = %self.hook, error = %err, "fetch");
                Err(err.into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_absolute_http_with_a_host_and_no_user() {
        let (scheme, host, port, pq) =
            parse_url("https://Auth.Example.com/check?x=1").expect("a URL");
        assert_eq!(
            (scheme.as_str(), host.as_str(), port, pq.as_str()),
            ("https", "auth.example.com", 443, "/check?x=1")
        );
        let (_, host, port, pq) = parse_url("http://127.0.0.1:8080").expect("a URL");
        assert_eq!((host.as_str(), port, pq.as_str()), ("127.0.0.1", 8080, "/"));
        let (_, host, port, _) = parse_url("http://[::1]:81/a").expect("a URL");
        assert_eq!((host.as_str(), port), ("::1", 81));
        for bad in [
            "/relative",
            "auth.example.com/x",
            "ftp://auth.example.com/",
            "file:///etc/passwd",
            "http://user:pw@auth.example.com/",
            "http://auth.example.com/#frag",
            "http:///nohost",
            "not a url",
        ] {
            assert!(
                matches!(parse_url(bad), Err(FetchError::Invalid(_))),
                "{bad} was taken"
            );
        }
    }
}
