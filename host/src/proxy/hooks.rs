//! Phases 4, 6, 8 and 10: a behavior's hooks run on the request or the
//! response, with what they return checked before it is used.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body_util::BodyExt as _;

use crate::error::ProxyError;
use crate::origin::{Origins, ViewerBody};
use crate::wasm::bindings::Arm;
use crate::wasm::fetch::Outbound;
use crate::wasm::stage::{Answer, HookStage, Picked, SeenBody};
use crate::wasm::{BoundHook, convert};

use super::Proxy;
use super::body::EdgeBody;
use super::ctx::{Decision, Exchange, RequestCtx};
use super::routing::{BehaviorHooks, ServedDistribution};

impl<O: Origins> Proxy<O> {
    /// The stage `hook` runs on for this request: with the distribution's
    /// backends to send to when its association fetches.
    fn stage<'a>(
        &'a self,
        hook: &BoundHook,
        ctx: &'a RequestCtx,
        dist: &'a Arc<ServedDistribution>,
    ) -> HookStage<'a> {
        let outbound = hook.fetch.and_then(|limits| {
            let runtime = tokio::runtime::Handle::try_current().ok()?;
            Some(Arc::new(super::outbound::HookFetch {
                origins: self.origins.clone(),
                metrics: self.metrics.clone(),
                dist: dist.clone(),
                runtime,
                // The cache's handles are cloned only for an association
                // that sends through it.
                cache: limits.cache.then(|| self.cache.clone()),
            }) as Arc<dyn Outbound>)
        });
        HookStage {
            outbound,
            runtime: &self.hooks,
            instances: &ctx.hooks,
            kv: self.kv.load_full(),
            request_id: &ctx.request_id,
            client: ctx.client.ip(),
            distribution_id: &dist.id,
            distribution_domain: &dist.domain_name,
            arm: if ctx.staging {
                Arm::Staging
            } else {
                Arm::Primary
            },
        }
    }

    /// Before a request event that includes the body: reads `body` for it
    /// (see [`super::hook_body`]), and leaves in its place the body that
    /// goes on. `None` (nothing read) for an event that does not include it;
    /// an empty body for a request that sends none (`body` is `None`).
    pub(super) async fn read_request_body(
        &self,
        hook: &BoundHook,
        ctx: &RequestCtx,
        body: &mut Option<ViewerBody>,
    ) -> Result<Option<SeenBody>, ProxyError> {
        let Some(read) = hook.body else {
            return Ok(None);
        };
        // A request without a body (a GET, nearly always) is given an empty
        // one, and holds nothing of the memory bound.
        let Some(taken) = body.take().filter(|b| !http_body::Body::is_end_stream(b)) else {
            return Ok(Some(SeenBody::default()));
        };
        ctx.hooks.hold_body(&self.hooks, hook, read.limit).await?;
        let (seen, rest) = super::hook_body::read_viewer(taken, read).await?;
        *body = Some(rest);
        Ok(Some(seen))
    }

    /// Phases 4 and 6: runs a request event on the request and, when the
    /// association includes it, the body read for it.
    pub(super) async fn request_hook(
        &self,
        hook: &BoundHook,
        ctx: &RequestCtx,
        dist: &Arc<ServedDistribution>,
        ex: &Exchange,
        body: Option<&SeenBody>,
    ) -> Result<Decision, ProxyError> {
        let targets = |picked: Picked<'_>| match picked {
            Picked::Id(id) if dist.config.targets.contains_key(id) => Ok(id.to_owned()),
            Picked::Id(id) => Err(format!(
                "origin id {id:?} names no origin or origin group of the distribution"
            )),
            Picked::Dynamic(origin) => dist
                .config
                .dynamic_origins
                .as_ref()
                .ok_or_else(|| {
                    "the distribution has no dynamic_origins, so a hook cannot route by host"
                        .to_owned()
                })?
                .target_id(&convert::dynamic_target(origin)),
        };
        let began = Instant::now();
        let ran = self
            .stage(hook, ctx, dist)
            .request_event(hook, ex, body, &targets)
            .await;
        ctx.add_hook_time(began);
        self.tail_hook(hook, ctx, dist, &ran);
        Ok(ran?.value)
    }

    /// Hands what an invocation logged (or the failure that ended it) to
    /// `edge tail`'s watchers, when there are any.
    fn tail_hook<R>(
        &self,
        hook: &BoundHook,
        ctx: &RequestCtx,
        dist: &ServedDistribution,
        ran: &Result<crate::wasm::Ran<R>, crate::wasm::HookError>,
    ) {
        if !self.tail.watching() {
            return;
        }
        let failure;
        let lines: &[String] = match ran {
            Ok(ran) => &ran.logs,
            Err(err) => {
                failure = [format!("failed: {err}")];
                &failure
            }
        };
        let time = crate::time::rfc3339(std::time::SystemTime::now());
        for line in lines {
            self.tail.publish(crate::tail::TailEvent::Log {
                time: time.clone(),
                distribution: dist.id.to_string(),
                request_id: ctx.request_id.clone(),
                hook: hook.compiled.name.to_string(),
                event: crate::wasm::event_name(hook.event),
                line: line.clone(),
            });
        }
    }

    /// Phases 8 and 10: runs a response event on a status and headers (and
    /// a body read for it).
    #[expect(
        clippy::too_many_arguments,
        reason = "the event's request and response, each part distinct"
    )]
    async fn response_hook(
        &self,
        hook: &BoundHook,
        ctx: &RequestCtx,
        dist: &Arc<ServedDistribution>,
        ex: &Exchange,
        status: StatusCode,
        headers: &HeaderMap,
        body: Option<&SeenBody>,
    ) -> Result<Answer, ProxyError> {
        let began = Instant::now();
        let ran = self
            .stage(hook, ctx, dist)
            .response_event(hook, ex, status, headers, body)
            .await;
        ctx.add_hook_time(began);
        self.tail_hook(hook, ctx, dist, &ran);
        Ok(ran?.value)
    }

    /// Phase 8: the origin-response hook on the origin's status and
    /// headers, and its body when the association includes it.
    #[expect(
        clippy::too_many_arguments,
        reason = "the event's request and response, each part distinct"
    )]
    pub(super) async fn origin_response(
        &self,
        hook: &BoundHook,
        ctx: &RequestCtx,
        dist: &Arc<ServedDistribution>,
        ex: &Exchange,
        status: StatusCode,
        headers: &HeaderMap,
        body: Option<&SeenBody>,
    ) -> Result<convert::CheckedResponse, ProxyError> {
        let answer = self
            .response_hook(hook, ctx, dist, ex, status, headers, body)
            .await?;
        Ok(answer.response)
    }

    /// Phase 10: the viewer-response hook, on hits, misses and generated
    /// responses. It may change headers and the body, not the status.
    pub(super) async fn viewer_response(
        &self,
        hooks: &BehaviorHooks,
        ctx: &RequestCtx,
        dist: &Arc<ServedDistribution>,
        ex: &Exchange,
        resp: Response<EdgeBody<O::Body>>,
    ) -> Result<Response<EdgeBody<O::Body>>, ProxyError> {
        let Some(hook) = &hooks.viewer_response else {
            return Ok(resp);
        };
        let (mut head, body) = resp.into_parts();
        let answer = self
            .response_hook(hook, ctx, dist, ex, head.status, &head.headers, None)
            .await;
        // The last event: the request's instances go back before the body
        // streams.
        ctx.hooks.clear();
        let answer = answer?;
        if let Some(refused) = answer.status_refused {
            tracing::debug!(request_id = %ctx.request_id, hook = %hook.label(), "viewer-response cannot change the status to {refused}; kept {}", head.status);
        }
        let checked = answer.response;
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
}

/// The body a request event replaced the request's with: it goes to the
/// origin with its own `content-length`. A GET or HEAD sends no body, so
/// one is dropped there.
pub(super) fn replace_request_body(
    request: &mut Exchange,
    body: &mut Option<ViewerBody>,
    replaced: Option<Bytes>,
) {
    let Some(bytes) = replaced else {
        return;
    };
    if matches!(request.method, Method::GET | Method::HEAD) {
        return;
    }
    request
        .headers
        .insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    *body = Some(
        http_body_util::Full::new(bytes)
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
}
