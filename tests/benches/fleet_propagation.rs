//! How long a config change takes to reach a fleet: three hosts on one real
//! etcd; a PUT through host A swaps the distribution's origin, and the clock
//! runs from the API's answer to the first viewer request answered from the
//! new origin on the last of the three hosts (each host is asked in a tight
//! loop). Prints the median, 90th percentile and worst of the rounds.
//!
//!     cargo bench -p edge-e2e --bench fleet_propagation [-- ROUNDS]

use std::time::{Duration, Instant};

use edge_e2e::{Edge, Etcd, Origin, Reply, Value, json};
use http::StatusCode;

fn site(origin: &Origin) -> Value {
    let domain = origin.domain();
    let id = format!("o{}", domain.rsplit(':').next().expect("a port"));
    json!({
        "aliases": ["fleet.example.com"],
        "origins": [{"id": id, "domain_name": domain, "protocol": "http"}],
        "default_cache_behavior": {"target_origin_id": id},
    })
}

/// Asks `edge` until it answers with `body`; when it first did.
async fn first_served(edge: &Edge, body: &str, deadline: Instant) -> Instant {
    loop {
        let got = edge.get("fleet.example.com", "/").await;
        if got.status == StatusCode::OK && got.text() == body {
            return Instant::now();
        }
        assert!(Instant::now() < deadline, "a host never served the change");
    }
}

/// The value `percent`% of the way through `sorted` (nearest rank).
fn percentile(sorted: &[Duration], percent: usize) -> Duration {
    sorted[(sorted.len() - 1) * percent / 100]
}

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(50);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let etcd = Etcd::start().await;
        let mut hosts = Vec::new();
        for id in ["a", "b", "c"] {
            hosts.push(Edge::start_with(|opts| etcd.configure(opts, id)).await);
        }
        let origins = [
            Origin::start(|_| Reply::ok("blue").header("cache-control", "max-age=3600")).await,
            Origin::start(|_| Reply::ok("green").header("cache-control", "max-age=3600")).await,
        ];
        let created = hosts[0].create(site(&origins[0])).await;
        let id = created["id"].as_str().expect("id").to_owned();
        let path = format!("/v1/distributions/{id}/config");
        let mut etag = created["etag"].as_str().expect("etag").to_owned();
        let mut last_host = Vec::with_capacity(rounds);
        for round in 0..rounds {
            let (origin, body) = if round % 2 == 0 {
                (&origins[1], "green")
            } else {
                (&origins[0], "blue")
            };
            // Every host serves the current config before the change.
            let settle = Instant::now() + Duration::from_secs(10);
            let previous = if body == "green" { "blue" } else { "green" };
            for edge in &hosts {
                first_served(edge, previous, settle).await;
            }
            let got = hosts[0]
                .api("PUT", &path, Some(site(origin)), &[("if-match", &etag)])
                .await;
            let answered = Instant::now();
            assert_eq!(got.status, StatusCode::OK, "{}", got.text());
            etag = got.header("etag").expect("etag").to_owned();
            let deadline = answered + Duration::from_secs(10);
            let (a, b, c) = tokio::join!(
                first_served(&hosts[0], body, deadline),
                first_served(&hosts[1], body, deadline),
                first_served(&hosts[2], body, deadline),
            );
            last_host.push(a.max(b).max(c) - answered);
        }
        last_host.sort();
        use std::io::Write as _;
        writeln!(
            std::io::stdout(),
            "fleet propagation, 3 hosts, {rounds} changes: API answer to the last host serving it: median {:.2?}, p90 {:.2?}, worst {:.2?}",
            percentile(&last_host, 50),
            percentile(&last_host, 90),
            last_host[last_host.len() - 1],
        )
        .expect("stdout");
    });
}
