//! WebAssembly hooks end to end: upload, attach, the four events, the limits and
//! every failure mode, and each example plugin doing its job.

use std::time::Duration;

use edge_e2e::examples::*;
use edge_e2e::{Edge, Origin, Reply, TOKEN, json};
use http::StatusCode;

// Every example needs a test named after it here, or this does not compile.
macro_rules! assert_test_exists {
    ($name:ident) => {
        const _: fn() = $name;
    };
}
edge_e2e::for_each_example!(assert_test_exists);

/// An origin answering `name` (cacheable for a minute) and counting hits.
async fn named(name: &'static str) -> Origin {
    Origin::start(move |req| {
        Reply::ok(format!("{name} {}", req.target)).header("cache-control", "max-age=60")
    })
    .await
}

fn config(alias: &str, origins: &[(&str, &Origin)], hooks: serde_json::Value) -> serde_json::Value {
    let list: Vec<serde_json::Value> = origins
        .iter()
        .map(|(id, o)| json!({"id": id, "domain_name": o.domain(), "protocol": "http"}))
        .collect();
    json!({
        "aliases": [alias],
        "origins": list,
        "default_cache_behavior": {"target_origin_id": origins[0].0, "hooks": hooks},
    })
}

#[tokio::test]
async fn uploads_are_validated_versioned_and_pinnable() {
    let edge = Edge::start().await;
    let junk = edge
        .api_raw(
            "PUT",
            "/v1/hooks/junk",
            b"not wasm".to_vec(),
            &[],
            Some(TOKEN),
        )
        .await;
    assert_eq!(junk.status, StatusCode::BAD_REQUEST);
    assert_eq!(junk.error_code(), "InvalidHook");
    // A core module is not a component of the hooks world.
    let core = edge
        .api_raw(
            "PUT",
            "/v1/hooks/core",
            b"\0asm\x01\0\0\0".to_vec(),
            &[],
            Some(TOKEN),
        )
        .await;
    assert_eq!(core.error_code(), "InvalidHook");
    // ... and the refusal says how to build one.
    assert!(
        core.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("wasm32-wasip2"),
        "{}",
        core.text()
    );
    let bad_name = edge
        .api_raw(
            "PUT",
            "/v1/hooks/Bad%20Name",
            b"x".to_vec(),
            &[],
            Some(TOKEN),
        )
        .await;
    assert_eq!(bad_name.status, StatusCode::BAD_REQUEST);

    let v1 = edge.upload_hook("tagger", SECURITY_HEADERS).await;
    assert!(v1.starts_with("sha256:") && v1.len() == 71, "{v1}");
    let v2 = edge.upload_hook("tagger", MISBEHAVE).await;
    assert_ne!(v1, v2);
    let got = edge.api("GET", "/v1/hooks/tagger", None, &[]).await.json();
    assert_eq!(got["latest"], v2.as_str());
    assert_eq!(got["versions"].as_array().unwrap().len(), 2);
    let list = edge.api("GET", "/v1/hooks", None, &[]).await.json();
    assert_eq!(list["items"][0]["name"], "tagger");
    assert_eq!(
        edge.api("GET", "/v1/hooks/none", None, &[])
            .await
            .error_code(),
        "NoSuchHook"
    );

    let o = named("o").await;
    // Pinned to v1 (security headers) although v2 is the latest.
    let pinned = config(
        "pin.example.com",
        &[("o", &o)],
        json!({"viewer_response": {"module": format!("tagger@{v1}")}}),
    );
    edge.create(pinned).await;
    let got = edge.get("pin.example.com", "/").await;
    assert_eq!(got.header("x-frame-options"), Some("DENY"));

    let unknown = config(
        "u.example.com",
        &[("o", &o)],
        json!({"viewer_request": {"module": "tagger@sha256:0000000000000000000000000000000000000000000000000000000000000000"}}),
    );
    let refused = edge
        .api("POST", "/v1/distributions", Some(unknown), &[])
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(
        refused
            .text()
            .contains("default_cache_behavior.hooks.viewer_request.module"),
        "{}",
        refused.text()
    );
}

#[tokio::test]
async fn a_new_hook_version_runs_from_the_next_request_without_a_config_change() {
    let edge = Edge::start().await;
    let o = named("o").await;
    edge.upload_hook("swap", SECURITY_HEADERS).await;
    edge.create(config(
        "swap.example.com",
        &[("o", &o)],
        json!({"viewer_response": {"module": "swap", "config": {"viewer_response": "tag"}}}),
    ))
    .await;
    let before = edge.get("swap.example.com", "/").await;
    assert_eq!(before.header("x-frame-options"), Some("DENY"));
    assert!(before.header("x-viewer-response").is_none());
    edge.upload_hook("swap", MISBEHAVE).await;
    let after = edge.get("swap.example.com", "/").await;
    assert_eq!(after.header("x-viewer-response"), Some("1"));
    assert!(after.header("x-frame-options").is_none());
}

#[tokio::test]
async fn compiled_hooks_survive_a_restart_without_recompiling() {
    let edge = Edge::start().await;
    let o = named("o").await;
    edge.upload_hook("sec", SECURITY_HEADERS).await;
    edge.create(config(
        "r.example.com",
        &[("o", &o)],
        json!({"viewer_response": {"module": "sec"}}),
    ))
    .await;
    let dir = edge.stop().await;
    let edge = Edge::start_in(dir, |_| {}).await;
    let host = edge.host.as_ref().unwrap();
    assert!(
        host.control.plane().compile_cache_hits() >= 1,
        "the restart compiled the hook again"
    );
    assert_eq!(
        edge.get("r.example.com", "/")
            .await
            .header("x-frame-options"),
        Some("DENY")
    );
}

