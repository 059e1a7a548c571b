//! Phase 7 in a cache cluster: a miss asks the key's owner among the members
//! before the origin ([`Proxy::ask_owner`]), and the owner answers members
//! ([`Proxy::serve_member`]) from its cache, or with phases 6 to 9 (the
//! origin-facing hooks and one fetch from the origin for the whole cluster).
//!
//! What the asking host gets is stored and answered like an origin's
//! response, except that the origin-facing hooks already ran at the owner.
//! Whenever the owner cannot answer (it is down, slow, or fails itself) the
//! host goes to the origin as it would without a cluster.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HOST, HeaderValue, IF_MODIFIED_SINCE, IF_NONE_MATCH, RANGE};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use http_body_util::BodyExt as _;

use crate::cache::CacheStatus;
use crate::cluster::{Cluster, Peer, wire};
use crate::error::ProxyError;
use crate::origin::{OriginError, OriginTarget, Origins, UpstreamBody};

use super::Proxy;
use super::admit::Fetched;
use super::body::EdgeBody;
use super::ctx::{Exchange, RequestCtx, Trip};
use super::{headers, stored};

/// An owner's answer up to this long (by its `Content-Length`) is read whole
/// before the viewer gets any of it, so an owner that dies mid-body costs a
/// trip to the origin, not a broken response.
const READ_WHOLE_UP_TO: u64 = 1 << 20;

/// What asking the owner came to.
enum Asked<'a, B> {
    /// The owner answered; this is the viewer's response.
    Answered(Response<EdgeBody<B>>),
    /// Not asked, or no usable answer: go to the origin with the trip.
    Origin(Trip<'a>),
}

impl<O: Origins> Proxy<O> {
    /// Phases 6 to 9 for a GET or HEAD the cache missed: through the key's
    /// owner in a cache cluster, else from the origin.
    pub(super) async fn fill(
        &self,
        ctx: &mut RequestCtx,
        trip: Trip<'_>,
    ) -> Result<Response<EdgeBody<O::Body>>, ProxyError> {
        match self.ask_owner(ctx, trip).await {
            Asked::Answered(resp) => Ok(resp),
            Asked::Origin(trip) => self.to_origin(ctx, trip, None).await,
        }
    }

    /// The cluster this host is a member of, if any.
    pub fn join_cluster(&self, cluster: Arc<Cluster>) {
        if self.cluster.set(cluster).is_err() {
            tracing::warn!("this host is already a member of a cache cluster");
        }
    }

