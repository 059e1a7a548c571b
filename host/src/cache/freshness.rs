//! Whether a response may be stored, and for how long (RFC 9111, clamped by the
//! behavior's min/default/max TTL as CloudFront does).

use std::convert::Infallible;
use std::time::{Duration, SystemTime};

use http::header::{
    AGE, AUTHORIZATION, CACHE_CONTROL, DATE, ETAG, EXPIRES, HeaderName, HeaderValue, LAST_MODIFIED,
    SET_COOKIE,
};

/// `CDN-Cache-Control` (RFC 9213): cache directives for CDNs alone.
pub static CDN_CACHE_CONTROL: HeaderName = HeaderName::from_static("cdn-cache-control");
/// `Surrogate-Control` (the W3C Edge Architecture note): the older form.
pub static SURROGATE_CONTROL: HeaderName = HeaderName::from_static("surrogate-control");
/// The target name this cache answers to in `Surrogate-Control`.
pub const SURROGATE_TARGET: &str = "edge";
/// The largest delta-seconds this cache acts on (2^31, RFC 9111 1.2.2): a
/// greater `max-age`, `s-maxage`, `stale-*`, `Age` or TTL counts as this, so
/// no later sum of durations can overflow.
pub const DELTA_MAX: u64 = 1 << 31;
use http::{HeaderMap, Method, StatusCode};

use crate::config::TtlPolicy;

/// The parsed `Cache-Control` directives this host acts on.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CacheControl {
    pub no_store: bool,
    /// `must-understand`: store only responses whose status this cache knows.
    pub must_understand: bool,
    pub no_cache: bool,
    pub private: bool,
    pub public: bool,
    /// `must-revalidate` or `proxy-revalidate`.
    pub must_revalidate: bool,
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
    pub stale_while_revalidate: Option<u64>,
    pub stale_if_error: Option<u64>,
}

impl CacheControl {
    /// Parses every `Cache-Control` field line (names are case-insensitive; a
    /// malformed delta-seconds is treated as 0, and one greater than
    /// [`DELTA_MAX`] as [`DELTA_MAX`], per RFC 9111 1.2.2).
    pub fn parse(headers: &HeaderMap) -> Self {
        Self::parse_field(headers, &CACHE_CONTROL, None)
    }

    /// Parses the lines of `field` as a structured-field dictionary (RFC 9651
    /// 3.2), the syntax of `CDN-Cache-Control` (RFC 9213 2.1): the lines are
    /// one list, keys are lower case, and each directive this cache reads
    /// must have the type it takes (`max-age` a non-negative Integer, so not
    /// `"60"`, `60.0` or `-1`; `no-store` a Boolean). An error means the
    /// field is not valid and the cache ignores it altogether.
    pub fn parse_structured(headers: &HeaderMap, field: &HeaderName) -> Result<Self, sfv::Error> {
        let mut lines = headers.get_all(field).iter();
        let first = lines.next().map_or(&b""[..], HeaderValue::as_bytes);
        let mut joined = Vec::new();
        for line in lines {
            if joined.is_empty() {
                joined.extend_from_slice(first);
            }
            joined.extend_from_slice(b", ");
            joined.extend_from_slice(line.as_bytes());
        }
        let value = if joined.is_empty() { first } else { &joined };
        sfv::Parser::new(value).parse_dictionary_with_visitor(Directives::default())
    }

    /// Parses the lines of `field`. With `target`, a directive may name the
    /// cache it is meant for after a `;` (`max-age=60;edge`, Surrogate-Control's
    /// syntax): one for another target is skipped.
    fn parse_field(headers: &HeaderMap, field: &HeaderName, target: Option<&str>) -> Self {
        let mut cc = Self::default();
        for value in headers.get_all(field) {
            let Ok(value) = value.to_str() else { continue };
            for directive in value.split(',') {
                let directive = match (target, directive.split_once(';')) {
                    (Some(me), Some((d, t))) if t.trim() == me => d,
                    (Some(_), Some(_)) => continue,
                    _ => directive,
                };
                let (name, arg) = match directive.split_once('=') {
                    Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                    None => (directive.trim(), None),
                };
                cc.set(&name.to_ascii_lowercase(), arg.map(delta_seconds));
            }
        }
        cc
    }

