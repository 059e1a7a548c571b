//! WebSockets end to end: a real client (tokio-tungstenite) through the host
//! to a real echo server, over plain and TLS viewer connections; hooks on
//! the handshake; idle timeouts; metrics and the access log; a thousand
//! sockets held through an alias move.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use edge_e2e::examples::{BLUEGREEN, EDGE_AUTH};
use edge_e2e::{Edge, Origin, Reply, Value, json};
use futures_util::{SinkExt as _, StreamExt as _};
use http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// A WebSocket origin that echoes every message prefixed with its name and
/// closes when told `close`; it refuses a handshake with `x-refuse` (403).
struct Echo {
    addr: SocketAddr,
    /// The handshake requests' fields, in arrival order.
    heads: Arc<Mutex<Vec<http::HeaderMap>>>,
    /// Connections accepted.
    accepted: Arc<AtomicUsize>,
}

impl Echo {
    async fn start(name: &'static str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let heads = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (seen, count) = (heads.clone(), accepted.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let seen = seen.clone();
                tokio::spawn(async move {
                    #[expect(
                        clippy::result_large_err,
                        reason = "tungstenite's callback returns its error response by value"
                    )]
                    let keep = |req: &http::Request<()>, resp| {
                        seen.lock().expect("heads").push(req.headers().clone());
                        if req.headers().contains_key("x-refuse") {
                            let mut no = http::Response::new(Some("refused".to_owned()));
                            *no.status_mut() = StatusCode::FORBIDDEN;
                            return Err(no);
                        }
                        Ok(resp)
                    };
                    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, keep).await else {
                        return;
                    };
                    while let Some(Ok(msg)) = ws.next().await {
                        let answer = match msg {
                            Message::Text(text) if text.as_str() == "close" => {
                                let _ = ws.close(None).await;
                                continue;
                            }
                            Message::Text(text) => Message::text(format!("{name}: {text}")),
                            Message::Binary(bytes) => Message::Binary(bytes),
                            _ => continue,
                        };
                        if ws.send(answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self {
            addr,
            heads,
            accepted,
        }
    }

    fn origin(&self, id: &str) -> Value {
        json!({"id": id, "domain_name": self.addr.to_string(), "protocol": "http"})
    }

    fn last_head(&self) -> http::HeaderMap {
        self.heads
            .lock()
            .expect("heads")
            .last()
            .cloned()
            .expect("a handshake reached the origin")
    }
}

/// Opens a WebSocket to `host` over `io` with extra request fields.
async fn open_over<S>(
    io: S,
    host: &str,
    fields: &[(&str, &str)],
) -> Result<(WebSocketStream<S>, http::Response<Option<Vec<u8>>>), WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut req = format!("ws://{host}/socket")
        .into_client_request()
        .expect("a request");
    for (name, value) in fields {
        req.headers_mut().insert(
            http::HeaderName::from_bytes(name.as_bytes()).expect("a name"),
            http::HeaderValue::from_str(value).expect("a value"),
        );
    }
    tokio_tungstenite::client_async(req, io).await
}

/// Opens a WebSocket to `host` through the host's plain listener.
async fn open(
    edge: &Edge,
    host: &str,
    fields: &[(&str, &str)],
) -> Result<
    (
        WebSocketStream<tokio::net::TcpStream>,
        http::Response<Option<Vec<u8>>>,
    ),
    WsError,
> {
    let tcp = tokio::net::TcpStream::connect(edge.viewer)
        .await
        .expect("connect");
    open_over(tcp, host, fields).await
}

/// Sends `text` and waits for the text that comes back.
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    text: &str,
) -> String {
    ws.send(Message::text(text)).await.expect("send");
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Text(answer)))) => return answer.as_str().to_owned(),
            Ok(Some(Ok(_))) => {}
            other => panic!("no answer to {text:?}: {other:?}"),
        }
    }
}

/// Waits for the socket to end (a close frame, or the connection closed).
async fn ended<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> bool {
    let end = async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), end)
        .await
        .is_ok()
}

