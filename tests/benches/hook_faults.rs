//! Plain traffic's latency while faulty hooks run beside it, in a release
//! build: the host on its own two worker threads (as `edge serve --workers
//! 2`), the viewers and the origin on another thread. First a baseline of
//! sequential requests to a distribution without hooks, then the same while
//! four viewers loop on a distribution whose hook fails in a given way. Run
//! twice: hooks on their own lower-priority threads (the default), then on
//! the workers (`--hook-threads 0`).
//!
//!     cargo bench -p edge-e2e --bench hook_faults
//!
//! Prints p50/p99 per fault, and the p99's ratios to the baseline and to the
//! p99 beside the same load on a healthy hook (what the fault itself adds;
//! the target: at most 2x).

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use edge_e2e::{Edge, Origin, Reply, json};

const SAMPLES: usize = 5000;
const FAULTY_VIEWERS: usize = 4;

fn site(alias: &str, origin: &Origin, fault: Option<&str>) -> edge_e2e::Value {
    let mut config = json!({
        "aliases": [alias],
        "origins": [{"id": "web", "domain_name": origin.domain(), "protocol": "http"}],
        "default_cache_behavior": {"target_origin_id": "web"},
    });
    if let Some(mode) = fault {
        config["default_cache_behavior"]["hooks"] =
            json!({"viewer_request": {"module": "faulty", "config": {"viewer_request": mode}}});
    }
    config
}

async fn sample(edge: &Edge, n: usize) -> Vec<Duration> {
    let mut took = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let got = edge.get("ok.example.com", "/").await;
        took.push(started.elapsed());
        assert_eq!(got.status, 200, "plain traffic failed: {}", got.text());
    }
    took.sort_unstable();
    took
}

fn pct(sorted: &[Duration], p: usize) -> f64 {
    sorted[(sorted.len() - 1) * p / 100].as_secs_f64() * 1e6
}

fn main() {
    for hook_threads in [2, 0] {
        run(hook_threads);
    }
}

fn run(hook_threads: usize) {
    let host_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("host runtime");
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    let origin = client_rt.block_on(Origin::start(|_| {
        Reply::ok("fine").header("cache-control", "max-age=600")
    }));
    let edge = Arc::new(host_rt.block_on(Edge::start_with(|o| o.hook_threads = hook_threads)));
    let faults = ["loop", "alloc", "panic", "recurse", "bad-header"];
    // The same load through a hook that does nothing wrong: what four busy
    // viewers cost the plain traffic without any fault.
    let healthy = "log";
    client_rt.block_on(async {
        edge.upload_hook("faulty", edge_e2e::examples::MISBEHAVE)
            .await;
        edge.create(site("ok.example.com", &origin, None)).await;
        for mode in faults.iter().chain([&healthy]) {
            edge.create(site(&format!("{mode}.example.com"), &origin, Some(mode)))
                .await;
        }
        // Warm: the object is cached, connections are pooled.
        sample(&edge, 500).await;
        let baseline = sample(&edge, SAMPLES).await;
        let (b50, b99) = (pct(&baseline, 50), pct(&baseline, 99));
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "hook threads: {hook_threads}\nbaseline (cache hits, no hook): p50 {b50:.0} µs, p99 {b99:.0} µs"
        )
        .expect("stdout");
        let mut healthy_p99 = None;
        for mode in [healthy].into_iter().chain(faults) {
            let stop = Arc::new(AtomicBool::new(false));
            let loops: Vec<_> = (0..FAULTY_VIEWERS)
                .map(|_| {
                    let (edge, stop) = (edge.clone(), stop.clone());
                    let host = format!("{mode}.example.com");
                    tokio::spawn(async move {
                        let mut n = 0_u64;
                        while !stop.load(Ordering::Relaxed) {
                            let got = edge.get(&host, "/").await;
                            assert!(got.status.is_server_error() || host.starts_with("log."));
                            n += 1;
                        }
                        n
                    })
                })
                .collect();
            let during = sample(&edge, SAMPLES).await;
            stop.store(true, Ordering::Relaxed);
            let mut faulty = 0;
            for l in loops {
                faulty += l.await.expect("faulty viewer");
            }
            let (d50, d99) = (pct(&during, 50), pct(&during, 99));
            let loaded = *healthy_p99.get_or_insert(d99);
            writeln!(
                out,
                "{mode:>10}: {faulty} faulty requests beside; plain p50 {d50:.0} µs, p99 {d99:.0} µs ({:.2}x baseline p99, {:.2}x beside the healthy hook)",
                d99 / b99,
                d99 / loaded
            )
            .expect("stdout");
        }
    });
}
