//! Phase 7, upstream: the request as the origin sees it, and its fetch from
//! the origin or, failing over, from the members of an origin group.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use http::header::{
    COOKIE, HOST, HeaderName, HeaderValue, IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH,
    IF_UNMODIFIED_SINCE, RANGE, TE,
};
use http::{Method, Request, Response, Uri};
use http_body::Body as _;

use crate::cache;
use crate::config::dynamic::DYNAMIC_PREFIX;
use crate::config::raw::Names;
use crate::config::{Behavior, Target};
use crate::error::ProxyError;
use crate::origin::{OriginError, OriginPools, OriginTarget, Origins, UpstreamBody, ViewerBody};

use super::Proxy;
use super::ctx::{Exchange, RequestCtx};
use super::headers;
use super::routing::ServedDistribution;

static SURROGATE_CAPABILITY: HeaderName = HeaderName::from_static("surrogate-capability");

impl<O: Origins> Proxy<O> {
    /// The request as the origin will see it: no `Host` (the origin's is set
    /// when sending); on a request the cache may store, only the query
    /// strings and cookies the behavior forwards (everything otherwise); none of the viewer's validators on a `GET` the cache may store
    /// (the cache fetches whole objects and answers conditionals itself), and
    /// the host's forwarding fields set as the behavior says
    /// ([`headers::set_forwarding`]); on a request the cache may store, the
    /// URL- and method-override fields it does not key on are dropped (see
    /// [`crate::fields::UNKEYED_OVERRIDES`]).
    pub(super) fn origin_request(
        &self,
        ex: &Exchange,
        viewer: headers::Viewer<'_>,
        behavior: &Behavior,
        cacheable: bool,
    ) -> Exchange {
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
            strip_conditionals(&mut headers);
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

    /// Sends `out` to its target through [`Origins`], trying a group's
    /// members in order.
    pub(super) async fn fetch(
        &self,
        dist: &ServedDistribution,
        out: &Exchange,
        viewer_body: Option<ViewerBody>,
        ctx: &RequestCtx,
    ) -> Result<(Response<O::Body>, Duration), ProxyError> {
        // A dynamic origin a hook named: one member, its own pool.
        let dynamic = if out.target_id.starts_with(DYNAMIC_PREFIX) {
            let pools = dist.dynamic.as_ref().ok_or_else(|| {
                ProxyError::Internal(format!("target {} has no dynamic origins", out.target_id))
            })?;
            Some(pools.get(&out.target_id).map_err(ProxyError::Internal)?)
        } else {
            None
        };
        static DYNAMIC: Target = Target::Origin(usize::MAX);
        let target = match &dynamic {
            Some(_) => &DYNAMIC,
            None => dist.config.targets.get(&out.target_id).ok_or_else(|| {
                ProxyError::Internal(format!("target {} vanished", out.target_id))
            })?,
        };
        let replayable = viewer_body.as_ref().is_none_or(ViewerBody::is_end_stream)
            && matches!(out.method, Method::GET | Method::HEAD | Method::OPTIONS);
        let mut viewer_body = viewer_body;
        let viewer_failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let group: &[usize] = match target {
            Target::Origin(i) => std::slice::from_ref(i),
            Target::Group { members, .. } => members,
        };
        // A group fails over to a member with a healthy address before one
        // its health check says is down: the members in order, those last.
        // A request that cannot be sent twice goes to the first of them only.
        let mut members: Vec<usize> = group.to_vec();
        if dynamic.is_none() && members.len() > 1 {
            members.sort_by_key(|&i| dist.pools.get(i).is_some_and(OriginPools::known_down));
        }
        if !replayable {
            members.truncate(1);
        }
        let failover_codes: &[u16] = match target {
            Target::Group {
                failover_status_codes,
                ..
            } => failover_status_codes,
            Target::Origin(_) => &[],
        };
        let mut last_err = None;
        for (n, &idx) in members.iter().enumerate() {
            let origin = match &dynamic {
                Some((origin, _)) => &**origin,
                None => &*dist.config.origins[idx],
            };
            let last_member = n + 1 == members.len();
            // The origin's addresses, one after another while a connection
            // cannot be made and the request can be sent again.
            let mut tried: Vec<usize> = Vec::new();
            loop {
                let (pool, endpoint) = match &dynamic {
                    Some((_, pool)) => (pool, None),
                    None => match dist.pools[idx].pick(&tried) {
                        Some((i, endpoint)) => {
                            tried.push(i);
                            (&endpoint.pool, Some(endpoint))
                        }
                        None => break,
                    },
                };
                let in_flight = endpoint.map(|e| e.start());
                let uri = origin_uri(origin, &out.path, out.query.as_deref())?;
                let mut builder = Request::builder().method(out.method.clone()).uri(uri);
                if let Some(h) = builder.headers_mut() {
                    h.clone_from(&out.headers);
                    h.insert(HOST, origin.host_header.clone());
                    for (name, value) in &origin.custom_headers {
                        h.insert(name, value.clone());
                    }
                    // gRPC servers expect it (the viewer's went with the other
                    // hop-by-hop fields).
                    if ctx.grpc {
                        h.insert(TE, HeaderValue::from_static("trailers"));
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
                let mut upstream = builder
                    .body(body)
                    .map_err(|e| ProxyError::Internal(format!("building origin request: {e}")))?;
                if let Some(interim) = &ctx.interim {
                    relay_interim(&mut upstream, interim.clone());
                }
                self.metrics.record_origin_request();
                let sent = Instant::now();
                let to = OriginTarget { origin, pool };
                let answered = self.origins.send(to, upstream).await;
                drop(in_flight);
                if dynamic.is_none() {
                    dist.stats.origin_latency(idx, sent.elapsed());
                }
                match answered {
                    Ok(resp)
                        if !last_member && failover_codes.contains(&resp.status().as_u16()) =>
                    {
                        tracing::info!(request_id = %ctx.request_id, origin = %origin.id, status = resp.status().as_u16(), "failing over");
                        break;
                    }
                    Ok(resp) => return Ok((resp, origin.read_timeout)),
                    Err(err) if viewer_failed.load(Ordering::Relaxed) => {
                        return Err(ProxyError::BadBody {
                            reason: err.to_string(),
                        });
                    }
                    Err(err) => {
                        self.metrics.record_origin_error();
                        let unreachable = could_not_connect(&err, origin);
                        if let (true, Some(endpoint)) = (unreachable, endpoint) {
                            tracing::warn!(request_id = %ctx.request_id, origin = %origin.id, address = %endpoint.address, error = %err, "origin address ejected");
                            endpoint.eject();
                        } else {
                            tracing::warn!(request_id = %ctx.request_id, origin = %origin.id, error = %err, "origin fetch failed");
                        }
                        last_err = Some(err);
                        // Another address of the origin, when this one
                        // could not be reached and the request can go again.
                        if !(unreachable && replayable && endpoint.is_some()) {
                            break;
                        }
                    }
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
}

/// Whether an origin error means no connection could be made (refused,
/// unreachable, or the connect timeout): the address is not serving.
fn could_not_connect(err: &OriginError, origin: &crate::config::Origin) -> bool {
    match err {
        OriginError::Connect { .. } => true,
        OriginError::Timeout { timeout, .. } => {
            *timeout == origin.connect_timeout && origin.connect_timeout < origin.read_timeout
        }
        OriginError::Protocol { .. } | OriginError::Tls { .. } => false,
    }
}

/// Drops a request's conditional fields (the cache fetches whole objects
/// and answers the viewer's conditionals itself).
pub(super) fn strip_conditionals(headers: &mut http::HeaderMap) {
    for name in [
        IF_NONE_MATCH,
        IF_MODIFIED_SINCE,
        IF_MATCH,
        IF_UNMODIFIED_SINCE,
    ] {
        headers.remove(name);
    }
}

/// Passes the origin's 1xx responses to this request on to the viewer,
/// but `100 Continue` (about the request body the host sends, which the
/// viewer's own connection answers for itself) and `101`. They are never
/// stored.
fn relay_interim<B>(request: &mut Request<B>, interim: crate::interim::InterimSender) {
    hyper::ext::on_informational(request, move |resp| {
        let status = resp.status();
        if status != http::StatusCode::CONTINUE && status != http::StatusCode::SWITCHING_PROTOCOLS {
            interim.send(status, resp.headers());
        }
    });
}

/// The viewer's cookies an origin request carries.
#[derive(Debug)]
enum Cookies {
    /// The `Cookie` fields as the viewer sent them.
    AsSent,
    /// Only these (a `Cookie` value), or none.
    Only(Option<String>),
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
