//! Distribution configs: the raw serde shape and the validated form the proxy serves from.
//!
//! Raw structs ([`raw`]) mirror the JSON exactly and refuse unknown fields; they are
//! converted with `TryFrom` into [`Distribution`], whose invariants the request path
//! relies on (every target names an origin or group, TTLs are ordered, header names
//! are valid). A [`ConfigError`] names the field that broke a rule.

pub mod cloudfront;
pub mod pattern;
pub mod policy;
pub mod raw;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use http::uri::{Authority, Scheme};

pub use pattern::PathPattern;
pub use raw::DistributionConfig;

/// CloudFront's TTL defaults, in seconds.
pub const DEFAULT_MIN_TTL: u64 = 0;
pub const DEFAULT_DEFAULT_TTL: u64 = 86_400;
pub const DEFAULT_MAX_TTL: u64 = 31_536_000;
/// CloudFront's connection timeout default (10 s) and response timeout default (30 s).
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 10_000;
pub const DEFAULT_READ_TIMEOUT_MS: u64 = 30_000;
const MAX_CONNECT_TIMEOUT_MS: u64 = 60_000;
const MAX_READ_TIMEOUT_MS: u64 = 180_000;
/// CloudFront's origin keep-alive timeout default (5 s) and maximum (60 s).
pub const DEFAULT_KEEPALIVE_TIMEOUT_MS: u64 = 5_000;
const MAX_KEEPALIVE_TIMEOUT_MS: u64 = 60_000;
/// The largest CPU budget a hook association may ask for.
pub const MAX_HOOK_BUDGET_MS: u64 = 10_000;

/// A config that breaks a rule, with the path of the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Why a config body was refused before validation.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// Not JSON at all (syntax error, truncated input).
    #[error("malformed JSON: {0}")]
    Malformed(String),
    /// JSON of the wrong shape: unknown or missing field, wrong type.
    #[error("{0}")]
    Invalid(ConfigError),
}

/// Parses a JSON body into `T`, naming the field path of any shape error.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ParseError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(v) => Ok(v),
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            match inner.classify() {
                serde_json::error::Category::Data => {
                    let field = if path == "." {
                        "config".to_owned()
                    } else {
                        path
                    };
                    Err(ParseError::Invalid(ConfigError::new(
                        field,
                        strip_position(&inner),
                    )))
                }
                _ => Err(ParseError::Malformed(inner.to_string())),
            }
        }
    }
}

fn strip_position(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// A validated distribution config.
#[derive(Debug)]
pub struct Distribution {
    pub enabled: bool,
    pub aliases: Vec<String>,
    pub origins: Vec<Arc<Origin>>,
    /// Targets by id: each origin and each origin group.
    pub targets: HashMap<String, Target>,
    /// Per target id, where requests to it go: every member's scheme,
    /// address, `origin_path`, `Host` and custom headers. It is part of the
    /// cache key, so an object fetched from an address the config no longer
    /// points at is never served (no invalidation needed after a move).
    pub fingerprints: HashMap<String, Arc<str>>,
    pub default_behavior: Behavior,
    pub behaviors: Vec<(PathPattern, Behavior)>,
    pub continuous_deployment_policy_id: Option<String>,
    pub raw: DistributionConfig,
}

/// Where `target` sends requests, as one line of text (see
/// [`Distribution::fingerprints`]).
fn fingerprint(origins: &[Arc<Origin>], target: &Target) -> Arc<str> {
    let members: &[usize] = match target {
        Target::Origin(i) => std::slice::from_ref(i),
        Target::Group { members, .. } => members,
    };
    let mut text = String::new();
    for origin in members.iter().filter_map(|&i| origins.get(i)) {
        text.push_str(&format!(
            "{}://{}{}|{}",
            origin.scheme,
            origin.authority,
            origin.origin_path,
            String::from_utf8_lossy(origin.host_header.as_bytes())
        ));
        for (name, value) in &origin.custom_headers {
            text.push_str(&format!(
                "|{name}={}",
                String::from_utf8_lossy(value.as_bytes())
            ));
        }
        text.push(';');
    }
    // A short digest keeps the key small; the text can be long.
    let digest = sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(&text));
    digest
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        .into()
}

impl Distribution {
    /// The fingerprint of target `id` (empty for an unknown id).
    pub fn fingerprint_of(&self, id: &str) -> &str {
        self.fingerprints.get(id).map_or("", |f| f)
    }

