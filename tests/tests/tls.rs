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
    // Why (an unknown issuer) is the log's to say, not the viewer's.
    assert!(!got.text().contains("certificate"), "{}", got.text());
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

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};

/// One GET over TLS with `sni`, offering `alpn`: the status, the HTTP version
/// and the body; an error when the handshake fails.
async fn https_get(
    addr: SocketAddr,
    sni: &str,
    alpn: &[u8],
    host: &str,
) -> Result<(u16, http::Version, String), String> {
    let config = edge_e2e::tls::client_config(&[alpn]);
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name =
        rustls::pki_types::ServerName::try_from(sni.to_owned()).map_err(|e| e.to_string())?;
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let negotiated = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    let req = http::Request::builder()
        .uri(format!("https://{host}/page"))
        .header("host", host)
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let resp = if negotiated.as_deref() == Some(b"h2") {
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        send.send_request(req).await.map_err(|e| e.to_string())?
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        send.send_request(req).await.map_err(|e| e.to_string())?
    };
    let (status, version) = (resp.status().as_u16(), resp.version());
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, version, String::from_utf8_lossy(&body).into_owned()))
}

fn pem(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).expect("fixture")
}

#[tokio::test]
async fn viewers_get_https_and_http2_with_the_certificate_for_their_name() {
    let o = Origin::fixed("over tls", &[("cache-control", "max-age=60")]).await;
    let edge =
        Edge::start_with(|opts| opts.tls_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0))))
            .await;
    let tls_addr = edge
        .host
        .as_ref()
        .and_then(|h| h.tls_addr)
        .expect("a TLS listener");
    let mut config = edge_e2e::config_for(&[("o", &o)]);
    config["aliases"] = json!(["www.tls.test"]);
    edge.create(config).await;

    // No certificate yet: the handshake fails.
    assert!(
        https_get(tls_addr, "www.tls.test", b"http/1.1", "www.tls.test")
            .await
            .is_err()
    );

    // Bad uploads are refused.
    let bad = edge
        .api(
            "PUT",
            "/v1/certificates/site",
            Some(json!({"certificate_chain": "junk", "private_key": pem("test-key.pem")})),
            &[],
        )
        .await;
    assert_eq!(
        (bad.status, bad.error_code().as_str()),
        (StatusCode::BAD_REQUEST, "InvalidCertificate")
    );
    let mismatched = edge
        .api("PUT", "/v1/certificates/site", Some(json!({"certificate_chain": pem("test-ca.pem"), "private_key": pem("test-key.pem")})), &[])
        .await;
    assert_eq!(
        mismatched.status,
        StatusCode::BAD_REQUEST,
        "{}",
        mismatched.text()
    );

    let up = edge
        .api("PUT", "/v1/certificates/site", Some(json!({"certificate_chain": pem("test-cert.pem"), "private_key": pem("test-key.pem")})), &[])
        .await;
    assert_eq!(up.status, StatusCode::CREATED, "{}", up.text());
    let listed = edge.api("GET", "/v1/certificates", None, &[]).await;
    assert_eq!(listed.json()["quantity"], 1);
    assert!(
        !listed.text().contains("PRIVATE KEY"),
        "the key is never shown"
    );

    let (status, version, body) = https_get(tls_addr, "www.tls.test", b"http/1.1", "www.tls.test")
        .await
        .unwrap();
    assert_eq!(
        (status, version, body.as_str()),
        (200, http::Version::HTTP_11, "over tls")
    );
    let (status, version, body) = https_get(tls_addr, "www.tls.test", b"h2", "www.tls.test")
        .await
        .unwrap();
    assert_eq!(
        (status, version, body.as_str()),
        (200, http::Version::HTTP_2, "over tls")
    );
    // The wildcard name of the certificate covers other names too.
    assert!(
        https_get(tls_addr, "shop.tls.test", b"h2", "www.tls.test")
            .await
            .is_ok()
    );
    // A name no certificate covers: no handshake.
    assert!(
        https_get(tls_addr, "www.other.test", b"h2", "www.tls.test")
            .await
            .is_err()
    );

    // Gone from the API, gone from the handshakes.
    let del = edge.api("DELETE", "/v1/certificates/site", None, &[]).await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    assert!(
        https_get(tls_addr, "www.tls.test", b"h2", "www.tls.test")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn certificates_survive_a_restart_and_come_from_a_directory_too() {
    let o = Origin::fixed("dir", &[]).await;
    let certs = tempfile::tempdir().unwrap();
    std::fs::write(
        certs.path().join("site.pem"),
        format!("{}{}", pem("test-cert.pem"), pem("test-key.pem")),
    )
    .unwrap();
    let dir = certs.path().to_owned();
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let edge = Edge::start_with(|opts| {
        opts.tls_listen = Some(any);
        opts.tls_cert_dir = Some(dir);
    })
    .await;
    let tls_addr = edge.host.as_ref().and_then(|h| h.tls_addr).unwrap();
    let mut config = edge_e2e::config_for(&[("o", &o)]);
    config["aliases"] = json!(["www.tls.test"]);
    edge.create(config).await;
    assert_eq!(
        https_get(tls_addr, "www.tls.test", b"h2", "www.tls.test")
            .await
            .unwrap()
            .2,
        "dir"
    );

    // An API certificate persists.
    let edge2 = Edge::start_with(|opts| opts.tls_listen = Some(any)).await;
    let up = edge2
        .api("PUT", "/v1/certificates/site", Some(json!({"certificate_chain": pem("test-cert.pem"), "private_key": pem("test-key.pem")})), &[])
        .await;
    assert_eq!(up.status, StatusCode::CREATED);
    let data = edge2.stop().await;
    let edge2 = Edge::start_in(data, |opts| opts.tls_listen = Some(any)).await;
    let mut config = edge_e2e::config_for(&[("o", &o)]);
    config["aliases"] = json!(["www.tls.test"]);
    edge2.create(config).await;
    let addr = edge2.host.as_ref().and_then(|h| h.tls_addr).unwrap();
    assert_eq!(
        https_get(addr, "www.tls.test", b"http/1.1", "www.tls.test")
            .await
            .unwrap()
            .2,
        "dir"
    );
}

#[tokio::test]
async fn h2c_with_prior_knowledge_on_the_plain_listener() {
    let o = Origin::fixed("clear", &[]).await;
    let edge = Edge::start().await;
    let mut config = edge_e2e::config_for(&[("o", &o)]);
    config["aliases"] = json!(["h2c.test"]);
    edge.create(config).await;
    let tcp = tokio::net::TcpStream::connect(edge.viewer).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    for _ in 0..3 {
        let req = http::Request::builder()
            .uri("http://h2c.test/x")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        assert_eq!(
            (resp.status(), resp.version()),
            (StatusCode::OK, http::Version::HTTP_2)
        );
        assert_eq!(
            resp.into_body().collect().await.unwrap().to_bytes(),
            "clear"
        );
    }
}
