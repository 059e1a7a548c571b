//! The per-request pipeline: the steps of DESIGN.md's "request's way through the host".
//!
//! Each step is marked with its number. Hook steps (4, 6, 8, 10) are no-ops for a
//! behavior without a hook on that event; step 2 is one for a distribution
//! without a continuous-deployment policy sending viewers elsewhere.

pub mod body;
pub mod deploy;
pub mod headers;
pub mod routing;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{
    AGE, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, HOST, HeaderName, HeaderValue, SET_COOKIE, VIA,
};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use http_body::Body as _;
use hyper::body::Incoming;
use tracing::Instrument as _;

use crate::cache::freshness::Freshness;
use crate::cache::{self, CacheStatus, CachedObject, SharedCache};
use crate::config::{Behavior, Target};
use crate::error::ProxyError;
use crate::metrics::Metrics;
use crate::origin::{OriginError, OriginFetcher, UpstreamBody};
use crate::wasm::{self, BoundHook, HookRuntime, KvData, RequestAction, convert};
use body::{EdgeBody, OriginBody, Tee};
use deploy::ArmStats;
use routing::{BehaviorHooks, Routing, ServedDistribution};

static X_CACHE: HeaderName = HeaderName::from_static("x-cache");
static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-edge-request-id");

static NO_HOOKS: BehaviorHooks = BehaviorHooks {
    viewer_request: None,
    origin_request: None,
    origin_response: None,
    viewer_response: None,
};

/// The proxy shared by every viewer connection.
#[derive(Debug)]
pub struct Proxy {
    routing: Arc<ArcSwap<Routing>>,
    cache: SharedCache,
    metrics: Arc<Metrics>,
    hooks: Arc<HookRuntime>,
    kv: Arc<ArcSwap<KvData>>,
    /// `1.1 <host id> (edge)`.
    via: HeaderValue,
}

/// Per-request state carried through the steps.
struct RequestCtx {
    request_id: String,
    client: SocketAddr,
    cache_status: CacheStatus,
    /// Step 2's choice: served by the staging distribution.
    staging: bool,
    /// The staging arm's counters, when an automatic gate watches it.
    gate: Option<Arc<ArmStats>>,
    /// The sticky cookie to set on the response.
    sticky: Option<HeaderValue>,
    /// The distribution the viewer asked for (the primary of a staging arm).
    primary_id: Option<Arc<str>>,
}

/// The request as the steps change it.
#[derive(Debug)]
struct Exchange {
    method: Method,
    path: String,
    query: Option<String>,
    /// Hop-by-hop fields already stripped.
    headers: HeaderMap,
    /// The origin or origin group it goes to.
    target_id: String,
}

/// What a request event decided.
enum Decision {
    Forward(Exchange),
    Respond(convert::CheckedResponse),
}

