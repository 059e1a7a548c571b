//! `edge tail`: hook log lines and access records streamed from a running
//! host (`GET /v1/tail`), several watchers at once, each with its filter.
//! (A slow watcher told what it lost: the unit tests of
//! `control/api/tail.rs`, where the client's buffers do not hide it.)

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use edge_e2e::examples::*;
use edge_e2e::{Edge, Origin, Reply, TOKEN, json};
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// A watcher of `/v1/tail{query}`, reading lines as they come.
struct Tail {
    body: Incoming,
    pending: BytesMut,
}

impl Tail {
    async fn open(edge: &Edge, query: &str) -> Self {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let req = Request::get(format!("http://{}/v1/tail{query}", edge.control))
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(Full::new(Bytes::new()))
            .expect("request");
        let resp = client.request(req).await.expect("tail answers");
        assert_eq!(resp.status(), StatusCode::OK);
        let mut tail = Self {
            body: resp.into_body(),
            pending: BytesMut::new(),
        };
        let first = tail.line().await.expect("the start line");
        assert_eq!(first["kind"], "start", "{first}");
        tail
    }

    /// The next line, or `None` when none comes within 3 s.
    async fn line(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
                let line = self.pending.split_to(end + 1);
                return Some(serde_json::from_slice(&line[..end]).expect("a JSON line"));
            }
            let frame = tokio::time::timeout(Duration::from_secs(3), self.body.frame())
                .await
                .ok()??
                .expect("a frame");
            if let Ok(data) = frame.into_data() {
                self.pending.extend_from_slice(&data);
            }
        }
    }

    /// Lines until none comes for 3 s.
    async fn drain(&mut self) -> Vec<Value> {
        let mut lines = Vec::new();
        while let Some(line) = self.line().await {
            lines.push(line);
        }
        lines
    }
}

async fn site(edge: &Edge) -> (Origin, String) {
    let origin = Origin::start(|req| {
        let reply = Reply::ok(format!("page {}", req.target));
        if req.target.starts_with("/missing") {
            reply.status(404)
        } else {
            reply
        }
    })
    .await;
    edge.upload_hook("misbehave", MISBEHAVE).await;
    let created = edge
        .create(json!({
            "aliases": ["tail.example.com"],
            "origins": [{"id": "o", "domain_name": origin.domain(), "protocol": "http"}],
            "default_cache_behavior": {"target_origin_id": "o", "default_ttl": 0, "hooks": {
                "viewer_request": {"module": "misbehave", "config": {"viewer_request": "log"}}}},
        }))
        .await;
    let id = created["id"].as_str().expect("id").to_owned();
    (origin, id)
}

#[tokio::test]
async fn watchers_see_hook_lines_and_access_records_through_their_filters() {
    let edge = Edge::start().await;
    let (_origin, id) = site(&edge).await;
    let mut all = Tail::open(&edge, "").await;
    let mut logs = Tail::open(&edge, "?hook=misbehave").await;
    let mut errors = Tail::open(&edge, "?status=4xx").await;
    let mut other = Tail::open(&edge, "?distribution=ENOSUCH").await;

    let got = edge.get("tail.example.com", "/page").await;
    assert_eq!(got.status, StatusCode::OK);
    let missing = edge.get("tail.example.com", "/missing").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    let seen = all.drain().await;
    let kinds: Vec<&str> = seen.iter().filter_map(|l| l["kind"].as_str()).collect();
    assert_eq!(kinds, ["log", "access", "log", "access"], "{seen:?}");
    let log = &seen[0];
    assert_eq!(log["hook"], "misbehave");
    assert_eq!(log["event"], "viewer_request");
    assert_eq!(log["distribution"], id.as_str());
    assert_eq!(log["line"], "viewer_request saw /page");
    assert_eq!(
        log["request_id"],
        got.header("x-edge-request-id").expect("id")
    );
    let access = &seen[1];
    assert_eq!(access["sc_status"], 200);
    assert_eq!(access["cs_uri_stem"], "/page");
    assert_eq!(access["distribution_id"], id.as_str());
    assert_eq!(access["request_id"], log["request_id"]);

    let only_logs = logs.drain().await;
    assert_eq!(only_logs.len(), 2, "{only_logs:?}");
    assert!(only_logs.iter().all(|l| l["kind"] == "log"));
    let only_errors = errors.drain().await;
    assert_eq!(only_errors.len(), 1, "{only_errors:?}");
    assert_eq!(only_errors[0]["sc_status"], 404);
    assert!(other.drain().await.is_empty());

    // The API needs the token; a bad filter is a 400.
    let got = edge.api_raw("GET", "/v1/tail", Vec::new(), &[], None).await;
    assert_eq!(got.status, StatusCode::UNAUTHORIZED);
    let got = edge.api("GET", "/v1/tail?status=9xx", None, &[]).await;
    assert_eq!(got.status, StatusCode::BAD_REQUEST, "{}", got.text());
}

#[tokio::test]
async fn edge_tail_prints_lines_as_they_happen() {
    let edge = Edge::start().await;
    let (_origin, id) = site(&edge).await;
    let endpoint = format!("http://{}", edge.control);
    // The CLI on a thread of its own, as its own process would run it.
    let tail = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let argv = vec![
            "edge",
            "tail",
            "--endpoint",
            &endpoint,
            "--token",
            TOKEN,
            "--distribution",
            &id,
            "--limit",
            "2",
        ];
        let code = runtime.block_on(edge::cli::run_args(argv, &mut out, &mut err));
        (
            code,
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
        )
    });
    // Requests until the tail has its two lines (it may start watching
    // after the first).
    for i in 0..50 {
        if tail.is_finished() {
            break;
        }
        edge.get("tail.example.com", &format!("/cli/{i}")).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, out, err) = tail.join().expect("edge tail");
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("watching"), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        out.contains("misbehave viewer_request") && out.contains("saw /cli/"),
        "{out}"
    );
    assert!(out.contains(" 200 Miss GET tail.example.com/cli/"), "{out}");
}
