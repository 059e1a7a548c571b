//! gRPC through the host to HTTP/2 origins: a real gRPC server and client
//! (tonic's, carried by hyper), unary and streaming calls with their
//! trailers, routing by path and metadata, and gRPC statuses for the host's
//! own errors.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use edge_e2e::examples::HEADER_ROUTER;
use edge_e2e::{Edge, Origin, Reply, Value, json};
use futures_util::{Stream, StreamExt as _};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tonic::{Code, Status};

#[derive(Clone, PartialEq, prost::Message)]
struct Say {
    #[prost(string, tag = "1")]
    text: String,
    #[prost(uint32, tag = "2")]
    count: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Said {
    #[prost(string, tag = "1")]
    text: String,
}

/// The server encodes `Said` and decodes `Say`; the client the other way.
type ServerCodec = tonic_prost::ProstCodec<Said, Say>;
type ClientCodec = tonic_prost::ProstCodec<Say, Said>;
type Replies = Pin<Box<dyn Stream<Item = Result<Said, Status>> + Send>>;

/// The service's three methods, answering as `name`.
#[derive(Clone)]
struct Echo {
    name: &'static str,
    calls: Arc<AtomicUsize>,
}

impl Echo {
    fn said(&self, text: &str) -> Said {
        Said {
            text: format!("{}: {text}", self.name),
        }
    }
}

/// `/echo.Echo/Say`: one answer; `fail` is answered NOT_FOUND.
struct Unary(Echo);

impl tonic::server::UnaryService<Say> for Unary {
    type Response = Said;
    type Future = std::future::Ready<Result<tonic::Response<Said>, Status>>;

    fn call(&mut self, request: tonic::Request<Say>) -> Self::Future {
        self.0.calls.fetch_add(1, Ordering::SeqCst);
        let say = request.into_inner();
        std::future::ready(if say.text == "fail" {
            Err(Status::not_found("no such thing"))
        } else {
            Ok(tonic::Response::new(self.0.said(&say.text)))
        })
    }
}

/// `/echo.Echo/Count`: `count` answers.
struct ServerStream(Echo);

impl tonic::server::ServerStreamingService<Say> for ServerStream {
    type Response = Said;
    type ResponseStream = Replies;
    type Future = std::future::Ready<Result<tonic::Response<Replies>, Status>>;

    fn call(&mut self, request: tonic::Request<Say>) -> Self::Future {
        self.0.calls.fetch_add(1, Ordering::SeqCst);
        let say = request.into_inner();
        let echo = self.0.clone();
        let replies = futures_util::stream::iter(
            (0..say.count).map(move |i| Ok(echo.said(&format!("{} {i}", say.text)))),
        );
        std::future::ready(Ok(tonic::Response::new(Box::pin(replies) as Replies)))
    }
}

/// `/echo.Echo/Chat`: each message answered as it comes.
struct Bidi(Echo);

impl tonic::server::StreamingService<Say> for Bidi {
    type Response = Said;
    type ResponseStream = Replies;
    type Future = std::future::Ready<Result<tonic::Response<Replies>, Status>>;

    fn call(&mut self, request: tonic::Request<tonic::Streaming<Say>>) -> Self::Future {
        self.0.calls.fetch_add(1, Ordering::SeqCst);
        let echo = self.0.clone();
        let replies = request
            .into_inner()
            .map(move |say| say.map(|say| echo.said(&say.text)));
        std::future::ready(Ok(tonic::Response::new(Box::pin(replies) as Replies)))
    }
}

/// A gRPC server on HTTP/2 in clear (h2c), counting its connections.
struct GrpcOrigin {
    addr: SocketAddr,
    calls: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
}

impl GrpcOrigin {
    async fn start(name: &'static str) -> Self {
        Self::start_with(name, None).await
    }

    /// Over TLS with the test certificate, agreeing on `h2` by ALPN.
    async fn start_tls(name: &'static str) -> Self {
        Self::start_with(name, Some(edge_e2e::tls::acceptor(&[b"h2"]))).await
    }

    async fn start_with(name: &'static str, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let echo = Echo {
            name,
            calls: Arc::new(AtomicUsize::new(0)),
        };
        let connections = Arc::new(AtomicUsize::new(0));
        let (calls, count) = (echo.calls.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let echo = echo.clone();
                let service = hyper::service::service_fn(move |req| {
                    let echo = echo.clone();
                    async move {
                        let mut grpc = tonic::server::Grpc::new(ServerCodec::default());
                        let resp = match req.uri().path() {
                            "/echo.Echo/Say" => grpc.unary(Unary(echo), req).await,
                            "/echo.Echo/Count" => {
                                grpc.server_streaming(ServerStream(echo), req).await
                            }
                            "/echo.Echo/Chat" => grpc.streaming(Bidi(echo), req).await,
                            _ => Status::unimplemented("no such method").into_http(),
                        };
                        Ok::<_, Infallible>(resp)
                    }
                });
                let tls = tls.clone();
                tokio::spawn(async move {
                    let builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                    match tls {
                        None => {
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                        Some(tls) => {
                            let Ok(stream) = tls.accept(stream).await else {
                                return;
                            };
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                    }
                });
            }
        });
        Self {
            addr,
            calls,
            connections,
        }
    }

