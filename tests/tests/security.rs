//! Hostile input: cache poisoning through unkeyed headers, error responses
//! kept out of the cache, the control API out of the viewers' reach, and
//! hooks kept away from files, sockets and the host's environment.

use edge_e2e::examples::MISBEHAVE;
use edge_e2e::{Edge, Origin, Reply, config_for, json};
use http::StatusCode;

/// The fields an origin might trust to rebuild the URL or the method.
const OVERRIDES: [(&str, &str); 4] = [
    ("x-forwarded-host", "evil.example"),
    ("x-original-url", "/admin"),
    ("x-http-method-override", "DELETE"),
    ("x-rewrite-url", "/admin"),
];

#[tokio::test]
async fn unkeyed_override_headers_never_poison_the_cache() {
    // An origin that builds its page from the override fields, as a
    // vulnerable application does.
    let origin = Origin::start(|seen| {
        let reflected: Vec<String> = OVERRIDES
            .iter()
            .filter_map(|(name, _)| {
                let value = seen.headers.get(*name)?.to_str().ok()?;
                Some(format!("{name}={value}"))
            })
            .collect();
        Reply::ok(format!("page [{}]", reflected.join(" "))).header("cache-control", "max-age=60")
    })
    .await;
    let edge = Edge::start().await;
    let mut config = config_for(&[("web", &origin)]);
    config["aliases"] = json!(["shop.example.com"]);
    // A behavior that keys on x-forwarded-host may forward it: each value is
    // its own object.
    config["cache_behaviors"] = json!([{
        "path_pattern": "/keyed/*", "target_origin_id": "web",
        "cache_key": {"headers": ["x-forwarded-host"]}
    }]);
    edge.create(config).await;

    let attacker = edge
        .request("GET", "shop.example.com", "/page", &OVERRIDES)
        .await;
    assert_eq!(attacker.text(), "page []");
    for (name, _) in OVERRIDES {
        assert!(
            origin.last().headers.get(name).is_none(),
            "{name} reached the origin"
        );
    }
    let victim = edge.get("shop.example.com", "/page").await;
    assert_eq!(victim.cache(), "Hit");
    assert_eq!(victim.text(), "page []");

    // Keyed: forwarded, and stored apart from the plain object.
    let keyed = edge
        .request("GET", "shop.example.com", "/keyed/a", &OVERRIDES)
        .await;
    assert_eq!(keyed.text(), "page [x-forwarded-host=evil.example]");
    let plain = edge.get("shop.example.com", "/keyed/a").await;
    assert_eq!(plain.text(), "page []");
    assert_eq!(plain.cache(), "Miss");

    // A request the cache never stores keeps them (a POST with an override
    // is the application's business).
    let post = edge
        .request("POST", "shop.example.com", "/form", &OVERRIDES)
        .await;
    assert!(
        post.text().contains("x-http-method-override=DELETE"),
        "{}",
        post.text()
    );
}

#[tokio::test]
async fn error_responses_are_not_cached_by_default() {
    for status in [500, 502, 503, 504] {
        let origin = Origin::start(move |_| Reply::ok("broken").status(status)).await;
        let edge = Edge::start().await;
        let mut config = config_for(&[("web", &origin)]);
        config["aliases"] = json!(["err.example.com"]);
        edge.create(config).await;
        for _ in 0..3 {
            let got = edge.get("err.example.com", "/x").await;
            assert_eq!(got.status.as_u16(), status);
            assert_eq!(got.cache(), "Miss");
        }
        assert_eq!(origin.hits(), 3, "a {status} was served from the cache");
    }
}

#[tokio::test]
async fn the_control_api_is_not_reachable_through_the_viewer_listener() {
    let origin = Origin::fixed("site", &[]).await;
    let edge = Edge::start().await;
    let mut config = config_for(&[("web", &origin)]);
    config["aliases"] = json!(["site.example.com"]);
    edge.create(config).await;
    let control_host = edge.control.to_string();
    let bearer = format!("Bearer {}", edge_e2e::TOKEN);
    for host in [control_host.as_str(), "localhost", "127.0.0.1"] {
        for path in ["/v1/distributions", "/healthz", "/metrics"] {
            let got = edge
                .request("GET", host, path, &[("authorization", bearer.as_str())])
                .await;
            assert_eq!(got.status, StatusCode::MISDIRECTED_REQUEST, "{host}{path}");
            assert!(
                !got.text().contains("\"items\""),
                "{host}{path}: {}",
                got.text()
            );
        }
    }
    // On a distribution's own host, the paths are the origin's.
    let got = edge.get("site.example.com", "/v1/distributions").await;
    assert_eq!(got.text(), "site");
    assert_eq!(origin.last().target, "/v1/distributions");
}