    /// Asks the owner of the trip's key for a GET missed here, when the
    /// distribution shares its cache and another member owns the key.
    async fn ask_owner<'a>(&self, ctx: &mut RequestCtx, trip: Trip<'a>) -> Asked<'a, O::Body> {
        let Some(cluster) = self.cluster.get() else {
            return Asked::Origin(trip);
        };
        let ex = trip.ex;
        let eligible = trip.dist.config.cluster
            && ex.method == Method::GET
            && !ex.headers.contains_key(RANGE)
            // Never a second hop, even for a request that looped back
            // through an origin.
            && !ex.headers.contains_key(&wire::HOP);
        let owner = match &trip.base {
            Some(base) if eligible => cluster.owner(base),
            _ => None,
        };
        let Some(peer) = owner else {
            return Asked::Origin(trip);
        };
        let request = match self.member_request(cluster, &peer, ctx, &trip) {
            Ok(request) => request,
            Err(err) => {
                tracing::debug!(request_id = %ctx.request_id, error = %err, "not asking the owner");
                return Asked::Origin(trip);
            }
        };
        cluster.counters().asked.fetch_add(1, Ordering::Relaxed);
        let patience = self.patience(trip.dist, &ex.target_id);
        match self.fetch_from(&peer, request, patience).await {
            Ok(resp) => {
                let taken = self.take_answer(ctx, trip, resp);
                if let Asked::Origin(_) = &taken {
                    cluster.counters().fallbacks.fetch_add(1, Ordering::Relaxed);
                }
                taken
            }
            Err(err) => {
                tracing::info!(request_id = %ctx.request_id, owner = %peer.id, error = %err, "the owner did not answer; asking the origin");
                cluster.counters().fallbacks.fetch_add(1, Ordering::Relaxed);
                if err.owner_down() {
                    cluster.set_down(&peer);
                }
                Asked::Origin(trip)
            }
        }
    }

    /// The request the owner gets: the viewer's as the viewer-request hook
    /// left it, for the viewer's host, with the stale object's validators
    /// in place of the viewer's, and what the owner needs to serve it as
    /// this host would.
    fn member_request(
        &self,
        cluster: &Cluster,
        peer: &Peer,
        ctx: &RequestCtx,
        trip: &Trip<'_>,
    ) -> Result<Request<UpstreamBody>, http::Error> {
        let ex = trip.ex;
        let mut pq = ex.path.clone();
        if let Some(query) = &ex.query {
            pq.push('?');
            pq.push_str(query);
        }
        let uri = Uri::builder()
            .scheme("http")
            .authority(peer.origin.authority.clone())
            .path_and_query(pq)
            .build()?;
        let mut headers = ex.headers.clone();
        wire::strip(&mut headers);
        super::upstream::strip_conditionals(&mut headers);
        if let Some(obj) = &trip.stale {
            let (etag, modified) = obj.validators();
            if let Some(etag) = etag {
                headers.insert(IF_NONE_MATCH, etag.clone());
            }
            if let Some(modified) = modified {
                headers.insert(IF_MODIFIED_SINCE, modified.clone());
            }
        }
        headers.insert(HOST, HeaderValue::from_str(trip.host)?);
        headers.insert(&wire::SECRET, cluster.secret().clone());
        headers.insert(&wire::HOP, HeaderValue::from_str(cluster.me())?);
        let primary = ctx.primary_id.as_deref().unwrap_or(&trip.dist.id);
        headers.insert(&wire::DISTRIBUTION, HeaderValue::from_str(primary)?);
        headers.insert(&wire::ARM, HeaderValue::from_static(ctx.arm()));
        headers.insert(&wire::TARGET, HeaderValue::from_str(&ex.target_id)?);
        headers.insert(
            &wire::CLIENT,
            HeaderValue::from_str(&ctx.client.ip().to_string())?,
        );
        if ctx.tls {
            headers.insert(&wire::TLS, HeaderValue::from_static("1"));
        }
        let mut request = Request::builder()
            .method(Method::GET)
            .uri(uri)
            .body(UpstreamBody::Empty)?;
        *request.headers_mut() = headers;
        Ok(request)
    }

    /// Sends `request` to `peer` and waits up to `patience` for its head (and
    /// for the whole of a short body).
    async fn fetch_from(
        &self,
        peer: &Peer,
        request: Request<UpstreamBody>,
        patience: Duration,
    ) -> Result<Response<Answer<O::Body>>, AskError> {
        let deadline = tokio::time::Instant::now() + patience;
        let to = OriginTarget {
            origin: &peer.origin,
            pool: &peer.pool,
        };
        let resp = tokio::time::timeout_at(deadline, self.origins.send(to, request))
            .await
            .map_err(|_| AskError::Slow(patience))??;
        if let Some(err) = resp.headers().get(&wire::ERROR) {
            return Err(AskError::Refused(
                String::from_utf8_lossy(err.as_bytes()).into_owned(),
            ));
        }
        if resp.status().is_server_error() {
            return Err(AskError::Failed(resp.status()));
        }
        let short = resp
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .is_some_and(|len| len <= READ_WHOLE_UP_TO);
        let (head, body) = resp.into_parts();
        let answer = if short {
            let whole = tokio::time::timeout_at(deadline, body.collect())
                .await
                .map_err(|_| AskError::Slow(patience))?
                .map_err(|err| AskError::Body(err.to_string()))?;
            Answer::Whole(whole.to_bytes())
        } else {
            Answer::Streamed(body)
        };
        Ok(Response::from_parts(head, answer))
    }

    /// Phase 9 for an owner's answer: a `304` refreshes the stale object,
    /// anything else is admitted as the origin's would be, tagged with the
    /// tags the owner stored it with. A `304` for nothing stale here is no
    /// answer: go to the origin.
    fn take_answer<'a>(
        &self,
        ctx: &mut RequestCtx,
        trip: Trip<'a>,
        resp: Response<Answer<O::Body>>,
    ) -> Asked<'a, O::Body> {
        if resp.status() == StatusCode::NOT_MODIFIED && trip.stale.is_none() {
            return Asked::Origin(trip);
        }
        let Trip {
            dist,
            index,
            ex,
            base,
            stale,
            guard,
            ..
        } = trip;
        let behavior = dist.config.behavior_at(index);
        let (mut head, answer) = resp.into_parts();
        let tags: Arc<[Arc<str>]> = head
            .headers
            .get_all(&wire::TAG)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(Arc::from)
            .collect();
        wire::strip(&mut head.headers);
        crate::fields::strip_hop_by_hop(&mut head.headers);
        let mut slot = self.slot(dist, ctx, ex, base, guard);
        if let (StatusCode::NOT_MODIFIED, Some(obj)) = (head.status, &stale) {
            let refreshed = self.refresh(ex, behavior, obj, &head.headers, slot);
            ctx.cache_status = CacheStatus::RefreshHit;
            return Asked::Answered(stored::respond(
                &refreshed,
                &ex.method,
                &ex.headers,
                std::time::Instant::now(),
            ));
        }
        slot.tag(tags);
        let fetched = match answer {
            Answer::Whole(bytes) => Fetched::Whole(bytes),
            Answer::Streamed(incoming) => Fetched::Origin {
                read: Bytes::new(),
                incoming,
                read_timeout: self.patience(dist, &ex.target_id),
                // The owner compressed it already when it was to be.
                encoder: None,
            },
        };
        let body = self.admit(ex, behavior, slot, &head, fetched);
        Asked::Answered(Response::from_parts(head, body))
    }

    /// Answers another member's request (the internal listener's one
    /// service): from this host's cache, or with phases 6 to 9, never by
    /// asking a third member. The answer carries the tags it is stored
    /// with; errors say they are this host's own, so the asking member goes
    /// to the origin itself.
    pub async fn serve_member<B>(self: Arc<Self>, req: Request<B>) -> Response<EdgeBody<O::Body>>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
    {
        let Some(cluster) = self.cluster.get() else {
            return refusal(StatusCode::NOT_FOUND, "this host is not a cluster member");
        };
        let secret = req.headers().get(&wire::SECRET);
        if !secret.is_some_and(|s| cluster.admits(s.as_bytes())) {
            return refusal(StatusCode::FORBIDDEN, "not the cluster's secret");
        }
        match req.headers().get(&wire::HOP) {
            None => return refusal(StatusCode::BAD_REQUEST, "no hop field"),
            Some(hop) if hop.as_bytes() == cluster.me().as_bytes() => {
                return refusal(
                    StatusCode::LOOP_DETECTED,
                    "a request from this host to itself",
                );
            }
            Some(_) => {}
        }
        let Some(asked) = Member::read(req.headers()) else {
            return refusal(StatusCode::BAD_REQUEST, "the cluster fields are incomplete");
        };
        cluster.counters().served.fetch_add(1, Ordering::Relaxed);
        let mut ctx = RequestCtx::new(SocketAddr::new(asked.client, 0), asked.tls);
        let span = tracing::debug_span!("member", id = %ctx.request_id, uri = %req.uri());
        let served =
            tracing::Instrument::instrument(self.serve_for(req, &mut ctx, &asked), span).await;
        let mut resp = match served {
            Ok(resp) => resp,
            Err(err) => {
                let (status, _) = err.status_and_code();
                return refusal(status, &err.to_string());
            }
        };
        let headers = resp.headers_mut();
        wire::strip(headers);
        for tag in ctx.tags.iter().flat_map(|tags| tags.iter()) {
            if let Ok(value) = HeaderValue::from_str(tag) {
                headers.append(&wire::TAG, value);
            }
        }
        headers.insert(&wire::RESULT, ctx.cache_status.header_value());
        resp
    }

    /// Lookup, then phases 6 to 9, for a member's request.
    async fn serve_for<B>(
        &self,
        req: Request<B>,
        ctx: &mut RequestCtx,
        asked: &Member,
    ) -> Result<Response<EdgeBody<O::Body>>, ProxyError>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
    {
        let super::resolve::Resolved { host, dist, path } = self.resolve(&req, ctx)?;
        if *dist.id != *asked.distribution {
            return Err(ProxyError::UnknownHost { host });
        }
        let dist = match (&asked.arm[..], &dist.deployment) {
            ("primary", _) => dist,
            ("staging", Some(deployment)) => {
                ctx.staging = true;
                ctx.primary_id = Some(dist.id.clone());
                deployment.staging.clone()
            }
            _ => return Err(ProxyError::UnknownHost { host }),
        };
        if req.method() != Method::GET {
            return Err(ProxyError::BadTarget);
        }
        let (index, behavior) = dist.config.behavior_for(&path);
        let dynamic = |id: &str| {
            dist.config
                .dynamic_origins
                .as_ref()
                .is_some_and(|d| d.origin(id).is_ok())
        };
        if !dist.config.targets.contains_key(&asked.target) && !dynamic(&asked.target) {
            return Err(ProxyError::Internal(format!(
                "target {} is not in this host's config",
                asked.target
            )));
        }
        let (parts, _) = req.into_parts();
        let mut viewer_headers = parts.headers;
        wire::strip(&mut viewer_headers);
        let ex = Exchange {
            method: Method::GET,
            path,
            query: parts.uri.query().map(str::to_owned),
            headers: viewer_headers,
            target_id: asked.target.clone(),
        };
        let viewer = headers::Viewer {
            client: ctx.client.ip(),
            tls: ctx.tls,
            host: &host,
        };
        let out = self.origin_request(&ex, viewer, behavior, true);
        let base = super::lookup::cache_key(
            &dist,
            behavior,
            ctx.arm(),
            &host,
            &ex,
            &ex.path,
            ex.query.as_deref(),
            &ex.target_id,
        );
        let mut trip = Trip {
            dist: &dist,
            host: &host,
            index,
            ex: &ex,
            out,
            base: Some(base.clone()),
            stale: None,
            guard: None,
        };
        match self.lookup(ctx, &mut trip, &base).await {
            Some(hit) => Ok(hit),
            None => self.to_origin(ctx, trip, None).await,
        }
    }
}

