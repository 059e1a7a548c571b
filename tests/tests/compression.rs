//! Compression at the edge: brotli, zstd and gzip by the viewer's
//! `Accept-Encoding`, one stored copy per encoding for what compresses and
//! one for all for what does not, ranges and validators, streamed bodies,
//! and behaviors that keep bodies as the origin sent them.

use std::io::Read as _;

use edge_e2e::{Edge, Got, Origin, Reply, json};
use http::StatusCode;

/// A page that compresses well, over the 1,000-byte floor.
fn page() -> String {
    (0..800)
        .map(|i| format!("<p>paragraph {} of the page</p>\n", i % 37))
        .collect()
}

fn decode(got: &Got) -> Vec<u8> {
    let body = &got.body[..];
    let mut out = Vec::new();
    match got.header("content-encoding") {
        None => out.extend_from_slice(body),
        Some("br") => {
            brotli::Decompressor::new(body, 4096)
                .read_to_end(&mut out)
                .expect("brotli");
        }
        Some("zstd") => out = zstd::decode_all(body).expect("zstd"),
        Some("gzip") => {
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .expect("gzip");
        }
        Some(other) => panic!("an encoding the test does not read: {other}"),
    }
    out
}

/// An origin for every case: a page, an image, a small text, a body it
/// gzipped itself, and a long text streamed without a length.
async fn origin() -> Origin {
    Origin::start(|req| match req.target.as_str() {
        "/page.html" => Reply::ok(page())
            .header("content-type", "text/html; charset=utf-8")
            .header("etag", "\"v1\"")
            .header("cache-control", "max-age=60"),
        "/logo.png" => Reply::ok(vec![7u8; 5_000])
            .header("content-type", "image/png")
            .header("cache-control", "max-age=60"),
        "/small.txt" => Reply::ok("tiny")
            .header("content-type", "text/plain")
            .header("cache-control", "max-age=60"),
        "/gzipped.js" => Reply::ok(&b"\x1f\x8b pretend gzip"[..])
            .header("content-type", "application/javascript")
            .header("content-encoding", "gzip")
            .header("cache-control", "max-age=60"),
        "/stream.txt" => Reply::ok("")
            .stream(300_000)
            .header("content-type", "text/plain")
            .header("cache-control", "no-store"),
        _ => Reply::ok("?").status(404),
    })
    .await
}

const ALL: &str = "gzip, deflate, br, zstd";

#[tokio::test]
async fn responses_are_compressed_for_each_viewer_and_stored_per_encoding() {
    let o = origin().await;
    let edge = Edge::start().await;
    let created = edge
        .create(json!({
            "aliases": ["zip.test"],
            "origins": [{"id": "o", "domain_name": o.domain(), "protocol": "http"}],
            "default_cache_behavior": {"target_origin_id": "o"},
        }))
        .await;
    // A new distribution compresses; the config says so.
    assert_eq!(
        created["config"]["default_cache_behavior"]["compress"],
        true
    );
    let get = |path: &'static str, accept: &'static str| {
        let edge = &edge;
        async move {
            let fields: Vec<(&str, &str)> = if accept.is_empty() {
                Vec::new()
            } else {
                vec![("accept-encoding", accept)]
            };
            edge.request("GET", "zip.test", path, &fields).await
        }
    };

    // Each viewer gets the best encoding it accepts, decoding to the page.
    for (accept, encoding) in [
        (ALL, Some("br")),
        ("gzip, zstd", Some("zstd")),
        ("gzip", Some("gzip")),
        ("", None),
        ("deflate", None),
    ] {
        let got = get("/page.html", accept).await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.header("content-encoding"), encoding, "{accept:?}");
        assert_eq!(got.header("vary"), Some("accept-encoding"), "{accept:?}");
        assert_eq!(decode(&got), page().as_bytes(), "{accept:?}");
        if encoding.is_some() {
            assert!(
                got.body.len() < page().len() / 4,
                "{accept:?}: {}",
                got.body.len()
            );
            assert_eq!(got.header("etag"), Some("W/\"v1\""));
        } else {
            assert_eq!(got.header("etag"), Some("\"v1\""));
        }
    }
    // Four encodings (identity twice), four stored copies; the origin was
    // asked for each in its own name.
    assert_eq!(o.hits(), 4);
    let asked: Vec<String> = o
        .seen()
        .iter()
        .map(|s| {
            s.headers
                .get("accept-encoding")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_owned()
        })
        .collect();
    assert_eq!(asked, ["br", "zstd", "gzip", "identity"]);
    // From the cache, as stored.
    let hit = get("/page.html", "br;q=1, gzip;q=0.5").await;
    assert_eq!(
        (hit.cache(), hit.header("content-encoding")),
        ("Hit", Some("br"))
    );
    assert_eq!(decode(&hit), page().as_bytes());
    let hit = get("/page.html", "gzip").await;
    assert_eq!(
        (hit.cache(), hit.header("content-encoding")),
        ("Hit", Some("gzip"))
    );
    assert_eq!(o.hits(), 4);

    // A conditional request is answered from the cache with the encoded
    // copy's weak tag.
    let not_modified = edge
        .request(
            "GET",
            "zip.test",
            "/page.html",
            &[("accept-encoding", ALL), ("if-none-match", "W/\"v1\"")],
        )
        .await;
    assert_eq!(not_modified.status, StatusCode::NOT_MODIFIED);
    // A range applies to the identity bytes, whatever the viewer accepts.
    let ranged = edge
        .request(
            "GET",
            "zip.test",
            "/page.html",
            &[("accept-encoding", ALL), ("range", "bytes=0-9")],
        )
        .await;
    assert_eq!(ranged.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(ranged.header("content-encoding"), None);
    assert_eq!(&ranged.body[..], &page().as_bytes()[..10]);
    // A HEAD says what a GET would get.
    let head = edge
        .request(
            "HEAD",
            "zip.test",
            "/page.html",
            &[("accept-encoding", "gzip")],
        )
        .await;
    assert_eq!(head.header("content-encoding"), Some("gzip"));

    // What does not compress is neither compressed nor varied, and is
    // stored once for every viewer.
    for path in ["/logo.png", "/small.txt", "/gzipped.js"] {
        let before = o.hits();
        let first = get(path, ALL).await;
        let second = get(path, "gzip").await;
        assert_eq!(first.header("vary"), None, "{path}");
        assert_eq!(second.cache(), "Hit", "{path}");
        assert_eq!(o.hits(), before + 1, "{path}");
        assert_eq!(first.body, second.body, "{path}");
    }
    // The origin's own encoding passes as it is.
    let gzipped = get("/gzipped.js", ALL).await;
    assert_eq!(gzipped.header("content-encoding"), Some("gzip"));
    assert_eq!(&gzipped.body[..], b"\x1f\x8b pretend gzip");

    // A body without a length is compressed as it streams.
    let streamed = get("/stream.txt", "gzip").await;
    assert_eq!(streamed.header("content-encoding"), Some("gzip"));
    let plain = decode(&streamed);
    assert_eq!(plain.len(), 300_000);
    assert!(plain.iter().all(|b| *b == 0));
    assert!(streamed.body.len() < 30_000, "{}", streamed.body.len());
}