#[tokio::test]
async fn websockets_pass_both_ways_until_either_side_closes_and_are_counted() {
    let origin = Echo::start("o").await;
    let log_dir = tempfile::tempdir().expect("temp dir");
    let log_path = log_dir.path().join("access.log");
    let path = log_path.clone();
    let edge = Edge::start_with(move |opts| opts.access_log = Some(path)).await;
    edge.create(json!({
        "aliases": ["ws.test"],
        "origins": [origin.origin("o")],
        "default_cache_behavior": {"target_origin_id": "o"},
        "logging": {"enabled": true},
    }))
    .await;

    let (mut ws, handshake) = open(&edge, "ws.test", &[("cookie", "a=b")])
        .await
        .expect("the handshake");
    assert_eq!(handshake.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert!(handshake.headers().contains_key("x-edge-request-id"));
    assert_eq!(echo(&mut ws, "hello").await, "o: hello");
    // Binary frames, and one large enough to span many reads.
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    ws.send(Message::binary(big.clone())).await.expect("send");
    let back = loop {
        match ws.next().await {
            Some(Ok(Message::Binary(bytes))) => break bytes,
            Some(Ok(_)) => {}
            other => panic!("no binary echo: {other:?}"),
        }
    };
    assert_eq!(&back[..], &big[..]);
    // The origin saw a handshake: the upgrade fields, the host's forwarding.
    let head = origin.last_head();
    assert_eq!(head["upgrade"], "websocket");
    assert!(
        head["connection"]
            .to_str()
            .is_ok_and(|v| v.to_ascii_lowercase().contains("upgrade")),
        "{head:?}"
    );
    assert!(head.contains_key("sec-websocket-key"));
    assert_eq!(head["x-forwarded-for"], "127.0.0.1");
    assert_eq!(head["cookie"], "a=b");
    assert_eq!(edge.metric("edge_websockets_open").await, 1);

    // The viewer closes.
    ws.close(None).await.expect("close");
    assert!(ended(&mut ws).await);
    let closed = || async { edge.metric("edge_websockets_open").await == 0 };
    assert!(edge_e2e::eventually(Duration::from_secs(10), closed).await);
    assert_eq!(edge.metric("edge_websockets_total").await, 1);
    assert!(edge.metric("edge_websocket_viewer_bytes_total").await > 200_000);
    assert!(edge.metric("edge_websocket_origin_bytes_total").await > 200_000);

    // The origin closes.
    let (mut ws, _) = open(&edge, "ws.test", &[]).await.expect("the handshake");
    ws.send(Message::text("close")).await.expect("send");
    assert!(
        ended(&mut ws).await,
        "the origin's close reached the viewer"
    );
    drop(ws);
    assert!(edge_e2e::eventually(Duration::from_secs(10), closed).await);
    assert_eq!(edge.metric("edge_websockets_total").await, 2);

    // Each socket has one access-log record, written when it closed, with
    // the bytes each side sent and its life.
    let logged = || {
        let path = log_path.clone();
        async move { std::fs::read_to_string(&path).is_ok_and(|t| t.lines().count() >= 2) }
    };
    assert!(edge_e2e::eventually(Duration::from_secs(10), logged).await);
    let text = std::fs::read_to_string(&log_path).expect("the access log");
    let first: Value = serde_json::from_str(text.lines().next().expect("a line")).expect("JSON");
    assert_eq!(first["sc_status"], 101);
    assert!(
        first["cs_bytes"].as_u64().is_some_and(|n| n > 200_000),
        "{first}"
    );
    assert!(
        first["sc_bytes"].as_u64().is_some_and(|n| n > 200_000),
        "{first}"
    );
    assert!(
        first["time_taken"].as_f64().is_some_and(|t| t > 0.0),
        "{first}"
    );
}

#[tokio::test]
async fn hooks_run_on_the_handshake_and_route_or_refuse_it() {
    let (blue, green) = (Echo::start("blue").await, Echo::start("green").await);
    let edge = Edge::start().await;
    edge.upload_hook("bluegreen", BLUEGREEN).await;
    edge.upload_hook("auth", EDGE_AUTH).await;
    let hooks = json!({
        "viewer_request": {"module": "bluegreen"},
        "viewer_response": {"module": "bluegreen"},
    });
    edge.create(json!({
        "aliases": ["live.test"],
        "origins": [blue.origin("blue"), green.origin("green")],
        "default_cache_behavior": {"target_origin_id": "blue", "hooks": hooks},
    }))
    .await;
    // The cookie picks the origin, for the handshake as for any request.
    for color in ["green", "blue", "green"] {
        let cookie = format!("deployment={color}");
        let (mut ws, _) = open(&edge, "live.test", &[("cookie", &cookie)])
            .await
            .expect("the handshake");
        assert_eq!(echo(&mut ws, "hi").await, format!("{color}: hi"));
    }
    assert_eq!(
        (
            blue.accepted.load(Ordering::SeqCst),
            green.accepted.load(Ordering::SeqCst)
        ),
        (1, 2)
    );
    // Without the cookie, the weighted choice (green's weight is 0) and the
    // sticky cookie on the 101.
    let (mut ws, handshake) = open(&edge, "live.test", &[]).await.expect("handshake");
    assert_eq!(echo(&mut ws, "new").await, "blue: new");
    let set = handshake
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(set.starts_with("deployment=blue"), "{set:?}");

    // A viewer-request hook may refuse the handshake: the origin never
    // hears of it.
    let guarded = Echo::start("guarded").await;
    edge.create(json!({
        "aliases": ["private.test"],
        "origins": [guarded.origin("o")],
        "default_cache_behavior": {"target_origin_id": "o", "hooks": {
            "viewer_request": {"module": "auth", "config": {"key": "s3cret"}},
        }},
    }))
    .await;
    match open(&edge, "private.test", &[]).await {
        Err(WsError::Http(resp)) => assert_eq!(resp.status(), StatusCode::UNAUTHORIZED),
        other => panic!("the hook did not refuse: {:?}", other.map(|(_, r)| r)),
    }
    assert_eq!(guarded.accepted.load(Ordering::SeqCst), 0);

    // An origin that does not switch protocols answers as it would any
    // request, and the viewer's connection stays HTTP.
    let plain = Origin::start(|_| Reply::ok("no sockets here").status(426)).await;
    edge.create(json!({
        "aliases": ["plain.test"],
        "origins": [{"id": "o", "domain_name": plain.domain(), "protocol": "http"}],
        "default_cache_behavior": {"target_origin_id": "o"},
    }))
    .await;
    match open(&edge, "plain.test", &[]).await {
        Err(WsError::Http(resp)) => {
            assert_eq!(resp.status(), StatusCode::UPGRADE_REQUIRED);
            assert_eq!(
                resp.body().as_deref(),
                Some(&b"no sockets here"[..]),
                "the origin's answer"
            );
        }
        other => panic!("expected the origin's 426: {:?}", other.map(|(_, r)| r)),
    }
    assert_eq!(edge.metric("edge_websockets_total").await, 4);
}

#[tokio::test]
async fn an_idle_websocket_is_closed_after_its_behaviors_timeout() {
    let origin = Echo::start("o").await;
    let edge = Edge::start().await;
    let config = |idle: Value| {
        json!({
            "aliases": ["idle.test"],
            "origins": [origin.origin("o")],
            "default_cache_behavior": {"target_origin_id": "o", "websocket_idle_timeout_seconds": idle},
        })
    };
    for bad in [json!(0), json!(86_401), json!("1")] {
        let refused = edge
            .api("POST", "/v1/distributions", Some(config(bad.clone())), &[])
            .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(
            refused.text().contains("websocket_idle_timeout_seconds"),
            "{}",
            refused.text()
        );
    }
    let created = edge.create(config(json!(1))).await;
    assert_eq!(
        created["config"]["default_cache_behavior"]["websocket_idle_timeout_seconds"],
        1
    );
    let (mut ws, _) = open(&edge, "idle.test", &[]).await.expect("the handshake");
    // Traffic keeps it open past the timeout.
    for i in 0..4 {
        assert_eq!(echo(&mut ws, &i.to_string()).await, format!("o: {i}"));
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert_eq!(edge.metric("edge_websockets_idle_closed_total").await, 0);
    // Silence closes it.
    assert!(ended(&mut ws).await, "the idle socket was closed");
    assert_eq!(edge.metric("edge_websockets_idle_closed_total").await, 1);
    assert_eq!(edge.metric("edge_websockets_open").await, 0);
}

#[tokio::test]
async fn websockets_reach_https_viewers() {
    let origin = Echo::start("o").await;
    let edge =
        Edge::start_with(|opts| opts.tls_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0))))
            .await;
    let tls_addr = edge
        .host
        .as_ref()
        .and_then(|h| h.tls_addr)
        .expect("a TLS listener");
    edge.create(json!({
        "aliases": ["www.tls.test"],
        "origins": [origin.origin("o")],
        "default_cache_behavior": {"target_origin_id": "o"},
    }))
    .await;
    let pem = |name: &str| std::fs::read_to_string(edge_e2e::tls::fixture(name)).expect("pem");
    let up = edge
        .api(
            "PUT",
            "/v1/certificates/site",
            Some(json!({"certificate_chain": pem("test-cert.pem"), "private_key": pem("test-key.pem")})),
            &[],
        )
        .await;
    assert_eq!(up.status, StatusCode::CREATED, "{}", up.text());
    let connector =
        tokio_rustls::TlsConnector::from(Arc::new(edge_e2e::tls::client_config(&[b"http/1.1"])));
    let tcp = tokio::net::TcpStream::connect(tls_addr)
        .await
        .expect("connect");
    let name = rustls::pki_types::ServerName::try_from("www.tls.test").expect("a name");
    let tls = connector.connect(name, tcp).await.expect("TLS");
    let (mut ws, handshake) = open_over(tls, "www.tls.test", &[])
        .await
        .expect("handshake");
    assert_eq!(handshake.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(echo(&mut ws, "secure").await, "o: secure");
    assert_eq!(origin.last_head()["x-forwarded-proto"], "https");
    ws.close(None).await.expect("close");
    assert!(ended(&mut ws).await);
}

