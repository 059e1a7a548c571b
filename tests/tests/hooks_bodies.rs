//! Bodies in hooks (`include_body`): the viewer's request body in
//! viewer-request and origin-request, the origin's body in origin-response,
//! read up to the association's limit, replaced or kept, and refused or
//! given truncated past it. Without `include_body` bodies stream past hooks.

use bytes::Bytes;
use edge_e2e::examples::*;
use edge_e2e::tls::fixture;
use edge_e2e::{Edge, Origin, Reply, json};
use http::StatusCode;
use serde_json::Value;

/// An origin that answers with what it received: the body's length, the
/// `content-length` it was sent with, and the body-seen fields the hook set.
async fn echo() -> Origin {
    Origin::start(|req| {
        let field = |name: &str| {
            req.headers
                .get(name)
                .map_or("-", |v| v.to_str().unwrap_or("?"))
                .to_owned()
        };
        Reply::ok(req.body.clone())
            .header("x-got-bytes", &req.body.len().to_string())
            .header("x-got-content-length", &field("content-length"))
            .header("x-got-body-seen", &field("x-body-seen"))
            .header("x-got-body-truncated", &field("x-body-truncated"))
    })
    .await
}

fn site(alias: &str, origin: &Origin, hooks: Value) -> Value {
    json!({
        "aliases": [alias],
        "origins": [{"id": "o", "domain_name": origin.domain(), "protocol": "http"}],
        "default_cache_behavior": {"target_origin_id": "o", "hooks": hooks},
    })
}

/// The misbehave fixture on `event` in `mode`, with the association's
/// other fields.
fn misbehave(event: &str, mode: &str, association: Value) -> Value {
    let mut hook = json!({"module": "misbehave", "config": {event: mode}});
    if let (Some(hook), Some(extra)) = (hook.as_object_mut(), association.as_object()) {
        hook.extend(extra.clone());
    }
    json!({ event: hook })
}

async fn post(edge: &Edge, host: &str, body: impl Into<Bytes>) -> edge_e2e::Got {
    edge.request_with_body("POST", host, "/submit", &[], body.into())
        .await
}

#[tokio::test]
async fn request_bodies_are_given_to_request_events_and_may_be_replaced() {
    let edge = Edge::start().await;
    let origin = echo().await;
    edge.upload_hook("misbehave", MISBEHAVE).await;
    let with_body = json!({"include_body": true});
    for (alias, hooks) in [
        (
            "upper-vr.example.com",
            misbehave("viewer_request", "body-upper", with_body.clone()),
        ),
        (
            "upper-or.example.com",
            misbehave("origin_request", "body-upper", with_body.clone()),
        ),
        (
            "seen.example.com",
            misbehave("viewer_request", "body-seen", with_body.clone()),
        ),
        (
            "streamed.example.com",
            misbehave("viewer_request", "body-seen", json!({})),
        ),
    ] {
        edge.create(site(alias, &origin, hooks)).await;
    }

    // Replaced in viewer-request or in origin-request: the origin gets the
    // hook's body with its own length.
    for host in ["upper-vr.example.com", "upper-or.example.com"] {
        let got = post(&edge, host, "hello, body").await;
        assert_eq!(got.status, StatusCode::OK, "{host}: {}", got.text());
        assert_eq!(got.text(), "HELLO, BODY", "{host}");
        assert_eq!(got.header("x-got-content-length"), Some("11"), "{host}");
        assert_eq!(got.header("x-got-body-seen"), Some("11"), "{host}");
        assert_eq!(got.header("x-got-body-truncated"), Some("false"), "{host}");
    }
    // A longer replacement than the original gets its own length too.
    let got = post(&edge, "upper-vr.example.com", "ß").await;
    assert_eq!(got.header("x-got-content-length"), Some("2"));

    // Kept: the origin gets the viewer's body as it was, bytes that are
    // not UTF-8 included.
    let raw: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    let got = post(&edge, "seen.example.com", raw.clone()).await;
    assert_eq!(got.body.as_ref(), &raw[..]);
    assert_eq!(got.header("x-got-body-seen"), Some("5000"));

    // Without include_body the hook is given nothing, and a body larger
    // than any hook is ever given streams through whole.
    let big: Vec<u8> = (0..3 << 20).map(|i| (i % 251) as u8).collect();
    let got = post(&edge, "streamed.example.com", big.clone()).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.header("x-got-body-seen"), Some("none"));
    assert_eq!(got.header("x-got-bytes"), Some("3145728"));
    assert!(got.body.as_ref() == &big[..], "the body changed on its way");

    // A GET with include_body is given an empty body.
    let got = edge.get("seen.example.com", "/page").await;
    assert_eq!(got.header("x-got-body-seen"), Some("0"));
}

