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