#[tokio::test]
async fn a_behavior_without_compress_passes_bodies_as_the_origin_sent_them() {
    let o = origin().await;
    let edge = Edge::start().await;
    let created = edge
        .create(json!({
            "aliases": ["plain.test"],
            "origins": [{"id": "o", "domain_name": o.domain(), "protocol": "http"}],
            "default_cache_behavior": {"target_origin_id": "o", "compress": false},
            "cache_behaviors": [{"path_pattern": "/stream*", "target_origin_id": "o"}],
        }))
        .await;
    assert_eq!(
        created["config"]["default_cache_behavior"]["compress"],
        false
    );
    assert_eq!(created["config"]["cache_behaviors"][0]["compress"], true);
    let got = edge
        .request(
            "GET",
            "plain.test",
            "/page.html",
            &[("accept-encoding", ALL)],
        )
        .await;
    assert_eq!(got.header("content-encoding"), None);
    assert_eq!(got.header("vary"), None);
    assert_eq!(got.text(), page());
    assert_eq!(
        o.last()
            .headers
            .get("accept-encoding")
            .map(|v| v.to_str().ok()),
        Some(Some(ALL)),
        "the viewer's own Accept-Encoding"
    );
    let streamed = edge
        .request(
            "GET",
            "plain.test",
            "/stream.txt",
            &[("accept-encoding", "br")],
        )
        .await;
    assert_eq!(streamed.header("content-encoding"), Some("br"));

    // A config replaced without the field (as stored before it existed)
    // is off: only a new distribution gets it on.
    let id = created["id"].as_str().expect("an id");
    let etag = edge
        .api("GET", &format!("/v1/distributions/{id}/config"), None, &[])
        .await
        .header("etag")
        .expect("an ETag")
        .to_owned();
    let replaced = edge
        .api(
            "PUT",
            &format!("/v1/distributions/{id}/config"),
            Some(json!({
                "aliases": ["plain.test"],
                "origins": [{"id": "o", "domain_name": o.domain(), "protocol": "http"}],
                "default_cache_behavior": {"target_origin_id": "o"},
            })),
            &[("if-match", &etag)],
        )
        .await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.text());
    assert!(
        replaced.json()["config"]["default_cache_behavior"]
            .get("compress")
            .is_none()
    );
    let got = edge
        .request(
            "GET",
            "plain.test",
            "/page.html?again",
            &[("accept-encoding", ALL)],
        )
        .await;
    assert_eq!(got.header("content-encoding"), None);
}
