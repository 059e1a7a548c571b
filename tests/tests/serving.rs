//! The viewer's side: resolve by Host, behaviors, the shared cache, origin fetching.

use std::time::Duration;

use bytes::Bytes;
use edge_e2e::{Edge, Origin, Reply, Value, config_for, json};
use http::StatusCode;

#[tokio::test]
async fn miss_then_hit_then_a_new_origin_after_put() {
    let edge = Edge::start().await;
    let blue = Origin::fixed("blue", &[("cache-control", "max-age=300")]).await;
    let green = Origin::fixed("green", &[("cache-control", "max-age=300")]).await;
    let mut config = config_for(&[("blue", &blue)]);
    config["aliases"] = json!(["www.example.com"]);
    let created = edge.create(config).await;
    let id = created["id"].as_str().unwrap();

    let first = edge.get("www.example.com", "/index.html").await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.text(), "blue");
    assert_eq!(first.cache(), "Miss");
    assert!(first.header("age").is_none());
    assert_eq!(first.header("via"), Some("1.1 edge-test (edge)"));
    let request_id = first.header("x-edge-request-id").unwrap().to_owned();
    assert_eq!(request_id.len(), 26);

    let second = edge.get("www.example.com", "/index.html").await;
    assert_eq!(second.text(), "blue");
    assert_eq!(second.cache(), "Hit");
    assert_eq!(second.header("age"), Some("0"));
    assert_ne!(
        second.header("x-edge-request-id"),
        Some(request_id.as_str())
    );
    assert_eq!(blue.hits(), 1, "the hit went to the origin");

    // Host matching ignores case and port.
    let third = edge.get("WWW.Example.COM:8080", "/index.html").await;
    assert_eq!(third.cache(), "Hit");

    let mut config = config_for(&[("green", &green)]);
    config["aliases"] = json!(["www.example.com"]);
    let put = edge
        .api(
            "PUT",
            &format!("/v1/distributions/{id}/config"),
            Some(config),
            &[("if-match", created["etag"].as_str().unwrap())],
        )
        .await;
    assert_eq!(put.status, StatusCode::OK);
    // The origin is part of the cache key: green's viewers never get blue's object.
    let after = edge.get("www.example.com", "/index.html").await;
    assert_eq!(after.text(), "green");
    assert_eq!(after.cache(), "Miss");
    assert_eq!(green.hits(), 1);
    assert_eq!(blue.hits(), 1);
}

#[tokio::test]
async fn exact_alias_beats_wildcard_beats_nothing() {
    let edge = Edge::start().await;
    let exact = Origin::fixed("exact", &[]).await;
    let wild = Origin::fixed("wild", &[]).await;
    let deeper = Origin::fixed("deeper", &[]).await;
    let mut a = config_for(&[("o", &exact)]);
    a["aliases"] = json!(["www.example.com"]);
    edge.create(a).await;
    let mut b = config_for(&[("o", &wild)]);
    b["aliases"] = json!(["*.example.com"]);
    let b = edge.create(b).await;
    let mut c = config_for(&[("o", &deeper)]);
    c["aliases"] = json!(["*.eu.example.com"]);
    edge.create(c).await;

    assert_eq!(edge.get("www.example.com", "/").await.text(), "exact");
    assert_eq!(edge.get("shop.example.com", "/").await.text(), "wild");
    assert_eq!(edge.get("a.b.example.com", "/").await.text(), "wild");
    assert_eq!(edge.get("shop.eu.example.com", "/").await.text(), "deeper");
    // A wildcard does not cover the bare domain.
    let bare = edge.get("example.com", "/").await;
    assert_eq!(bare.status, StatusCode::MISDIRECTED_REQUEST);
    assert_eq!(bare.error_code(), "UnknownDistribution");
    assert_eq!(bare.cache(), "Error");
    assert_eq!(bare.header("content-type"), Some("application/json"));
    // Every distribution answers its own domain name.
    let own = edge.get(b["domain_name"].as_str().unwrap(), "/").await;
    assert_eq!(own.text(), "wild");
}

#[tokio::test]
async fn a_disabled_distribution_answers_403() {
    let edge = Edge::start().await;
    let o = Origin::fixed("up", &[]).await;
    let mut config = config_for(&[("o", &o)]);
    config["aliases"] = json!(["off.example.com"]);
    config["enabled"] = json!(false);
    edge.create(config).await;
    let got = edge.get("off.example.com", "/").await;
    assert_eq!(got.status, StatusCode::FORBIDDEN);
    assert_eq!(got.error_code(), "DistributionDisabled");
    assert_eq!(o.hits(), 0);
}

