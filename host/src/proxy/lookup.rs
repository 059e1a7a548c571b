//! Phase 5, lookup: the cache answers a GET or HEAD when it holds a fresh
//! (or servable stale) object, in memory or in the disk tier; concurrent misses of a whole GET wait for one
//! origin fetch (collapsed forwarding). Also the cache key, and the
//! invalidation a successful write makes.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{CONTENT_LOCATION, LOCATION, RANGE};
use http::{HeaderMap, Method, Response, Uri};
use tracing::Instrument as _;

use crate::cache::flight::{self, Flight, FlightGuard, Landing};
use crate::cache::{self, CacheStatus, CachedObject};
use crate::config::{Behavior, Target};
use crate::origin::Origins;

use super::Proxy;
use super::body::EdgeBody;
use super::ctx::{Exchange, RequestCtx, Trip};
use super::routing::ServedDistribution;
use super::stored;

/// How many times a request waits for another's fetch of its key before it
/// fetches on its own.
const MAX_FOLLOWS: usize = 3;

impl<O: Origins> Proxy<O> {
    /// Answers from the cache, or leaves `trip` ready for the origin: with
    /// the stale object to revalidate and, when this request leads the fetch
    /// of its key, the flight's guard. HEAD is answered from a stored GET.
    pub(super) async fn lookup(
        &self,
        ctx: &mut RequestCtx,
        trip: &mut Trip<'_>,
        base: &Arc<str>,
    ) -> Option<Response<EdgeBody<O::Body>>> {
        let ex = trip.ex;
        let collapse = ex.method == Method::GET && !ex.headers.contains_key(RANGE);
        for _ in 0..MAX_FOLLOWS {
            let now = Instant::now();
            // A resource that varies is looked up by the variant this viewer
            // asks for (what it varies on may have been learnt meanwhile).
            let key = self.cache.lookup_key(base, &ex.headers);
            let found = match self.cache.lookup(&key) {
                Some(obj) => Some(obj),
                // What memory let go may still be on disk.
                None => self.cache.load(&key).await,
            };
            match found {
                Some(obj) if obj.is_fresh(now) => {
                    ctx.cache_status = CacheStatus::Hit;
                    ctx.tags = Some(obj.tags.cache_tags.clone());
                    return Some(stored::respond(&obj, &ex.method, &ex.headers, now));
                }
                Some(obj) if obj.stale_within(now, obj.freshness.stale_while_revalidate) => {
                    // Serve it stale; one background request revalidates it.
                    if let Flight::Leader(guard) = self.cache.flights.join(&key) {
                        self.refresh_in_background(ctx, trip, obj.clone(), guard);
                    }
                    ctx.cache_status = CacheStatus::Hit;
                    ctx.tags = Some(obj.tags.cache_tags.clone());
                    return Some(stored::respond(&obj, &ex.method, &ex.headers, now));
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
                    let patience = self.patience(trip.dist, &trip.out.target_id);
                    if flight::follow(rx, patience).await == Landing::Pass {
                        break;
                    }
                }
            }
        }
        None
    }

    /// Drops what is stored for the request's URI and for the same-host URIs
    /// its response names in `Location` and `Content-Location`.
    pub(super) fn invalidate_written(
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
    pub(super) fn patience(&self, dist: &ServedDistribution, target_id: &str) -> Duration {
        let read = match dist.config.targets.get(target_id) {
            Some(Target::Origin(i)) => dist.config.origins[*i].read_timeout,
            Some(Target::Group { members, .. }) => members
                .iter()
                .map(|i| dist.config.origins[*i].read_timeout)
                .sum(),
            None => dist
                .config
                .dynamic_origins
                .as_ref()
                .filter(|_| target_id.starts_with(crate::config::dynamic::DYNAMIC_PREFIX))
                .map_or(Duration::ZERO, |d| d.read_timeout()),
        };
        read + Duration::from_secs(1)
    }

    /// Revalidates a stale object with a request of its own, off the
    /// viewer's path (`stale-while-revalidate`), through the key's owner
    /// in a cache cluster; the guard keeps the other viewers of the key from
    /// starting another. It is made for the viewer's arm and address.
    fn refresh_in_background(
        &self,
        viewer: &RequestCtx,
        trip: &Trip<'_>,
        stale: Arc<CachedObject>,
        guard: FlightGuard,
    ) {
        let Some(this) = self.this.upgrade() else {
            return;
        };
        let mut ctx = RequestCtx::new(viewer.client, viewer.tls);
        ctx.staging = viewer.staging;
        ctx.primary_id.clone_from(&viewer.primary_id);
        let (dist, host, index, ex, out, base) = (
            trip.dist.clone(),
            trip.host.to_owned(),
            trip.index,
            trip.ex.clone(),
            trip.out.clone(),
            trip.base.clone(),
        );
        tokio::spawn(async move {
            let trip = Trip {
                dist: &dist,
                host: &host,
                index,
                ex: &ex,
                out,
                base,
                stale: Some(stale),
                guard: Some(guard),
            };
            let span = tracing::debug_span!("revalidate", id = %ctx.request_id);
            let result = this.fill(&mut ctx, trip).instrument(span).await;
            // Drain the body so a new response is stored as it passes.
            if let Ok(resp) = result {
                let _ = http_body_util::BodyExt::collect(resp.into_body()).await;
            }
        });
    }
}

/// The cache key of a `GET` of `path`/`query` on `target` for this viewer
/// (HEAD shares it).
#[expect(
    clippy::too_many_arguments,
    reason = "the parts of a key, each distinct"
)]
pub(super) fn cache_key(
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
