//! Whether a response may be stored, and for how long (RFC 9111, clamped by the
//! behavior's min/default/max TTL as CloudFront does).

use std::time::{Duration, SystemTime};

use http::header::{AGE, AUTHORIZATION, CACHE_CONTROL, DATE, EXPIRES, SET_COOKIE, VARY};
use http::{HeaderMap, Method, StatusCode};

use crate::config::TtlPolicy;

/// The parsed `Cache-Control` directives this host acts on.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CacheControl {
    pub no_store: bool,
    pub no_cache: bool,
    pub private: bool,
    pub public: bool,
    pub must_revalidate: bool,
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
}

impl CacheControl {
    /// Parses every `Cache-Control` field line (names are case-insensitive; a
    /// malformed delta-seconds is treated as 0, per RFC 9111 1.2.2).
    pub fn parse(headers: &HeaderMap) -> Self {
        let mut cc = Self::default();
        for value in headers.get_all(CACHE_CONTROL) {
            let Ok(value) = value.to_str() else { continue };
            for directive in value.split(',') {
                let (name, arg) = match directive.split_once('=') {
                    Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                    None => (directive.trim(), None),
                };
                let seconds = || arg.map(|a| a.parse::<u64>().unwrap_or(0));
                match name.to_ascii_lowercase().as_str() {
                    "no-store" => cc.no_store = true,
                    "no-cache" => cc.no_cache = true,
                    "private" => cc.private = true,
                    "public" => cc.public = true,
                    "must-revalidate" | "proxy-revalidate" => cc.must_revalidate = true,
                    "max-age" => cc.max_age = cc.max_age.or(seconds()),
                    "s-maxage" => cc.s_maxage = cc.s_maxage.or(seconds()),
                    _ => {}
                }
            }
        }
        cc
    }
}

/// How long a stored response stays fresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// Freshness lifetime after the TTL clamp.
    pub ttl: Duration,
    /// The response's corrected initial age.
    pub initial_age: Duration,
}

