//! Hooks' `fetch` requests, sent for the distribution serving the request:
//! to its origins and `backends` only, each on its own pool.
//!
//! A request's URL must name a declared server by scheme, host and port
//! (host names compared in lower case, default ports filled in); anything
//! else is `not-declared` before a socket is opened, so a hook cannot relay
//! to other hosts or reach addresses the operator did not list. The request
//! carries the server's `Host` and custom headers, as the proxy's own do. It
//! runs on the proxy's runtime, not on the hook threads the invocation may
//! have moved to, so pooled connections stay with the workers.

use std::sync::Arc;

use bytes::BytesMut;
use http::header::{CONTENT_LENGTH, HOST};
use http::{Request, Uri};
use http_body_util::BodyExt as _;

use crate::config::Origin;
use crate::metrics::Metrics;
use crate::origin::{OriginTarget, Origins, PoolClient, UpstreamBody};
use crate::wasm::fetch::{Answer, FetchError, FetchLimits, Outbound, Outgoing, Sent};

use super::routing::ServedDistribution;

/// Sends hooks' requests for one distribution (the proxy's, or `edge hook
/// test`'s made of its `--backend`s).
#[derive(Debug)]
pub struct HookFetch<O> {
    pub origins: Arc<O>,
    pub metrics: Arc<Metrics>,
    pub dist: Arc<ServedDistribution>,
    /// The runtime the requests run on (the proxy's, serving viewers).
    pub runtime: tokio::runtime::Handle,
}

/// Whether `origin` is the server `req` names.
fn names(origin: &Origin, req: &Outgoing) -> bool {
    let default = if origin.scheme == http::uri::Scheme::HTTPS {
        443
    } else {
        80
    };
    let host = origin
        .authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    origin.scheme == req.scheme
        && host.eq_ignore_ascii_case(&req.host)
        && origin.authority.port_u16().unwrap_or(default) == req.port
}

/// The declared server `req` names, with its pool.
fn declared(dist: &ServedDistribution, req: &Outgoing) -> Option<(Arc<Origin>, PoolClient)> {
    let config = &dist.config;
    let origins = config.origins.iter().zip(&dist.pools);
    let backends = config.backends.iter().zip(&dist.backend_pools);
    origins
        .chain(backends)
        .find(|(origin, _)| names(origin, req))
        .map(|(origin, pool)| (origin.clone(), pool.clone()))
}

impl<O: Origins> Outbound for HookFetch<O> {
    fn send(&self, req: Outgoing, limits: FetchLimits) -> Sent {
        let Some((origin, pool)) = declared(&self.dist, &req) else {
            let why = format!(
                "{}://{}:{} is neither an origin nor a backend of distribution {}",
                req.scheme, req.host, req.port, self.dist.id
            );
            return Box::pin(std::future::ready(Err(FetchError::NotDeclared(why))));
        };
        let (origins, metrics) = (self.origins.clone(), self.metrics.clone());
        let task = self.runtime.spawn(async move {
            let exchange = async {
                let upstream = build(&origin, req)?;
                metrics.record_origin_request();
                let to = OriginTarget {
                    origin: &origin,
                    pool: &pool,
                };
                let resp = origins
                    .send(to, upstream)
                    .await
                    .map_err(|e| FetchError::Failed(e.to_string()))?;
                let (head, mut body) = resp.into_parts();
                let mut got = BytesMut::new();
                while let Some(frame) = body.frame().await {
                    let frame = frame.map_err(|e| FetchError::Failed(e.to_string()))?;
                    if let Ok(data) = frame.into_data() {
                        if got.len() + data.len() > limits.max_response {
                            return Err(FetchError::TooLarge(limits.max_response));
                        }
                        got.extend_from_slice(&data);
                    }
                }
                let mut headers = head.headers;
                crate::fields::strip_hop_by_hop(&mut headers);
                Ok(Answer {
                    status: head.status,
                    headers,
                    body: got.freeze(),
                })
            };
            match tokio::time::timeout(limits.timeout, exchange).await {
                Ok(answered) => answered,
                Err(_) => Err(FetchError::Timeout(limits.timeout)),
            }
        });
        // An invocation that ends first (its wall-time limit, the viewer
        // gone) takes its request down with it.
        let mut task = AbortOnDrop(task);
        Box::pin(async move {
            (&mut task.0)
                .await
                .unwrap_or_else(|e| Err(FetchError::Failed(format!("the request stopped: {e}"))))
        })
    }
}

/// A spawned request, aborted when the hook waiting for it goes away.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The request as the server gets it: its `Host`, its custom headers, the
/// body with its length.
fn build(origin: &Origin, req: Outgoing) -> Result<Request<UpstreamBody>, FetchError> {
    let uri: Uri = format!(
        "{}://{}{}",
        origin.scheme, origin.authority, req.path_and_query
    )
    .parse()
    .map_err(|e| FetchError::Invalid(format!("{e}")))?;
    let mut headers = req.headers;
    headers.insert(HOST, origin.host_header.clone());
    for (name, value) in &origin.custom_headers {
        headers.insert(name, value.clone());
    }
    let body = if req.body.is_empty() {
        headers.remove(CONTENT_LENGTH);
        UpstreamBody::Empty
    } else {
        headers.insert(CONTENT_LENGTH, req.body.len().into());
        UpstreamBody::Viewer {
            body: http_body_util::Full::new(req.body)
                .map_err(|never| match never {})
                .boxed_unsync(),
            failed: Arc::default(),
        }
    };
    let mut upstream = Request::new(body);
    *upstream.method_mut() = req.method;
    *upstream.uri_mut() = uri;
    *upstream.headers_mut() = headers;
    Ok(upstream)
}
