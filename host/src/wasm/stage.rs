//! The hook stage: one event of one request as the host runs it, shared by
//! the proxy and by `edge hook test` so the two cannot drift apart.
//!
//! It holds what a hook's answer must pass before it is used: the request
//! and the response converted to and from WIT, a `Forward` whose origin id
//! names no target refused, a generated body held to the event's size, and
//! the one rule on viewer-response (it may change headers and the body, not
//! the status). [`ORDER`] is the order the events run in on a miss, and
//! [`super::default_budget`] the CPU budget of each event when a hook
//! association gives none.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};

use super::bindings::Arm;
use super::convert::{self, CheckedResponse};
use super::{
    BoundHook, Context, Event, HookError, HookRuntime, KvData, Ran, RequestAction, RequestHooks,
};

/// The events in the order the host runs them on a miss. An answer from a
/// request event skips what follows it up to viewer-response: a
/// viewer-request answer goes straight to viewer-response (and is not
/// stored), an origin-request answer skips the origin and origin-response
/// (and is stored like the origin's). On a hit only viewer-request and
/// viewer-response run.
pub const ORDER: [Event; 4] = [
    Event::ViewerRequest,
    Event::OriginRequest,
    Event::OriginResponse,
    Event::ViewerResponse,
];

/// The request as the events see and change it.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    /// Hop-by-hop fields already stripped.
    pub headers: HeaderMap,
    /// The origin or origin group it goes to.
    pub target_id: String,
}

/// A body read for a hook (`include_body`): its first bytes, and whether
/// there was more than that.
#[derive(Debug, Clone, Default)]
pub struct SeenBody {
    pub bytes: Bytes,
    pub truncated: bool,
}

/// What a request event decided.
#[derive(Debug)]
pub enum Decision {
    /// Go on with this request (to this target), with this body instead of
    /// the request's own when `body` is `Some`.
    Forward {
        request: Exchange,
        body: Option<Bytes>,
    },
    /// Answer with this.
    Respond(CheckedResponse),
}

/// The body a hook handed back, checked against the one it was given:
/// `None` keeps the body as it is (nothing handed back, or the bytes it was
/// given, truncated or not); other bytes replace it, within `max` bytes.
fn new_body(
    returned: Option<Vec<u8>>,
    given: Option<&SeenBody>,
    max: usize,
) -> Result<Option<Bytes>, String> {
    let Some(returned) = returned else {
        return Ok(None);
    };
    if given.is_some_and(|g| g.bytes == returned) {
        return Ok(None);
    }
    if returned.len() > max {
        return Err(format!(
            "the body is {} bytes, over the {max} byte limit",
            returned.len()
        ));
    }
    Ok(Some(Bytes::from(returned)))
}

/// What a response event returned, checked.
#[derive(Debug)]
pub struct Answer {
    /// The response to go on with: on viewer-response its status is the one
    /// the event was given, whatever the hook returned.
    pub response: CheckedResponse,
    /// The status a viewer-response hook tried to set and could not.
    pub status_refused: Option<StatusCode>,
}

/// The target a hook picked for its request.
#[derive(Debug, Clone, Copy)]
pub enum Picked<'a> {
    /// An origin or origin-group id.
    Id(&'a str),
    /// An origin named by host (`dynamic_origins`).
    Dynamic(&'a super::bindings::DynamicOrigin),
}

/// Whether a target a hook picked may be used: its target id, or why not.
pub type TargetCheck<'a> = &'a (dyn Fn(Picked<'_>) -> Result<String, String> + Send + Sync);

/// Where one request's hooks run, and what their context tells them.
pub struct HookStage<'a> {
    pub runtime: &'a HookRuntime,
    /// The request's instances, which a later event of the request reuses.
    pub instances: &'a RequestHooks,
    pub kv: Arc<KvData>,
    pub request_id: &'a str,
    pub client: IpAddr,
    pub distribution_id: &'a str,
    pub distribution_domain: &'a str,
    pub arm: Arm,
    /// Where the hooks' `fetch` requests go: the distribution's backends.
    pub outbound: Option<Arc<dyn super::fetch::Outbound>>,
}

impl std::fmt::Debug for HookStage<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookStage")
            .field("request_id", &self.request_id)
            .field("distribution_id", &self.distribution_id)
            .field("arm", &self.arm)
            .finish_non_exhaustive()
    }
}

