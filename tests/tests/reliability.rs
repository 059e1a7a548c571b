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