/// An owner's answer: read whole, or streamed on.
pub(super) enum Answer<B> {
    Whole(Bytes),
    Streamed(B),
}

/// Why asking the owner gave no answer.
#[derive(Debug, thiserror::Error)]
enum AskError {
    #[error(transparent)]
    Unreachable(#[from] OriginError),
    #[error("no answer within {0:?}")]
    Slow(Duration),
    #[error("the owner could not answer: {0}")]
    Refused(String),
    #[error("the owner answered {0}")]
    Failed(StatusCode),
    #[error("the owner's answer broke off: {0}")]
    Body(String),
}

impl AskError {
    /// Whether the owner itself seems gone (rather than its origin failing).
    fn owner_down(&self) -> bool {
        matches!(self, Self::Unreachable(_) | Self::Slow(_) | Self::Body(_))
    }
}

/// What a member's request says besides the viewer's.
struct Member {
    distribution: String,
    arm: String,
    target: String,
    client: IpAddr,
    tls: bool,
}

impl Member {
    fn read(headers: &HeaderMap) -> Option<Self> {
        let text = |name| headers.get(name)?.to_str().ok().map(str::to_owned);
        Some(Self {
            distribution: text(&wire::DISTRIBUTION)?,
            arm: text(&wire::ARM)?,
            target: text(&wire::TARGET)?,
            client: text(&wire::CLIENT)?.parse().ok()?,
            tls: headers.get(&wire::TLS).is_some_and(|v| v == "1"),
        })
    }
}

/// This host's own refusal of a member's request, marked as such.
fn refusal<B>(status: StatusCode, why: &str) -> Response<EdgeBody<B>> {
    let mut resp = Response::new(EdgeBody::Empty);
    *resp.status_mut() = status;
    let value = HeaderValue::from_str(why).unwrap_or_else(|_| HeaderValue::from_static("refused"));
    resp.headers_mut().insert(&wire::ERROR, value);
    resp
}