    /// Step 3: the first behavior whose pattern matches `path`, else the
    /// default, with its index (0 for the default, `i + 1` for `cache_behaviors[i]`).
    pub fn behavior_for(&self, path: &str) -> (usize, &Behavior) {
        self.behaviors
            .iter()
            .enumerate()
            .find(|(_, (pattern, _))| pattern.matches(path))
            .map_or((0, &self.default_behavior), |(i, (_, b))| (i + 1, b))
    }

    /// The behavior at `index` (as [`Self::behavior_for`] numbers them).
    pub fn behavior_at(&self, index: usize) -> &Behavior {
        match index {
            0 => &self.default_behavior,
            i => self
                .behaviors
                .get(i - 1)
                .map_or(&self.default_behavior, |(_, b)| b),
        }
    }

    /// The hooks of the behavior at `index` (as [`Self::behavior_for`] numbers them).
    pub fn hooks_of(&self, index: usize) -> Option<&raw::HooksConfig> {
        match index {
            0 => Some(&self.raw.default_cache_behavior.hooks),
            i => self.raw.cache_behaviors.get(i - 1).map(|b| &b.hooks),
        }
    }

    /// How many behaviors there are, the default included.
    pub fn behavior_count(&self) -> usize {
        self.behaviors.len() + 1
    }

    /// Every hook module the config refers to, with the field naming it.
    pub fn hook_modules(&self) -> Vec<(String, &str)> {
        let mut out = Vec::new();
        let all = std::iter::once((
            "default_cache_behavior".to_owned(),
            &self.raw.default_cache_behavior,
        ))
        .chain(
            self.raw
                .cache_behaviors
                .iter()
                .enumerate()
                .map(|(i, b)| (format!("cache_behaviors[{i}]"), b)),
        );
        for (field, behavior) in all {
            for (event, hook) in behavior.hooks.iter() {
                out.push((
                    format!("{field}.hooks.{event}.module"),
                    hook.module.as_str(),
                ));
            }
        }
        out
    }
}

/// An origin ready to be fetched from.
#[derive(Debug)]
pub struct Origin {
    pub id: String,
    pub scheme: Scheme,
    pub authority: Authority,
    /// The `Host` header sent to the origin.
    pub host_header: HeaderValue,
    pub origin_path: String,
    pub custom_headers: Vec<(HeaderName, HeaderValue)>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub keepalive_timeout: Duration,
}

/// What a behavior (or a hook) can send a request to.
#[derive(Debug, Clone)]
pub enum Target {
    Origin(usize),
    Group {
        members: Vec<usize>,
        failover_status_codes: Vec<u16>,
    },
}

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
}

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

    const NONE: Self = Self {
        x_forwarded_for: false,
        x_forwarded_proto: false,
        forwarded: false,
    };
}

/// The statuses whose lifetime without explicit freshness is their own
/// (`default_ttl_by_status`) instead of `default_ttl`: the heuristically
/// cacheable ones (RFC 9110 15.1) that are not a success.
pub const STATUS_TTL_CODES: [u16; 8] = [300, 301, 308, 404, 405, 410, 414, 501];
/// Their lifetime unless the behavior says otherwise: CloudFront's error
/// caching minimum TTL, so a transient error or redirect is not pinned for a
/// day.
pub const DEFAULT_STATUS_TTL: u64 = 10;

/// The behavior's TTL bounds, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlPolicy {
    pub min: u64,
    pub default: u64,
    pub max: u64,
    /// The lifetime of a response without explicit freshness for each of
    /// [`STATUS_TTL_CODES`], in that order.
    pub by_status: [u64; STATUS_TTL_CODES.len()],
}

impl TtlPolicy {
    /// Bounds with [`DEFAULT_STATUS_TTL`] for every status of
    /// [`STATUS_TTL_CODES`], never above `default` (a `default_ttl` of 0
    /// still stores nothing without explicit freshness) nor below `min`.
    pub const fn new(min: u64, default: u64, max: u64) -> Self {
        let status = if DEFAULT_STATUS_TTL > default {
            default
        } else {
            DEFAULT_STATUS_TTL
        };
        let status = if status < min { min } else { status };
        let status = if status > max { max } else { status };
        Self {
            min,
            default,
            max,
            by_status: [status; STATUS_TTL_CODES.len()],
        }
    }

