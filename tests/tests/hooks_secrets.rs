//! Hook secrets: set through the API (write-only: names, versions and times
//! come back, never a value), read by the hooks whose association names
//! their store, and nowhere else.

use edge_e2e::examples::*;
use edge_e2e::tls::fixture;
use edge_e2e::{Edge, Origin, Reply, TOKEN, json};
use http::StatusCode;
use serde_json::Value;

const VALUE: &str = "sk_live_51Hx-very-secret";

/// An origin that answers with the `x-secret` the hook set.
async fn echo() -> Origin {
    Origin::start(|req| {
        let secret = req
            .headers
            .get("x-secret")
            .map_or("-", |v| v.to_str().unwrap_or("?"));
        Reply::ok(format!("secret={secret}"))
    })
    .await
}

fn site(alias: &str, origin: &Origin, hook: Value) -> Value {
    json!({
        "aliases": [alias],
        "origins": [{"id": "o", "domain_name": origin.domain(), "protocol": "http"}],
        "default_cache_behavior": {"target_origin_id": "o", "default_ttl": 0,
                                   "hooks": {"viewer_request": hook}},
    })
}

/// misbehave reading `store/name`, its association naming `stores`.
fn reader(store: &str, name: &str, stores: &[&str]) -> Value {
    json!({"module": "misbehave", "secret_stores": stores, "config": {
        "viewer_request": "secret", "secret_store": store, "secret_name": name}})
}

async fn put_secret(edge: &Edge, path: &str, value: &[u8]) -> edge_e2e::Got {
    edge.api_raw("PUT", path, value.to_vec(), &[], Some(TOKEN))
        .await
}

