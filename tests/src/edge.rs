//! A running host with its data dir, and the control API calls tests make.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use edge::cli::client::ApiClient;
use edge::{HostOptions, RunningHost};
use http::{Request, StatusCode};
use http_body_util::Full;

use crate::{Got, HttpClient, Origin, Reply, Value, json};

/// The token every test host uses.
pub const TOKEN: &str = "test-token";

/// A running host with its data dir.
#[derive(Debug)]
pub struct Edge {
    pub host: Option<RunningHost>,
    pub dir: tempfile::TempDir,
    pub client: HttpClient,
    /// The CLI's client of the control API, with the test token.
    pub api: ApiClient,
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
            api: ApiClient::for_endpoint(&host.control_addr.to_string(), Some(TOKEN.to_owned())),
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

    /// An unlabelled metric's value on `/metrics`.
    pub async fn metric(&self, name: &str) -> u64 {
        let text = self.api("GET", "/metrics", None, &[]).await.text();
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
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

    /// A control API request with a raw body and an optional token, sent
    /// by the CLI's own client.
    pub async fn api_raw(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
        token: Option<&str>,
    ) -> Got {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        let method = http::Method::from_bytes(method.as_bytes()).expect("a method");
        let resp = self
            .api
            .exchange(method, path, &all, Bytes::from(body), token)
            .await
            .expect("control API request");
        let (parts, body) = resp.into_parts();
        Got {
            status: parts.status,
            headers: parts.headers,
            body,
        }
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
/// `x-canary: 1` goes to origin `canary`; viewer-response says where
/// viewer-request of the same request (and only of it) sent it. Returns the
/// two origins, which serve as long as they are kept.
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
    assert_eq!(plain.header("x-routed"), Some("default"));
    let marked = edge
        .request("GET", "p.example.com", "/", &[("x-canary", "1")])
        .await;
    assert_eq!(marked.text(), "canary");
    assert_eq!(marked.header("x-routed"), Some("canary"));
    // What the marked request kept is gone for the next one.
    let after = edge.get("p.example.com", "/").await;
    assert_eq!(after.header("x-routed"), Some("default"));
    (web, canary)
}

/// The `security-headers` example built at `path`, uploaded and attached to
/// viewer-response with a CSP in its config: on a Miss and on a Hit, the
/// response carries the headers it sets (the origin's own value of one
/// replaced) and the origin's body.
pub async fn assert_security_headers_hook(path: &str) {
    let edge = Edge::start().await;
    let o = Origin::fixed(
        "page",
        &[
            ("cache-control", "max-age=60"),
            ("x-frame-options", "SAMEORIGIN"),
        ],
    )
    .await;
    edge.upload_hook("sec", path).await;
    let mut config = config_for(&[("o", &o)]);
    config["aliases"] = json!(["sec.example.com"]);
    config["default_cache_behavior"]["hooks"] =
        json!({"viewer_response": {"module": "sec", "config": {"csp": "default-src 'none'"}}});
    edge.create(config).await;
    for expected in ["Miss", "Hit"] {
        let got = edge.get("sec.example.com", "/").await;
        assert_eq!(got.cache(), expected);
        assert_eq!(
            got.header("strict-transport-security"),
            Some("max-age=63072000; includeSubDomains; preload")
        );
        assert_eq!(
            got.header("content-security-policy"),
            Some("default-src 'none'")
        );
        assert_eq!(got.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(
            got.header("x-frame-options"),
            Some("SAMEORIGIN"),
            "the origin's own value was replaced"
        );
        assert_eq!(got.text(), "page");
    }
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
