//! The request's way through the host, as phases run top to bottom.
//!
//! ```text
//!  viewer request
//!       │
//!   1 resolve ─────── refuse malformed, misdirected, unknown, disabled  (resolve.rs)
//!   2 arm ─────────── a deployment policy may pick the staging config   (deploy.rs)
//!   3 behavior ────── the first path pattern that matches
//!   4 viewer-request hook ─── may answer ──────────────────────┐       (hooks.rs)
//!   5 lookup ──────── fresh or servable stale: answer ──────────┤       (lookup.rs)
//!       │             concurrent misses wait for one fetch      │
//!       │             in a cache cluster, a miss asks the key's │
//!       │             owner, which runs 6 to 9 for it ──────────┤       (peer.rs)
//!   6 origin-request hook ─── may answer (stored) ─────────────┤       (hooks.rs)
//!   7 upstream ────── fetch, failing over within a group;       │       (upstream.rs)
//!       │             stale on error or unreachable ────────────┤
//!   8 origin-response hook                                      │       (hooks.rs)
//!   9 admit ───────── store (a 304 refreshes instead) ──────────┤       (admit.rs)
//!  10 viewer-response hook ◄────────────────────────────────────┘       (hooks.rs)
//!  11 respond ─────── errors, fields, counters, gate, access log        (respond.rs)
//! ```
//!
//! A WebSocket handshake leaves after phase 4 for phases 6, 7 and 10 of its
//! own (tunnel.rs), never the cache; once the origin switched protocols,
//! the host relays the socket's bytes beside the request path (relay.rs).
//!
//! A phase a behavior has nothing for is a no-op: hooks run only on the
//! events the behavior attaches them to, the arm only under a
//! continuous-deployment policy, lookup and admit only for GET and HEAD
//! (other methods stream to the origin, and a successful write invalidates
//! what is stored for its URI). Every answer, the cache's, a hook's or the
//! origin's, goes through phase 10 once, and every response, errors too,
//! through phase 11 once. What the phases share of one request is its
//! [`ctx::RequestCtx`].
//!
//! The proxy is generic over the viewer's body (hyper's from a connection,
//! any other from a test) and reaches origins only through
//! [`Origins`](crate::origin::Origins): [`OriginFetcher`] over the network,
//! the default, or an in-memory origin (memory.rs) in the phase tests
//! (tests.rs).

mod admit;
pub mod body;
pub mod compress;
mod ctx;
pub mod deploy;
pub mod headers;
mod hook_body;
mod hooks;
mod lookup;
#[cfg(test)]
mod memory;
pub mod outbound;
mod peer;
mod relay;
mod resolve;
mod respond;
pub mod routing;
pub mod stored;
#[cfg(test)]
mod tests;
mod tunnel;
mod upstream;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HeaderValue, IF_MODIFIED_SINCE, IF_NONE_MATCH, VIA};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use tracing::Instrument as _;

use crate::access_log::AccessLog;
use crate::cache::{self, CacheStatus, CachedObject, SharedCache};
use crate::cluster::Cluster;
use crate::error::ProxyError;
use crate::interim::InterimSender;
use crate::metrics::Metrics;
use crate::origin::{BoxError, OriginFetcher, Origins, ViewerBody};
use crate::wasm::{Event, HookRuntime, KvData};
use admit::Fetched;
use body::EdgeBody;
use ctx::{Decision, Exchange, RequestCtx, Trip};
pub use resolve::{AmbiguousFraming, OversizedHead};
use routing::{BehaviorHooks, Routing};

static NO_HOOKS: BehaviorHooks = BehaviorHooks {
    viewer_request: None,
    origin_request: None,
    origin_response: None,
    viewer_response: None,
};

