//! In-process origins on port 0 that record what they received and answer
//! as told.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::tls;

/// A request as an origin received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    /// Path and query.
    pub target: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// What a test origin answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// Wait this long before sending the response head.
    pub delay: Duration,
    /// Instead of `body`, stream this many bytes in 64 KiB chunks with no
    /// content-length.
    pub stream_bytes: Option<u64>,
}

impl Reply {
    pub fn ok(body: impl Into<Bytes>) -> Self {
        Self {
            status: StatusCode::OK,
            headers: Vec::new(),
            body: body.into(),
            delay: Duration::ZERO,
            stream_bytes: None,
        }
    }

    pub fn status(mut self, status: u16) -> Self {
        self.status = StatusCode::from_u16(status).expect("valid status");
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    pub fn stream(mut self, bytes: u64) -> Self {
        self.stream_bytes = Some(bytes);
        self
    }
}

type Handler = dyn Fn(&Seen) -> Reply + Send + Sync;
type OriginBody = http_body_util::Either<Full<Bytes>, ZeroBody>;

/// A body of zero bytes generated as it is read, so an origin can send a huge
/// object without holding it.
#[derive(Debug)]
pub struct ZeroBody {
    left: u64,
    chunk: Bytes,
}

impl http_body::Body for ZeroBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return std::task::Poll::Ready(None);
        }
        let n = self.left.min(self.chunk.len() as u64);
        self.left -= n;
        let chunk = self.chunk.slice(..usize::try_from(n).unwrap_or(0));
        std::task::Poll::Ready(Some(Ok(Frame::data(chunk))))
    }
}

/// An in-process origin on a loopback port chosen by the system.
#[derive(Debug)]
pub struct Origin {
    pub addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Origin {
    /// Starts an origin that answers every request with `handler`.
    pub async fn start(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Self {
        Self::start_with(None, handler).await
    }

    /// Starts an HTTPS origin with the test certificate (`fixtures/`), for
    /// `localhost` and `127.0.0.1`, signed by `fixtures/test-ca.pem`.
    pub async fn start_tls(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Self {
        Self::start_with(Some(tls::acceptor(&[b"http/1.1"])), handler).await
    }

    async fn start_with(
        tls: Option<tokio_rustls::TlsAcceptor>,
        handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind origin");
        let addr = listener.local_addr().expect("origin addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let (h, s, c) = (hits.clone(), seen.clone(), connections.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                let (handler, hits, seen) = (handler.clone(), h.clone(), s.clone());
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let (handler, hits, seen) = (handler.clone(), hits.clone(), seen.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let req = Seen {
                                method: parts.method,
                                target: parts
                                    .uri
                                    .path_and_query()
                                    .map(|p| p.to_string())
                                    .unwrap_or_default(),
                                headers: parts.headers,
                                body,
                            };
                            hits.fetch_add(1, Ordering::SeqCst);
                            let reply = handler(&req);
                            seen.lock().expect("seen lock").push(req);
                            if !reply.delay.is_zero() {
                                tokio::time::sleep(reply.delay).await;
                            }
                            Ok::<_, Infallible>(build_reply(reply))
                        }
                    });
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let _ = http1::Builder::new()
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            }
                        }
                        None => {
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                    }
                });
            }
        });
        Self {
            addr,
            hits,
            connections,
            seen,
            task,
        }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// An origin that answers `body` with the given headers to everything.
    pub async fn fixed(body: &'static str, headers: &[(&'static str, &'static str)]) -> Self {
        let headers: Vec<(&'static str, &'static str)> = headers.to_vec();
        Self::start(move |_| {
            headers
                .iter()
                .fold(Reply::ok(body), |r, (n, v)| r.header(n, v))
        })
        .await
    }

    /// Requests received so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Every request it saw, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen lock").clone()
    }

    /// The last request received.
    pub fn last(&self) -> Seen {
        self.seen
            .lock()
            .expect("seen lock")
            .last()
            .cloned()
            .expect("the origin saw a request")
    }

    /// `host:port` for a config's `domain_name`.
    pub fn domain(&self) -> String {
        self.addr.to_string()
    }
}

fn build_reply(reply: Reply) -> Response<OriginBody> {
    let body = match reply.stream_bytes {
        Some(left) => http_body_util::Either::Right(ZeroBody {
            left,
            chunk: Bytes::from(vec![0u8; 64 * 1024]),
        }),
        None => http_body_util::Either::Left(Full::new(reply.body)),
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = reply.status;
    for (n, v) in reply.headers {
        resp.headers_mut().append(
            http::HeaderName::from_bytes(n.as_bytes()).expect("header name"),
            v.parse().expect("header value"),
        );
    }
    resp
}