    /// The lifetime of a heuristically cacheable `status` response that
    /// carries no explicit freshness.
    pub fn heuristic(&self, status: u16) -> u64 {
        STATUS_TTL_CODES
            .iter()
            .position(|s| *s == status)
            .and_then(|i| self.by_status.get(i).copied())
            .unwrap_or(self.default)
    }
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

impl TryFrom<DistributionConfig> for Distribution {
    type Error = ConfigError;

    fn try_from(raw: DistributionConfig) -> Result<Self, ConfigError> {
        let aliases = validate_aliases(&raw.aliases)?;

        if raw.origins.is_empty() {
            return Err(ConfigError::new(
                "origins",
                "at least one origin is required",
            ));
        }
        let mut targets = HashMap::new();
        let mut origins = Vec::with_capacity(raw.origins.len());
        for (i, o) in raw.origins.iter().enumerate() {
            let field = format!("origins[{i}]");
            let origin = validate_origin(o, &field)?;
            if targets
                .insert(origin.id.clone(), Target::Origin(i))
                .is_some()
            {
                return Err(ConfigError::new(
                    format!("{field}.id"),
                    format!("duplicate origin id {:?}", origin.id),
                ));
            }
            origins.push(Arc::new(origin));
        }
        for (i, g) in raw.origin_groups.iter().enumerate() {
            let field = format!("origin_groups[{i}]");
            validate_id(&g.id, &format!("{field}.id"))?;
            if g.members.len() < 2 {
                return Err(ConfigError::new(
                    format!("{field}.members"),
                    "an origin group needs at least two members",
                ));
            }
            let mut members = Vec::with_capacity(g.members.len());
            for (j, m) in g.members.iter().enumerate() {
                match targets.get(m) {
                    Some(Target::Origin(idx)) if !members.contains(idx) => members.push(*idx),
                    Some(Target::Origin(_)) => {
                        return Err(ConfigError::new(
                            format!("{field}.members[{j}]"),
                            format!("origin {m:?} is listed twice"),
                        ));
                    }
                    _ => {
                        return Err(ConfigError::new(
                            format!("{field}.members[{j}]"),
                            format!("{m:?} names no origin"),
                        ));
                    }
                }
            }
            for (j, code) in g.failover_status_codes.iter().enumerate() {
                if !(400..=599).contains(code) {
                    return Err(ConfigError::new(
                        format!("{field}.failover_status_codes[{j}]"),
                        format!("{code} is not a 4xx or 5xx status"),
                    ));
                }
            }
            let target = Target::Group {
                members,
                failover_status_codes: g.failover_status_codes.clone(),
            };
            if targets.insert(g.id.clone(), target).is_some() {
                return Err(ConfigError::new(
                    format!("{field}.id"),
                    format!("id {:?} is already used by an origin or group", g.id),
                ));
            }
        }

        if raw.default_cache_behavior.path_pattern.is_some() {
            return Err(ConfigError::new(
                "default_cache_behavior.path_pattern",
                "the default behavior matches every path and takes no pattern",
            ));
        }
        let default_behavior = validate_behavior(
            &raw.default_cache_behavior,
            "default_cache_behavior",
            &targets,
        )?;
        let mut behaviors = Vec::with_capacity(raw.cache_behaviors.len());
        for (i, b) in raw.cache_behaviors.iter().enumerate() {
            let field = format!("cache_behaviors[{i}]");
            let Some(pattern) = &b.path_pattern else {
                return Err(ConfigError::new(
                    format!("{field}.path_pattern"),
                    "missing field `path_pattern`",
                ));
            };
            let pattern = PathPattern::parse(pattern)
                .map_err(|msg| ConfigError::new(format!("{field}.path_pattern"), msg))?;
            behaviors.push((pattern, validate_behavior(b, &field, &targets)?));
        }
        if let Some(id) = &raw.continuous_deployment_policy_id {
            validate_id(id, "continuous_deployment_policy_id")?;
        }

        let fingerprints = targets
            .iter()
            .map(|(id, target)| (id.clone(), fingerprint(&origins, target)))
            .collect();
        Ok(Self {
            enabled: raw.enabled,
            aliases,
            origins,
            targets,
            fingerprints,
            default_behavior,
            behaviors,
            continuous_deployment_policy_id: raw.continuous_deployment_policy_id.clone(),
            raw,
        })
    }
}

/// Whether `id` is 1-128 of `A-Z a-z 0-9 - _ .`, the rule for origin, group and
/// policy ids and for KV namespaces and keys.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

pub(crate) fn validate_id(id: &str, field: &str) -> Result<(), ConfigError> {
    if is_valid_id(id) {
        Ok(())
    } else {
        Err(ConfigError::new(
            field,
            format!("{id:?} is not a valid id (1-128 of A-Z a-z 0-9 - _ .)"),
        ))
    }
}

/// Checks a hook name: 1-64 of `a-z 0-9 - _`.
pub fn validate_hook_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!("{name:?} is not a hook name (1-64 of a-z 0-9 - _)"))
    }
}

