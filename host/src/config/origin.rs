//! Validated origins (address, path, headers, timeouts) and the targets a
//! behavior sends requests to: an origin, or an origin group that fails over.

use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use http::uri::{Authority, Scheme};

use super::error::ConfigError;
use super::names::validate_id;
use super::raw;

/// CloudFront's connection timeout default (10 s) and response timeout default (30 s).
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 10_000;
pub const DEFAULT_READ_TIMEOUT_MS: u64 = 30_000;
const MAX_CONNECT_TIMEOUT_MS: u64 = 60_000;
const MAX_READ_TIMEOUT_MS: u64 = 180_000;
/// CloudFront's origin keep-alive timeout default (5 s) and maximum (60 s).
pub const DEFAULT_KEEPALIVE_TIMEOUT_MS: u64 = 5_000;
const MAX_KEEPALIVE_TIMEOUT_MS: u64 = 60_000;

/// An origin ready to be fetched from.
#[derive(Debug, Clone)]
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
    /// The HTTP version spoken to it.
    pub version: raw::ProtocolVersion,
    /// Where requests connect (`host:port`), in place of `authority`;
    /// empty: `authority` itself.
    pub addresses: Vec<Authority>,
    /// The active health check of each address.
    pub health_check: Option<HealthCheck>,
}

/// A validated health check.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HealthCheck {
    pub path: http::uri::PathAndQuery,
    pub interval: Duration,
    pub timeout: Duration,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    /// Empty: any 2xx or 3xx.
    pub expected_status: Vec<u16>,
}

impl HealthCheck {
    /// Whether a check's answer passes.
    pub fn passes(&self, status: http::StatusCode) -> bool {
        if self.expected_status.is_empty() {
            status.is_success() || status.is_redirection()
        } else {
            self.expected_status.contains(&status.as_u16())
        }
    }
}

/// The most addresses an origin may list.
pub const MAX_ADDRESSES: usize = 64;

fn validate_addresses(o: &raw::OriginConfig, field: &str) -> Result<Vec<Authority>, ConfigError> {
    if o.addresses.len() > MAX_ADDRESSES {
        return Err(ConfigError::new(
            format!("{field}.addresses"),
            format!("at most {MAX_ADDRESSES} addresses"),
        ));
    }
    let mut out: Vec<Authority> = Vec::with_capacity(o.addresses.len());
    for (i, address) in o.addresses.iter().enumerate() {
        let parsed = address
            .parse::<Authority>()
            .ok()
            .filter(|a| {
                !a.host().is_empty()
                    && a.port_u16().is_some()
                    && !a.as_str().contains('@')
                    && a.as_str() == address
            })
            .ok_or_else(|| {
                ConfigError::new(
                    format!("{field}.addresses[{i}]"),
                    format!("{address:?} is not a host:port (the port is required)"),
                )
            })?;
        if out.contains(&parsed) {
            return Err(ConfigError::new(
                format!("{field}.addresses[{i}]"),
                format!("{address:?} is listed twice"),
            ));
        }
        out.push(parsed);
    }
    Ok(out)
}

fn validate_health_check(
    h: &raw::HealthCheckConfig,
    field: &str,
) -> Result<HealthCheck, ConfigError> {
    let field = format!("{field}.health_check");
    let path = h.path.clone().unwrap_or_else(|| "/".to_owned());
    let path = path
        .starts_with('/')
        .then(|| http::uri::PathAndQuery::from_maybe_shared(path.clone()).ok())
        .flatten()
        .ok_or_else(|| {
            ConfigError::new(
                format!("{field}.path"),
                format!("{path:?} is not a path starting with '/'"),
            )
        })?;
    let interval = h.interval_ms.unwrap_or(5_000);
    if !(100..=300_000).contains(&interval) {
        return Err(ConfigError::new(
            format!("{field}.interval_ms"),
            "must be between 100 and 300000",
        ));
    }
    let timeout = h.timeout_ms.unwrap_or(2_000.min(interval));
    if !(1..=interval).contains(&timeout) {
        return Err(ConfigError::new(
            format!("{field}.timeout_ms"),
            format!("must be between 1 and the interval ({interval})"),
        ));
    }
    let threshold = |value: Option<u32>, name: &str| {
        let value = value.unwrap_or(2);
        if (1..=10).contains(&value) {
            Ok(value)
        } else {
            Err(ConfigError::new(
                format!("{field}.{name}"),
                "must be between 1 and 10",
            ))
        }
    };
    let expected_status = h.expected_status.clone().unwrap_or_default();
    if let Some(bad) = expected_status.iter().find(|s| !(100..=599).contains(*s)) {
        return Err(ConfigError::new(
            format!("{field}.expected_status"),
            format!("{bad} is not an HTTP status"),
        ));
    }
    Ok(HealthCheck {
        path,
        interval: Duration::from_millis(interval),
        timeout: Duration::from_millis(timeout),
        healthy_threshold: threshold(h.healthy_threshold, "healthy_threshold")?,
        unhealthy_threshold: threshold(h.unhealthy_threshold, "unhealthy_threshold")?,
        expected_status,
    })
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

pub(super) fn validate_origin(o: &raw::OriginConfig, field: &str) -> Result<Origin, ConfigError> {
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
        version: o.protocol_version,
        addresses: validate_addresses(o, field)?,
        health_check: o
            .health_check
            .as_ref()
            .map(|h| validate_health_check(h, field))
            .transpose()?,
    })
}
