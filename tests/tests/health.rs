//! An origin's several addresses, active health checks and passive
//! ejection: origins that die and come back under a looping viewer, origin
//! groups that fail over to a healthy member, and health in the API and
//! metrics.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use edge_e2e::{Edge, Value, json};
use http::StatusCode;
use http_body_util::Full;
use hyper_util::rt::TokioIo;

/// An origin that can die (its listener and every connection closed, so
/// connections are refused) and come back on the same port.
struct Mortal {
    name: &'static str,
    addr: SocketAddr,
    /// Requests answered, health checks included.
    hits: Arc<AtomicUsize>,
    /// Health checks answered.
    checks: Arc<AtomicUsize>,
    tasks: Mutex<tokio::task::JoinSet<()>>,
}

impl Mortal {
    async fn start(name: &'static str) -> Arc<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let mortal = Arc::new(Self {
            name,
            addr: listener.local_addr().expect("addr"),
            hits: Arc::new(AtomicUsize::new(0)),
            checks: Arc::new(AtomicUsize::new(0)),
            tasks: Mutex::new(tokio::task::JoinSet::new()),
        });
        mortal.serve(listener);
        mortal
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let (name, hits, checks) = (self.name, self.hits.clone(), self.checks.clone());
        let connections = Arc::new(Mutex::new(tokio::task::JoinSet::new()));
        let held = connections.clone();
        let mut tasks = self.tasks.lock().expect("tasks");
        tasks.spawn(async move {
            // Dropping this task drops the connections' tasks with it.
            let _connections = held;
            while let Ok((stream, _)) = listener.accept().await {
                let (hits, checks) = (hits.clone(), checks.clone());
                let service = hyper::service::service_fn(move |req: http::Request<_>| {
                    hits.fetch_add(1, Ordering::SeqCst);
                    if req.uri().path() == "/health" {
                        checks.fetch_add(1, Ordering::SeqCst);
                    }
                    async move {
                        Ok::<_, Infallible>(
                            http::Response::builder()
                                .header("cache-control", "no-store")
                                .body(Full::new(Bytes::from(name)))
                                .expect("a response"),
                        )
                    }
                });
                _connections.lock().expect("connections").spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .into_future_boxed(),
                );
            }
        });
        drop(connections);
    }

    /// Closes the listener and every connection.
    fn kill(&self) {
        self.tasks.lock().expect("tasks").abort_all();
    }

    /// Listens again on the same port.
    async fn revive(&self) {
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .expect("bind the same port");
        self.serve(listener);
    }
}

/// The boxed future of a served connection, for a `JoinSet` of them.
trait Boxed {
    fn into_future_boxed(self) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;
}

impl<F, E> Boxed for F
where
    F: Future<Output = Result<(), E>> + Send + 'static,
{
    fn into_future_boxed(self) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move {
            let _ = self.await;
        })
    }
}

fn check(interval_ms: u64) -> Value {
    json!({"path": "/health", "interval_ms": interval_ms, "timeout_ms": interval_ms, "healthy_threshold": 2, "unhealthy_threshold": 1})
}

/// The health `GET /v1/distributions/{id}` shows for `origin`: address →
/// healthy.
async fn health(edge: &Edge, id: &str, origin: &str) -> Vec<(String, bool)> {
    let got = edge
        .api("GET", &format!("/v1/distributions/{id}"), None, &[])
        .await
        .json();
    got["origin_health"]
        .as_array()
        .expect("origin_health")
        .iter()
        .find(|o| o["origin"] == origin)
        .expect("the origin")["addresses"]
        .as_array()
        .expect("addresses")
        .iter()
        .map(|a| {
            (
                a["address"].as_str().expect("address").to_owned(),
                a["healthy"].as_bool().expect("healthy"),
            )
        })
        .collect()
}