    /// Records directive `name` (lower-case), with `seconds` for one that
    /// takes them: a flag is set, a number is kept unless an earlier
    /// instance gave one (unknown names are ignored).
    fn set(&mut self, name: &str, seconds: Option<u64>) {
        match name {
            "no-store" => self.no_store = true,
            "must-understand" => self.must_understand = true,
            "no-cache" => self.no_cache = true,
            "private" => self.private = true,
            "public" => self.public = true,
            "must-revalidate" | "proxy-revalidate" => self.must_revalidate = true,
            "max-age" => self.max_age = self.max_age.or(seconds),
            "s-maxage" => self.s_maxage = self.s_maxage.or(seconds),
            "stale-while-revalidate" => {
                self.stale_while_revalidate = self.stale_while_revalidate.or(seconds);
            }
            "stale-if-error" => self.stale_if_error = self.stale_if_error.or(seconds),
            _ => {}
        }
    }
}

/// How long a stored response stays fresh, and how it may be used once stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// Freshness lifetime after the TTL clamp.
    pub ttl: Duration,
    /// The response's corrected initial age.
    pub initial_age: Duration,
    /// Past `ttl`, how long it may be served while one background request
    /// revalidates it (`stale-while-revalidate`).
    pub stale_while_revalidate: Duration,
    /// Past `ttl`, how long it may be served when the origin fails
    /// (`stale-if-error`).
    pub stale_if_error: Duration,
    /// Never served stale (`must-revalidate`, `proxy-revalidate`, `s-maxage`,
    /// `no-cache`): once stale, only a revalidation may serve it again.
    pub must_revalidate: bool,
    /// Kept past its freshness, validator or not, to be served while the
    /// origin cannot be reached (the behavior's `serve_stale_on_error`; see
    /// [`Self::kept_for_outages`]).
    pub keep_stale: bool,
}

impl Freshness {
    /// With `serve_stale_on_error` (the behavior's), the response is kept
    /// past its freshness to be served while the origin cannot be reached
    /// (RFC 9111 4.2.4); never one that may not be served stale.
    pub fn kept_for_outages(self, serve_stale_on_error: bool) -> Self {
        Self {
            keep_stale: serve_stale_on_error && !self.must_revalidate,
            ..self
        }
    }

    /// The age up to which the response may be served at all: fresh, then
    /// stale within the longer `stale-*` window (saturating, never panics).
    pub fn usable_until(&self) -> Duration {
        self.ttl
            .saturating_add(self.stale_while_revalidate.max(self.stale_if_error))
    }
}

/// Whether a response carries a validator (`ETag` or `Last-Modified`), so a
/// stale copy can be revalidated instead of fetched again.
pub fn has_validator(headers: &HeaderMap) -> bool {
    headers.contains_key(ETAG) || headers.contains_key(LAST_MODIFIED)
}

/// The directives this cache obeys: a targeted field when the origin sends a
/// valid one (`CDN-Cache-Control`, else `Surrogate-Control` with directives
/// untargeted or targeted at [`SURROGATE_TARGET`]), which then replaces
/// `Cache-Control` and `Expires` altogether (RFC 9213 2.1); else
/// `Cache-Control`. A `CDN-Cache-Control` that is not a valid structured
/// dictionary ([`CacheControl::parse_structured`]) is ignored, as if absent.
/// The flag says whether a targeted field was used.
pub fn effective_cache_control(headers: &HeaderMap) -> (CacheControl, bool) {
    let targeted = [
        headers
            .contains_key(&CDN_CACHE_CONTROL)
            .then(|| CacheControl::parse_structured(headers, &CDN_CACHE_CONTROL).ok())
            .flatten(),
        headers.contains_key(&SURROGATE_CONTROL).then(|| {
            CacheControl::parse_field(headers, &SURROGATE_CONTROL, Some(SURROGATE_TARGET))
        }),
    ];
    match targeted
        .into_iter()
        .flatten()
        .find(|cc| *cc != CacheControl::default())
    {
        Some(cc) => (cc, true),
        None => (CacheControl::parse(headers), false),
    }
}