#[tokio::test]
async fn a_body_over_the_limit_is_given_truncated_or_refused_never_cut() {
    let edge = Edge::start().await;
    let origin = echo().await;
    edge.upload_hook("misbehave", MISBEHAVE).await;
    let truncate = json!({"include_body": true, "body_limit_kib": 1});
    let reject = json!({"include_body": true, "body_limit_kib": 1, "body_over_limit": "reject"});
    for (alias, hooks) in [
        (
            "truncate.example.com",
            misbehave("viewer_request", "body-seen", truncate.clone()),
        ),
        (
            "truncate-or.example.com",
            misbehave("origin_request", "body-seen", truncate),
        ),
        (
            "reject.example.com",
            misbehave("viewer_request", "body-seen", reject),
        ),
    ] {
        edge.create(site(alias, &origin, hooks)).await;
    }
    let body: Vec<u8> = (0..5000).map(|i| b'a' + (i % 26) as u8).collect();

    // Truncated: the hook sees the first KiB and the flag; handed back
    // unchanged, the whole body reaches the origin.
    for host in ["truncate.example.com", "truncate-or.example.com"] {
        let got = post(&edge, host, body.clone()).await;
        assert_eq!(got.status, StatusCode::OK, "{host}: {}", got.text());
        assert_eq!(got.header("x-got-body-seen"), Some("1024"), "{host}");
        assert_eq!(got.header("x-got-body-truncated"), Some("true"), "{host}");
        assert_eq!(got.header("x-got-bytes"), Some("5000"), "{host}");
        assert!(got.body.as_ref() == &body[..], "{host}: the body changed");
    }
    // Exactly the limit is within it.
    let got = post(&edge, "reject.example.com", vec![b'x'; 1024]).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    assert_eq!(got.header("x-got-body-truncated"), Some("false"));

    // Rejected: 413, and the origin never hears of it.
    let before = origin.hits();
    let got = post(&edge, "reject.example.com", body).await;
    assert_eq!(got.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", got.text());
    assert_eq!(got.error_code(), "RequestBodyTooLarge");
    assert!(got.text().contains("1024 bytes"), "{}", got.text());
    assert_eq!(origin.hits(), before);
}

#[tokio::test]
async fn a_replaced_body_keeps_to_the_events_cap() {
    // viewer-request may be given up to 1 MiB, but what it hands back
    // instead is held to the viewer events' 40 KB, as a generated answer is.
    let edge = Edge::start().await;
    let origin = echo().await;
    edge.upload_hook("misbehave", MISBEHAVE).await;
    let with_body = json!({"include_body": true});
    edge.create(site(
        "cap.example.com",
        &origin,
        misbehave("viewer_request", "body-upper", with_body.clone()),
    ))
    .await;
    edge.create(site(
        "cap-or.example.com",
        &origin,
        misbehave("origin_request", "body-upper", with_body),
    ))
    .await;
    let got = post(&edge, "cap.example.com", vec![b'a'; 50 * 1024]).await;
    assert_eq!(got.status, StatusCode::BAD_GATEWAY, "{}", got.text());
    assert_eq!(got.error_code(), "HookInvalidOutput");
    // origin-request's cap is 1 MiB.
    let got = post(&edge, "cap-or.example.com", vec![b'a'; 50 * 1024]).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    assert_eq!(got.header("x-got-bytes"), Some("51200"));
    assert!(got.body.iter().all(|b| *b == b'A'));
}

#[tokio::test]
async fn origin_bodies_are_given_to_origin_response_and_what_it_returns_is_cached() {
    let edge = Edge::start().await;
    let page = "x".repeat(3000);
    let origin = Origin::start(move |req| {
        let body = if req.target.starts_with("/big") {
            page.clone()
        } else {
            format!("page {}", req.target)
        };
        Reply::ok(body).header("cache-control", "max-age=60")
    })
    .await;
    edge.upload_hook("misbehave", MISBEHAVE).await;
    edge.create(site(
        "or.example.com",
        &origin,
        misbehave(
            "origin_response",
            "body-upper",
            json!({"include_body": true, "body_limit_kib": 2}),
        ),
    ))
    .await;
    edge.create(site(
        "or-reject.example.com",
        &origin,
        misbehave(
            "origin_response",
            "body-seen",
            json!({"include_body": true, "body_limit_kib": 2, "body_over_limit": "reject"}),
        ),
    ))
    .await;
    edge.create(site(
        "or-seen.example.com",
        &origin,
        misbehave(
            "origin_response",
            "body-seen",
            json!({"include_body": true, "body_limit_kib": 2}),
        ),
    ))
    .await;

    let got = edge.get("or.example.com", "/a").await;
    assert_eq!(got.text(), "PAGE /A");
    assert_eq!(got.header("content-length"), Some("7"));
    assert_eq!(got.header("x-body-seen"), Some("7"));
    assert_eq!(got.cache(), "Miss");
    // What origin-response returned is what the cache keeps.
    let again = edge.get("or.example.com", "/a").await;
    assert_eq!((again.cache(), again.text().as_str()), ("Hit", "PAGE /A"));
    assert_eq!(origin.hits(), 1);

    // Kept whole (read within the limit): served and stored as it came.
    let got = edge.get("or-seen.example.com", "/kept").await;
    assert_eq!(got.text(), "page /kept");
    assert_eq!(got.header("x-body-truncated"), Some("false"));
    assert_eq!(
        edge.get("or-seen.example.com", "/kept").await.cache(),
        "Hit"
    );

    // Longer than the limit and kept: the whole page is served, and stored.
    let got = edge.get("or-seen.example.com", "/big").await;
    assert_eq!(got.header("x-body-seen"), Some("2048"));
    assert_eq!(got.header("x-body-truncated"), Some("true"));
    assert_eq!(got.text(), "x".repeat(3000));
    let again = edge.get("or-seen.example.com", "/big").await;
    assert_eq!(
        (again.cache(), again.body.len()),
        ("Hit", 3000),
        "{:?}",
        again.headers
    );

    // Longer than the limit, rejected: 502 and nothing stored.
    let got = edge.get("or-reject.example.com", "/big").await;
    assert_eq!(got.status, StatusCode::BAD_GATEWAY, "{}", got.text());
    assert_eq!(got.error_code(), "OriginBodyTooLarge");
    let again = edge.get("or-reject.example.com", "/big").await;
    assert_eq!(again.status, StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn include_body_is_refused_where_it_cannot_apply() {
    let edge = Edge::start().await;
    let origin = echo().await;
    edge.upload_hook("misbehave", MISBEHAVE).await;
    let frozen = fixture("hooks-0.1.0/request_state.wasm");
    edge.upload_hook("old", &frozen.to_string_lossy()).await;
    let cases = [
        (
            json!({"viewer_response": {"module": "misbehave", "include_body": true}}),
            "hooks.viewer_response.include_body",
        ),
        (
            json!({"viewer_request": {"module": "misbehave", "body_limit_kib": 4}}),
            "hooks.viewer_request.body_limit_kib",
        ),
        (
            json!({"origin_request": {"module": "misbehave", "include_body": true, "body_limit_kib": 2048}}),
            "hooks.origin_request.body_limit_kib",
        ),
        (
            json!({"viewer_request": {"module": "misbehave", "include_body": true, "body_over_limit": "cut"}}),
            "body_over_limit",
        ),
        (
            json!({"viewer_request": {"module": "old", "include_body": true}}),
            "hooks.viewer_request.include_body",
        ),
        // Nor is fetch: the 0.1.0 world has no such import.
        (
            json!({"viewer_request": {"module": "old", "fetch": {}}}),
            "hooks.viewer_request.fetch: hook \"old\" is built for edge:hooks@0.1.0",
        ),
    ];
    for (hooks, field) in cases {
        let got = edge
            .api(
                "POST",
                "/v1/distributions",
                Some(site("refused.example.com", &origin, hooks.clone())),
                &[],
            )
            .await;
        assert_eq!(
            got.status,
            StatusCode::BAD_REQUEST,
            "{hooks}: {}",
            got.text()
        );
        let message = got.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(message.contains(field), "{hooks}: {message}");
    }
    // The 0.1.0 refusal says why.
    let got = edge
        .api(
            "POST",
            "/v1/distributions",
            Some(site(
                "refused.example.com",
                &origin,
                json!({"viewer_request": {"module": "old", "include_body": true}}),
            )),
            &[],
        )
        .await;
    assert!(got.text().contains("edge:hooks@0.1.0"), "{}", got.text());
    // Nothing was created along the way.
    let listed = edge.api("GET", "/v1/distributions", None, &[]).await;
    assert!(
        !listed.text().contains("refused.example.com"),
        "{}",
        listed.text()
    );
}

#[tokio::test]
async fn bodies_read_for_hooks_share_the_hosts_memory_bound() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    // With 1 MiB for what requests keep for hooks, one viewer slowly
    // sending a body to a hook that reads it holds it all: a second body
    // beside it is refused at once (503) without reaching the origin, and
    // once the first is done the next is served.
    let edge = Edge::start_with(|o| o.hook_held_memory_mib = 1).await;
    let origin = echo().await;
    edge.upload_hook("misbehave", MISBEHAVE).await;
    edge.create(site(
        "held.example.com",
        &origin,
        misbehave("viewer_request", "body-seen", json!({"include_body": true})),
    ))
    .await;
    let mut slow = tokio::net::TcpStream::connect(edge.viewer)
        .await
        .expect("connect");
    slow.write_all(
        b"POST /slow HTTP/1.1\r\nhost: held.example.com\r\ncontent-length: 10\r\nconnection: close\r\n\r\nhello",
    )
    .await
    .expect("write");
    let held = edge_e2e::eventually(std::time::Duration::from_secs(5), || async {
        edge.metric("edge_hook_held_memory_mib").await == 1
    })
    .await;
    assert!(held, "the slow body never took its share");

    let got = post(&edge, "held.example.com", "beside").await;
    assert_eq!(
        got.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        got.text()
    );
    assert_eq!(got.error_code(), "HookLimitExceeded");
    assert_eq!(origin.hits(), 0);
    // A GET has no body to read, and holds nothing: it is served.
    let got = edge.get("held.example.com", "/page").await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    assert_eq!(got.header("x-got-body-seen"), Some("0"));

    slow.write_all(b"world").await.expect("write");
    let mut answer = Vec::new();
    slow.read_to_end(&mut answer).await.expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("helloworld"), "{answer}");
    let freed = edge_e2e::eventually(std::time::Duration::from_secs(5), || async {
        edge.metric("edge_hook_held_memory_mib").await == 0
    })
    .await;
    assert!(freed, "the slow body's share was never given back");
    let got = post(&edge, "held.example.com", "after").await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
}
