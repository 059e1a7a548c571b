//! Origins that misbehave at the byte level: refused connections, silence,
//! bodies cut short, broken framing. Each fails only its request, with the
//! status a CDN gives, and nothing broken is stored.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use edge_e2e::{Edge, json};
use http::StatusCode;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// A TCP origin that reads a request head, then writes `reply` and closes
/// (or, with `None`, says nothing and holds the connection).
struct RawOrigin {
    addr: std::net::SocketAddr,
    accepted: Arc<AtomicUsize>,
}

impl RawOrigin {
    async fn start(reply: Option<&'static [u8]>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    match reply {
                        Some(bytes) => {
                            let _ = stream.write_all(bytes).await;
                            let _ = stream.shutdown().await;
                        }
                        None => tokio::time::sleep(Duration::from_secs(30)).await,
                    }
                });
            }
        });
        Self { addr, accepted }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// A host with one distribution on `origin`, with a short read timeout.
async fn edge_for(origin: &str) -> Edge {
    let edge = Edge::start().await;
    edge.create(json!({
        "aliases": ["o.example.com"],
        "origins": [{"id": "web", "domain_name": origin, "protocol": "http",
                     "connect_timeout_ms": 500, "read_timeout_ms": 400}],
        "default_cache_behavior": {"target_origin_id": "web"}
    }))
    .await;
    edge
}

#[tokio::test]
async fn a_refused_connection_is_a_502() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("address").port()
    };
    let edge = edge_for(&format!("127.0.0.1:{port}")).await;
    let got = edge.get("o.example.com", "/").await;
    assert_eq!(got.status, StatusCode::BAD_GATEWAY);
    assert_eq!(got.error_code(), "OriginConnectionFailed");
}

#[tokio::test]
async fn an_origin_that_never_answers_is_a_504_after_the_read_timeout() {
    let origin = RawOrigin::start(None).await;
    let edge = edge_for(&origin.addr.to_string()).await;
    let started = std::time::Instant::now();
    let got = edge.get("o.example.com", "/").await;
    assert_eq!(got.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(got.error_code(), "OriginTimeout");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn an_invalid_content_length_is_a_502_and_not_stored() {
    let origin = RawOrigin::start(Some(
        b"HTTP/1.1 200 OK\r\ncache-control: max-age=60\r\ncontent-length: abc\r\n\r\nhello",
    ))
    .await;
    let edge = edge_for(&origin.addr.to_string()).await;
    for _ in 0..2 {
        let got = edge.get("o.example.com", "/").await;
        assert_eq!(got.status, StatusCode::BAD_GATEWAY, "{}", got.text());
    }
    assert_eq!(
        origin.accepted(),
        2,
        "a broken response was served from the cache"
    );
}

/// Asks twice; a body cut short must not be what the second viewer gets.
async fn cut_short_is_not_stored(reply: &'static [u8]) {
    let origin = RawOrigin::start(Some(reply)).await;
    let edge = edge_for(&origin.addr.to_string()).await;
    for _ in 0..2 {
        let req = http::Request::get(format!("http://{}/", edge.viewer))
            .header("host", "o.example.com")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .expect("request");
        // The status went out before the body broke: the viewer's read fails
        // or comes up short, never a complete-looking object.
        if let Ok(got) = edge.client.try_send(req).await {
            assert_ne!(got.text(), "0123456789", "a truncated body looked whole");
        }
    }
    assert_eq!(
        origin.accepted(),
        2,
        "a truncated body was stored and served"
    );
}

#[tokio::test]
async fn a_body_cut_short_is_not_stored() {
    cut_short_is_not_stored(
        b"HTTP/1.1 200 OK\r\ncache-control: max-age=60\r\ncontent-length: 100\r\n\r\n0123456789",
    )
    .await;
}

#[tokio::test]
async fn a_chunked_body_without_its_last_chunk_is_not_stored() {
    cut_short_is_not_stored(
        b"HTTP/1.1 200 OK\r\ncache-control: max-age=60\r\ntransfer-encoding: chunked\r\n\r\na\r\n0123456789\r\n",
    )
    .await;
}

#[tokio::test]
async fn garbage_instead_of_a_response_is_a_502() {
    let origin = RawOrigin::start(Some(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")).await;
    let edge = edge_for(&origin.addr.to_string()).await;
    let got = edge.get("o.example.com", "/").await;
    assert_eq!(got.status, StatusCode::BAD_GATEWAY);
    assert_eq!(got.error_code(), "OriginProtocolError");
}