/// A directive of a structured field whose value has a type the directive
/// cannot take, which makes the whole field invalid.
#[derive(Debug, thiserror::Error)]
pub enum DirectiveError {
    #[error("the value of {directive} is not {expected}")]
    WrongType {
        directive: &'static str,
        expected: &'static str,
    },
}

/// The value types a cache directive takes, as RFC 9213 2.1 maps them onto
/// structured fields.
#[derive(Debug, Clone, Copy)]
enum Takes {
    /// No value: a Boolean (`true` when written bare).
    Flag,
    /// No value, or a list of field names (`no-cache="set-cookie"`, read as
    /// the unqualified directive).
    FlagOrNames,
    /// A non-negative Integer (delta-seconds).
    Seconds,
}

impl Takes {
    fn expected(self) -> &'static str {
        match self {
            Self::Flag => "a Boolean",
            Self::FlagOrNames => "a Boolean, a String or a Token",
            Self::Seconds => "a non-negative Integer",
        }
    }
}

/// The directives [`CacheControl::parse_structured`] reads; others are
/// extensions, skipped whatever their value.
const STRUCTURED: [(&str, Takes); 11] = [
    ("no-store", Takes::Flag),
    ("must-understand", Takes::Flag),
    ("no-cache", Takes::FlagOrNames),
    ("private", Takes::FlagOrNames),
    ("public", Takes::Flag),
    ("must-revalidate", Takes::Flag),
    ("proxy-revalidate", Takes::Flag),
    ("max-age", Takes::Seconds),
    ("s-maxage", Takes::Seconds),
    ("stale-while-revalidate", Takes::Seconds),
    ("stale-if-error", Takes::Seconds),
];

/// What the last instance of one of the [`STRUCTURED`] directives said.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Said {
    #[default]
    Nothing,
    /// Present (a `false` Boolean counts as absent).
    Set,
    Seconds(u64),
    WrongType,
}

impl Said {
    fn read(takes: Takes, value: &sfv::BareItemFromInput<'_>) -> Self {
        use sfv::GenericBareItem as Item;
        match (takes, value) {
            (Takes::Flag | Takes::FlagOrNames, Item::Boolean(set)) => {
                if *set {
                    Self::Set
                } else {
                    Self::Nothing
                }
            }
            (Takes::FlagOrNames, Item::String(_) | Item::Token(_)) => Self::Set,
            (Takes::Seconds, Item::Integer(n)) => {
                u64::try_from(*n).map_or(Self::WrongType, |n| Self::Seconds(n.min(DELTA_MAX)))
            }
            _ => Self::WrongType,
        }
    }
}

/// Reads a structured dictionary of cache directives into [`STRUCTURED`]'s
/// slots: a later instance of a directive replaces an earlier one (RFC 9651
/// 4.2.2), parameters are ignored.
#[derive(Debug, Default)]
struct Directives {
    said: [Said; STRUCTURED.len()],
}

/// One directive's value on its way into its slot.
struct Slot<'a> {
    said: &'a mut Said,
    takes: Takes,
}

impl<'de> sfv::visitor::DictionaryVisitor<'de> for Directives {
    type Out = CacheControl;
    type Error = DirectiveError;

    fn entry(
        &mut self,
        key: &'de sfv::KeyRef,
    ) -> Result<impl sfv::visitor::EntryVisitor<'de>, Self::Error> {
        let at = STRUCTURED
            .iter()
            .position(|(name, _)| *name == key.as_str());
        Ok(at.and_then(|at| {
            let takes = STRUCTURED[at].1;
            self.said.get_mut(at).map(|said| Slot { said, takes })
        }))
    }

    fn finish(self) -> Result<CacheControl, DirectiveError> {
        let mut cc = CacheControl::default();
        for ((directive, takes), said) in STRUCTURED.iter().zip(self.said) {
            let seconds = match said {
                Said::Nothing => continue,
                Said::WrongType => {
                    return Err(DirectiveError::WrongType {
                        directive,
                        expected: takes.expected(),
                    });
                }
                Said::Set => None,
                Said::Seconds(n) => Some(n),
            };
            // Each directive comes once here, as its last instance said.
            cc.set(directive, seconds);
        }
        Ok(cc)
    }
}

