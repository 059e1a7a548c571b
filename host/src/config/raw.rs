//! The distribution config as operators write it (JSON, snake_case, unknown fields refused).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A whole distribution config, the body of `POST /v1/distributions` and
/// `PUT /v1/distributions/{id}/config`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistributionConfig {
    #[serde(default)]
    pub comment: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Host names are case-insensitive: they are kept in lower case.
    #[serde(default, deserialize_with = "lower_case_names")]
    pub aliases: Vec<String>,
    pub origins: Vec<OriginConfig>,
    #[serde(default)]
    pub origin_groups: Vec<OriginGroupConfig>,
    /// Servers hooks may send requests to (`fetch`) beside the origins:
    /// declared like origins, never a behavior's target.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<OriginConfig>,
    /// The origins hooks may route to that are not in `origins`, named at
    /// run time (`tenant.backend.internal`); none without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic_origins: Option<DynamicOriginsConfig>,
    pub default_cache_behavior: CacheBehaviorConfig,
    #[serde(default)]
    pub cache_behaviors: Vec<CacheBehaviorConfig>,
    #[serde(default)]
    pub continuous_deployment_policy_id: Option<String>,
    /// Access logs for this distribution (written where `--access-log` says).
    #[serde(default, skip_serializing_if = "LoggingConfig::is_off")]
    pub logging: LoggingConfig,
    /// Share the cache across the hosts of a cache cluster: a miss asks the
    /// key's owner among the members before the origin (see
    /// [`crate::cluster`]). No effect on a host that is not a member.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cluster: bool,
}

/// Whether a distribution's requests are written to the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    #[serde(default)]
    pub enabled: bool,
    /// Log the viewer's `Cookie` header too (CloudFront's `IncludeCookies`).
    #[serde(default)]
    pub include_cookies: bool,
}

impl LoggingConfig {
    fn is_off(&self) -> bool {
        *self == Self::default()
    }
}

fn yes() -> bool {
    true
}

/// One origin: where misses are fetched from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginConfig {
    pub id: String,
    /// `host` or `host:port`.
    pub domain_name: String,
    #[serde(default)]
    pub protocol: Protocol,
    /// Prefix added before the viewer's path (`/v2`), empty for none.
    #[serde(default)]
    pub origin_path: String,
    #[serde(default)]
    pub custom_headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_timeout_ms: Option<u64>,
    /// How long an idle connection to the origin is kept for reuse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_timeout_ms: Option<u64>,
    /// The HTTP version spoken to the origin.
    #[serde(default, skip_serializing_if = "ProtocolVersion::is_h1")]
    pub protocol_version: ProtocolVersion,
    /// The addresses (`host:port` or `ip:port`) requests connect to, in
    /// place of `domain_name`'s own; `Host` and TLS stay `domain_name`'s.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// Checks each address in the background; requests go to healthy ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheckConfig>,
}

/// An origin's active health check, per address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckConfig {
    /// The path asked with `GET` (default `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Between two checks of an address (default 5000; 100 to 300000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<u64>,
    /// How long a check may take (default 2000; at most the interval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Checks passed in a row that make an address healthy (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_threshold: Option<u32>,
    /// Checks failed in a row that make an address unhealthy (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy_threshold: Option<u32>,
    /// The statuses that pass (default: any 2xx or 3xx).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_status: Option<Vec<u16>>,
}

/// The HTTP version the host speaks to an origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProtocolVersion {
    /// HTTP/1.1, one request per connection at a time (the default).
    #[default]
    H1,
    /// HTTP/2 only: agreed by ALPN over TLS, by prior knowledge in clear
    /// (h2c); requests multiplexed on one connection.
    H2,
    /// HTTP/2 when the origin's TLS handshake agrees on `h2`, HTTP/1.1
    /// otherwise (and always in clear).
    Auto,
}

impl ProtocolVersion {
    fn is_h1(&self) -> bool {
        *self == Self::H1
    }
}

impl DistributionConfig {
    /// A config as created: what a new distribution gets that one stored
    /// before the setting existed does not (`compress: true` on each
    /// behavior that does not say).
    pub fn as_created(mut self) -> Self {
        for behavior in
            std::iter::once(&mut self.default_cache_behavior).chain(&mut self.cache_behaviors)
        {
            behavior.compress.get_or_insert(true);
        }
        self
    }
}

/// What a hook may route to beyond the configured origins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynamicOriginsConfig {
    /// Host patterns, lower case: `api.example.net`, or `*.tenants.example.net`
    /// (one label in place of `*`), each with an optional `:port` (without
    /// one, only the protocol's default port).
    pub allow: Vec<String>,
    /// The protocols allowed (default `["https"]`).
    #[serde(default = "https_only")]
    pub protocols: Vec<Protocol>,
    /// Allow addresses that are loopback, private, link-local (cloud
    /// metadata) or otherwise not public; refused by default, whatever a
    /// name resolves to.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_private_addresses: bool,
    /// Sent to every dynamic origin, as an origin's are.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom_headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_timeout_ms: Option<u64>,
    /// Connection pools kept at once (one per dynamic origin), least
    /// recently used dropped first: 1 to 1024, default 64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pools: Option<usize>,
}

