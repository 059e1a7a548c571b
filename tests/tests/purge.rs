//! Purging by tag and soft purges: what an origin's `Surrogate-Key` and
//! `Cache-Tag` fields name, an invalidation drops (or marks stale), and
//! viewers never see the fields unless the behavior keeps them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use edge_e2e::{Edge, Origin, Reply, Value, config_for, json};
use http::StatusCode;

/// An origin whose answers name tags by path: `/a` with `Surrogate-Key`,
/// `/b` with `Cache-Tag`, `/c` with none; each body counts the origin's
/// requests so a refetch shows.
async fn tagging_origin() -> Origin {
    let served = Arc::new(AtomicUsize::new(0));
    Origin::start(move |req| {
        let n = served.fetch_add(1, Ordering::SeqCst) + 1;
        let reply =
            Reply::ok(format!("{} #{n}", req.target)).header("cache-control", "max-age=3600");
        match req.target.as_str() {
            "/a" => reply.header("surrogate-key", "product-1 all"),
            "/b" => reply.header("cache-tag", "product-2, all"),
            _ => reply,
        }
    })
    .await
}

async fn invalidate(edge: &Edge, id: &str, body: Value) -> Value {
    let got = edge
        .api(
            "POST",
            &format!("/v1/distributions/{id}/invalidations"),
            Some(body.clone()),
            &[],
        )
        .await;
    assert_eq!(got.status, StatusCode::CREATED, "{body}: {}", got.text());
    got.json()
}

