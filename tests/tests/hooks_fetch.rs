//! `fetch` from hooks: requests to the servers a distribution declares (its
//! origins and `backends`), within the association's count, time and size,
//! and nothing else reachable.

use std::time::{Duration, Instant};

use edge_e2e::examples::*;
use edge_e2e::{Edge, Origin, Reply, json};
use http::StatusCode;
use serde_json::Value;

/// An origin that echoes what the hook set on the request.
async fn echo() -> Origin {
    Origin::start(|req| {
        let field = |name: &str| {
            req.headers
                .get(name)
                .map_or("-", |v| v.to_str().unwrap_or("?"))
                .to_owned()
        };
        Reply::ok(format!(
            "fetch={} body={} user={}",
            field("x-fetch"),
            field("x-fetch-body"),
            field("x-user")
        ))
    })
    .await
}

/// A distribution on `alias` with origin `o`, `backends`, and `hook` on
/// viewer-request.
fn site(alias: &str, origin: &Origin, backends: Value, hook: Value) -> Value {
    json!({
        "aliases": [alias],
        "origins": [{"id": "o", "domain_name": origin.domain(), "protocol": "http"}],
        "backends": backends,
        "default_cache_behavior": {"target_origin_id": "o", "default_ttl": 0,
                                   "hooks": {"viewer_request": hook}},
    })
}

fn backend(id: &str, server: &Origin) -> Value {
    json!({"id": id, "domain_name": server.domain(), "protocol": "http"})
}

/// misbehave's `fetch` mode: `times` GETs of `url`.
fn fetcher(url: &str, times: u32, fetch: Value) -> Value {
    let mut hook = json!({"module": "misbehave", "config": {
        "viewer_request": "fetch", "fetch_url": url, "fetch_times": times.to_string()}});
    if !fetch.is_null() {
        hook["fetch"] = fetch;
    }
    hook
}