#[tokio::test]
async fn secrets_are_written_listed_by_name_and_never_read_back() {
    let edge = Edge::start().await;
    let got = put_secret(&edge, "/v1/secrets/payments/stripe", VALUE.as_bytes()).await;
    assert_eq!(got.status, StatusCode::CREATED, "{}", got.text());
    assert_eq!(got.json()["version"], 1);
    let got = put_secret(&edge, "/v1/secrets/payments/stripe", VALUE.as_bytes()).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    assert_eq!(got.json()["version"], 2);
    assert_eq!(got.json()["store"], "payments");

    let stores = edge.api("GET", "/v1/secrets", None, &[]).await;
    assert_eq!(
        stores.json()["items"],
        json!([{"store": "payments", "secrets": 1}])
    );
    let listed = edge.api("GET", "/v1/secrets/payments", None, &[]).await;
    assert_eq!(listed.json()["items"][0]["name"], "stripe");
    assert_eq!(listed.json()["items"][0]["version"], 2);
    let one = edge
        .api("GET", "/v1/secrets/payments/stripe", None, &[])
        .await;
    assert_eq!(one.status, StatusCode::OK);
    // The value is nowhere the API, the console or the metrics show.
    for path in [
        "/v1/secrets",
        "/v1/secrets/payments",
        "/v1/secrets/payments/stripe",
        "/v1/kv",
        "/metrics",
        "/console/",
    ] {
        let got = edge.api("GET", path, None, &[]).await;
        assert!(!got.text().contains(VALUE), "{path} shows the value");
    }
    // Secrets are not KV.
    assert_eq!(
        edge.api("GET", "/v1/kv", None, &[]).await.json()["items"],
        json!([])
    );

    // Refusals: names, size; nothing written by them.
    let got = put_secret(&edge, "/v1/secrets/pay%20ments/x", b"v").await;
    assert_eq!(got.status, StatusCode::BAD_REQUEST, "{}", got.text());
    let got = put_secret(&edge, "/v1/secrets/big/x", &vec![b'x'; 64 * 1024 + 1]).await;
    assert_eq!(got.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", got.text());
    assert_eq!(
        edge.api("GET", "/v1/secrets", None, &[]).await.json()["items"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let got = edge
        .api_raw(
            "PUT",
            "/v1/secrets/payments/stripe",
            b"v".to_vec(),
            &[],
            None,
        )
        .await;
    assert_eq!(got.status, StatusCode::UNAUTHORIZED);

    let got = edge
        .api("DELETE", "/v1/secrets/payments/stripe", None, &[])
        .await;
    assert_eq!(got.status, StatusCode::NO_CONTENT);
    let got = edge
        .api("GET", "/v1/secrets/payments/stripe", None, &[])
        .await;
    assert_eq!(got.status, StatusCode::NOT_FOUND);
    assert_eq!(got.error_code(), "NoSuchSecret");
}

#[tokio::test]
async fn a_hook_reads_the_secrets_of_the_stores_its_association_names() {
    let edge = Edge::start().await;
    let origin = echo().await;
    edge.upload_hook("misbehave", MISBEHAVE).await;
    put_secret(&edge, "/v1/secrets/payments/stripe", VALUE.as_bytes()).await;
    put_secret(&edge, "/v1/secrets/other/token", b"not yours").await;
    for (alias, hook) in [
        (
            "allowed.example.com",
            reader("payments", "stripe", &["payments"]),
        ),
        (
            "foreign.example.com",
            reader("other", "token", &["payments"]),
        ),
        ("none.example.com", reader("payments", "stripe", &[])),
        (
            "missing.example.com",
            reader("payments", "nope", &["payments"]),
        ),
    ] {
        edge.create(site(alias, &origin, hook)).await;
    }
    let text = |host: &'static str| {
        let edge = &edge;
        async move { edge.get(host, "/").await.text() }
    };
    assert_eq!(text("allowed.example.com").await, format!("secret={VALUE}"));
    assert_eq!(text("foreign.example.com").await, "secret=not-permitted");
    assert_eq!(text("none.example.com").await, "secret=not-permitted");
    assert_eq!(text("missing.example.com").await, "secret=not-found");
    // A new value is read from the next request on, with no config change.
    put_secret(&edge, "/v1/secrets/payments/stripe", b"rotated").await;
    assert_eq!(text("allowed.example.com").await, "secret=rotated");
    // The distribution's config names the store, never a value.
    let dists = edge.api("GET", "/v1/distributions", None, &[]).await.json();
    for item in dists["items"].as_array().expect("items") {
        let id = item["id"].as_str().expect("id");
        let config = edge
            .api("GET", &format!("/v1/distributions/{id}"), None, &[])
            .await;
        assert!(!config.text().contains("rotated"));
    }

    // And after a restart, from the store.
    let dir = edge.stop().await;
    let edge = Edge::start_in(dir, |_| {}).await;
    assert_eq!(
        edge.get("allowed.example.com", "/").await.text(),
        "secret=rotated"
    );
    assert!(
        !edge
            .api("GET", "/metrics", None, &[])
            .await
            .text()
            .contains("rotated"),
        "a metric shows the value"
    );
}

#[tokio::test]
async fn secret_stores_are_refused_where_they_cannot_apply() {
    let edge = Edge::start().await;
    let origin = echo().await;
    edge.upload_hook("misbehave", MISBEHAVE).await;
    let frozen = fixture("hooks-0.1.0/request_state.wasm");
    edge.upload_hook("old", &frozen.to_string_lossy()).await;
    for (hook, field) in [
        (
            json!({"module": "old", "secret_stores": ["payments"]}),
            "hooks.viewer_request.secret_stores",
        ),
        (
            json!({"module": "misbehave", "secret_stores": ["no spaces"]}),
            "hooks.viewer_request.secret_stores[0]",
        ),
    ] {
        let got = edge
            .api(
                "POST",
                "/v1/distributions",
                Some(site("refused.example.com", &origin, hook.clone())),
                &[],
            )
            .await;
        assert_eq!(
            got.status,
            StatusCode::BAD_REQUEST,
            "{hook}: {}",
            got.text()
        );
        assert!(got.text().contains(field), "{field}: {}", got.text());
    }
}