/// Checks an alias: a lower-case host name, optionally starting with `*.`.
pub fn validate_alias(alias: &str) -> Result<(), String> {
    let name = alias.strip_prefix("*.").unwrap_or(alias);
    if alias.len() > 253 || name.is_empty() {
        return Err(format!("{alias:?} is not a valid host name"));
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return Err(format!(
                "{alias:?} is not a valid host name (lower-case labels of a-z 0-9 -, optionally starting with \"*.\")"
            ));
        }
    }
    if alias.starts_with("*.") && !name.contains('.') {
        return Err(format!(
            "{alias:?}: a wildcard alias needs at least two labels after \"*.\""
        ));
    }
    Ok(())
}

fn validate_aliases(aliases: &[String]) -> Result<Vec<String>, ConfigError> {
    let mut seen = HashSet::new();
    for (i, alias) in aliases.iter().enumerate() {
        let field = format!("aliases[{i}]");
        validate_alias(alias).map_err(|msg| ConfigError::new(&field, msg))?;
        if !seen.insert(alias.as_str()) {
            return Err(ConfigError::new(
                field,
                format!("{alias:?} is listed twice"),
            ));
        }
    }
    Ok(aliases.to_vec())
}

fn validate_origin(o: &raw::OriginConfig, field: &str) -> Result<Origin, ConfigError> {
    validate_id(&o.id, &format!("{field}.id"))?;
    let authority: Authority = o
        .domain_name
        .parse()
        .ok()
        .filter(|a: &Authority| {
            !a.host().is_empty() && !a.as_str().contains('@') && a.as_str() == o.domain_name
        })
        .ok_or_else(|| {
            let hint = match o.domain_name.split_once("://") {
                Some((scheme, rest)) => format!(
                    "; the scheme goes in \"protocol\": \"domain_name\": {:?}, \"protocol\": {:?}",
                    rest.trim_end_matches('/'),
                    scheme.to_ascii_lowercase()
                ),
                None if o.domain_name.contains('/') => {
                    "; a path goes in \"origin_path\"".to_owned()
                }
                None => String::new(),
            };
            ConfigError::new(
                format!("{field}.domain_name"),
                format!("{:?} is not a host or host:port{hint}", o.domain_name),
            )
        })?;
    let host_header = HeaderValue::from_str(authority.as_str())
        .map_err(|_| ConfigError::new(format!("{field}.domain_name"), "not a valid Host header"))?;
    let scheme = match o.protocol {
        raw::Protocol::Http => Scheme::HTTP,
        raw::Protocol::Https => Scheme::HTTPS,
    };
    let path = &o.origin_path;
    if !path.is_empty()
        && (!path.starts_with('/')
            || path.ends_with('/')
            || path.contains(['?', '#', ' '])
            || http::uri::PathAndQuery::from_maybe_shared(path.clone()).is_err())
    {
        return Err(ConfigError::new(
            format!("{field}.origin_path"),
            format!("{path:?} must be empty or start with '/' and not end with '/'"),
        ));
    }
    let mut custom_headers = Vec::with_capacity(o.custom_headers.len());
    for (name, value) in &o.custom_headers {
        let hfield = format!("{field}.custom_headers.{name}");
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ConfigError::new(&hfield, "not a valid header name"))?;
        if crate::fields::is_hop_by_hop(&header) || header == http::header::HOST {
            return Err(ConfigError::new(
                hfield,
                "this header is managed by the host and cannot be set",
            ));
        }
        let value = HeaderValue::from_str(value)
            .map_err(|_| ConfigError::new(&hfield, "not a valid header value"))?;
        custom_headers.push((header, value));
    }
    let connect_ms = o.connect_timeout_ms.unwrap_or(DEFAULT_CONNECT_TIMEOUT_MS);
    if !(1..=MAX_CONNECT_TIMEOUT_MS).contains(&connect_ms) {
        return Err(ConfigError::new(
            format!("{field}.connect_timeout_ms"),
            format!("must be between 1 and {MAX_CONNECT_TIMEOUT_MS}"),
        ));
    }
    let read_ms = o.read_timeout_ms.unwrap_or(DEFAULT_READ_TIMEOUT_MS);
    if !(1..=MAX_READ_TIMEOUT_MS).contains(&read_ms) {
        return Err(ConfigError::new(
            format!("{field}.read_timeout_ms"),
            format!("must be between 1 and {MAX_READ_TIMEOUT_MS}"),
        ));
    }
    let keepalive_ms = o
        .keepalive_timeout_ms
        .unwrap_or(DEFAULT_KEEPALIVE_TIMEOUT_MS);
    if !(1..=MAX_KEEPALIVE_TIMEOUT_MS).contains(&keepalive_ms) {
        return Err(ConfigError::new(
            format!("{field}.keepalive_timeout_ms"),
            format!("must be between 1 and {MAX_KEEPALIVE_TIMEOUT_MS}"),
        ));
    }
    Ok(Origin {
        id: o.id.clone(),
        scheme,
        authority,
        host_header,
        origin_path: o.origin_path.clone(),
        custom_headers,
        connect_timeout: Duration::from_millis(connect_ms),
        read_timeout: Duration::from_millis(read_ms),
        keepalive_timeout: Duration::from_millis(keepalive_ms),
    })
}

