//! TLS on both sides: HTTPS origins verified against the system's roots or a
//! configured CA.

use edge_e2e::tls::fixture;
use edge_e2e::{Edge, Origin, Reply, json};
use http::StatusCode;

#[tokio::test]
async fn https_origins_are_verified_against_the_configured_ca() {
    let o = Origin::start_tls(|_| Reply::ok("secure").header("cache-control", "no-store")).await;
    let config = |alias: &str, host: &str| {
        json!({
            "aliases": [alias],
            "origins": [{"id": "o", "domain_name": format!("{host}:{}", o.addr.port()), "protocol": "https"}],
            "default_cache_behavior": {"target_origin_id": "o"},
        })
    };
    // The system's roots do not know the test CA: the certificate is refused.
    let untrusting = Edge::start().await;
    untrusting.create(config("a.test", "localhost")).await;
    let got = untrusting.get("a.test", "/").await;
    assert_eq!(got.status, StatusCode::BAD_GATEWAY, "{}", got.text());
    assert_eq!(got.error_code(), "OriginTlsFailed", "{}", got.text());
    assert!(got.text().contains("certificate"), "{}", got.text());
    assert_eq!(o.hits(), 0);

    // With the CA configured, the origin is verified by name (SNI localhost)
    // or by IP address.
    let trusting =
        Edge::start_with(|opts| opts.origin_ca_file = Some(fixture("test-ca.pem"))).await;
    trusting.create(config("b.test", "localhost")).await;
    trusting.create(config("c.test", "127.0.0.1")).await;
    for alias in ["b.test", "c.test"] {
        let got = trusting.get(alias, "/").await;
        assert_eq!(
            (got.status, got.text()),
            (StatusCode::OK, "secure".to_owned()),
            "{alias}"
        );
    }
    // A name the certificate does not cover is refused even with the CA.
    trusting
        .create(json!({
            "aliases": ["d.test"],
            "origins": [{"id": "o", "domain_name": format!("127.0.0.2:{}", o.addr.port()), "protocol": "https"}],
            "default_cache_behavior": {"target_origin_id": "o"},
        }))
        .await;
    let got = trusting.get("d.test", "/").await;
    assert_eq!(got.status, StatusCode::BAD_GATEWAY);
}
