//! The cache end to end: request collapsing, revalidation, stale serving,
//! conditional and range requests answered from stored objects.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use edge_e2e::{Edge, Origin, Reply, config_for, json};
use http::StatusCode;

/// A host with one distribution on `alias` in front of `origin`.
async fn host_for(alias: &str, origin: &Origin) -> Edge {
    let edge = Edge::start().await;
    let mut config = config_for(&[("o", origin)]);
    config["aliases"] = json!([alias]);
    edge.create(config).await;
    edge
}

#[tokio::test]
async fn concurrent_misses_make_one_origin_request() {
    let o = Origin::start(|_| {
        Reply::ok("slow")
            .header("cache-control", "max-age=60")
            .delay(Duration::from_millis(300))
    })
    .await;
    let edge = Arc::new(host_for("c.test", &o).await);
    let mut viewers = Vec::new();
    for _ in 0..100 {
        let edge = edge.clone();
        viewers.push(tokio::spawn(
            async move { edge.get("c.test", "/same").await },
        ));
    }
    let mut misses = 0;
    for v in viewers {
        let got = v.await.unwrap();
        assert_eq!(
            (got.status, got.text()),
            (StatusCode::OK, "slow".to_owned())
        );
        if got.cache() == "Miss" {
            misses += 1;
        }
    }
    assert_eq!(
        o.hits(),
        1,
        "100 concurrent viewers made {} origin requests",
        o.hits()
    );
    assert_eq!(misses, 1);
}

#[tokio::test]
async fn a_failed_leader_does_not_fail_its_followers() {
    // The first request fails slowly; every later one succeeds.
    let first = Arc::new(AtomicBool::new(true));
    let o = Origin::start(move |_| {
        if first.swap(false, Ordering::SeqCst) {
            Reply::ok("down")
                .status(503)
                .delay(Duration::from_millis(300))
        } else {
            Reply::ok("up").header("cache-control", "max-age=60")
        }
    })
    .await;
    let edge = Arc::new(host_for("f.test", &o).await);
    let leader = {
        let edge = edge.clone();
        tokio::spawn(async move { edge.get("f.test", "/x").await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut followers = Vec::new();
    for _ in 0..20 {
        let edge = edge.clone();
        followers.push(tokio::spawn(async move { edge.get("f.test", "/x").await }));
    }
    assert_eq!(
        leader.await.unwrap().status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    for f in followers {
        let got = f.await.unwrap();
        assert_eq!((got.status, got.text()), (StatusCode::OK, "up".to_owned()));
    }
}

/// An origin that answers `If-None-Match: "v1"` with 304 (and `x-version: 2`)
/// and everything else with `body` carrying `headers`; it counts both.
fn validating_origin(
    headers: &'static [(&'static str, &'static str)],
    not_modified: Arc<AtomicUsize>,
) -> impl Fn(&edge_e2e::Seen) -> Reply + Send + Sync + 'static {
    move |req| {
        let inm = req
            .headers
            .get("if-none-match")
            .map(|v| v.to_str().unwrap_or(""));
        let ims = req.headers.get("if-modified-since").is_some();
        if inm == Some("\"v1\"") || ims {
            not_modified.fetch_add(1, Ordering::SeqCst);
            return Reply::ok("")
                .status(304)
                .header("cache-control", "max-age=60")
                .header("x-version", "2");
        }
        headers
            .iter()
            .fold(Reply::ok("body"), |r, (n, v)| r.header(n, v))
    }
}

#[tokio::test]
async fn stale_objects_are_revalidated_with_their_validators() {
    for (name, validator) in [
        ("etag", ("etag", "\"v1\"")),
        ("lm", ("last-modified", "Tue, 01 Jan 2030 00:00:00 GMT")),
    ] {
        let not_modified = Arc::new(AtomicUsize::new(0));
        // Already stale on arrival (Age past max-age) but revalidatable.
        let headers: &'static [(&str, &str)] = Box::leak(Box::new([
            ("cache-control", "max-age=60"),
            ("age", "100"),
            validator,
        ]));
        let o = Origin::start(validating_origin(headers, not_modified.clone())).await;
        let alias = format!("{name}.test");
        let edge = host_for(&alias, &o).await;
        let first = edge.get(&alias, "/r").await;
        assert_eq!(first.cache(), "Miss", "{name}");
        let second = edge.get(&alias, "/r").await;
        assert_eq!(second.cache(), "RefreshHit", "{name}");
        assert_eq!(second.text(), "body", "{name}");
        assert_eq!(
            second.header("x-version"),
            Some("2"),
            "{name}: the 304's fields are kept"
        );
        let seen = o.last();
        match name {
            "etag" => assert_eq!(seen.headers["if-none-match"], "\"v1\""),
            _ => assert_eq!(seen.headers["if-modified-since"], validator.1),
        }
        // Refreshed by the 304 (max-age=60, no Age): a plain hit now.
        let third = edge.get(&alias, "/r").await;
        assert_eq!(third.cache(), "Hit", "{name}");
        assert_eq!(third.header("x-version"), Some("2"));
        assert_eq!(
            (o.hits(), not_modified.load(Ordering::SeqCst)),
            (2, 1),
            "{name}"
        );
    }
}

