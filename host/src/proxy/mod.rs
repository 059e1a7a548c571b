//! The per-request pipeline: the steps of DESIGN.md's "request's way through the host".
//!
//! Steps 1 (resolve), 3 (behavior), 5 (cache lookup), 7 (origin fetch), 9 (store)
//! and 11 (respond) run here. Step 2 (deployment arm) is fixed to `primary` and
//! steps 4, 6, 8 and 10 (hooks) are marked where they run; both come with their
//! features, each a no-op until configured.

pub mod body;
pub mod headers;
pub mod routing;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{AGE, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, HOST, HeaderName, HeaderValue, VIA};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body::Body as _;
use hyper::body::Incoming;
use tracing::Instrument as _;

use crate::cache::{self, CacheStatus, CachedObject, SharedCache};
use crate::config::{Behavior, Target};
use crate::error::ProxyError;
use crate::metrics::Metrics;
use crate::origin::{OriginError, OriginFetcher, UpstreamBody};
use body::{EdgeBody, OriginBody, Tee};
use routing::{Routing, ServedDistribution};

static X_CACHE: HeaderName = HeaderName::from_static("x-cache");
static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-edge-request-id");

/// The arm a viewer is on; only `primary` until continuous deployment lands.
const PRIMARY_ARM: &str = "primary";

/// The proxy shared by every viewer connection.
#[derive(Debug)]
pub struct Proxy {
    routing: Arc<ArcSwap<Routing>>,
    cache: SharedCache,
    metrics: Arc<Metrics>,
    /// `1.1 <host id> (edge)`.
    via: HeaderValue,
}

/// Per-request state carried through the steps.
struct RequestCtx {
    request_id: String,
    client: SocketAddr,
    cache_status: CacheStatus,
}

impl Proxy {
    pub fn new(
        routing: Arc<ArcSwap<Routing>>,
        cache: SharedCache,
        metrics: Arc<Metrics>,
        host_id: &str,
    ) -> Self {
        let via = HeaderValue::from_str(&format!("1.1 {host_id} (edge)"))
            .unwrap_or_else(|_| HeaderValue::from_static("1.1 edge (edge)"));
        Self {
            routing,
            cache,
            metrics,
            via,
        }
    }

