//! The disk tier end to end: a restarted host serves its hits from disk,
//! objects memory let go are served from disk, damaged or cut files are
//! misses with the right body, and purges reach the disk and outlive a
//! restart.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use edge_e2e::{Edge, Origin, Reply, eventually, json};
use http::StatusCode;

const ALIAS: &str = "disk.example.com";

/// An origin answering `object <path>`, cacheable for an hour, tagged
/// `t-<path>` and varying on `accept-language` under `/lang`, that counts
/// the requests for each path.
async fn counting_origin() -> (Origin, Arc<Mutex<HashMap<String, usize>>>) {
    let counts = Arc::new(Mutex::new(HashMap::new()));
    let seen = counts.clone();
    let origin = Origin::start(move |req| {
        *seen
            .lock()
            .expect("counts")
            .entry(req.target.clone())
            .or_insert(0) += 1;
        let mut body = format!("object {}", req.target);
        let mut reply = Reply::ok("")
            .header("cache-control", "max-age=3600")
            .header(
                "surrogate-key",
                &format!("t-{}", req.target.trim_start_matches('/')),
            );
        if req.target.starts_with("/lang") {
            let lang = req
                .headers
                .get("accept-language")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none")
                .to_owned();
            body = format!("{body} in {lang}");
            reply = reply.header("vary", "accept-language");
        }
        Reply {
            body: body.into(),
            ..reply
        }
    })
    .await;
    (origin, counts)
}

/// A host whose cache keeps its objects under `cache` too, with
/// `memory` bytes of memory tier.
async fn host(data: Option<tempfile::TempDir>, cache: &Path, memory: u64) -> Edge {
    let tweak = |opts: &mut edge::HostOptions| {
        opts.cache_dir = Some(cache.to_owned());
        opts.cache_bytes = memory;
    };
    match data {
        Some(dir) => Edge::start_in(dir, tweak).await,
        None => Edge::start_with(tweak).await,
    }
}

async fn get(edge: &Edge, path: &str, lang: Option<&str>) -> (String, String) {
    let headers: Vec<(&str, &str)> = lang.map(|l| ("accept-language", l)).into_iter().collect();
    let got = edge.request("GET", ALIAS, path, &headers).await;
    assert_eq!(got.status, StatusCode::OK, "{path}: {}", got.text());
    (got.cache().to_owned(), got.text())
}

fn fetched(counts: &Mutex<HashMap<String, usize>>, path: &str) -> usize {
    counts
        .lock()
        .expect("counts")
        .get(path)
        .copied()
        .unwrap_or(0)
}

/// The tier's file whose body is `body`, if there is one.
fn find_file(cache: &Path, body: &str) -> Option<PathBuf> {
    for shard in std::fs::read_dir(cache.join("objects")).ok()?.flatten() {
        for file in std::fs::read_dir(shard.path()).ok()?.flatten() {
            let path = file.path();
            if std::fs::read(&path).is_ok_and(|b| b.ends_with(body.as_bytes())) {
                return Some(path);
            }
        }
    }
    None
}

fn file_of(cache: &Path, body: &str) -> PathBuf {
    find_file(cache, body).unwrap_or_else(|| panic!("no file holds {body:?}"))
}

/// Waits until the tier has written the file whose body is `body`.
async fn on_disk(cache: &Path, body: &str) -> PathBuf {
    let found = eventually(std::time::Duration::from_secs(10), || async {
        find_file(cache, body).is_some()
    })
    .await;
    assert!(found, "{body:?} never reached the disk");
    file_of(cache, body)
}

