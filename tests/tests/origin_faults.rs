//! Origins that misbehave at the byte level: refused connections, silence, a
//! head that trickles in, bodies cut short, reset or stalled, broken framing.
//! Each fails only its request, with the status a CDN gives, and nothing
//! broken is stored; a slow but steady body is not a fault.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use edge_e2e::{Edge, json};
use http::StatusCode;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpListener;

/// A TCP origin that reads a request head, then writes `reply` and closes
/// (or, with `None`, says nothing and holds the connection).
struct RawOrigin {
    addr: std::net::SocketAddr,
    accepted: Arc<AtomicUsize>,
}

/// One step of a scripted origin's answer.
#[derive(Clone, Copy)]
enum Step {
    Write(&'static [u8]),
    Wait(Duration),
    /// Drop the connection with a TCP reset instead of a clean close.
    Reset,
}

impl RawOrigin {
    /// An origin that plays `steps` on every connection after reading the
    /// request head, then closes.
    async fn scripted(steps: Vec<Step>) -> Self {
        let steps: Arc<[Step]> = steps.into();
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
                let steps = steps.clone();
                tokio::spawn(async move {
                    if edge_e2e::read_request_head(&mut stream).await.is_none() {
                        return;
                    }
                    for step in steps.iter() {
                        match step {
                            Step::Write(bytes) => {
                                if stream.write_all(bytes).await.is_err() {
                                    return;
                                }
                            }
                            Step::Wait(d) => tokio::time::sleep(*d).await,
                            Step::Reset => {
                                // A zero linger turns the close into a reset.
                                stream.set_zero_linger().expect("SO_LINGER 0");
                                drop(stream);
                                return;
                            }
                        }
                    }
                    let _ = stream.shutdown().await;
                });
            }
        });
        Self { addr, accepted }
    }

    async fn start(reply: Option<&'static [u8]>) -> Self {
        Self::scripted(match reply {
            Some(bytes) => vec![Step::Write(bytes)],
            None => vec![Step::Wait(Duration::from_secs(30))],
        })
        .await
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
    // A socket bound but not listening: connecting to it is refused, and the
    // port stays taken (a freed port could go to the host's own listener).
    let reserved = tokio::net::TcpSocket::new_v4().expect("socket");
    reserved
        .bind("127.0.0.1:0".parse().expect("address"))
        .expect("bind");
    let port = reserved.local_addr().expect("address").port();
    let edge = edge_for(&format!("127.0.0.1:{port}")).await;
    let got = edge.get("o.example.com", "/").await;
    assert_eq!(got.status, StatusCode::BAD_GATEWAY);
    assert_eq!(got.error_code(), "OriginConnectionFailed");
    // The viewer learns what failed, not the origin's address or the OS error.
    let text = got.text();
    assert!(
        !text.contains(&port.to_string())
            && !text.contains("os error")
            && !text.contains("refused"),
        "{text}"
    );
    assert_eq!(
        got.json()["error"]["request_id"].as_str(),
        got.header("x-edge-request-id")
    );
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

#[tokio::test]
async fn a_reset_mid_body_fails_the_viewer_and_is_not_stored() {
    let steps = vec![
        Step::Write(
            b"HTTP/1.1 200 OK\r\ncache-control: max-age=60\r\ncontent-length: 100\r\n\r\n0123456789",
        ),
        Step::Reset,
    ];
    let origin = RawOrigin::scripted(steps).await;
    let edge = edge_for(&origin.addr.to_string()).await;
    for _ in 0..2 {
        let req = http::Request::get(format!("http://{}/", edge.viewer))
            .header("host", "o.example.com")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .expect("request");
        if let Ok(got) = edge.client.try_send(req).await {
            assert_ne!(got.text().len(), 100, "a reset body looked whole");
        }
    }
    assert_eq!(origin.accepted(), 2, "a reset body was stored and served");
    // The host is unharmed.
    let health = edge.api("GET", "/healthz", None, &[]).await;
    assert_eq!(health.status, StatusCode::OK);
}

#[tokio::test]
async fn a_head_that_trickles_past_the_read_timeout_is_a_504() {
    // The status line at once, then a header byte every 150 ms: the head is
    // not complete within the 400 ms read timeout.
    let steps = vec![
        Step::Write(b"HTTP/1.1 200 OK\r\n"),
        Step::Wait(Duration::from_millis(150)),
        Step::Write(b"x"),
        Step::Wait(Duration::from_millis(150)),
        Step::Write(b"-"),
        Step::Wait(Duration::from_millis(150)),
        Step::Write(b"a"),
        Step::Wait(Duration::from_secs(5)),
    ];
    let origin = RawOrigin::scripted(steps).await;
    let edge = edge_for(&origin.addr.to_string()).await;
    let started = std::time::Instant::now();
    let got = edge.get("o.example.com", "/").await;
    assert_eq!(got.status, StatusCode::GATEWAY_TIMEOUT, "{}", got.text());
    assert_eq!(got.error_code(), "OriginTimeout");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_body_that_stalls_past_the_read_timeout_is_cut_and_not_stored() {
    let steps = vec![
        Step::Write(
            b"HTTP/1.1 200 OK\r\ncache-control: max-age=60\r\ncontent-length: 20\r\n\r\n0123456789",
        ),
        Step::Wait(Duration::from_secs(3)),
        Step::Write(b"abcdefghij"),
    ];
    let origin = RawOrigin::scripted(steps).await;
    let edge = edge_for(&origin.addr.to_string()).await;
    for _ in 0..2 {
        let started = std::time::Instant::now();
        let req = http::Request::get(format!("http://{}/", edge.viewer))
            .header("host", "o.example.com")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .expect("request");
        if let Ok(got) = edge.client.try_send(req).await {
            assert_ne!(
                got.text(),
                "0123456789abcdefghij",
                "a stalled body was waited out"
            );
        }
        // Cut at the body's idle timeout (400 ms), not when the origin resumed.
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
    assert_eq!(origin.accepted(), 2, "a stalled body was stored and served");
}

#[tokio::test]
async fn a_slow_but_steady_body_is_served_whole_and_stored() {
    // Every gap is under the 400 ms read timeout, the whole body takes longer.
    let steps = vec![
        Step::Write(
            b"HTTP/1.1 200 OK\r\ncache-control: max-age=60\r\ncontent-length: 12\r\n\r\nslow",
        ),
        Step::Wait(Duration::from_millis(200)),
        Step::Write(b"-but"),
        Step::Wait(Duration::from_millis(200)),
        Step::Write(b"-ok"),
        Step::Wait(Duration::from_millis(200)),
        Step::Write(b"!"),
    ];
    let origin = RawOrigin::scripted(steps).await;
    let edge = edge_for(&origin.addr.to_string()).await;
    let first = edge.get("o.example.com", "/").await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.text(), "slow-but-ok!");
    let second = edge.get("o.example.com", "/").await;
    assert_eq!(second.text(), "slow-but-ok!");
    assert_eq!(second.cache(), "Hit");
    assert_eq!(origin.accepted(), 1);
}