    fn origin(&self, id: &str) -> Value {
        json!({"id": id, "domain_name": self.addr.to_string(), "protocol": "http", "protocol_version": "h2"})
    }
}

/// A gRPC client's channel: one HTTP/2 connection (h2c) to the host.
#[derive(Clone)]
struct Channel(hyper::client::conn::http2::SendRequest<tonic::body::Body>);

impl tower_service::Service<http::Request<tonic::body::Body>> for Channel {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = hyper::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, hyper::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), hyper::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(self.0.send_request(req))
    }
}

/// A gRPC client of `authority` through the host.
async fn client(edge: &Edge, authority: &str) -> tonic::client::Grpc<Channel> {
    let tcp = tokio::net::TcpStream::connect(edge.viewer)
        .await
        .expect("connect");
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("an HTTP/2 connection");
    tokio::spawn(conn);
    let origin = format!("http://{authority}").parse().expect("a URI");
    tonic::client::Grpc::with_origin(Channel(send), origin)
}

async fn say(
    grpc: &mut tonic::client::Grpc<Channel>,
    text: &str,
    canary: bool,
) -> Result<String, Status> {
    grpc.ready()
        .await
        .map_err(|e| Status::unknown(e.to_string()))?;
    let mut request = tonic::Request::new(Say {
        text: text.to_owned(),
        count: 0,
    });
    if canary {
        request
            .metadata_mut()
            .insert("x-canary", "1".parse().expect("metadata"));
    }
    let path = http::uri::PathAndQuery::from_static("/echo.Echo/Say");
    let said: tonic::Response<Said> = grpc.unary(request, path, ClientCodec::default()).await?;
    Ok(said.into_inner().text)
}

#[tokio::test]
async fn grpc_calls_reach_http2_origins_with_their_trailers() {
    let (blue, green) = (
        GrpcOrigin::start("blue").await,
        GrpcOrigin::start("green").await,
    );
    let edge = Edge::start().await;
    edge.upload_hook("router", HEADER_ROUTER).await;
    // Metadata routes (`x-canary: 1` to green), and so does the method's
    // path (the streaming `Count` to green).
    edge.create(json!({
        "aliases": ["grpc.test"],
        "origins": [blue.origin("blue"), green.origin("green")],
        "default_cache_behavior": {"target_origin_id": "blue", "hooks": {
            "viewer_request": {"module": "router", "config": {
                "header": "x-canary", "value": "1", "origin": "green",
                "path_prefix": "/echo.Echo/Count", "path_origin": "green",
            }},
        }},
    }))
    .await;
    let mut grpc = client(&edge, "grpc.test").await;

    // Unary, twenty calls at once: every call reaches the origin (never
    // cached), all multiplexed on one connection.
    let calls = (0..20).map(|i| {
        let mut grpc = grpc.clone();
        async move { say(&mut grpc, &format!("hi {i}"), false).await }
    });
    let answers = futures_util::future::join_all(calls).await;
    for (i, answer) in answers.into_iter().enumerate() {
        assert_eq!(answer.expect("a call"), format!("blue: hi {i}"));
    }
    assert_eq!(blue.calls.load(Ordering::SeqCst), 20);
    assert_eq!(blue.connections.load(Ordering::SeqCst), 1);
    assert_eq!(
        say(&mut grpc, "hi", true).await.expect("a call"),
        "green: hi"
    );
    // The origin's own status comes through in its trailers.
    let failed = say(&mut grpc, "fail", false).await.expect_err("NOT_FOUND");
    assert_eq!(failed.code(), Code::NotFound);
    assert_eq!(failed.message(), "no such thing");

    // Server streaming, routed by path.
    grpc.ready().await.expect("ready");
    let request = tonic::Request::new(Say {
        text: "n".to_owned(),
        count: 3,
    });
    let path = http::uri::PathAndQuery::from_static("/echo.Echo/Count");
    let mut stream = grpc
        .server_streaming(request, path, ClientCodec::default())
        .await
        .expect("a stream")
        .into_inner();
    let mut got = Vec::new();
    while let Some(said) = stream.message().await.expect("a message") {
        got.push(said.text);
    }
    assert_eq!(got, ["green: n 0", "green: n 1", "green: n 2"]);
    let trailers = stream.trailers().await.expect("trailers").expect("some");
    assert_eq!(
        trailers
            .get("grpc-status")
            .map(|v| v.to_str().expect("ascii")),
        Some("0")
    );

    // Bidirectional streaming: each message answered before the next goes.
    grpc.ready().await.expect("ready");
    let (tx, rx) = tokio::sync::mpsc::channel::<Say>(1);
    let outbound = tokio_stream_from(rx);
    let path = http::uri::PathAndQuery::from_static("/echo.Echo/Chat");
    let mut replies = grpc
        .streaming(tonic::Request::new(outbound), path, ClientCodec::default())
        .await
        .expect("a stream")
        .into_inner();
    for word in ["one", "two", "three"] {
        tx.send(Say {
            text: word.to_owned(),
            count: 0,
        })
        .await
        .expect("send");
        let said = replies.message().await.expect("a reply").expect("some");
        assert_eq!(said.text, format!("blue: {word}"));
    }
    drop(tx);
    assert!(replies.message().await.expect("the end").is_none());
}

