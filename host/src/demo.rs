//! The demo: two small built-in origins and a distribution in front of them.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::config::DistributionConfig;

/// Starts a demo origin named `name` on a loopback port chosen by the system.
/// `/` and every other path answer a small page cacheable for 60 s; `/api/time`
/// answers the time with `no-store`.
pub async fn start_origin(name: &'static str) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let served = Arc::new(AtomicU64::new(0));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let served = served.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let n = served.fetch_add(1, Ordering::Relaxed) + 1;
                    async move { Ok::<_, Infallible>(demo_page(name, n, &req)) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

fn demo_page(name: &str, n: u64, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (body, cache_control) = if req.uri().path() == "/api/time" {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        (
            format!("{{\"origin\":\"{name}\",\"unix_time\":{now},\"served\":{n}}}\n"),
            "no-store",
        )
    } else {
        (
            format!(
                "<!doctype html><title>{name}</title><h1>Hello from the {name} origin</h1>\n<p>path {} · origin response #{n}</p>\n",
                req.uri().path()
            ),
            "public, max-age=60",
        )
    };
    Response::builder()
        .header(
            "content-type",
            if cache_control == "no-store" {
                "application/json"
            } else {
                "text/html; charset=utf-8"
            },
        )
        .header("cache-control", cache_control)
        .header("x-origin", name)
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}

/// The demo distribution: `www.demo.test` and `*.demo.test`, pages from `blue`,
/// `/api/*` from `green` and never cached.
pub fn distribution(blue: SocketAddr, green: SocketAddr) -> DistributionConfig {
    let json = serde_json::json!({
        "comment": "demo",
        "aliases": ["www.demo.test", "*.demo.test"],
        "origins": [
            {"id": "blue", "domain_name": blue.to_string(), "protocol": "http",
             "custom_headers": {"x-edge-demo": "1"}},
            {"id": "green", "domain_name": green.to_string(), "protocol": "http"}
        ],
        "default_cache_behavior": {"target_origin_id": "blue", "default_ttl": 60},
        "cache_behaviors": [
            {"path_pattern": "/api/*", "target_origin_id": "green", "min_ttl": 0, "default_ttl": 0, "max_ttl": 0}
        ]
    });
    serde_json::from_value(json).unwrap_or_else(|e| panic!("the demo config is invalid: {e}"))
}