#[tokio::test]
async fn requests_go_only_to_healthy_addresses_as_they_die_and_come_back() {
    let (a, b, c) = (
        Mortal::start("a").await,
        Mortal::start("b").await,
        Mortal::start("c").await,
    );
    let edge = Edge::start().await;
    let created = edge
        .create(json!({
            "aliases": ["pool.test"],
            "origins": [{
                "id": "app", "domain_name": "app.internal", "protocol": "http",
                "addresses": [a.addr.to_string(), b.addr.to_string(), c.addr.to_string()],
                "health_check": check(100),
            }],
            "default_cache_behavior": {"target_origin_id": "app"},
        }))
        .await;
    let id = created["id"].as_str().expect("an id").to_owned();

    // Every address takes its share.
    let mut seen = std::collections::BTreeMap::new();
    for i in 0..60 {
        let got = edge.get("pool.test", &format!("/{i}")).await;
        assert_eq!(got.status, StatusCode::OK, "{}", got.text());
        *seen.entry(got.text()).or_insert(0) += 1;
    }
    assert_eq!(seen.keys().collect::<Vec<_>>(), ["a", "b", "c"], "{seen:?}");

    // b dies while a viewer loops: no request fails (one that finds b
    // gone is sent to another address), and once the checker has seen it
    // b gets none.
    b.kill();
    let before_b = b.hits.load(Ordering::SeqCst);
    for i in 0..100 {
        let got = edge.get("pool.test", &format!("/dead/{i}")).await;
        assert_eq!(got.status, StatusCode::OK, "request {i}: {}", got.text());
        assert_ne!(got.text(), "b");
    }
    assert_eq!(b.hits.load(Ordering::SeqCst), before_b);
    let marked = || async {
        health(&edge, &id, "app")
            .await
            .iter()
            .any(|(addr, ok)| *addr == b.addr.to_string() && !ok)
    };
    assert!(edge_e2e::eventually(Duration::from_secs(10), marked).await);
    let metrics = edge.api("GET", "/metrics", None, &[]).await.text();
    let line = format!(
        "edge_origin_address_healthy{{origin=\"app.internal\",address=\"{}\"}} 0",
        b.addr
    );
    assert!(metrics.contains(&line), "{metrics}");

    // b comes back: after two passing checks it serves again.
    b.revive().await;
    let back = || async { health(&edge, &id, "app").await.iter().all(|(_, ok)| *ok) };
    assert!(edge_e2e::eventually(Duration::from_secs(10), back).await);
    let mut served_by_b = 0;
    for i in 0..60 {
        let got = edge.get("pool.test", &format!("/back/{i}")).await;
        assert_eq!(got.status, StatusCode::OK);
        served_by_b += usize::from(got.text() == "b");
    }
    assert!(served_by_b > 0, "b serves again");
    assert!(b.checks.load(Ordering::SeqCst) >= 2);
}

#[tokio::test]
async fn an_address_that_refuses_connections_is_ejected_without_a_health_check() {
    let (a, b) = (Mortal::start("a").await, Mortal::start("b").await);
    let edge = Edge::start().await;
    let created = edge
        .create(json!({
            "aliases": ["passive.test"],
            "origins": [{
                "id": "app", "domain_name": "app.internal", "protocol": "http",
                "addresses": [a.addr.to_string(), b.addr.to_string()],
            }],
            "default_cache_behavior": {"target_origin_id": "app"},
        }))
        .await;
    let id = created["id"].as_str().expect("an id").to_owned();
    a.kill();
    for i in 0..20 {
        let got = edge.get("passive.test", &format!("/{i}")).await;
        assert_eq!((got.status, got.text()), (StatusCode::OK, "b".to_owned()));
    }
    let shown = health(&edge, &id, "app").await;
    assert!(
        shown.contains(&(a.addr.to_string(), false)) && shown.contains(&(b.addr.to_string(), true)),
        "{shown:?}"
    );
    let got = edge
        .api("GET", &format!("/v1/distributions/{id}"), None, &[])
        .await
        .json();
    let ejections = got["origin_health"][0]["addresses"]
        .as_array()
        .expect("addresses")
        .iter()
        .find(|x| x["address"] == a.addr.to_string())
        .expect("a")["ejections"]
        .as_u64();
    assert_eq!(ejections, Some(1), "one failure took it out: {got}");
}

