//! Hooks built for the `edge:hooks@0.1.0` world keep working: components
//! built once from that world's SDK (`tests/fixtures/hooks-0.1.0/`, kept as
//! built, never rebuilt) run on the host as they did when they were built,
//! whatever the SDK and the world have become since.

use edge_e2e::tls::fixture;
use edge_e2e::{Edge, Origin, Reply, Value, json};

fn frozen(name: &str) -> String {
    fixture(&format!("hooks-0.1.0/{name}.wasm"))
        .to_string_lossy()
        .into_owned()
}

fn site(alias: &str, origins: &[(&str, &Origin)], hooks: Value) -> Value {
    let list: Vec<Value> = origins
        .iter()
        .map(|(id, o)| json!({"id": id, "domain_name": o.domain(), "protocol": "http"}))
        .collect();
    json!({
        "aliases": [alias],
        "origins": list,
        "default_cache_behavior": {"target_origin_id": origins[0].0, "hooks": hooks},
    })
}

async fn named(name: &'static str) -> Origin {
    Origin::start(move |req| {
        Reply::ok(format!("{name} {}", req.target)).header("cache-control", "max-age=60")
    })
    .await
}

#[tokio::test]
async fn a_0_1_0_bluegreen_routes_by_cookie_and_kv_weight() {
    let edge = Edge::start().await;
    let (blue, green) = (named("blue").await, named("green").await);
    edge.upload_hook("bluegreen", &frozen("bluegreen")).await;
    let hook = json!({"module": "bluegreen"});
    edge.create(site(
        "bg.compat.test",
        &[("blue", &blue), ("green", &green)],
        json!({"viewer_request": hook, "viewer_response": hook}),
    ))
    .await;
    let fresh = edge.get("bg.compat.test", "/").await;
    assert!(fresh.text().starts_with("blue"), "{}", fresh.text());
    assert_eq!(
        fresh.header("set-cookie"),
        Some("deployment=blue; Path=/; Max-Age=86400")
    );
    let g = edge
        .request(
            "GET",
            "bg.compat.test",
            "/",
            &[("cookie", "deployment=green")],
        )
        .await;
    assert!(g.text().starts_with("green"), "{}", g.text());
    assert!(g.header("set-cookie").is_none());
    // The weight in KV moves every fresh viewer.
    edge.kv_put("bluegreen", "green_weight", "100").await;
    let moved = edge.get("bg.compat.test", "/").await;
    assert!(moved.text().starts_with("green"), "{}", moved.text());
    assert_eq!(
        moved.header("set-cookie"),
        Some("deployment=green; Path=/; Max-Age=86400")
    );
}

#[tokio::test]
async fn a_0_1_0_viewer_response_hook_sets_its_headers_on_hits_and_misses() {
    edge_e2e::assert_security_headers_hook(&frozen("security_headers")).await;
}

#[tokio::test]
async fn a_0_1_0_component_gets_a_fresh_instance_for_every_event() {
    // The same source as the `request-state` example, built for 0.1.0: its
    // globals never outlive an event.
    let edge = Edge::start().await;
    let o = named("o").await;
    edge.upload_hook("state", &frozen("request_state")).await;
    let listed = edge.api("GET", "/v1/hooks/state", None, &[]).await.json();
    assert_eq!(
        listed["versions"][0]["world"], "edge:hooks@0.1.0",
        "{listed}"
    );
    let hook = json!({"module": "state"});
    edge.create(site(
        "state.compat.test",
        &[("o", &o)],
        json!({"viewer_request": hook, "origin_request": hook, "origin_response": hook, "viewer_response": hook}),
    ))
    .await;
    for path in ["/a", "/a"] {
        let got = edge.get("state.compat.test", path).await;
        assert_eq!(got.header("x-calls"), Some("1"));
        assert_eq!(got.header("x-events"), Some("viewer-response"));
        assert_eq!(got.header("x-first-path"), Some("-"));
    }
    assert_eq!(edge.metric("edge_hook_instances_live").await, 0);
}

#[tokio::test]
async fn a_component_built_from_a_draft_of_a_released_world_is_refused_at_upload() {
    let edge = Edge::start().await;
    let draft = fixture("hooks-0.2.0-draft/bluegreen.wasm");
    let bytes = std::fs::read(&draft).expect("the draft fixture");
    let got = edge
        .api_raw(
            "PUT",
            "/v1/hooks/bluegreen",
            bytes,
            &[("content-type", "application/wasm")],
            Some(edge_e2e::TOKEN),
        )
        .await;
    assert_eq!(got.status, http::StatusCode::BAD_REQUEST, "{}", got.text());
    let body = got.json();
    assert_eq!(body["error"]["code"], "InvalidHook", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("build it with the current SDK"),
        "{message}"
    );
    // Nothing was stored.
    let listed = edge.api("GET", "/v1/hooks", None, &[]).await;
    assert!(!listed.text().contains("bluegreen"), "{}", listed.text());
}