#[tokio::test]
async fn hooks_cannot_reach_files_or_the_environment() {
    // (Nor sockets: a component importing them is refused at upload, the
    // `escape` test in hooks.rs.)
    let origin = Origin::fixed("site", &[]).await;
    let edge = Edge::start().await;
    edge.upload_hook("escape", MISBEHAVE).await;
    let mut config = config_for(&[("web", &origin)]);
    config["aliases"] = json!(["hook.example.com"]);
    config["default_cache_behavior"]["hooks"] = json!({"viewer_request": {
        "module": "escape", "config": {"viewer_request": "escape"}
    }});
    edge.create(config).await;
    let got = edge.get("hook.example.com", "/").await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    let report = got.text();
    let line = |key: &str| {
        report
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key} in {report}"))
            .to_owned()
    };
    assert!(line("file").starts_with("denied"), "{report}");
    assert!(line("dir").starts_with("denied"), "{report}");
    assert_eq!(line("env"), "0", "{report}");
    assert_eq!(origin.hits(), 0);
}

#[tokio::test]
async fn hostile_control_requests_change_nothing_and_always_answer_json() {
    let edge = Edge::start().await;
    let origin = Origin::fixed("site", &[]).await;
    let valid = config_for(&[("web", &origin)]);
    let mut unknown_field = valid.clone();
    unknown_field["colour"] = json!("red");
    let mut wrong_type = valid.clone();
    wrong_type["origins"] = json!("web");
    let huge = vec![b' '; 2 << 20];
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        ("PUT", "/v1/hooks/..%2F..%2Fetc%2Fpasswd", b"\0asm".to_vec()),
        ("PUT", "/v1/hooks/a%00b", b"\0asm".to_vec()),
        ("PUT", "/v1/hooks/ok", b"not a component".to_vec()),
        ("PUT", "/v1/kv/..%2F..%2Fetc/passwd", b"v".to_vec()),
        ("PUT", "/v1/kv/ns/..%2Fescape", b"v".to_vec()),
        ("POST", "/v1/distributions", b"{not json".to_vec()),
        (
            "POST",
            "/v1/distributions",
            serde_json::to_vec(&wrong_type).expect("json"),
        ),
        (
            "POST",
            "/v1/distributions",
            serde_json::to_vec(&unknown_field).expect("json"),
        ),
        ("POST", "/v1/distributions", huge),
        (
            "PUT",
            "/v1/distributions/../config",
            serde_json::to_vec(&valid).expect("json"),
        ),
        ("GET", "/v1/../../etc/passwd", Vec::new()),
        ("DELETE", "/v1/distributions", Vec::new()),
    ];
    for (method, path, body) in cases {
        let got = edge
            .api_raw(method, path, body, &[], Some(edge_e2e::TOKEN))
            .await;
        assert!(
            got.status.is_client_error(),
            "{method} {path}: {}",
            got.status
        );
        assert_eq!(
            got.header("content-type"),
            Some("application/json"),
            "{method} {path}"
        );
        let code = got.error_code();
        assert!(!code.is_empty(), "{method} {path}: {}", got.text());
    }
    // Nothing was stored.
    let list = edge.api("GET", "/v1/distributions", None, &[]).await.json();
    assert_eq!(list["quantity"], 0, "{list}");
    let hooks = edge.api("GET", "/v1/hooks", None, &[]).await.json();
    assert_eq!(hooks["items"].as_array().map(Vec::len), Some(0), "{hooks}");
    assert_eq!(
        edge.api("GET", "/v1/kv/ns/escape", None, &[]).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_api_body_limit_is_configurable() {
    let origin = Origin::fixed("site", &[]).await;
    let mut config = config_for(&[("web", &origin)]);
    config["comment"] = json!("x".repeat(4096));
    let tight = Edge::start_with(|opts| opts.max_api_body_bytes = 1024).await;
    let got = tight
        .api("POST", "/v1/distributions", Some(config.clone()), &[])
        .await;
    assert_eq!(got.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", got.text());
    assert_eq!(got.error_code(), "RequestEntityTooLarge");
    let list = tight
        .api("GET", "/v1/distributions", None, &[])
        .await
        .json();
    assert_eq!(list["quantity"], 0);
    // The default (1 MiB) takes it.
    Edge::start().await.create(config).await;
}

#[tokio::test]
async fn smuggling_probes_are_refused_and_never_reach_the_origin_ambiguously() {
    let origin = Origin::start(|seen| Reply::ok(format!("{} {}", seen.method, seen.target))).await;
    let edge = Edge::start().await;
    let mut config = config_for(&[("web", &origin)]);
    config["aliases"] = json!(["frame.test"]);
    edge.create(config).await;
    let smuggled = "GET /smuggled HTTP/1.1\r\nhost: frame.test\r\n\r\n";
    let long_uri = format!(
        "GET /{} HTTP/1.1\r\nhost: frame.test\r\n\r\n",
        "a".repeat(70_000)
    );
    let cases: Vec<(&str, String, &[&str])> = vec![
        ("TE.CL", format!("POST / HTTP/1.1\r\nhost: frame.test\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n0\r\n\r\n{smuggled}"), &["400"]),
        ("TE obfuscated", format!("POST / HTTP/1.1\r\nhost: frame.test\r\ntransfer-encoding: xchunked\r\n\r\n0\r\n\r\n{smuggled}"), &["400", "501"]),
        ("TE tab", format!("POST / HTTP/1.1\r\nhost: frame.test\r\ntransfer-encoding:\tchunked\r\ncontent-length: 30\r\n\r\n0\r\n\r\n{smuggled}"), &["400"]),
        ("TE twice", format!("POST / HTTP/1.1\r\nhost: frame.test\r\ntransfer-encoding: chunked\r\ntransfer-encoding: identity\r\n\r\n0\r\n\r\n{smuggled}"), &["400", "501"]),
        ("chunk-size overflow", "POST / HTTP/1.1\r\nhost: frame.test\r\ntransfer-encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFF\r\nx\r\n0\r\n\r\n".to_owned(), &["400"]),
        ("bare LF in chunked", "POST / HTTP/1.1\r\nhost: frame.test\r\ntransfer-encoding: chunked\r\n\r\n3\nabc\n0\n\n".to_owned(), &["400"]),
        ("HTTP/1.0 with TE", format!("POST / HTTP/1.0\r\nhost: frame.test\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"), &["400"]),
        ("duplicate CL", "POST / HTTP/1.1\r\nhost: frame.test\r\ncontent-length: 3\r\ncontent-length: 5\r\n\r\nabcde".to_owned(), &["400"]),
        ("invalid Host", "GET / HTTP/1.1\r\nhost: frame test\r\n\r\n".to_owned(), &["400"]),
        ("two Hosts", "GET / HTTP/1.1\r\nhost: frame.test\r\nhost: other.test\r\n\r\n".to_owned(), &["400"]),
        ("over-long URI", long_uri, &["414", "431", "400"]),
    ];
    let mut wrong = Vec::new();
    for (name, request, statuses) in &cases {
        let got = edge.raw_exchange(request.as_bytes()).await;
        let first = got.lines().next().unwrap_or("(nothing)").to_owned();
        if !statuses
            .iter()
            .any(|s| first.starts_with(&format!("HTTP/1.1 {s}")))
        {
            wrong.push(format!("{name}: {first}"));
        }
        // The connection is closed after the refusal: one response, no second.
        if got.matches("HTTP/1.1 ").count() > 1 {
            wrong.push(format!("{name}: answered more than once: {got}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert!(
        origin.hits() == 0,
        "a probe reached the origin: {} {}",
        origin.last().method,
        origin.last().target
    );

    // Absolute-form for another host: the target's authority decides, not
    // the Host header (RFC 9112 3.2.2), so frame.test's origin is not asked.
    let got = edge
        .raw_exchange(
            b"GET http://other.example/ HTTP/1.1\r\nhost: frame.test\r\nconnection: close\r\n\r\n",
        )
        .await;
    assert!(got.starts_with("HTTP/1.1 421"), "{got}");
    assert_eq!(origin.hits(), 0);
}