impl<'de> sfv::visitor::EntryVisitor<'de> for Slot<'_> {
    type Error = Infallible;

    fn item(self) -> Result<impl sfv::visitor::ItemVisitor<'de>, Self::Error> {
        Ok(self)
    }

    fn inner_list(self) -> Result<impl sfv::visitor::InnerListVisitor<'de>, Self::Error> {
        *self.said = Said::WrongType;
        Ok(sfv::visitor::Ignored)
    }
}

impl<'de> sfv::visitor::ItemVisitor<'de> for Slot<'_> {
    type Out = ();
    type Error = Infallible;

    fn bare_item(
        self,
        value: sfv::BareItemFromInput<'de>,
    ) -> Result<impl sfv::visitor::ParameterVisitor<'de, Out = ()>, Self::Error> {
        *self.said = Said::read(self.takes, &value);
        Ok(sfv::visitor::Ignored)
    }
}

/// A delta-seconds argument (RFC 9111 1.2.2): digits, saturated at
/// [`DELTA_MAX`]; anything else is 0.
fn delta_seconds(text: &str) -> u64 {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return 0;
    }
    text.parse::<u64>().map_or(DELTA_MAX, |n| n.min(DELTA_MAX))
}

/// Statuses whose caching rules this cache implements, for `must-understand`.
fn understood(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203
            | 204
            | 206
            | 300
            | 301
            | 302
            | 303
            | 304
            | 307
            | 308
            | 400
            | 403
            | 404
            | 405
            | 410
            | 414
            | 451
            | 500
            | 501
            | 502
            | 503
            | 504
    )
}

/// The `Age` a response carries (RFC 9111 5.1): the first value when the
/// field is a list or repeated; a value that is not delta-seconds (`abc`,
/// `-7200`, `7200.0`) is ignored, as if there were none; one past 2^31 is
/// saturated at [`DELTA_MAX`], so it still means stale.
fn age_of(headers: &HeaderMap) -> u64 {
    let Some(first) = headers.get(AGE) else {
        return 0;
    };
    let text = first.to_str().unwrap_or("");
    let text = text.split(',').next().unwrap_or("").trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return 0;
    }
    delta_seconds(text)
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
/// Not stored: `no-store`, `private`, `Set-Cookie` unless `store_set_cookie`,
/// `Vary: *`, requests with `Authorization` unless the
/// response says `public`/`s-maxage`/`must-revalidate`, partial and
/// non-final statuses, `must-understand` with a status this cache does not
/// know, and anything already stale that has neither a validator to
/// revalidate it with nor a `stale-*` window to serve it in. `no-cache` is
/// stored stale: every use revalidates it first.
pub fn decide(
    method: &Method,
    req_headers: &HeaderMap,
    status: StatusCode,
    headers: &HeaderMap,
    ttl: TtlPolicy,
    store_set_cookie: bool,
    response_time: SystemTime,
) -> Option<Freshness> {
    if !(method == Method::GET || method == Method::HEAD) {
        return None;
    }
    if status.is_informational() || matches!(status.as_u16(), 206 | 304) {
        return None;
    }
    let (cc, targeted) = effective_cache_control(headers);
    if cc.no_store || cc.private || (cc.must_understand && !understood(status)) {
        return None;
    }
    if (headers.contains_key(SET_COOKIE) && !store_set_cookie)
        || super::vary_names(headers).is_none()
    {
        return None;
    }
    if req_headers.contains_key(AUTHORIZATION)
        && !(cc.public || cc.s_maxage.is_some() || cc.must_revalidate)
    {
        return None;
    }

    let date = http_date(headers, DATE);
    let expires = headers.contains_key(EXPIRES) && !targeted;
    let explicit = cc.s_maxage.or(cc.max_age).or_else(|| {
        // Expires relative to Date (or to the response time without one); an
        // invalid Expires means "already expired" (RFC 9111 5.3).
        expires.then(|| {
            let expires = http_date(headers, EXPIRES).unwrap_or(SystemTime::UNIX_EPOCH);
            expires
                .duration_since(date.unwrap_or(response_time))
                .map_or(0, |d| d.as_secs())
        })
    });
    let lifetime = match explicit {
        _ if cc.no_cache => 0,
        Some(secs) => secs.max(ttl.min).min(ttl.max),
        None if heuristically_cacheable(status) => ttl.heuristic(status.as_u16()),
        None => return None,
    }
    .min(DELTA_MAX);

    let age_value = age_of(headers);
    let apparent_age = date
        .and_then(|d| response_time.duration_since(d).ok())
        .map_or(0, |d| d.as_secs());
    let initial_age = Duration::from_secs(age_value.max(apparent_age).min(DELTA_MAX));
    let must_revalidate = cc.must_revalidate || cc.s_maxage.is_some() || cc.no_cache;
    let window = |secs: Option<u64>| {
        if must_revalidate {
            Duration::ZERO
        } else {
            Duration::from_secs(secs.unwrap_or(0).min(DELTA_MAX))
        }
    };
    let freshness = Freshness {
        ttl: Duration::from_secs(lifetime),
        initial_age,
        stale_while_revalidate: window(cc.stale_while_revalidate),
        stale_if_error: window(cc.stale_if_error),
        must_revalidate,
        keep_stale: false,
    };
    let usable = freshness.usable_until() > initial_age;
    (usable || has_validator(headers)).then_some(freshness)
}

