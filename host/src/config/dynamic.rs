//! Dynamic origins: the origins a hook may route to that the config does not
//! list, named at run time and checked against the distribution's
//! `dynamic_origins` allow-list.
//!
//! A dynamic origin is known by its target id, `dynamic:<scheme>://<host>:<port><origin_path>`:
//! the cache keys its responses under that id (so two tenants never share an
//! object), and the proxy reads the origin back from it (checking it again,
//! so an id from anywhere, a cache-cluster peer included, reaches nothing
//! the allow-list does not). Addresses that are not public (loopback,
//! private, link-local such as cloud metadata, CGNAT, unique-local) are
//! refused unless `allow_private_addresses`: literal addresses here, names
//! when they resolve (the origin client's resolver).

use std::net::IpAddr;

use http::HeaderValue;
use http::uri::{Authority, Scheme};

use super::error::ConfigError;
use super::origin::{Origin, validate_origin};
use super::raw;

/// The prefix of a dynamic origin's target id.
pub const DYNAMIC_PREFIX: &str = "dynamic:";

/// The most pools `max_pools` may keep, and the default.
const MAX_POOLS: usize = 1024;
const DEFAULT_POOLS: usize = 64;

/// One allowed host pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostPattern {
    /// `*.host`: one label in place of `*`.
    wildcard: bool,
    host: String,
    port: Option<u16>,
}

impl HostPattern {
    fn parse(pattern: &str) -> Result<Self, String> {
        let (wildcard, rest) = match pattern.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, pattern),
        };
        let authority: Authority = rest
            .parse()
            .map_err(|_| format!("{pattern:?} is not a host pattern"))?;
        let host = authority.host();
        let ok = !host.is_empty()
            && authority.as_str() == rest
            && !rest.contains(['@', '*', '/'])
            && host == host.to_ascii_lowercase();
        if !ok {
            return Err(format!(
                "{pattern:?} is not a lower-case host or *.host, with an optional :port"
            ));
        }
        Ok(Self {
            wildcard,
            host: host.to_owned(),
            port: authority.port_u16(),
        })
    }

    fn matches(&self, host: &str, port: u16, default_port: u16) -> bool {
        let host_ok = if self.wildcard {
            host.strip_suffix(&self.host)
                .and_then(|label| label.strip_suffix('.'))
                .is_some_and(|label| !label.is_empty() && !label.contains('.'))
        } else {
            host == self.host
        };
        host_ok && port == self.port.unwrap_or(default_port)
    }
}

/// A distribution's validated `dynamic_origins`.
#[derive(Debug)]
pub struct DynamicOrigins {
    allow: Vec<HostPattern>,
    protocols: Vec<raw::Protocol>,
    pub allow_private_addresses: bool,
    /// Timeouts and custom headers every dynamic origin gets.
    template: Origin,
    pub max_pools: usize,
}

/// What a hook names: a host (and port), a protocol, a path prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamicTarget<'a> {
    pub domain_name: &'a str,
    pub port: Option<u16>,
    pub protocol: raw::Protocol,
    pub origin_path: Option<&'a str>,
}

fn default_port(protocol: raw::Protocol) -> u16 {
    match protocol {
        raw::Protocol::Http => 80,
        raw::Protocol::Https => 443,
    }
}