#[tokio::test]
async fn a_group_sends_what_cannot_be_retried_to_its_healthy_member() {
    let (primary, secondary) = (
        Mortal::start("primary").await,
        Mortal::start("secondary").await,
    );
    let edge = Edge::start().await;
    let origin = |id: &str, m: &Mortal| json!({"id": id, "domain_name": m.addr.to_string(), "protocol": "http", "health_check": check(100)});
    let created = edge
        .create(json!({
            "aliases": ["group.test"],
            "origins": [origin("primary", &primary), origin("secondary", &secondary)],
            "origin_groups": [{"id": "both", "members": ["primary", "secondary"]}],
            "default_cache_behavior": {"target_origin_id": "both"},
        }))
        .await;
    let id = created["id"].as_str().expect("an id").to_owned();
    let post = || {
        edge.request_with_body(
            "POST",
            "group.test",
            "/orders",
            &[],
            Bytes::from_static(b"{}"),
        )
    };
    assert_eq!(post().await.text(), "primary");
    primary.kill();
    let down =
        || async { health(&edge, &id, "primary").await == [(primary.addr.to_string(), false)] };
    assert!(edge_e2e::eventually(Duration::from_secs(10), down).await);
    // A POST goes to one member only; with the primary known down, that
    // member is the secondary.
    for _ in 0..5 {
        let got = post().await;
        assert_eq!(
            (got.status, got.text()),
            (StatusCode::OK, "secondary".to_owned())
        );
    }
    primary.revive().await;
    let up = || async { health(&edge, &id, "primary").await == [(primary.addr.to_string(), true)] };
    assert!(edge_e2e::eventually(Duration::from_secs(10), up).await);
    assert_eq!(post().await.text(), "primary");
}

#[tokio::test]
async fn addresses_and_health_checks_are_validated() {
    let edge = Edge::start().await;
    let with = |origin: Value| {
        json!({
            "origins": [origin],
            "default_cache_behavior": {"target_origin_id": "o"},
        })
    };
    for (origin, field) in [
        (
            json!({"id": "o", "domain_name": "a.test", "addresses": ["10.0.0.1"]}),
            "origins[0].addresses[0]",
        ),
        (
            json!({"id": "o", "domain_name": "a.test", "addresses": ["10.0.0.1:80", "10.0.0.1:80"]}),
            "origins[0].addresses[1]",
        ),
        (
            json!({"id": "o", "domain_name": "a.test", "health_check": {"interval_ms": 10}}),
            "origins[0].health_check.interval_ms",
        ),
        (
            json!({"id": "o", "domain_name": "a.test", "health_check": {"interval_ms": 1000, "timeout_ms": 2000}}),
            "origins[0].health_check.timeout_ms",
        ),
        (
            json!({"id": "o", "domain_name": "a.test", "health_check": {"path": "health"}}),
            "origins[0].health_check.path",
        ),
        (
            json!({"id": "o", "domain_name": "a.test", "health_check": {"healthy_threshold": 0}}),
            "origins[0].health_check.healthy_threshold",
        ),
        (
            json!({"id": "o", "domain_name": "a.test", "health_check": {"expected_status": [42]}}),
            "origins[0].health_check.expected_status",
        ),
    ] {
        let refused = edge
            .api("POST", "/v1/distributions", Some(with(origin.clone())), &[])
            .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{origin}");
        assert!(
            refused.text().contains(field),
            "{field}: {}",
            refused.text()
        );
    }
    let backend = edge
        .api(
            "POST",
            "/v1/distributions",
            Some(json!({
                "origins": [{"id": "o", "domain_name": "a.test"}],
                "backends": [{"id": "b", "domain_name": "b.test", "addresses": ["10.0.0.1:80"]}],
                "default_cache_behavior": {"target_origin_id": "o"},
            })),
            &[],
        )
        .await;
    assert_eq!(backend.status, StatusCode::BAD_REQUEST);
    assert!(
        backend.text().contains("backends[0].addresses"),
        "{}",
        backend.text()
    );
}
