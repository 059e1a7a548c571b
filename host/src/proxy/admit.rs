//! Phase 9, admit: whether and how long a response may be stored, and its
//! store, whole or copied as it streams to the viewer; a `304` from a
//! revalidation refreshes the stored object instead.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{HeaderMap, Method, StatusCode};
use http_body::Body as _;

use crate::cache::flight::{FlightGuard, Landing};
use crate::cache::freshness::Freshness;
use crate::cache::{self, CachedObject, Stamp, Tags};
use crate::config::Behavior;
use crate::origin::Origins;

use super::Proxy;
use super::body::{EdgeBody, OriginBody, Tee};
use super::ctx::{Exchange, RequestCtx};
use super::routing::ServedDistribution;

/// Where a response may be stored: its tags and invalidation stamp (none
/// for a request whose response is never stored), and the flight it lands.
pub(super) struct Slot {
    pub store: Option<(Tags, Stamp)>,
    pub guard: Option<FlightGuard>,
}

impl Slot {
    /// Tags what will be stored with the tags its response named.
    pub fn tag(&mut self, cache_tags: Arc<[Arc<str>]>) {
        if let Some((tags, _)) = &mut self.store {
            tags.cache_tags = cache_tags;
        }
    }
}

/// The body a response to be admitted has; `B` is the origin's.
pub(super) enum Fetched<B> {
    /// A body in hand: a hook's, or the origin's read whole for one.
    Whole(Bytes),
    /// The origin's, still to stream after what was `read` of it already
    /// (for an origin-response hook that includes the body).
    Origin {
        read: Bytes,
        incoming: B,
        read_timeout: Duration,
        /// Compresses the body on its way (see [`super::compress`]).
        encoder: Option<Box<super::compress::Encoder>>,
    },
}

impl<O: Origins> Proxy<O> {
    /// Where what this request fetches may be stored: only a GET stores (a
    /// HEAD has no body to keep), under the resource's base key, tagged for
    /// invalidations, unless an invalidation from here on says otherwise.
    pub(super) fn slot(
        &self,
        dist: &ServedDistribution,
        ctx: &RequestCtx,
        ex: &Exchange,
        base: Option<Arc<str>>,
        guard: Option<FlightGuard>,
    ) -> Slot {
        let store = base.filter(|_| ex.method == Method::GET).map(|base| {
            let tags = self.tags(dist, ctx, &ex.path, base);
            let stamp = self.cache.stamp(&tags);
            (tags, stamp)
        });
        Slot { store, guard }
    }

    /// Stores the response when it may be, and gives the body the viewer
    /// gets: a streamed body is copied into the cache as it passes.
    pub(super) fn admit(
        &self,
        ex: &Exchange,
        behavior: &Behavior,
        slot: Slot,
        head: &http::response::Parts,
        fetched: Fetched<O::Body>,
    ) -> EdgeBody<O::Body> {
        let Slot { store, guard } = slot;
        let freshness = store
            .as_ref()
            .and_then(|_| self.freshness(ex, head.status, &head.headers, behavior));
        let (Some((tags, stamp)), Some(freshness)) = (store, freshness) else {
            // Followers need not wait for what will not be stored.
            land(guard, Landing::Pass);
            return match fetched {
                Fetched::Whole(body) => EdgeBody::full(body),
                Fetched::Origin { .. } if ex.method == Method::HEAD => EdgeBody::Empty,
                Fetched::Origin {
                    read,
                    incoming,
                    read_timeout,
                    encoder,
                } => EdgeBody::Origin(Box::new(
                    OriginBody::after(read, incoming, read_timeout, None).encoded(encoder),
                )),
            };
        };
        let key = self.cache.store_key(&tags.base, &ex.headers, &head.headers);
        match fetched {
            Fetched::Whole(body) => {
                let object = (head.status, head.headers.clone(), body.clone());
                self.store_whole((key, tags, stamp), object, freshness, guard);
                EdgeBody::full(body)
            }
            Fetched::Origin {
                read,
                incoming,
                read_timeout,
                encoder,
            } => {
                let tee = self.tee(head, key, freshness, tags, stamp, guard);
                // No body follows (a 204, or an empty body the viewer's
                // connection will never poll): the exchange is complete now.
                if head.status == StatusCode::NO_CONTENT
                    || (read.is_empty() && incoming.is_end_stream())
                {
                    if let Some(tee) = tee {
                        tee.complete_empty();
                    }
                    EdgeBody::Empty
                } else {
                    EdgeBody::Origin(Box::new(
                        OriginBody::after(read, incoming, read_timeout, tee).encoded(encoder),
                    ))
                }
            }
        }
    }

    /// A stale object a `304` says is still good, with its headers and
    /// freshness refreshed (and stored again when it may be).
    pub(super) fn refresh(
        &self,
        ex: &Exchange,
        behavior: &Behavior,
        obj: &CachedObject,
        answered: &HeaderMap,
        slot: Slot,
    ) -> Arc<CachedObject> {
        let now = Instant::now();
        let probe = obj.refreshed(answered, obj.freshness, now);
        match self.freshness(ex, obj.status, &probe.headers, behavior) {
            Some(freshness) => {
                let refreshed = Arc::new(probe.with_freshness(freshness));
                if let Some((tags, stamp)) = slot.store {
                    let key = self
                        .cache
                        .store_key(&tags.base, &ex.headers, &refreshed.headers);
                    self.cache.insert_arc(key, refreshed.clone(), stamp);
                    land(slot.guard, Landing::Stored);
                }
                refreshed
            }
            None => Arc::new(probe),
        }
    }

    /// The admit phase's decision: whether and how long a response may be stored.
    pub(super) fn freshness(
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
        .map(|f| f.kept_for_outages(behavior.serve_stale_on_error))
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
            cache_tags: Arc::from([]),
        }
    }

    /// Stores a response whose body is already whole under `key`, then lands
    /// the flight.
    pub(super) fn store_whole(
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

/// Lands a flight, if this request leads one.
pub(super) fn land(guard: Option<FlightGuard>, how: Landing) {
    if let Some(guard) = guard {
        guard.land(how);
    }
}
