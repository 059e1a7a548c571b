//! Cache keys, and the query string and cookies that go with them to the origin.
//!
//! Following CloudFront, what a behavior's `cache_key` leaves out of the key is
//! not forwarded to the origin on cacheable requests either, unless its
//! `origin_request` names it: that forwards a query parameter or cookie
//! without keying on it, for an origin whose answer it does not change (or
//! one that is not stored: `CachingDisabled`).

use std::borrow::Cow;
use std::fmt::Write as _;

use http::header::COOKIE;
use http::{HeaderMap, Method};

use crate::config::CacheKeyPolicy;
use crate::config::raw::QueryStrings;

/// The fixed parts of a key.
#[derive(Debug, Clone, Copy)]
pub struct KeyParts<'a> {
    pub distribution_id: &'a str,
    pub origin_id: &'a str,
    /// Where the origin is ([`crate::config::Distribution::fingerprints`]):
    /// a changed address makes a new key.
    pub origin_fingerprint: &'a str,
    /// The deployment arm (`primary` or `staging`).
    pub arm: &'a str,
    pub method: &'a Method,
    pub host: &'a str,
    pub path: &'a str,
}

/// Builds the key: the fixed parts, then the filtered query, then the listed
/// headers and cookies. Fields are separated by `\n`, which none may hold.
pub fn build(
    parts: KeyParts<'_>,
    query: Option<&str>,
    cookies: Option<&str>,
    headers: &HeaderMap,
    policy: &CacheKeyPolicy,
) -> String {
    let mut key = String::with_capacity(
        parts.distribution_id.len() + parts.host.len() + parts.path.len() + 48,
    );
    for part in [
        parts.distribution_id,
        parts.origin_id,
        parts.origin_fingerprint,
        parts.arm,
        parts.method.as_str(),
        parts.host,
        parts.path,
    ] {
        key.push_str(part);
        key.push('\n');
    }
    if let Some(q) = query {
        key.push_str(q);
    }
    for name in &policy.headers {
        key.push('\n');
        key.push_str(name.as_str());
        key.push(':');
        for (i, v) in headers.get_all(name).iter().enumerate() {
            if i > 0 {
                key.push(',');
            }
            let _ = write!(
                key,
                "{}",
                String::from_utf8_lossy(v.as_bytes()).escape_default()
            );
        }
    }
    if !policy.cookies.is_empty() {
        key.push('\n');
        key.push_str(cookies.unwrap_or(""));
    }
    key
}

/// The query string kept by `kept` (a cache key's, for the key; what a
/// behavior forwards, for the origin).
pub fn filter_query<'a>(query: Option<&'a str>, kept: &QueryStrings) -> Option<Cow<'a, str>> {
    let query = query.filter(|q| !q.is_empty())?;
    match kept {
        QueryStrings::None => None,
        QueryStrings::All => Some(Cow::Borrowed(query)),
        QueryStrings::Only(names) => {
            let kept: Vec<&str> = query
                .split('&')
                .filter(|pair| {
                    let name = pair.split_once('=').map_or(*pair, |(n, _)| n);
                    names.iter().any(|n| n == name)
                })
                .collect();
            (!kept.is_empty()).then(|| Cow::Owned(kept.join("&")))
        }
    }
}

/// The viewer's cookies named in `names`, as a `Cookie` header value in the
/// order of `names` (`None` when it names none or the viewer sent none).
pub fn filter_cookies(headers: &HeaderMap, names: &[String]) -> Option<String> {
    if names.is_empty() {
        return None;
    }
    let mut found: Vec<(usize, String)> = Vec::new();
    for value in headers.get_all(COOKIE) {
        let Ok(value) = value.to_str() else { continue };
        for cookie in cookie::Cookie::split_parse(value).flatten() {
            if let Some(i) = names.iter().position(|n| n == cookie.name())
                && !found.iter().any(|(j, _)| *j == i)
            {
                found.push((i, format!("{}={}", cookie.name(), cookie.value())));
            }
        }
    }
    found.sort_by_key(|(i, _)| *i);
    (!found.is_empty()).then(|| {
        found
            .into_iter()
            .map(|(_, c)| c)
            .collect::<Vec<_>>()
            .join("; ")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(qs: QueryStrings, cookies: &[&str], headers: &[&str]) -> CacheKeyPolicy {
        CacheKeyPolicy {
            query_strings: qs,
            headers: headers.iter().map(|h| h.parse().unwrap()).collect(),
            cookies: cookies.iter().map(|c| (*c).to_owned()).collect(),
        }
    }

    #[test]
    fn query_filtering() {
        let only = QueryStrings::Only(vec!["v".into(), "w".into()]);
        assert_eq!(
            filter_query(Some("a=1&v=2&w"), &only).as_deref(),
            Some("v=2&w")
        );
        assert_eq!(filter_query(Some("a=1"), &only), None);
        let all = QueryStrings::All;
        assert_eq!(filter_query(Some("a=1"), &all).as_deref(), Some("a=1"));
        assert_eq!(filter_query(Some("a=1"), &QueryStrings::None), None);
    }

    #[test]
    fn cookies_are_picked_in_policy_order() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, "a=1; z=9".parse().unwrap());
        h.append(COOKIE, "b=2".parse().unwrap());
        let names = ["b".to_owned(), "a".to_owned()];
        assert_eq!(filter_cookies(&h, &names).as_deref(), Some("b=2; a=1"));
    }

    #[test]
    fn keys_differ_by_every_part() {
        let p = policy(QueryStrings::All, &[], &["accept-language"]);
        let h = HeaderMap::new();
        let base = KeyParts {
            distribution_id: "E1",
            origin_id: "blue",
            origin_fingerprint: "3f2a",
            arm: "primary",
            method: &Method::GET,
            host: "a.com",
            path: "/x",
        };
        let k = build(base, None, None, &h, &p);
        let green = build(
            KeyParts {
                origin_id: "green",
                ..base
            },
            None,
            None,
            &h,
            &p,
        );
        let staging = build(
            KeyParts {
                arm: "staging",
                ..base
            },
            None,
            None,
            &h,
            &p,
        );
        let moved = build(
            KeyParts {
                origin_fingerprint: "9c41",
                ..base
            },
            None,
            None,
            &h,
            &p,
        );
        let query = build(base, Some("q=1"), None, &h, &p);
        let mut fr = HeaderMap::new();
        fr.insert("accept-language", "fr".parse().unwrap());
        let lang = build(base, None, None, &fr, &p);
        let all = [&k, &green, &moved, &staging, &query, &lang];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }
}