#[tokio::test]
async fn no_cache_is_stored_but_revalidated_on_every_use() {
    let not_modified = Arc::new(AtomicUsize::new(0));
    let o = Origin::start(validating_origin(
        &[("cache-control", "no-cache"), ("etag", "\"v1\"")],
        not_modified.clone(),
    ))
    .await;
    let edge = host_for("nc.test", &o).await;
    assert_eq!(edge.get("nc.test", "/").await.cache(), "Miss");
    for _ in 0..3 {
        let got = edge.get("nc.test", "/").await;
        // The 304 says max-age=60, but no-cache stays with the stored object.
        assert!(
            matches!(got.cache(), "RefreshHit" | "Hit"),
            "{}",
            got.cache()
        );
        assert_eq!(got.text(), "body");
    }
    assert!(not_modified.load(Ordering::SeqCst) >= 1);
}

#[tokio::test]
async fn stale_while_revalidate_serves_stale_and_refreshes_once_behind() {
    let version = Arc::new(AtomicUsize::new(1));
    let v = version.clone();
    let o = Origin::start(move |_| {
        let n = v.load(Ordering::SeqCst);
        let reply = Reply::ok(format!("v{n}")).delay(Duration::from_millis(100));
        if n == 1 {
            // Stale on arrival, usable for another minute while revalidated.
            reply
                .header("cache-control", "max-age=10, stale-while-revalidate=60")
                .header("age", "20")
        } else {
            reply.header("cache-control", "max-age=60")
        }
    })
    .await;
    let edge = host_for("swr.test", &o).await;
    assert_eq!(edge.get("swr.test", "/").await.text(), "v1");
    version.store(2, Ordering::SeqCst);
    for _ in 0..5 {
        let got = edge.get("swr.test", "/").await;
        assert_eq!((got.text(), got.cache()), ("v1".to_owned(), "Hit"));
    }
    // One background request refreshed it.
    let mut refreshed = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if edge.get("swr.test", "/").await.text() == "v2" {
            refreshed = true;
            break;
        }
    }
    assert!(refreshed, "the background revalidation never landed");
    assert_eq!(o.hits(), 2);
}

#[tokio::test]
async fn stale_if_error_serves_stale_when_the_origin_fails() {
    let failing = Arc::new(AtomicBool::new(false));
    let f = failing.clone();
    let o = Origin::start(move |req| {
        if f.load(Ordering::SeqCst) {
            return Reply::ok("broken").status(500);
        }
        let cc = if req.target.starts_with("/strict") {
            "max-age=10, stale-if-error=60, must-revalidate"
        } else {
            "max-age=10, stale-if-error=60"
        };
        Reply::ok("good")
            .header("cache-control", cc)
            .header("age", "20")
    })
    .await;
    let edge = host_for("sie.test", &o).await;
    for path in ["/lenient", "/strict"] {
        assert_eq!(edge.get("sie.test", path).await.text(), "good");
    }
    failing.store(true, Ordering::SeqCst);
    let got = edge.get("sie.test", "/lenient").await;
    assert_eq!(
        (got.status, got.text(), got.cache()),
        (StatusCode::OK, "good".to_owned(), "Hit")
    );
    // must-revalidate forbids it: the origin's error goes through.
    let got = edge.get("sie.test", "/strict").await;
    assert_eq!(got.status, StatusCode::INTERNAL_SERVER_ERROR);
    // An origin that is gone altogether: the stale copy again.
    let addr = o.addr;
    drop(o);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the origin still listens"
    );
    let got = edge.get("sie.test", "/lenient").await;
    assert_eq!(
        (got.status, got.text()),
        (StatusCode::OK, "good".to_owned())
    );
}

#[tokio::test]
async fn viewer_conditionals_are_answered_from_the_cache() {
    let o = Origin::fixed(
        "body",
        &[
            ("cache-control", "max-age=60"),
            ("etag", "\"v1\""),
            ("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT"),
        ],
    )
    .await;
    let edge = host_for("cond.test", &o).await;
    // A conditional miss: the cache fetches the whole object (the viewer's
    // validators are not forwarded) and answers 200.
    let miss = edge
        .request("GET", "cond.test", "/", &[("if-none-match", "\"v1\"")])
        .await;
    assert_eq!((miss.status, miss.cache()), (StatusCode::OK, "Miss"));
    assert!(!o.last().headers.contains_key("if-none-match"));
    for (name, value, status) in [
        ("if-none-match", "\"v1\"", 304),
        ("if-none-match", "W/\"v1\"", 304),
        ("if-none-match", "\"v0\", \"v1\"", 304),
        ("if-none-match", "*", 304),
        ("if-none-match", "\"v2\"", 200),
        ("if-modified-since", "Tue, 02 Jan 2024 00:00:00 GMT", 304),
        ("if-modified-since", "Sun, 31 Dec 2023 00:00:00 GMT", 200),
    ] {
        let got = edge
            .request("GET", "cond.test", "/", &[(name, value)])
            .await;
        assert_eq!(got.status.as_u16(), status, "{name}: {value}");
        assert_eq!(got.cache(), "Hit");
        if status == 304 {
            assert!(got.body.is_empty());
            assert_eq!(got.header("etag"), Some("\"v1\""));
        }
    }
    assert_eq!(o.hits(), 1);
}

