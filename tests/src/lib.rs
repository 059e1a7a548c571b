//! Harness for end-to-end tests: a real host on port 0, real origins on port 0,
//! a real HTTP client.
#![forbid(unsafe_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use edge::{HostOptions, RunningHost};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

pub use serde_json::{Value, json};

/// Paths of the example hooks built by `build.rs`, and `for_each_example!`.
pub mod examples {
    include!(concat!(env!("OUT_DIR"), "/examples.rs"));
}

/// JavaScript hooks: the SDK's npm packages (componentize-js), installed once
/// per test process, and builds of hook modules with them.
pub mod js {
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::sync::Mutex;

    /// The repository root.
    pub fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the repository root")
            .to_path_buf()
    }

    /// `guest-sdk/js`, after `npm ci` there if its packages are missing.
    pub fn sdk_dir() -> PathBuf {
        static INSTALL: Mutex<()> = Mutex::new(());
        let _once = INSTALL
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let dir = root().join("guest-sdk/js");
        if !dir
            .join("node_modules/@bytecodealliance/componentize-js")
            .exists()
        {
            let status = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir)
                .status()
                .expect("running npm (Node.js is needed for JavaScript hooks)");
            assert!(status.success(), "npm ci in {} failed", dir.display());
        }
        dir
    }

    /// Builds `source` (relative to the repository root, which must hold
    /// every module it imports) into the component `out`.
    pub fn build(source: &str, out: &Path) {
        let sdk = sdk_dir();
        let output = Command::new("node")
            .arg(sdk.join("build.mjs"))
            .arg(source)
            .arg(out)
            .current_dir(root())
            .output()
            .expect("running node");
        assert!(
            output.status.success(),
            "building {source} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// The test certificates in `tests/fixtures/`.
pub mod tls {
    use std::path::PathBuf;
    use std::sync::Arc;

    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    /// A file of `tests/fixtures/`.
    pub fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(name)
    }

    /// The test server certificate chain and key.
    pub fn server_identity() -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let certs = CertificateDer::pem_file_iter(fixture("test-cert.pem"))
            .expect("test-cert.pem")
            .collect::<Result<Vec<_>, _>>()
            .expect("certificates");
        let key = PrivateKeyDer::from_pem_file(fixture("test-key.pem")).expect("test-key.pem");
        (certs, key)
    }

    /// A TLS acceptor with the test certificate, offering `alpn`.
    pub fn acceptor(alpn: &[&[u8]]) -> tokio_rustls::TlsAcceptor {
        let (certs, key) = server_identity();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("test certificate");
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }

    /// A client config that trusts the test CA, offering `alpn`.
    pub fn client_config(alpn: &[&[u8]]) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(fixture("test-ca.pem")).expect("test-ca.pem") {
            roots
                .add(cert.expect("CA certificate"))
                .expect("CA accepted");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        config
    }
}

/// The token every test host uses.
pub const TOKEN: &str = "test-token";

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

/// A response as a viewer or API client received it.
#[derive(Debug)]
pub struct Got {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Got {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `Hit`, `Miss`, `RefreshHit` or `Error`, from `x-cache`.
    pub fn cache(&self) -> &str {
        self.header("x-cache")
            .and_then(|v| v.strip_suffix(" from edge"))
            .unwrap_or("none")
    }

    /// The error code of a JSON error body.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }
}

/// A real HTTP/1.1 client with a keep-alive pool.
#[derive(Clone, Debug)]
pub struct HttpClient {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for HttpClient {
    fn default() -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }
}

impl HttpClient {
    pub async fn send(&self, req: Request<Full<Bytes>>) -> Got {
        self.try_send(req).await.expect("request failed")
    }

