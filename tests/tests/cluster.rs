//! A cache cluster of three hosts on one real etcd: each object is fetched
//! from the origin once for the whole cluster, tags travel with what a
//! member passes on, a distribution without `cluster` keeps its own cache,
//! and a member that dies mid-run costs viewers nothing.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use edge_e2e::{Edge, Etcd, Origin, Reply, Value, eventually, json};
use http::StatusCode;

/// How long a change may take to reach every host.
const PROPAGATION: Duration = Duration::from_secs(10);

async fn member(etcd: &Etcd, id: &str) -> Edge {
    Edge::start_with(|opts| {
        etcd.configure(opts, id);
        opts.cluster_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    })
    .await
}

/// An origin answering `object <path>`, cacheable for an hour and tagged
/// `obj-<path>`, that counts the requests for each path.
async fn counting_origin() -> (Origin, Arc<Mutex<HashMap<String, usize>>>) {
    let counts = Arc::new(Mutex::new(HashMap::new()));
    let seen = counts.clone();
    let origin = Origin::start(move |req| {
        *seen
            .lock()
            .expect("counts")
            .entry(req.target.clone())
            .or_insert(0) += 1;
        let tag = format!("obj-{}", req.target.trim_start_matches('/'));
        Reply::ok(format!("object {}", req.target))
            .header("cache-control", "max-age=3600")
            .header("surrogate-key", &tag)
    })
    .await;
    (origin, counts)
}

fn site(alias: &str, origin: &Origin, cluster: bool) -> Value {
    json!({
        "aliases": [alias],
        "origins": [{"id": "web", "domain_name": origin.domain(), "protocol": "http"}],
        "default_cache_behavior": {"target_origin_id": "web"},
        "cluster": cluster,
    })
}

/// GETs `path` of `alias` through `edge` and checks the object came whole.
async fn fetch(edge: &Edge, alias: &str, path: &str) -> String {
    let got = edge.get(alias, path).await;
    assert_eq!(got.status, StatusCode::OK, "{path}: {}", got.text());
    assert_eq!(got.text(), format!("object {path}"));
    got.cache().to_owned()
}

