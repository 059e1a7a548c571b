//! Validated cache behaviors: the cache key, what goes to the origin
//! (`origin_request`, the forwarding fields), and the checks that build them.

use std::collections::HashMap;

use http::header::HeaderName;

use super::error::ConfigError;
use super::hooks::validate_hooks;
use super::origin::Target;
use super::raw;
use super::ttl::{TtlPolicy, ttl_policy};

/// A validated cache behavior.
#[derive(Debug)]
pub struct Behavior {
    pub target_origin_id: String,
    pub ttl: TtlPolicy,
    pub cache_key: CacheKeyPolicy,
    /// What a request the cache may store takes to the origin: the cache
    /// key's query parameters and cookies, and `origin_request`'s.
    pub forward: ForwardPolicy,
    /// Store responses with `Set-Cookie`.
    pub store_set_cookie: bool,
    /// The forwarding fields the host sets on requests to the origin.
    pub forwarding: Forwarding,
    /// Viewers see the origin's `Surrogate-Key` and `Cache-Tag` fields.
    pub keep_tag_headers: bool,
    /// Serve a stale stored response when the origin cannot be reached.
    pub serve_stale_on_error: bool,
    /// How long a WebSocket may pass no bytes before it is closed.
    pub websocket_idle_timeout: std::time::Duration,
    /// Compress compressible responses by the viewer's `Accept-Encoding`.
    pub compress: bool,
}

/// A WebSocket's idle timeout when its behavior names none (CloudFront's).
pub const DEFAULT_WEBSOCKET_IDLE_TIMEOUT_SECONDS: u64 = 600;

/// The longest idle timeout a behavior may give its WebSockets: a day.
pub const MAX_WEBSOCKET_IDLE_TIMEOUT_SECONDS: u64 = 86_400;

/// The forwarding fields the host sets on a behavior's origin requests, each
/// with the host's own value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forwarding {
    /// `X-Forwarded-For`: the viewer's chain with the client's address appended.
    pub x_forwarded_for: bool,
    /// `X-Forwarded-Proto`: `https` or `http`, by the listener.
    pub x_forwarded_proto: bool,
    /// `Forwarded` (RFC 7239): `for=<client>;proto=<scheme>;host=<host>`.
    pub forwarded: bool,
}

impl Forwarding {
    /// The names `forwarding_headers` accepts.
    pub const NAMES: [&str; 3] = ["x-forwarded-for", "x-forwarded-proto", "forwarded"];

    /// All three, the default.
    pub const ALL: Self = Self {
        x_forwarded_for: true,
        x_forwarded_proto: true,
        forwarded: true,
    };

    pub(super) const NONE: Self = Self {
        x_forwarded_for: false,
        x_forwarded_proto: false,
        forwarded: false,
    };
}

/// What the cache key adds beyond the fixed parts.
#[derive(Debug, Clone, Default)]
pub struct CacheKeyPolicy {
    pub query_strings: raw::QueryStrings,
    pub headers: Vec<HeaderName>,
    pub cookies: Vec<String>,
}

/// The query parameters and cookies a behavior forwards on a request the
/// cache may store (the others are always forwarded whole): the union of
/// `cache_key` and `origin_request`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForwardPolicy {
    pub query_strings: raw::QueryStrings,
    pub cookies: raw::Names,
}

pub(super) fn validate_behavior(
    b: &raw::CacheBehaviorConfig,
    field: &str,
    targets: &HashMap<String, Target>,
) -> Result<Behavior, ConfigError> {
    if !targets.contains_key(&b.target_origin_id) {
        let mut known: Vec<&str> = targets.keys().map(String::as_str).collect();
        known.sort_unstable();
        return Err(ConfigError::new(
            format!("{field}.target_origin_id"),
            format!(
                "{:?} names no origin or origin group; the ids are: {}",
                b.target_origin_id,
                known.join(", ")
            ),
        ));
    }
    let ttl = ttl_policy(b, field)?;
    let mut headers = Vec::with_capacity(b.cache_key.headers.len());
    for (i, name) in b.cache_key.headers.iter().enumerate() {
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            ConfigError::new(
                format!("{field}.cache_key.headers[{i}]"),
                format!("{name:?} is not a valid header name"),
            )
        })?;
        headers.push(header);
    }
    validate_cookie_names(&b.cache_key.cookies, &format!("{field}.cache_key.cookies"))?;
    validate_query_names(
        &b.cache_key.query_strings,
        &format!("{field}.cache_key.query_strings"),
    )?;
    let forward = validate_origin_request(b, field, &headers)?;
    validate_hooks(&b.hooks, field)?;
    let forwarding = match &b.forwarding_headers {
        None => Forwarding::ALL,
        Some(names) => {
            let mut set = Forwarding::NONE;
            for (i, name) in names.iter().enumerate() {
                let flag = match name.to_ascii_lowercase().as_str() {
                    "x-forwarded-for" => &mut set.x_forwarded_for,
                    "x-forwarded-proto" => &mut set.x_forwarded_proto,
                    "forwarded" => &mut set.forwarded,
                    _ => {
                        return Err(ConfigError::new(
                            format!("{field}.forwarding_headers[{i}]"),
                            format!(
                                "{name:?} is not a forwarding header the host sets (one of {})",
                                Forwarding::NAMES.join(", ")
                            ),
                        ));
                    }
                };
                if std::mem::replace(flag, true) {
                    return Err(ConfigError::new(
                        format!("{field}.forwarding_headers[{i}]"),
                        format!("{name:?} is listed twice"),
                    ));
                }
            }
            set
        }
    };
    let idle = b
        .websocket_idle_timeout_seconds
        .unwrap_or(DEFAULT_WEBSOCKET_IDLE_TIMEOUT_SECONDS);
    if !(1..=MAX_WEBSOCKET_IDLE_TIMEOUT_SECONDS).contains(&idle) {
        return Err(ConfigError::new(
            format!("{field}.websocket_idle_timeout_seconds"),
            format!("must be 1 to {MAX_WEBSOCKET_IDLE_TIMEOUT_SECONDS} seconds, not {idle}"),
        ));
    }
    Ok(Behavior {
        target_origin_id: b.target_origin_id.clone(),
        ttl,
        cache_key: CacheKeyPolicy {
            query_strings: b.cache_key.query_strings.clone(),
            headers,
            cookies: b.cache_key.cookies.clone(),
        },
        forward,
        store_set_cookie: b.store_set_cookie,
        forwarding,
        keep_tag_headers: b.keep_tag_headers,
        serve_stale_on_error: b.serve_stale_on_error,
        websocket_idle_timeout: std::time::Duration::from_secs(idle),
        compress: b.compress.unwrap_or(false),
    })
}

