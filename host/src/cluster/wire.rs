//! What an internal request between members carries besides the viewer's
//! request: header fields named `edge-cluster-*`, set by the asking member
//! and read by the owner only after the secret matched.
//!
//! A viewer's own `edge-cluster-*` fields are dropped before a request is
//! sent to an owner, and an origin's before an answer goes back, so neither
//! can speak for a member.

use http::HeaderMap;
use http::header::HeaderName;

/// Where the secret lives in the store, under the fleet's prefix.
pub const SECRET_KEY: &str = ".cluster/secret";

/// The cluster's secret.
pub static SECRET: HeaderName = HeaderName::from_static("edge-cluster-secret");
/// The id of the member that asks: its presence marks a request as one hop
/// already (an owner never asks on).
pub static HOP: HeaderName = HeaderName::from_static("edge-cluster-hop");
/// The distribution the viewer asked for (the primary of a staging arm).
pub static DISTRIBUTION: HeaderName = HeaderName::from_static("edge-cluster-distribution");
/// `primary` or `staging`: the arm the asking member chose.
pub static ARM: HeaderName = HeaderName::from_static("edge-cluster-arm");
/// The target (origin or group) the request goes to, after the viewer-request hook.
pub static TARGET: HeaderName = HeaderName::from_static("edge-cluster-target");
/// The viewer's address, for the forwarding fields the origin gets.
pub static CLIENT: HeaderName = HeaderName::from_static("edge-cluster-client");
/// `1` when the viewer came over TLS.
pub static TLS: HeaderName = HeaderName::from_static("edge-cluster-tls");
/// On an answer: one tag of the stored object per field.
pub static TAG: HeaderName = HeaderName::from_static("edge-cluster-tag");
/// On an answer: how the owner answered (`Hit`, `Miss`, ...).
pub static RESULT: HeaderName = HeaderName::from_static("edge-cluster-result");
/// On an answer: the owner's own error (it could not answer for the origin).
pub static ERROR: HeaderName = HeaderName::from_static("edge-cluster-error");

/// Drops every `edge-cluster-*` field.
pub fn strip(headers: &mut HeaderMap) {
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("edge-cluster-"))
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_drops_only_the_cluster_fields() {
        let mut headers = HeaderMap::new();
        headers.insert(&SECRET, "x".parse().expect("value"));
        headers.append(&TAG, "a".parse().expect("value"));
        headers.append(&TAG, "b".parse().expect("value"));
        headers.insert("edge-clusterish", "kept".parse().expect("value"));
        headers.insert("x-edge-cluster-tag", "kept".parse().expect("value"));
        strip(&mut headers);
        assert_eq!(headers.len(), 2);
        assert!(headers.contains_key("edge-clusterish"));
    }
}
