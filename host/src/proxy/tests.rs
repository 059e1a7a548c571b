//! The phases in process: a proxy built as the host builds one, requests
//! handed straight to [`Proxy::handle`] with bodies of the test's own type (no
//! viewer connection), and an origin on port 0 or in memory
//! ([`Memory`](super::memory::Memory)).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Empty, Full};

use super::Proxy;
use super::memory::{Canned, Failure, Memory};
use super::routing::{Routing, ServedDistribution};
use crate::cache::SharedCache;
use crate::config::{Distribution, DistributionConfig, parse_json};
use crate::metrics::Metrics;
use crate::origin::{OriginFetcher, Origins};
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
    build(&json, Arc::new(OriginFetcher::new()))
}

/// A proxy serving the distribution `json` through `origins`.
fn build<O: Origins>(json: &str, origins: Arc<O>) -> (Arc<Proxy<O>>, Arc<Metrics>) {
    let raw: DistributionConfig = parse_json(json.as_bytes()).expect("a config");
    let config = Arc::new(Distribution::try_from(raw).expect("a valid config"));
    let metrics = Arc::new(Metrics::default());
    let ids: Vec<String> = config.origins.iter().map(|o| o.id.clone()).collect();
    // The pools are made as the host makes them; an in-memory origin leaves
    // them unused.
    let served = ServedDistribution::new(
        "ETEST",
        "etest.edge.internal",
        config,
        1,
        &Arc::new(OriginFetcher::new()),
        Vec::new(),
        metrics.distribution("ETEST", &ids),
    );
    let routing = Arc::new(ArcSwap::from_pointee(Routing::build(1, [Arc::new(served)])));
    let hooks = HookRuntime::new(&RuntimeOptions {
        cache_dir: None,
        function_cache_dir: None,
        parallel_compile: false,
        held_memory_mib: 1024,
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
        origins,
        "test-host",
        None,
        Arc::default(),
    );
    (proxy, metrics)
}

/// The status, `x-cache` and body of `req` served by `proxy`.
async fn serve<O, B>(proxy: &Arc<Proxy<O>>, req: Request<B>) -> (StatusCode, String, String)
where
    O: Origins,
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

/// `shop.test` on in-memory origins: `a` (under `/v2`, with a custom field)
/// by default, and the group `ab` (`a`, then `b`) under `/group/*`.
fn on_memory() -> (Arc<Proxy<Memory>>, Arc<Memory>, Arc<Metrics>) {
    let json = r#"{"aliases": ["shop.test"],
        "origins": [{"id": "a", "domain_name": "a.origin.test", "protocol": "http",
                     "origin_path": "/v2", "custom_headers": {"x-origin-key": "k1"},
                     "read_timeout_ms": 2000},
                    {"id": "b", "domain_name": "b.origin.test", "protocol": "http"}],
        "origin_groups": [{"id": "ab", "members": ["a", "b"]}],
        "default_cache_behavior": {"target_origin_id": "a"},
        "cache_behaviors": [{"path_pattern": "/group/*", "target_origin_id": "ab"}]}"#;
    let memory = Arc::new(Memory::default());
    let (proxy, metrics) = build(json, memory.clone());
    (proxy, memory, metrics)
}

/// The value of the counter `name` on `/metrics`.
fn counter(metrics: &Metrics, name: &str) -> u64 {
    let text = metrics.render(0, 0, &[]);
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

#[tokio::test]
async fn a_group_fails_over_to_its_next_member_when_the_first_fails() {
    let (proxy, memory, metrics) = on_memory();
    // A refused connection, a timeout, a failover status: each answered by `b`.
    memory.fail("a", Some(Failure::Refused));
    let (status, cache, body) = serve(&proxy, get("/group/refused")).await;
    assert_eq!((status, cache.as_str()), (StatusCode::OK, "Miss from edge"));
    assert_eq!(body, "b GET /group/refused #2");
    memory.fail("a", Some(Failure::Timeout));
    let (status, _, body) = serve(&proxy, get("/group/slow")).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "b GET /group/slow #4")
    );
    memory.fail("a", None);
    memory.answer(
        "a",
        "/v2/group/busy",
        Canned {
            status: StatusCode::SERVICE_UNAVAILABLE,
            headers: Vec::new(),
            body: Bytes::from_static(b"busy"),
        },
    );
    let (status, _, body) = serve(&proxy, get("/group/busy")).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "b GET /group/busy #6")
    );
    // Each was tried on `a` first, at `a`'s path, then on `b`.
    let tried: Vec<(String, String)> = memory
        .received()
        .into_iter()
        .map(|r| (r.origin, r.uri.path().to_owned()))
        .collect();
    let expected = [
        ("a", "/v2/group/refused"),
        ("b", "/group/refused"),
        ("a", "/v2/group/slow"),
        ("b", "/group/slow"),
        ("a", "/v2/group/busy"),
        ("b", "/group/busy"),
    ]
    .map(|(o, p)| (o.to_owned(), p.to_owned()));
    assert_eq!(tried, expected);
    assert_eq!(counter(&metrics, "edge_origin_requests_total"), 6);
    assert_eq!(
        counter(&metrics, "edge_origin_errors_total"),
        2,
        "the refusal and the timeout; a 503 is an answer"
    );
    // What `b` answered was stored: no member is asked again.
    let (_, cache, body) = serve(&proxy, get("/group/refused")).await;
    assert_eq!(
        (cache.as_str(), body.as_str()),
        ("Hit from edge", "b GET /group/refused #2")
    );
    assert_eq!(memory.received().len(), 6);

    // A body streamed to `a` cannot be sent again: no failover, a 502.
    memory.fail("a", Some(Failure::Refused));
    let post = Request::post("/group/order")
        .header("host", "shop.test")
        .body(Full::new(Bytes::from_static(b"item=1")))
        .expect("request");
    let (status, cache, body) = serve(&proxy, post).await;
    assert_eq!(
        (status, cache.as_str()),
        (StatusCode::BAD_GATEWAY, "Error from edge")
    );
    assert!(body.contains("OriginConnectionFailed"), "{body}");
    assert_eq!((memory.count("a"), memory.count("b")), (4, 3));
    // An origin's failures map to their statuses.
    memory.fail("a", Some(Failure::Timeout));
    let (status, _, body) = serve(&proxy, get("/timeout")).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert!(body.contains("OriginTimeout"), "{body}");
}

