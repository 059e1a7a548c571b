//! The forwarding fields the host owns: a viewer's are dropped, the host's own are set.

use std::net::IpAddr;

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};

use crate::config::Forwarding;
use crate::fields::{UNKEYED_OVERRIDES, VIEWER_FORWARDING};

static XFF: HeaderName = HeaderName::from_static("x-forwarded-for");
static XFP: HeaderName = HeaderName::from_static("x-forwarded-proto");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// Drops the viewer's [`VIEWER_FORWARDING`] fields that `keyed` does not
/// name, and its `X-Forwarded-For` too unless the host appends to it
/// (`forwarding.x_forwarded_for`) or `keyed` names it.
pub fn strip_viewer_forwarding(
    headers: &mut HeaderMap,
    forwarding: Forwarding,
    keyed: &[HeaderName],
) {
    let named = |name: &str| keyed.iter().any(|k| k.as_str() == name);
    for name in VIEWER_FORWARDING {
        if !named(name) {
            headers.remove(name);
        }
    }
    if !forwarding.x_forwarded_for && !named(XFF.as_str()) {
        headers.remove(&XFF);
    }
}

/// What the host knows of a viewer's connection, for the forwarding fields.
#[derive(Debug, Clone, Copy)]
pub struct Viewer<'a> {
    pub client: IpAddr,
    /// It came over TLS.
    pub tls: bool,
    /// The host it asked for (lower-case, no port).
    pub host: &'a str,
}

/// Sets the forwarding fields `forwarding` names with the host's values:
/// the client's address appended to `X-Forwarded-For`, `X-Forwarded-Proto`
/// by the listener, and `Forwarded` (RFC 7239) replacing any other.
pub fn set_forwarding(headers: &mut HeaderMap, forwarding: Forwarding, viewer: Viewer<'_>) {
    let proto = if viewer.tls { "https" } else { "http" };
    if forwarding.x_forwarded_for {
        append_forwarded_for(headers, viewer.client);
    }
    if forwarding.x_forwarded_proto {
        headers.insert(&XFP, HeaderValue::from_static(proto));
    }
    if forwarding.forwarded {
        // RFC 7239 4: an IPv6 node and anything with a ':' is quoted.
        let node = match viewer.client {
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("\"[{ip}]\""),
        };
        let host = if viewer.host.contains([':', '[']) {
            format!("\"{}\"", viewer.host)
        } else {
            viewer.host.to_owned()
        };
        if let Ok(value) = HeaderValue::from_str(&format!("for={node};proto={proto};host={host}")) {
            headers.insert(&FORWARDED, value);
        }
    }
}

/// Drops [`UNKEYED_OVERRIDES`] that `keyed` does not name.
pub fn strip_unkeyed_overrides(headers: &mut HeaderMap, keyed: &[HeaderName]) {
    for name in UNKEYED_OVERRIDES {
        if !keyed.iter().any(|k| k.as_str() == name) {
            headers.remove(name);
        }
    }
}

/// Appends the viewer's address to `x-forwarded-for` (after hop-by-hop stripping,
/// so a viewer cannot make the host drop the entry it adds).
pub fn append_forwarded_for(headers: &mut HeaderMap, client: IpAddr) {
    let value = match headers.get(&XFF).and_then(|v| v.to_str().ok()) {
        Some(prev) if !prev.trim().is_empty() => format!("{prev}, {client}"),
        _ => client.to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(&XFF, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_owns_the_forwarding_fields() {
        let mut h = HeaderMap::new();
        for name in VIEWER_FORWARDING {
            h.insert(name, "spoofed".parse().unwrap());
        }
        h.insert("x-forwarded-for", "6.6.6.6".parse().unwrap());
        let keyed = [HeaderName::from_static("x-real-ip")];
        strip_viewer_forwarding(&mut h, Forwarding::ALL, &keyed);
        assert_eq!(h.len(), 2, "{h:?}");
        assert_eq!(h["x-real-ip"], "spoofed");
        let viewer = Viewer {
            client: "::1".parse().unwrap(),
            tls: true,
            host: "[::1]",
        };
        set_forwarding(&mut h, Forwarding::ALL, viewer);
        assert_eq!(h["x-forwarded-for"], "6.6.6.6, ::1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["forwarded"], r#"for="[::1]";proto=https;host="[::1]""#);

        let none = Forwarding {
            x_forwarded_for: false,
            x_forwarded_proto: false,
            forwarded: false,
        };
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "6.6.6.6".parse().unwrap());
        strip_viewer_forwarding(&mut h, none, &[]);
        set_forwarding(&mut h, none, viewer);
        assert!(h.is_empty(), "{h:?}");
        let mut h = HeaderMap::new();
        let v4 = Viewer {
            client: "192.0.2.1".parse().unwrap(),
            tls: false,
            host: "a.example",
        };
        set_forwarding(&mut h, Forwarding::ALL, v4);
        assert_eq!(h["forwarded"], "for=192.0.2.1;proto=http;host=a.example");
    }

    #[test]
    fn forwarded_for_appends() {
        let mut h = HeaderMap::new();
        append_forwarded_for(&mut h, "10.0.0.1".parse().unwrap());
        append_forwarded_for(&mut h, "::1".parse().unwrap());
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, ::1");
    }
}
