//! Header-field rules every layer shares: hop-by-hop fields (RFC 9110 7.6.1), and the forwarding and override fields a viewer does not get to set.

use http::HeaderMap;
use http::header::{CONNECTION, HeaderName};

/// Fields that describe one connection and never cross a proxy.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Whether `name` is a hop-by-hop field in its own right.
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name.as_str())
}

/// Removes the hop-by-hop fields and every field named in `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Request fields some origins read to rebuild the URL or the method, and
/// that no cache keys on by default. Forwarded on a cacheable request, they
/// let one viewer get a response stored for everyone (web cache poisoning):
/// the host drops them from GET and HEAD requests unless the behavior's
/// cache key names them.
pub const UNKEYED_OVERRIDES: [&str; 11] = [
    "x-forwarded-host",
    "x-forwarded-server",
    "x-forwarded-scheme",
    "x-host",
    "x-original-host",
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-original-method",
];

/// Fields that say who the client is and how it reached the proxy in front
/// of the origin. The host is that proxy: what a viewer sends in them is a
/// claim about itself an origin may trust (for links, redirects, access
/// rules, logs), and one no cache keys on. The host drops them from every
/// viewer request unless the behavior's cache key names one, and sets its
/// own `X-Forwarded-For`, `X-Forwarded-Proto` and `Forwarded` instead
/// ([`set_forwarding`]).
pub const VIEWER_FORWARDING: [&str; 14] = [
    "forwarded",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-ssl",
    "x-forwarded-protocol",
    "x-url-scheme",
    "front-end-https",
    "x-real-ip",
    "true-client-ip",
    "x-client-ip",
    "x-cluster-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_fixed_and_connection_named_fields() {
        let mut h = HeaderMap::new();
        h.insert("connection", "close, X-Secret".parse().unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("transfer-encoding", "chunked".parse().unwrap());
        h.insert("x-kept", "1".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }
}