#[tokio::test]
async fn path_patterns_pick_the_behavior_first_match_wins() {
    let edge = Edge::start().await;
    let site = Origin::fixed("site", &[]).await;
    let api = Origin::fixed("api", &[]).await;
    let img = Origin::fixed("img", &[]).await;
    let mut config = config_for(&[("site", &site), ("api", &api), ("img", &img)]);
    config["aliases"] = json!(["p.example.com"]);
    config["cache_behaviors"] = json!([
        {"path_pattern": "/api/v?/*", "target_origin_id": "api", "default_ttl": 0},
        {"path_pattern": "*.png", "target_origin_id": "img"},
        {"path_pattern": "/api/*", "target_origin_id": "img"},
    ]);
    edge.create(config).await;
    assert_eq!(
        edge.get("p.example.com", "/api/v1/users").await.text(),
        "api"
    );
    assert_eq!(
        edge.get("p.example.com", "/api/v10/users").await.text(),
        "img"
    );
    assert_eq!(
        edge.get("p.example.com", "/static/logo.png").await.text(),
        "img"
    );
    assert_eq!(
        edge.get("p.example.com", "/index.html").await.text(),
        "site"
    );
    // default_ttl 0 on the API behavior: nothing without explicit freshness is stored.
    edge.get("p.example.com", "/api/v1/users").await;
    assert_eq!(api.hits(), 2);
}

#[tokio::test]
async fn responses_that_must_not_be_stored_are_not() {
    let edge = Edge::start().await;
    let o = Origin::start(|req| match req.target.as_str() {
        "/no-store" => Reply::ok("x").header("cache-control", "no-store"),
        "/private" => Reply::ok("x").header("cache-control", "private, max-age=60"),
        "/cookie" => Reply::ok("x")
            .header("cache-control", "max-age=60")
            .header("set-cookie", "s=1"),
        "/error" => Reply::ok("x").status(500),
        "/bad-request" => Reply::ok("x").status(400),
        _ => Reply::ok("cacheable").header("cache-control", "max-age=60"),
    })
    .await;
    let mut config = config_for(&[("o", &o)]);
    config["aliases"] = json!(["n.example.com"]);
    edge.create(config).await;
    for path in ["/no-store", "/private", "/cookie", "/error", "/bad-request"] {
        let before = o.hits();
        let a = edge.get("n.example.com", path).await;
        let b = edge.get("n.example.com", path).await;
        assert_eq!((a.cache(), b.cache()), ("Miss", "Miss"), "{path}");
        assert_eq!(o.hits(), before + 2, "{path} was served from cache");
    }
    // Only GET and HEAD are cached; a POST passes through with its body.
    let post = edge
        .request_with_body(
            "POST",
            "n.example.com",
            "/form",
            &[],
            Bytes::from_static(b"name=edge"),
        )
        .await;
    assert_eq!(post.cache(), "Miss");
    assert_eq!(o.last().body, Bytes::from_static(b"name=edge"));
    edge.request_with_body("POST", "n.example.com", "/form", &[], Bytes::new())
        .await;
    assert_eq!(o.last().method, http::Method::POST);
    let hits = o.hits();
    assert_eq!(edge.get("n.example.com", "/form").await.cache(), "Miss");
    assert_eq!(edge.get("n.example.com", "/form").await.cache(), "Hit");
    assert_eq!(o.hits(), hits + 1);
    // A request carrying Authorization is not answered from a shared object.
    let auth = edge
        .request(
            "GET",
            "n.example.com",
            "/private-to-me",
            &[("authorization", "Bearer x")],
        )
        .await;
    let auth2 = edge
        .request(
            "GET",
            "n.example.com",
            "/private-to-me",
            &[("authorization", "Bearer y")],
        )
        .await;
    assert_eq!((auth.cache(), auth2.cache()), ("Miss", "Miss"));
}