/// The proxy shared by every viewer connection; `O` is how it reaches origins.
#[derive(Debug)]
pub struct Proxy<O = OriginFetcher> {
    routing: Arc<ArcSwap<Routing>>,
    cache: SharedCache,
    metrics: Arc<Metrics>,
    hooks: Arc<HookRuntime>,
    kv: Arc<ArcSwap<KvData>>,
    /// Sends to the origins whose pools the routing snapshot holds.
    origins: Arc<O>,
    /// `1.1 <host id> (edge)`.
    via: HeaderValue,
    /// This proxy, for work it spawns (background revalidation).
    this: Weak<Proxy<O>>,
    /// Where distributions with logging on write their access logs.
    access_log: Option<Arc<AccessLog>>,
    /// `--host-id`, the access log's `edge_id`.
    host_id: String,
    /// The cache cluster this host is a member of (see [`crate::cluster`]).
    cluster: OnceLock<Arc<Cluster>>,
    /// Where `edge tail`'s watchers get hook log lines and access records.
    tail: Arc<crate::tail::TailHub>,
}

impl<O: Origins> Proxy<O> {
    #[expect(
        clippy::too_many_arguments,
        reason = "the shared parts a proxy serves with, each distinct"
    )]
    pub fn new(
        routing: Arc<ArcSwap<Routing>>,
        cache: SharedCache,
        metrics: Arc<Metrics>,
        hooks: Arc<HookRuntime>,
        kv: Arc<ArcSwap<KvData>>,
        origins: Arc<O>,
        host_id: &str,
        access_log: Option<Arc<AccessLog>>,
        tail: Arc<crate::tail::TailHub>,
    ) -> Arc<Self> {
        let via = HeaderValue::from_str(&format!("1.1 {host_id} (edge)"))
            .unwrap_or_else(|_| HeaderValue::from_static("1.1 edge (edge)"));
        Arc::new_cyclic(|this| Self {
            routing,
            cache,
            metrics,
            hooks,
            kv,
            origins,
            via,
            this: this.clone(),
            access_log,
            host_id: host_id.to_owned(),
            cluster: OnceLock::new(),
            tail,
        })
    }

    /// Serves one viewer request; never fails (errors become responses).
    ///
    /// Generic over the viewer's body: hyper's from a connection, any other
    /// (a test's) alike.
    pub async fn handle<B>(
        self: Arc<Self>,
        req: Request<B>,
        client: SocketAddr,
        tls: bool,
    ) -> Result<Response<EdgeBody<O::Body>>, Infallible>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let mut ctx = RequestCtx::new(client, tls);
        ctx.interim = req.extensions().get::<InterimSender>().cloned();
        ctx.grpc = respond::is_grpc(req.headers());
        let span = tracing::debug_span!("request", id = %ctx.request_id, method = %req.method(), uri = %req.uri());
        let served = self.serve(req, &mut ctx).instrument(span).await;
        // The response is on its way: no 1xx after it.
        if let Some(interim) = &ctx.interim {
            interim.close();
        }
        let resp = self.respond(&mut ctx, served);
        if let Some(tunnel) = ctx.tunnel.take()
            && tunnel.opens_with(resp.status())
        {
            tunnel.open(self.metrics.clone(), ctx.request_id.clone());
        }
        Ok(resp)
    }

    /// Phases 1 to 10.
    async fn serve<B>(
        &self,
        req: Request<B>,
        ctx: &mut RequestCtx,
    ) -> Result<Response<EdgeBody<O::Body>>, ProxyError>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        // 1: resolve.
        let resolve::Resolved { host, dist, path } = self.resolve(&req, ctx)?;
        let (mut parts, viewer_body) = req.into_parts();
        let websocket = tunnel::take_websocket(&mut parts);
        let mut viewer_body = Some(viewer_body.map_err(Into::into).boxed_unsync());
        let mut viewer_headers = parts.headers;

        // 2: the deployment arm, whose config serves every phase from here on.
        let dist = self.arm(dist, &mut viewer_headers, ctx);
        let arm = ctx.arm();
        if let Some(record) = &mut ctx.log {
            record.arm = arm;
        }

        // 3: the cache behavior by path pattern.
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

        // 4: the viewer-request hook. An answer here is not cached.
        if let Some(hook) = &hooks.viewer_request {
            let seen = self.read_request_body(hook, ctx, &mut viewer_body).await?;
            match self
                .request_hook(hook, ctx, &dist, &ex, seen.as_ref())
                .await?
            {
                Decision::Forward { request, body } => {
                    ex = request;
                    hooks::replace_request_body(&mut ex, &mut viewer_body, body);
                }
                Decision::Respond(generated) => {
                    let resp = EdgeBody::generated(generated);
                    return self.viewer_response(hooks, ctx, &dist, &ex, resp).await;
                }
            }
        }
        // A component only viewer-request runs gives its instance back now,
        // not after the origin answered.
        ctx.hooks.keep_only(hooks.after(Event::ViewerRequest));
        if behavior.compress && websocket.is_none() {
            compress::normalize(&mut ex.headers);
        }
        if let Some(record) = &mut ctx.log {
            record.origin = Some(ex.target_id.clone());
        }

        let cacheable = matches!(ex.method, Method::GET | Method::HEAD) && websocket.is_none();
        let viewer = headers::Viewer {
            client: ctx.client.ip(),
            tls: ctx.tls,
            host: &host,
        };
        let out = self.origin_request(&ex, viewer, behavior, cacheable);
        if let Some(upgrade) = websocket {
            // 6 and 7 for a WebSocket handshake, then 10.
            let resp = self.handshake(ctx, &dist, index, out, upgrade).await?;
            let resp = self.viewer_response(hooks, ctx, &dist, &ex, resp).await?;
            return Ok(tunnel::switching(resp, ctx.tunnel.as_ref()));
        }
        let mut trip = Trip {
            dist: &dist,
            host: &host,
            index,
            ex: &ex,
            out,
            base: None,
            stale: None,
            guard: None,
        };
        let resp = if cacheable {
            // 5: the cache lookup; 6 to 9 on a miss. A cacheable request
            // sends no body, even when a viewer-request hook turned another
            // method into a GET or HEAD.
            let base = lookup::cache_key(
                &dist,
                behavior,
                arm,
                &host,
                &ex,
                &ex.path,
                ex.query.as_deref(),
                &ex.target_id,
            );
            trip.base = Some(base.clone());
            match self.lookup(ctx, &mut trip, &base).await {
                Some(hit) => {
                    ctx.hooks.keep_only(hooks.after(Event::OriginResponse));
                    hit
                }
                None => {
                    drop(viewer_body);
                    self.fill(ctx, trip).await?
                }
            }
        } else {
            // 6 to 9, the body streamed. RFC 9111 4.4: a write that
            // succeeded makes what is stored for its URI (and the URIs it
            // names) out of date.
            let resp = self.to_origin(ctx, trip, viewer_body).await?;
            // A gRPC call is a call, not a write to its path.
            let safe = matches!(ex.method, Method::OPTIONS | Method::TRACE) || ctx.grpc;
            if !safe && (resp.status().is_success() || resp.status().is_redirection()) {
                self.invalidate_written(&dist, behavior, arm, &host, &ex, resp.headers());
            }
            resp
        };

        // 10: the viewer-response hook, on every answer.
        self.viewer_response(hooks, ctx, &dist, &ex, resp).await
    }

    /// Phases 6 to 9 of a request on its way to the origin: the
    /// origin-request hook, the fetch (conditional when a stale object can
    /// be revalidated), the origin-response hook, and admission. A `304`
    /// refreshes the stale object (`RefreshHit`); an origin failure serves
    /// it within `stale-if-error`, and an origin that cannot be reached
    /// serves it while the cache keeps it (`serve_stale_on_error`).
    async fn to_origin(
        &self,
        ctx: &mut RequestCtx,
        trip: Trip<'_>,
        mut viewer_body: Option<ViewerBody>,
    ) -> Result<Response<EdgeBody<O::Body>>, ProxyError> {
        let Trip {
            dist,
            host: _,
            index,
            ex,
            mut out,
            base,
            stale,
            guard,
        } = trip;
        let behavior = dist.config.behavior_at(index);
        let hooks = dist.hooks.get(index).unwrap_or(&NO_HOOKS);
        let mut slot = self.slot(dist, ctx, ex, base, guard);

        // 6: the origin-request hook. An answer here is stored like an
        // origin response.
        if let Some(hook) = &hooks.origin_request {
            let seen = self.read_request_body(hook, ctx, &mut viewer_body).await?;
            match self
                .request_hook(hook, ctx, dist, &out, seen.as_ref())
                .await?
            {
                Decision::Forward { request, body } => {
                    out = request;
                    hooks::replace_request_body(&mut out, &mut viewer_body, body);
                }
                Decision::Respond(generated) => {
                    let (mut head, ()) = Response::new(()).into_parts();
                    head.status = generated.status;
                    head.headers = generated.headers;
                    head.headers.remove(CONTENT_LENGTH);
                    let tags = cache::tags::take(&mut head.headers, behavior.keep_tag_headers);
                    ctx.tags = Some(tags.clone());
                    slot.tag(tags);
                    let body = match generated.body {
                        Some(body) => self.admit(ex, behavior, slot, &head, Fetched::Whole(body)),
                        None => EdgeBody::Empty,
                    };
                    return Ok(Response::from_parts(head, body));
                }
            }
        }
        // The origin may take a while: only the instances of the events
        // after its answer are kept through it.
        ctx.hooks.keep_only(hooks.after(Event::OriginRequest));
        ctx.hooks.hold(&self.hooks).await?;
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

        // 7: the fetch from the origin (or the group, failing over).
        let fetched = self.fetch(dist, &out, viewer_body, ctx).await;
        let now = Instant::now();
        let within_sie =
            |obj: &&Arc<CachedObject>| obj.stale_within(now, obj.freshness.stale_if_error);
        // A stale object answers for an origin that failed: within its
        // `stale-if-error` window, whatever the failure (a 5xx, or no
        // answer); and, when the behavior serves stale on error, for an
        // origin (the last member of a group) that could not be reached at
        // all, while the cache keeps the object (RFC 9111 4.2.4).
        let stale_answer = match &fetched {
            Err(ProxyError::Origin(_)) if behavior.serve_stale_on_error => stale
                .as_ref()
                .filter(|obj| obj.servable_while_unreachable(now)),
            Err(_) => stale.as_ref().filter(within_sie),
            Ok((resp, _)) if resp.status().is_server_error() => stale.as_ref().filter(within_sie),
            Ok(_) => None,
        };
        if let Some(obj) = stale_answer {
            match &fetched {
                Err(err) => {
                    tracing::info!(request_id = %ctx.request_id, error = %err, "origin failed; serving stale");
                }
                Ok((resp, _)) => {
                    tracing::info!(request_id = %ctx.request_id, status = resp.status().as_u16(), "origin error; serving stale (stale-if-error)");
                }
            }
            ctx.cache_status = CacheStatus::Hit;
            ctx.tags = Some(obj.tags.cache_tags.clone());
            return Ok(stored::respond(obj, &ex.method, &ex.headers, now));
        }
        let (resp, read_timeout) = fetched?;
        let (mut head, incoming) = resp.into_parts();
        crate::fields::strip_hop_by_hop(&mut head.headers);
        if let (true, StatusCode::NOT_MODIFIED, Some(obj)) = (revalidating, head.status, &stale) {
            // 9 for a revalidation: the stale object is still good, with
            // the tags it was stored with.
            cache::tags::take(&mut head.headers, behavior.keep_tag_headers);
            let refreshed = self.refresh(ex, behavior, obj, &head.headers, slot);
            ctx.cache_status = CacheStatus::RefreshHit;
            ctx.tags = Some(refreshed.tags.cache_tags.clone());
            return Ok(stored::respond(
                &refreshed,
                &ex.method,
                &ex.headers,
                Instant::now(),
            ));
        }

        // 8: the origin-response hook, given the body when it includes it.
        let mut seen = None;
        let reads = hooks
            .origin_response
            .as_deref()
            .and_then(|hook| Some((hook, hook.body?)))
            .filter(|_| ex.method != Method::HEAD);
        let mut fetched = match reads {
            Some((hook, read)) => {
                ctx.hooks.hold_body(&self.hooks, hook, read.limit).await?;
                let got =
                    hook_body::read_origin(incoming, read, read_timeout, &out.target_id).await?;
                seen = Some(got.seen);
                match got.rest {
                    None => Fetched::Whole(got.bytes),
                    Some(incoming) => Fetched::Origin {
                        read: got.bytes,
                        incoming,
                        read_timeout,
                        encoder: None,
                    },
                }
            }
            None => Fetched::Origin {
                read: Bytes::new(),
                incoming,
                read_timeout,
                encoder: None,
            },
        };
        if let Some(hook) = &hooks.origin_response {
            let checked = self
                .origin_response(
                    hook,
                    ctx,
                    dist,
                    &out,
                    head.status,
                    &head.headers,
                    seen.as_ref(),
                )
                .await?;
            head.status = checked.status;
            head.headers = checked.headers;
            if let Some(body) = checked.body {
                head.headers.remove(CONTENT_LENGTH);
                fetched = Fetched::Whole(body);
            }
            ctx.hooks.keep_only(hooks.after(Event::OriginResponse));
        }

        // Compression, after the hook (which sees the body as the origin
        // sent it) and before the cache (which keeps it compressed).
        if behavior.compress {
            fetched = compress_fetched(ex, &mut head, fetched)?;
        }

        // 9: admit, the object tagged by what the response (or the hook)
        // named in its tag fields.
        let tags = cache::tags::take(&mut head.headers, behavior.keep_tag_headers);
        ctx.tags = Some(tags.clone());
        slot.tag(tags);
        let body = self.admit(ex, behavior, slot, &head, fetched);
        Ok(Response::from_parts(head, body))
    }
}

