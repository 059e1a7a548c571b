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
use std::time::{Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use http::header::{
    CONTENT_LENGTH, HOST, IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_UNMODIFIED_SINCE, PRAGMA,
    RANGE,
};
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use http_body_util::BodyExt as _;

use crate::cache::freshness::CacheControl;
use crate::cache::{CachedObject, SharedCache, Tags};
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
    /// The cache requests of associations with `fetch.cache` go through.
    pub cache: Option<SharedCache>,
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
/// An origin's is the pool of the address a viewer's request would go to
/// now (see [`crate::origin::health`]).
fn declared(dist: &ServedDistribution, req: &Outgoing) -> Option<(Arc<Origin>, PoolClient)> {
    let config = &dist.config;
    if let Some((origin, pools)) = config
        .origins
        .iter()
        .zip(&dist.pools)
        .find(|(origin, _)| names(origin, req))
    {
        let (_, endpoint) = pools.pick(&[])?;
        return Some((origin.clone(), endpoint.pool.clone()));
    }
    config
        .backends
        .iter()
        .zip(&dist.backend_pools)
        .find(|(backend, _)| names(backend, req))
        .map(|(backend, pool)| (backend.clone(), pool.clone()))
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
        let through = self
            .cache
            .as_ref()
            .filter(|_| limits.cache && (req.method == Method::GET || req.method == Method::HEAD))
            .map(|cache| Through::new(cache.clone(), &self.dist, &origin, &req));
        let server = Server {
            origins: self.origins.clone(),
            metrics: self.metrics.clone(),
            origin,
            pool,
            max_response: limits.max_response,
        };
        let task = self.runtime.spawn(async move {
            let exchange = async {
                match through {
                    Some(through) => through.send(&server, req).await,
                    None => server.send(req).await,
                }
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

/// The declared server a request goes to, and what it may answer.
struct Server<O> {
    origins: Arc<O>,
    metrics: Arc<Metrics>,
    origin: Arc<Origin>,
    pool: PoolClient,
    max_response: usize,
}

impl<O: Origins> Server<O> {
    /// Sends `req` and reads the whole answer.
    async fn send(&self, req: Outgoing) -> Result<Answer, FetchError> {
        let upstream = build(&self.origin, req)?;
        self.metrics.record_origin_request();
        let to = OriginTarget {
            origin: &self.origin,
            pool: &self.pool,
        };
        let resp = self
            .origins
            .send(to, upstream)
            .await
            .map_err(|e| FetchError::Failed(e.to_string()))?;
        let (head, body) = resp.into_parts();
        let mut headers = head.headers;
        crate::fields::strip_hop_by_hop(&mut headers);
        Ok(Answer {
            status: head.status,
            headers,
            body: read_whole(body, self.max_response).await?,
            cache_hit: None,
        })
    }
}

/// A body read whole, refused past `max` bytes.
async fn read_whole<B>(mut body: B, max: usize) -> Result<Bytes, FetchError>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let mut got = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| FetchError::Failed(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            if got.len() + data.len() > max {
                return Err(FetchError::TooLarge(max));
            }
            got.extend_from_slice(&data);
        }
    }
    Ok(got.freeze())
}

/// A `GET` or `HEAD` that goes through the shared cache (`fetch.cache`).
///
/// It is keyed as a viewer's request is, by the distribution, the server's
/// id and fingerprint (a backend that moves starts afresh), the path and
/// query, and what the answer's `Vary` names; an arm of its own keeps it
/// apart from what viewers' requests store. A fresh stored answer is given
/// back with its `Age` (conditional and range requests answered as a
/// viewer's are); a stale one with a validator is revalidated; anything
/// else goes to the server, and its answer is stored when its freshness
/// (`Cache-Control`, `Expires`; no default TTL) allows. Path and tag
/// invalidations of the distribution reach these objects too. A request
/// with `Cache-Control: no-cache` (or `max-age=0`, or `Pragma: no-cache`)
/// is not answered from the cache, one with `no-store` is not stored.
struct Through {
    cache: SharedCache,
    tags: Tags,
}

/// The arm of the key of a hook's `fetch` answers.
const FETCH_ARM: &str = "fetch";

impl Through {
    fn new(cache: SharedCache, dist: &ServedDistribution, origin: &Origin, req: &Outgoing) -> Self {
        let (path, query) = match req.path_and_query.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (req.path_and_query.as_str(), None),
        };
        let host = String::from_utf8_lossy(origin.host_header.as_bytes());
        let base: Arc<str> = crate::cache::key::build(
            crate::cache::key::KeyParts {
                distribution_id: &dist.id,
                origin_id: &origin.id,
                origin_fingerprint: dist.config.fingerprint_of(&origin.id),
                arm: FETCH_ARM,
                method: &Method::GET,
                host: &host,
                path,
            },
            query,
            None,
            &HeaderMap::new(),
            &crate::config::CacheKeyPolicy::default(),
        )
        .into();
        let tags = Tags {
            distribution_id: dist.id.clone(),
            primary_id: dist.id.clone(),
            path: path.into(),
            base,
            cache_tags: Arc::from([]),
        };
        Self { cache, tags }
    }

    async fn send<O: Origins>(
        self,
        server: &Server<O>,
        mut req: Outgoing,
    ) -> Result<Answer, FetchError> {
        let directives = CacheControl::parse(&req.headers);
        let reload = directives.no_cache
            || directives.max_age == Some(0)
            || req
                .headers
                .get(PRAGMA)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"no-cache"));
        let key = self.cache.lookup_key(&self.tags.base, &req.headers);
        let stored = self.cache.lookup(&key).filter(|_| !reload);
        let now = Instant::now();
        if let Some(obj) = stored.as_ref().filter(|obj| obj.is_fresh(now)) {
            return answer_from(obj, &req.method, &req.headers, now, server.max_response).await;
        }
        if req.method == Method::HEAD {
            // Stored answers are GETs'; a HEAD's answer is not one.
            return server.send(req).await.map(missed);
        }
        let conditional = [
            IF_NONE_MATCH,
            IF_MODIFIED_SINCE,
            IF_MATCH,
            IF_UNMODIFIED_SINCE,
            RANGE,
        ]
        .iter()
        .any(|name| req.headers.contains_key(name));
        let revalidating = stored.filter(|obj| obj.status == StatusCode::OK && !conditional);
        let asked = req.headers.clone();
        if let Some(obj) = &revalidating {
            let (etag, modified) = obj.validators();
            if let Some(etag) = etag {
                req.headers.insert(IF_NONE_MATCH, etag.clone());
            }
            if let Some(modified) = modified {
                req.headers.insert(IF_MODIFIED_SINCE, modified.clone());
            }
        }
        let stamp = self.cache.stamp(&self.tags);
        let mut answer = server.send(req).await?;
        let ttl = crate::config::TtlPolicy::new(0, 0, crate::config::DEFAULT_MAX_TTL);
        let decide = |status, headers: &HeaderMap| {
            crate::cache::freshness::decide(
                &Method::GET,
                &asked,
                status,
                headers,
                ttl,
                false,
                SystemTime::now(),
            )
            .filter(|_| !directives.no_store)
        };
        let now = Instant::now();
        if let Some(obj) = revalidating.filter(|_| answer.status == StatusCode::NOT_MODIFIED) {
            let probe = obj.refreshed(&answer.headers, obj.freshness, now);
            let Some(freshness) = decide(probe.status, &probe.headers) else {
                return answer_from(&probe, &Method::GET, &asked, now, server.max_response)
                    .await
                    .map(missed);
            };
            let refreshed = Arc::new(probe.with_freshness(freshness));
            let key = self
                .cache
                .store_key(&self.tags.base, &asked, &refreshed.headers);
            self.cache.insert_arc(key, refreshed.clone(), stamp);
            return answer_from(&refreshed, &Method::GET, &asked, now, server.max_response)
                .await
                .map(missed);
        }
        if let Some(freshness) = decide(answer.status, &answer.headers) {
            let mut stored = answer.headers.clone();
            let mut tags = self.tags.clone();
            tags.cache_tags = crate::cache::tags::take(&mut stored, true);
            let key = self.cache.store_key(&self.tags.base, &asked, &stored);
            let obj = CachedObject::new(
                answer.status,
                stored,
                answer.body.clone(),
                now,
                freshness,
                tags,
            );
            self.cache.insert(key, obj, stamp);
        }
        answer.cache_hit = Some(false);
        Ok(answer)
    }
}

/// `answer` as one the cache did not give.
fn missed(mut answer: Answer) -> Answer {
    answer.cache_hit = Some(false);
    answer
}

/// The answer a stored object gives a request with `method` and `headers`,
/// as a viewer would get it (`Age`, `304`, ranges, no body for `HEAD`).
async fn answer_from(
    obj: &CachedObject,
    method: &Method,
    headers: &HeaderMap,
    now: Instant,
    max_response: usize,
) -> Result<Answer, FetchError> {
    let resp = super::stored::respond::<hyper::body::Incoming>(obj, method, headers, now);
    let (head, body) = resp.into_parts();
    Ok(Answer {
        status: head.status,
        headers: head.headers,
        body: read_whole(body, max_response).await?,
        cache_hit: Some(true),
    })
}

/// A spawned request, aborted when the hook waiting for it goes away.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The request as the server gets it: its `origin_path` before the path,
/// as the proxy's own requests have it, its `Host`, its custom headers, the
/// body with its length.
fn build(origin: &Origin, req: Outgoing) -> Result<Request<UpstreamBody>, FetchError> {
    let uri: Uri = format!(
        "{}://{}{}{}",
        origin.scheme, origin.authority, origin.origin_path, req.path_and_query
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