#[tokio::test]
async fn ranges_are_served_from_a_stored_object() {
    let o = Origin::fixed(
        "0123456789",
        &[("cache-control", "max-age=60"), ("etag", "\"r1\"")],
    )
    .await;
    let edge = host_for("range.test", &o).await;
    // A range miss goes to the origin with its Range (this origin ignores it
    // and sends the whole object, which is stored).
    let miss = edge
        .request("GET", "range.test", "/f", &[("range", "bytes=0-1")])
        .await;
    assert_eq!(o.last().headers["range"], "bytes=0-1");
    assert_eq!(miss.status, StatusCode::OK);
    for (range, status, body, content_range) in [
        ("bytes=2-5", 206, "2345", Some("bytes 2-5/10")),
        ("bytes=-3", 206, "789", Some("bytes 7-9/10")),
        ("bytes=8-", 206, "89", Some("bytes 8-9/10")),
        ("bytes=20-", 416, "", Some("bytes */10")),
        ("bytes=0-1,3-4", 200, "0123456789", None),
    ] {
        let got = edge
            .request("GET", "range.test", "/f", &[("range", range)])
            .await;
        assert_eq!(got.status.as_u16(), status, "{range}");
        assert_eq!(got.text(), body, "{range}");
        assert_eq!(got.header("content-range"), content_range, "{range}");
        assert_eq!(got.cache(), "Hit");
    }
    // If-Range with another validator: the whole object.
    let got = edge
        .request(
            "GET",
            "range.test",
            "/f",
            &[("range", "bytes=0-1"), ("if-range", "\"other\"")],
        )
        .await;
    assert_eq!(
        (got.status, got.text()),
        (StatusCode::OK, "0123456789".to_owned())
    );
    let got = edge
        .request(
            "GET",
            "range.test",
            "/f",
            &[("range", "bytes=0-1"), ("if-range", "\"r1\"")],
        )
        .await;
    assert_eq!(
        (got.status, got.text()),
        (StatusCode::PARTIAL_CONTENT, "01".to_owned())
    );
    assert_eq!(o.hits(), 1);
}

#[tokio::test]
async fn variants_are_stored_per_vary_value() {
    let o = Origin::start(|req| {
        let lang = req
            .headers
            .get("accept-language")
            .map_or("none", |v| v.to_str().unwrap_or("?"))
            .to_owned();
        let vary = if req.target == "/star" {
            "*"
        } else {
            "Accept-Language"
        };
        Reply::ok(format!("in {lang}"))
            .header("cache-control", "max-age=60")
            .header("vary", vary)
    })
    .await;
    let edge = host_for("vary.test", &o).await;
    let get = |lang: Option<&'static str>, path: &'static str| {
        let edge = &edge;
        async move {
            let headers: Vec<(&str, &str)> = lang.iter().map(|l| ("accept-language", *l)).collect();
            edge.request("GET", "vary.test", path, &headers).await
        }
    };
    for round in ["Miss", "Hit"] {
        for lang in [Some("en"), Some("fr"), None] {
            let got = get(lang, "/page").await;
            assert_eq!(got.text(), format!("in {}", lang.unwrap_or("none")));
            assert_eq!(got.cache(), round, "{lang:?}");
        }
    }
    assert_eq!(o.hits(), 3);
    // Vary: * matches no later request: never stored.
    for _ in 0..2 {
        assert_eq!(get(Some("en"), "/star").await.cache(), "Miss");
    }
}