fn https_only() -> Vec<Protocol> {
    vec![Protocol::Https]
}

/// How the host talks to an origin. Defaults to `https`, as a CDN should.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Http,
    #[default]
    Https,
}

/// Origins tried in order; the next is tried on a connection error, a timeout,
/// or one of `failover_status_codes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginGroupConfig {
    pub id: String,
    pub members: Vec<String>,
    #[serde(default = "default_failover_codes")]
    pub failover_status_codes: Vec<u16>,
}

fn default_failover_codes() -> Vec<u16> {
    vec![500, 502, 503, 504]
}

/// A cache behavior. The default behavior has no `path_pattern`; every other one must.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheBehaviorConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_pattern: Option<String>,
    pub target_origin_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ttl: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_ttl: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ttl: Option<u64>,
    /// The lifetime, by status, of a response without explicit freshness
    /// whose status is cacheable by default but not a success (300, 301,
    /// 308, 404, 405, 410, 414, 501): in place of `default_ttl`, and 10 s
    /// for a status not listed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub default_ttl_by_status: BTreeMap<String, u64>,
    #[serde(default)]
    pub cache_key: CacheKeyConfig,
    /// What goes to the origin besides the cache key, without being keyed
    /// on (CloudFront's origin request policy). The origin gets the union of
    /// the two; the key is `cache_key` alone.
    #[serde(default, skip_serializing_if = "OriginRequestConfig::is_empty")]
    pub origin_request: OriginRequestConfig,
    /// Store responses that carry `Set-Cookie` (and replay the cookie to
    /// every viewer of the object), as RFC 9111 allows. Off by default: a
    /// shared cache that stores one viewer's session cookie hands it to all.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub store_set_cookie: bool,
    /// The forwarding fields the host sets on requests to the origin, with
    /// its own values (`x-forwarded-for`, `x-forwarded-proto`, `forwarded`);
    /// absent, all three. The viewer's forwarding fields never reach the
    /// origin unless the cache key names them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarding_headers: Option<Vec<String>>,
    /// Pass the origin's `Surrogate-Key` and `Cache-Tag` fields on to
    /// viewers. Off by default: they name the tags purges use, which are
    /// the operator's, not the viewer's (Fastly and Cloudflare strip them).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_tag_headers: bool,
    /// Serve a stored response past its freshness when the origin cannot be
    /// reached (the connection refused, or dropped before a response head;
    /// a timeout), unless its directives forbid serving it stale (RFC 9111
    /// 4.2.4). On by default, as in Squid and ATS.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub serve_stale_on_error: bool,
    /// Compress compressible responses the origin sent uncompressed, by
    /// the viewer's `Accept-Encoding` (brotli, zstd, gzip). Absent means
    /// off; a distribution created without it gets `true` written in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compress: Option<bool>,
    /// How long a WebSocket through this behavior may pass no bytes either
    /// way before the host closes it (1 to 86400; absent, 600, as
    /// CloudFront's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub websocket_idle_timeout_seconds: Option<u64>,
    #[serde(default)]
    pub hooks: HooksConfig,
}

fn is_true(value: &bool) -> bool {
    *value
}

/// What the cache key adds beyond distribution, origin, method, host and path.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheKeyConfig {
    #[serde(default)]
    pub query_strings: QueryStrings,
    #[serde(default)]
    pub headers: Vec<String>,
    #[serde(default)]
    pub cookies: Vec<String>,
}

/// What a behavior forwards to the origin on a request the cache may store,
/// beyond what its cache key already forwards; nothing here is keyed on.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginRequestConfig {
    #[serde(default)]
    pub query_strings: QueryStrings,
    /// The viewer's headers are forwarded whatever this says (the ones the
    /// host owns or drops excepted, and naming one of those is refused).
    #[serde(default)]
    pub headers: Names,
    #[serde(default)]
    pub cookies: Names,
}

impl OriginRequestConfig {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// `"all"`, or a list of names (`"none"` is the empty list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Names {
    All,
    Only(Vec<String>),
}

impl Default for Names {
    fn default() -> Self {
        Self::Only(Vec::new())
    }
}

impl Names {
    /// Whether `name` is in the list (or the list is `"all"`), by `eq`.
    pub fn includes(&self, eq: impl Fn(&str) -> bool) -> bool {
        match self {
            Self::All => true,
            Self::Only(names) => names.iter().any(|n| eq(n)),
        }
    }
}

impl Serialize for Names {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::All => s.serialize_str("all"),
            Self::Only(names) => names.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Names {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(
            match QueryStrings::deserialize_as(d, r#""none", "all", or a list of names"#)? {
                QueryStrings::None => Self::Only(Vec::new()),
                QueryStrings::All => Self::All,
                QueryStrings::Only(names) => Self::Only(names),
            },
        )
    }
}

