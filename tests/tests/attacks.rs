//! Attacks from hostile viewers and origins, each reproduced against a
//! running host: the probe is sent, and what the host did with it is checked
//! at the origin and on what a later, clean viewer gets.

use bytes::Bytes;
use edge_e2e::{Edge, Got, Origin, Reply, config_for, json};
use http::{Request, StatusCode};
use http_body_util::Full;

/// `u64::MAX` seconds, the largest delta-seconds a naive parser accepts.
const HUGE: &str = "18446744073709551615";

/// A viewer GET that reports a dropped connection instead of panicking.
async fn try_get(edge: &Edge, host: &str, path: &str) -> Result<Got, String> {
    let req = Request::builder()
        .uri(format!("http://{}{path}", edge.viewer))
        .header("host", host)
        .body(Full::new(Bytes::new()))
        .expect("request");
    edge.client.try_send(req).await
}

#[tokio::test]
async fn overflowing_delta_seconds_from_an_origin_saturate_instead_of_panicking() {
    let big = || format!("max-age=60, stale-while-revalidate={HUGE}");
    // Each probe: a path, and the response fields the origin sends for it.
    let probes: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("/swr", vec![("cache-control", big())]),
        (
            "/sie",
            vec![(
                "cache-control",
                format!("max-age=60, stale-if-error={HUGE}"),
            )],
        ),
        (
            "/max-age",
            vec![
                ("cache-control", format!("max-age={HUGE}")),
                ("etag", "\"v\"".to_owned()),
            ],
        ),
        (
            "/s-maxage",
            vec![
                ("cache-control", format!("s-maxage={HUGE}")),
                ("etag", "\"v\"".to_owned()),
            ],
        ),
        (
            "/age",
            vec![("cache-control", big()), ("age", HUGE.to_owned())],
        ),
        ("/cdn", vec![("cdn-cache-control", big())]),
        (
            "/surrogate",
            vec![(
                "surrogate-control",
                format!("max-age=60;edge, stale-if-error={HUGE}"),
            )],
        ),
    ];
    let table = probes.clone();
    let origin = Origin::start(move |seen| {
        let fields = table
            .iter()
            .find(|(path, _)| *path == seen.target)
            .map(|(_, fields)| fields.clone())
            .unwrap_or_default();
        fields.iter().fold(
            Reply::ok(format!("body of {}", seen.target)),
            |r, (n, v)| r.header(n, v),
        )
    })
    .await;
    let edge = Edge::start().await;
    let mut config = config_for(&[("web", &origin)]);
    config["aliases"] = json!(["overflow.test"]);
    // The largest TTLs a config can name, so the origin's values are not
    // clamped away before the arithmetic.
    config["default_cache_behavior"]["max_ttl"] = json!(u64::MAX);
    edge.create(config).await;

    let mut failed = Vec::new();
    for (path, _) in &probes {
        for round in ["first", "second"] {
            match try_get(&edge, "overflow.test", path).await {
                Ok(got)
                    if got.status == StatusCode::OK && got.text() == format!("body of {path}") =>
                {
                    if round == "second" && got.cache() != "Hit" {
                        failed.push(format!("{path}: second request {}", got.cache()));
                    }
                    let age = got.header("age").map(|a| a.parse::<u64>());
                    if round == "second" && !matches!(age, Some(Ok(a)) if a <= 1 << 31) {
                        failed.push(format!("{path}: Age {age:?} is not within 2^31"));
                    }
                }
                Ok(got) => failed.push(format!("{path} ({round}): {} {}", got.status, got.text())),
                Err(err) => failed.push(format!("{path} ({round}): {err}")),
            }
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
    // Each probe is fetched once; `/age` arrived already older than its
    // lifetime, so its hit was served stale while one background request
    // revalidated it.
    let hits = origin.hits();
    assert!(
        (probes.len()..=probes.len() + 1).contains(&hits),
        "{hits} origin requests for {} probes",
        probes.len()
    );
}

#[tokio::test]
async fn a_get_or_head_with_a_body_is_refused_and_never_reaches_the_cache() {
    // An origin that answers with what it was sent, cacheably.
    let origin = Origin::start(|seen| {
        Reply::ok(format!("body=[{}]", String::from_utf8_lossy(&seen.body)))
            .header("cache-control", "max-age=60")
    })
    .await;
    let edge = Edge::start().await;
    let mut config = config_for(&[("web", &origin)]);
    config["aliases"] = json!(["fat.test"]);
    edge.create(config).await;

    for method in ["GET", "HEAD"] {
        let fat = edge
            .request_with_body(
                method,
                "fat.test",
                "/page",
                &[],
                Bytes::from_static(b"poison"),
            )
            .await;
        assert_eq!(fat.status, StatusCode::BAD_REQUEST, "{method}");
        if method == "GET" {
            assert_eq!(fat.error_code(), "RequestBodyNotAllowed");
        }
    }
    assert_eq!(origin.hits(), 0, "a fat request reached the origin");
    let clean = edge.get("fat.test", "/page").await;
    assert_eq!(
        (clean.status, clean.text()),
        (StatusCode::OK, "body=[]".to_owned())
    );
    assert_eq!(clean.cache(), "Miss");
    assert!(origin.last().body.is_empty());
    // An empty body is no body: `Content-Length: 0` is served.
    let empty = edge
        .request("GET", "fat.test", "/page", &[("content-length", "0")])
        .await;
    assert_eq!((empty.status, empty.cache()), (StatusCode::OK, "Hit"));
    assert_eq!(empty.text(), "body=[]");
}