#[tokio::test]
async fn a_successful_write_invalidates_what_it_names() {
    let o = Origin::start(|req| {
        if req.method == "POST" {
            let location = if req.target == "/elsewhere" {
                "https://other.test/list"
            } else {
                "/list"
            };
            return Reply::ok("created")
                .status(201)
                .header("location", location);
        }
        if req.method == "DELETE" {
            return Reply::ok("refused").status(403);
        }
        Reply::ok(format!("{} {}", req.target, req.method)).header("cache-control", "max-age=60")
    })
    .await;
    let edge = host_for("write.test", &o).await;
    for path in ["/item", "/list"] {
        edge.get("write.test", path).await;
        assert_eq!(edge.get("write.test", path).await.cache(), "Hit");
    }
    // A refused write changes nothing.
    let refused = edge.request("DELETE", "write.test", "/item", &[]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(edge.get("write.test", "/item").await.cache(), "Hit");
    // A write to another host's Location leaves /list alone.
    edge.request("POST", "write.test", "/elsewhere", &[]).await;
    assert_eq!(edge.get("write.test", "/list").await.cache(), "Hit");
    // A successful POST: its URI and its same-host Location are refetched.
    let created = edge.request("POST", "write.test", "/item", &[]).await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(edge.get("write.test", "/item").await.cache(), "Miss");
    assert_eq!(edge.get("write.test", "/list").await.cache(), "Miss");
}

#[tokio::test]
async fn targeted_cache_control_is_for_the_cache_alone() {
    let o = Origin::start(|req| {
        let capability = req
            .headers
            .get("surrogate-capability")
            .map_or("", |v| v.to_str().unwrap_or(""))
            .to_owned();
        match req.target.as_str() {
            // The origin tells browsers not to store, and the CDN to keep it.
            "/cdn" => Reply::ok(capability)
                .header("cache-control", "no-store")
                .header("cdn-cache-control", "max-age=60"),
            "/surrogate" => Reply::ok(capability)
                .header("cache-control", "no-store")
                .header("surrogate-control", "max-age=60;edge"),
            _ => Reply::ok(capability)
                .header("cache-control", "max-age=60")
                .header("surrogate-control", "no-store"),
        }
    })
    .await;
    let edge = host_for("targeted.test", &o).await;
    for path in ["/cdn", "/surrogate"] {
        let first = edge.get("targeted.test", path).await;
        assert_eq!(
            first.text(),
            "edge=\"Surrogate/1.0\"",
            "the origin sees who it may target"
        );
        assert_eq!(
            first.header("cache-control"),
            Some("no-store"),
            "viewers get Cache-Control as sent"
        );
        assert!(
            first.header("surrogate-control").is_none(),
            "Surrogate-Control is for this cache alone"
        );
        assert_eq!(
            edge.get("targeted.test", path).await.cache(),
            "Hit",
            "{path}"
        );
    }
    edge.get("targeted.test", "/nostore").await;
    assert_eq!(edge.get("targeted.test", "/nostore").await.cache(), "Miss");
}

#[tokio::test]
async fn set_cookie_responses_are_stored_only_when_the_behavior_says_so() {
    let o = Origin::fixed(
        "personal",
        &[
            ("cache-control", "max-age=60"),
            ("set-cookie", "session=abc"),
        ],
    )
    .await;
    let edge = Edge::start().await;
    for (alias, store) in [("safe.test", false), ("rfc.test", true)] {
        let mut config = config_for(&[("o", &o)]);
        config["aliases"] = json!([alias]);
        config["default_cache_behavior"]["store_set_cookie"] = json!(store);
        edge.create(config).await;
        edge.get(alias, "/").await;
        let again = edge.get(alias, "/").await;
        assert_eq!(again.cache(), if store { "Hit" } else { "Miss" }, "{alias}");
        assert_eq!(again.header("set-cookie"), Some("session=abc"));
    }
}

#[tokio::test]
async fn malformed_age_and_bodiless_statuses() {
    let o = Origin::start(|req| match req.target.as_str() {
        "/age" => Reply::ok("old")
            .header("cache-control", "max-age=3600")
            .header("age", "7200, 0"),
        _ => Reply::ok("")
            .status(204)
            .header("cache-control", "max-age=60"),
    })
    .await;
    let edge = host_for("misc.test", &o).await;
    edge.get("misc.test", "/age").await;
    assert_eq!(
        edge.get("misc.test", "/age").await.cache(),
        "Miss",
        "a list in Age reads as stale"
    );
    assert_eq!(
        edge.get("misc.test", "/empty").await.status,
        StatusCode::NO_CONTENT
    );
    let again = edge.get("misc.test", "/empty").await;
    assert_eq!(
        (again.status, again.cache()),
        (StatusCode::NO_CONTENT, "Hit")
    );
}

#[tokio::test]
async fn a_pooled_connection_the_origin_closed_is_retried_on_a_new_one() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    // An origin that answers the first request of each connection and closes
    // the connection, unanswered, when a second request comes on it: the
    // keep-alive race, every time.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let count = connections.clone();
    let server = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncache-control: no-store\r\n\r\nok")
                    .await;
                let _ = stream.read(&mut buf).await;
                // Second request: close without a word.
            });
        }
    });
    let edge = Edge::start().await;
    edge.create(json!({
        "aliases": ["race.test"],
        "origins": [{"id": "o", "domain_name": addr.to_string(), "protocol": "http"}],
        "default_cache_behavior": {"target_origin_id": "o"},
    }))
    .await;
    for i in 0..5 {
        let got = edge.get("race.test", &format!("/{i}")).await;
        assert_eq!(
            (got.status, got.text()),
            (StatusCode::OK, "ok".to_owned()),
            "request {i}"
        );
    }
    assert!(connections.load(Ordering::SeqCst) >= 5);
    server.abort();
}