fn total(counts: &Mutex<HashMap<String, usize>>) -> usize {
    counts.lock().expect("counts").values().sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_fetch_each_object_once_and_outlive_a_member() {
    let etcd = Etcd::start().await;
    let (a, b, c) = (
        member(&etcd, "a").await,
        member(&etcd, "b").await,
        member(&etcd, "c").await,
    );
    let (origin, counts) = counting_origin().await;
    let created = a.create(site("shared.example.com", &origin, true)).await;
    let id = created["id"].as_str().expect("id").to_owned();
    for edge in [&a, &b, &c] {
        assert!(
            eventually(PROPAGATION, || async {
                edge.get("shared.example.com", "/warm-up").await.status == StatusCode::OK
            })
            .await,
            "a member never served the distribution"
        );
        assert!(
            eventually(PROPAGATION, || async {
                edge.metric("edge_cluster_members").await == 3
            })
            .await,
            "a member never saw the other two"
        );
    }

    // 300 objects, each through every member: the origin sees each once.
    // (The owner of an object another member asked for first holds it
    // already: a Hit there.)
    let before = total(&counts);
    for i in 0..300 {
        let path = format!("/object/{i}");
        assert_eq!(fetch(&a, "shared.example.com", &path).await, "Miss");
        fetch(&b, "shared.example.com", &path).await;
        fetch(&c, "shared.example.com", &path).await;
    }
    assert_eq!(
        total(&counts) - before,
        300,
        "origin requests for 900 misses"
    );
    assert!(
        counts
            .lock()
            .expect("counts")
            .iter()
            .filter(|(path, _)| path.starts_with("/object/"))
            .all(|(_, n)| *n == 1)
    );
    for edge in [&a, &b, &c] {
        // Each member asked the others for their keys and answered for its own.
        assert!(edge.metric("edge_cluster_asked_total").await >= 100);
        assert!(edge.metric("edge_cluster_served_total").await >= 100);
        assert_eq!(edge.metric("edge_cluster_fallbacks_total").await, 0);
        // And now holds every object itself.
        assert_eq!(fetch(edge, "shared.example.com", "/object/7").await, "Hit");
    }

    // The tags came with what the owner passed on: a tag purge through one
    // member empties every member, and the object is fetched once again.
    let created = b
        .api(
            "POST",
            &format!("/v1/distributions/{id}/invalidations"),
            Some(json!({"tags": ["obj-object/7"]})),
            &[],
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let location = created.header("location").expect("location").to_owned();
    assert!(
        eventually(PROPAGATION, || async {
            b.api("GET", &location, None, &[]).await.json()["status"] == "Completed"
        })
        .await
    );
    // Only the owner, when another member asked first, may say Hit.
    let mut misses = 0;
    for edge in [&a, &b, &c] {
        misses += usize::from(fetch(edge, "shared.example.com", "/object/7").await == "Miss");
    }
    assert!(misses >= 2, "a member kept its purged copy");
    assert_eq!(counts.lock().expect("counts")["/object/7"], 2);

    // A distribution without `cluster` keeps each member's cache its own.
    let (alone, alone_counts) = counting_origin().await;
    a.create(site("alone.example.com", &alone, false)).await;
    for edge in [&a, &b, &c] {
        assert!(
            eventually(PROPAGATION, || async {
                edge.get("alone.example.com", "/x").await.status == StatusCode::OK
            })
            .await
        );
    }
    assert_eq!(alone_counts.lock().expect("counts")["/x"], 3);

    // C dies mid-run while viewers loop through A and B over new objects:
    // no viewer request fails, and C's keys go to A and B.
    let progress = Arc::new(AtomicUsize::new(0));
    let loop_on = |edge: Edge| {
        let progress = progress.clone();
        tokio::spawn(async move {
            for i in 0..300 {
                let path = format!("/late/{i}");
                let got = edge.get("shared.example.com", &path).await;
                assert_eq!(got.status, StatusCode::OK, "{path}: {}", got.text());
                assert_eq!(got.text(), format!("object {path}"));
                progress.fetch_add(1, Ordering::Relaxed);
            }
            edge
        })
    };
    let (a, b) = (loop_on(a), loop_on(b));
    assert!(
        eventually(PROPAGATION, || async {
            progress.load(Ordering::Relaxed) >= 150
        })
        .await
    );
    c.crash().await;
    let (a, b) = (
        a.await.expect("viewers on A"),
        b.await.expect("viewers on B"),
    );
    assert!(progress.load(Ordering::Relaxed) == 600);
    // Some asks went to C after it died, and were fetched from the origin.
    assert!(
        a.metric("edge_cluster_fallbacks_total").await
            + b.metric("edge_cluster_fallbacks_total").await
            > 0
    );
    let late = counts
        .lock()
        .expect("counts")
        .iter()
        .filter(|(path, _)| path.starts_with("/late/"))
        .map(|(_, n)| *n)
        .collect::<Vec<_>>();
    assert_eq!(late.len(), 300);
    for edge in [&a, &b] {
        assert!(
            eventually(PROPAGATION, || async {
                edge.metric("edge_cluster_members").await == 2
            })
            .await,
            "C's lease ended but a member still counts it"
        );
    }
    // With C gone from the list, the survivors share every key again.
    let before = total(&counts);
    for i in 0..60 {
        let path = format!("/after/{i}");
        fetch(&a, "shared.example.com", &path).await;
        fetch(&b, "shared.example.com", &path).await;
    }
    assert_eq!(total(&counts) - before, 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_object_is_revalidated_once_for_the_cluster() {
    let etcd = Etcd::start().await;
    let (a, b, c) = (
        member(&etcd, "a").await,
        member(&etcd, "b").await,
        member(&etcd, "c").await,
    );
    let counts = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
    let seen = counts.clone();
    let origin = Origin::start(move |req| {
        let mut counts = seen.lock().expect("counts");
        let n = counts.entry(req.target.clone()).or_insert(0);
        *n += 1;
        Reply::ok(format!("v{n}"))
            .header("cache-control", "max-age=1, stale-while-revalidate=60")
            .header("etag", &format!("\"v{n}\""))
    })
    .await;
    a.create(site("swr.example.com", &origin, true)).await;
    for edge in [&a, &b, &c] {
        assert!(
            eventually(PROPAGATION, || async {
                edge.get("swr.example.com", "/warm-up").await.status == StatusCode::OK
                    && edge.metric("edge_cluster_members").await == 3
            })
            .await
        );
    }
    let requests = |path: &'static str| {
        let counts = counts.clone();
        move || {
            counts
                .lock()
                .expect("counts")
                .get(path)
                .copied()
                .unwrap_or(0)
        }
    };
    let page = requests("/page");
    for edge in [&a, &b, &c] {
        assert_eq!(edge.get("swr.example.com", "/page").await.text(), "v1");
    }
    assert_eq!(page(), 1);

    // Stale everywhere: each member answers at once from its cache (stale,
    // or the owner refreshed already) and revalidates in the background
    // through the owner, which asks the origin once.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    for edge in [&a, &b, &c] {
        let got = edge.get("swr.example.com", "/page").await;
        assert_eq!(got.cache(), "Hit");
        assert!(
            ["v1", "v2"].contains(&got.text().as_str()),
            "{}",
            got.text()
        );
    }
    assert!(
        eventually(PROPAGATION, || async {
            let mut fresh = 0;
            for edge in [&a, &b, &c] {
                fresh += usize::from(edge.get("swr.example.com", "/page").await.text() == "v2");
            }
            fresh == 3
        })
        .await,
        "the members never all served the revalidated object"
    );
    assert_eq!(
        page(),
        2,
        "origin requests for the page, revalidation included"
    );
}