#[tokio::test]
async fn a_restarted_host_serves_its_hits_from_disk() {
    let (origin, counts) = counting_origin().await;
    let cache = tempfile::tempdir().expect("cache dir");
    let edge = host(None, cache.path(), 256 << 20).await;
    edge.create(json!({
        "aliases": [ALIAS],
        "origins": [{"id": "o", "domain_name": origin.domain(), "protocol": "http"}],
        "default_cache_behavior": {"target_origin_id": "o"},
    }))
    .await;
    assert_eq!(get(&edge, "/a", None).await.0, "Miss");
    assert_eq!(
        get(&edge, "/lang", Some("en")).await,
        ("Miss".to_owned(), "object /lang in en".to_owned())
    );
    assert_eq!(get(&edge, "/lang", Some("fr")).await.0, "Miss");
    on_disk(cache.path(), "object /a").await;
    on_disk(cache.path(), "object /lang in en").await;
    on_disk(cache.path(), "object /lang in fr").await;
    let data = edge.stop().await;

    // Same data dir (the config), same cache dir: hits at once, variants too.
    let edge = host(Some(data), cache.path(), 256 << 20).await;
    assert_eq!(
        get(&edge, "/a", None).await,
        ("Hit".to_owned(), "object /a".to_owned())
    );
    assert_eq!(
        get(&edge, "/lang", Some("fr")).await,
        ("Hit".to_owned(), "object /lang in fr".to_owned())
    );
    assert_eq!(
        get(&edge, "/lang", Some("en")).await,
        ("Hit".to_owned(), "object /lang in en".to_owned())
    );
    assert_eq!(get(&edge, "/lang", Some("de")).await.0, "Miss");
    assert_eq!(fetched(&counts, "/a"), 1);
    assert_eq!(fetched(&counts, "/lang"), 3);
    assert!(edge.metric("edge_cache_disk_hits_total").await >= 3);
    assert_eq!(edge.metric("edge_cache_disk_objects").await, 4);
}

#[tokio::test]
async fn what_memory_lets_go_is_served_from_disk_and_damage_is_a_miss() {
    let (origin, counts) = counting_origin().await;
    let cache = tempfile::tempdir().expect("cache dir");
    // A memory tier too small to keep anything.
    let edge = host(None, cache.path(), 1).await;
    edge.create(json!({
        "aliases": [ALIAS],
        "origins": [{"id": "o", "domain_name": origin.domain(), "protocol": "http"}],
        "default_cache_behavior": {"target_origin_id": "o"},
    }))
    .await;
    for path in ["/x", "/flip", "/cut", "/late"] {
        assert_eq!(get(&edge, path, None).await.0, "Miss");
        on_disk(cache.path(), &format!("object {path}")).await;
    }
    assert_eq!(
        get(&edge, "/x", None).await,
        ("Hit".to_owned(), "object /x".to_owned())
    );
    assert_eq!(fetched(&counts, "/x"), 1);

    // A byte flipped under a running host: a miss, and the right body.
    let flip = file_of(cache.path(), "object /flip");
    let mut bytes = std::fs::read(&flip).expect("read");
    let at = bytes.len() - 2;
    bytes[at] ^= 0x01;
    std::fs::write(&flip, bytes).expect("damage");
    assert_eq!(
        get(&edge, "/flip", None).await,
        ("Miss".to_owned(), "object /flip".to_owned())
    );
    assert_eq!(fetched(&counts, "/flip"), 2);
    assert_eq!(edge.metric("edge_cache_disk_corrupt_total").await, 1);

    // Files cut short and zeroed while the host is down: misses after it
    // starts again, with the right bodies; the others are hits.
    let data = edge.stop().await;
    let cut = file_of(cache.path(), "object /cut");
    let bytes = std::fs::read(&cut).expect("read");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("cut");
    let late = file_of(cache.path(), "object /late");
    let len = std::fs::metadata(&late).expect("stat").len();
    std::fs::write(&late, vec![0u8; usize::try_from(len).expect("small")]).expect("zero");
    let edge = host(Some(data), cache.path(), 1).await;
    assert_eq!(
        get(&edge, "/cut", None).await,
        ("Miss".to_owned(), "object /cut".to_owned())
    );
    assert_eq!(
        get(&edge, "/late", None).await,
        ("Miss".to_owned(), "object /late".to_owned())
    );
    assert_eq!(
        get(&edge, "/x", None).await,
        ("Hit".to_owned(), "object /x".to_owned())
    );
    assert_eq!(
        (fetched(&counts, "/cut"), fetched(&counts, "/late")),
        (2, 2)
    );
}