/// Whether `ip` is an address a dynamic origin may not reach unless
/// `allow_private_addresses`: not a public unicast address.
pub fn is_private_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || a >= 224
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private_address(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

impl DynamicOrigins {
    /// Validates `dynamic_origins`.
    pub fn new(raw: &raw::DynamicOriginsConfig) -> Result<Self, ConfigError> {
        const FIELD: &str = "dynamic_origins";
        if raw.allow.is_empty() {
            return Err(ConfigError::new(
                format!("{FIELD}.allow"),
                "at least one host pattern is required",
            ));
        }
        let allow = raw
            .allow
            .iter()
            .enumerate()
            .map(|(i, p)| {
                HostPattern::parse(p)
                    .map_err(|m| ConfigError::new(format!("{FIELD}.allow[{i}]"), m))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if raw.protocols.is_empty() {
            return Err(ConfigError::new(
                format!("{FIELD}.protocols"),
                "at least one protocol is required",
            ));
        }
        let max_pools = raw.max_pools.unwrap_or(DEFAULT_POOLS);
        if !(1..=MAX_POOLS).contains(&max_pools) {
            return Err(ConfigError::new(
                format!("{FIELD}.max_pools"),
                format!("must be between 1 and {MAX_POOLS}"),
            ));
        }
        // The timeouts and headers are checked as an origin's are.
        let template = validate_origin(
            &raw::OriginConfig {
                id: "dynamic".to_owned(),
                domain_name: "dynamic.invalid".to_owned(),
                protocol: raw::Protocol::Https,
                origin_path: String::new(),
                custom_headers: raw.custom_headers.clone(),
                connect_timeout_ms: raw.connect_timeout_ms,
                read_timeout_ms: raw.read_timeout_ms,
                keepalive_timeout_ms: raw.keepalive_timeout_ms,
                protocol_version: raw::ProtocolVersion::H1,
                addresses: Vec::new(),
                health_check: None,
            },
            FIELD,
        )?;
        Ok(Self {
            allow,
            protocols: raw.protocols.clone(),
            allow_private_addresses: raw.allow_private_addresses,
            template,
            max_pools,
        })
    }

    /// The target id of what a hook named, when the allow-list allows it;
    /// else why not.
    pub fn target_id(&self, target: &DynamicTarget<'_>) -> Result<String, String> {
        let named = match target.port {
            Some(port) => format!("{}:{port}", target.domain_name),
            None => target.domain_name.to_owned(),
        };
        let authority: Authority = named
            .parse()
            .ok()
            .filter(|a: &Authority| a.as_str() == named && !named.contains('@'))
            .ok_or_else(|| format!("{named:?} is not a host or host:port"))?;
        let host = authority.host().to_ascii_lowercase();
        if !self.protocols.contains(&target.protocol) {
            return Err(format!(
                "protocol {:?} is not in dynamic_origins.protocols",
                target.protocol
            ));
        }
        let default = default_port(target.protocol);
        let port = authority.port_u16().unwrap_or(default);
        if !self.allow.iter().any(|p| p.matches(&host, port, default)) {
            return Err(format!(
                "{host}:{port} is not allowed by the distribution's dynamic_origins"
            ));
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>()
            && is_private_address(ip)
            && !self.allow_private_addresses
        {
            return Err(format!(
                "{ip} is not a public address (dynamic_origins.allow_private_addresses is off)"
            ));
        }
        let path = target.origin_path.unwrap_or("");
        if !path.is_empty()
            && (!path.starts_with('/')
                || path.ends_with('/')
                || path.contains(['?', '#', ' '])
                || http::uri::PathAndQuery::try_from(path).is_err())
        {
            return Err(format!(
                "origin path {path:?} must be empty or start with '/' and not end with '/'"
            ));
        }
        let scheme = match target.protocol {
            raw::Protocol::Http => "http",
            raw::Protocol::Https => "https",
        };
        Ok(format!("{DYNAMIC_PREFIX}{scheme}://{host}:{port}{path}"))
    }

    /// How long a dynamic origin may take to answer.
    pub fn read_timeout(&self) -> std::time::Duration {
        self.template.read_timeout
    }

    /// The origin a dynamic target id names, checked again.
    pub fn origin(&self, target_id: &str) -> Result<Origin, String> {
        let rest = target_id
            .strip_prefix(DYNAMIC_PREFIX)
            .ok_or_else(|| format!("{target_id:?} is not a dynamic origin"))?;
        let uri: http::Uri = rest
            .parse()
            .map_err(|_| format!("{target_id:?} is not a dynamic origin"))?;
        let protocol = match uri.scheme_str() {
            Some("http") => raw::Protocol::Http,
            Some("https") => raw::Protocol::Https,
            _ => return Err(format!("{target_id:?} is not a dynamic origin")),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| format!("{target_id:?} is not a dynamic origin"))?;
        let path = uri.path().trim_end_matches('/');
        let again = self.target_id(&DynamicTarget {
            domain_name: authority.as_str(),
            port: None,
            protocol,
            origin_path: Some(path),
        })?;
        if again != target_id {
            return Err(format!("{target_id:?} is not a dynamic origin"));
        }
        let default = default_port(protocol);
        // The Host header names the port only when it is not the default.
        let host_header = if authority.port_u16() == Some(default) {
            HeaderValue::from_str(authority.host())
        } else {
            HeaderValue::from_str(authority.as_str())
        }
        .map_err(|_| format!("{target_id:?} is not a dynamic origin"))?;
        Ok(Origin {
            id: target_id.to_owned(),
            scheme: match protocol {
                raw::Protocol::Http => Scheme::HTTP,
                raw::Protocol::Https => Scheme::HTTPS,
            },
            authority: authority.clone(),
            host_header,
            origin_path: path.to_owned(),
            ..self.template.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins(allow: &[&str], private: bool) -> DynamicOrigins {
        let raw: raw::DynamicOriginsConfig = serde_json::from_value(serde_json::json!({
            "allow": allow, "protocols": ["https", "http"], "allow_private_addresses": private
        }))
        .expect("config");
        DynamicOrigins::new(&raw).expect("valid")
    }

    fn target(domain: &str, port: Option<u16>, protocol: raw::Protocol) -> DynamicTarget<'_> {
        DynamicTarget {
            domain_name: domain,
            port,
            protocol,
            origin_path: None,
        }
    }

    #[test]
    fn patterns_allow_one_label_and_the_default_port_unless_named() {
        let d = origins(&["*.tenants.example.net", "api.example.net:8443"], false);
        let https = raw::Protocol::Https;
        assert_eq!(
            d.target_id(&target("Acme.Tenants.example.net", None, https)),
            Ok("dynamic:https://acme.tenants.example.net:443".to_owned())
        );
        for refused in [
            target("tenants.example.net", None, https),
            target("a.b.tenants.example.net", None, https),
            target("acme.tenants.example.net", Some(8443), https),
            target("eviltenants.example.net", None, https),
            target("api.example.net", None, https),
            target("acme.tenants.example.net.evil.com", None, https),
            target("user@acme.tenants.example.net", None, https),
        ] {
            assert!(d.target_id(&refused).is_err(), "{refused:?} was allowed");
        }
        assert!(
            d.target_id(&target("api.example.net", Some(8443), https))
                .is_ok()
        );
        assert!(
            d.target_id(&target("api.example.net:8443", None, https))
                .is_ok()
        );
    }

    #[test]
    fn private_literal_addresses_need_the_flag() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "169.254.169.254",
            "[::1]",
            "100.64.0.1",
        ] {
            let pattern = format!("{ip}:8080");
            let d = origins(&[&pattern], false);
            let t = target(&pattern, None, raw::Protocol::Http);
            assert!(d.target_id(&t).is_err(), "{ip}");
            let d = origins(&[&pattern], true);
            assert!(d.target_id(&t).is_ok(), "{ip}");
        }
        assert!(!is_private_address("93.184.216.34".parse().expect("ip")));
        assert!(is_private_address("::ffff:10.0.0.1".parse().expect("ip")));
        assert!(is_private_address("fd00::1".parse().expect("ip")));
    }

    #[test]
    fn an_id_reads_back_to_its_origin_only_when_still_allowed() {
        let d = origins(&["*.t.example"], false);
        let id = d
            .target_id(&DynamicTarget {
                domain_name: "a.t.example",
                port: None,
                protocol: raw::Protocol::Https,
                origin_path: Some("/v2"),
            })
            .expect("allowed");
        assert_eq!(id, "dynamic:https://a.t.example:443/v2");
        let origin = d.origin(&id).expect("origin");
        assert_eq!(origin.host_header, "a.t.example");
        assert_eq!(origin.origin_path, "/v2");
        assert_eq!(origin.authority.as_str(), "a.t.example:443");
        for forged in [
            "dynamic:https://other.example:443",
            "dynamic:https://a.t.example:8443",
            "dynamic:http://a.t.example:443",
            "origin-a",
        ] {
            assert!(d.origin(forged).is_err(), "{forged}");
        }
    }
}
