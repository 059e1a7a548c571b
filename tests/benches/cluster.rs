//! What a cache cluster saves: three hosts on one real etcd in front of an
//! origin 10 ms away, 300 distinct objects each requested through every
//! host in turn, once for a distribution with `"cluster": true` and once for
//! one without. Prints the origin requests and the median answer time of the
//! first request of each object and of the two that follow on the other
//! hosts (the ones a cluster answers from the owner).
//!
//!     cargo bench -p edge-e2e --bench cluster [-- OBJECTS]

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use edge_e2e::{Edge, Etcd, Origin, Reply, json};
use http::StatusCode;

/// How far away the origin is.
const ORIGIN_DELAY: Duration = Duration::from_millis(10);

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let objects: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(300);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let etcd = Etcd::start().await;
        let mut hosts = Vec::new();
        for id in ["a", "b", "c"] {
            hosts.push(
                Edge::start_with(|opts| {
                    etcd.configure(opts, id);
                    opts.cluster_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
                })
                .await,
            );
        }
        let fetched = Arc::new(AtomicUsize::new(0));
        let counter = fetched.clone();
        let origin = Origin::start(move |req| {
            counter.fetch_add(1, Ordering::Relaxed);
            Reply::ok(format!("object {}", req.target))
                .header("cache-control", "max-age=3600")
                .delay(ORIGIN_DELAY)
        })
        .await;
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "{objects} objects, each through 3 hosts in turn; the origin answers after {ORIGIN_DELAY:?}"
        )
        .expect("stdout");
        writeln!(
            out,
            "                 origin requests   first request p50   2nd and 3rd host p50"
        )
        .expect("stdout");
        for (alias, cluster) in [("shared.example.com", true), ("apart.example.com", false)] {
            hosts[0]
                .create(json!({
                    "aliases": [alias],
                    "origins": [{"id": "web", "domain_name": origin.domain(), "protocol": "http"}],
                    "default_cache_behavior": {"target_origin_id": "web"},
                    "cluster": cluster,
                }))
                .await;
            for edge in &hosts {
                let deadline = Instant::now() + Duration::from_secs(30);
                loop {
                    let members = edge.api("GET", "/metrics", None, &[]).await.text();
                    if edge.get(alias, "/warm-up").await.status == StatusCode::OK
                        && members.contains("\nedge_cluster_members 3\n")
                    {
                        break;
                    }
                    assert!(Instant::now() < deadline, "a host never got ready");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            let before = fetched.load(Ordering::Relaxed);
            let (mut first, mut others) = (Vec::new(), Vec::new());
            for i in 0..objects {
                let path = format!("/object/{i}");
                for (n, edge) in hosts.iter().enumerate() {
                    let sent = Instant::now();
                    let got = edge.get(alias, &path).await;
                    let took = sent.elapsed();
                    assert_eq!(got.status, StatusCode::OK);
                    if n == 0 { first.push(took) } else { others.push(took) }
                }
            }
            writeln!(
                out,
                "cluster: {cluster:<5}    {:>8}          {:>10.2?}          {:>10.2?}",
                fetched.load(Ordering::Relaxed) - before,
                median(first),
                median(others),
            )
            .expect("stdout");
        }
    });
}