#[tokio::test]
async fn sequential_misses_reuse_a_handful_of_origin_connections() {
    let o = Origin::fixed("fresh", &[("cache-control", "no-store")]).await;
    let edge = host_for("pool.test", &o).await;
    for i in 0..1000 {
        let got = edge.get("pool.test", &format!("/{i}")).await;
        assert_eq!(got.status, StatusCode::OK);
    }
    assert_eq!(o.hits(), 1000);
    assert!(
        o.connections() <= 4,
        "1,000 misses opened {} connections",
        o.connections()
    );
}

/// Changing an origin's address under the same id (a new backend) never
/// serves what the old address answered: the cache key holds where the
/// target points, so no invalidation is needed, and moving back finds the
/// old objects again if they are still fresh.
#[tokio::test]
async fn an_origin_moved_to_a_new_address_is_never_answered_from_the_old_ones_objects() {
    let old = Origin::fixed("old backend", &[("cache-control", "max-age=3600")]).await;
    let new = Origin::fixed("new backend", &[("cache-control", "max-age=3600")]).await;
    let edge = Edge::start().await;
    let config = |origin: &Origin, path: &str| {
        json!({
            "aliases": ["moved.example.com"],
            "origins": [{"id": "web", "domain_name": origin.domain(), "protocol": "http", "origin_path": path}],
            "default_cache_behavior": {"target_origin_id": "web"},
        })
    };
    let created = edge.create(config(&old, "")).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let mut etag = created["etag"].as_str().unwrap().to_owned();
    let id = id.as_str();
    for expected in ["Miss", "Hit"] {
        let got = edge.get("moved.example.com", "/page").await;
        assert_eq!(
            (got.text().as_str(), got.cache()),
            ("old backend", expected)
        );
    }
    let put = |body: serde_json::Value, tag: String| {
        let edge = &edge;
        let path = format!("/v1/distributions/{id}/config");
        async move {
            let got = edge
                .api("PUT", &path, Some(body), &[("if-match", &tag)])
                .await;
            assert_eq!(got.status, StatusCode::OK, "{}", got.text());
            got.header("etag").unwrap().to_owned()
        }
    };
    etag = put(config(&new, ""), etag).await;
    let got = edge.get("moved.example.com", "/page").await;
    assert_eq!((got.text().as_str(), got.cache()), ("new backend", "Miss"));
    // A changed origin_path is another place too.
    etag = put(config(&new, "/v2"), etag).await;
    let got = edge.get("moved.example.com", "/page").await;
    assert_eq!(got.cache(), "Miss");
    put(config(&old, ""), etag).await;
    let got = edge.get("moved.example.com", "/page").await;
    assert_eq!((got.text().as_str(), got.cache()), ("old backend", "Hit"));
}

#[tokio::test]
async fn origin_request_forwards_what_the_key_leaves_out_and_shares_one_object() {
    let origin = Origin::start(|seen| {
        let cookie = seen
            .headers
            .get("cookie")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        Reply::ok(format!("{} {cookie}", seen.target)).header("cache-control", "max-age=60")
    })
    .await;
    let edge = Edge::start().await;
    let mut config = config_for(&[("o", &origin)]);
    config["aliases"] = json!(["api.test"]);
    config["default_cache_behavior"]["cache_key"] =
        json!({"query_strings": "none", "cookies": ["lang"]});
    config["default_cache_behavior"]["origin_request"] =
        json!({"query_strings": "all", "cookies": ["session"]});
    edge.create(config).await;

    let cookies = [("cookie", "session=s1; lang=fr; other=x")];
    let first = edge
        .request("GET", "api.test", "/items?page=1", &cookies)
        .await;
    assert_eq!(first.cache(), "Miss");
    // The query and the named cookies reach the origin, in the key's order
    // and then the policy's; a cookie neither names does not.
    assert_eq!(first.text(), "/items?page=1 lang=fr; session=s1");
    assert_eq!(origin.last().target, "/items?page=1");

    // Neither the query nor `session` is in the key: one object for both.
    let cookies = [("cookie", "session=s2; lang=fr")];
    let second = edge
        .request("GET", "api.test", "/items?page=2", &cookies)
        .await;
    assert_eq!(second.cache(), "Hit");
    assert_eq!(second.text(), "/items?page=1 lang=fr; session=s1");
    assert_eq!(origin.hits(), 1);
    // `lang` is: another value is another object.
    let cookies = [("cookie", "lang=de")];
    let third = edge
        .request("GET", "api.test", "/items?page=3", &cookies)
        .await;
    assert_eq!(third.cache(), "Miss");
    assert_eq!(third.text(), "/items?page=3 lang=de");
}

