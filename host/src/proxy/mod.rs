//! The per-request pipeline: the numbered steps of README's "How a request is served".
//!
//! Each step is marked with its number. Hook steps (4, 6, 8, 10) are no-ops for a
//! behavior without a hook on that event; step 2 is one for a distribution
//! without a continuous-deployment policy sending viewers elsewhere.

pub mod body;
pub mod deploy;
pub mod headers;
pub mod routing;
pub mod stored;

use std::borrow::Cow;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{
    CONTENT_LENGTH, CONTENT_LOCATION, CONTENT_TYPE, COOKIE, HOST, HeaderName, HeaderValue,
    IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_UNMODIFIED_SINCE, LOCATION, RANGE, REFERER,
    SET_COOKIE, USER_AGENT, VIA,
};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use http_body::Body as _;
use hyper::body::Incoming;
use tracing::Instrument as _;

use crate::access_log::{self, AccessLog};
use crate::cache::flight::{self, Flight, FlightGuard, Landing};
use crate::cache::freshness::Freshness;
use crate::cache::{self, CacheStatus, CachedObject, SharedCache, Stamp, Tags};
use crate::config::raw::Names;
use crate::config::{Behavior, Target};
use crate::error::ProxyError;
use crate::metrics::ArmStats;
use crate::metrics::{DistributionStats, Metrics};
use crate::origin::{OriginError, OriginFetcher, UpstreamBody};
use crate::tls::ServedCertificate;
use crate::wasm::{self, BoundHook, HookRuntime, KvData, RequestAction, convert};
use body::{EdgeBody, LoggedBody, OriginBody, Tee};
use routing::{BehaviorHooks, Routing, ServedDistribution};

static X_CACHE: HeaderName = HeaderName::from_static("x-cache");
static SURROGATE_CAPABILITY: HeaderName = HeaderName::from_static("surrogate-capability");
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
    /// This proxy, for work it spawns (background revalidation).
    this: Weak<Proxy>,
    /// Where distributions with logging on write their access logs.
    access_log: Option<Arc<AccessLog>>,
    /// `--host-id`, the access log's `edge_id`.
    host_id: String,
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
    /// When the request arrived.
    started: Instant,
    /// Whether it came over TLS.
    tls: bool,
    /// Microseconds spent in hooks.
    hook_micros: AtomicU64,
    /// The access-log record, when the distribution logs.
    log: Option<Box<access_log::Record>>,
    /// The counters of the distribution the viewer asked for.
    stats: Option<Arc<DistributionStats>>,
}

/// Marks a request that carried both `Content-Length` and `Transfer-Encoding`
/// (seen by the listener before hyper dropped one of them): it is refused.
#[derive(Debug, Clone, Copy)]
pub struct AmbiguousFraming;

/// Marks a request whose head was longer than `--max-header-bytes`, or that
/// came after one on its connection: it is refused with 431.
#[derive(Debug, Clone, Copy)]
pub struct OversizedHead;

/// How many times a request waits for another's fetch of its key before it
/// fetches on its own.
const MAX_FOLLOWS: usize = 3;

impl RequestCtx {
    fn new(client: SocketAddr, tls: bool) -> Self {
        Self {
            request_id: crate::ids::request_id(),
            client,
            cache_status: CacheStatus::Miss,
            staging: false,
            gate: None,
            sticky: None,
            primary_id: None,
            started: Instant::now(),
            tls,
            hook_micros: AtomicU64::new(0),
            log: None,
            stats: None,
        }
    }

    /// Adds the time a hook took.
    fn add_hook_time(&self, since: Instant) {
        let micros = u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.hook_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

/// The request as the steps change it.
#[derive(Debug, Clone)]
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
        access_log: Option<Arc<AccessLog>>,
    ) -> Arc<Self> {
        let via = HeaderValue::from_str(&format!("1.1 {host_id} (edge)"))
            .unwrap_or_else(|_| HeaderValue::from_static("1.1 edge (edge)"));
        Arc::new_cyclic(|this| Self {
            routing,
            cache,
            metrics,
            hooks,
            kv,
            via,
            this: this.clone(),
            access_log,
            host_id: host_id.to_owned(),
        })
    }