#[tokio::test]
async fn ttls_are_clamped_by_the_behavior() {
    let edge = Edge::start().await;
    let o = Origin::start(|req| match req.target.as_str() {
        "/long" => Reply::ok("long").header("cache-control", "max-age=3600"),
        "/short" => Reply::ok("short").header("cache-control", "max-age=0"),
        _ => Reply::ok("silent"),
    })
    .await;
    let mut config = config_for(&[("o", &o)]);
    config["aliases"] = json!(["t.example.com"]);
    config["default_cache_behavior"]["max_ttl"] = json!(1);
    config["default_cache_behavior"]["default_ttl"] = json!(1);
    config["cache_behaviors"] = json!([
        {"path_pattern": "/short", "target_origin_id": "o", "min_ttl": 1, "default_ttl": 1, "max_ttl": 1}
    ]);
    edge.create(config).await;
    for path in ["/long", "/silent", "/short"] {
        assert_eq!(
            edge.get("t.example.com", path).await.cache(),
            "Miss",
            "{path}"
        );
        assert_eq!(
            edge.get("t.example.com", path).await.cache(),
            "Hit",
            "{path}"
        );
    }
    let hits = o.hits();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    // max-age=3600 was cut to max_ttl=1; the silent response used default_ttl=1;
    // max-age=0 was raised to min_ttl=1; all are now expired.
    for path in ["/long", "/silent", "/short"] {
        assert_eq!(
            edge.get("t.example.com", path).await.cache(),
            "Miss",
            "{path}"
        );
    }
    assert_eq!(o.hits(), hits + 3);
}

#[tokio::test]
async fn cache_key_query_strings_cookies_and_headers() {
    let edge = Edge::start().await;
    let o =
        Origin::start(|req| Reply::ok(req.target.clone()).header("cache-control", "max-age=60"))
            .await;
    let mut config = config_for(&[("o", &o)]);
    config["aliases"] = json!(["k.example.com"]);
    config["cache_behaviors"] = json!([
        {"path_pattern": "/all/*", "target_origin_id": "o", "cache_key": {"query_strings": "all"}},
        {"path_pattern": "/some/*", "target_origin_id": "o",
         "cache_key": {"query_strings": ["v"], "cookies": ["session"], "headers": ["x-variant"]}},
    ]);
    edge.create(config).await;

    // "none" (the default): the query neither keys nor reaches the origin.
    let a = edge.get("k.example.com", "/none/x?a=1").await;
    assert_eq!(a.text(), "/none/x");
    assert_eq!(
        edge.get("k.example.com", "/none/x?a=2").await.cache(),
        "Hit"
    );

    assert_eq!(
        edge.get("k.example.com", "/all/x?a=1").await.text(),
        "/all/x?a=1"
    );
    let other = edge.get("k.example.com", "/all/x?a=2").await;
    assert_eq!(
        (other.cache(), other.text().as_str()),
        ("Miss", "/all/x?a=2")
    );

    assert_eq!(
        edge.get("k.example.com", "/some/x?v=1&junk=2").await.text(),
        "/some/x?v=1"
    );
    assert_eq!(
        edge.get("k.example.com", "/some/x?junk=3&v=1")
            .await
            .cache(),
        "Hit"
    );
    let cookie = edge
        .request(
            "GET",
            "k.example.com",
            "/some/x?v=1",
            &[("cookie", "tracking=9; session=abc")],
        )
        .await;
    assert_eq!(cookie.cache(), "Miss");
    assert_eq!(o.last().headers.get("cookie").unwrap(), "session=abc");
    let same = edge
        .request(
            "GET",
            "k.example.com",
            "/some/x?v=1",
            &[("cookie", "session=abc; other=1")],
        )
        .await;
    assert_eq!(same.cache(), "Hit");
    let variant = edge
        .request("GET", "k.example.com", "/some/x?v=1", &[("x-variant", "b")])
        .await;
    assert_eq!(variant.cache(), "Miss");
}