#[tokio::test]
async fn objects_are_purged_by_the_tags_their_responses_named() {
    let origin = tagging_origin().await;
    let edge = Edge::start().await;
    let mut config = config_for(&[("o", &origin)]);
    config["aliases"] = json!(["tags.test"]);
    let id = edge.create(config.clone()).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    // A second distribution on the same origin, the same tags.
    config["aliases"] = json!(["other.test"]);
    edge.create(config).await;

    for path in ["/a", "/b", "/c"] {
        for host in ["tags.test", "other.test"] {
            let miss = edge.get(host, path).await;
            assert_eq!(miss.cache(), "Miss");
            // The tags are the operator's: stripped from what viewers get.
            assert_eq!(miss.header("surrogate-key"), None, "{path}");
            assert_eq!(miss.header("cache-tag"), None, "{path}");
            let hit = edge.get(host, path).await;
            assert_eq!(hit.cache(), "Hit");
            assert_eq!(hit.header("surrogate-key"), None, "{path}");
        }
    }

    let inv = invalidate(&edge, &id, json!({"tags": ["product-1"]})).await;
    assert_eq!(
        (&inv["status"], &inv["dropped"], &inv["tags"], &inv["soft"]),
        (
            &json!("Completed"),
            &json!(1),
            &json!(["product-1"]),
            &json!(false)
        )
    );
    assert_eq!(edge.get("tags.test", "/a").await.cache(), "Miss");
    assert_eq!(edge.get("tags.test", "/b").await.cache(), "Hit");
    assert_eq!(edge.get("tags.test", "/c").await.cache(), "Hit");

    // `all` is on both /a (as stored again) and /b, from either field.
    let inv = invalidate(&edge, &id, json!({"tags": ["all"]})).await;
    assert_eq!(inv["dropped"], 2);
    for (path, cache) in [("/a", "Miss"), ("/b", "Miss"), ("/c", "Hit")] {
        assert_eq!(edge.get("tags.test", path).await.cache(), cache, "{path}");
    }
    // Tags are per distribution: the other one's objects stay.
    for path in ["/a", "/b", "/c"] {
        assert_eq!(edge.get("other.test", path).await.cache(), "Hit", "{path}");
    }
    // Paths and tags in one invalidation; a tag nothing carries matches nothing.
    let inv = invalidate(
        &edge,
        &id,
        json!({"paths": ["/c"], "tags": ["product-2", "nothing"]}),
    )
    .await;
    assert_eq!(inv["dropped"], 2);
    assert_eq!(edge.get("tags.test", "/b").await.cache(), "Miss");
    assert_eq!(edge.get("tags.test", "/c").await.cache(), "Miss");

    let path = format!("/v1/distributions/{id}/invalidations");
    for body in [
        json!({}),
        json!({"tags": []}),
        json!({"tags": [" padded"]}),
        json!({"tags": ["a,b"]}),
        json!({"tags": "one"}),
        json!({"tags": ["x"], "soft": "yes"}),
    ] {
        let got = edge.api("POST", &path, Some(body.clone()), &[]).await;
        assert_eq!(got.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(got.error_code(), "InvalidArgument", "{body}");
    }
    let list = edge.api("GET", &path, None, &[]).await.json();
    assert_eq!(list["quantity"], 3);
    assert_eq!(list["items"][0]["tags"], json!(["product-2", "nothing"]));
    assert_eq!(list["items"][0]["paths"], json!(["/c"]));
}

#[tokio::test]
async fn a_behavior_may_keep_the_tag_fields_for_its_viewers() {
    let origin = tagging_origin().await;
    let edge = Edge::start().await;
    let mut config = config_for(&[("o", &origin)]);
    config["aliases"] = json!(["keep.test"]);
    config["default_cache_behavior"]["keep_tag_headers"] = json!(true);
    let id = edge.create(config).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    for cache in ["Miss", "Hit"] {
        let got = edge.get("keep.test", "/a").await;
        assert_eq!(got.cache(), cache);
        assert_eq!(got.header("surrogate-key"), Some("product-1 all"));
        let got = edge.get("keep.test", "/b").await;
        assert_eq!(got.header("cache-tag"), Some("product-2, all"));
    }
    // Kept or not, the tags index the objects.
    assert_eq!(
        invalidate(&edge, &id, json!({"tags": ["all"]})).await["dropped"],
        2
    );
}

#[tokio::test]
async fn a_soft_purge_marks_objects_stale_and_their_next_use_revalidates() {
    let conditional = Arc::new(AtomicUsize::new(0));
    let version = Arc::new(AtomicUsize::new(1));
    let (seen, v) = (conditional.clone(), version.clone());
    let origin = Origin::start(move |req| {
        let n = v.load(Ordering::SeqCst);
        let etag = format!("\"v{n}\"");
        let matches = req
            .headers
            .get("if-none-match")
            .is_some_and(|inm| inm.as_bytes() == etag.as_bytes());
        if req.headers.contains_key("if-none-match") {
            seen.fetch_add(1, Ordering::SeqCst);
        }
        let reply = if matches {
            Reply::ok("").status(304)
        } else {
            Reply::ok(format!("{} v{n}", req.target))
        };
        let reply = reply.header("etag", &etag).header("surrogate-key", "page");
        match req.target.as_str() {
            // Servable stale for a minute while a background request
            // revalidates it.
            "/swr" => reply.header("cache-control", "max-age=3600, stale-while-revalidate=60"),
            _ => reply.header("cache-control", "max-age=3600"),
        }
    })
    .await;
    let edge = Edge::start().await;
    let mut config = config_for(&[("o", &origin)]);
    config["aliases"] = json!(["soft.test"]);
    let id = edge.create(config).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    for path in ["/plain", "/swr"] {
        assert_eq!(edge.get("soft.test", path).await.cache(), "Miss");
        assert_eq!(edge.get("soft.test", path).await.cache(), "Hit");
    }

    let inv = invalidate(&edge, &id, json!({"tags": ["page"], "soft": true})).await;
    assert_eq!((&inv["dropped"], &inv["soft"]), (&json!(2), &json!(true)));
    // Unchanged at the origin: the soft-purged object is revalidated, not
    // fetched whole, and is fresh again after.
    let got = edge.get("soft.test", "/plain").await;
    assert_eq!(
        (got.cache(), got.text()),
        ("RefreshHit", "/plain v1".to_owned())
    );
    assert_eq!(conditional.load(Ordering::SeqCst), 1);
    assert_eq!(edge.get("soft.test", "/plain").await.cache(), "Hit");

    // Changed at the origin: within stale-while-revalidate the stale copy
    // answers at once, and one request behind it brings the new one.
    version.store(2, Ordering::SeqCst);
    let inv = invalidate(&edge, &id, json!({"paths": ["/swr"], "soft": true})).await;
    assert_eq!(inv["dropped"], 1);
    let got = edge.get("soft.test", "/swr").await;
    assert_eq!((got.cache(), got.text()), ("Hit", "/swr v1".to_owned()));
    let mut refreshed = false;
    for _ in 0..100 {
        if edge.get("soft.test", "/swr").await.text() == "/swr v2" {
            refreshed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        refreshed,
        "the revalidation behind the stale answer never landed"
    );
    // The soft purge left /plain alone (it was named by neither).
    assert_eq!(edge.get("soft.test", "/plain").await.cache(), "Hit");

    // A hard purge after a soft one drops it: the next request is a Miss.
    invalidate(&edge, &id, json!({"tags": ["page"], "soft": true})).await;
    invalidate(&edge, &id, json!({"tags": ["page"]})).await;
    assert_eq!(edge.get("soft.test", "/plain").await.cache(), "Miss");
}