#[tokio::test]
async fn purges_reach_the_disk_and_outlive_a_restart() {
    let (origin, counts) = counting_origin().await;
    let cache = tempfile::tempdir().expect("cache dir");
    let edge = host(None, cache.path(), 256 << 20).await;
    let created = edge
        .create(json!({
            "aliases": [ALIAS],
            "origins": [{"id": "o", "domain_name": origin.domain(), "protocol": "http"}],
            "default_cache_behavior": {"target_origin_id": "o"},
        }))
        .await;
    let id = created["id"].as_str().expect("id").to_owned();
    for path in ["/tagged", "/img/1", "/kept"] {
        get(&edge, path, None).await;
        on_disk(cache.path(), &format!("object {path}")).await;
    }
    let got = edge
        .api(
            "POST",
            &format!("/v1/distributions/{id}/invalidations"),
            Some(json!({"tags": ["t-tagged"], "paths": ["/img/*"]})),
            &[],
        )
        .await;
    assert_eq!(got.status, StatusCode::CREATED, "{}", got.text());
    let data = edge.stop().await;

    let edge = host(Some(data), cache.path(), 256 << 20).await;
    assert_eq!(get(&edge, "/tagged", None).await.0, "Miss");
    assert_eq!(get(&edge, "/img/1", None).await.0, "Miss");
    assert_eq!(get(&edge, "/kept", None).await.0, "Hit");
    assert_eq!(
        (
            fetched(&counts, "/tagged"),
            fetched(&counts, "/img/1"),
            fetched(&counts, "/kept")
        ),
        (2, 2, 1)
    );
}

#[tokio::test]
async fn a_large_object_is_streamed_from_its_file_ranges_too() {
    let body: String = (0..(3 << 20) / 8).map(|i| format!("{i:07}\n")).collect();
    let sent = body.clone();
    let origin =
        Origin::start(move |_| Reply::ok(sent.clone()).header("cache-control", "max-age=3600"))
            .await;
    let cache = tempfile::tempdir().expect("cache dir");
    let edge = host(None, cache.path(), 256 << 20).await;
    edge.create(json!({
        "aliases": [ALIAS],
        "origins": [{"id": "o", "domain_name": origin.domain(), "protocol": "http"}],
        "default_cache_behavior": {"target_origin_id": "o"},
    }))
    .await;
    let got = edge.get(ALIAS, "/big").await;
    assert_eq!((got.status, got.cache()), (StatusCode::OK, "Miss"));
    let file = on_disk(cache.path(), &body[body.len() - 64..]).await;
    let data = edge.stop().await;

    let edge = host(Some(data), cache.path(), 256 << 20).await;
    let got = edge.get(ALIAS, "/big").await;
    assert_eq!((got.status, got.cache()), (StatusCode::OK, "Hit"));
    assert_eq!(got.text(), body);
    let part = edge
        .request("GET", ALIAS, "/big", &[("range", "bytes=8-23")])
        .await;
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.text(), &body[8..24]);
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 8-23/{}", body.len()).as_str())
    );
    assert_eq!(origin.hits(), 1);

    // Damaged under the running host: a miss, whole and right.
    let mut bytes = std::fs::read(&file).expect("read");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&file, bytes).expect("damage");
    let got = edge.get(ALIAS, "/big").await;
    assert_eq!((got.status, got.cache()), (StatusCode::OK, "Miss"));
    assert_eq!(got.text(), body);
    assert_eq!(origin.hits(), 2);
}