    /// Serves one viewer request; never fails (errors become responses).
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        client: SocketAddr,
    ) -> Result<Response<EdgeBody>, Infallible> {
        let mut ctx = RequestCtx {
            request_id: crate::ids::request_id(),
            client,
            cache_status: CacheStatus::Miss,
        };
        let span = tracing::debug_span!("request", id = %ctx.request_id, method = %req.method(), uri = %req.uri());
        let result = self.serve(req, &mut ctx).instrument(span).await;
        let mut resp = match result {
            Ok(resp) => resp,
            Err(err) => {
                ctx.cache_status = CacheStatus::Error;
                let (status, _) = err.status_and_code();
                let source = err.source_of();
                if source == crate::error::ErrorSource::Viewer {
                    tracing::debug!(request_id = %ctx.request_id, source = source.as_str(), status = status.as_u16(), error = %err, "request refused");
                } else {
                    tracing::warn!(request_id = %ctx.request_id, source = source.as_str(), status = status.as_u16(), error = %err, "request failed");
                }
                let mut resp = Response::new(EdgeBody::full(err.body()));
                *resp.status_mut() = status;
                resp.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                resp
            }
        };
        // Step 11: the headers every response carries.
        let headers = resp.headers_mut();
        headers.insert(&X_CACHE, ctx.cache_status.header_value());
        headers.append(VIA, self.via.clone());
        if let Ok(id) = HeaderValue::from_str(&ctx.request_id) {
            headers.insert(&X_REQUEST_ID, id);
        }
        self.metrics
            .record_response(ctx.cache_status, resp.status().as_u16());
        Ok(resp)
    }

    async fn serve(
        &self,
        req: Request<Incoming>,
        ctx: &mut RequestCtx,
    ) -> Result<Response<EdgeBody>, ProxyError> {
        // Step 1: resolve the distribution by Host.
        let host = viewer_host(&req).ok_or(ProxyError::MissingHost)?;
        let routing = self.routing.load();
        let dist = routing
            .resolve(&host)
            .ok_or_else(|| ProxyError::UnknownHost { host: host.clone() })?
            .clone();
        drop(routing);
        if !dist.config.enabled {
            return Err(ProxyError::DistributionDisabled {
                id: dist.id.to_string(),
            });
        }
        if req.uri().path().is_empty() || !req.uri().path().starts_with('/') {
            return Err(ProxyError::BadTarget);
        }

        // Step 2: deployment arm (continuous deployment picks it; primary for now).
        let arm = PRIMARY_ARM;

        // Step 3: cache behavior by path pattern.
        let behavior = dist.config.behavior_for(req.uri().path());

        // Step 4: viewer-request hook runs here once hooks are configured.
        let target_id = behavior.target_origin_id.as_str();
        let target = dist
            .config
            .targets
            .get(target_id)
            .ok_or_else(|| ProxyError::Internal(format!("target {target_id} vanished")))?;

        let cacheable = matches!(*req.method(), Method::GET | Method::HEAD);
        let query = if cacheable {
            cache::key::filter_query(req.uri().query(), &behavior.cache_key).map(|q| q.into_owned())
        } else {
            req.uri().query().map(str::to_owned)
        };
        let cookies = if cacheable {
            cache::key::filter_cookies(req.headers(), &behavior.cache_key)
        } else {
            None
        };

        // Step 5: cache lookup.
        let key = cacheable.then(|| {
            cache::key::build(
                cache::key::KeyParts {
                    distribution_id: &dist.id,
                    origin_id: target_id,
                    arm,
                    method: req.method(),
                    host: &host,
                    path: req.uri().path(),
                },
                query.as_deref(),
                cookies.as_deref(),
                req.headers(),
                &behavior.cache_key,
            )
        });
        if let Some(obj) = key.as_deref().and_then(|k| self.cache.get(k)) {
            ctx.cache_status = CacheStatus::Hit;
            // Step 10: viewer-response hook runs here once configured.
            return Ok(hit_response(&obj, req.method() == Method::HEAD));
        }

        // Step 6: origin-request hook runs here (misses only) once configured.
        // Step 7: fetch from the origin (or the group, failing over).
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let (parts, viewer_body) = req.into_parts();
        let mut out_headers = parts.headers.clone();
        headers::strip_hop_by_hop(&mut out_headers);
        out_headers.remove(HOST);
        if cacheable {
            out_headers.remove(COOKIE);
            if let Some(v) = cookies
                .as_deref()
                .and_then(|c| HeaderValue::from_str(c).ok())
            {
                out_headers.insert(COOKIE, v);
            }
        }
        headers::append_forwarded_for(&mut out_headers, ctx.client.ip());
        out_headers.append(VIA, self.via.clone());

        let replayable = viewer_body.is_end_stream()
            && matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
        let mut viewer_body = Some(viewer_body);
        let members: &[usize] = match target {
            Target::Origin(i) => std::slice::from_ref(i),
            Target::Group { members, .. } if replayable => members,
            Target::Group { members, .. } => &members[..1],
        };
        let failover_codes: &[u16] = match target {
            Target::Group {
                failover_status_codes,
                ..
            } => failover_status_codes,
            Target::Origin(_) => &[],
        };

        let mut last_err = None;
        let mut fetched = None;
        for (n, &idx) in members.iter().enumerate() {
            let origin = &dist.config.origins[idx];
            let uri = origin_uri(origin, &path, query.as_deref())?;
            let mut builder = Request::builder().method(method.clone()).uri(uri);
            if let Some(h) = builder.headers_mut() {
                h.clone_from(&out_headers);
                h.insert(HOST, origin.host_header.clone());
                for (name, value) in &origin.custom_headers {
                    h.insert(name, value.clone());
                }
            }
            let body = if replayable {
                UpstreamBody::Empty
            } else {
                viewer_body
                    .take()
                    .map_or(UpstreamBody::Empty, UpstreamBody::Viewer)
            };
            let upstream = builder
                .body(body)
                .map_err(|e| ProxyError::Internal(format!("building origin request: {e}")))?;
            self.metrics.record_origin_request();
            let last = n + 1 == members.len();
            match OriginFetcher::send(&dist.pools[idx], origin, upstream).await {
                Ok(resp) if !last && failover_codes.contains(&resp.status().as_u16()) => {
                    tracing::info!(request_id = %ctx.request_id, origin = %origin.id, status = resp.status().as_u16(), "failing over");
                }
                Ok(resp) => {
                    fetched = Some((resp, origin.read_timeout));
                    break;
                }
                Err(err) => {
                    self.metrics.record_origin_error();
                    tracing::warn!(request_id = %ctx.request_id, origin = %origin.id, error = %err, "origin fetch failed");
                    last_err = Some(err);
                }
            }
        }
        let Some((resp, read_timeout)) = fetched else {
            return Err(last_err
                .unwrap_or_else(|| OriginError::Protocol {
                    origin: target_id.to_owned(),
                    reason: "no origin answered".to_owned(),
                })
                .into());
        };

        // Step 8: origin-response hook runs here (misses only) once configured.
        let (mut head, incoming) = resp.into_parts();
        headers::strip_hop_by_hop(&mut head.headers);

        // Step 9: store when the response allows it (the body is copied as it streams).
        let tee = key.and_then(|key| {
            self.storable(&method, &parts.headers, &head, behavior, &dist, key, path)
        });
        // Step 10: viewer-response hook runs here once configured.
        let body = if method == Method::HEAD {
            // No body follows a HEAD response: the exchange is complete now.
            if let Some(tee) = tee {
                tee.complete_empty();
            }
            EdgeBody::Empty
        } else {
            EdgeBody::Origin(Box::new(OriginBody::new(incoming, read_timeout, tee)))
        };
        Ok(Response::from_parts(head, body))
    }

    /// A tee that stores the response once its body has streamed, or `None` when
    /// the response may not be stored.
    #[expect(
        clippy::too_many_arguments,
        reason = "one call site, every part is distinct"
    )]
    fn storable(
        &self,
        method: &Method,
        req_headers: &http::HeaderMap,
        head: &http::response::Parts,
        behavior: &Behavior,
        dist: &ServedDistribution,
        key: String,
        path: String,
    ) -> Option<Tee> {
        let freshness = cache::freshness::decide(
            method,
            req_headers,
            head.status,
            &head.headers,
            behavior.ttl,
            SystemTime::now(),
        )?;
        let limit = usize::try_from(self.cache.max_object_bytes()).unwrap_or(usize::MAX);
        let expected = head
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if expected.is_some_and(|len| len > limit) {
            return None;
        }
        let cache = self.cache.clone();
        let status = head.status;
        // A HEAD response has no body whatever its content-length says.
        let expected_len = if *method == Method::HEAD {
            Some(0)
        } else {
            expected
        };
        let headers = head.headers.clone();
        let distribution_id = dist.id.clone();
        let arrived = Instant::now();
        Some(Tee::new(
            limit,
            expected,
            Box::new(move |body: Bytes| {
                if expected_len.is_some_and(|len| len != body.len()) {
                    return;
                }
                cache.insert(
                    key.into(),
                    CachedObject {
                        status,
                        headers,
                        body,
                        stored_at: arrived,
                        initial_age: freshness.initial_age,
                        ttl: freshness.ttl,
                        distribution_id,
                        path: path.into(),
                    },
                );
            }),
        ))
    }
}