/// A response of a behavior that compresses, as the viewer and the cache
/// get it: a compressible one varies on `Accept-Encoding` and is encoded
/// in the request's normalized encoding (see [`compress`]).
fn compress_fetched<B: http_body::Body>(
    ex: &Exchange,
    head: &mut http::response::Parts,
    fetched: Fetched<B>,
) -> Result<Fetched<B>, ProxyError> {
    use compress::{Encoder, Encoding};
    let head_only = ex.method == Method::HEAD;
    let (len, empty) = match &fetched {
        Fetched::Whole(body) => (Some(body.len() as u64), body.is_empty()),
        Fetched::Origin { read, incoming, .. } => (
            None,
            !head_only && read.is_empty() && incoming.is_end_stream(),
        ),
    };
    if empty || !compress::compressible(head.status, &head.headers, len) {
        return Ok(fetched);
    }
    compress::add_vary(&mut head.headers);
    let encoding = compress::negotiate(&ex.headers);
    if encoding == Encoding::Identity {
        return Ok(fetched);
    }
    // A HEAD's answer says what a GET's would be.
    let known = len.is_some() || head.headers.contains_key(CONTENT_LENGTH);
    compress::encoded_head(&mut head.headers, encoding);
    Ok(match fetched {
        Fetched::Whole(body) => Fetched::Whole(
            Encoder::whole(encoding, &body)
                .map_err(|e| ProxyError::Internal(format!("compressing a body: {e}")))?,
        ),
        Fetched::Origin {
            read,
            incoming,
            read_timeout,
            encoder: _,
        } => Fetched::Origin {
            read,
            incoming,
            read_timeout,
            encoder: Encoder::new(encoding, !known)
                .filter(|_| !head_only)
                .map(Box::new),
        },
    })
}

/// The current Unix second.
pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
