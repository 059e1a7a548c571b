//! Origin fetching: how the proxy reaches origins ([`Origins`]), a pooled hyper
//! client per origin (HTTP/1.1, or HTTP/2 multiplexed on one connection),
//! TLS through rustls, timeouts and the errors that say which of them failed.

use std::collections::HashMap;
use std::error::Error as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;

use crate::config::Origin;
use crate::config::raw::ProtocolVersion;

pub mod dynamic;
pub mod health;
mod resolve;

pub use health::{AddressHealth, Endpoint, OriginPools};
pub use resolve::{Guard, Resolver};

/// A failed origin fetch.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OriginError {
    #[error("connecting to origin {origin} failed: {reason}")]
    Connect { origin: String, reason: String },
    #[error("origin {origin} did not answer within {timeout:?}")]
    Timeout { origin: String, timeout: Duration },
    #[error("origin {origin} broke the exchange: {reason}")]
    Protocol { origin: String, reason: String },
    #[error("TLS with origin {origin} failed: {reason}")]
    Tls { origin: String, reason: String },
}

/// An error of a body from anywhere (a viewer's connection, a test).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A viewer's request body, whatever it was read from.
pub type ViewerBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// The body sent to an origin: nothing (replayable, so failover can retry), or
/// the viewer's body streamed through.
#[derive(Debug)]
pub enum UpstreamBody {
    Empty,
    /// The viewer's body; `failed` is set when reading it failed (its
    /// framing was broken), so the error is the viewer's, not the origin's.
    Viewer {
        body: ViewerBody,
        failed: Arc<std::sync::atomic::AtomicBool>,
    },
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Self::Empty => Poll::Ready(None),
            Self::Viewer { body, failed } => {
                let polled = Pin::new(body).poll_frame(cx);
                if let Poll::Ready(Some(Err(_))) = &polled {
                    failed.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                polled
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Empty => true,
            Self::Viewer { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Empty => SizeHint::with_exact(0),
            Self::Viewer { body, .. } => body.size_hint(),
        }
    }
}

/// A pooled client; clones share one pool.
pub type PoolClient = Client<HttpsConnector<Pinned<HttpConnector<Resolver>>>, UpstreamBody>;

/// A connector that connects to one address whatever the request's URI
/// names (`to`), or to the URI's own (`None`). It sits under TLS, so the
/// TLS name is still the URI's host: an origin's `addresses` are dialed
/// while its certificate is checked against its `domain_name`.
#[derive(Debug, Clone)]
pub struct Pinned<C> {
    inner: C,
    to: Option<http::Uri>,
}

impl<C: tower_service::Service<http::Uri>> tower_service::Service<http::Uri> for Pinned<C> {
    type Response = C::Response;
    type Error = C::Error;
    type Future = C::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, dst: http::Uri) -> Self::Future {
        let dst = self.to.clone().unwrap_or(dst);
        self.inner.call(dst)
    }
}

/// One origin resolved for a request: its config and the pool the serving
/// distribution holds for it.
#[derive(Debug, Clone, Copy)]
pub struct OriginTarget<'a> {
    pub origin: &'a Origin,
    pub pool: &'a PoolClient,
}

/// How the proxy reaches origins: one request to one resolved origin, answered
/// with the response head (the body still to stream) or the error that ended
/// the exchange. [`OriginFetcher`] is the one that goes over the network;
/// failover, counting and timing are the proxy's, around each call.
pub trait Origins: Send + Sync + 'static {
    /// The body of an origin's response. Its errors are hyper's, as a pooled
    /// client's are.
    type Body: Body<Data = Bytes, Error = hyper::Error> + Send + Unpin + 'static;

    /// Sends `req` (its URI absolute, `Host` set) to `to`.
    fn send(
        &self,
        to: OriginTarget<'_>,
        req: Request<UpstreamBody>,
    ) -> impl Future<Output = Result<Response<Self::Body>, OriginError>> + Send;
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PoolKey {
    scheme: String,
    authority: String,
    connect_timeout: Duration,
    keepalive_timeout: Duration,
    version: ProtocolVersion,
    /// The address dialed in place of `authority`'s.
    address: Option<String>,
}

impl PoolKey {
    fn of(origin: &Origin, address: Option<&http::uri::Authority>) -> Self {
        Self {
            scheme: origin.scheme.to_string(),
            authority: origin.authority.to_string(),
            connect_timeout: origin.connect_timeout,
            keepalive_timeout: origin.keepalive_timeout,
            version: origin.version,
            address: address.map(ToString::to_string),
        }
    }
}

