//! Faults survived under load, with the figures printed: config churn and
//! alias moves while viewers loop.

use edge_e2e::{Edge, Got, Load, Origin, Reply, Value, json};
use http::StatusCode;

fn site(aliases: &[&str], origin_id: &str, origin: &Origin) -> Value {
    json!({
        "aliases": aliases,
        "origins": [{"id": origin_id, "domain_name": origin.domain(), "protocol": "http"}],
        "default_cache_behavior": {"target_origin_id": origin_id},
    })
}

fn etag(got: &Got) -> String {
    got.header("etag").expect("an ETag").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_churn_and_alias_moves_under_load_fail_no_viewer() {
    const PUTS: usize = 1000;
    const MOVES: usize = 200;
    const VIEWERS: usize = 50;
    let blue = Origin::start(|_| Reply::ok("blue").header("cache-control", "max-age=60")).await;
    let green = Origin::start(|_| Reply::ok("green").header("cache-control", "max-age=60")).await;
    let edge = Edge::start().await;
    let a = edge.create(site(&["www.example.com"], "blue", &blue)).await;
    let b = edge.create(site(&[], "green", &green)).await;
    let (a_id, b_id) = (
        a["id"].as_str().expect("id").to_owned(),
        b["id"].as_str().expect("id").to_owned(),
    );
    let loads: Vec<Load> = (0..VIEWERS)
        .map(|_| Load::start(&edge, "www.example.com", "/"))
        .collect();

    let started = std::time::Instant::now();
    let mut tags = [
        a["etag"].as_str().expect("etag").to_owned(),
        b["etag"].as_str().expect("etag").to_owned(),
    ];
    let mut alias_on_a = true;
    for i in 0..PUTS {
        // Alternate A between the blue and green origins (each its own cache key).
        let config = if i % 2 == 0 {
            site(
                if alias_on_a {
                    &["www.example.com"]
                } else {
                    &[]
                },
                "green",
                &green,
            )
        } else {
            site(
                if alias_on_a {
                    &["www.example.com"]
                } else {
                    &[]
                },
                "blue",
                &blue,
            )
        };
        let got = edge
            .api(
                "PUT",
                &format!("/v1/distributions/{a_id}/config"),
                Some(config),
                &[("if-match", &tags[0])],
            )
            .await;
        assert_eq!(got.status, StatusCode::OK, "PUT {i}: {}", got.text());
        tags[0] = etag(&got);
        if i % (PUTS / MOVES) == 0 {
            let to = if alias_on_a { &b_id } else { &a_id };
            let got = edge
                .api(
                    "POST",
                    &format!("/v1/distributions/{to}/associate-alias"),
                    Some(json!({"alias": "www.example.com"})),
                    &[],
                )
                .await;
            assert_eq!(got.status, StatusCode::OK, "move {i}: {}", got.text());
            alias_on_a = !alias_on_a;
            // Both ETags change in a move.
            for (slot, id) in [(0, &a_id), (1, &b_id)] {
                let current = edge
                    .api("GET", &format!("/v1/distributions/{id}"), None, &[])
                    .await;
                tags[slot] = etag(&current);
            }
        }
    }
    let writing = started.elapsed();

    let mut total = 0;
    let mut failures = Vec::new();
    let mut bodies = std::collections::BTreeMap::<String, usize>::new();
    for load in loads {
        let report = load.stop().await;
        total += report.total;
        failures.extend(report.failures);
        for (body, n) in report.bodies {
            *bodies.entry(body).or_default() += n;
        }
    }
    eprintln!(
        "churn: {PUTS} PUTs and {MOVES} alias moves in {writing:.1?} while {VIEWERS} viewers sent {total} requests: {} failed, bodies {bodies:?}",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{:?}",
        &failures[..failures.len().min(5)]
    );
    assert!(
        bodies.keys().all(|b| b == "blue" || b == "green"),
        "a mixed response: {bodies:?}"
    );
    assert!(total > VIEWERS, "the viewers barely ran: {total}");
}

/// The process's resident memory (MiB), from /proc.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The latencies of `n` sequential requests (µs, sorted) and how many failed.
async fn sample(edge: &Edge, host: &str, n: usize) -> (Vec<u128>, usize) {
    let mut latencies = Vec::with_capacity(n);
    let mut failed = 0;
    for _ in 0..n {
        let started = std::time::Instant::now();
        let got = edge.get(host, "/").await;
        latencies.push(started.elapsed().as_micros());
        if got.status != StatusCode::OK {
            failed += 1;
        }
    }
    latencies.sort_unstable();
    (latencies, failed)
}

fn p99(sorted: &[u128]) -> u128 {
    sorted[(sorted.len() - 1) * 99 / 100]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faulty_hooks_fail_only_their_own_requests() {
    const RUNS: usize = 1000;
    const WORKERS: usize = 4;
    // (mode, the status every such request must get)
    let faults: [(&str, u16); 6] = [
        ("panic", 502),
        ("loop", 503),
        ("alloc", 503),
        ("recurse", 502),
        ("bad-header", 502),
        ("bad-status", 502),
    ];
    let origin = Origin::start(|_| Reply::ok("fine")).await;
    let edge = std::sync::Arc::new(Edge::start().await);
    edge.upload_hook("faulty", edge_e2e::examples::MISBEHAVE)
        .await;
    edge.create(site(&["ok.example.com"], "web", &origin)).await;
    for (mode, _) in faults {
        let mut config = site(&[&format!("{mode}.example.com")], "web", &origin);
        config["default_cache_behavior"]["hooks"] =
            json!({"viewer_request": {"module": "faulty", "config": {"viewer_request": mode}}});
        edge.create(config).await;
    }
    let mut config = site(&["healthy.example.com"], "web", &origin);
    config["default_cache_behavior"]["hooks"] = json!({"viewer_request": {"module": "faulty"}});
    edge.create(config).await;
    let (baseline, failed) = sample(&edge, "ok.example.com", 2000).await;
    assert_eq!(failed, 0);
    let rss_before = rss_mib();

    // The same load through a hook that does nothing wrong: what the load
    // alone costs the normal traffic.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let busy: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (edge, stop) = (edge.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    assert_eq!(edge.get("healthy.example.com", "/").await.status, 200);
                }
            })
        })
        .collect();
    let (loaded, failed) = sample(&edge, "ok.example.com", 2000).await;
    assert_eq!(failed, 0);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for b in busy {
        b.await.expect("healthy viewer");
    }

    // Normal traffic alongside the faults.
    let normal = {
        let edge = edge.clone();
        tokio::spawn(async move { sample(&edge, "ok.example.com", 4000).await })
    };
    let started = std::time::Instant::now();
    for (mode, expected) in faults {
        let workers: Vec<_> = (0..WORKERS)
            .map(|_| {
                let edge = edge.clone();
                let host = format!("{mode}.example.com");
                tokio::spawn(async move {
                    let mut wrong = Vec::new();
                    for _ in 0..RUNS / WORKERS {
                        let got = edge.get(&host, "/").await;
                        if got.status.as_u16() != expected || got.cache() != "Error" {
                            wrong.push(format!("{}: {}", got.status, got.text()));
                        }
                    }
                    wrong
                })
            })
            .collect();
        for worker in workers {
            let wrong = worker.await.expect("worker");
            assert!(
                wrong.is_empty(),
                "{mode}: {:?}",
                &wrong[..wrong.len().min(3)]
            );
        }
    }
    let faulting = started.elapsed();
    let (during, failed) = normal.await.expect("normal traffic");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let rss_after = rss_mib();
    eprintln!(
        "hook faults: {} x {RUNS} faulty requests in {faulting:.1?}, each its 502/503; normal traffic: {} requests, {failed} failed, p99 {} µs during ({:.2}x its {} µs beside as many viewers on a healthy hook; {} µs with no other load); RSS {rss_before:.0} MiB before, {rss_after:.0} MiB after",
        faults.len(),
        during.len(),
        p99(&during),
        p99(&during) as f64 / p99(&loaded) as f64,
        p99(&loaded),
        p99(&baseline),
    );
    assert_eq!(failed, 0, "normal traffic failed while hooks did");
    // Instances are torn down: what the faults allocated is not kept.
    assert!(
        rss_after < rss_before + 128.0,
        "RSS grew from {rss_before:.0} to {rss_after:.0} MiB"
    );
}