    pub async fn try_send(&self, req: Request<Full<Bytes>>) -> Result<Got, String> {
        let resp = self.client.request(req).await.map_err(|e| e.to_string())?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok(Got {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

/// A running host with its data dir.
#[derive(Debug)]
pub struct Edge {
    pub host: Option<RunningHost>,
    pub dir: tempfile::TempDir,
    pub client: HttpClient,
    pub viewer: SocketAddr,
    pub control: SocketAddr,
}

impl Edge {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a host on a new data dir, letting `tweak` change the options.
    pub async fn start_with(tweak: impl FnOnce(&mut HostOptions)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(dir, tweak).await
    }

    /// Starts a host on an existing data dir.
    pub async fn start_in(dir: tempfile::TempDir, tweak: impl FnOnce(&mut HostOptions)) -> Self {
        let mut opts = HostOptions::new(dir.path());
        opts.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        opts.control = SocketAddr::from(([127, 0, 0, 1], 0));
        opts.token = Some(TOKEN.to_owned());
        opts.host_id = "edge-test".to_owned();
        tweak(&mut opts);
        let host = RunningHost::start(opts).await.expect("start host");
        Self {
            viewer: host.viewer_addr,
            control: host.control_addr,
            host: Some(host),
            dir,
            client: HttpClient::default(),
        }
    }

    /// Stops the host and hands back its data dir.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(host) = self.host.take() {
            host.shutdown().await;
        }
        self.dir
    }

    /// Stops the host the way a crash does: no draining, no goodbye to the
    /// fleet.
    pub async fn crash(mut self) -> tempfile::TempDir {
        if let Some(host) = self.host.take() {
            host.abort().await;
        }
        self.dir
    }

    /// A control API request with the token.
    pub async fn api(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Got {
        let body = body
            .map(|b| serde_json::to_vec(&b).expect("json"))
            .unwrap_or_default();
        self.api_raw(method, path, body, headers, Some(TOKEN)).await
    }

    /// A control API request with a raw body and an optional token.
    pub async fn api_raw(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
        token: Option<&str>,
    ) -> Got {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.control))
            .header("content-type", "application/json");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        self.client
            .send(req.body(Full::new(Bytes::from(body))).expect("request"))
            .await
    }

    /// Creates a distribution; panics unless the API answers 201.
    pub async fn create(&self, config: Value) -> Value {
        let got = self
            .api("POST", "/v1/distributions", Some(config), &[])
            .await;
        assert_eq!(got.status, StatusCode::CREATED, "{}", got.text());
        got.json()
    }

    /// Uploads a hook component from a file; returns its version.
    pub async fn upload_hook(&self, name: &str, path: &str) -> String {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
        let got = self
            .api_raw("PUT", &format!("/v1/hooks/{name}"), bytes, &[], Some(TOKEN))
            .await;
        assert_eq!(got.status, StatusCode::CREATED, "{}", got.text());
        got.json()["version"].as_str().expect("version").to_owned()
    }

    /// Sets a KV value.
    pub async fn kv_put(&self, namespace: &str, key: &str, value: &str) {
        let got = self
            .api_raw(
                "PUT",
                &format!("/v1/kv/{namespace}/{key}"),
                value.as_bytes().to_vec(),
                &[],
                Some(TOKEN),
            )
            .await;
        assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    }

    /// Writes `request` as raw bytes on a new viewer connection; everything
    /// the host sent back before closing (or 2 s).
    pub async fn raw_exchange(&self, request: &[u8]) -> String {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut s = tokio::net::TcpStream::connect(self.viewer)
            .await
            .expect("connect");
        s.write_all(request).await.expect("write");
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    /// A viewer GET of `path` with `Host: host`.
    pub async fn get(&self, host: &str, path: &str) -> Got {
        self.request("GET", host, path, &[]).await
    }

    /// A viewer request.
    pub async fn request(
        &self,
        method: &str,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Got {
        self.request_with_body(method, host, path, headers, Bytes::new())
            .await
    }

    pub async fn request_with_body(
        &self,
        method: &str,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Got {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.viewer))
            .header("host", host);
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        self.client
            .send(req.body(Full::new(body)).expect("request"))
            .await
    }
}

impl Edge {
    /// Copies distribution `id` as a staging distribution and gives the copy
    /// `config`; the copy's id.
    pub async fn staging_copy(&self, id: &str, config: Value) -> String {
        let got = self
            .api(
                "POST",
                &format!("/v1/distributions/{id}/copy"),
                Some(json!({"staging": true})),
                &[],
            )
            .await;
        assert_eq!(got.status, StatusCode::CREATED, "{}", got.text());
        let staging = got.json()["id"].as_str().expect("an id").to_owned();
        let etag = got.header("etag").expect("an ETag").to_owned();
        let put = self
            .api(
                "PUT",
                &format!("/v1/distributions/{staging}/config"),
                Some(config),
                &[("if-match", &etag)],
            )
            .await;
        assert_eq!(put.status, StatusCode::OK, "{}", put.text());
        staging
    }
}

/// Routes through the plugin `edge hook new` writes, uploaded to `edge` as
/// `canary`, attached with `association` on both viewer events: a plain
/// request goes to origin `web` and carries `x-hook: canary`, one with
/// `x-canary: 1` goes to origin `canary`. Returns the two origins, which
/// serve as long as they are kept.
pub async fn assert_new_plugin_routes(edge: &Edge, association: Value) -> (Origin, Origin) {
    let (web, canary) = (
        Origin::start(|_| Reply::ok("web")).await,
        Origin::start(|_| Reply::ok("canary")).await,
    );
    edge.create(json!({
        "aliases": ["p.example.com"],
        "origins": [
            {"id": "web", "domain_name": web.domain(), "protocol": "http"},
            {"id": "canary", "domain_name": canary.domain(), "protocol": "http"}
        ],
        "default_cache_behavior": {"target_origin_id": "web", "default_ttl": 0, "hooks": {
            "viewer_request": association.clone(),
            "viewer_response": association,
        }}
    }))
    .await;
    let plain = edge.get("p.example.com", "/").await;
    assert_eq!(plain.text(), "web");
    assert_eq!(plain.header("x-hook"), Some("canary"));
    let marked = edge
        .request("GET", "p.example.com", "/", &[("x-canary", "1")])
        .await;
    assert_eq!(marked.text(), "canary");
    (web, canary)
}

/// A config with one HTTP origin per `(id, origin)` and the first as the default target.
pub fn config_for(origins: &[(&str, &Origin)]) -> Value {
    let list: Vec<Value> = origins
        .iter()
        .map(|(id, o)| json!({"id": id, "domain_name": o.domain(), "protocol": "http"}))
        .collect();
    json!({
        "origins": list,
        "default_cache_behavior": {"target_origin_id": origins[0].0},
    })
}

/// A viewer that requests one URL in a loop until stopped, recording every
/// response: what a blue/green switch must not disturb.
#[derive(Debug)]
pub struct Load {
    stop: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<LoadReport>,
}

/// What a [`Load`] saw.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub total: usize,
    /// Responses other than 200, and transport errors.
    pub failures: Vec<String>,
    /// How many times each body was seen.
    pub bodies: std::collections::BTreeMap<String, usize>,
}

impl Load {
    /// Starts requesting `path` with `Host: host` from `edge`'s viewer port.
    pub fn start(edge: &Edge, host: &str, path: &str) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (client, viewer, host, path) = (
            edge.client.clone(),
            edge.viewer,
            host.to_owned(),
            path.to_owned(),
        );
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut report = LoadReport::default();
            while !flag.load(Ordering::SeqCst) {
                let req = Request::builder()
                    .uri(format!("http://{viewer}{path}"))
                    .header("host", &host)
                    .body(Full::new(Bytes::new()))
                    .expect("request");
                report.total += 1;
                match client.try_send(req).await {
                    Ok(got) if got.status == StatusCode::OK => {
                        *report.bodies.entry(got.text()).or_default() += 1;
                    }
                    Ok(got) => report
                        .failures
                        .push(format!("{}: {}", got.status, got.text())),
                    Err(err) => report.failures.push(err),
                }
                tokio::task::yield_now().await;
            }
            report
        });
        Self { stop, task }
    }

    /// Stops the loop and returns what it saw.
    pub async fn stop(self) -> LoadReport {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("load task")
    }
}