/// RFC 9111 5.1: an `Age` that is not delta-seconds is ignored (the
/// response is as fresh as its `max-age` says), a list or repeated lines
/// use the first value, and a value past 2^31 still means stale.
#[tokio::test]
async fn an_invalid_age_is_ignored_and_a_list_uses_its_first_value() {
    let o = Origin::start(|req| {
        let reply = Reply::ok("aged").header("cache-control", "max-age=3600");
        match req.target.as_str() {
            "/abc" => reply.header("age", "abc"),
            "/negative" => reply.header("age", "-7200"),
            "/fraction" => reply.header("age", "7200.0"),
            "/list" => reply.header("age", "10, 7200"),
            "/lines" => reply.header("age", "10").header("age", "7200"),
            "/huge" => reply.header("age", "99999999999999999999"),
            _ => reply,
        }
    })
    .await;
    let edge = host_for("age.test", &o).await;
    for path in ["/abc", "/negative", "/fraction", "/list", "/lines"] {
        edge.get("age.test", path).await;
        assert_eq!(edge.get("age.test", path).await.cache(), "Hit", "{path}");
    }
    edge.get("age.test", "/huge").await;
    assert_eq!(edge.get("age.test", "/huge").await.cache(), "Miss");
}

#[tokio::test]
async fn cdn_cache_control_that_is_not_a_structured_dictionary_is_ignored() {
    let o = Origin::start(|req| {
        // Cache-Control tells every cache not to store; CDN-Cache-Control
        // would override it for this one, when it is valid.
        let (cache_control, cdn) = match req.target.as_str() {
            "/unknown-type" => ("no-store", "max-age=10000, &&&&&"),
            "/wrong-type" => ("no-store", "max-age=\"10000\""),
            "/negative" => ("no-store", "max-age=-1"),
            "/valid" => ("no-store", "foobar, max-age=10000"),
            // Ignored, it leaves Cache-Control to decide.
            _ => ("max-age=60", "max-age=10000, &&&&&"),
        };
        Reply::ok("body")
            .header("cache-control", cache_control)
            .header("cdn-cache-control", cdn)
    })
    .await;
    let edge = host_for("sf.test", &o).await;
    for (path, second) in [
        ("/unknown-type", "Miss"),
        ("/wrong-type", "Miss"),
        ("/negative", "Miss"),
        ("/valid", "Hit"),
        ("/cache-control", "Hit"),
    ] {
        let first = edge.get("sf.test", path).await;
        assert_eq!(
            (first.status, first.cache()),
            (StatusCode::OK, "Miss"),
            "{path}"
        );
        assert!(
            first.header("cdn-cache-control").is_some(),
            "{path}: viewers get the field as sent"
        );
        assert_eq!(edge.get("sf.test", path).await.cache(), second, "{path}");
    }
    assert_eq!(o.hits(), 3 * 2 + 2);
}

/// How [`FaultyOrigin`] answers, as the test switches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Each path's response (`v1`, with the fields [`FaultyOrigin`] lists).
    None,
    /// Reads the request head, then closes the connection without a word.
    Drop,
    /// Reads the request head, then says nothing.
    Hang,
    /// `503 Service Unavailable`, with no freshness of its own.
    Busy,
}