fn validate_cookie_names(names: &[String], field: &str) -> Result<(), ConfigError> {
    for (i, name) in names.iter().enumerate() {
        if name.is_empty() || name.bytes().any(|c| c <= b' ' || b"=;,\"".contains(&c)) {
            return Err(ConfigError::new(
                format!("{field}[{i}]"),
                format!("{name:?} is not a valid cookie name"),
            ));
        }
    }
    Ok(())
}

fn validate_query_names(query: &raw::QueryStrings, field: &str) -> Result<(), ConfigError> {
    if let raw::QueryStrings::Only(names) = query
        && let Some(i) = names.iter().position(String::is_empty)
    {
        return Err(ConfigError::new(
            format!("{field}[{i}]"),
            "empty query parameter name",
        ));
    }
    Ok(())
}

/// Why a header cannot be named in `origin_request.headers`: the host sets
/// it, or drops the viewer's, whatever a policy says. `keyed` are the cache
/// key's headers, which bring back the fields the host would drop.
pub fn not_forwardable(name: &HeaderName, keyed: &[HeaderName]) -> Option<&'static str> {
    use crate::fields::{UNKEYED_OVERRIDES, VIEWER_FORWARDING};
    let listed = |list: &[&str]| list.contains(&name.as_str());
    if crate::fields::is_hop_by_hop(name) {
        Some("a hop-by-hop field never crosses a proxy")
    } else if name == http::header::HOST {
        Some("the origin gets its own domain_name as Host")
    } else if name == http::header::COOKIE {
        Some("cookies are listed in origin_request.cookies")
    } else if keyed.contains(name) {
        None
    } else if listed(&VIEWER_FORWARDING) || name.as_str() == "x-forwarded-for" {
        Some(
            "the viewer's forwarding fields are dropped and the host sets its own (forwarding_headers); name it in cache_key.headers to pass the viewer's value",
        )
    } else if listed(&UNKEYED_OVERRIDES) {
        Some(
            "a URL- or method-override field is dropped from GET and HEAD unless the cache key names it; name it in cache_key.headers",
        )
    } else {
        None
    }
}

/// Checks `origin_request` and makes what the behavior forwards: the union
/// with the cache key. Its headers change nothing at run time (the viewer's
/// headers are forwarded anyway); they are checked so that a name the host
/// will not forward is refused here, not dropped unseen.
fn validate_origin_request(
    b: &raw::CacheBehaviorConfig,
    field: &str,
    keyed: &[HeaderName],
) -> Result<ForwardPolicy, ConfigError> {
    let policy = &b.origin_request;
    let field = format!("{field}.origin_request");
    if let raw::Names::Only(names) = &policy.headers {
        for (i, name) in names.iter().enumerate() {
            let hfield = format!("{field}.headers[{i}]");
            let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                ConfigError::new(&hfield, format!("{name:?} is not a valid header name"))
            })?;
            if let Some(why) = not_forwardable(&header, keyed) {
                return Err(ConfigError::new(hfield, format!("{name:?}: {why}")));
            }
        }
    }
    let cookies = match &policy.cookies {
        raw::Names::All => raw::Names::All,
        raw::Names::Only(names) => {
            validate_cookie_names(names, &format!("{field}.cookies"))?;
            let mut all = b.cache_key.cookies.clone();
            for name in names {
                if !all.contains(name) {
                    all.push(name.clone());
                }
            }
            raw::Names::Only(all)
        }
    };
    validate_query_names(&policy.query_strings, &format!("{field}.query_strings"))?;
    Ok(ForwardPolicy {
        query_strings: b.cache_key.query_strings.union(&policy.query_strings),
        cookies,
    })
}
