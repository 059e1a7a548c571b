//! The phases in process: a proxy built as the host builds one, an origin
//! on port 0, and requests handed straight to [`Proxy::handle`] with bodies
//! of the test's own type (no viewer connection).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Empty, Full};

use super::Proxy;
use super::routing::{Routing, ServedDistribution};
use crate::cache::SharedCache;
use crate::config::{Distribution, DistributionConfig, parse_json};
use crate::metrics::Metrics;
use crate::origin::OriginFetcher;
use crate::wasm::{HookRuntime, KvData, RuntimeOptions};

/// What the origin saw: `METHOD /path body-length` per request.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

impl Seen {
    fn all(&self) -> Vec<String> {
        self.0.lock().expect("not poisoned").clone()
    }
}

/// An HTTP/1.1 origin on port 0 that answers every request with 200,
/// `Cache-Control: max-age=60` and a body naming the request and how many
/// the origin has seen.
async fn origin() -> (SocketAddr, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Seen::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let log = log.clone();
                        async move {
                            let (head, body) = req.into_parts();
                            let body = body.collect().await.map(|b| b.to_bytes());
                            let line = format!(
                                "{} {} {}",
                                head.method,
                                head.uri.path(),
                                body.map_or(0, |b| b.len())
                            );
                            let n = {
                                let mut all = log.0.lock().expect("not poisoned");
                                all.push(line.clone());
                                all.len()
                            };
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .header("cache-control", "max-age=60")
                                    .body(Full::new(Bytes::from(format!("{line} #{n}"))))
                                    .expect("response"),
                            )
                        }
                    });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    (addr, seen)
}

/// A proxy serving `shop.test` from `origin` (an address on which nothing
/// may listen), with one behavior that never caches under `/live/*`.
fn proxy(origin: SocketAddr) -> (Arc<Proxy>, Arc<Metrics>) {
    let json = format!(
        r#"{{"aliases": ["shop.test"],
            "origins": [{{"id": "web", "domain_name": "{origin}", "protocol": "http",
                          "connect_timeout_ms": 1000, "read_timeout_ms": 2000}}],
            "default_cache_behavior": {{"target_origin_id": "web"}},
            "cache_behaviors": [{{"path_pattern": "/live/*", "target_origin_id": "web",
                                  "min_ttl": 0, "default_ttl": 0, "max_ttl": 0}}]}}"#
    );
    let raw: DistributionConfig = parse_json(json.as_bytes()).expect("a config");
    let config = Arc::new(Distribution::try_from(raw).expect("a valid config"));
    let metrics = Arc::new(Metrics::default());
    let served = ServedDistribution::new(
        "ETEST",
        "etest.edge.internal",
        config,
        1,
        &OriginFetcher::new(),
        Vec::new(),
        metrics.distribution("ETEST", &["web".to_owned()]),
    );
    let routing = Arc::new(ArcSwap::from_pointee(Routing::build(1, [Arc::new(served)])));
    let hooks = HookRuntime::new(&RuntimeOptions {
        cache_dir: None,
        max_instances: 4,
        measure_cpu: false,
        threads: 0,
    })
    .expect("a hook runtime");
    let proxy = Proxy::new(
        routing,
        SharedCache::new(1 << 20, 1 << 16),
        metrics.clone(),
        Arc::new(hooks),
        Arc::new(ArcSwap::from_pointee(KvData::default())),
        "test-host",
        None,
    );
    (proxy, metrics)
}