/// An origin at the byte level whose faults the test switches; every
/// response closes its connection. It records the `If-None-Match` of each
/// request it reads, by path.
struct FaultyOrigin {
    addr: std::net::SocketAddr,
    fault: Arc<std::sync::Mutex<Fault>>,
    conditionals: Arc<std::sync::Mutex<Vec<(String, String)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultyOrigin {
    async fn start() -> Self {
        use tokio::io::AsyncWriteExt as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let fault = Arc::new(std::sync::Mutex::new(Fault::None));
        let conditionals = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (f, seen) = (fault.clone(), conditionals.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (fault, seen) = (f.clone(), seen.clone());
                tokio::spawn(async move {
                    let Some(head) = edge_e2e::read_request_head(&mut stream).await else {
                        return;
                    };
                    let path = head.split(' ').nth(1).unwrap_or("").to_owned();
                    if let Some(etag) = head.lines().find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("if-none-match")
                            .then(|| value.trim().to_owned())
                    }) {
                        seen.lock()
                            .expect("not poisoned")
                            .push((path.clone(), etag));
                    }
                    let fault = *fault.lock().expect("not poisoned");
                    let fields = match path.trim_start_matches("/off") {
                        "/validated" => "cache-control: max-age=1\r\netag: \"v1\"",
                        "/must-revalidate" => "cache-control: max-age=1, must-revalidate",
                        "/proxy-revalidate" => "cache-control: max-age=1, proxy-revalidate",
                        "/s-maxage" => "cache-control: s-maxage=1",
                        "/no-cache" => "cache-control: no-cache\r\netag: \"v1\"",
                        _ => "cache-control: max-age=1",
                    };
                    let reply = match fault {
                        Fault::None => format!(
                            "HTTP/1.1 200 OK\r\n{fields}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nv1"
                        ),
                        Fault::Busy => "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\nconnection: close\r\n\r\nbusy".to_owned(),
                        Fault::Hang => {
                            tokio::time::sleep(Duration::from_secs(10)).await;
                            return;
                        }
                        Fault::Drop => return,
                    };
                    let _ = stream.write_all(reply.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Self {
            addr,
            fault,
            conditionals,
            task,
        }
    }

    fn set(&self, fault: Fault) {
        *self.fault.lock().expect("not poisoned") = fault;
    }

    /// The `If-None-Match` values `path` was requested with so far.
    fn conditionals(&self, path: &str) -> Vec<String> {
        let seen = self.conditionals.lock().expect("not poisoned");
        seen.iter()
            .filter(|(p, _)| p == path)
            .map(|(_, etag)| etag.clone())
            .collect()
    }

    /// Stops listening: connecting is refused from now on.
    async fn close(&self) {
        self.task.abort();
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(self.addr).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the origin still listens");
    }
}

#[tokio::test]
async fn a_stale_object_is_served_while_the_origin_cannot_be_reached() {
    let origin = FaultyOrigin::start().await;
    let edge = Edge::start().await;
    edge.create(json!({
        "aliases": ["outage.test"],
        "origins": [{"id": "o", "domain_name": origin.addr.to_string(), "protocol": "http",
                     "connect_timeout_ms": 500, "read_timeout_ms": 300}],
        "default_cache_behavior": {"target_origin_id": "o"},
        "cache_behaviors": [{"path_pattern": "/off/*", "target_origin_id": "o",
                             "serve_stale_on_error": false}],
    }))
    .await;
    // Served stale: no validator (kept for outages all the same), and one
    // the cache revalidates first.
    let lenient = ["/plain", "/validated"];
    // Never served stale: by its directives, or by its behavior.
    let strict = [
        "/must-revalidate",
        "/proxy-revalidate",
        "/s-maxage",
        "/no-cache",
        "/off/plain",
        "/off/validated",
    ];
    for path in lenient.iter().chain(&strict) {
        let got = edge.get("outage.test", path).await;
        assert_eq!(
            (got.status, got.text(), got.cache()),
            (StatusCode::OK, "v1".to_owned(), "Miss"),
            "{path}"
        );
    }
    // All stale now (max-age=1).
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let stale_then_error = |fault: Fault, error: StatusCode| {
        let edge = &edge;
        let origin = &origin;
        async move {
            for path in lenient {
                let before = origin.conditionals(path).len();
                let got = edge.get("outage.test", path).await;
                assert_eq!(
                    (got.status, got.text(), got.cache()),
                    (StatusCode::OK, "v1".to_owned(), "Hit"),
                    "{fault:?} {path}"
                );
                assert!(got.header("age").is_some(), "{fault:?} {path}");
                assert!(
                    got.header("warning").is_none(),
                    "{fault:?} {path}: RFC 9111 has no Warning"
                );
                if path == "/validated" && fault != Fault::None {
                    assert!(
                        origin.conditionals(path).len() > before,
                        "{fault:?}: the revalidation was sent"
                    );
                }
            }
            for path in strict {
                let got = edge.get("outage.test", path).await;
                assert_eq!(
                    (got.status, got.cache()),
                    (error, "Error"),
                    "{fault:?} {path}: {}",
                    got.text()
                );
            }
        }
    };
    // Dropped before a response head, then no answer in time.
    origin.set(Fault::Drop);
    stale_then_error(Fault::Drop, StatusCode::BAD_GATEWAY).await;
    origin.set(Fault::Hang);
    stale_then_error(Fault::Hang, StatusCode::GATEWAY_TIMEOUT).await;
    // With the stored object's own validator (a connection dropped before
    // its head is tried once more on a new one).
    let sent = origin.conditionals("/validated");
    assert!(sent.iter().all(|etag| etag == "\"v1\""), "{sent:?}");

    // An answer, even a 5xx, is not an outage: without stale-if-error it
    // goes through.
    origin.set(Fault::Busy);
    let got = edge.get("outage.test", "/plain").await;
    assert_eq!(
        (got.status, got.text()),
        (StatusCode::SERVICE_UNAVAILABLE, "busy".to_owned())
    );

    // Refused: the stale copies once more.
    origin.close().await;
    stale_then_error(Fault::None, StatusCode::BAD_GATEWAY).await;
}

/// Reads one HTTP/1.1 response (head and a `content-length` body) from
/// `stream`, keeping what follows in `buf`.
async fn next_response(stream: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> String {
    use tokio::io::AsyncReadExt as _;
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                let whole: Vec<u8> = buf.drain(..end + 4 + length).collect();
                return String::from_utf8_lossy(&whole).into_owned();
            }
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("a response in time")
            .expect("read");
        assert!(
            n > 0,
            "the connection closed: {}",
            String::from_utf8_lossy(buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn an_origins_early_hints_reach_the_viewer_first_and_are_never_stored() {
    use tokio::io::AsyncWriteExt as _;
    // An origin that sends 103 Early Hints at once, and its final answer
    // only when the test says so.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let go = Arc::new(tokio::sync::Notify::new());
    let release = go.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let release = release.clone();
            tokio::spawn(async move {
                while let Some(head) = edge_e2e::read_request_head(&mut stream).await {
                    let path = head.split(' ').nth(1).unwrap_or("").to_owned();
                    let hints =
                        "HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n";
                    if path == "/together" {
                        // The hint and the answer in one write.
                        let both = format!(
                            "{hints}HTTP/1.1 200 OK\r\ncache-control: no-store\r\ncontent-length: 4\r\n\r\npage"
                        );
                        if stream.write_all(both.as_bytes()).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    if stream.write_all(hints.as_bytes()).await.is_err() {
                        return;
                    }
                    release.notified().await;
                    let cache = if path == "/page" {
                        "max-age=60"
                    } else {
                        "no-store"
                    };
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\ncache-control: {cache}\r\ncontent-length: 4\r\n\r\npage"
                    );
                    if stream.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let edge = Edge::start().await;
    edge.create(json!({
        "aliases": ["hints.test"],
        "origins": [{"id": "o", "domain_name": addr.to_string(), "protocol": "http"}],
        "default_cache_behavior": {"target_origin_id": "o"},
    }))
    .await;

    let mut viewer = tokio::net::TcpStream::connect(edge.viewer)
        .await
        .expect("connect");
    let mut buf = Vec::new();
    for path in ["/page", "/fresh", "/fresh"] {
        viewer
            .write_all(format!("GET {path} HTTP/1.1\r\nhost: hints.test\r\n\r\n").as_bytes())
            .await
            .expect("send");
        // The hint arrives while the origin still holds its answer back.
        let hint = next_response(&mut viewer, &mut buf).await;
        assert_eq!(
            hint, "HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n",
            "{path}"
        );
        go.notify_one();
        let page = next_response(&mut viewer, &mut buf).await;
        assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
        assert!(page.ends_with("\r\n\r\npage"), "{page}");
    }
    // A hint that came with its answer still goes first.
    viewer
        .write_all(b"GET /together HTTP/1.1\r\nhost: hints.test\r\n\r\n")
        .await
        .expect("send");
    let hint = next_response(&mut viewer, &mut buf).await;
    assert!(hint.starts_with("HTTP/1.1 103 Early Hints\r\n"), "{hint}");
    let page = next_response(&mut viewer, &mut buf).await;
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");

    // A stored answer comes alone: the hint was not stored with it.
    viewer
        .write_all(b"GET /page HTTP/1.1\r\nhost: hints.test\r\n\r\n")
        .await
        .expect("send");
    let hit = next_response(&mut viewer, &mut buf).await;
    assert!(hit.starts_with("HTTP/1.1 200 OK\r\n"), "{hit}");
    assert!(hit.to_ascii_lowercase().contains("x-cache: hit"), "{hit}");

    // An HTTP/1.0 viewer gets no 1xx (RFC 9110 15.2).
    let mut old = tokio::net::TcpStream::connect(edge.viewer)
        .await
        .expect("connect");
    old.write_all(b"GET /fresh HTTP/1.0\r\nhost: hints.test\r\n\r\n")
        .await
        .expect("send");
    tokio::time::sleep(Duration::from_millis(200)).await;
    go.notify_one();
    let mut buf = Vec::new();
    let page = next_response(&mut old, &mut buf).await;
    assert!(page.starts_with("HTTP/1.0 200 OK\r\n"), "{page}");
}

#[tokio::test]
async fn a_viewer_that_expects_100_continue_gets_one_and_its_body_goes_through() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    // An origin that honours `Expect: 100-continue` itself, then echoes.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Some(head) = edge_e2e::read_request_head(&mut stream).await else {
                    return;
                };
                if head.to_ascii_lowercase().contains("expect: 100-continue") {
                    let _ = stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await;
                }
                let mut body = [0u8; 5];
                let body_start = head.split_once("\r\n\r\n").map_or("", |(_, b)| b).len();
                if stream.read_exact(&mut body[body_start..]).await.is_err() {
                    return;
                }
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\n{}",
                    String::from_utf8_lossy(&body)
                );
                let _ = stream.write_all(reply.as_bytes()).await;
            });
        }
    });
    let edge = Edge::start().await;
    edge.create(json!({
        "aliases": ["continue.test"],
        "origins": [{"id": "o", "domain_name": addr.to_string(), "protocol": "http"}],
        "default_cache_behavior": {"target_origin_id": "o"},
    }))
    .await;
    let mut viewer = tokio::net::TcpStream::connect(edge.viewer)
        .await
        .expect("connect");
    viewer
        .write_all(b"POST /upload HTTP/1.1\r\nhost: continue.test\r\ncontent-length: 5\r\nexpect: 100-continue\r\n\r\n")
        .await
        .expect("send");
    // The body is held back until the 100 comes.
    let mut buf = Vec::new();
    let first = next_response(&mut viewer, &mut buf).await;
    assert_eq!(first, "HTTP/1.1 100 Continue\r\n\r\n");
    viewer.write_all(b"hello").await.expect("send the body");
    let answer = next_response(&mut viewer, &mut buf).await;
    // One 100 only: the origin's own is not passed on as a second.
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nhello"), "{answer}");
}