#[tokio::test]
async fn a_group_serves_stale_only_once_every_member_failed_to_answer() {
    let json = r#"{"aliases": ["shop.test"],
        "origins": [{"id": "a", "domain_name": "a.origin.test", "protocol": "http"},
                    {"id": "b", "domain_name": "b.origin.test", "protocol": "http"}],
        "origin_groups": [{"id": "ab", "members": ["a", "b"]}],
        "default_cache_behavior": {"target_origin_id": "ab"},
        "cache_behaviors": [{"path_pattern": "/strict/*", "target_origin_id": "ab",
                             "serve_stale_on_error": false}]}"#;
    let memory = Arc::new(Memory::default());
    let (proxy, metrics) = build(json, memory.clone());
    // Stale on arrival, kept for its validator.
    let stale = |body: &'static str, etag: &str| Canned {
        status: StatusCode::OK,
        headers: vec![
            ("cache-control", "max-age=60".to_owned()),
            ("age", "100".to_owned()),
            ("etag", etag.to_owned()),
        ],
        body: Bytes::from_static(body.as_bytes()),
    };
    for path in ["/feed", "/strict/feed"] {
        memory.answer("a", path, stale("from a", "\"a1\""));
        memory.answer("b", path, stale("from b", "\"b1\""));
        let (status, cache, body) = serve(&proxy, get(path)).await;
        assert_eq!(
            (status, cache.as_str(), body.as_str()),
            (StatusCode::OK, "Miss from edge", "from a")
        );
    }
    // `a` refuses: `b` answers, and what it answers is served, not the
    // stale copy.
    memory.fail("a", Some(Failure::Refused));
    let (status, cache, body) = serve(&proxy, get("/feed")).await;
    assert_eq!(
        (status, cache.as_str(), body.as_str()),
        (StatusCode::OK, "Miss from edge", "from b")
    );
    // Neither answers: the stale copy (`b`'s now), after both were asked
    // to revalidate it.
    for failure in [Failure::Refused, Failure::Timeout] {
        memory.fail("a", Some(failure));
        memory.fail("b", Some(failure));
        let asked = memory.received().len();
        let (status, cache, body) = serve(&proxy, get("/feed")).await;
        assert_eq!(
            (status, cache.as_str(), body.as_str()),
            (StatusCode::OK, "Hit from edge", "from b"),
            "{failure:?}"
        );
        let tried: Vec<(String, Option<String>)> = memory.received()[asked..]
            .iter()
            .map(|r| {
                let inm = r.headers.get("if-none-match");
                (
                    r.origin.clone(),
                    inm.map(|v| v.to_str().unwrap_or("").to_owned()),
                )
            })
            .collect();
        let expected = ["a", "b"].map(|o| (o.to_owned(), Some("\"b1\"".to_owned())));
        assert_eq!(tried, expected, "{failure:?}");
    }
    assert_eq!(counter(&metrics, "edge_origin_errors_total"), 5);
    // A behavior that does not serve stale on error: the failure goes through.
    let (status, cache, body) = serve(&proxy, get("/strict/feed")).await;
    assert_eq!(
        (status, cache.as_str()),
        (StatusCode::GATEWAY_TIMEOUT, "Error from edge"),
        "{body}"
    );
}