#[tokio::test]
async fn hop_by_hop_fields_are_stripped_both_ways() {
    let edge = Edge::start().await;
    let o = Origin::start(|_| {
        Reply::ok("ok")
            .header("connection", "x-origin-private")
            .header("x-origin-private", "secret")
            .header("keep-alive", "timeout=5")
            .header("x-origin-public", "yes")
    })
    .await;
    let mut config = config_for(&[("o", &o)]);
    config["aliases"] = json!(["h.example.com"]);
    config["origins"][0]["origin_path"] = json!("/v2");
    config["origins"][0]["custom_headers"] = json!({"x-from-edge": "1"});
    edge.create(config).await;
    let got = edge
        .request(
            "GET",
            "h.example.com",
            "/page",
            &[
                (
                    "connection",
                    "keep-alive, x-viewer-private, x-forwarded-for",
                ),
                ("x-viewer-private", "secret"),
                ("x-forwarded-for", "6.6.6.6"),
                ("proxy-authorization", "Basic Zm9vOmJhcg=="),
                ("te", "trailers"),
                ("x-viewer-public", "yes"),
            ],
        )
        .await;
    assert_eq!(got.status, StatusCode::OK);
    let seen = o.last();
    assert_eq!(seen.target, "/v2/page");
    for gone in ["x-viewer-private", "proxy-authorization", "te"] {
        assert!(
            !seen.headers.contains_key(gone),
            "{gone} reached the origin"
        );
    }
    assert_eq!(seen.headers["x-viewer-public"], "yes");
    assert_eq!(seen.headers["x-from-edge"], "1");
    assert_eq!(seen.headers["host"], o.domain().as_str());
    // The spoofed entry named in Connection was dropped before the host appended its own.
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert!(seen.headers["via"].to_str().unwrap().contains("edge-test"));
    assert!(got.header("x-origin-private").is_none());
    assert!(got.header("keep-alive").is_none());
    assert_eq!(got.header("x-origin-public"), Some("yes"));

    let forwarded = edge
        .request(
            "GET",
            "h.example.com",
            "/page2",
            &[("x-forwarded-for", "10.1.1.1")],
        )
        .await;
    assert_eq!(forwarded.status, StatusCode::OK);
    assert_eq!(o.last().headers["x-forwarded-for"], "10.1.1.1, 127.0.0.1");
}

#[tokio::test]
async fn origin_failures_map_to_502_and_504() {
    let edge = Edge::start().await;
    let slow = Origin::start(|_| Reply::ok("late").delay(Duration::from_secs(3))).await;
    // A port with nothing listening: bind, note it, close it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut config = config_for(&[("slow", &slow)]);
    config["aliases"] = json!(["f.example.com"]);
    config["origins"][0]["read_timeout_ms"] = json!(200);
    config["origins"] = json!([
        config["origins"][0],
        {"id": "closed", "domain_name": closed.to_string(), "protocol": "http"}
    ]);
    config["cache_behaviors"] =
        json!([{"path_pattern": "/closed/*", "target_origin_id": "closed"}]);
    edge.create(config).await;

    let timeout = edge.get("f.example.com", "/slow").await;
    assert_eq!(timeout.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(timeout.error_code(), "OriginTimeout");
    assert_eq!(timeout.cache(), "Error");
    assert!(timeout.header("x-edge-request-id").is_some());

    let refused = edge.get("f.example.com", "/closed/x").await;
    assert_eq!(refused.status, StatusCode::BAD_GATEWAY);
    assert_eq!(refused.error_code(), "OriginConnectionFailed");
}

#[tokio::test]
async fn an_origin_that_stalls_mid_body_is_cut_off() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    // A raw origin that promises 100 bytes, sends 10, then stalls.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\ncache-control: max-age=60\r\n\r\n0123456789")
                    .await;
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
        }
    });
    let edge = Edge::start().await;
    let config = json!({
        "aliases": ["stall.example.com"],
        "origins": [{"id": "o", "domain_name": addr.to_string(), "protocol": "http", "read_timeout_ms": 300}],
        "default_cache_behavior": {"target_origin_id": "o"},
    });
    edge.create(config).await;
    let req = http::Request::get(format!("http://{}/x", edge.viewer))
        .header("host", "stall.example.com")
        .body(http_body_util::Full::new(Bytes::new()))
        .unwrap();
    let started = std::time::Instant::now();
    let result = edge.client.try_send(req).await;
    assert!(
        result.is_err(),
        "a truncated body was delivered as complete"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    // Nothing partial was stored.
    let req = http::Request::get(format!("http://{}/x", edge.viewer))
        .header("host", "stall.example.com")
        .body(http_body_util::Full::new(Bytes::new()))
        .unwrap();
    assert!(edge.client.try_send(req).await.is_err());
}

