//! A 1 GiB origin object streams through the host without being held in memory.
//! Alone in its test binary so the process's peak memory is this test's own.

use edge_e2e::{Edge, Origin, Reply, json};
use http::StatusCode;
use http_body_util::{BodyExt as _, Full};

/// The process's peak resident set (VmHWM), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM");
    line.split_whitespace()
        .nth(1)
        .and_then(|kb| kb.parse::<u64>().ok())
        .expect("kB")
        * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_gib_object_streams_through_in_flat_memory() {
    const SIZE: u64 = 1 << 30;
    let edge = Edge::start().await;
    // Cacheable, but unknown length: the host starts copying for the cache and
    // must stop at the object limit, not buffer the whole body.
    let origin = Origin::start(|_| {
        Reply::ok("")
            .header("cache-control", "max-age=60")
            .stream(SIZE)
    })
    .await;
    edge.create(json!({
        "aliases": ["big.example.com"],
        "origins": [{"id": "o", "domain_name": origin.domain(), "protocol": "http"}],
        "default_cache_behavior": {"target_origin_id": "o"},
    }))
    .await;

    let before = peak_rss();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<bytes::Bytes>>();
    let req = http::Request::get(format!("http://{}/huge.bin", edge.viewer))
        .header("host", "big.example.com")
        .body(Full::new(bytes::Bytes::new()))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            total += data.len() as u64;
        }
    }
    assert_eq!(total, SIZE);
    let grown = peak_rss().saturating_sub(before);
    println!("1 GiB streamed; peak RSS grew by {} MiB", grown >> 20);
    assert!(
        grown < 96 << 20,
        "peak RSS grew by {} MiB while streaming 1 GiB",
        grown >> 20
    );
    // Too big to store: the next request goes to the origin again.
    let req = http::Request::get(format!("http://{}/huge.bin", edge.viewer))
        .header("host", "big.example.com")
        .body(Full::new(bytes::Bytes::new()))
        .unwrap();
    let again = client.request(req).await.unwrap();
    assert_eq!(again.headers()["x-cache"], "Miss from edge");
}