#[tokio::test]
async fn the_origin_sees_the_normalized_path_the_hosts_fields_and_no_viewer_validators() {
    let (proxy, memory, _) = on_memory();
    let req = Request::get("/x/../a.css?utm=1")
        .header("host", "shop.test")
        .header("if-none-match", "\"v1\"")
        .header("if-modified-since", "Mon, 07 Dec 2026 00:00:00 GMT")
        .header("x-forwarded-for", "198.51.100.9")
        .header("x-real-ip", "198.51.100.9")
        .header("forwarded", "for=198.51.100.9")
        .header("cookie", "session=s1")
        .header("accept", "text/css")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let (status, _, _) = serve(&proxy, req).await;
    assert_eq!(status, StatusCode::OK);
    let seen = memory.received();
    let [seen] = seen.as_slice() else {
        panic!("{seen:?}")
    };
    assert_eq!(seen.origin, "a");
    assert_eq!(seen.method, Method::GET);
    assert_eq!(
        seen.uri.to_string(),
        "http://a.origin.test/v2/a.css",
        "normalized, under the origin's path, no query the behavior does not forward"
    );
    let field = |name: &str| {
        let values: Vec<&str> = seen
            .headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().expect("text"))
            .collect();
        values.join(" | ")
    };
    assert_eq!(field("host"), "a.origin.test");
    assert_eq!(field("x-origin-key"), "k1");
    assert_eq!(field("accept"), "text/css");
    assert_eq!(field("x-forwarded-for"), "198.51.100.9, 203.0.113.7");
    assert_eq!(field("x-forwarded-proto"), "http");
    assert_eq!(
        field("forwarded"),
        "for=203.0.113.7;proto=http;host=shop.test"
    );
    assert_eq!(field("via"), "1.1 test-host (edge)");
    assert_eq!(field("surrogate-capability"), "edge=\"Surrogate/1.0\"");
    for gone in ["if-none-match", "if-modified-since", "x-real-ip", "cookie"] {
        assert!(
            !seen.headers.contains_key(gone),
            "{gone}: {:?}",
            seen.headers
        );
    }

    // A write keeps its validators (the origin answers them) and its query.
    let put = Request::put("/a.css?v=2")
        .header("host", "shop.test")
        .header("if-match", "\"v1\"")
        .body(Full::new(Bytes::from_static(b"body{}")))
        .expect("request");
    serve(&proxy, put).await;
    let seen = memory.received();
    let put = seen.last().expect("the write");
    assert_eq!(
        (
            put.method.as_str(),
            put.uri.to_string().as_str(),
            put.body_len
        ),
        ("PUT", "http://a.origin.test/v2/a.css?v=2", 6)
    );
    assert_eq!(put.headers["if-match"], "\"v1\"");
}

#[tokio::test]
async fn a_miss_then_hits_take_exactly_one_origin_request() {
    let (proxy, memory, metrics) = on_memory();
    memory.answer(
        "a",
        "/v2/logo.png",
        Canned {
            status: StatusCode::OK,
            headers: vec![
                ("cache-control", "max-age=300".to_owned()),
                ("etag", "\"logo-1\"".to_owned()),
            ],
            body: Bytes::from_static(b"PNG"),
        },
    );
    let (status, cache, body) = serve(&proxy, get("/logo.png")).await;
    assert_eq!(
        (status, cache.as_str(), body.as_str()),
        (StatusCode::OK, "Miss from edge", "PNG")
    );
    let (status, cache, body) = serve(&proxy, get("/logo.png")).await;
    assert_eq!(
        (status, cache.as_str(), body.as_str()),
        (StatusCode::OK, "Hit from edge", "PNG")
    );
    // The viewer's conditional is answered from the stored object.
    let conditional = Request::get("/logo.png")
        .header("host", "shop.test")
        .header("if-none-match", "\"logo-1\"")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let (status, cache, _) = serve(&proxy, conditional).await;
    assert_eq!(
        (status, cache.as_str()),
        (StatusCode::NOT_MODIFIED, "Hit from edge")
    );
    assert_eq!(memory.count("a"), 1);
    assert_eq!(counter(&metrics, "edge_origin_requests_total"), 1);
}

#[tokio::test]
async fn concurrent_misses_collapse_into_one_origin_fetch() {
    let (proxy, memory, _) = on_memory();
    memory.hold();
    // The first request leads and waits at the origin; the other two find
    // its fetch in flight and follow it.
    let release = async {
        while memory.received().is_empty() {
            tokio::task::yield_now().await;
        }
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(proxy.cache.flights.len(), 1, "one fetch in flight");
        memory.release();
    };
    let (first, second, third, ()) = tokio::join!(
        serve(&proxy, get("/hot")),
        serve(&proxy, get("/hot")),
        serve(&proxy, get("/hot")),
        release,
    );
    assert_eq!(memory.count("a"), 1, "{:?}", memory.received());
    let caches = [&first.1, &second.1, &third.1].map(String::as_str);
    assert_eq!(
        caches,
        ["Miss from edge", "Hit from edge", "Hit from edge"],
        "the followers answered from what the leader stored"
    );
    for (status, _, body) in [first, second, third] {
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, "a GET /v2/hot #1")
        );
    }
}