#[tokio::test]
async fn origin_groups_fail_over_on_status_and_connection_errors() {
    let edge = Edge::start().await;
    let failing = Origin::fixed("down", &[]).await;
    let backup = Origin::fixed("backup", &[("cache-control", "max-age=60")]).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let failing = Origin::start({
        drop(failing);
        |_| Reply::ok("unavailable").status(503)
    })
    .await;
    let slow = Origin::start(|_| Reply::ok("late").delay(Duration::from_secs(5))).await;
    let config = json!({
        "aliases": ["g.example.com"],
        "origins": [
            {"id": "primary", "domain_name": failing.domain(), "protocol": "http"},
            {"id": "dead", "domain_name": closed.to_string(), "protocol": "http"},
            {"id": "slow", "domain_name": slow.domain(), "protocol": "http", "read_timeout_ms": 200},
            {"id": "backup", "domain_name": backup.domain(), "protocol": "http"}
        ],
        "origin_groups": [
            {"id": "by-status", "members": ["primary", "backup"]},
            {"id": "by-connection", "members": ["dead", "backup"]},
            {"id": "by-timeout", "members": ["slow", "backup"]},
            {"id": "no-404", "members": ["primary", "backup"], "failover_status_codes": [404]}
        ],
        "default_cache_behavior": {"target_origin_id": "by-status"},
        "cache_behaviors": [
            {"path_pattern": "/conn/*", "target_origin_id": "by-connection"},
            {"path_pattern": "/timeout/*", "target_origin_id": "by-timeout"},
            {"path_pattern": "/strict/*", "target_origin_id": "no-404"}
        ]
    });
    edge.create(config).await;
    let got = edge.get("g.example.com", "/a").await;
    assert_eq!(
        (got.status, got.text().as_str()),
        (StatusCode::OK, "backup")
    );
    assert_eq!(failing.hits(), 1);
    let got = edge.get("g.example.com", "/conn/a").await;
    assert_eq!(
        (got.status, got.text().as_str()),
        (StatusCode::OK, "backup")
    );
    let started = std::time::Instant::now();
    let got = edge.get("g.example.com", "/timeout/a").await;
    assert_eq!(
        (got.status, got.text().as_str()),
        (StatusCode::OK, "backup")
    );
    assert_eq!(slow.hits(), 1);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "waited for the slow origin"
    );
    // 503 is not in this group's failover codes: the primary's answer stands.
    let got = edge.get("g.example.com", "/strict/a").await;
    assert_eq!(got.status, StatusCode::SERVICE_UNAVAILABLE);
    // A POST is never retried on another origin.
    let post = edge
        .request_with_body("POST", "g.example.com", "/b", &[], Bytes::from_static(b"x"))
        .await;
    assert_eq!(post.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn bodies_above_the_object_limit_stream_but_are_not_stored() {
    let edge = Edge::start_with(|o| o.max_object_bytes = 1000).await;
    let o = Origin::start(|req| {
        let size = if req.target == "/big" { 5000 } else { 1000 };
        Reply::ok(vec![b'a'; size]).header("cache-control", "max-age=60")
    })
    .await;
    let mut config = config_for(&[("o", &o)]);
    config["aliases"] = json!(["b.example.com"]);
    edge.create(config).await;
    let big = edge.get("b.example.com", "/big").await;
    assert_eq!(big.body.len(), 5000);
    assert_eq!(edge.get("b.example.com", "/big").await.cache(), "Miss");
    edge.get("b.example.com", "/small").await;
    assert_eq!(edge.get("b.example.com", "/small").await.cache(), "Hit");
    assert_eq!(o.hits(), 3);
}

#[tokio::test]
async fn head_requests_are_answered_from_a_stored_get() {
    let edge = Edge::start().await;
    let o = Origin::fixed("body", &[("cache-control", "max-age=60")]).await;
    let mut config = config_for(&[("o", &o)]);
    config["aliases"] = json!(["head.example.com"]);
    edge.create(config).await;
    // A HEAD miss goes to the origin as a HEAD and stores nothing.
    let head = edge.request("HEAD", "head.example.com", "/x", &[]).await;
    assert_eq!((head.status, head.cache()), (StatusCode::OK, "Miss"));
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), Some("4"));
    assert_eq!(o.last().method, "HEAD");
    let head = edge.request("HEAD", "head.example.com", "/x", &[]).await;
    assert_eq!(head.cache(), "Miss");
    // Once a GET stored the object, HEAD is answered from it.
    assert_eq!(edge.get("head.example.com", "/x").await.text(), "body");
    let again = edge.request("HEAD", "head.example.com", "/x", &[]).await;
    assert_eq!(again.cache(), "Hit");
    assert!(again.body.is_empty());
    assert_eq!(again.header("content-length"), Some("4"));
    assert_eq!(o.hits(), 3);
}

#[tokio::test]
async fn requests_without_a_usable_host_get_400() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let edge = Edge::start().await;
    let mut s = tokio::net::TcpStream::connect(edge.viewer).await.unwrap();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.0 400"), "{text}");
    assert!(text.contains("MissingHost"), "{text}");
}