impl HookStage<'_> {
    fn context(&self, event: Event, target: &str, body: Option<&SeenBody>) -> Context {
        Context {
            body_truncated: body.is_some_and(|b| b.truncated),
            event,
            distribution_id: self.distribution_id.to_owned(),
            distribution_domain: self.distribution_domain.to_owned(),
            request_id: self.request_id.to_owned(),
            arm: self.arm,
            origin_id: target.to_owned(),
        }
    }

    /// Where `hook`'s requests go, if its association sends any.
    fn outbound_for(&self, hook: &BoundHook) -> Option<Arc<dyn super::fetch::Outbound>> {
        hook.fetch.and(self.outbound.clone())
    }

    fn request(&self, ex: &Exchange, body: Option<&SeenBody>) -> super::Request {
        let mut req = convert::request_to_wit(
            &ex.method,
            &ex.path,
            ex.query.as_deref(),
            &ex.headers,
            self.client,
        );
        req.body = body.map(|b| b.bytes.to_vec());
        req
    }

    /// Runs a request event (viewer-request, origin-request) on `ex`, with
    /// its body when the association includes it: the request to go on
    /// with, or the hook's answer. `targets` checks an origin id the hook
    /// picks.
    pub async fn request_event(
        &self,
        hook: &BoundHook,
        ex: &Exchange,
        body: Option<&SeenBody>,
        targets: TargetCheck<'_>,
    ) -> Result<Ran<Decision>, HookError> {
        let ran = self
            .runtime
            .request_event(
                hook,
                self.instances,
                self.request_id,
                self.kv.clone(),
                self.outbound_for(hook),
                self.context(hook.event, &ex.target_id, body),
                self.request(ex, body),
            )
            .await?;
        let invalid = |reason: String| hook.invalid_output(reason);
        let decision = match &ran.value {
            RequestAction::Forward(forward) => {
                let checked = convert::request_from_wit(forward.request.clone(), &ex.headers)
                    .map_err(invalid)?;
                let target_id = match (&forward.origin_id, &forward.dynamic_origin) {
                    (None, None) => ex.target_id.clone(),
                    (Some(id), None) => targets(Picked::Id(id)).map_err(invalid)?,
                    (None, Some(origin)) => targets(Picked::Dynamic(origin)).map_err(invalid)?,
                    (Some(_), Some(_)) => {
                        return Err(invalid(
                            "origin-id and dynamic-origin are both set; set one".to_owned(),
                        ));
                    }
                };
                let replaced = new_body(
                    forward.request.body.clone(),
                    body,
                    convert::max_body(hook.event),
                )
                .map_err(invalid)?;
                Decision::Forward {
                    request: Exchange {
                        method: checked.method,
                        path: checked.path,
                        query: checked.query,
                        headers: checked.headers,
                        target_id,
                    },
                    body: replaced,
                }
            }
            RequestAction::Respond(resp) => Decision::Respond(
                convert::response_from_wit(
                    resp.clone(),
                    &HeaderMap::new(),
                    None,
                    convert::max_body(hook.event),
                )
                .map_err(invalid)?,
            ),
        };
        Ok(ran.map(|_| decision))
    }

    /// Runs a response event (origin-response, viewer-response) on a status
    /// and headers, and the body when the association includes it. The
    /// answer's body is `Some` only when the hook replaced it.
    pub async fn response_event(
        &self,
        hook: &BoundHook,
        ex: &Exchange,
        status: StatusCode,
        headers: &HeaderMap,
        body: Option<&SeenBody>,
    ) -> Result<Ran<Answer>, HookError> {
        let ran = self
            .runtime
            .response_event(
                hook,
                self.instances,
                self.request_id,
                self.kv.clone(),
                self.outbound_for(hook),
                self.context(hook.event, &ex.target_id, body),
                self.request(ex, None),
                convert::response_to_wit(status, headers, body.map(|b| &b.bytes)),
            )
            .await?;
        let invalid = |reason: String| hook.invalid_output(reason);
        let mut returned = ran.value.clone();
        let replaced =
            new_body(returned.body.take(), body, convert::max_body(hook.event)).map_err(invalid)?;
        let mut response = convert::response_from_wit(returned, headers, Some(status), usize::MAX)
            .map_err(invalid)?;
        response.body = replaced;
        let mut status_refused = None;
        if hook.event == Event::ViewerResponse && response.status != status {
            status_refused = Some(response.status);
            response.status = status;
        }
        Ok(ran.map(|_| Answer {
            response,
            status_refused,
        }))
    }
}