#[tokio::test]
async fn a_thousand_websockets_stay_open_through_an_alias_move() {
    const SOCKETS: usize = 1000;
    let (a, b) = (Echo::start("A").await, Echo::start("B").await);
    let edge = Edge::start().await;
    let site = |alias: &str, origin: &Echo| {
        json!({
            "aliases": [alias],
            "origins": [origin.origin("o")],
            "default_cache_behavior": {"target_origin_id": "o"},
        })
    };
    edge.create(site("live.test", &a)).await;
    let moved_to = edge.create(site("next.test", &b)).await;
    let id_b = moved_to["id"].as_str().expect("an id").to_owned();

    let mut sockets = Vec::with_capacity(SOCKETS);
    for _ in 0..SOCKETS {
        let (ws, _) = open(&edge, "live.test", &[]).await.expect("a handshake");
        sockets.push(ws);
    }
    assert_eq!(edge.metric("edge_websockets_open").await, SOCKETS as u64);

    let moved = edge
        .api(
            "POST",
            &format!("/v1/distributions/{id_b}/associate-alias"),
            Some(json!({"alias": "live.test"})),
            &[],
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.text());
    // A new socket goes where the alias points now...
    let (mut fresh, _) = open(&edge, "live.test", &[]).await.expect("a handshake");
    assert_eq!(echo(&mut fresh, "new").await, "B: new");
    // ...and every socket opened before the move still talks to A.
    let talks = futures_util::future::join_all(
        sockets
            .iter_mut()
            .enumerate()
            .map(|(i, ws)| async move { echo(ws, &i.to_string()).await == format!("A: {i}") }),
    )
    .await;
    assert_eq!(talks.iter().filter(|ok| **ok).count(), SOCKETS);
    assert_eq!(a.accepted.load(Ordering::SeqCst), SOCKETS);
    assert_eq!(
        edge.metric("edge_websockets_open").await,
        SOCKETS as u64 + 1
    );
}

