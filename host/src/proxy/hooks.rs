//! Phases 4, 6, 8 and 10: a behavior's hooks run on the request or the
//! response, with what they return checked before it is used.

use std::time::Instant;

use http::header::CONTENT_LENGTH;
use http::{HeaderMap, Response, StatusCode};

use crate::error::ProxyError;
use crate::origin::Origins;
use crate::wasm::bindings::Arm;
use crate::wasm::stage::{Answer, HookStage};
use crate::wasm::{BoundHook, convert};

use super::Proxy;
use super::body::EdgeBody;
use super::ctx::{Decision, Exchange, RequestCtx};
use super::routing::{BehaviorHooks, ServedDistribution};

impl<O: Origins> Proxy<O> {
    /// The stage the hooks of this request run on.
    fn stage<'a>(&'a self, ctx: &'a RequestCtx, dist: &'a ServedDistribution) -> HookStage<'a> {
        HookStage {
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

    /// Phases 4 and 6: runs a request event.
    pub(super) async fn request_hook(
        &self,
        hook: &BoundHook,
        ctx: &RequestCtx,
        dist: &ServedDistribution,
        ex: &Exchange,
    ) -> Result<Decision, ProxyError> {
        let targets = |id: &str| {
            if dist.config.targets.contains_key(id) {
                Ok(())
            } else {
                Err(format!(
                    "origin id {id:?} names no origin or origin group of the distribution"
                ))
            }
        };
        let began = Instant::now();
        let ran = self
            .stage(ctx, dist)
            .request_event(hook, ex, &targets)
            .await;
        ctx.add_hook_time(began);
        Ok(ran?.value)
    }

    /// Phases 8 and 10: runs a response event on a status and headers.
    async fn response_hook(
        &self,
        hook: &BoundHook,
        ctx: &RequestCtx,
        dist: &ServedDistribution,
        ex: &Exchange,
        status: StatusCode,
        headers: &HeaderMap,
    ) -> Result<Answer, ProxyError> {
        let began = Instant::now();
        let ran = self
            .stage(ctx, dist)
            .response_event(hook, ex, status, headers)
            .await;
        ctx.add_hook_time(began);
        Ok(ran?.value)
    }

    /// Phase 8: the origin-response hook on the origin's status and headers.
    pub(super) async fn origin_response(
        &self,
        hook: &BoundHook,
        ctx: &RequestCtx,
        dist: &ServedDistribution,
        ex: &Exchange,
        status: StatusCode,
        headers: &HeaderMap,
    ) -> Result<convert::CheckedResponse, ProxyError> {
        let answer = self
            .response_hook(hook, ctx, dist, ex, status, headers)
            .await?;
        Ok(answer.response)
    }

    /// Phase 10: the viewer-response hook, on hits, misses and generated
    /// responses. It may change headers and the body, not the status.
    pub(super) async fn viewer_response(
        &self,
        hooks: &BehaviorHooks,
        ctx: &RequestCtx,
        dist: &ServedDistribution,
        ex: &Exchange,
        resp: Response<EdgeBody<O::Body>>,
    ) -> Result<Response<EdgeBody<O::Body>>, ProxyError> {
        let Some(hook) = &hooks.viewer_response else {
            return Ok(resp);
        };
        let (mut head, body) = resp.into_parts();
        let answer = self
            .response_hook(hook, ctx, dist, ex, head.status, &head.headers)
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

/// A response a hook generated.
pub(super) fn generated_response<B>(generated: convert::CheckedResponse) -> Response<EdgeBody<B>> {
    let mut resp = Response::new(generated.body.map_or(EdgeBody::Empty, EdgeBody::full));
    *resp.status_mut() = generated.status;
    *resp.headers_mut() = generated.headers;
    resp.headers_mut().remove(CONTENT_LENGTH);
    resp
}