fn validate_behavior(
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
    for (event, hook) in b.hooks.iter() {
        let hfield = format!("{field}.hooks.{event}");
        let (name, version) = match hook.module.split_once('@') {
            Some((n, v)) => (n, Some(v)),
            None => (hook.module.as_str(), None),
        };
        validate_hook_name(name).map_err(|m| ConfigError::new(format!("{hfield}.module"), m))?;
        if let Some(v) = version {
            let hex = v.strip_prefix("sha256:").unwrap_or("");
            if hex.len() != 64
                || !hex
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            {
                return Err(ConfigError::new(
                    format!("{hfield}.module"),
                    format!("{v:?} is not a version (sha256: and 64 lower-case hex digits)"),
                ));
            }
        }
        if let Some(ms) = hook.cpu_budget_ms
            && !(1..=MAX_HOOK_BUDGET_MS).contains(&ms)
        {
            return Err(ConfigError::new(
                format!("{hfield}.cpu_budget_ms"),
                format!("must be between 1 and {MAX_HOOK_BUDGET_MS}"),
            ));
        }
        let max_mib = (crate::limits::MAX_MEMORY_LIMIT >> 20) as u64;
        if let Some(mib) = hook.memory_limit_mib
            && !(1..=max_mib).contains(&mib)
        {
            return Err(ConfigError::new(
                format!("{hfield}.memory_limit_mib"),
                format!("must be between 1 and {max_mib}"),
            ));
        }
    }
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

/// Fills CloudFront's TTL defaults and checks `min <= default <= max`. When
/// `default_ttl` is not given it is CloudFront's 86400 s, brought within the
/// given `min_ttl`/`max_ttl`.
fn ttl_policy(b: &raw::CacheBehaviorConfig, field: &str) -> Result<TtlPolicy, ConfigError> {
    let min = b.min_ttl.unwrap_or(DEFAULT_MIN_TTL);
    let max = b.max_ttl.unwrap_or(DEFAULT_MAX_TTL.max(min));
    let default = b
        .default_ttl
        .unwrap_or_else(|| DEFAULT_DEFAULT_TTL.clamp(min.min(max), max));
    if min > max {
        return Err(ConfigError::new(
            format!("{field}.min_ttl"),
            format!("min_ttl ({min}) is greater than max_ttl ({max})"),
        ));
    }
    if default < min {
        return Err(ConfigError::new(
            format!("{field}.default_ttl"),
            format!("default_ttl ({default}) is less than min_ttl ({min})"),
        ));
    }
    if default > max {
        return Err(ConfigError::new(
            format!("{field}.default_ttl"),
            format!("default_ttl ({default}) is greater than max_ttl ({max})"),
        ));
    }
    let mut policy = TtlPolicy::new(min, default, max);
    for (code, ttl) in &b.default_ttl_by_status {
        let sfield = format!("{field}.default_ttl_by_status.{code}");
        let slot = code
            .parse::<u16>()
            .ok()
            .and_then(|c| STATUS_TTL_CODES.iter().position(|s| *s == c))
            .ok_or_else(|| {
                let codes: Vec<String> = STATUS_TTL_CODES.iter().map(u16::to_string).collect();
                ConfigError::new(
                    &sfield,
                    format!(
                        "{code:?} is not a status stored without explicit freshness other than a success (one of {})",
                        codes.join(", ")
                    ),
                )
            })?;
        if !(min..=max).contains(ttl) {
            return Err(ConfigError::new(
                sfield,
                format!("{ttl} is not within min_ttl ({min}) and max_ttl ({max})"),
            ));
        }
        policy.by_status[slot] = *ttl;
    }
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Distribution, String> {
        let raw: DistributionConfig = parse_json(json.as_bytes()).map_err(|e| e.to_string())?;
        Distribution::try_from(raw).map_err(|e| e.to_string())
    }

    const MINIMAL: &str = r#"{"origins":[{"id":"a","domain_name":"127.0.0.1:1"}],
        "default_cache_behavior":{"target_origin_id":"a"}}"#;

    #[test]
    fn minimal_config_gets_cloudfront_defaults() {
        let d = parse(MINIMAL).unwrap();
        assert!(d.enabled);
        assert_eq!(
            d.default_behavior.ttl,
            TtlPolicy::new(0, 86_400, 31_536_000)
        );
        assert_eq!(d.origins[0].scheme, Scheme::HTTPS);
        assert_eq!(d.origins[0].read_timeout, Duration::from_secs(30));
    }

    #[test]
    fn unknown_field_is_named_with_its_path() {
        let err = parse(
            r#"{"origins":[{"id":"a","domain_name":"x","colour":1}],
                "default_cache_behavior":{"target_origin_id":"a"}}"#,
        )
        .unwrap_err();
        assert!(
            err.starts_with("origins[0].colour: unknown field `colour`"),
            "{err}"
        );
    }

    #[test]
    fn malformed_json_is_told_apart_from_a_bad_shape() {
        let raw = parse_json::<DistributionConfig>(b"{\"origins\": [").unwrap_err();
        assert!(matches!(raw, ParseError::Malformed(_)));
        let shape = parse_json::<DistributionConfig>(b"{}").unwrap_err();
        assert!(matches!(shape, ParseError::Invalid(_)), "{shape}");
    }

    #[test]
    fn rules_name_the_field() {
        let cases = [
            (
                r#"{"origins":[],"default_cache_behavior":{"target_origin_id":"a"}}"#,
                "origins:",
            ),
            (
                r#"{"origins":[{"id":"a","domain_name":"x"}],"default_cache_behavior":{"target_origin_id":"b"}}"#,
                "default_cache_behavior.target_origin_id: \"b\" names no origin or origin group; the ids are: a",
            ),
            (
                r#"{"origins":[{"id":"a","domain_name":"https://x.example/"}],"default_cache_behavior":{"target_origin_id":"a"}}"#,
                "\"domain_name\": \"x.example\", \"protocol\": \"https\"",
            ),
            (
                r#"{"origins":[{"id":"a","domain_name":"x"},{"id":"a","domain_name":"y"}],"default_cache_behavior":{"target_origin_id":"a"}}"#,
                "origins[1].id:",
            ),
            (
                r#"{"aliases":["Bad_Host"],"origins":[{"id":"a","domain_name":"x"}],"default_cache_behavior":{"target_origin_id":"a"}}"#,
                "aliases[0]:",
            ),
            (
                r#"{"origins":[{"id":"a","domain_name":"x"}],"default_cache_behavior":{"target_origin_id":"a","min_ttl":10,"max_ttl":5}}"#,
                "default_cache_behavior.min_ttl:",
            ),
            (
                r#"{"origins":[{"id":"a","domain_name":"x"}],"default_cache_behavior":{"target_origin_id":"a","default_ttl":10,"max_ttl":5}}"#,
                "default_cache_behavior.default_ttl:",
            ),
            (
                r#"{"origins":[{"id":"a","domain_name":"x"}],"default_cache_behavior":{"target_origin_id":"a"},"cache_behaviors":[{"target_origin_id":"a"}]}"#,
                "cache_behaviors[0].path_pattern:",
            ),
            (
                r#"{"origins":[{"id":"a","domain_name":"http://x/"}],"default_cache_behavior":{"target_origin_id":"a"}}"#,
                "origins[0].domain_name:",
            ),
            (
                r#"{"origins":[{"id":"a","domain_name":"x","custom_headers":{"connection":"close"}}],"default_cache_behavior":{"target_origin_id":"a"}}"#,
                "origins[0].custom_headers.connection:",
            ),
            (
                r#"{"origins":[{"id":"a","domain_name":"x"}],"origin_groups":[{"id":"g","members":["a","zz"]}],"default_cache_behavior":{"target_origin_id":"g"}}"#,
                "origin_groups[0].members[1]:",
            ),
        ];
        for (json, field) in cases {
            let err = parse(json).unwrap_err();
            assert!(err.contains(field), "expected {field} in {err}");
        }
    }

    #[test]
    fn forwarding_headers_default_to_all_three_and_are_validated() {
        let with = |list: &str| {
            parse(&format!(
                r#"{{"origins":[{{"id":"a","domain_name":"x"}}],"default_cache_behavior":{{"target_origin_id":"a"{list}}}}}"#
            ))
            .map(|d| d.default_behavior.forwarding)
        };
        assert_eq!(with(""), Ok(Forwarding::ALL));
        assert_eq!(with(r#","forwarding_headers":[]"#), Ok(Forwarding::NONE));
        assert_eq!(
            with(r#","forwarding_headers":["X-Forwarded-Proto"]"#),
            Ok(Forwarding {
                x_forwarded_proto: true,
                ..Forwarding::NONE
            })
        );
        let unknown = with(r#","forwarding_headers":["forwarded","x-real-ip"]"#).unwrap_err();
        assert!(
            unknown.starts_with("default_cache_behavior.forwarding_headers[1]:"),
            "{unknown}"
        );
        let twice = with(r#","forwarding_headers":["forwarded","Forwarded"]"#).unwrap_err();
        assert!(twice.contains("listed twice"), "{twice}");
    }

    #[test]
    fn origin_request_forwards_the_union_and_names_the_field_it_refuses() {
        let with = |extra: &str| {
            parse(&format!(
                r#"{{"origins":[{{"id":"a","domain_name":"x"}}],"default_cache_behavior":{{"target_origin_id":"a"{extra}}}}}"#
            ))
            .map(|d| d.default_behavior)
        };
        let b = with(
            r#","cache_key":{"query_strings":["v"],"cookies":["s"]},"origin_request":{"query_strings":["w","v"],"cookies":["t","s"],"headers":"all"}"#,
        )
        .unwrap();
        assert_eq!(
            b.forward,
            ForwardPolicy {
                query_strings: raw::QueryStrings::Only(vec!["v".into(), "w".into()]),
                cookies: raw::Names::Only(vec!["s".into(), "t".into()]),
            }
        );
        // The key stays the cache key's.
        assert_eq!(b.cache_key.cookies, ["s"]);
        let all =
            with(r#","origin_request":{"query_strings":"all","cookies":"all","headers":"none"}"#)
                .unwrap();
        assert_eq!(all.forward.query_strings, raw::QueryStrings::All);
        assert_eq!(all.forward.cookies, raw::Names::All);
        assert!(matches!(
            all.cache_key.query_strings,
            raw::QueryStrings::None
        ));
        assert_eq!(with("").unwrap().forward, ForwardPolicy::default());
        // A dropped header may be listed once the key names it.
        with(r#","cache_key":{"headers":["X-Forwarded-Host"]},"origin_request":{"headers":["x-forwarded-host"]}"#)
            .unwrap();
        for (extra, field) in [
            (
                r#","origin_request":{"headers":["X-Forwarded-Host"]}"#,
                "default_cache_behavior.origin_request.headers[0]: \"X-Forwarded-Host\": a URL- or method-override",
            ),
            (
                r#","origin_request":{"headers":["ok","X-Real-IP"]}"#,
                "default_cache_behavior.origin_request.headers[1]: \"X-Real-IP\": the viewer's forwarding fields",
            ),
            (
                r#","origin_request":{"headers":["x-forwarded-for"]}"#,
                "default_cache_behavior.origin_request.headers[0]:",
            ),
            (
                r#","origin_request":{"headers":["Host"]}"#,
                "default_cache_behavior.origin_request.headers[0]: \"Host\": the origin gets",
            ),
            (
                r#","origin_request":{"headers":["connection"]}"#,
                "default_cache_behavior.origin_request.headers[0]:",
            ),
            (
                r#","origin_request":{"headers":["cookie"]}"#,
                "default_cache_behavior.origin_request.headers[0]:",
            ),
            (
                r#","origin_request":{"headers":["bad header"]}"#,
                "default_cache_behavior.origin_request.headers[0]:",
            ),
            (
                r#","origin_request":{"cookies":["a=b"]}"#,
                "default_cache_behavior.origin_request.cookies[0]:",
            ),
            (
                r#","origin_request":{"query_strings":[""]}"#,
                "default_cache_behavior.origin_request.query_strings[0]:",
            ),
            (
                r#","origin_request":{"cookies":"some"}"#,
                "default_cache_behavior.origin_request.cookies:",
            ),
            (
                r#","origin_request":{"colour":1}"#,
                "default_cache_behavior.origin_request.colour:",
            ),
        ] {
            let err = with(extra).unwrap_err();
            assert!(err.starts_with(field), "{extra}: {err}");
        }
    }

    #[test]
    fn statuses_other_than_success_default_to_ten_seconds() {
        let d = parse(MINIMAL).unwrap();
        let ttl = d.default_behavior.ttl;
        for code in STATUS_TTL_CODES {
            assert_eq!(ttl.heuristic(code), DEFAULT_STATUS_TTL, "{code}");
        }
        assert_eq!(ttl.heuristic(200), 86_400);
        let with = |extra: &str| {
            parse(&format!(
                r#"{{"origins":[{{"id":"a","domain_name":"x"}}],"default_cache_behavior":{{"target_origin_id":"a"{extra}}}}}"#
            ))
            .map(|d| d.default_behavior.ttl)
        };
        let set = with(r#","default_ttl_by_status":{"404":60,"301":0}"#).unwrap();
        assert_eq!((set.heuristic(404), set.heuristic(301)), (60, 0));
        assert_eq!(set.heuristic(410), DEFAULT_STATUS_TTL);
        // The default is brought within min_ttl and default_ttl; a value
        // given must be within min_ttl and max_ttl.
        assert_eq!(with(r#","min_ttl":30"#).unwrap().heuristic(404), 30);
        assert_eq!(with(r#","default_ttl":0"#).unwrap().heuristic(404), 0);
        assert_eq!(with(r#","default_ttl":5"#).unwrap().heuristic(301), 5);
        for (extra, field) in [
            (
                r#","default_ttl_by_status":{"200":5}"#,
                "default_cache_behavior.default_ttl_by_status.200:",
            ),
            (
                r#","default_ttl_by_status":{"500":5}"#,
                "default_cache_behavior.default_ttl_by_status.500:",
            ),
            (
                r#","default_ttl_by_status":{"x":5}"#,
                "default_cache_behavior.default_ttl_by_status.x:",
            ),
            (
                r#","max_ttl":60,"default_ttl_by_status":{"404":61}"#,
                "default_cache_behavior.default_ttl_by_status.404:",
            ),
        ] {
            let err = with(extra).unwrap_err();
            assert!(err.starts_with(field), "{extra}: {err}");
        }
    }

    #[test]
    fn default_ttl_follows_a_lower_max_ttl_when_not_given() {
        let d = parse(
            r#"{"origins":[{"id":"a","domain_name":"x"}],"default_cache_behavior":{"target_origin_id":"a","max_ttl":60}}"#,
        )
        .unwrap();
        assert_eq!(d.default_behavior.ttl, TtlPolicy::new(0, 60, 60));
    }

    #[test]
    fn behaviors_match_in_order_then_default() {
        let d = parse(
            r#"{"origins":[{"id":"a","domain_name":"x"},{"id":"b","domain_name":"y"},{"id":"c","domain_name":"z"}],
                "default_cache_behavior":{"target_origin_id":"a"},
                "cache_behaviors":[{"path_pattern":"/api/*","target_origin_id":"b"},
                                   {"path_pattern":"/api/v?/x","target_origin_id":"c"}]}"#,
        )
        .unwrap();
        assert_eq!(d.behavior_for("/api/v1/x").1.target_origin_id, "b");
        assert_eq!(d.behavior_for("/api/v1/x").0, 1);
        assert_eq!(d.behavior_for("/img/a.png").1.target_origin_id, "a");
        assert_eq!(d.behavior_for("/img/a.png").0, 0);
    }

    #[test]
    fn config_round_trips_through_json() {
        let raw: DistributionConfig = parse_json(
            br#"{"origins":[{"id":"a","domain_name":"x","protocol":"http"}],
                 "default_cache_behavior":{"target_origin_id":"a","cache_key":{"query_strings":["v"]},
                    "origin_request":{"query_strings":"all","cookies":"all","headers":["x-api"]}}}"#,
        )
        .unwrap();
        let again: DistributionConfig = parse_json(&serde_json::to_vec(&raw).unwrap()).unwrap();
        assert_eq!(raw, again);
    }
}