#[tokio::test]
async fn http2_viewers_open_websockets_with_extended_connect() {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use tokio_tungstenite::tungstenite::protocol::Role;

    let origin = Echo::start("o").await;
    let edge = Edge::start().await;
    edge.create(json!({
        "aliases": ["h2.test"],
        "origins": [origin.origin("o")],
        "default_cache_behavior": {"target_origin_id": "o"},
    }))
    .await;
    // HTTP/2 by prior knowledge on the plain listener.
    let tcp = tokio::net::TcpStream::connect(edge.viewer)
        .await
        .expect("connect");
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("an HTTP/2 connection");
    tokio::spawn(conn);
    let connect = |refuse: &str| {
        let mut req = http::Request::builder()
            .method(http::Method::CONNECT)
            .uri("http://h2.test/socket")
            .header("sec-websocket-version", "13")
            .header(refuse, "1")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .expect("a request");
        req.extensions_mut()
            .insert(hyper::ext::Protocol::from_static("websocket"));
        req
    };
    // The server's SETTINGS must be in before an extended CONNECT is sent:
    // a first request waits for them.
    let warm = http::Request::builder()
        .uri("http://h2.test/")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("a request");
    let _ = send.send_request(warm).await;

    let resp = send
        .send_request(connect("x-other"))
        .await
        .expect("an answer");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(!resp.headers().contains_key("sec-websocket-accept"));
    let stream = hyper::upgrade::on(resp).await.expect("the stream");
    let mut ws = WebSocketStream::from_raw_socket(TokioIo::new(stream), Role::Client, None).await;
    assert_eq!(echo(&mut ws, "over h2").await, "o: over h2");
    // The origin got an HTTP/1.1 handshake with the host's own key.
    let head = origin.last_head();
    assert_eq!(head["upgrade"], "websocket");
    assert_eq!(head["sec-websocket-version"], "13");
    assert!(head.contains_key("sec-websocket-key"));
    // A second socket on the same connection, beside the first.
    let resp = send
        .send_request(connect("x-other"))
        .await
        .expect("an answer");
    let stream = hyper::upgrade::on(resp).await.expect("the stream");
    let mut second =
        WebSocketStream::from_raw_socket(TokioIo::new(stream), Role::Client, None).await;
    assert_eq!(echo(&mut second, "two").await, "o: two");
    assert_eq!(echo(&mut ws, "one").await, "o: one");
    assert_eq!(edge.metric("edge_websockets_open").await, 2);
    // An origin that refuses is answered as it answered.
    let refused = send
        .send_request(connect("x-refuse"))
        .await
        .expect("an answer");
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(edge.metric("edge_websockets_total").await, 2);
}