#[tokio::test]
async fn bluegreen() {
    let edge = Edge::start().await;
    let blue = named("blue").await;
    let green = named("green").await;
    edge.upload_hook("bluegreen", BLUEGREEN).await;
    let hook = json!({"module": "bluegreen"});
    edge.create(config(
        "bg.example.com",
        &[("blue", &blue), ("green", &green)],
        json!({"viewer_request": hook, "viewer_response": hook}),
    ))
    .await;

    // No weight in KV: every fresh viewer is blue and gets the sticky cookie.
    for _ in 0..20 {
        let got = edge.get("bg.example.com", "/").await;
        assert!(got.text().starts_with("blue"), "{}", got.text());
        assert_eq!(
            got.header("set-cookie"),
            Some("deployment=blue; Path=/; Max-Age=86400")
        );
    }
    // The cookie decides, and each arm has its own cached objects.
    let g = edge
        .request(
            "GET",
            "bg.example.com",
            "/",
            &[("cookie", "deployment=green")],
        )
        .await;
    assert!(g.text().starts_with("green"));
    assert!(g.header("set-cookie").is_none());
    assert_eq!(g.cache(), "Miss");
    let g = edge
        .request(
            "GET",
            "bg.example.com",
            "/",
            &[("cookie", "deployment=green")],
        )
        .await;
    assert_eq!((g.cache(), g.text().starts_with("green")), ("Hit", true));

    // One KV write moves every fresh viewer to green; sticky viewers stay.
    edge.kv_put("bluegreen", "green_weight", "100").await;
    for _ in 0..20 {
        let got = edge.get("bg.example.com", "/").await;
        assert!(got.text().starts_with("green"), "{}", got.text());
        assert_eq!(
            got.header("set-cookie"),
            Some("deployment=green; Path=/; Max-Age=86400")
        );
    }
    let b = edge
        .request(
            "GET",
            "bg.example.com",
            "/",
            &[("cookie", "deployment=blue")],
        )
        .await;
    assert!(b.text().starts_with("blue"));

    // A split: about half of 400 fresh viewers each way.
    edge.kv_put("bluegreen", "green_weight", "50").await;
    let mut greens = 0;
    for _ in 0..400 {
        if edge
            .get("bg.example.com", "/")
            .await
            .text()
            .starts_with("green")
        {
            greens += 1;
        }
    }
    assert!(
        (140..=260).contains(&greens),
        "{greens} of 400 went green at 50 %"
    );
    let kv = edge
        .api("GET", "/v1/kv/bluegreen/green_weight", None, &[])
        .await;
    assert_eq!(kv.text(), "50");
    assert_eq!(
        edge.api("DELETE", "/v1/kv/bluegreen/green_weight", None, &[])
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        edge.api("GET", "/v1/kv/bluegreen/green_weight", None, &[])
            .await
            .error_code(),
        "NoSuchKey"
    );
}

#[tokio::test]
async fn weighted_split() {
    let edge = Edge::start().await;
    let (a, b, c) = (named("a").await, named("b").await, named("c").await);
    edge.upload_hook("split", WEIGHTED_SPLIT).await;
    let hook = json!({"module": "split", "config": {"arms": "a:50,b:30,c:20"}});
    edge.create(config(
        "split.example.com",
        &[("a", &a), ("b", &b), ("c", &c)],
        json!({"viewer_request": hook, "viewer_response": hook}),
    ))
    .await;
    let edge = std::sync::Arc::new(edge);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let edge = edge.clone();
        tasks.push(tokio::spawn(async move {
            let mut counts = [0usize; 3];
            for _ in 0..1250 {
                let got = edge.get("split.example.com", "/").await;
                let arm = got.text().split(' ').next().unwrap_or("").to_owned();
                let cookie = got.header("set-cookie").unwrap_or("").to_owned();
                assert!(
                    cookie.starts_with(&format!("split={arm};")),
                    "{cookie} for {arm}"
                );
                counts[usize::from(arm.as_bytes()[0] - b'a')] += 1;
            }
            counts
        }));
    }
    let mut counts = [0usize; 3];
    for t in tasks {
        let c = t.await.unwrap();
        for i in 0..3 {
            counts[i] += c[i];
        }
    }
    let total: usize = counts.iter().sum();
    assert_eq!(total, 10_000);
    for (count, want) in counts.iter().zip([50.0, 30.0, 20.0]) {
        let share = *count as f64 * 100.0 / total as f64;
        assert!(
            (share - want).abs() <= 2.0,
            "{share:.2} % where {want} % was asked ({counts:?})"
        );
    }
    println!("10,000 fresh viewers split {counts:?}");
    // Sticky: a viewer with a cookie stays on its arm.
    for _ in 0..50 {
        let got = edge
            .request("GET", "split.example.com", "/", &[("cookie", "split=c")])
            .await;
        assert!(got.text().starts_with('c'));
        assert!(got.header("set-cookie").is_none());
    }
}

#[tokio::test]
async fn header_router() {
    let edge = Edge::start().await;
    let (stable, canary, beta) = (
        named("stable").await,
        named("canary").await,
        named("beta").await,
    );
    edge.upload_hook("router", HEADER_ROUTER).await;
    edge.create(config(
        "hr.example.com",
        &[("stable", &stable), ("canary", &canary), ("beta", &beta)],
        json!({"viewer_request": {"module": "router", "config": {"path_prefix": "/beta/", "path_origin": "beta"}}}),
    ))
    .await;
    assert!(
        edge.get("hr.example.com", "/x")
            .await
            .text()
            .starts_with("stable")
    );
    let canaried = edge
        .request("GET", "hr.example.com", "/x", &[("x-canary", "1")])
        .await;
    assert!(canaried.text().starts_with("canary"), "{}", canaried.text());
    assert!(
        edge.get("hr.example.com", "/beta/page")
            .await
            .text()
            .starts_with("beta")
    );
    let both = edge
        .request("GET", "hr.example.com", "/beta/page", &[("x-canary", "1")])
        .await;
    assert!(both.text().starts_with("canary"));
    let other = edge
        .request("GET", "hr.example.com", "/x", &[("x-canary", "0")])
        .await;
    assert!(other.text().starts_with("stable"));
}

fn sign(key: &[u8], expiry: u64) -> String {
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    mac.update(expiry.to_string().as_bytes());
    let sig: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{expiry}.{sig}")
}