/// An endpoint's identity across config snapshots: its pool's and its
/// health check's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct EndpointKey {
    pool: PoolKey,
    check: Option<crate::config::HealthCheck>,
}

/// Hands out one keep-alive pool per origin (scheme, authority, connect
/// timeout), kept across config changes so a PUT that keeps an origin keeps its
/// warm connections.
pub struct OriginFetcher {
    tls: rustls::ClientConfig,
    pools: Mutex<HashMap<PoolKey, PoolClient>>,
    /// The origins' endpoints, while a snapshot holds them.
    endpoints: Mutex<HashMap<EndpointKey, std::sync::Weak<Endpoint>>>,
}

impl std::fmt::Debug for OriginFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OriginFetcher").finish_non_exhaustive()
    }
}

impl OriginFetcher {
    /// A fetcher that verifies HTTPS origins against the system's roots.
    pub fn new() -> Self {
        Self::with_roots(&[])
    }

    /// A fetcher that verifies HTTPS origins against the system's roots and
    /// `extra` (a private CA, say).
    pub fn with_roots(extra: &[CertificateDer<'static>]) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for err in &native.errors {
            tracing::warn!(error = %err, "reading the system's root certificates");
        }
        let (added, _) = roots.add_parsable_certificates(native.certs);
        if added == 0 && extra.is_empty() {
            tracing::warn!("no root certificates: HTTPS origins will fail verification");
        }
        for cert in extra {
            if let Err(err) = roots.add(cert.clone()) {
                tracing::warn!(error = %err, "an extra origin CA certificate was not usable");
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap_or_else(|_| unreachable_versions())
            .with_root_certificates(roots)
            .with_no_client_auth();
        Self {
            tls,
            pools: Mutex::new(HashMap::new()),
            endpoints: Mutex::new(HashMap::new()),
        }
    }

    /// The pool for `origin`, made on first use.
    pub fn pool_for(&self, origin: &Origin) -> PoolClient {
        self.pool_at(origin, None)
    }

    fn pool_at(&self, origin: &Origin, address: Option<&http::uri::Authority>) -> PoolClient {
        let key = PoolKey::of(origin, address);
        let mut pools = self
            .pools
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        pools
            .entry(key)
            .or_insert_with(|| self.build_pool(origin, Guard::None, address))
            .clone()
    }

    /// `origin`'s endpoints (see [`health`]): one per address, the ones a
    /// snapshot already holds reused (their health and checkers with them).
    pub fn origin_pools(&self, origin: &Origin) -> OriginPools {
        let mut endpoints = self
            .endpoints
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        endpoints.retain(|_, weak| weak.strong_count() > 0);
        let held = endpoint_keys(origin)
            .map(|(address, key)| {
                if let Some(endpoint) = endpoints.get(&key).and_then(std::sync::Weak::upgrade) {
                    return endpoint;
                }
                let label =
                    address.map_or_else(|| origin.authority.to_string(), ToString::to_string);
                let endpoint = Arc::new(Endpoint::new(
                    label,
                    self.pool_at(origin, address),
                    origin.health_check.is_some(),
                ));
                if let Some(check) = &origin.health_check {
                    health::spawn_checker(&endpoint, origin, check.clone());
                }
                endpoints.insert(key, Arc::downgrade(&endpoint));
                endpoint
            })
            .collect();
        OriginPools::new(held)
    }

    /// The health of `origin`'s addresses, as the snapshots serving it see
    /// them (nothing for an origin no snapshot serves).
    pub fn health_of(&self, origin: &Origin) -> Vec<AddressHealth> {
        let endpoints = self
            .endpoints
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        endpoint_keys(origin)
            .filter_map(|(_, key)| endpoints.get(&key)?.upgrade().map(|e| e.report()))
            .collect()
    }

    /// Every served endpoint's health, for `/metrics`.
    pub fn render_health(&self, out: &mut String) {
        use std::fmt::Write as _;
        let endpoints: Vec<(String, Arc<Endpoint>)> = self
            .endpoints
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter_map(|(key, weak)| Some((key.pool.authority.clone(), weak.upgrade()?)))
            .collect();
        out.push_str("# HELP edge_origin_address_healthy 1 while requests may go to an origin's address.\n# TYPE edge_origin_address_healthy gauge\n");
        for (origin, endpoint) in &endpoints {
            let report = endpoint.report();
            let _ = writeln!(
                out,
                "edge_origin_address_healthy{{origin=\"{}\",address=\"{}\"}} {}",
                crate::metrics::label(origin),
                crate::metrics::label(&report.address),
                u8::from(report.healthy)
            );
        }
        out.push_str("# HELP edge_origin_address_ejections_total Connection failures that took an origin's address out of rotation.\n# TYPE edge_origin_address_ejections_total counter\n");
        for (origin, endpoint) in &endpoints {
            let report = endpoint.report();
            let _ = writeln!(
                out,
                "edge_origin_address_ejections_total{{origin=\"{}\",address=\"{}\"}} {}",
                crate::metrics::label(origin),
                crate::metrics::label(&report.address),
                report.ejections
            );
        }
        out.push_str("# HELP edge_origin_health_checks_total Active health checks of an origin's address, by result.\n# TYPE edge_origin_health_checks_total counter\n");
        for (origin, endpoint) in endpoints.iter().filter(|(_, e)| e.report().checked) {
            let report = endpoint.report();
            for (result, n) in [
                ("passed", report.checks_passed),
                ("failed", report.checks_failed),
            ] {
                let _ = writeln!(
                    out,
                    "edge_origin_health_checks_total{{origin=\"{}\",address=\"{}\",result=\"{result}\"}} {n}",
                    crate::metrics::label(origin),
                    crate::metrics::label(&report.address),
                );
            }
        }
    }

    /// A pool of its own for a dynamic origin (see [`dynamic`]): its
    /// connections go only to the addresses `guard` lets through.
    pub fn dynamic_pool(&self, origin: &Origin, guard: Guard) -> PoolClient {
        self.build_pool(origin, guard, None)
    }

    fn build_pool(
        &self,
        origin: &Origin,
        guard: Guard,
        address: Option<&http::uri::Authority>,
    ) -> PoolClient {
        let mut http = HttpConnector::new_with_resolver(Resolver::new(guard));
        http.set_connect_timeout(Some(origin.connect_timeout));
        http.set_nodelay(true);
        http.enforce_http(false);
        http.set_keepalive(Some(Duration::from_secs(60)));
        // The version by ALPN over TLS: `h2` only, `http/1.1` only, or
        // both offered (`auto`). In clear, `h2` is prior knowledge (h2c)
        // and `auto` HTTP/1.1.
        let builder = HttpsConnectorBuilder::new()
            .with_tls_config(self.tls.clone())
            .https_or_http();
        let to = address.and_then(|a| format!("http://{a}").parse().ok());
        let http = Pinned { inner: http, to };
        let https = match origin.version {
            ProtocolVersion::H1 => builder.enable_http1().wrap_connector(http),
            ProtocolVersion::H2 => builder.enable_http2().wrap_connector(http),
            ProtocolVersion::Auto => builder.enable_all_versions().wrap_connector(http),
        };
        Client::builder(TokioExecutor::new())
            .pool_idle_timeout(origin.keepalive_timeout)
            .pool_max_idle_per_host(1024)
            .http2_only(origin.version == ProtocolVersion::H2)
            .timer(hyper_util::rt::TokioTimer::new())
            .build(https)
    }

    /// Sends `req` on `client` and waits for the response head.
    /// `read_timeout` bounds the whole wait for the head (a connection made
    /// for this request included); `connect_timeout` bounds the connect
    /// alone, so with the defaults (10 s and 30 s) a dead origin is reported
    /// as a connect timeout first.
    ///
    /// A request without a body and with an idempotent method is sent once
    /// more when the origin closed a pooled connection before answering (the
    /// keep-alive race: the origin timed the idle connection out just as the
    /// request went out on it).
    async fn send_on(
        client: &PoolClient,
        origin: &Origin,
        mut req: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, OriginError> {
        join_cookie_fields(req.headers_mut());
        let deadline = tokio::time::Instant::now() + origin.read_timeout;
        let replay = (matches!(req.body(), UpstreamBody::Empty)
            && matches!(
                *req.method(),
                Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
            ))
        .then(|| {
            (
                req.method().clone(),
                req.uri().clone(),
                req.headers().clone(),
            )
        });
        let first = tokio::time::timeout_at(deadline, client.request(req)).await;
        let outcome = match (first, replay) {
            (Ok(Err(err)), Some((method, uri, headers))) if closed_before_answer(&err) => {
                tracing::debug!(origin = %origin.id, error = %err, "pooled connection closed by the origin; sending again");
                let mut again = Request::new(UpstreamBody::Empty);
                *again.method_mut() = method;
                *again.uri_mut() = uri;
                *again.headers_mut() = headers;
                tokio::time::timeout_at(deadline, client.request(again)).await
            }
            (first, _) => first,
        };
        match outcome {
            Err(_) => Err(OriginError::Timeout {
                origin: origin.id.clone(),
                timeout: origin.read_timeout,
            }),
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(err)) => Err(classify(&origin.id, origin.connect_timeout, &err)),
        }
    }
}

/// Each of `origin`'s endpoints: the address it dials (none: the origin's
/// own name) and its identity in the fetcher's registry.
fn endpoint_keys(
    origin: &Origin,
) -> impl Iterator<Item = (Option<&http::uri::Authority>, EndpointKey)> {
    let addresses: Vec<Option<&http::uri::Authority>> = if origin.addresses.is_empty() {
        vec![None]
    } else {
        origin.addresses.iter().map(Some).collect()
    };
    addresses.into_iter().map(move |address| {
        let key = EndpointKey {
            pool: PoolKey::of(origin, address),
            check: origin.health_check.clone(),
        };
        (address, key)
    })
}

/// Joins several `Cookie` fields into one with `; ` (RFC 9113 8.2.3): an
/// HTTP/2 viewer may send each cookie in a field of its own, and origins
/// are spoken to in HTTP/1.1, where there is one `Cookie` field (RFC 6265
/// 5.4) and many servers read only the first.
fn join_cookie_fields(headers: &mut http::HeaderMap) {
    let cookies: Vec<&[u8]> = headers
        .get_all(http::header::COOKIE)
        .iter()
        .map(http::HeaderValue::as_bytes)
        .collect();
    if cookies.len() < 2 {
        return;
    }
    if let Ok(joined) = http::HeaderValue::from_bytes(&cookies.join(&b"; "[..])) {
        headers.insert(http::header::COOKIE, joined);
    }
}

impl Origins for OriginFetcher {
    type Body = Incoming;

    /// Sends on the target's pool, with the timeouts and the one replay
    /// `send_on` describes.
    fn send(
        &self,
        to: OriginTarget<'_>,
        req: Request<UpstreamBody>,
    ) -> impl Future<Output = Result<Response<Incoming>, OriginError>> + Send {
        Self::send_on(to.pool, to.origin, req)
    }
}

impl Default for OriginFetcher {
    fn default() -> Self {
        Self::new()
    }
}

fn unreachable_versions() -> rustls::ConfigBuilder<rustls::ClientConfig, rustls::WantsVerifier> {
    // ring supports every default protocol version; this cannot be reached.
    panic!("the ring provider does not support TLS 1.2/1.3")
}

/// Whether a connection closed before any of the response arrived.
fn closed_before_answer(err: &hyper_util::client::legacy::Error) -> bool {
    let mut source = err.source();
    while let Some(s) = source {
        if s.downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_incomplete_message)
        {
            return true;
        }
        source = s.source();
    }
    false
}

/// Sorts a client error into connect failure, timeout or protocol error.
fn classify(
    origin: &str,
    connect_timeout: Duration,
    err: &hyper_util::client::legacy::Error,
) -> OriginError {
    let mut reason = err.to_string();
    let mut source = err.source();
    let mut timed_out = false;
    let mut tls = None;
    while let Some(s) = source {
        reason = format!("{reason}: {s}");
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            timed_out |= io.kind() == std::io::ErrorKind::TimedOut;
        }
        // I/O errors wrap the TLS error, sometimes twice, and their `source`
        // skips the wrapped error itself: unwrap them by hand.
        let mut inner: &(dyn std::error::Error + 'static) = s;
        while let Some(wrapped) = inner
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            inner = wrapped;
        }
        if let Some(t) = inner.downcast_ref::<rustls::Error>() {
            tls = Some(t.to_string());
        }
        source = s.source();
    }
    if let Some(tls) = tls {
        return OriginError::Tls {
            origin: origin.to_owned(),
            reason: tls,
        };
    }
    if err.is_connect() {
        if timed_out {
            OriginError::Timeout {
                origin: origin.to_owned(),
                timeout: connect_timeout,
            }
        } else {
            OriginError::Connect {
                origin: origin.to_owned(),
                reason,
            }
        }
    } else {
        OriginError::Protocol {
            origin: origin.to_owned(),
            reason,
        }
    }
}