/// A stream of what `rx` receives.
fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Say>,
) -> impl Stream<Item = Say> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test]
async fn https_origins_agree_on_http2_by_alpn() {
    let origin = GrpcOrigin::start_tls("tls").await;
    let edge = Edge::start_with(|opts| {
        opts.origin_ca_file = Some(edge_e2e::tls::fixture("test-ca.pem"));
    })
    .await;
    edge.create(json!({
        "aliases": ["alpn.test"],
        "origins": [{"id": "o", "domain_name": format!("localhost:{}", origin.addr.port()), "protocol": "https", "protocol_version": "auto"}],
        "default_cache_behavior": {"target_origin_id": "o"},
    }))
    .await;
    let mut grpc = client(&edge, "alpn.test").await;
    for i in 0..3 {
        assert_eq!(
            say(&mut grpc, &i.to_string(), false).await.expect("a call"),
            format!("tls: {i}")
        );
    }
    assert_eq!(origin.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_hosts_own_errors_reach_grpc_clients_as_grpc_statuses() {
    let edge = Edge::start().await;
    // An origin nobody listens on.
    let gone = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let gone_addr = gone.local_addr().expect("addr");
    drop(gone);
    edge.create(json!({
        "aliases": ["down.test"],
        "origins": [{"id": "o", "domain_name": gone_addr.to_string(), "protocol": "http", "protocol_version": "h2"}],
        "default_cache_behavior": {"target_origin_id": "o"},
    }))
    .await;
    let mut grpc = client(&edge, "down.test").await;
    let status = say(&mut grpc, "hi", false).await.expect_err("UNAVAILABLE");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(status.message(), "the origin could not be reached");
    assert_eq!(
        status
            .metadata()
            .get("x-edge-error")
            .map(|v| v.to_str().expect("ascii")),
        Some("OriginConnectionFailed")
    );
    // A name the host serves no distribution for.
    let mut stranger = client(&edge, "nobody.test").await;
    let status = say(&mut stranger, "hi", false)
        .await
        .expect_err("UNIMPLEMENTED");
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");

    // A plain HTTP request to the same origin still gets the JSON error.
    let got = edge.get("down.test", "/").await;
    assert_eq!(got.status, http::StatusCode::BAD_GATEWAY);
    assert_eq!(got.error_code(), "OriginConnectionFailed");
}

#[tokio::test]
async fn origins_speak_the_http_version_configured() {
    // An HTTP/1.1-only origin: reached with `auto` in clear (HTTP/1.1), not
    // with `h2` (prior knowledge, which it refuses).
    let plain = Origin::start(|_| Reply::ok("spoken to in HTTP/1.1")).await;
    let edge = Edge::start().await;
    let origin = |version: &str| json!({"id": "o", "domain_name": plain.domain(), "protocol": "http", "protocol_version": version});
    let created = edge
        .create(json!({
            "aliases": ["auto.test"],
            "origins": [origin("auto")],
            "default_cache_behavior": {"target_origin_id": "o"},
        }))
        .await;
    assert_eq!(created["config"]["origins"][0]["protocol_version"], "auto");
    let got = edge.get("auto.test", "/").await;
    assert_eq!(got.text(), "spoken to in HTTP/1.1");
    edge.create(json!({
        "aliases": ["h2.test"],
        "origins": [origin("h2")],
        "default_cache_behavior": {"target_origin_id": "o"},
    }))
    .await;
    let got = edge.get("h2.test", "/").await;
    assert_eq!(got.status, http::StatusCode::BAD_GATEWAY, "{}", got.text());
    // The default is HTTP/1.1 and is not written back.
    let default = edge
        .create(json!({
            "aliases": ["h1.test"],
            "origins": [{"id": "o", "domain_name": plain.domain(), "protocol": "http"}],
            "default_cache_behavior": {"target_origin_id": "o"},
        }))
        .await;
    assert!(
        default["config"]["origins"][0]
            .get("protocol_version")
            .is_none()
    );
    // A bad value names the field and the choices.
    let refused = edge
        .api(
            "POST",
            "/v1/distributions",
            Some(json!({
                "origins": [{"id": "o", "domain_name": "a.test", "protocol_version": "h3"}],
                "default_cache_behavior": {"target_origin_id": "o"},
            })),
            &[],
        )
        .await;
    assert_eq!(refused.status, http::StatusCode::BAD_REQUEST);
    let text = refused.text();
    assert!(
        text.contains("origins[0].protocol_version") && text.contains("h2"),
        "{text}"
    );
}