impl Proxy {
    pub fn new(
        routing: Arc<ArcSwap<Routing>>,
        cache: SharedCache,
        metrics: Arc<Metrics>,
        hooks: Arc<HookRuntime>,
        kv: Arc<ArcSwap<KvData>>,
        host_id: &str,
    ) -> Self {
        let via = HeaderValue::from_str(&format!("1.1 {host_id} (edge)"))
            .unwrap_or_else(|_| HeaderValue::from_static("1.1 edge (edge)"));
        Self {
            routing,
            cache,
            metrics,
            hooks,
            kv,
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
            staging: false,
            gate: None,
            sticky: None,
            primary_id: None,
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
                let mut resp = Response::new(EdgeBody::full(err.body(&ctx.request_id)));
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
        if let Some(cookie) = ctx.sticky.take() {
            headers.append(SET_COOKIE, cookie);
        }
        let status = resp.status().as_u16();
        if let Some(gate) = &ctx.gate {
            gate.record(unix_now(), status >= 500);
        }
        self.metrics.record_response(ctx.cache_status, status);
        if ctx.staging {
            self.metrics.record_staging_response(status);
        }
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
        let mut dist = routing
            .resolve(&host)
            .ok_or_else(|| ProxyError::UnknownHost { host: host.clone() })?
            .clone();
        drop(routing);
        if !dist.config.enabled {
            return Err(ProxyError::DistributionDisabled {
                id: dist.id.to_string(),
            });
        }
        if !req.uri().path().starts_with('/') {
            return Err(ProxyError::BadTarget);
        }

        // Step 2: deployment arm. A policy may send this viewer to the staging
        // distribution, whose config serves every step from here on.
        let (parts, viewer_body) = req.into_parts();
        let mut viewer_headers = parts.headers;
        if let Some(deployment) = &dist.deployment {
            let choice = deployment.choose(&viewer_headers, unix_now());
            deploy::strip_sticky_cookie(&mut viewer_headers);
            ctx.sticky = choice.set_cookie;
            if choice.staging {
                ctx.staging = true;
                ctx.gate.clone_from(&deployment.stats);
                ctx.primary_id = Some(dist.id.clone());
                dist = deployment.staging.clone();
            }
        }
        let arm = if ctx.staging { "staging" } else { "primary" };

        // Step 3: cache behavior by path pattern.
        let (index, behavior) = dist.config.behavior_for(parts.uri.path());
        let hooks = dist.hooks.get(index).unwrap_or(&NO_HOOKS);
        let mut ex = Exchange {
            method: parts.method,
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            headers: viewer_headers,
            target_id: behavior.target_origin_id.clone(),
        };
        headers::strip_hop_by_hop(&mut ex.headers);

        // Step 4: viewer-request hook. An answer here is not cached.
        if let Some(hook) = &hooks.viewer_request {
            match self.request_hook(hook, ctx, &dist, &ex).await? {
                Decision::Forward(next) => ex = next,
                Decision::Respond(generated) => {
                    let resp = generated_response(generated);
                    return self.viewer_response(hooks, ctx, &dist, &ex, resp).await;
                }
            }
        }

        let cacheable = matches!(ex.method, Method::GET | Method::HEAD);
        let (query, cookies) = if cacheable {
            (
                cache::key::filter_query(ex.query.as_deref(), &behavior.cache_key)
                    .map(|q| q.into_owned()),
                cache::key::filter_cookies(&ex.headers, &behavior.cache_key),
            )
        } else {
            (ex.query.clone(), None)
        };

        // Step 5: cache lookup.
        let key = cacheable.then(|| {
            cache::key::build(
                cache::key::KeyParts {
                    distribution_id: &dist.id,
                    origin_id: &ex.target_id,
                    arm,
                    method: &ex.method,
                    host: &host,
                    path: &ex.path,
                },
                query.as_deref(),
                cookies.as_deref(),
                &ex.headers,
                &behavior.cache_key,
            )
        });
        if let Some(obj) = key.as_deref().and_then(|k| self.cache.get(k)) {
            ctx.cache_status = CacheStatus::Hit;
            let resp = hit_response(&obj, ex.method == Method::HEAD);
            return self.viewer_response(hooks, ctx, &dist, &ex, resp).await;
        }

        // What a fetch from here on stores is dropped by an invalidation that
        // comes before it completes.
        let generation = self.cache.generation();

        // The request as the origin will see it.
        let mut out_headers = ex.headers.clone();
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
        let mut out = Exchange {
            method: ex.method.clone(),
            path: ex.path.clone(),
            query,
            headers: out_headers,
            target_id: ex.target_id.clone(),
        };

        // Step 6: origin-request hook (misses only). An answer here is cached
        // like an origin response.
        if let Some(hook) = &hooks.origin_request {
            match self.request_hook(hook, ctx, &dist, &out).await? {
                Decision::Forward(next) => out = next,
                Decision::Respond(generated) => {
                    if let Some(key) = key {
                        let freshness =
                            self.freshness(&ex, generated.status, &generated.headers, behavior);
                        if let (Some(freshness), Some(body)) = (freshness, &generated.body) {
                            self.store_now(
                                key,
                                Stored {
                                    dist: &dist,
                                    ctx,
                                    path: &ex.path,
                                    generation,
                                },
                                generated.status,
                                generated.headers.clone(),
                                body.clone(),
                                freshness,
                            );
                        }
                    }
                    let resp = generated_response(generated);
                    return self.viewer_response(hooks, ctx, &dist, &ex, resp).await;
                }
            }
        }
        out.headers.append(VIA, self.via.clone());

        // Step 7: fetch from the origin (or the group, failing over).
        let (resp, read_timeout) = self.fetch(&dist, &out, viewer_body, ctx).await?;

        // Step 8: origin-response hook (misses only).
        let (mut head, incoming) = resp.into_parts();
        headers::strip_hop_by_hop(&mut head.headers);
        let mut replaced = None;
        if let Some(hook) = &hooks.origin_response {
            let checked = self
                .response_hook(hook, ctx, &dist, &out, head.status, &head.headers)
                .await?;
            head.status = checked.status;
            head.headers = checked.headers;
            if let Some(body) = checked.body {
                head.headers.remove(CONTENT_LENGTH);
                replaced = Some(body);
            }
        }

        // Step 9: store when the response allows it (a streamed body is copied
        // into the cache as it passes).
        let freshness = key
            .as_ref()
            .and_then(|_| self.freshness(&ex, head.status, &head.headers, behavior));
        let body = match (replaced, key, freshness) {
            (Some(body), Some(key), Some(freshness)) => {
                self.store_now(
                    key,
                    Stored {
                        dist: &dist,
                        ctx,
                        path: &ex.path,
                        generation,
                    },
                    head.status,
                    head.headers.clone(),
                    body.clone(),
                    freshness,
                );
                EdgeBody::full(body)
            }
            (Some(body), _, _) => EdgeBody::full(body),
            (None, key, freshness) => {
                let stored = Stored {
                    dist: &dist,
                    ctx,
                    path: &ex.path,
                    generation,
                };
                let tee = key
                    .zip(freshness)
                    .and_then(|(key, freshness)| self.tee(&ex, &head, &stored, key, freshness));
                if ex.method == Method::HEAD {
                    // No body follows a HEAD response: the exchange is complete now.
                    if let Some(tee) = tee {
                        tee.complete_empty();
                    }
                    EdgeBody::Empty
                } else {
                    EdgeBody::Origin(Box::new(OriginBody::new(incoming, read_timeout, tee)))
                }
            }
        };
        self.viewer_response(hooks, ctx, &dist, &ex, Response::from_parts(head, body))
            .await
    }

    /// Step 7: sends `out` to its target, trying a group's members in order.
    async fn fetch(
        &self,
        dist: &ServedDistribution,
        out: &Exchange,
        viewer_body: Incoming,
        ctx: &RequestCtx,
    ) -> Result<(Response<Incoming>, std::time::Duration), ProxyError> {
        let target =
            dist.config.targets.get(&out.target_id).ok_or_else(|| {
                ProxyError::Internal(format!("target {} vanished", out.target_id))
            })?;
        let replayable = viewer_body.is_end_stream()
            && matches!(out.method, Method::GET | Method::HEAD | Method::OPTIONS);
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
        for (n, &idx) in members.iter().enumerate() {
            let origin = &dist.config.origins[idx];
            let uri = origin_uri(origin, &out.path, out.query.as_deref())?;
            let mut builder = Request::builder().method(out.method.clone()).uri(uri);
            if let Some(h) = builder.headers_mut() {
                h.clone_from(&out.headers);
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
                Ok(resp) => return Ok((resp, origin.read_timeout)),
                Err(err) => {
                    self.metrics.record_origin_error();
                    tracing::warn!(request_id = %ctx.request_id, origin = %origin.id, error = %err, "origin fetch failed");
                    last_err = Some(err);
                }
            }
        }
        Err(last_err
            .unwrap_or_else(|| OriginError::Protocol {
                origin: out.target_id.clone(),
                reason: "no origin answered".to_owned(),
            })
            .into())
    }

    fn context(
        &self,
        hook: &BoundHook,
        dist: &ServedDistribution,
        ctx: &RequestCtx,
        target: &str,
    ) -> wasm::Context {
        wasm::Context {
            event: hook.event,
            distribution_id: dist.id.to_string(),
            distribution_domain: dist.domain_name.clone(),
            request_id: ctx.request_id.clone(),
            arm: if ctx.staging {
                wasm::bindings::Arm::Staging
            } else {
                wasm::bindings::Arm::Primary
            },
            origin_id: target.to_owned(),
        }
    }

    /// Steps 4 and 6: runs a request event and checks what it returned.
    async fn request_hook(
        &self,
        hook: &BoundHook,
        ctx: &RequestCtx,
        dist: &ServedDistribution,
        ex: &Exchange,
    ) -> Result<Decision, ProxyError> {
        let context = self.context(hook, dist, ctx, &ex.target_id);
        let request = convert::request_to_wit(
            &ex.method,
            &ex.path,
            ex.query.as_deref(),
            &ex.headers,
            ctx.client.ip(),
        );
        let (action, _logs) = self
            .hooks
            .request_event(
                hook,
                &ctx.request_id,
                self.kv.load_full(),
                &context,
                &request,
            )
            .await?;
        let invalid = |reason: String| hook.invalid_output(reason);
        match action {
            RequestAction::Forward(forward) => {
                let checked =
                    convert::request_from_wit(forward.request, &ex.headers).map_err(invalid)?;
                let target_id = match forward.origin_id {
                    None => ex.target_id.clone(),
                    Some(id) if dist.config.targets.contains_key(&id) => id,
                    Some(id) => {
                        return Err(invalid(format!(
                            "origin id {id:?} names no origin or origin group of the distribution"
                        ))
                        .into());
                    }
                };
                Ok(Decision::Forward(Exchange {
                    method: checked.method,
                    path: checked.path,
                    query: checked.query,
                    headers: checked.headers,
                    target_id,
                }))
            }
            RequestAction::Respond(resp) => {
                let checked = convert::response_from_wit(
                    resp,
                    &HeaderMap::new(),
                    convert::max_body(hook.event),
                )
                .map_err(invalid)?;
                Ok(Decision::Respond(checked))
            }
        }
    }

    /// Steps 8 and 10: runs a response event on a status and headers.
    async fn response_hook(
        &self,
        hook: &BoundHook,
        ctx: &RequestCtx,
        dist: &ServedDistribution,
        ex: &Exchange,
        status: StatusCode,
        headers: &HeaderMap,
    ) -> Result<convert::CheckedResponse, ProxyError> {
        let context = self.context(hook, dist, ctx, &ex.target_id);
        let request = convert::request_to_wit(
            &ex.method,
            &ex.path,
            ex.query.as_deref(),
            &ex.headers,
            ctx.client.ip(),
        );
        let response = convert::response_to_wit(status, headers, None);
        let (resp, _logs) = self
            .hooks
            .response_event(
                hook,
                &ctx.request_id,
                self.kv.load_full(),
                &context,
                &request,
                &response,
            )
            .await?;
        convert::response_from_wit(resp, headers, convert::max_body(hook.event))
            .map_err(|reason| hook.invalid_output(reason).into())
    }

    /// Step 10: the viewer-response hook, on hits, misses and generated
    /// responses. It may change headers and the body, not the status.
    async fn viewer_response(
        &self,
        hooks: &BehaviorHooks,
        ctx: &RequestCtx,
        dist: &ServedDistribution,
        ex: &Exchange,
        resp: Response<EdgeBody>,
    ) -> Result<Response<EdgeBody>, ProxyError> {
        let Some(hook) = &hooks.viewer_response else {
            return Ok(resp);
        };
        let (mut head, body) = resp.into_parts();
        let checked = self
            .response_hook(hook, ctx, dist, ex, head.status, &head.headers)
            .await?;
        if checked.status != head.status {
            tracing::debug!(request_id = %ctx.request_id, hook = %hook.label(), "viewer-response cannot change the status; kept {}", head.status);
        }
        head.headers = checked.headers;
        let body = match checked.body {
            Some(bytes) => {
                head.headers.remove(CONTENT_LENGTH);
                EdgeBody::full(bytes)
            }
            None => body,
        };
        Ok(Response::from_parts(head, body))
    }

    /// Step 9's decision: whether and how long a response may be stored.
    fn freshness(
        &self,
        ex: &Exchange,
        status: StatusCode,
        headers: &HeaderMap,
        behavior: &Behavior,
    ) -> Option<Freshness> {
        cache::freshness::decide(
            &ex.method,
            &ex.headers,
            status,
            headers,
            behavior.ttl,
            SystemTime::now(),
        )
    }

    /// Stores a body that is already whole.
    fn store_now(
        &self,
        key: String,
        stored: Stored<'_>,
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
        freshness: Freshness,
    ) {
        self.cache.insert(
            key.into(),
            CachedObject {
                status,
                headers,
                body,
                stored_at: Instant::now(),
                initial_age: freshness.initial_age,
                ttl: freshness.ttl,
                distribution_id: stored.dist.id.clone(),
                primary_id: stored.primary_id(),
                path: stored.path.into(),
            },
            stored.generation,
        );
    }

    /// A tee that stores a streamed body once it has passed whole.
    fn tee(
        &self,
        ex: &Exchange,
        head: &http::response::Parts,
        stored: &Stored<'_>,
        key: String,
        freshness: Freshness,
    ) -> Option<Tee> {
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
        let expected_len = if ex.method == Method::HEAD {
            Some(0)
        } else {
            expected
        };
        let headers = head.headers.clone();
        let distribution_id = stored.dist.id.clone();
        let primary_id = stored.primary_id();
        let generation = stored.generation;
        let path = ex.path.clone();
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
                        primary_id,
                        path: path.into(),
                    },
                    generation,
                );
            }),
        ))
    }
}

/// Where a stored object came from: for its invalidation tags and the
/// invalidation generation it was fetched under.
struct Stored<'a> {
    dist: &'a ServedDistribution,
    ctx: &'a RequestCtx,
    path: &'a str,
    generation: u64,
}

impl Stored<'_> {
    fn primary_id(&self) -> Arc<str> {
        self.ctx
            .primary_id
            .clone()
            .unwrap_or_else(|| self.dist.id.clone())
    }
}

/// The current Unix second.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A response a hook generated.
fn generated_response(generated: convert::CheckedResponse) -> Response<EdgeBody> {
    let mut resp = Response::new(generated.body.map_or(EdgeBody::Empty, EdgeBody::full));
    *resp.status_mut() = generated.status;
    *resp.headers_mut() = generated.headers;
    resp.headers_mut().remove(CONTENT_LENGTH);
    resp
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