/// The status, `x-cache` and body of `req` served by `proxy`.
async fn serve<B>(proxy: &Arc<Proxy>, req: Request<B>) -> (StatusCode, String, String)
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<crate::origin::BoxError>,
{
    let client = SocketAddr::from(([203, 0, 113, 7], 40000));
    let Ok(resp) = proxy.clone().handle(req, client, false).await;
    let status = resp.status();
    let cache = resp
        .headers()
        .get("x-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = resp
        .into_body()
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .unwrap_or_else(|e| format!("body error: {e}"));
    (status, cache, body)
}

fn get(path: &str) -> Request<Empty<Bytes>> {
    Request::get(path)
        .header("host", "shop.test")
        .body(Empty::new())
        .expect("request")
}

#[tokio::test]
async fn a_miss_is_fetched_and_stored_then_the_lookup_answers() {
    let (addr, seen) = origin().await;
    let (proxy, _) = proxy(addr);
    let (status, cache, body) = serve(&proxy, get("/a.css")).await;
    assert_eq!((status, cache.as_str()), (StatusCode::OK, "Miss from edge"));
    assert_eq!(body, "GET /a.css 0 #1");
    let (status, cache, body) = serve(&proxy, get("/a.css")).await;
    assert_eq!((status, cache.as_str()), (StatusCode::OK, "Hit from edge"));
    assert_eq!(body, "GET /a.css 0 #1", "the stored body");
    // The path is normalized before the lookup: the same object.
    let (_, cache, _) = serve(&proxy, get("/x/../a.css")).await;
    assert_eq!(cache, "Hit from edge");
    // A behavior with no TTL is fetched every time.
    serve(&proxy, get("/live/now")).await;
    let (_, cache, body) = serve(&proxy, get("/live/now")).await;
    assert_eq!(
        (cache.as_str(), body.as_str()),
        ("Miss from edge", "GET /live/now 0 #3")
    );
    assert_eq!(seen.all().len(), 3);
}

#[tokio::test]
async fn a_write_streams_its_body_to_the_origin_and_invalidates_the_stored_get() {
    let (addr, seen) = origin().await;
    let (proxy, _) = proxy(addr);
    serve(&proxy, get("/cart")).await;
    let (_, cache, _) = serve(&proxy, get("/cart")).await;
    assert_eq!(cache, "Hit from edge");
    let post = Request::post("/cart")
        .header("host", "shop.test")
        .body(Full::new(Bytes::from_static(b"item=1")))
        .expect("request");
    let (status, cache, body) = serve(&proxy, post).await;
    assert_eq!((status, cache.as_str()), (StatusCode::OK, "Miss from edge"));
    assert_eq!(body, "POST /cart 6 #2", "the body reached the origin");
    let (_, cache, body) = serve(&proxy, get("/cart")).await;
    assert_eq!(
        cache, "Miss from edge",
        "the write invalidated the stored GET"
    );
    assert_eq!(body, "GET /cart 0 #3");
    assert_eq!(seen.all(), ["GET /cart 0", "POST /cart 6", "GET /cart 0"]);
}

#[tokio::test]
async fn every_refusal_and_failure_leaves_through_respond_with_its_status() {
    let (addr, seen) = origin().await;
    let (proxy, metrics) = proxy(addr);
    let unknown = Request::get("/")
        .header("host", "other.test")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let fat_get = Request::get("/a")
        .header("host", "shop.test")
        .body(Full::new(Bytes::from_static(b"smuggled")))
        .expect("request");
    let escaping = get("/%2e%2e/%2e%2e/etc/passwd");
    let mut statuses = Vec::new();
    for req in [
        unknown.map(|b| b.boxed_unsync()),
        fat_get.map(|b| b.boxed_unsync()),
        escaping.map(|b| b.boxed_unsync()),
    ] {
        let (status, cache, body) = serve(&proxy, req).await;
        assert_eq!(cache, "Error from edge");
        assert!(body.contains("\"error\""), "{body}");
        statuses.push(status.as_u16());
    }
    assert_eq!(statuses, [421, 400, 400]);
    assert!(
        seen.all().is_empty(),
        "a refused request reached the origin"
    );

    // An origin that refuses connections: 502, counted once as an error.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let gone = closed.local_addr().expect("addr");
    drop(closed);
    let text = metrics.render(0, 0, &[]);
    assert!(
        text.contains("edge_requests_total{cache=\"Error\"} 3"),
        "{text}"
    );
    let (proxy, metrics) = self::proxy(gone);
    let (status, cache, body) = serve(&proxy, get("/a")).await;
    assert_eq!(
        (status, cache.as_str()),
        (StatusCode::BAD_GATEWAY, "Error from edge")
    );
    assert!(body.contains("OriginConnectionFailed"), "{body}");
    let text = metrics.render(0, 0, &[]);
    assert!(
        text.contains("edge_requests_total{cache=\"Error\"} 1"),
        "{text}"
    );
}