    /// Serves one viewer request; never fails (errors become responses).
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        client: SocketAddr,
        tls: bool,
    ) -> Result<Response<EdgeBody>, Infallible> {
        let mut ctx = RequestCtx::new(client, tls);
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
        // Step 11: the headers every response carries. Surrogate-Control is
        // addressed to this cache, not to the viewer.
        let headers = resp.headers_mut();
        headers.remove(&cache::freshness::SURROGATE_CONTROL);
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
        if let Some(stats) = &ctx.stats {
            stats.record(ctx.staging, ctx.cache_status, status);
        }
        if ctx.staging {
            self.metrics.record_staging_response(status);
        }
        if let (Some(mut record), Some(log)) = (ctx.log.take(), &self.access_log) {
            record.sc_status = status;
            record.result_type = ctx.cache_status.as_str();
            record.hook_time_ms = ctx.hook_micros.load(Ordering::Relaxed) as f64 / 1000.0;
            let pending = access_log::Pending {
                record: *record,
                started: ctx.started,
                log: log.clone(),
            };
            let (head, body) = resp.into_parts();
            resp = Response::from_parts(head, LoggedBody::wrap(body, pending));
        }
        Ok(resp)
    }

    async fn serve(
        &self,
        req: Request<Incoming>,
        ctx: &mut RequestCtx,
    ) -> Result<Response<EdgeBody>, ProxyError> {
        if req.version() == http::Version::HTTP_2 {
            check_http2(&req)?;
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
        // Step 1: resolve the distribution by Host.
        let host = viewer_host(&req)?;
        // A TLS connection serves the names of its certificate: SNI for one
        // distribution and Host for another (domain fronting) is misdirected
        // (RFC 9110 15.5.20), before any hook or origin sees the request.
        if let Some(certificate) = req.extensions().get::<ServedCertificate>()
            && !certificate.covers(&host)
        {
            return Err(ProxyError::MisdirectedRequest { host });
        }
        let routing = self.routing.load();
        let mut dist = routing
            .resolve(&host)
            .ok_or_else(|| ProxyError::UnknownHost { host: host.clone() })?
            .clone();
        drop(routing);
        ctx.stats = Some(dist.stats.clone());
        if !dist.config.enabled {
            return Err(ProxyError::DistributionDisabled {
                id: dist.id.to_string(),
            });
        }
        if !req.uri().path().starts_with('/') {
            return Err(ProxyError::BadTarget);
        }
        if dist.config.raw.logging.enabled && self.access_log.is_some() {
            ctx.log = Some(Box::new(self.log_record(&req, &dist, &host, ctx)));
        }
        // The one form of the path every step from here on sees: behavior
        // matching, hooks, the cache key and the origin. (The access log
        // keeps the path as the viewer sent it.)
        let path = crate::path::normalize(req.uri().path())?.into_owned();
        // A GET or HEAD with a body (RFC 9110 9.3.1: content with no defined
        // semantics) is refused: forwarded, it could change what the origin
        // answers for a key that does not hold it (a "fat GET").
        if matches!(*req.method(), Method::GET | Method::HEAD) && !req.body().is_end_stream() {
            return Err(ProxyError::BodyNotAllowed {
                method: req.method().clone(),
            });
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
        if let Some(record) = &mut ctx.log {
            record.arm = arm;
        }

        // Step 3: cache behavior by path pattern.
        let (index, behavior) = dist.config.behavior_for(&path);
        let hooks = dist.hooks.get(index).unwrap_or(&NO_HOOKS);
        let mut ex = Exchange {
            method: parts.method,
            path,
            query: parts.uri.query().map(str::to_owned),
            headers: viewer_headers,
            target_id: behavior.target_origin_id.clone(),
        };
        crate::fields::strip_hop_by_hop(&mut ex.headers);
        headers::strip_viewer_forwarding(
            &mut ex.headers,
            behavior.forwarding,
            &behavior.cache_key.headers,
        );

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

        if let Some(record) = &mut ctx.log {
            record.origin = Some(ex.target_id.clone());
        }
        let cacheable = matches!(ex.method, Method::GET | Method::HEAD);
        let base = cache_key(
            &dist,
            behavior,
            arm,
            &host,
            &ex,
            &ex.path,
            ex.query.as_deref(),
            &ex.target_id,
        );
        // What the origin gets: on a request the cache may store, what the
        // key keeps and what `origin_request` adds; otherwise everything.
        let (query, cookies) = if cacheable {
            let forward = &behavior.forward;
            let query = cache::key::filter_query(ex.query.as_deref(), &forward.query_strings);
            let cookies = match &forward.cookies {
                Names::All => Cookies::AsSent,
                Names::Only(names) => Cookies::Only(cache::key::filter_cookies(&ex.headers, names)),
            };
            (query.map(Cow::into_owned), cookies)
        } else {
            (ex.query.clone(), Cookies::AsSent)
        };
        let viewer = headers::Viewer {
            client: ctx.client.ip(),
            tls: ctx.tls,
            host: &host,
        };
        let out = self.origin_request(&ex, query, cookies, viewer, behavior, cacheable);
        let trip = Trip {
            dist: &dist,
            index,
            ex: &ex,
            out,
            base: None,
            stale: None,
            guard: None,
        };
        if !cacheable {
            let resp = self.to_origin(ctx, trip, Some(viewer_body)).await?;
            // RFC 9111 4.4: a write that succeeded makes what is stored for its
            // URI (and the URIs it names) out of date.
            let safe = matches!(ex.method, Method::OPTIONS | Method::TRACE);
            if !safe && (resp.status().is_success() || resp.status().is_redirection()) {
                self.invalidate_written(&dist, behavior, arm, &host, &ex, resp.headers());
            }
            return Ok(resp);
        }

        // Step 5: cache lookup. HEAD is answered from a stored GET.
        // Concurrent misses of a whole GET wait for one origin fetch.
        let collapse = ex.method == Method::GET && !ex.headers.contains_key(RANGE);
        let mut trip = Trip {
            base: Some(base.clone()),
            ..trip
        };
        for _ in 0..MAX_FOLLOWS {
            let now = Instant::now();
            // A resource that varies is looked up by the variant this viewer
            // asks for (what it varies on may have been learnt meanwhile).
            let key = self.cache.lookup_key(&base, &ex.headers);
            match self.cache.lookup(&key) {
                Some(obj) if obj.is_fresh(now) => {
                    ctx.cache_status = CacheStatus::Hit;
                    let resp = stored::respond(&obj, &ex.method, &ex.headers, now);
                    return self.viewer_response(hooks, ctx, &dist, &ex, resp).await;
                }
                Some(obj) if obj.stale_within(now, obj.freshness.stale_while_revalidate) => {
                    // Serve it stale; one background request revalidates it.
                    if let Flight::Leader(guard) = self.cache.flights.join(&key) {
                        self.refresh_in_background(&trip, obj.clone(), guard);
                    }
                    ctx.cache_status = CacheStatus::Hit;
                    let resp = stored::respond(&obj, &ex.method, &ex.headers, now);
                    return self.viewer_response(hooks, ctx, &dist, &ex, resp).await;
                }
                stale => trip.stale = stale,
            }
            if !collapse {
                break;
            }
            match self.cache.flights.join(&key) {
                Flight::Leader(guard) => {
                    trip.guard = Some(guard);
                    break;
                }
                Flight::Follower(rx) => {
                    let patience = self.patience(&dist, &trip.out.target_id);
                    if flight::follow(rx, patience).await == Landing::Pass {
                        break;
                    }
                }
            }
        }
        // A cacheable request sends no body, even when a viewer-request hook
        // turned another method into a GET or HEAD.
        drop(viewer_body);
        self.to_origin(ctx, trip, None).await
    }

    /// Drops what is stored for the request's URI and for the same-host URIs
    /// its response names in `Location` and `Content-Location`.
    fn invalidate_written(
        &self,
        dist: &ServedDistribution,
        behavior: &Behavior,
        arm: &str,
        host: &str,
        ex: &Exchange,
        response: &HeaderMap,
    ) {
        let path = (&ex.path, ex.query.as_deref());
        let base = cache_key(dist, behavior, arm, host, ex, path.0, path.1, &ex.target_id);
        self.cache.remove(&base);
        for name in [LOCATION, CONTENT_LOCATION] {
            let Some(uri) = response
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<Uri>().ok())
            else {
                continue;
            };
            let same_host = uri.host().is_none_or(|h| h.eq_ignore_ascii_case(host));
            let Some(path) = same_host
                .then(|| crate::path::normalize(uri.path()).ok())
                .flatten()
            else {
                continue;
            };
            let behavior = dist.config.behavior_for(&path).1;
            let target = &behavior.target_origin_id;
            let base = cache_key(dist, behavior, arm, host, ex, &path, uri.query(), target);
            self.cache.remove(&base);
        }
    }

    /// How long a follower waits for its leader: the target's read timeout,
    /// and a little more.
    fn patience(&self, dist: &ServedDistribution, target_id: &str) -> Duration {
        let read = match dist.config.targets.get(target_id) {
            Some(Target::Origin(i)) => dist.config.origins[*i].read_timeout,
            Some(Target::Group { members, .. }) => members
                .iter()
                .map(|i| dist.config.origins[*i].read_timeout)
                .sum(),
            None => Duration::ZERO,
        };
        read + Duration::from_secs(1)
    }

    /// The request as the origin will see it: no `Host` (the origin's is set
    /// when sending), only the cookies the behavior forwards (`cookies`) on a
    /// cacheable request, none of the viewer's validators on a `GET` the cache may store
    /// (the cache fetches whole objects and answers conditionals itself), and
    /// the host's forwarding fields set as the behavior says
    /// ([`headers::set_forwarding`]); on a request the cache may store, the
    /// URL- and method-override fields it does not key on are dropped (see
    /// [`crate::fields::UNKEYED_OVERRIDES`]).
    fn origin_request(
        &self,
        ex: &Exchange,
        query: Option<String>,
        cookies: Cookies,
        viewer: headers::Viewer<'_>,
        behavior: &Behavior,
        cacheable: bool,
    ) -> Exchange {
        let mut headers = ex.headers.clone();
        headers.remove(HOST);
        if cacheable {
            headers::strip_unkeyed_overrides(&mut headers, &behavior.cache_key.headers);
        }
        if let Cookies::Only(cookies) = cookies {
            headers.remove(COOKIE);
            if let Some(v) = cookies.and_then(|c| HeaderValue::from_str(&c).ok()) {
                headers.insert(COOKIE, v);
            }
        }
        if ex.method == Method::GET && !ex.headers.contains_key(RANGE) {
            for name in [
                IF_NONE_MATCH,
                IF_MODIFIED_SINCE,
                IF_MATCH,
                IF_UNMODIFIED_SINCE,
            ] {
                headers.remove(name);
            }
        }
        headers::set_forwarding(&mut headers, behavior.forwarding, viewer);
        // Tell the origin it may target Surrogate-Control directives at us.
        headers.append(&SURROGATE_CAPABILITY, surrogate_capability());
        Exchange {
            method: ex.method.clone(),
            path: ex.path.clone(),
            query,
            headers,
            target_id: ex.target_id.clone(),
        }
    }

    /// Revalidates a stale object with a request of its own, off the
    /// viewer's path (`stale-while-revalidate`); the guard keeps the other
    /// viewers of the key from starting another.
    fn refresh_in_background(&self, trip: &Trip<'_>, stale: Arc<CachedObject>, guard: FlightGuard) {
        let Some(this) = self.this.upgrade() else {
            return;
        };
        let (dist, index, ex, out, base) = (
            trip.dist.clone(),
            trip.index,
            trip.ex.clone(),
            trip.out.clone(),
            trip.base.clone(),
        );
        tokio::spawn(async move {
            let mut ctx = RequestCtx::new(SocketAddr::from(([127, 0, 0, 1], 0)), false);
            let trip = Trip {
                dist: &dist,
                index,
                ex: &ex,
                out,
                base,
                stale: Some(stale),
                guard: Some(guard),
            };
            let span = tracing::debug_span!("revalidate", id = %ctx.request_id);
            let result = this.to_origin(&mut ctx, trip, None).instrument(span).await;
            // Drain the body so a new response is stored as it passes.
            if let Ok(resp) = result {
                let _ = http_body_util::BodyExt::collect(resp.into_body()).await;
            }
        });
    }

    /// Steps 6 to 9: the origin-request hook, the fetch (conditional when a
    /// stale object can be revalidated), the origin-response hook, and the
    /// store. A `304` refreshes the stale object (`RefreshHit`); an origin
    /// failure serves it within `stale-if-error`.
    async fn to_origin(
        &self,
        ctx: &mut RequestCtx,
        trip: Trip<'_>,
        viewer_body: Option<Incoming>,
    ) -> Result<Response<EdgeBody>, ProxyError> {
        let Trip {
            dist,
            index,
            ex,
            mut out,
            base,
            stale,
            guard,
        } = trip;
        let behavior = dist.config.behavior_at(index);
        let hooks = dist.hooks.get(index).unwrap_or(&NO_HOOKS);
        // Only a GET stores (a HEAD has no body to keep): under the resource's
        // base key, tagged for invalidations, unless an invalidation from here
        // on says otherwise.
        let store = base.filter(|_| ex.method == Method::GET).map(|base| {
            let tags = self.tags(dist, ctx, &ex.path, base);
            let stamp = self.cache.stamp(&tags);
            (tags, stamp)
        });

        // Step 6: origin-request hook (misses only). An answer here is cached
        // like an origin response.
        if let Some(hook) = &hooks.origin_request {
            match self.request_hook(hook, ctx, dist, &out).await? {
                Decision::Forward(next) => out = next,
                Decision::Respond(generated) => {
                    let freshness = store.as_ref().and_then(|_| {
                        self.freshness(ex, generated.status, &generated.headers, behavior)
                    });
                    if let (Some((tags, stamp)), Some(freshness), Some(body)) =
                        (store, freshness, &generated.body)
                    {
                        let key = self
                            .cache
                            .store_key(&tags.base, &ex.headers, &generated.headers);
                        let object = (generated.status, generated.headers.clone(), body.clone());
                        self.store_whole((key, tags, stamp), object, freshness, guard);
                    }
                    let resp = generated_response(generated);
                    return self.viewer_response(hooks, ctx, dist, ex, resp).await;
                }
            }
        }
        // Revalidate with the stale object's own validators.
        let revalidating = match &stale {
            Some(obj) => {
                let (etag, modified) = obj.validators();
                if let Some(etag) = etag {
                    out.headers.insert(IF_NONE_MATCH, etag.clone());
                }
                if let Some(modified) = modified {
                    out.headers.insert(IF_MODIFIED_SINCE, modified.clone());
                }
                etag.is_some() || modified.is_some()
            }
            None => false,
        };
        out.headers.append(VIA, self.via.clone());

        // Step 7: fetch from the origin (or the group, failing over).
        let fetched = self.fetch(dist, &out, viewer_body, ctx).await;
        let serve_stale = |status: Option<StatusCode>| {
            let now = Instant::now();
            stale
                .as_ref()
                .filter(|_| status.is_none_or(|s| s.is_server_error()))
                .filter(|obj| obj.stale_within(now, obj.freshness.stale_if_error))
                .cloned()
        };
        let (resp, read_timeout) = match fetched {
            Ok(fetched) => fetched,
            Err(err) => {
                if let Some(obj) = serve_stale(None) {
                    tracing::info!(request_id = %ctx.request_id, error = %err, "origin failed; serving stale (stale-if-error)");
                    ctx.cache_status = CacheStatus::Hit;
                    let resp = stored::respond(&obj, &ex.method, &ex.headers, Instant::now());
                    return self.viewer_response(hooks, ctx, dist, ex, resp).await;
                }
                return Err(err);
            }
        };
        if let Some(obj) = serve_stale(Some(resp.status())) {
            tracing::info!(request_id = %ctx.request_id, status = resp.status().as_u16(), "origin error; serving stale (stale-if-error)");
            ctx.cache_status = CacheStatus::Hit;
            let resp = stored::respond(&obj, &ex.method, &ex.headers, Instant::now());
            return self.viewer_response(hooks, ctx, dist, ex, resp).await;
        }
        let (mut head, incoming) = resp.into_parts();
        crate::fields::strip_hop_by_hop(&mut head.headers);
        if let (true, StatusCode::NOT_MODIFIED, Some(obj)) = (revalidating, head.status, &stale) {
            // The stale object is still good: refresh its headers and freshness.
            let now = Instant::now();
            let probe = obj.refreshed(&head.headers, obj.freshness, now);
            let refreshed = match self.freshness(ex, obj.status, &probe.headers, behavior) {
                Some(freshness) => {
                    let refreshed = Arc::new(CachedObject { freshness, ..probe });
                    if let Some((tags, stamp)) = store {
                        let key = self
                            .cache
                            .store_key(&tags.base, &ex.headers, &refreshed.headers);
                        self.cache.insert_arc(key, refreshed.clone(), stamp);
                        land(guard, Landing::Stored);
                    }
                    refreshed
                }
                None => Arc::new(probe),
            };
            ctx.cache_status = CacheStatus::RefreshHit;
            let resp = stored::respond(&refreshed, &ex.method, &ex.headers, now);
            return self.viewer_response(hooks, ctx, dist, ex, resp).await;
        }

        // Step 8: origin-response hook (misses only).
        let mut replaced = None;
        if let Some(hook) = &hooks.origin_response {
            let checked = self
                .response_hook(hook, ctx, dist, &out, head.status, &head.headers)
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
        let freshness = store
            .as_ref()
            .and_then(|_| self.freshness(ex, head.status, &head.headers, behavior));
        let (key, tags, stamp, freshness) = match (store, freshness) {
            (Some((tags, stamp)), Some(freshness)) => (
                self.cache.store_key(&tags.base, &ex.headers, &head.headers),
                tags,
                stamp,
                freshness,
            ),
            _ => {
                // Followers need not wait for what will not be stored.
                land(guard, Landing::Pass);
                let body = match replaced {
                    Some(body) => EdgeBody::full(body),
                    None if ex.method == Method::HEAD => EdgeBody::Empty,
                    None => {
                        EdgeBody::Origin(Box::new(OriginBody::new(incoming, read_timeout, None)))
                    }
                };
                return self
                    .viewer_response(hooks, ctx, dist, ex, Response::from_parts(head, body))
                    .await;
            }
        };
        let body = match replaced {
            Some(body) => {
                let object = (head.status, head.headers.clone(), body.clone());
                self.store_whole((key, tags, stamp), object, freshness, guard);
                EdgeBody::full(body)
            }
            None => {
                let tee = self.tee(&head, key, freshness, tags, stamp, guard);
                // No body follows (a 204, or an empty body the viewer's
                // connection will never poll): the exchange is complete now.
                if head.status == StatusCode::NO_CONTENT || incoming.is_end_stream() {
                    if let Some(tee) = tee {
                        tee.complete_empty();
                    }
                    EdgeBody::Empty
                } else {
                    EdgeBody::Origin(Box::new(OriginBody::new(incoming, read_timeout, tee)))
                }
            }
        };
        self.viewer_response(hooks, ctx, dist, ex, Response::from_parts(head, body))
            .await
    }

    /// Step 7: sends `out` to its target, trying a group's members in order.
    async fn fetch(
        &self,
        dist: &ServedDistribution,
        out: &Exchange,
        viewer_body: Option<Incoming>,
        ctx: &RequestCtx,
    ) -> Result<(Response<Incoming>, Duration), ProxyError> {
        let target =
            dist.config.targets.get(&out.target_id).ok_or_else(|| {
                ProxyError::Internal(format!("target {} vanished", out.target_id))
            })?;
        let replayable = viewer_body.as_ref().is_none_or(Incoming::is_end_stream)
            && matches!(out.method, Method::GET | Method::HEAD | Method::OPTIONS);
        let mut viewer_body = viewer_body;
        let viewer_failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
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
                    .map_or(UpstreamBody::Empty, |body| UpstreamBody::Viewer {
                        body,
                        failed: viewer_failed.clone(),
                    })
            };
            let upstream = builder
                .body(body)
                .map_err(|e| ProxyError::Internal(format!("building origin request: {e}")))?;
            self.metrics.record_origin_request();
            let last = n + 1 == members.len();
            let sent = Instant::now();
            let answered = OriginFetcher::send(&dist.pools[idx], origin, upstream).await;
            dist.stats.origin_latency(idx, sent.elapsed());
            match answered {
                Ok(resp) if !last && failover_codes.contains(&resp.status().as_u16()) => {
                    tracing::info!(request_id = %ctx.request_id, origin = %origin.id, status = resp.status().as_u16(), "failing over");
                }
                Ok(resp) => return Ok((resp, origin.read_timeout)),
                Err(err) if viewer_failed.load(Ordering::Relaxed) => {
                    return Err(ProxyError::BadBody {
                        reason: err.to_string(),
                    });
                }
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
    /// The access-log fields known when the request arrives.
    fn log_record(
        &self,
        req: &Request<Incoming>,
        dist: &ServedDistribution,
        host: &str,
        ctx: &RequestCtx,
    ) -> access_log::Record {
        let header = |name: HeaderName| {
            req.headers()
                .get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        let logging = dist.config.raw.logging;
        access_log::Record {
            date: String::new(),
            time: String::new(),
            edge_id: self.host_id.clone(),
            sc_bytes: 0,
            c_ip: ctx.client.ip().to_string(),
            cs_method: req.method().to_string(),
            cs_host: dist.domain_name.clone(),
            cs_uri_stem: req.uri().path().to_owned(),
            sc_status: 0,
            cs_referer: header(REFERER),
            cs_user_agent: header(USER_AGENT),
            cs_uri_query: req.uri().query().map(str::to_owned),
            cs_cookie: if logging.include_cookies {
                header(COOKIE)
            } else {
                None
            },
            result_type: "Miss",
            request_id: ctx.request_id.clone(),
            host_header: host.to_owned(),
            cs_protocol: if ctx.tls { "https" } else { "http" },
            cs_protocol_version: format!("{:?}", req.version()),
            time_taken: 0.0,
            distribution_id: dist.id.to_string(),
            arm: "primary",
            origin: None,
            hook_time_ms: 0.0,
        }
    }

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
        let began = Instant::now();
        let ran = self
            .hooks
            .request_event(hook, &ctx.request_id, self.kv.load_full(), context, request)
            .await;
        ctx.add_hook_time(began);
        let action = ran?.value;
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
        let began = Instant::now();
        let ran = self
            .hooks
            .response_event(
                hook,
                &ctx.request_id,
                self.kv.load_full(),
                context,
                request,
                response,
            )
            .await;
        ctx.add_hook_time(began);
        let resp = ran?.value;
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
            behavior.store_set_cookie,
            SystemTime::now(),
        )
    }

    /// The tags of what this request stores, for invalidations.
    fn tags(
        &self,
        dist: &ServedDistribution,
        ctx: &RequestCtx,
        path: &str,
        base: Arc<str>,
    ) -> Tags {
        Tags {
            distribution_id: dist.id.clone(),
            primary_id: ctx.primary_id.clone().unwrap_or_else(|| dist.id.clone()),
            path: path.into(),
            base,
        }
    }

    /// Stores a response whose body is already whole under `key`, then lands
    /// the flight.
    fn store_whole(
        &self,
        (key, tags, stamp): (Arc<str>, Tags, Stamp),
        (status, headers, body): (StatusCode, HeaderMap, Bytes),
        freshness: Freshness,
        guard: Option<FlightGuard>,
    ) {
        let object = CachedObject::new(status, headers, body, Instant::now(), freshness, tags);
        self.cache.insert(key, object, stamp);
        land(guard, Landing::Stored);
    }

    /// A tee that stores a streamed body once it has passed whole, then lands
    /// the flight; a body too large, cut short or stalled lands nothing.
    fn tee(
        &self,
        head: &http::response::Parts,
        key: Arc<str>,
        freshness: Freshness,
        tags: Tags,
        stamp: Stamp,
        guard: Option<FlightGuard>,
    ) -> Option<Tee> {
        let limit = usize::try_from(self.cache.max_object_bytes()).unwrap_or(usize::MAX);
        let expected = head
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if expected.is_some_and(|len| len > limit) {
            land(guard, Landing::Pass);
            return None;
        }
        let cache = self.cache.clone();
        let status = head.status;
        let headers = head.headers.clone();
        let arrived = Instant::now();
        Some(Tee::new(
            limit,
            expected,
            Box::new(move |body: Bytes| {
                if expected.is_some_and(|len| len != body.len()) {
                    return;
                }
                cache.insert(
                    key,
                    CachedObject::new(status, headers, body, arrived, freshness, tags),
                    stamp,
                );
                land(guard, Landing::Stored);
            }),
        ))
    }
}

/// A request on its way to the origin, and what the cache knows of it.
struct Trip<'a> {
    dist: &'a Arc<ServedDistribution>,
    /// The behavior's index in the distribution.
    index: usize,
    /// The viewer's request (after the viewer-request hook).
    ex: &'a Exchange,
    /// The request the origin will see.
    out: Exchange,
    /// The base key of the resource, for a request whose response may be stored.
    base: Option<Arc<str>>,
    /// The stale object to revalidate, or to serve on an origin error.
    stale: Option<Arc<CachedObject>>,
    /// This request leads the fetch for `key`.
    guard: Option<FlightGuard>,
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

/// The viewer's cookies an origin request carries.
#[derive(Debug)]
enum Cookies {
    /// The `Cookie` fields as the viewer sent them.
    AsSent,
    /// Only these (a `Cookie` value), or none.
    Only(Option<String>),
}

/// The cache key of a `GET` of `path`/`query` on `target` for this viewer
/// (HEAD shares it).
#[expect(
    clippy::too_many_arguments,
    reason = "the parts of a key, each distinct"
)]
fn cache_key(
    dist: &ServedDistribution,
    behavior: &Behavior,
    arm: &str,
    host: &str,
    ex: &Exchange,
    path: &str,
    query: Option<&str>,
    target: &str,
) -> Arc<str> {
    let query =
        cache::key::filter_query(query, &behavior.cache_key.query_strings).map(Cow::into_owned);
    let cookies = cache::key::filter_cookies(&ex.headers, &behavior.cache_key.cookies);
    let key = cache::key::build(
        cache::key::KeyParts {
            distribution_id: &dist.id,
            origin_id: target,
            origin_fingerprint: dist.config.fingerprint_of(target),
            arm,
            method: &Method::GET,
            host,
            path,
        },
        query.as_deref(),
        cookies.as_deref(),
        &ex.headers,
        &behavior.cache_key,
    );
    key.into()
}

/// Lands a flight, if this request leads one.
fn land(guard: Option<FlightGuard>, how: Landing) {
    if let Some(guard) = guard {
        guard.land(how);
    }
}

/// `Surrogate-Capability: edge="Surrogate/1.0"` (W3C Edge Architecture):
/// directives targeted `;edge` in `Surrogate-Control` are meant for this cache.
fn surrogate_capability() -> HeaderValue {
    static VALUE: std::sync::OnceLock<HeaderValue> = std::sync::OnceLock::new();
    VALUE
        .get_or_init(|| {
            HeaderValue::from_str(&format!(
                "{}=\"Surrogate/1.0\"",
                cache::freshness::SURROGATE_TARGET
            ))
            .unwrap_or_else(|_| HeaderValue::from_static("edge=\"Surrogate/1.0\""))
        })
        .clone()
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
/// The host a request is for (RFC 9112 3.2): an absolute-form target's
/// authority, else the one `Host` field. More than one `Host`, or one that is
/// not `host[:port]`, is refused.
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