#[tokio::test]
async fn an_origin_that_never_accepts_hits_the_connect_timeout() {
    // A listener whose accept queue is full and never drained: new SYNs are
    // dropped, so connecting hangs until the connect timeout.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        let connect = tokio::net::TcpStream::connect(addr);
        match tokio::time::timeout(Duration::from_millis(200), connect).await {
            Ok(Ok(s)) => fillers.push(s),
            _ => break,
        }
    }
    let edge = Edge::start().await;
    edge.create(json!({
        "aliases": ["c.example.com"],
        "origins": [{"id": "o", "domain_name": addr.to_string(), "protocol": "http", "connect_timeout_ms": 300}],
        "default_cache_behavior": {"target_origin_id": "o"},
    }))
    .await;
    let started = std::time::Instant::now();
    let got = edge.get("c.example.com", "/").await;
    assert_eq!(got.status, StatusCode::GATEWAY_TIMEOUT, "{}", got.text());
    assert_eq!(got.error_code(), "OriginTimeout");
    assert!(started.elapsed() < Duration::from_secs(10));
    drop((listener, fillers));
}

#[tokio::test]
async fn malformed_framing_is_refused_and_the_connection_closed() {
    let o = Origin::fixed("ok", &[]).await;
    let edge = Edge::start_with(|opts| {
        opts.max_header_count = 20;
        opts.max_header_bytes = 16 * 1024;
    })
    .await;
    let mut config = config_for(&[("o", &o)]);
    config["aliases"] = json!(["frame.test"]);
    edge.create(config).await;
    let many: String = (0..30).map(|i| format!("x-h{i}: v\r\n")).collect();
    let big = format!("x-big: {}\r\n", "a".repeat(20 * 1024));
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "CL and TE",
            "POST / HTTP/1.1\r\nhost: frame.test\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n".into(),
            "400",
        ),
        ("bad CL", "POST / HTTP/1.1\r\nhost: frame.test\r\ncontent-length: abc\r\n\r\n".into(), "400"),
        ("two CLs", "POST / HTTP/1.1\r\nhost: frame.test\r\ncontent-length: 1, 2\r\n\r\nab".into(), "400"),
        ("obs-fold", "GET / HTTP/1.1\r\nhost: frame.test\r\nx-a: 1\r\n  folded\r\n\r\n".into(), "400"),
        ("space before colon", "GET / HTTP/1.1\r\nhost : frame.test\r\n\r\n".into(), "400"),
        ("too many fields", format!("GET / HTTP/1.1\r\nhost: frame.test\r\n{many}\r\n"), "431"),
        ("a field too large", format!("GET / HTTP/1.1\r\nhost: frame.test\r\n{big}\r\n"), "431"),
    ];
    let mut wrong = Vec::new();
    for (name, request, status) in cases {
        let got = edge.raw_exchange(request.as_bytes()).await;
        if !got.starts_with(&format!("HTTP/1.1 {status}")) {
            wrong.push(format!(
                "{name}: {}",
                got.lines().next().unwrap_or("(nothing)")
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert_eq!(o.hits(), 0, "nothing malformed reached the origin");
    // A well-formed request on the same limits is served.
    let ok = edge
        .raw_exchange(b"GET / HTTP/1.1\r\nhost: frame.test\r\nconnection: close\r\n\r\n")
        .await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
}

#[tokio::test]
async fn access_logs_record_each_request_of_a_logging_distribution() {
    let origin = Origin::fixed("hello, log", &[("cache-control", "max-age=60")]).await;
    let log_dir = tempfile::tempdir().expect("temp dir");
    let log_path = log_dir.path().join("access.log");
    let path = log_path.clone();
    let edge = Edge::start_with(move |opts| opts.access_log = Some(path)).await;
    let mut logged = config_for(&[("web", &origin)]);
    logged["aliases"] = json!(["logged.example.com"]);
    logged["logging"] = json!({"enabled": true, "include_cookies": true});
    let created = edge.create(logged).await;
    let mut quiet = config_for(&[("web", &origin)]);
    quiet["aliases"] = json!(["quiet.example.com"]);
    edge.create(quiet).await;

    let headers = [
        ("user-agent", "curl/8.5"),
        ("referer", "https://ref.example/"),
        ("cookie", "session=abc"),
    ];
    let miss = edge
        .request("GET", "logged.example.com", "/page?x=1", &headers)
        .await;
    let hit = edge
        .request("GET", "logged.example.com", "/page?x=1", &headers)
        .await;
    assert_eq!(hit.cache(), "Hit");
    edge.get("quiet.example.com", "/page").await;

    let read = || {
        let path = log_path.clone();
        async move {
            std::fs::read_to_string(&path)
                .map(|t| t.lines().count() >= 2)
                .unwrap_or(false)
        }
    };
    assert!(edge_e2e::eventually(Duration::from_secs(10), read).await);
    // Give a stray third line (there must be none) a moment to appear.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let text = std::fs::read_to_string(&log_path).expect("the access log");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    let (first, second) = (&lines[0], &lines[1]);
    assert_eq!(first["result_type"], "Miss");
    assert_eq!(second["result_type"], "Hit");
    assert_eq!(
        first["request_id"],
        miss.header("x-edge-request-id").expect("id")
    );
    assert_eq!(first["distribution_id"], created["id"]);
    assert_eq!(first["cs_host"], created["domain_name"]);
    assert_eq!(first["host_header"], "logged.example.com");
    assert_eq!(first["cs_method"], "GET");
    assert_eq!(first["cs_uri_stem"], "/page");
    assert_eq!(first["cs_uri_query"], "x=1");
    assert_eq!(first["sc_status"], 200);
    assert_eq!(first["sc_bytes"], "hello, log".len());
    assert_eq!(first["cs_user_agent"], "curl/8.5");
    assert_eq!(first["cs_referer"], "https://ref.example/");
    assert_eq!(first["cs_cookie"], "session=abc");
    assert_eq!(first["cs_protocol"], "http");
    assert_eq!(first["cs_protocol_version"], "HTTP/1.1");
    assert_eq!(first["edge_id"], "edge-test");
    assert_eq!(first["arm"], "primary");
    assert_eq!(first["origin"], "web");
    assert_eq!(first["c_ip"], "127.0.0.1");
    assert!(first["time_taken"].as_f64().expect("seconds") > 0.0);
    assert!(first["date"].as_str().expect("date").len() == 10);
}

/// The value of one series in Prometheus text.
fn series(metrics: &str, name_and_labels: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        (series == name_and_labels).then(|| value.parse().ok())?
    })
}

#[tokio::test]
async fn metrics_break_requests_down_by_distribution_origin_and_hook() {
    let origin = Origin::fixed("measured", &[("cache-control", "max-age=60")]).await;
    let edge = Edge::start().await;
    edge.upload_hook("sec", edge_e2e::examples::SECURITY_HEADERS)
        .await;
    let mut config = config_for(&[("web", &origin)]);
    config["aliases"] = json!(["m.example.com"]);
    config["default_cache_behavior"]["hooks"] = json!({"viewer_response": {"module": "sec"}});
    let created = edge.create(config).await;
    let id = created["id"].as_str().expect("id");
    for _ in 0..3 {
        assert_eq!(edge.get("m.example.com", "/a").await.status, StatusCode::OK);
    }
    let metrics = edge.api("GET", "/metrics", None, &[]).await.text();
    let dist = format!("distribution=\"{id}\"");
    let responses = |cache: &str| {
        series(
            &metrics,
            &format!(
                "edge_distribution_responses_total{{{dist},arm=\"primary\",cache=\"{cache}\",class=\"2xx\"}}"
            ),
        )
    };
    assert_eq!(responses("Miss"), Some(1.0), "{metrics}");
    assert_eq!(responses("Hit"), Some(2.0), "{metrics}");
    assert_eq!(
        series(
            &metrics,
            &format!("edge_origin_response_seconds_count{{{dist},origin=\"web\"}}")
        ),
        Some(1.0),
        "{metrics}"
    );
    let hook = "hook=\"sec\",event=\"viewer-response\"";
    assert_eq!(
        series(&metrics, &format!("edge_hook_invocations_total{{{hook}}}")),
        Some(3.0),
        "{metrics}"
    );
    assert_eq!(
        series(&metrics, &format!("edge_hook_errors_total{{{hook}}}")),
        Some(0.0)
    );
    assert_eq!(
        series(
            &metrics,
            &format!("edge_hook_duration_seconds_count{{{hook}}}")
        ),
        Some(3.0)
    );
    assert_eq!(
        series(
            &metrics,
            "edge_hook_instantiate_seconds_count{hook=\"sec\"}"
        ),
        Some(3.0)
    );
    let inf = series(
        &metrics,
        &format!("edge_hook_duration_seconds_bucket{{{hook},le=\"+Inf\"}}"),
    );
    assert_eq!(inf, Some(3.0));
    // CPU time per invocation: counted, and no more than the wall time.
    assert_eq!(
        series(&metrics, &format!("edge_hook_cpu_seconds_count{{{hook}}}")),
        Some(3.0),
        "{metrics}"
    );
    let (cpu, wall) = (
        series(&metrics, &format!("edge_hook_cpu_seconds_sum{{{hook}}}")).expect("a CPU sum"),
        series(
            &metrics,
            &format!("edge_hook_duration_seconds_sum{{{hook}}}"),
        )
        .expect("a duration sum"),
    );
    assert!(
        cpu > 0.0 && cpu <= wall * 1.05 + 1e-4,
        "cpu {cpu} s, wall {wall} s"
    );
}

/// Reads one response (head and a `content-length` body) from `stream`.
async fn read_response(stream: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> (u16, String) {
    use tokio::io::AsyncReadExt as _;
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().expect("a length"));
            if buf.len() >= end + 4 + length {
                let status = head[9..12].parse().expect("a status");
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).into_owned();
                buf.drain(..end + 4 + length);
                return (status, body);
            }
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .expect("a response within 5 s")
            .expect("read");
        assert!(n > 0, "the host closed a kept-alive connection");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn one_connection_serves_requests_pipelined_kept_alive_and_with_bodies() {
    use tokio::io::AsyncWriteExt as _;
    // Between requests a plain connection holds no parser state: each of
    // these shapes must still be served in order on the one connection.
    let origin = Origin::start(|seen| {
        Reply::ok(format!(
            "{} {} {}",
            seen.method,
            seen.target,
            seen.body.len()
        ))
        .header("cache-control", "no-store")
    })
    .await;
    let edge = Edge::start().await;
    let mut config = config_for(&[("web", &origin)]);
    config["aliases"] = json!(["keep.test"]);
    edge.create(config).await;
    let mut stream = tokio::net::TcpStream::connect(edge.viewer)
        .await
        .expect("connect");
    let mut buf = Vec::new();
    // Kept alive, one after another, with pauses (the connection parks).
    for i in 0..5 {
        stream
            .write_all(format!("GET /seq/{i} HTTP/1.1\r\nhost: keep.test\r\n\r\n").as_bytes())
            .await
            .expect("write");
        assert_eq!(
            read_response(&mut stream, &mut buf).await,
            (200, format!("GET /seq/{i} 0"))
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Three pipelined in one write.
    stream
        .write_all(
            b"GET /p/1 HTTP/1.1\r\nhost: keep.test\r\n\r\nGET /p/2 HTTP/1.1\r\nhost: keep.test\r\n\r\nGET /p/3 HTTP/1.1\r\nhost: keep.test\r\n\r\n",
        )
        .await
        .expect("write");
    for i in 1..=3 {
        assert_eq!(
            read_response(&mut stream, &mut buf).await,
            (200, format!("GET /p/{i} 0"))
        );
    }
    // A request with a body, then one without, then a body again.
    stream
        .write_all(b"POST /form HTTP/1.1\r\nhost: keep.test\r\ncontent-length: 5\r\n\r\nhello")
        .await
        .expect("write");
    assert_eq!(
        read_response(&mut stream, &mut buf).await,
        (200, "POST /form 5".to_owned())
    );
    stream
        .write_all(b"GET /after HTTP/1.1\r\nhost: keep.test\r\n\r\nPOST /chunked HTTP/1.1\r\nhost: keep.test\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        .await
        .expect("write");
    assert_eq!(
        read_response(&mut stream, &mut buf).await,
        (200, "GET /after 0".to_owned())
    );
    assert_eq!(
        read_response(&mut stream, &mut buf).await,
        (200, "POST /chunked 3".to_owned())
    );
    // `Connection: close` is honoured: the answer, then the end.
    stream
        .write_all(b"GET /last HTTP/1.1\r\nhost: keep.test\r\nconnection: close\r\n\r\n")
        .await
        .expect("write");
    assert_eq!(
        read_response(&mut stream, &mut buf).await,
        (200, "GET /last 0".to_owned())
    );
    let mut rest = Vec::new();
    let read = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut rest),
    )
    .await
    .expect("closed within 5 s");
    assert!(read.is_ok() && rest.is_empty(), "{rest:?}");
    assert_eq!(origin.hits(), 12);
}