#[tokio::test]
async fn edge_auth() {
    let edge = Edge::start().await;
    let o = Origin::start(|req| {
        let auth = req
            .headers
            .get("authorization")
            .map_or("none", |v| v.to_str().unwrap_or("?"));
        Reply::ok(format!("private, authorization={auth}"))
    })
    .await;
    edge.upload_hook("auth", EDGE_AUTH).await;
    edge.create(config(
        "auth.example.com",
        &[("o", &o)],
        json!({"viewer_request": {"module": "auth", "config": {"key": "s3cret", "login_url": "https://login.example.com/"}}}),
    ))
    .await;
    let api = edge.get("auth.example.com", "/data").await;
    assert_eq!(api.status, StatusCode::UNAUTHORIZED);
    assert_eq!(api.header("www-authenticate"), Some("Bearer"));
    let browser = edge
        .request(
            "GET",
            "auth.example.com",
            "/page",
            &[("accept", "text/html,*/*")],
        )
        .await;
    assert_eq!(browser.status, StatusCode::FOUND);
    assert_eq!(
        browser.header("location"),
        Some("https://login.example.com/")
    );
    assert_eq!(o.hits(), 0);

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let good = sign(b"s3cret", now + 600);
    let bearer = format!("Bearer {good}");
    let ok = edge
        .request(
            "GET",
            "auth.example.com",
            "/data",
            &[("authorization", &bearer)],
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(
        ok.text(),
        "private, authorization=none",
        "the token reached the origin"
    );
    // The scheme is case-insensitive (RFC 9110 11.1).
    let lower = format!("bearer {good}");
    let ok = edge
        .request(
            "GET",
            "auth.example.com",
            "/data",
            &[("authorization", &lower)],
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    let cookie = format!("edge-auth={good}");
    let ok = edge
        .request("GET", "auth.example.com", "/data2", &[("cookie", &cookie)])
        .await;
    assert_eq!(ok.status, StatusCode::OK);

    let expired = format!("Bearer {}", sign(b"s3cret", now - 1));
    assert_eq!(
        edge.request(
            "GET",
            "auth.example.com",
            "/d",
            &[("authorization", &expired)]
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );
    let forged = format!("Bearer {}", sign(b"wrong", now + 600));
    assert_eq!(
        edge.request(
            "GET",
            "auth.example.com",
            "/d",
            &[("authorization", &forged)]
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn security_headers() {
    edge_e2e::assert_security_headers_hook(SECURITY_HEADERS).await;
}

/// A host with the misbehave fixture on `<name>.example.com` for each case.
async fn misbehaving(cases: &[(&str, serde_json::Value)]) -> (Edge, Origin, Origin) {
    let edge = Edge::start().await;
    let o = Origin::start(|req| {
        let count = req
            .headers
            .get("x-count")
            .map_or("-", |v| v.to_str().unwrap_or("?"))
            .to_owned();
        Reply::ok(format!("origin {} count={count}", req.target))
            .header("cache-control", "max-age=60")
    })
    .await;
    let other = named("other").await;
    edge.upload_hook("misbehave", MISBEHAVE).await;
    for (name, hook_config) in cases {
        let hook = json!({"module": "misbehave", "config": hook_config});
        let hooks = json!({"viewer_request": hook, "origin_request": hook, "origin_response": hook, "viewer_response": hook});
        edge.create(config(
            &format!("{name}.example.com"),
            &[("o", &o), ("other", &other)],
            hooks,
        ))
        .await;
    }
    (edge, o, other)
}

#[tokio::test]
async fn escape() {
    // A component that imports WASI sockets (it opens a TCP connection) is
    // refused at upload with the imports named, and nothing is stored.
    let edge = Edge::start().await;
    let bytes = std::fs::read(ESCAPE).expect("escape.wasm");
    let got = edge
        .api_raw("PUT", "/v1/hooks/escape", bytes, &[], Some(TOKEN))
        .await;
    assert_eq!(got.status, StatusCode::BAD_REQUEST, "{}", got.text());
    let error = &got.json()["error"];
    assert_eq!(error["code"], "InvalidHook", "{error}");
    let message = error["message"].as_str().expect("message");
    assert!(message.contains("wasi:sockets/tcp"), "{message}");
    assert!(!message.contains("wasi:cli/environment"), "{message}");
    let listed = edge.api("GET", "/v1/hooks", None, &[]).await;
    assert!(!listed.text().contains("escape"), "{}", listed.text());
    // The same hook without sockets (misbehave's `escape` mode) is taken.
    edge.upload_hook("escape", MISBEHAVE).await;
}

#[tokio::test]
async fn misbehave() {
    // Every request gets a fresh instance: a global counter bumped in
    // viewer-request never passes 1, and the same instance serves the
    // request's origin-request, where it reaches 2.
    let (edge, _o, _) = misbehaving(&[
        ("count", json!({"viewer_request": "count"})),
        (
            "count2",
            json!({"viewer_request": "count", "origin_request": "count"}),
        ),
    ])
    .await;
    for i in 0..20 {
        let got = edge.get("count.example.com", &format!("/n{i}")).await;
        assert_eq!(got.text(), format!("origin /n{i} count=1"));
        let got = edge.get("count2.example.com", &format!("/n{i}")).await;
        assert_eq!(got.text(), format!("origin /n{i} count=2"));
    }
}

#[tokio::test]
async fn request_state() {
    // One instance serves every event of a request the component is
    // attached to, and no other request.
    let edge = Edge::start().await;
    let o = named("o").await;
    edge.upload_hook("state", REQUEST_STATE).await;
    let listed = edge.api("GET", "/v1/hooks/state", None, &[]).await.json();
    assert_eq!(
        listed["versions"][0]["world"], "edge:hooks@0.2.0",
        "{listed}"
    );
    let hook = json!({"module": "state"});
    edge.create(config(
        "state.example.com",
        &[("o", &o)],
        json!({"viewer_request": hook, "origin_request": hook, "origin_response": hook, "viewer_response": hook}),
    ))
    .await;
    let miss = edge.get("state.example.com", "/a").await;
    assert_eq!(miss.cache(), "Miss");
    assert_eq!(
        miss.header("x-events"),
        Some("viewer-request,origin-request,origin-response,viewer-response")
    );
    assert_eq!(miss.header("x-calls"), Some("4"));
    assert_eq!(miss.header("x-first-path"), Some("/a"));
    assert_eq!(
        miss.header("x-first-request-id"),
        miss.header("x-edge-request-id")
    );
    // A hit runs the two viewer events, in a new instance of its own.
    let hit = edge.get("state.example.com", "/a").await;
    assert_eq!(hit.cache(), "Hit");
    assert_eq!(
        hit.header("x-events"),
        Some("viewer-request,viewer-response")
    );
    assert_eq!(
        hit.header("x-first-request-id"),
        hit.header("x-edge-request-id")
    );
    assert_ne!(
        hit.header("x-edge-request-id"),
        miss.header("x-edge-request-id")
    );
    // Many requests at once: each sees only what its own viewer-request kept.
    let edge = std::sync::Arc::new(edge);
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let edge = edge.clone();
            tokio::spawn(async move { (i, edge.get("state.example.com", &format!("/p{i}")).await) })
        })
        .collect();
    for task in tasks {
        let (i, got) = task.await.expect("request task");
        assert_eq!(got.status, StatusCode::OK, "{}", got.text());
        assert_eq!(got.header("x-first-path"), Some(format!("/p{i}").as_str()));
        assert_eq!(got.header("x-calls"), Some("4"), "/p{i}");
        assert_eq!(
            got.header("x-first-request-id"),
            got.header("x-edge-request-id")
        );
    }
    // Every instance went back when its request ended.
    assert_eq!(edge.metric("edge_hook_instances_live").await, 0);
}

#[tokio::test]
async fn html_rewrite() {
    // origin-response with include_body injects a banner into HTML pages;
    // the cache keeps the rewritten page; other pages pass as they came.
    let edge = Edge::start().await;
    let o = Origin::start(|req| {
        let reply = match req.target.as_str() {
            "/page" => Reply::ok("<html><head></head><body class=\"home\"><p>Hi</p></body></html>")
                .header("content-type", "text/html; charset=utf-8")
                .header("etag", "\"v1\""),
            "/data" => Reply::ok("{\"a\": 1}").header("content-type", "application/json"),
            "/gz" => Reply::ok("not really gzip")
                .header("content-type", "text/html")
                .header("content-encoding", "gzip"),
            _ => Reply::ok(format!("<body>{}</body>", "x".repeat(4000)))
                .header("content-type", "text/html"),
        };
        reply.header("cache-control", "max-age=60")
    })
    .await;
    edge.upload_hook("html-rewrite", HTML_REWRITE).await;
    let banner = "<div class=\"banner\">Staging</div>";
    edge.create(config(
        "html.example.com",
        &[("o", &o)],
        json!({"origin_response": {"module": "html-rewrite", "include_body": true,
               "body_limit_kib": 2, "config": {"banner": banner}}}),
    ))
    .await;
    let page = edge.get("html.example.com", "/page").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let expected =
        format!("<html><head></head><body class=\"home\">{banner}<p>Hi</p></body></html>");
    assert_eq!(page.text(), expected);
    assert_eq!(
        page.header("content-length"),
        Some(expected.len().to_string().as_str())
    );
    assert_eq!(page.header("x-html-rewrite"), Some("banner"));
    assert_eq!(page.header("etag"), Some("W/\"v1\""));
    // The rewritten page is what the cache serves, without the origin.
    let hit = edge.get("html.example.com", "/page").await;
    assert_eq!((hit.cache(), hit.text()), ("Hit", expected));
    // JSON, an encoded page, and a page longer than the limit the hook is
    // given pass whole and unchanged.
    let data = edge.get("html.example.com", "/data").await;
    assert_eq!(data.text(), "{\"a\": 1}");
    assert_eq!(data.header("x-html-rewrite"), None);
    let gz = edge.get("html.example.com", "/gz").await;
    assert_eq!(gz.text(), "not really gzip");
    let long = edge.get("html.example.com", "/long").await;
    assert_eq!(long.text(), format!("<body>{}</body>", "x".repeat(4000)));
    assert_eq!(long.header("x-html-rewrite"), None);
    assert_eq!(o.hits(), 4);
}

#[tokio::test]
async fn auth_fetch() {
    // The auth-fetch example: a token checked with an auth backend; 401
    // without a valid one, the user passed on with one, 503 (never a pass)
    // when the backend fails.
    let edge = Edge::start().await;
    let origin = Origin::start(|req| {
        let user = req
            .headers
            .get("x-user")
            .map_or("-", |v| v.to_str().unwrap_or("?"));
        Reply::ok(format!("user={user}"))
    })
    .await;
    let auth = Origin::start(|req| {
        let token = req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        match token {
            "Bearer good" => Reply::ok("alice"),
            "Bearer broken" => Reply::ok("").status(500),
            _ => Reply::ok("no").status(401),
        }
    })
    .await;
    edge.upload_hook("auth-fetch", AUTH_FETCH).await;
    let hook = json!({"module": "auth-fetch", "fetch": {"max_requests": 1, "timeout_ms": 1000},
                      "config": {"auth_url": format!("http://{}/verify", auth.domain()),
                                 "cookie": "session"}});
    let mut site = config(
        "auth.example.com",
        &[("o", &origin)],
        json!({"viewer_request": hook}),
    );
    site["backends"] = json!([{"id": "auth", "domain_name": auth.domain(), "protocol": "http"}]);
    edge.create(site).await;
    let host = "auth.example.com";
    let got = edge
        .request(
            "GET",
            host,
            "/",
            &[("authorization", "Bearer good"), ("x-user", "mallory")],
        )
        .await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    assert_eq!(got.text(), "user=alice");
    let got = edge
        .request("GET", host, "/", &[("cookie", "session=good")])
        .await;
    assert_eq!(got.text(), "user=alice");
    let hits = origin.hits();
    for headers in [
        vec![],
        vec![("authorization", "Bearer bad")],
        vec![("x-user", "mallory")],
    ] {
        let got = edge.request("GET", host, "/", &headers).await;
        assert_eq!(
            got.status,
            StatusCode::UNAUTHORIZED,
            "{headers:?}: {}",
            got.text()
        );
        assert_eq!(got.header("www-authenticate"), Some("Bearer"));
    }
    let got = edge
        .request("GET", host, "/", &[("authorization", "Bearer broken")])
        .await;
    assert_eq!(
        got.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        got.text()
    );
    assert_eq!(origin.hits(), hits, "a refused viewer reached the origin");
}

#[tokio::test]
async fn tenant_router() {
    // Each tenant of `*.tenants.test` goes to its own origin, named from the
    // Host (`{tenant}.localhost`, loopback without DNS), with no origin
    // listed per tenant; the cache keeps tenants apart; only what
    // dynamic_origins allows is reached.
    let edge = Edge::start().await;
    let tenants = Origin::start(|req| {
        let host = req
            .headers
            .get("host")
            .map_or("-", |v| v.to_str().unwrap_or("?"));
        let tenant = req
            .headers
            .get("x-tenant")
            .map_or("-", |v| v.to_str().unwrap_or("?"));
        Reply::ok(format!("host={host} tenant={tenant} path={}", req.target))
            .header("cache-control", "max-age=60")
    })
    .await;
    let fallback = named("fallback").await;
    let port = tenants
        .domain()
        .rsplit_once(':')
        .map(|(_, p)| p.to_owned())
        .expect("port");
    edge.upload_hook("tenant-router", TENANT_ROUTER).await;
    let site = |alias: &str, template: &str, allow_private: bool| {
        let mut site = config(
            alias,
            &[("fallback", &fallback)],
            json!({"viewer_request": {"module": "tenant-router", "config": {
                "origin_template": template, "protocol": "http", "port": port}}}),
        );
        site["dynamic_origins"] = json!({"allow": [format!("*.localhost:{port}")],
            "protocols": ["http"], "allow_private_addresses": allow_private});
        site
    };
    edge.create(site("*.tenants.test", "{tenant}.localhost", true))
        .await;
    edge.create(site("*.elsewhere.test", "{tenant}.other.localhost", true))
        .await;
    edge.create(site("*.public.test", "{tenant}.localhost", false))
        .await;

    let acme = edge.get("acme.tenants.test", "/page").await;
    assert_eq!(acme.status, StatusCode::OK, "{}", acme.text());
    assert_eq!(
        acme.text(),
        format!("host=acme.localhost:{port} tenant=acme path=/page")
    );
    assert_eq!(acme.cache(), "Miss");
    let again = edge.get("acme.tenants.test", "/page").await;
    assert_eq!((again.cache(), again.text()), ("Hit", acme.text()));
    // Another tenant, the same path: its own origin and its own object.
    let globex = edge.get("globex.tenants.test", "/page").await;
    assert_eq!(globex.cache(), "Miss");
    assert!(
        globex.text().starts_with("host=globex.localhost:"),
        "{}",
        globex.text()
    );
    assert_eq!(tenants.hits(), 2);

    // A name the allow-list does not cover is refused before any
    // connection, as invalid hook output.
    let got = edge.get("acme.elsewhere.test", "/page").await;
    assert_eq!(got.status, StatusCode::BAD_GATEWAY, "{}", got.text());
    assert_eq!(got.error_code(), "HookInvalidOutput");
    // A loopback origin, without allow_private_addresses: refused when the
    // name resolves, and nothing reaches it.
    let got = edge.get("acme.public.test", "/page").await;
    assert_eq!(got.status, StatusCode::BAD_GATEWAY, "{}", got.text());
    assert_eq!(got.error_code(), "OriginConnectionFailed");
    assert_eq!(tenants.hits(), 2);
    assert_eq!(fallback.hits(), 0);

    // dynamic_origins is checked with the config.
    for (bad, field) in [
        (json!({"allow": []}), "dynamic_origins.allow"),
        (
            json!({"allow": ["*.Upper.test"]}),
            "dynamic_origins.allow[0]",
        ),
        (
            json!({"allow": ["a.test"], "max_pools": 0}),
            "dynamic_origins.max_pools",
        ),
        (
            json!({"allow": ["a.test"], "read_timeout_ms": 0}),
            "dynamic_origins.read_timeout_ms",
        ),
    ] {
        let mut site = site("bad.example.com", "{tenant}.localhost", true);
        site["dynamic_origins"] = bad.clone();
        let got = edge.api("POST", "/v1/distributions", Some(site), &[]).await;
        assert_eq!(got.status, StatusCode::BAD_REQUEST, "{bad}: {}", got.text());
        assert!(got.text().contains(field), "{field}: {}", got.text());
    }
}

/// The hook instances alive while a request waits on a slow origin, with a
/// component of the current world on `events`.
async fn live_during_a_slow_fetch(events: &[&str]) -> (u64, u64) {
    let edge = Edge::start().await;
    let o = Origin::start(|_| {
        Reply::ok("slow")
            .header("cache-control", "max-age=60")
            .delay(Duration::from_millis(1500))
    })
    .await;
    edge.upload_hook("state", REQUEST_STATE).await;
    let hook = json!({"module": "state"});
    let hooks: serde_json::Map<String, serde_json::Value> = events
        .iter()
        .map(|e| ((*e).to_owned(), hook.clone()))
        .collect();
    edge.create(config("slow.example.com", &[("o", &o)], hooks.into()))
        .await;
    let edge = std::sync::Arc::new(edge);
    let waiting = {
        let edge = edge.clone();
        tokio::spawn(async move { edge.get("slow.example.com", "/").await })
    };
    while o.hits() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let during = edge.metric("edge_hook_instances_live").await;
    let got = waiting.await.expect("request task");
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    (during, edge.metric("edge_hook_instances_live").await)
}

#[tokio::test]
async fn instances_kept_through_slow_fetches_share_a_memory_bound() {
    // 1 MiB for every instance kept through an origin fetch: one slow miss
    // holds it all, the one beside it is refused rather than held too.
    let edge = Edge::start_with(|o| o.hook_held_memory_mib = 1).await;
    let o = Origin::start(|_| {
        Reply::ok("slow")
            .header("cache-control", "max-age=60")
            .delay(Duration::from_millis(1000))
    })
    .await;
    edge.upload_hook("state", REQUEST_STATE).await;
    let hook = json!({"module": "state"});
    edge.create(config(
        "held.example.com",
        &[("o", &o)],
        json!({"viewer_request": hook, "viewer_response": hook}),
    ))
    .await;
    let edge = std::sync::Arc::new(edge);
    let tasks: Vec<_> = ["/a", "/b"]
        .into_iter()
        .map(|path| {
            let edge = edge.clone();
            tokio::spawn(async move { edge.get("held.example.com", path).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        let got = task.await.expect("request task");
        if got.status == StatusCode::OK {
            assert_eq!(got.header("x-calls"), Some("2"));
        } else {
            assert_eq!(got.error_code(), "HookLimitExceeded", "{}", got.text());
        }
        statuses.push(got.status.as_u16());
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 503]);
    assert_eq!(o.hits(), 1, "the refused request never reached the origin");
    // Given back: the next slow miss is kept through its fetch again.
    assert_eq!(edge.metric("edge_hook_held_memory_mib").await, 0);
    let got = edge.get("held.example.com", "/c").await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    assert_eq!(edge.metric("edge_hook_instances_live").await, 0);
}

#[tokio::test]
async fn an_instance_is_kept_through_the_fetch_only_for_an_event_after_it() {
    // viewer-request and viewer-response: the instance waits for the origin.
    assert_eq!(
        live_during_a_slow_fetch(&["viewer_request", "viewer_response"]).await,
        (1, 0)
    );
    // viewer-request and origin-request only: nothing is held while the
    // origin takes its time.
    assert_eq!(
        live_during_a_slow_fetch(&["viewer_request", "origin_request"]).await,
        (0, 0)
    );
}

#[tokio::test]
async fn failures_fail_only_their_request_with_the_right_status() {
    let cases = [
        (
            "loop",
            json!({"viewer_request": "loop"}),
            503,
            "HookLimitExceeded",
        ),
        (
            "alloc",
            json!({"viewer_request": "alloc"}),
            503,
            "HookLimitExceeded",
        ),
        (
            "panic",
            json!({"viewer_request": "panic"}),
            502,
            "HookFailed",
        ),
        (
            "badheader",
            json!({"viewer_request": "bad-header"}),
            502,
            "HookInvalidOutput",
        ),
        (
            "hop",
            json!({"viewer_request": "hop-header"}),
            502,
            "HookInvalidOutput",
        ),
        (
            "via",
            json!({"viewer_request": "via"}),
            502,
            "HookInvalidOutput",
        ),
        (
            "badstatus",
            json!({"viewer_request": "bad-status"}),
            502,
            "HookInvalidOutput",
        ),
        (
            "badorigin",
            json!({"viewer_request": "bad-origin"}),
            502,
            "HookInvalidOutput",
        ),
        (
            "longuri",
            json!({"viewer_request": "long-uri"}),
            502,
            "HookInvalidOutput",
        ),
        (
            "bigbody",
            json!({"viewer_request": "big-body"}),
            502,
            "HookInvalidOutput",
        ),
        (
            "oreqpanic",
            json!({"origin_request": "panic"}),
            502,
            "HookFailed",
        ),
        (
            "orespbad",
            json!({"origin_response": "bad-header"}),
            502,
            "HookInvalidOutput",
        ),
        (
            "vresppanic",
            json!({"viewer_response": "panic"}),
            502,
            "HookFailed",
        ),
    ];
    let setup: Vec<(&str, serde_json::Value)> =
        cases.iter().map(|(n, c, _, _)| (*n, c.clone())).collect();
    let (edge, _o, _) = misbehaving(&setup).await;
    edge.create(config("fine.example.com", &[("o", &_o)], json!({})))
        .await;
    let edge = std::sync::Arc::new(edge);
    // A healthy request runs beside every failing one and is never harmed.
    for (name, _, status, code) in cases {
        let healthy = {
            let edge = edge.clone();
            tokio::spawn(async move { edge.get("fine.example.com", "/ok").await })
        };
        let got = edge.get(&format!("{name}.example.com"), "/x").await;
        assert_eq!(got.status.as_u16(), status, "{name}: {}", got.text());
        assert_eq!(got.error_code(), code, "{name}");
        assert_eq!(got.cache(), "Error", "{name}");
        let request_id = got.header("x-edge-request-id").unwrap().to_owned();
        assert_eq!(
            got.json()["error"]["request_id"],
            request_id.as_str(),
            "{name}"
        );
        // The viewer gets the code and the request id, never the hook's
        // version or its trap (those are in the log).
        let message = got.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(
            !message.contains("sha256")
                && !message.contains("misbehave")
                && !message.contains("wasm"),
            "{name}: {message}"
        );
        let healthy = healthy.await.unwrap();
        assert_eq!(
            healthy.status,
            StatusCode::OK,
            "{name} harmed another request"
        );
    }
}

#[tokio::test]
async fn limits_are_per_association() {
    // A budget of 1 s lets a 64 MiB allocation finish once the memory cap allows it.
    let edge = Edge::start().await;
    let o = named("o").await;
    edge.upload_hook("m", MISBEHAVE).await;
    let hook = json!({"module": "m", "config": {"viewer_request": "alloc"}, "memory_limit_mib": 100, "cpu_budget_ms": 1000});
    edge.create(config(
        "big.example.com",
        &[("o", &o)],
        json!({"viewer_request": hook}),
    ))
    .await;
    let got = edge.get("big.example.com", "/").await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    let started = std::time::Instant::now();
    let hook = json!({"module": "m", "config": {"viewer_request": "loop"}, "cpu_budget_ms": 50});
    edge.create(config(
        "spin.example.com",
        &[("o", &o)],
        json!({"viewer_request": hook}),
    ))
    .await;
    assert_eq!(
        edge.get("spin.example.com", "/").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// The host's hook threads (named `edge-hook`): each one's nice value, and
/// their CPU time summed (clock ticks), from /proc.
fn hook_threads() -> (Vec<i64>, u64) {
    let mut nice = Vec::new();
    let mut ticks = 0;
    for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let path = task.expect("task").path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.trim_end() != "edge-hook" {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        // After the command's closing parenthesis: field 3 (state) onwards.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<i64>().ok());
        if let (Some(utime), Some(stime), Some(n)) = (field(14), field(15), field(19)) {
            ticks += u64::try_from(utime + stime).unwrap_or(0);
            nice.push(n);
        }
    }
    (nice, ticks)
}

/// `edge_hook_offloaded_total` of `hook`'s viewer-request event.
async fn offloaded(edge: &Edge, hook: &str) -> f64 {
    let metrics = edge
        .api_raw("GET", "/metrics", Vec::new(), &[], Some(TOKEN))
        .await
        .text();
    let name = format!("edge_hook_offloaded_total{{hook=\"{hook}\",event=\"viewer-request\"}}");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {metrics}"))
}

#[tokio::test]
async fn failing_hooks_run_on_the_hook_threads_after_a_failure() {
    let edge = Edge::start().await;
    let o = named("o").await;
    edge.upload_hook("m", MISBEHAVE).await;
    let hook = json!({"module": "m", "config": {"viewer_request": "panic"}});
    edge.create(config(
        "oops.example.com",
        &[("o", &o)],
        json!({"viewer_request": hook}),
    ))
    .await;
    // A hook that behaves runs where the request is (unless it runs long: a
    // first invocation on a busy machine may, and then it is handed over
    // too); the first failure sends the event's next invocations to the
    // lower-priority threads, every one of them, however short.
    assert_eq!(
        edge.get("oops.example.com", "/").await.status,
        StatusCode::BAD_GATEWAY
    );
    let first = offloaded(&edge, "m").await;
    assert!(first <= 1.0, "{first} hand-offs for one invocation");
    for _ in 0..3 {
        assert_eq!(
            edge.get("oops.example.com", "/").await.status,
            StatusCode::BAD_GATEWAY
        );
    }
    assert_eq!(offloaded(&edge, "m").await - first, 3.0);
}

#[tokio::test]
async fn hooks_run_on_their_own_lower_priority_threads() {
    let edge = Edge::start().await;
    let o = named("o").await;
    edge.upload_hook("m", MISBEHAVE).await;
    let hook = json!({"module": "m", "config": {"viewer_request": "loop"}, "cpu_budget_ms": 20});
    edge.create(config(
        "spin.example.com",
        &[("o", &o)],
        json!({"viewer_request": hook}),
    ))
    .await;
    let (nice, before) = hook_threads();
    assert!(!nice.is_empty(), "no edge-hook threads");
    assert!(
        nice.iter()
            .all(|&n| n == i64::from(edge::wasm::HOOK_THREAD_NICE)),
        "hook threads' nice values: {nice:?}"
    );
    // Ten endless loops, each stopped at its 20 ms CPU budget: 200 ms of CPU,
    // spent on the hook threads.
    for _ in 0..10 {
        assert_eq!(
            edge.get("spin.example.com", "/").await.status,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    let (_, after) = hook_threads();
    // Each one was handed over: the first when it yielded, the rest from the
    // start, since their event had yielded lately.
    assert_eq!(offloaded(&edge, "m").await, 10.0);
    let hz = 100; // USER_HZ: /proc counts CPU time in hundredths of a second
    assert!(
        after - before >= 200 * hz / 1000 / 2,
        "hook threads used {} ticks for 200 ms of looping hooks",
        after - before
    );

    // Without hook threads, hooks run (and are stopped) on the workers.
    let inline = Edge::start_with(|o| o.hook_threads = 0).await;
    inline.upload_hook("m", MISBEHAVE).await;
    let hook = json!({"module": "m", "config": {"viewer_request": "loop"}, "cpu_budget_ms": 20});
    inline
        .create(config(
            "spin.example.com",
            &[("o", &o)],
            json!({"viewer_request": hook}),
        ))
        .await;
    assert_eq!(
        inline.get("spin.example.com", "/").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let ok = json!({"module": "m", "config": {}});
    inline
        .create(config(
            "fine.example.com",
            &[("o", &o)],
            json!({"viewer_request": ok}),
        ))
        .await;
    assert_eq!(
        inline.get("fine.example.com", "/").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn budgets_count_cpu_time_and_waits_have_a_wall_limit() {
    let edge = Edge::start().await;
    let o = named("o").await;
    edge.upload_hook("m", MISBEHAVE).await;
    for (alias, mode) in [("nap", "sleep-60"), ("coma", "sleep-30000")] {
        let hook = json!({"module": "m", "config": {"viewer_request": mode}, "cpu_budget_ms": 5});
        edge.create(config(alias, &[("o", &o)], json!({"viewer_request": hook})))
            .await;
    }
    let edge = std::sync::Arc::new(edge);
    // Sixty milliseconds of waiting is far past a 5 ms budget in wall time, but
    // costs almost no CPU: the hook finishes and the request is served.
    let got = edge.get("nap", "/").await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    // A wait past the wall limit (max(10 x budget, 1 s)) fails the request
    // as a limit, and other viewers are served while the hook waits.
    let started = std::time::Instant::now();
    let stuck = {
        let edge = edge.clone();
        tokio::spawn(async move { edge.get("coma", "/").await })
    };
    for _ in 0..5 {
        assert_eq!(edge.get("nap", "/").await.status, StatusCode::OK);
    }
    let got = stuck.await.unwrap();
    let waited = started.elapsed();
    assert_eq!(
        got.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        got.text()
    );
    assert_eq!(got.error_code(), "HookLimitExceeded");
    assert_eq!(
        got.json()["error"]["message"],
        "a hook ran past one of its limits",
        "{}",
        got.text()
    );
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
}

#[tokio::test]
async fn the_four_events_follow_lambda_at_edge() {
    let (edge, o, other) = misbehaving(&[
        ("vrespond", json!({"viewer_request": "respond"})),
        ("orespond", json!({"origin_request": "respond"})),
        ("reroute", json!({"origin_request": "reroute"})),
        ("rewrite", json!({"viewer_request": "rewrite", "origin_response": "tag", "viewer_response": "tag"})),
        ("status", json!({"viewer_response": "status"})),
        ("obody", json!({"origin_response": "body"})),
        ("vbody", json!({"viewer_response": "body"})),
        ("context", json!({"viewer_request": "context"})),
        ("log", json!({"viewer_request": "log", "origin_request": "log"})),
    ])
    .await;

    // A viewer-request answer skips the cache and is never stored.
    for _ in 0..2 {
        let got = edge.get("vrespond.example.com", "/a").await;
        assert_eq!(got.text(), "answered by viewer_request");
        assert_eq!(got.cache(), "Miss");
    }
    // An origin-request answer is cached like an origin response.
    let first = edge.get("orespond.example.com", "/a").await;
    assert_eq!(
        (first.cache(), first.text().as_str()),
        ("Miss", "answered by origin_request")
    );
    let second = edge.get("orespond.example.com", "/a").await;
    assert_eq!(
        (second.cache(), second.text().as_str()),
        ("Hit", "answered by origin_request")
    );
    assert_eq!(o.hits(), 0);

    // origin-request runs on misses only: the hit does not re-route again.
    edge.get("reroute.example.com", "/r").await;
    let hit = edge.get("reroute.example.com", "/r").await;
    assert_eq!((hit.cache(), hit.text().as_str()), ("Hit", "other /r"));
    assert_eq!(other.hits(), 1);

    // A rewrite reaches the origin; origin-response runs on the miss (and its
    // result is what is stored); viewer-response runs on the miss and the hit.
    let miss = edge.get("rewrite.example.com", "/p").await;
    assert_eq!(miss.text(), "origin /rewritten/p count=-");
    assert_eq!(miss.header("x-origin-response"), Some("1"));
    assert_eq!(miss.header("x-viewer-response"), Some("1"));
    let hit = edge.get("rewrite.example.com", "/p").await;
    assert_eq!(hit.cache(), "Hit");
    assert_eq!(hit.header("x-viewer-response"), Some("1"));

    // viewer-response cannot change the status.
    assert_eq!(
        edge.get("status.example.com", "/").await.status,
        StatusCode::OK
    );

    // Bodies replaced in origin-response are stored; in viewer-response they are per response.
    assert_eq!(
        edge.get("obody.example.com", "/").await.text(),
        "body replaced by origin_response"
    );
    let hit = edge.get("obody.example.com", "/").await;
    assert_eq!(
        (hit.cache(), hit.text().as_str()),
        ("Hit", "body replaced by origin_response")
    );
    for _ in 0..2 {
        assert_eq!(
            edge.get("vbody.example.com", "/").await.text(),
            "body replaced by viewer_response"
        );
    }

    // The context a hook sees.
    let got = edge.get("context.example.com", "/").await;
    let text = got.text();
    let request_id = got.header("x-edge-request-id").unwrap();
    assert!(text.contains(&format!("request={request_id}")), "{text}");
    assert!(text.contains("event=viewer_request"), "{text}");
    assert!(
        text.contains("Primary") && text.contains("origin=o") && text.contains("client=127.0.0.1"),
        "{text}"
    );
    assert!(text.contains(".edge.internal"), "{text}");

    // Logging and printing do not disturb serving.
    assert_eq!(
        edge.get("log.example.com", "/l").await.status,
        StatusCode::OK
    );
}

/// `bytes` with a custom section appended: another version of the same
/// component (custom sections may stand anywhere and change no behaviour).
fn variant(bytes: &[u8], tag: u8) -> Vec<u8> {
    let name = b"edge-test";
    let payload = [tag];
    let mut out = bytes.to_vec();
    out.push(0); // a custom section
    out.push(u8::try_from(1 + name.len() + payload.len()).expect("a short section"));
    out.push(u8::try_from(name.len()).expect("a short name"));
    out.extend_from_slice(name);
    out.extend_from_slice(&payload);
    out
}

async fn upload_bytes(edge: &Edge, name: &str, bytes: Vec<u8>) -> edge_e2e::Got {
    edge.api_raw("PUT", &format!("/v1/hooks/{name}"), bytes, &[], Some(TOKEN))
        .await
}

/// Uploads prune a hook's old versions past the kept count, never one a
/// distribution pins; past the store's byte limit an upload is refused and
/// nothing changes.
#[tokio::test]
async fn old_hook_versions_are_pruned_unless_pinned_and_the_store_is_bounded() {
    let component = std::fs::read(SECURITY_HEADERS).unwrap();
    let edge = Edge::start_with(|o| {
        o.hook_versions_kept = 2;
        o.max_hook_store_bytes = (component.len() as u64 + 64) * 4;
    })
    .await;
    let mut versions = Vec::new();
    for tag in 1..=2 {
        let got = upload_bytes(&edge, "tagger", variant(&component, tag)).await;
        assert_eq!(got.status, StatusCode::CREATED, "{}", got.text());
        versions.push(got.json()["version"].as_str().unwrap().to_owned());
    }
    // The first version is pinned by a distribution.
    let origin = Origin::fixed("ok", &[]).await;
    let mut site = edge_e2e::config_for(&[("o", &origin)]);
    site["aliases"] = json!(["pinned.example.com"]);
    site["default_cache_behavior"]["hooks"] =
        json!({"viewer_response": {"module": format!("tagger@{}", versions[0])}});
    edge.create(site).await;
    for tag in 3..=4 {
        let got = upload_bytes(&edge, "tagger", variant(&component, tag)).await;
        assert_eq!(got.status, StatusCode::CREATED, "{}", got.text());
        versions.push(got.json()["version"].as_str().unwrap().to_owned());
    }
    let listed = edge.api("GET", "/v1/hooks/tagger", None, &[]).await.json();
    let mut kept: Vec<String> = listed["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap().to_owned())
        .collect();
    kept.sort();
    let mut expected = vec![
        versions[0].clone(),
        versions[2].clone(),
        versions[3].clone(),
    ];
    expected.sort();
    assert_eq!(kept, expected, "the pinned, the newest two");
    assert_eq!(listed["latest"], versions[3].as_str());
    assert_eq!(
        edge.get("pinned.example.com", "/").await.status,
        StatusCode::OK
    );
    // Kept after a restart too: the pruning is in the store.
    let edge = Edge::start_in(edge.stop().await, |o| {
        o.hook_versions_kept = 2;
        o.max_hook_store_bytes = (component.len() as u64 + 64) * 4;
    })
    .await;
    let listed = edge.api("GET", "/v1/hooks/tagger", None, &[]).await.json();
    assert_eq!(listed["versions"].as_array().unwrap().len(), 3);
    // Three modules stored; a second hook's two more would pass the limit.
    let got = upload_bytes(&edge, "other", variant(&component, 9)).await;
    assert_eq!(got.status, StatusCode::CREATED, "{}", got.text());
    let full = upload_bytes(&edge, "another", variant(&component, 10)).await;
    assert_eq!(
        full.status,
        StatusCode::INSUFFICIENT_STORAGE,
        "{}",
        full.text()
    );
    assert_eq!(full.error_code(), "HookStoreFull");
    let hooks = edge.api("GET", "/v1/hooks", None, &[]).await.json();
    assert_eq!(hooks["quantity"], 2, "{hooks}");
}