/// The `Set-Cookie` values of a response, each cut at its first `;`.
pub fn set_cookies(got: &Got) -> Vec<String> {
    got.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").to_owned())
        .collect()
}

/// A real etcd (the `etcd` on PATH) on loopback ports chosen at run time,
/// with its data in a temp dir; killed when dropped.
#[derive(Debug)]
pub struct Etcd {
    child: Option<std::process::Child>,
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
}

/// A loopback port free at the time of asking.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Etcd {
    /// Starts etcd and waits until it answers.
    pub async fn start() -> Self {
        let mut etcd = Self {
            child: None,
            dir: tempfile::tempdir().expect("temp dir"),
            client_port: free_port(),
            peer_port: free_port(),
        };
        etcd.launch().await;
        etcd
    }

    /// What `--store` names this etcd with.
    pub fn store(&self) -> edge::store::StoreSpec {
        format!("etcd://127.0.0.1:{}", self.client_port)
            .parse()
            .expect("store spec")
    }

    /// Points a host's options at this etcd, naming the host `id` (empty: the
    /// id the host keeps in its data dir), with a two-second lease so a
    /// vanished host leaves the list quickly.
    pub fn configure(&self, opts: &mut HostOptions, id: &str) {
        opts.store = self.store();
        opts.host_id = id.to_owned();
        opts.fleet_lease = Duration::from_secs(2);
    }

    /// Kills etcd (its data stays).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = tokio::task::spawn_blocking(move || child.wait()).await;
        }
    }

    /// Starts etcd again on the same ports and data.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.launch().await;
    }

    async fn launch(&mut self) {
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("etcd.log"))
            .expect("etcd log");
        let child = std::process::Command::new("etcd")
            .arg("--name=edge-test")
            .arg(format!(
                "--data-dir={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=edge-test={peer}"))
            .stdout(log.try_clone().expect("etcd log"))
            .stderr(log)
            .spawn()
            .expect("starting etcd (the README's test command installs etcd-server)");
        self.child = Some(child);
        let health = format!("http://127.0.0.1:{}/health", self.client_port);
        let client = HttpClient::default();
        for _ in 0..200 {
            let req = Request::get(health.as_str())
                .body(Full::new(Bytes::new()))
                .expect("request");
            if let Ok(got) = client.try_send(req).await
                && got.status == StatusCode::OK
                && got.text().contains("true")
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let log = std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default();
        panic!("etcd did not become healthy:\n{log}");
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `check` every 20 ms until it holds, for up to `within`; whether it did.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