fn http_date(headers: &HeaderMap, name: HeaderName) -> Option<SystemTime> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: TtlPolicy = TtlPolicy::new(0, 100, 1000);

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
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
            false,
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
            ttl_of(&[("expires", "0")], TtlPolicy::new(0, 100, 1000)),
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
        assert_eq!(ttl_of(&[], TtlPolicy::new(0, 0, 1000)), None);
    }

    #[test]
    fn what_is_never_stored() {
        for cc in ["no-store", "private", "no-cache", "max-age=60, private"] {
            assert_eq!(ttl_of(&[("cache-control", cc)], TTL), None, "{cc}");
        }
        // With a validator, no-cache is stored, stale, to be revalidated.
        assert_eq!(
            ttl_of(&[("cache-control", "no-cache"), ("etag", "\"v1\"")], TTL),
            Some(0)
        );
        assert_eq!(ttl_of(&[("set-cookie", "a=b")], TTL), None);
        assert_eq!(ttl_of(&[("vary", "accept")], TTL), Some(100));
        assert_eq!(ttl_of(&[("vary", "accept, *")], TTL), None);
        let auth = headers(&[("authorization", "Bearer x")]);
        let ok = headers(&[("cache-control", "max-age=60")]);
        assert!(
            decide(
                &Method::GET,
                &auth,
                StatusCode::OK,
                &ok,
                TTL,
                false,
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
                false,
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
                false,
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
                false,
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
                false,
                now
            )
            .is_none()
        );
        // Cacheable by default, but for seconds, not for the default TTL.
        for status in [301, 404, 405, 410, 414, 501] {
            let f = decide(
                &Method::GET,
                &none,
                StatusCode::from_u16(status).unwrap(),
                &none,
                TTL,
                false,
                now,
            );
            assert_eq!(f.map(|f| f.ttl.as_secs()), Some(10), "{status}");
        }
        // Explicit freshness still decides.
        let explicit = decide(
            &Method::GET,
            &none,
            StatusCode::NOT_FOUND,
            &headers(&[("cache-control", "max-age=300")]),
            TTL,
            false,
            now,
        );
        assert_eq!(explicit.map(|f| f.ttl.as_secs()), Some(300));
    }

    #[test]
    fn age_counts_against_the_lifetime() {
        let f = decide(
            &Method::GET,
            &HeaderMap::new(),
            StatusCode::OK,
            &headers(&[("cache-control", "max-age=60"), ("age", "20")]),
            TTL,
            false,
            SystemTime::now(),
        )
        .unwrap();
        assert_eq!(f.initial_age, Duration::from_secs(20));
        assert!(ttl_of(&[("cache-control", "max-age=60"), ("age", "60")], TTL).is_none());
        // Already stale but revalidatable, or usable stale: still stored.
        let stale = [
            ("cache-control", "max-age=60"),
            ("age", "60"),
            ("last-modified", "Tue, 01 Jan 2030 00:00:00 GMT"),
        ];
        assert_eq!(ttl_of(&stale, TTL), Some(60));
        let swr = [
            ("cache-control", "max-age=1, stale-while-revalidate=30"),
            ("age", "5"),
        ];
        assert_eq!(ttl_of(&swr, TTL), Some(1));
    }

    #[test]
    fn an_invalid_age_is_ignored_and_a_list_uses_its_first_value() {
        // Ignored: the response is as fresh as its max-age says.
        for age in ["abc", "-7200", "7200.0", "7200a", "7200;a=b", ""] {
            assert_eq!(
                ttl_of(&[("cache-control", "max-age=3600"), ("age", age)], TTL),
                Some(1000),
                "{age:?}"
            );
        }
        // A list, or repeated lines: the first value counts.
        assert_eq!(
            ttl_of(
                &[("cache-control", "max-age=3600"), ("age", "0, 7200")],
                TTL
            ),
            Some(1000)
        );
        assert!(
            ttl_of(
                &[("cache-control", "max-age=3600"), ("age", "7200, 0")],
                TTL
            )
            .is_none()
        );
        let mut twice = headers(&[("cache-control", "max-age=3600"), ("age", "7200")]);
        twice.append(AGE, "0".parse().unwrap());
        assert!(
            decide(
                &Method::GET,
                &HeaderMap::new(),
                StatusCode::OK,
                &twice,
                TTL,
                false,
                SystemTime::now()
            )
            .is_none(),
            "the first line, 7200, is past max-age"
        );
        // Past 2^31 still means stale.
        assert!(
            ttl_of(
                &[
                    ("cache-control", "max-age=3600"),
                    ("age", "99999999999999999999")
                ],
                TTL
            )
            .is_none()
        );
        assert_eq!(
            ttl_of(&[("cache-control", "max-age=3600"), ("age", " 10 ")], TTL),
            Some(1000)
        );
    }

    #[test]
    fn targeted_fields_replace_cache_control() {
        // CDN-Cache-Control wins over Cache-Control, no-store included.
        assert_eq!(
            ttl_of(
                &[
                    ("cache-control", "no-store"),
                    ("cdn-cache-control", "max-age=60")
                ],
                TTL
            ),
            Some(60)
        );
        assert_eq!(
            ttl_of(
                &[
                    ("cache-control", "max-age=60"),
                    ("cdn-cache-control", "no-store")
                ],
                TTL
            ),
            None
        );
        // Surrogate-Control too, and a past Expires no longer counts.
        assert_eq!(
            ttl_of(
                &[("surrogate-control", "max-age=70"), ("expires", "0")],
                TTL
            ),
            Some(70)
        );
        // Directives for another target are not ours; ours are.
        assert_eq!(
            ttl_of(&[("surrogate-control", "max-age=70;other")], TTL),
            Some(100)
        );
        assert_eq!(
            ttl_of(&[("surrogate-control", "max-age=70;edge")], TTL),
            Some(70)
        );
        // must-understand with a status this cache does not know.
        let unknown = decide(
            &Method::GET,
            &HeaderMap::new(),
            StatusCode::from_u16(599).unwrap(),
            &headers(&[("cache-control", "max-age=60, must-understand")]),
            TTL,
            false,
            SystemTime::now(),
        );
        assert!(unknown.is_none());
        assert_eq!(
            ttl_of(&[("cache-control", "max-age=60, must-understand")], TTL),
            Some(60)
        );
    }

    #[test]
    fn cdn_cache_control_must_be_a_valid_structured_dictionary() {
        // Not a dictionary, or a directive with a value of the wrong type:
        // the field is ignored, and Cache-Control's no-store applies.
        for cdn in [
            "max-age=10000, &&&&&",
            "max-age=\"10000\"",
            "max-age=10000.0",
            "max-age=-1",
            "max-age",
            "max-age=(10000)",
            "max-age=1000000000000000",
            "MaX-aGe=10000",
            "max-age =10000",
            "max-age= 10000",
            "max-age=10000,",
            "max-age=10000, no-store=1",
            "max-age=10000, private=(a b)",
        ] {
            let pairs = [("cache-control", "no-store"), ("cdn-cache-control", cdn)];
            assert_eq!(ttl_of(&pairs, TTL), None, "{cdn:?}");
            assert!(
                CacheControl::parse_structured(&headers(&pairs), &CDN_CACHE_CONTROL).is_err(),
                "{cdn:?}"
            );
            // Ignored, not refused: Cache-Control decides.
            let pairs = [("cache-control", "max-age=30"), ("cdn-cache-control", cdn)];
            assert_eq!(ttl_of(&pairs, TTL), Some(30), "{cdn:?}");
        }
        let wrong = CacheControl::parse_structured(
            &headers(&[("cdn-cache-control", "max-age=\"60\"")]),
            &CDN_CACHE_CONTROL,
        )
        .unwrap_err();
        assert!(wrong.to_string().contains("max-age"), "{wrong}");

        // Valid: extensions of any type, parameters and a Boolean false are
        // skipped; a repeated directive takes its last value; the lines are
        // one dictionary.
        for (cdn, ttl) in [
            ("foobar, max-age=60", Some(60)),
            ("ext=\"x\", other=(1 2);p, max-age=60", Some(60)),
            ("max-age=60;note=\"a\"", Some(60)),
            ("max-age=\"60\", max-age=70", Some(70)),
            ("max-age=60, no-store=?0", Some(60)),
            ("max-age=60, no-store", None),
            ("max-age=60, private=\"set-cookie\"", None),
            ("max-age=60, private=set-cookie", None),
            ("max-age=999999999999999", Some(1000)),
        ] {
            let pairs = [("cache-control", "max-age=30"), ("cdn-cache-control", cdn)];
            assert_eq!(ttl_of(&pairs, TTL), ttl, "{cdn:?}");
        }
        let mut lines = headers(&[
            ("cache-control", "max-age=30"),
            ("cdn-cache-control", "max-age=60"),
        ]);
        lines.append(&CDN_CACHE_CONTROL, HeaderValue::from_static("s-maxage=90"));
        let cc = CacheControl::parse_structured(&lines, &CDN_CACHE_CONTROL).unwrap();
        assert_eq!((cc.max_age, cc.s_maxage), (Some(60), Some(90)));
        lines.append(&CDN_CACHE_CONTROL, HeaderValue::from_static("&&&"));
        assert!(CacheControl::parse_structured(&lines, &CDN_CACHE_CONTROL).is_err());
        assert_eq!(
            effective_cache_control(&lines),
            (CacheControl::parse(&lines), false),
            "one invalid line makes the whole field invalid"
        );
        // A qualified no-cache is read as no-cache.
        let no_cache = CacheControl::parse_structured(
            &headers(&[("cdn-cache-control", "no-cache=\"set-cookie\", max-age=60")]),
            &CDN_CACHE_CONTROL,
        )
        .unwrap();
        assert!(no_cache.no_cache);
    }

    #[test]
    fn an_invalid_cdn_cache_control_leaves_surrogate_control_to_decide() {
        let pairs = [
            ("cache-control", "no-store"),
            ("cdn-cache-control", "max-age=\"10\""),
            ("surrogate-control", "max-age=70"),
        ];
        assert_eq!(ttl_of(&pairs, TTL), Some(70));
        // Surrogate-Control keeps its lenient reading: a quoted or upper-case
        // max-age still counts there.
        assert_eq!(
            ttl_of(&[("surrogate-control", "MAX-AGE=\"70\"")], TTL),
            Some(70)
        );
    }

    #[test]
    fn kept_for_outages_unless_it_may_not_be_served_stale() {
        let f = |cc: &str, serve_stale_on_error: bool| {
            decide(
                &Method::GET,
                &HeaderMap::new(),
                StatusCode::OK,
                &headers(&[("cache-control", cc)]),
                TTL,
                false,
                SystemTime::now(),
            )
            .unwrap()
            .kept_for_outages(serve_stale_on_error)
            .keep_stale
        };
        assert!(f("max-age=60", true));
        assert!(!f("max-age=60", false));
        for strict in [
            "max-age=60, must-revalidate",
            "max-age=60, proxy-revalidate",
            "s-maxage=60",
        ] {
            assert!(!f(strict, true), "{strict}");
        }
    }

    #[test]
    fn set_cookie_is_stored_only_when_the_behavior_says_so() {
        let h = headers(&[("cache-control", "max-age=60"), ("set-cookie", "a=b")]);
        let now = SystemTime::now();
        assert!(
            decide(
                &Method::GET,
                &HeaderMap::new(),
                StatusCode::OK,
                &h,
                TTL,
                false,
                now
            )
            .is_none()
        );
        assert!(
            decide(
                &Method::GET,
                &HeaderMap::new(),
                StatusCode::OK,
                &h,
                TTL,
                true,
                now
            )
            .is_some()
        );
    }

    #[test]
    fn stale_windows_and_must_revalidate() {
        let f = |cc: &str| {
            decide(
                &Method::GET,
                &HeaderMap::new(),
                StatusCode::OK,
                &headers(&[("cache-control", cc), ("etag", "\"x\"")]),
                TTL,
                false,
                SystemTime::now(),
            )
            .unwrap()
        };
        let plain = f("max-age=10, stale-while-revalidate=20, stale-if-error=30");
        assert_eq!(plain.stale_while_revalidate, Duration::from_secs(20));
        assert_eq!(plain.stale_if_error, Duration::from_secs(30));
        assert!(!plain.must_revalidate);
        for cc in [
            "max-age=10, must-revalidate, stale-if-error=30",
            "max-age=10, proxy-revalidate, stale-while-revalidate=30",
            "s-maxage=10, stale-if-error=30",
        ] {
            let strict = f(cc);
            assert!(strict.must_revalidate, "{cc}");
            assert_eq!(strict.stale_if_error, Duration::ZERO, "{cc}");
            assert_eq!(strict.stale_while_revalidate, Duration::ZERO, "{cc}");
        }
    }

    #[test]
    fn delta_seconds_saturate_at_2_31() {
        const HUGE: &str = "18446744073709551615";
        const HUGER: &str = "99999999999999999999999";
        // A structured field's Integer has at most 15 digits: longer, and
        // CDN-Cache-Control is invalid (see above).
        const LARGEST_INTEGER: &str = "999999999999999";
        let max = Duration::from_secs(DELTA_MAX);
        let loose = TtlPolicy::new(0, u64::MAX, u64::MAX);
        for big in [HUGE, HUGER, LARGEST_INTEGER] {
            let cc = format!("max-age={big}, stale-while-revalidate={big}, stale-if-error={big}");
            let fields: &[&str] = if big == LARGEST_INTEGER {
                &["cache-control", "cdn-cache-control", "surrogate-control"]
            } else {
                &["cache-control", "surrogate-control"]
            };
            for &field in fields {
                let f = decide(
                    &Method::GET,
                    &HeaderMap::new(),
                    StatusCode::OK,
                    &headers(&[(field, &cc), ("age", big)]),
                    loose,
                    false,
                    SystemTime::now(),
                )
                .expect("stored: stale, but usable within its windows");
                assert_eq!(f.ttl, max, "{field}");
                assert_eq!(f.initial_age, max, "{field}");
                assert_eq!(f.stale_while_revalidate, max, "{field}");
                assert_eq!(f.stale_if_error, max, "{field}");
                assert_eq!(f.usable_until(), max * 2, "{field}");
            }
            let s = ttl_of(&[("cache-control", &format!("s-maxage={big}"))], loose);
            assert_eq!(s, Some(DELTA_MAX));
        }
        // A heuristic lifetime from a huge default TTL is bounded too.
        assert_eq!(ttl_of(&[], loose), Some(DELTA_MAX));
        // Digits only: a sign or a fraction is malformed, so 0.
        assert_eq!(ttl_of(&[("cache-control", "max-age=+5")], TTL), None);
        assert_eq!(ttl_of(&[("cache-control", "max-age=5.0")], TTL), None);
        assert_eq!(ttl_of(&[("cache-control", "max-age=5")], TTL), Some(5));
    }

    #[test]
    fn a_far_future_expires_or_an_ancient_date_never_overflows() {
        let loose = TtlPolicy::new(0, 0, u64::MAX);
        let far = [
            ("date", "Thu, 01 Jan 1970 00:00:00 GMT"),
            ("expires", "Fri, 31 Dec 9999 23:59:59 GMT"),
        ];
        assert_eq!(ttl_of(&far, loose), Some(DELTA_MAX));
        let f = decide(
            &Method::GET,
            &HeaderMap::new(),
            StatusCode::OK,
            &headers(&[("cache-control", "max-age=60"), far[0]]),
            loose,
            false,
            SystemTime::now(),
        );
        assert!(f.is_none(), "an ancient Date makes it stale: {f:?}");
    }
}