/// Statuses that may be stored on the behavior's `default_ttl` when the origin
/// gives no explicit freshness (RFC 9110 15.1 "heuristically cacheable").
fn heuristically_cacheable(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// Decides whether a response to `method` (with the request's `req_headers`)
/// may be stored, and its freshness. `None` means "do not store".
///
/// Not stored: `no-store`, `private`, `no-cache` (until revalidation lands),
/// `Set-Cookie`, `Vary` (until variants land), requests with `Authorization`
/// unless the response says `public`/`s-maxage`/`must-revalidate`, partial and
/// non-final statuses, and anything whose clamped lifetime is already over.
pub fn decide(
    method: &Method,
    req_headers: &HeaderMap,
    status: StatusCode,
    headers: &HeaderMap,
    ttl: TtlPolicy,
    response_time: SystemTime,
) -> Option<Freshness> {
    if !(method == Method::GET || method == Method::HEAD) {
        return None;
    }
    if status.is_informational() || matches!(status.as_u16(), 206 | 304) {
        return None;
    }
    let cc = CacheControl::parse(headers);
    if cc.no_store || cc.private || cc.no_cache {
        return None;
    }
    if headers.contains_key(SET_COOKIE) || headers.contains_key(VARY) {
        return None;
    }
    if req_headers.contains_key(AUTHORIZATION)
        && !(cc.public || cc.s_maxage.is_some() || cc.must_revalidate)
    {
        return None;
    }

    let date = http_date(headers, DATE);
    let explicit = cc.s_maxage.or(cc.max_age).or_else(|| {
        // Expires relative to Date (or to the response time without one); an
        // invalid Expires means "already expired" (RFC 9111 5.3).
        headers.get(EXPIRES).map(|_| {
            let expires = http_date(headers, EXPIRES).unwrap_or(SystemTime::UNIX_EPOCH);
            expires
                .duration_since(date.unwrap_or(response_time))
                .map_or(0, |d| d.as_secs())
        })
    });
    let lifetime = match explicit {
        Some(secs) => secs.clamp(ttl.min, ttl.max),
        None if heuristically_cacheable(status) => ttl.default,
        None => return None,
    };

    let age_value = headers
        .get(AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let apparent_age = date
        .and_then(|d| response_time.duration_since(d).ok())
        .map_or(0, |d| d.as_secs());
    let initial_age = Duration::from_secs(age_value.max(apparent_age));
    let ttl = Duration::from_secs(lifetime);
    (ttl > initial_age).then_some(Freshness { ttl, initial_age })
}

fn http_date(headers: &HeaderMap, name: http::header::HeaderName) -> Option<SystemTime> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: TtlPolicy = TtlPolicy {
        min: 0,
        default: 100,
        max: 1000,
    };

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn ttl_of(pairs: &[(&str, &str)], policy: TtlPolicy) -> Option<u64> {
        decide(
            &Method::GET,
            &HeaderMap::new(),
            StatusCode::OK,
            &headers(pairs),
            policy,
            SystemTime::now(),
        )
        .map(|f| f.ttl.as_secs())
    }

    #[test]
    fn s_maxage_beats_max_age_beats_expires() {
        assert_eq!(
            ttl_of(&[("cache-control", "max-age=50, s-maxage=70")], TTL),
            Some(70)
        );
        assert_eq!(ttl_of(&[("cache-control", "max-age=50")], TTL), Some(50));
        let now = SystemTime::now();
        let date = httpdate::fmt_http_date(now);
        let expires = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            ttl_of(&[("date", &date), ("expires", &expires)], TTL),
            Some(30)
        );
        assert_eq!(
            ttl_of(
                &[("expires", "0")],
                TtlPolicy {
                    min: 0,
                    default: 100,
                    max: 1000
                }
            ),
            None
        );
    }

    #[test]
    fn ttls_are_clamped_and_defaulted() {
        assert_eq!(
            ttl_of(&[("cache-control", "max-age=5000")], TTL),
            Some(1000)
        );
        assert_eq!(
            ttl_of(
                &[("cache-control", "max-age=1")],
                TtlPolicy { min: 10, ..TTL }
            ),
            Some(10)
        );
        assert_eq!(ttl_of(&[], TTL), Some(100));
        assert_eq!(
            ttl_of(
                &[],
                TtlPolicy {
                    min: 0,
                    default: 0,
                    max: 1000
                }
            ),
            None
        );
    }

    #[test]
    fn what_is_never_stored() {
        for cc in ["no-store", "private", "no-cache", "max-age=60, private"] {
            assert_eq!(ttl_of(&[("cache-control", cc)], TTL), None, "{cc}");
        }
        assert_eq!(ttl_of(&[("set-cookie", "a=b")], TTL), None);
        assert_eq!(ttl_of(&[("vary", "accept")], TTL), None);
        let auth = headers(&[("authorization", "Bearer x")]);
        let ok = headers(&[("cache-control", "max-age=60")]);
        assert!(
            decide(
                &Method::GET,
                &auth,
                StatusCode::OK,
                &ok,
                TTL,
                SystemTime::now()
            )
            .is_none()
        );
        let public = headers(&[("cache-control", "public, max-age=60")]);
        assert!(
            decide(
                &Method::GET,
                &auth,
                StatusCode::OK,
                &public,
                TTL,
                SystemTime::now()
            )
            .is_some()
        );
        assert!(
            decide(
                &Method::POST,
                &HeaderMap::new(),
                StatusCode::OK,
                &ok,
                TTL,
                SystemTime::now()
            )
            .is_none()
        );
    }

    #[test]
    fn errors_need_explicit_freshness() {
        let none = HeaderMap::new();
        let now = SystemTime::now();
        assert!(
            decide(
                &Method::GET,
                &none,
                StatusCode::INTERNAL_SERVER_ERROR,
                &none,
                TTL,
                now
            )
            .is_none()
        );
        assert!(
            decide(
                &Method::GET,
                &none,
                StatusCode::BAD_REQUEST,
                &none,
                TTL,
                now
            )
            .is_none()
        );
        assert!(decide(&Method::GET, &none, StatusCode::NOT_FOUND, &none, TTL, now).is_some());
    }

    #[test]
    fn age_counts_against_the_lifetime() {
        let f = decide(
            &Method::GET,
            &HeaderMap::new(),
            StatusCode::OK,
            &headers(&[("cache-control", "max-age=60"), ("age", "20")]),
            TTL,
            SystemTime::now(),
        )
        .unwrap();
        assert_eq!(f.initial_age, Duration::from_secs(20));
        assert!(ttl_of(&[("cache-control", "max-age=60"), ("age", "60")], TTL).is_none());
    }
}