/// `"none"`, `"all"`, or a list of query parameter names to include.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum QueryStrings {
    #[default]
    None,
    All,
    Only(Vec<String>),
}

impl Serialize for QueryStrings {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::None => s.serialize_str("none"),
            Self::All => s.serialize_str("all"),
            Self::Only(names) => names.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for QueryStrings {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::deserialize_as(d, r#""none", "all", or a list of query parameter names"#)
    }
}

impl QueryStrings {
    /// `"none"`, `"all"` or a list of strings, `expected` naming what in errors.
    fn deserialize_as<'de, D: Deserializer<'de>>(
        d: D,
        expected: &'static str,
    ) -> Result<Self, D::Error> {
        struct Visitor(&'static str);
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = QueryStrings;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<QueryStrings, E> {
                match v {
                    "none" => Ok(QueryStrings::None),
                    "all" => Ok(QueryStrings::All),
                    other => Err(E::invalid_value(serde::de::Unexpected::Str(other), &self)),
                }
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<QueryStrings, A::Error> {
                let mut names = Vec::new();
                while let Some(name) = seq.next_element::<String>()? {
                    names.push(name);
                }
                Ok(QueryStrings::Only(names))
            }
        }
        d.deserialize_any(Visitor(expected))
    }

    /// Both lists' parameters: what a behavior forwards when its cache key
    /// keeps `self` and its origin request policy `other`.
    pub fn union(&self, other: &Self) -> Self {
        match (self, other) {
            (Self::All, _) | (_, Self::All) => Self::All,
            (Self::None, x) | (x, Self::None) => x.clone(),
            (Self::Only(a), Self::Only(b)) => {
                let mut names = a.clone();
                names.extend(b.iter().filter(|n| !a.contains(n)).cloned());
                Self::Only(names)
            }
        }
    }
}

/// The hooks a behavior runs, by Lambda@Edge event.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HooksConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub viewer_request: Option<HookRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_request: Option<HookRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_response: Option<HookRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub viewer_response: Option<HookRef>,
}

impl HooksConfig {
    /// Every configured hook with its event name.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &HookRef)> {
        [
            ("viewer_request", &self.viewer_request),
            ("origin_request", &self.origin_request),
            ("origin_response", &self.origin_response),
            ("viewer_response", &self.viewer_response),
        ]
        .into_iter()
        .filter_map(|(event, hook)| hook.as_ref().map(|h| (event, h)))
    }
}

/// A hook association: an uploaded module (`name` or `name@sha256:...`), its
/// config, and its limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookRef {
    pub module: String,
    #[serde(default)]
    pub config: serde_json::Map<String, serde_json::Value>,
    /// CPU budget per invocation; default 5 ms for viewer events, 30 ms for
    /// origin events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_budget_ms: Option<u64>,
    /// Memory cap per invocation; default 16 MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit_mib: Option<u64>,
    /// Give the hook the body: the request's in viewer-request and
    /// origin-request, the origin's response's in origin-response (never in
    /// viewer-response). Read whole before the hook runs, up to
    /// `body_limit_kib`. Without it bodies stream past the hook.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub include_body: bool,
    /// The most of a body a hook is given, in KiB: 1 to 1024, default 1024
    /// (Lambda@Edge's 1 MB for origin-request bodies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_limit_kib: Option<u64>,
    /// What a body longer than `body_limit_kib` gets: `truncate` (the
    /// default: the hook is given its first bytes and `body-truncated`, and
    /// the whole body goes on unless the hook replaces it) or `reject` (413
    /// for a request body, 502 for an origin's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_over_limit: Option<BodyOverLimit>,
    /// Lets the hook send HTTP requests (the `fetch` interface) to the
    /// distribution's origins and `backends`; without it, none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetch: Option<FetchConfig>,
    /// The secret stores (`PUT /v1/secrets/{store}/{name}`) the hook may
    /// read with the `secrets` interface; none without it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_stores: Vec<String>,
}

/// What a hook association may send with `fetch`, per event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchConfig {
    /// Requests per event: 1 to 16, default 4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests: Option<u32>,
    /// Per request, from sending to the whole answer: 1 to 30000 ms,
    /// default 2000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// The longest answer body: 1 to 1024 KiB, default 1024.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_response_kib: Option<u64>,
    /// `GET` and `HEAD` requests go through the shared cache: answered from
    /// it while what it holds is fresh, and what a backend answers stored
    /// as its `Cache-Control` allows. Off by default.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cache: bool,
}

/// What a body longer than a hook association's `body_limit_kib` gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyOverLimit {
    /// The hook is given the body's first bytes, flagged as truncated.
    #[default]
    Truncate,
    /// The request is refused (413), or the origin's answer is (502).
    Reject,
}

/// A list of host names, lower-cased (DNS names are case-insensitive, and
/// `Host` headers are matched in lower case).
fn lower_case_names<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let names = <Vec<String> as Deserialize>::deserialize(d)?;
    Ok(names.into_iter().map(|n| n.to_ascii_lowercase()).collect())
}