/// The Host the viewer asked for: lower-case, without a port.
fn viewer_host<B>(req: &Request<B>) -> Option<String> {
    let raw = req
        .headers()
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().host())?;
    let host = if raw.starts_with('[') {
        raw.find(']').map_or(raw, |i| &raw[..=i])
    } else {
        match raw.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => raw,
        }
    };
    let host = host.trim_end_matches('.');
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

fn origin_uri(
    origin: &crate::config::Origin,
    path: &str,
    query: Option<&str>,
) -> Result<Uri, ProxyError> {
    let mut pq = String::with_capacity(
        origin.origin_path.len() + path.len() + 1 + query.map_or(0, str::len),
    );
    pq.push_str(&origin.origin_path);
    pq.push_str(path);
    if let Some(q) = query {
        pq.push('?');
        pq.push_str(q);
    }
    Uri::builder()
        .scheme(origin.scheme.clone())
        .authority(origin.authority.clone())
        .path_and_query(pq)
        .build()
        .map_err(|_| ProxyError::BadTarget)
}

fn hit_response(obj: &CachedObject, head: bool) -> Response<EdgeBody> {
    let body = if head {
        EdgeBody::Empty
    } else {
        EdgeBody::full(obj.body.clone())
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = obj.status;
    let headers = resp.headers_mut();
    headers.clone_from(&obj.headers);
    let age = obj.age(Instant::now()).as_secs();
    headers.insert(AGE, HeaderValue::from(age));
    resp
}

/// A JSON error response outside the proxy pipeline (e.g. a listener fault).
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response<EdgeBody> {
    let mut resp = Response::new(EdgeBody::full(crate::error::json_error(code, message)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
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
        viewer_host(&req)
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
    }
}