#[tokio::test]
async fn a_hook_reaches_declared_servers_only_within_its_limits() {
    let edge = Edge::start().await;
    let origin = echo().await;
    let api = Origin::start(|req| {
        let reply = match req.target.as_str() {
            "/slow" => Reply::ok("late").delay(Duration::from_secs(3)),
            "/big" => Reply::ok(vec![b'x'; 4096]),
            _ => Reply::ok(format!("api {}", req.target)),
        };
        reply.header(
            "x-seen-from",
            req.headers
                .get("x-from")
                .map_or("-", |v| v.to_str().unwrap_or("?")),
        )
    })
    .await;
    // A server nobody declared, listening: it must never see a connection.
    let stranger = Origin::start(|_| Reply::ok("stranger")).await;
    edge.upload_hook("misbehave", MISBEHAVE).await;
    let api_url = format!("http://{}", api.domain());
    let limits = json!({"max_requests": 2, "timeout_ms": 500, "max_response_kib": 1});
    let cases = [
        ("ok", fetcher(&format!("{api_url}/a"), 1, limits.clone())),
        ("many", fetcher(&format!("{api_url}/b"), 3, limits.clone())),
        (
            "slow",
            fetcher(&format!("{api_url}/slow"), 1, limits.clone()),
        ),
        ("big", fetcher(&format!("{api_url}/big"), 1, limits.clone())),
        (
            "stranger",
            fetcher(
                &format!("http://{}/x", stranger.domain()),
                1,
                limits.clone(),
            ),
        ),
        (
            "metadata",
            fetcher(
                "http://169.254.169.254/latest/meta-data/",
                1,
                limits.clone(),
            ),
        ),
        ("relative", fetcher("/a", 1, limits.clone())),
        (
            "unpermitted",
            fetcher(&format!("{api_url}/a"), 1, Value::Null),
        ),
        (
            "origin",
            fetcher(&format!("http://{}/o", origin.domain()), 1, json!({})),
        ),
    ];
    for (name, hook) in &cases {
        edge.create(site(
            &format!("{name}.example.com"),
            &origin,
            json!([backend("api", &api)]),
            hook.clone(),
        ))
        .await;
    }
    let get = |name: &str| {
        let edge = &edge;
        let host = format!("{name}.example.com");
        async move { edge.get(&host, "/").await }
    };

    // A declared backend answers; the request carries the hook's headers.
    let got = get("ok").await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    assert_eq!(got.text(), "fetch=200 body=api /a user=-");
    assert_eq!(
        api.last().headers.get("x-from").map(|v| v.as_bytes()),
        Some(&b"misbehave"[..])
    );
    // The distribution's origins are declared too.
    assert_eq!(
        get("origin").await.text(),
        "fetch=200 body=fetch=- body=- user=- user=-"
    );
    // The third of two allowed requests is refused, without a connection.
    let before = api.hits();
    assert_eq!(
        get("many").await.text(),
        "fetch=200,200,too-many-requests body=api /b user=-"
    );
    assert_eq!(api.hits(), before + 2);
    // A slow backend is given up on at the timeout, not the backend's pace.
    let began = Instant::now();
    assert_eq!(get("slow").await.text(), "fetch=timeout body=- user=-");
    assert!(
        began.elapsed() < Duration::from_secs(2),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(get("big").await.text(), "fetch=too-large body=- user=-");
    // Undeclared servers, the metadata address and relative URLs are
    // refused before any connection.
    assert_eq!(
        get("stranger").await.text(),
        "fetch=not-declared body=- user=-"
    );
    assert_eq!(stranger.connections(), 0);
    assert_eq!(
        get("metadata").await.text(),
        "fetch=not-declared body=- user=-"
    );
    assert_eq!(
        get("relative").await.text(),
        "fetch=invalid-request body=- user=-"
    );
    // An association without a fetch object sends nothing.
    assert_eq!(
        get("unpermitted").await.text(),
        "fetch=not-permitted body=- user=-"
    );
    // Each request is counted by how it ended: 200 ×4 (ok, origin, many ×2);
    // refused: too-many, stranger, metadata, relative, unpermitted; failed:
    // slow, big.
    for (outcome, n) in [("answered", 4), ("refused", 5), ("failed", 2)] {
        let line = format!("edge_hook_fetches_total{{hook=\"misbehave\",outcome=\"{outcome}\"}}");
        assert_eq!(edge.metric(&line).await, n, "{outcome}");
    }
    // A backend's `origin_path` goes before the path, as an origin's does.
    let mut prefixed = backend("api", &api);
    prefixed["origin_path"] = json!("/v2");
    edge.create(site(
        "prefixed.example.com",
        &origin,
        json!([prefixed]),
        fetcher(&format!("{api_url}/a?x=1"), 1, json!({})),
    ))
    .await;
    assert_eq!(
        get("prefixed").await.text(),
        "fetch=200 body=api /v2/a?x=1 user=-"
    );
}

#[tokio::test]
async fn backends_are_validated_with_the_config() {
    let edge = Edge::start().await;
    let origin = echo().await;
    edge.upload_hook("misbehave", MISBEHAVE).await;
    let cases = [
        (
            json!([{"id": "o", "domain_name": "api.internal", "protocol": "http"}]),
            json!({"module": "misbehave"}),
            "backends[0].id",
        ),
        (
            json!([{"id": "api", "domain_name": "http://api.internal", "protocol": "http"}]),
            json!({"module": "misbehave"}),
            "backends[0].domain_name",
        ),
        (
            json!([]),
            json!({"module": "misbehave", "fetch": {"max_requests": 0}}),
            "fetch.max_requests",
        ),
        (
            json!([]),
            json!({"module": "misbehave", "fetch": {"timeout_ms": 60000}}),
            "fetch.timeout_ms",
        ),
    ];
    for (backends, hook, field) in cases {
        let got = edge
            .api(
                "POST",
                "/v1/distributions",
                Some(site("bad.example.com", &origin, backends.clone(), hook)),
                &[],
            )
            .await;
        assert_eq!(
            got.status,
            StatusCode::BAD_REQUEST,
            "{backends}: {}",
            got.text()
        );
        let message = got.json()["error"]["message"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        assert!(message.contains(field), "{field}: {message}");
    }
    // Declared backends come back with the config, for `update` to take.
    let created = edge
        .create(site(
            "good.example.com",
            &origin,
            json!([{"id": "api", "domain_name": "api.internal:8080", "protocol": "http"}]),
            json!({"module": "misbehave", "fetch": {}}),
        ))
        .await;
    let id = created["id"].as_str().expect("id");
    let got = edge
        .api("GET", &format!("/v1/distributions/{id}/config"), None, &[])
        .await;
    let config = got.json();
    assert_eq!(config["backends"][0]["id"], "api", "{config}");
    assert_eq!(
        config["default_cache_behavior"]["hooks"]["viewer_request"]["fetch"],
        json!({}),
        "{config}"
    );
}

#[tokio::test]
async fn fetch_cache_answers_from_the_shared_cache_while_the_backend_allows() {
    let edge = Edge::start().await;
    let origin = echo().await;
    let api = Origin::start(|req| match req.target.as_str() {
        "/fresh" => Reply::ok("fresh").header("cache-control", "max-age=60"),
        // Stored, but revalidated on every use.
        "/tagged"
            if req
                .headers
                .get("if-none-match")
                .is_some_and(|v| v == "\"v1\"") =>
        {
            Reply::ok("").status(304).header("etag", "\"v1\"")
        }
        "/tagged" => Reply::ok("tagged")
            .header("cache-control", "no-cache")
            .header("etag", "\"v1\""),
        _ => Reply::ok("private").header("cache-control", "private, max-age=60"),
    })
    .await;
    edge.upload_hook("misbehave", MISBEHAVE).await;
    let api_url = format!("http://{}", api.domain());
    let mut ids = std::collections::HashMap::new();
    for (name, path, cache) in [
        ("fresh", "/fresh", true),
        ("tagged", "/tagged", true),
        ("private", "/private", true),
        ("uncached", "/fresh", false),
    ] {
        let hook = fetcher(&format!("{api_url}{path}"), 2, json!({"cache": cache}));
        let created = edge
            .create(site(
                &format!("{name}.example.com"),
                &origin,
                json!([backend("api", &api)]),
                hook,
            ))
            .await;
        ids.insert(name, created["id"].as_str().expect("an id").to_owned());
    }
    let get = |name: &str| {
        let edge = &edge;
        let host = format!("{name}.example.com");
        async move { edge.get(&host, "/").await.text() }
    };
    let hits_for = |path: &str| api.seen().iter().filter(|seen| seen.target == path).count();

    // Two requests in one event, then two more in the next viewer's: the
    // backend answers the first alone.
    assert_eq!(get("fresh").await, "fetch=200,200 body=fresh user=-");
    assert_eq!(get("fresh").await, "fetch=200,200 body=fresh user=-");
    assert_eq!(hits_for("/fresh"), 1);
    // Without `cache` each request reaches the backend.
    get("uncached").await;
    assert_eq!(hits_for("/fresh"), 3);
    // An answer the backend marks private is never stored.
    get("private").await;
    assert_eq!(hits_for("/private"), 2);
    // One with `no-cache` and a validator is revalidated: the hook gets the
    // stored body, the backend sends a 304.
    assert_eq!(get("tagged").await, "fetch=200,200 body=tagged user=-");
    let tagged: Vec<_> = api
        .seen()
        .into_iter()
        .filter(|s| s.target == "/tagged")
        .collect();
    assert_eq!(tagged.len(), 2);
    assert!(tagged[0].headers.get("if-none-match").is_none());
    assert_eq!(tagged[1].headers["if-none-match"], "\"v1\"");

    // An invalidation of the distribution's path reaches what its hooks
    // stored: the next request goes to the backend again.
    let got = edge
        .api(
            "POST",
            &format!("/v1/distributions/{}/invalidations", ids["fresh"]),
            Some(json!({"paths": ["/fresh"]})),
            &[],
        )
        .await;
    assert_eq!(got.status, StatusCode::CREATED, "{}", got.text());
    assert_eq!(get("fresh").await, "fetch=200,200 body=fresh user=-");
    assert_eq!(hits_for("/fresh"), 4);

    // Hits: fresh 1 + 2 + 1 after the purge, tagged none (both revalidated
    // or fetched); misses: fresh 2, tagged 2, private 2.
    let metric = |result: &str| {
        format!("edge_hook_fetch_cache_total{{hook=\"misbehave\",result=\"{result}\"}}")
    };
    assert_eq!(edge.metric(&metric("hit")).await, 4);
    assert_eq!(edge.metric(&metric("miss")).await, 6);
}
