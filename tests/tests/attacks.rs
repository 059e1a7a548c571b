//! Attacks from hostile viewers and origins, each reproduced against a
//! running host: the probe is sent, and what the host did with it is checked
//! at the origin and on what a later, clean viewer gets.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use edge_e2e::examples::EDGE_AUTH;
use edge_e2e::{Edge, Got, Origin, Reply, config_for, json};
use http::{Request, StatusCode};
use http_body_util::Full;

/// `u64::MAX` seconds, the largest delta-seconds a naive parser accepts.
const HUGE: &str = "18446744073709551615";

/// A viewer GET that reports a dropped connection instead of panicking.
async fn try_get(edge: &Edge, host: &str, path: &str) -> Result<Got, String> {
    let req = Request::builder()
        .uri(format!("http://{}{path}", edge.viewer))
        .header("host", host)
        .body(Full::new(Bytes::new()))
        .expect("request");
    edge.client.try_send(req).await
}

#[tokio::test]
async fn overflowing_delta_seconds_from_an_origin_saturate_instead_of_panicking() {
    let big = || format!("max-age=60, stale-while-revalidate={HUGE}");
    // Each probe: a path, and the response fields the origin sends for it.
    let probes: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("/swr", vec![("cache-control", big())]),
        (
            "/sie",
            vec![(
                "cache-control",
                format!("max-age=60, stale-if-error={HUGE}"),
            )],
        ),
        (
            "/max-age",
            vec![
                ("cache-control", format!("max-age={HUGE}")),
                ("etag", "\"v\"".to_owned()),
            ],
        ),
        (
            "/s-maxage",
            vec![
                ("cache-control", format!("s-maxage={HUGE}")),
                ("etag", "\"v\"".to_owned()),
            ],
        ),
        (
            "/age",
            vec![("cache-control", big()), ("age", HUGE.to_owned())],
        ),
        ("/cdn", vec![("cdn-cache-control", big())]),
        (
            "/surrogate",
            vec![(
                "surrogate-control",
                format!("max-age=60;edge, stale-if-error={HUGE}"),
            )],
        ),
    ];
    let table = probes.clone();
    let origin = Origin::start(move |seen| {
        let fields = table
            .iter()
            .find(|(path, _)| *path == seen.target)
            .map(|(_, fields)| fields.clone())
            .unwrap_or_default();
        fields.iter().fold(
            Reply::ok(format!("body of {}", seen.target)),
            |r, (n, v)| r.header(n, v),
        )
    })
    .await;
    let edge = Edge::start().await;
    let mut config = config_for(&[("web", &origin)]);
    config["aliases"] = json!(["overflow.test"]);
    // The largest TTLs a config can name, so the origin's values are not
    // clamped away before the arithmetic.
    config["default_cache_behavior"]["max_ttl"] = json!(u64::MAX);
    edge.create(config).await;

    let mut failed = Vec::new();
    for (path, _) in &probes {
        for round in ["first", "second"] {
            match try_get(&edge, "overflow.test", path).await {
                Ok(got)
                    if got.status == StatusCode::OK && got.text() == format!("body of {path}") =>
                {
                    if round == "second" && got.cache() != "Hit" {
                        failed.push(format!("{path}: second request {}", got.cache()));
                    }
                    let age = got.header("age").map(|a| a.parse::<u64>());
                    if round == "second" && !matches!(age, Some(Ok(a)) if a <= 1 << 31) {
                        failed.push(format!("{path}: Age {age:?} is not within 2^31"));
                    }
                }
                Ok(got) => failed.push(format!("{path} ({round}): {} {}", got.status, got.text())),
                Err(err) => failed.push(format!("{path} ({round}): {err}")),
            }
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
    // Each probe is fetched once; `/age` arrived already older than its
    // lifetime, so its hit was served stale while one background request
    // revalidated it.
    let hits = origin.hits();
    assert!(
        (probes.len()..=probes.len() + 1).contains(&hits),
        "{hits} origin requests for {} probes",
        probes.len()
    );
}

#[tokio::test]
async fn a_get_or_head_with_a_body_is_refused_and_never_reaches_the_cache() {
    // An origin that answers with what it was sent, cacheably.
    let origin = Origin::start(|seen| {
        Reply::ok(format!("body=[{}]", String::from_utf8_lossy(&seen.body)))
            .header("cache-control", "max-age=60")
    })
    .await;
    let edge = Edge::start().await;
    let mut config = config_for(&[("web", &origin)]);
    config["aliases"] = json!(["fat.test"]);
    edge.create(config).await;

    for method in ["GET", "HEAD"] {
        let fat = edge
            .request_with_body(
                method,
                "fat.test",
                "/page",
                &[],
                Bytes::from_static(b"poison"),
            )
            .await;
        assert_eq!(fat.status, StatusCode::BAD_REQUEST, "{method}");
        if method == "GET" {
            assert_eq!(fat.error_code(), "RequestBodyNotAllowed");
        }
    }
    assert_eq!(origin.hits(), 0, "a fat request reached the origin");
    let clean = edge.get("fat.test", "/page").await;
    assert_eq!(
        (clean.status, clean.text()),
        (StatusCode::OK, "body=[]".to_owned())
    );
    assert_eq!(clean.cache(), "Miss");
    assert!(origin.last().body.is_empty());
    // An empty body is no body: `Content-Length: 0` is served.
    let empty = edge
        .request("GET", "fat.test", "/page", &[("content-length", "0")])
        .await;
    assert_eq!((empty.status, empty.cache()), (StatusCode::OK, "Hit"));
    assert_eq!(empty.text(), "body=[]");
}

/// A path as nginx resolves it before looking for a file: every escape
/// decoded (`%2F` included), `//` merged, dot-segments removed.
fn nginx_path(target: &str) -> String {
    let path = target.split('?').next().unwrap_or("");
    let bytes = path.as_bytes();
    let mut decoded = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let escape = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match escape {
            Some(b) => {
                decoded.push(b);
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    let decoded = String::from_utf8_lossy(&decoded).into_owned();
    let mut out: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

#[tokio::test]
async fn path_confusion_neither_bypasses_a_behavior_nor_poisons_the_cache() {
    let secrets_served = Arc::new(AtomicUsize::new(0));
    let served = secrets_served.clone();
    let origin = Origin::start(move |seen| match nginx_path(&seen.target).as_str() {
        "/private/secret.txt" => {
            served.fetch_add(1, Ordering::SeqCst);
            Reply::ok("the secret").header("cache-control", "max-age=60")
        }
        path if path.starts_with("/public/") || path.starts_with("/static/") => {
            Reply::ok(format!("page {}", seen.target)).header("cache-control", "max-age=60")
        }
        _ => Reply::ok("not found").status(404),
    })
    .await;
    let edge = Edge::start().await;
    edge.upload_hook("auth", EDGE_AUTH).await;
    let mut config = config_for(&[("web", &origin)]);
    config["aliases"] = json!(["paths.test"]);
    config["cache_behaviors"] = json!([
        {"path_pattern": "/private/*", "target_origin_id": "web",
         "hooks": {"viewer_request": {"module": "auth", "config": {"key": "s3cret"}}}},
        {"path_pattern": "/static/*", "target_origin_id": "web",
         "cache_key": {"query_strings": "all"}}
    ]);
    edge.create(config).await;

    // The hook guards the private file.
    let direct = edge.get("paths.test", "/private/secret.txt").await;
    assert_eq!(direct.status, StatusCode::UNAUTHORIZED);

    // Each probe reaches the hook under its canonical path (401), or is
    // refused as ambiguous (400); none gets the file.
    let probes = [
        ("/public/../private/secret.txt", 401),
        ("/public/%2e%2e/private/secret.txt", 400),
        ("/public/..%2fprivate/secret.txt", 400),
        ("//private/secret.txt", 401),
        ("/PRIVATE/../private/secret.txt", 401),
        ("/%70rivate/secret.txt", 401),
        ("/public/..;/private/secret.txt", 400),
        ("/public/..%5cprivate/secret.txt", 400),
        ("/static/../private/secret.txt", 401),
        ("/static/../private/secret.txt", 401),
    ];
    let mut wrong = Vec::new();
    for (path, want) in probes {
        let got = edge.get("paths.test", path).await;
        if got.status.as_u16() != want || got.text().contains("secret") {
            wrong.push(format!(
                "{path}: {} {} ({})",
                got.status,
                got.text(),
                got.cache()
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert_eq!(
        secrets_served.load(Ordering::SeqCst),
        0,
        "the origin served the secret"
    );

    // The origin sees the canonical path, the query string as sent, and
    // the behavior that matched it is the one that served it.
    let got = edge
        .get("paths.test", "/static/./a/../b%7e.css?x=%2e%2e/&y")
        .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(origin.last().target, "/static/b~.css?x=%2e%2e/&y");
    let again = edge.get("paths.test", "/static//b~.css?x=%2e%2e/&y").await;
    assert_eq!(again.cache(), "Hit", "one canonical path, one cache key");
}

/// Forwarding fields a viewer might send to make an origin build its
/// links, redirects or access rules on values of the viewer's choosing.
const FORWARDING: [(&str, &str); 11] = [
    ("x-forwarded-proto", "gopher"),
    ("x-forwarded-port", "6666"),
    ("x-forwarded-prefix", "/evil"),
    ("forwarded", "for=6.6.6.6;proto=gopher;host=evil.example"),
    ("x-original-host", "evil.example"),
    ("x-forwarded-ssl", "on"),
    ("front-end-https", "on"),
    ("x-real-ip", "6.6.6.6"),
    ("true-client-ip", "6.6.6.6"),
    ("x-client-ip", "6.6.6.6"),
    ("x-original-method", "DELETE"),
];

#[tokio::test]
async fn viewer_forwarding_headers_never_reach_the_origin_or_the_cache() {
    // An origin that echoes every forwarding field it receives into a
    // cacheable page, as an application building absolute links does.
    let origin = Origin::start(|seen| {
        let mut echoed: Vec<String> = FORWARDING
            .iter()
            .map(|(name, _)| *name)
            .chain(["x-forwarded-for"])
            .filter_map(|name| {
                let value = seen.headers.get(name)?.to_str().ok()?;
                Some(format!("{name}={value}"))
            })
            .collect();
        echoed.sort();
        Reply::ok(echoed.join("\n")).header("cache-control", "max-age=60")
    })
    .await;
    let edge = Edge::start().await;
    let mut config = config_for(&[("web", &origin)]);
    config["aliases"] = json!(["fwd.test"]);
    config["cache_behaviors"] = json!([
        // Keyed on x-real-ip: forwarded, each value its own object.
        {"path_pattern": "/keyed/*", "target_origin_id": "web",
         "cache_key": {"headers": ["x-real-ip"]}},
        // No forwarding headers at all.
        {"path_pattern": "/bare/*", "target_origin_id": "web", "forwarding_headers": []}
    ]);
    edge.create(config).await;

    let attacker = edge.request("GET", "fwd.test", "/page", &FORWARDING).await;
    let victim = edge.get("fwd.test", "/page").await;
    assert_eq!(victim.cache(), "Hit");
    // The host's own fields, and nothing of the attacker's.
    let own = "forwarded=for=127.0.0.1;proto=http;host=fwd.test\n\
               x-forwarded-for=127.0.0.1\n\
               x-forwarded-proto=http";
    for got in [&attacker, &victim] {
        assert_eq!(got.text(), own);
    }

    // Keyed: the viewer's value is forwarded and the object is its own.
    let keyed = edge
        .request("GET", "fwd.test", "/keyed/a", &[("x-real-ip", "6.6.6.6")])
        .await;
    assert!(
        keyed.text().contains("x-real-ip=6.6.6.6"),
        "{}",
        keyed.text()
    );
    let plain = edge.get("fwd.test", "/keyed/a").await;
    assert_eq!(plain.cache(), "Miss");
    assert!(!plain.text().contains("6.6.6.6"), "{}", plain.text());

    // A behavior that names none sends none, and still drops the viewer's.
    let bare = edge
        .request("GET", "fwd.test", "/bare/a", &FORWARDING)
        .await;
    assert_eq!(bare.text(), "");
    let spoofed = edge
        .request(
            "GET",
            "fwd.test",
            "/bare/b",
            &[("x-forwarded-for", "6.6.6.6")],
        )
        .await;
    assert_eq!(spoofed.text(), "");

    // An unknown forwarding header in the config is refused, naming it.
    let mut bad = config_for(&[("web", &origin)]);
    bad["default_cache_behavior"]["forwarding_headers"] = json!(["x-real-ip"]);
    let refused = edge.api("POST", "/v1/distributions", Some(bad), &[]).await;
    assert_eq!(
        refused.status,
        StatusCode::BAD_REQUEST,
        "{}",
        refused.text()
    );
    assert!(
        refused
            .text()
            .contains("default_cache_behavior.forwarding_headers[0]"),
        "{}",
        refused.text()
    );
}

#[tokio::test]
async fn the_control_api_reads_the_bearer_scheme_case_insensitively() {
    let edge = Edge::start().await;
    let token = edge_e2e::TOKEN;
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let credentials = format!("{scheme} {token}");
        let got = edge
            .api_raw(
                "GET",
                "/v1/distributions",
                Vec::new(),
                &[("authorization", &credentials)],
                None,
            )
            .await;
        assert_eq!(got.status, StatusCode::OK, "{credentials}: {}", got.text());
    }
    // Another scheme, or the right scheme with a wrong token, is still refused.
    for credentials in [format!("Basic {token}"), "bearer wrong".to_owned()] {
        let got = edge
            .api_raw(
                "GET",
                "/v1/distributions",
                Vec::new(),
                &[("authorization", &credentials)],
                None,
            )
            .await;
        assert_eq!(got.status, StatusCode::UNAUTHORIZED, "{credentials}");
    }
}

#[tokio::test]
async fn errors_and_redirects_without_freshness_are_cached_for_seconds_not_a_day() {
    // Without explicit freshness: a 404, a 301, a 410 and a 200.
    let origin = Origin::start(|seen| match seen.target.as_str() {
        "/missing" => Reply::ok("missing").status(404),
        "/moved" => Reply::ok("").status(301).header("location", "/elsewhere"),
        "/gone" => Reply::ok("gone").status(410),
        _ => Reply::ok("page"),
    })
    .await;
    let edge = Edge::start().await;
    let mut config = config_for(&[("web", &origin)]);
    config["aliases"] = json!(["errors.test"]);
    config["default_cache_behavior"]["default_ttl_by_status"] = json!({"404": 1});
    edge.create(config).await;
    let paths = ["/missing", "/moved", "/gone", "/page"];
    let results = async |edge: &Edge| {
        let mut out = Vec::new();
        for path in paths {
            out.push(edge.get("errors.test", path).await.cache().to_owned());
        }
        out
    };
    assert_eq!(results(&edge).await, ["Miss"; 4]);
    assert_eq!(results(&edge).await, ["Hit"; 4]);
    // The 404's own TTL (1 s) is over; the others' are not.
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    assert_eq!(results(&edge).await, ["Miss", "Hit", "Hit", "Hit"]);
    // Past the 10 s default for errors and redirects, only the 200 (on
    // `default_ttl`, a day) is still stored.
    tokio::time::sleep(std::time::Duration::from_millis(9_500)).await;
    assert_eq!(results(&edge).await, ["Miss", "Miss", "Miss", "Hit"]);
}

/// A raw connection to `addr`, after `sent` bytes: how long until the host
/// closes it (reads EOF or a reset), or `None` if it is still open after
/// `wait`. Whatever the host answers first is read and thrown away.
async fn closed_within(
    addr: std::net::SocketAddr,
    sent: &[u8],
    wait: std::time::Duration,
) -> Option<std::time::Duration> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(sent).await.expect("write");
    let started = std::time::Instant::now();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match tokio::time::timeout_at(
            tokio::time::Instant::from_std(started + wait),
            stream.read(&mut buf),
        )
        .await
        {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// Connections that never finish a preface, a request head or their HTTP/2
/// settings exchange, on the viewer and the control listeners, are closed at
/// the idle timeout instead of being held forever (1,100 of them used to
/// lock every other viewer out of a host with 1,024 descriptors).
#[tokio::test]
async fn connections_that_never_finish_are_closed_at_the_idle_timeout() {
    let edge = Edge::start_with(|o| {
        o.idle_timeout = std::time::Duration::from_secs(1);
    })
    .await;
    // The HTTP/2 client preface and an empty SETTINGS frame, then silence.
    let mut h2c = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    h2c.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    let probes: [(&str, std::net::SocketAddr, &[u8]); 5] = [
        ("a single P", edge.viewer, b"P"),
        ("a partial preface", edge.viewer, b"PRI * HTTP/2"),
        ("h2c after the preface", edge.viewer, &h2c),
        (
            "a head never finished",
            edge.viewer,
            b"GET / HTTP/1.1\r\nhost: x\r\n",
        ),
        (
            "the control API, a head never finished",
            edge.control,
            b"GET /healthz HTTP/1.1\r\n",
        ),
    ];
    for (what, addr, sent) in probes {
        let closed = closed_within(addr, sent, std::time::Duration::from_secs(15)).await;
        assert!(closed.is_some(), "{what}: still open after 15 s");
    }
    // A well-behaved viewer is served as ever.
    let origin = Origin::fixed("fine", &[]).await;
    let mut config = config_for(&[("o", &origin)]);
    config["aliases"] = json!(["idle.example.com"]);
    edge.create(config).await;
    assert_eq!(edge.get("idle.example.com", "/").await.text(), "fine");
}

/// The bytes the host's socket for a viewer at `viewer_port` holds in its
/// send queue, sent or not (`tx_queue` of `/proc/net/tcp`).
fn send_queue(host_port: u16, viewer_port: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let port = |addr: &str| u16::from_str_radix(addr.rsplit(':').next()?, 16).ok();
        (port(fields[1])? == host_port && port(fields[2])? == viewer_port)
            .then(|| u64::from_str_radix(fields[4].split(':').next()?, 16).ok())?
    })
}

/// A viewer that stops reading a large response pins little of the
/// machine's TCP memory while it waits for the send timeout: the host keeps
/// at most `VIEWER_UNSENT_BYTES` unsent, and what is in flight is bounded by
/// the viewer's own window. 10,000 such viewers cannot push the kernel into
/// the memory pressure that slows every other connection.
#[tokio::test]
async fn a_viewer_that_stops_reading_pins_little_kernel_memory() {
    use tokio::io::AsyncWriteExt as _;
    const SIZE: u64 = 64 << 20;
    let origin = Origin::start(|_| Reply::ok("").stream(SIZE)).await;
    let edge = Edge::start().await;
    let mut config = config_for(&[("o", &origin)]);
    config["aliases"] = json!(["big.example.com"]);
    edge.create(config).await;
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(64 << 10).expect("SO_RCVBUF");
    let mut stream = socket.connect(edge.viewer).await.expect("connect");
    let me = stream.local_addr().expect("local address").port();
    stream
        .write_all(b"GET /big HTTP/1.1\r\nhost: big.example.com\r\n\r\n")
        .await
        .expect("write");
    // Reads nothing; the host writes until the socket takes no more.
    let mut queued = 0;
    for _ in 0..20 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        queued = queued.max(send_queue(edge.viewer.port(), me).expect("the host's socket"));
    }
    let bound = u64::from(edge::limits::VIEWER_UNSENT_BYTES) + (512 << 10);
    assert!(
        queued > 0 && queued <= bound,
        "{queued} bytes queued for a viewer that reads nothing (bound {bound})"
    );
    drop(stream);
}

/// A viewer that stops reading a large response is cut off at the send
/// timeout instead of holding its connection and the send queue forever.
#[tokio::test]
async fn a_viewer_that_stops_reading_is_cut_off_at_the_send_timeout() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    const SIZE: u64 = 256 << 20;
    let origin = Origin::start(|_| Reply::ok("").stream(SIZE)).await;
    let edge = Edge::start_with(|o| {
        o.send_timeout = std::time::Duration::from_secs(1);
    })
    .await;
    let mut config = config_for(&[("o", &origin)]);
    config["aliases"] = json!(["big.example.com"]);
    edge.create(config).await;
    let mut stream = tokio::net::TcpStream::connect(edge.viewer)
        .await
        .expect("connect");
    stream
        .write_all(b"GET /big HTTP/1.1\r\nhost: big.example.com\r\n\r\n")
        .await
        .expect("write");
    // Reads nothing for longer than the send timeout...
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    // ... and then finds the response cut short: what the socket buffers
    // held, then the end.
    let mut got = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    let ended = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got += n as u64,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the connection was not closed");
    assert!(
        got < SIZE,
        "all {got} bytes arrived: the viewer was not cut off"
    );
}

#[tokio::test]
async fn a_transfer_coding_other_than_chunked_is_not_implemented() {
    let origin = Origin::fixed("ok", &[]).await;
    let edge = Edge::start().await;
    let mut config = config_for(&[("o", &origin)]);
    config["aliases"] = json!(["te.test"]);
    edge.create(config).await;
    for coding in ["gzip, chunked", "chunked, chunked", "x-custom,chunked"] {
        let request = format!(
            "POST /up HTTP/1.1\r\nhost: te.test\r\ntransfer-encoding: {coding}\r\nconnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        );
        let got = edge.raw_exchange(request.as_bytes()).await;
        let expected = if coding.starts_with("chunked") {
            "HTTP/1.1 400"
        } else {
            "HTTP/1.1 501"
        };
        assert!(
            got.starts_with(expected) || got.starts_with("HTTP/1.1 501"),
            "{coding}: {got}"
        );
        if expected.ends_with("501") {
            assert!(
                got.contains("TransferCodingNotImplemented"),
                "{coding}: {got}"
            );
        }
    }
    assert_eq!(origin.hits(), 0);
    // Plain chunked still goes through.
    let got = edge
        .raw_exchange(b"POST /up HTTP/1.1\r\nhost: te.test\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        .await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert_eq!(origin.hits(), 1);
}

/// A GET whose head is `size` bytes long, on `host`.
fn head_of(size: usize, host: &str) -> Vec<u8> {
    let start = format!("GET / HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\nx-pad: ");
    let pad = size - start.len() - 4;
    format!("{start}{}\r\n\r\n", "a".repeat(pad)).into_bytes()
}

/// `request` written over TLS (SNI `host`, HTTP/1.1); what came back.
async fn tls_exchange(addr: std::net::SocketAddr, host: &str, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let config = edge_e2e::tls::client_config(&[b"http/1.1"]);
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from(host.to_owned()).expect("a name");
    let mut tls = connector.connect(name, tcp).await.expect("handshake");
    // In pieces, as a slow viewer sends them.
    for piece in request.chunks(5000) {
        tls.write_all(piece).await.expect("write");
        tls.flush().await.expect("flush");
    }
    let mut out = Vec::new();
    let _ =
        tokio::time::timeout(std::time::Duration::from_secs(2), tls.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn max_header_bytes_is_the_limit_on_every_listener() {
    let origin = Origin::fixed("ok", &[]).await;
    let edge = Edge::start_with(|opts| {
        opts.tls_listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    })
    .await;
    let tls_addr = edge
        .host
        .as_ref()
        .and_then(|h| h.tls_addr)
        .expect("a TLS listener");
    let pem = |name: &str| std::fs::read_to_string(edge_e2e::tls::fixture(name)).expect("fixture");
    let up = edge
        .api(
            "PUT",
            "/v1/certificates/site",
            Some(json!({"certificate_chain": pem("test-cert.pem"), "private_key": pem("test-key.pem")})),
            &[],
        )
        .await;
    assert_eq!(up.status, StatusCode::CREATED, "{}", up.text());
    let mut config = config_for(&[("o", &origin)]);
    config["aliases"] = json!(["www.tls.test"]);
    edge.create(config).await;

    let limit = 64 << 10;
    let host = "www.tls.test";
    // At the limit: served. One byte over, or far over: 431, on either listener.
    let plain_ok = edge.raw_exchange(&head_of(limit, host)).await;
    assert!(plain_ok.starts_with("HTTP/1.1 200"), "{plain_ok}");
    let tls_ok = tls_exchange(tls_addr, host, &head_of(limit, host)).await;
    assert!(tls_ok.starts_with("HTTP/1.1 200"), "{tls_ok}");
    for size in [limit + 1, limit + 40_000] {
        let plain = edge.raw_exchange(&head_of(size, host)).await;
        assert!(plain.starts_with("HTTP/1.1 431"), "{size}: {plain}");
        let tls = tls_exchange(tls_addr, host, &head_of(size, host)).await;
        assert!(tls.starts_with("HTTP/1.1 431"), "{size}: {tls}");
    }
    // The second 200 came from the cache; no long head reached the origin.
    assert_eq!(origin.hits(), 1);
}

#[tokio::test]
async fn http2_cookie_fields_reach_an_http1_origin_as_one() {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let origin = Origin::start(|seen| {
        let cookies: Vec<&str> = seen
            .headers
            .get_all("cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        Reply::ok(format!("{} {}", cookies.len(), cookies.join(" | ")))
    })
    .await;
    let edge = Edge::start().await;
    let mut config = config_for(&[("o", &origin)]);
    config["aliases"] = json!(["h2.test"]);
    config["default_cache_behavior"]["default_ttl"] = json!(0);
    config["default_cache_behavior"]["origin_request"] = json!({"cookies": "all"});
    edge.create(config).await;
    let tcp = tokio::net::TcpStream::connect(edge.viewer)
        .await
        .expect("connect");
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("h2c");
    tokio::spawn(conn);
    for method in ["GET", "POST"] {
        let req = Request::builder()
            .method(method)
            .uri("http://h2.test/me")
            .header("cookie", "a=1")
            .header("cookie", "b=2")
            .header("cookie", "c=3")
            .body(Full::new(Bytes::new()))
            .expect("request");
        let resp = send.send_request(req).await.expect("response");
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .expect("body")
            .to_bytes();
        assert_eq!(body, "1 a=1; b=2; c=3", "{method}");
    }
}

// TLS, ALPN and HTTP/2 requests

/// A TLS connection to `addr` with SNI `sni`, offering `alpn`.
async fn tls_connect(
    addr: std::net::SocketAddr,
    sni: &str,
    alpn: &[u8],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let config = edge_e2e::tls::client_config(&[alpn]);
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from(sni.to_owned()).expect("a name");
    connector.connect(name, tcp).await.expect("handshake")
}

/// Everything `stream` sends until it closes; `None` if it is still open
/// after 10 s.
async fn read_until_closed(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt as _;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let wait = std::time::Duration::from_secs(10);
    loop {
        match tokio::time::timeout(wait, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(out),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// The types of the HTTP/2 frames in `bytes`, in order.
fn frame_types(mut bytes: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    while bytes.len() >= 9 {
        let len = usize::from(bytes[0]) << 16 | usize::from(bytes[1]) << 8 | usize::from(bytes[2]);
        types.push(bytes[3]);
        bytes = &bytes[(9 + len).min(bytes.len())..];
    }
    types
}

/// A host with the HTTPS listener, the test certificate (`www.tls.test`,
/// `*.tls.test`) and another one (`www.other.test`), and a distribution
/// for each of `www.tls.test`, `shop.tls.test` and `www.other.test` that
/// answers with its own name.
async fn tls_edge(allow_domain_fronting: bool) -> (Edge, std::net::SocketAddr, Origin) {
    // The distribution's host, from the `Forwarded` field the host sets.
    let origin = Origin::start(|seen| {
        let forwarded = seen.headers.get("forwarded").and_then(|h| h.to_str().ok());
        let host = forwarded
            .and_then(|f| f.split("host=").nth(1))
            .unwrap_or("?");
        Reply::ok(format!("site {host}"))
    })
    .await;
    let edge = Edge::start_with(|opts| {
        opts.tls_listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
        opts.allow_domain_fronting = allow_domain_fronting;
    })
    .await;
    let tls_addr = edge.host.as_ref().and_then(|h| h.tls_addr).expect("TLS");
    let pem = |name: &str| std::fs::read_to_string(edge_e2e::tls::fixture(name)).expect("fixture");
    let other = pem("other.pem");
    for (name, chain, key) in [
        ("site", pem("test-cert.pem"), pem("test-key.pem")),
        ("other", other.clone(), other),
    ] {
        let body = json!({"certificate_chain": chain, "private_key": key});
        let path = format!("/v1/certificates/{name}");
        let up = edge.api("PUT", &path, Some(body), &[]).await;
        assert_eq!(up.status, StatusCode::CREATED, "{name}: {}", up.text());
    }
    for alias in ["www.tls.test", "shop.tls.test", "www.other.test"] {
        let mut config = config_for(&[("o", &origin)]);
        config["aliases"] = json!([alias]);
        config["default_cache_behavior"]["default_ttl"] = json!(0);
        edge.create(config).await;
    }
    (edge, tls_addr, origin)
}

/// A GET over TLS with SNI `sni` and `Host` (or `:authority`) `host`, in
/// HTTP/1.1 or HTTP/2 by `alpn`: the status and the body.
async fn fronted_get(
    addr: std::net::SocketAddr,
    sni: &str,
    alpn: &[u8],
    host: &str,
) -> (StatusCode, String) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let tls = tls_connect(addr, sni, alpn).await;
    let req = Request::builder().uri(format!("https://{host}/page"));
    let resp = if alpn == b"h2" {
        let req = req.body(Full::new(Bytes::new())).expect("request");
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .expect("h2");
        tokio::spawn(conn);
        send.send_request(req).await.expect("response")
    } else {
        let req = req
            .header("host", host)
            .body(Full::new(Bytes::new()))
            .expect("request");
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .expect("http/1.1");
        tokio::spawn(conn);
        send.send_request(req).await.expect("response")
    };
    let status = resp.status();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .expect("body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn after_alpn_the_connection_speaks_only_the_protocol_agreed_on() {
    use tokio::io::AsyncWriteExt as _;
    let (_edge, tls_addr, origin) = tls_edge(false).await;
    // `h2` agreed, then HTTP/1.1 (h2spec 3.5/2): the server's SETTINGS, a
    // GOAWAY and the end, no HTTP/1.1 answer.
    let mut tls = tls_connect(tls_addr, "www.tls.test", b"h2").await;
    tls.write_all(b"GET /page HTTP/1.1\r\nhost: www.tls.test\r\n\r\n")
        .await
        .expect("write");
    let got = read_until_closed(&mut tls).await.expect("closed");
    let types = frame_types(&got);
    assert_eq!(types.first(), Some(&0x4), "{got:?}");
    assert!(types.contains(&0x7), "no GOAWAY: {got:?}");
    assert!(!String::from_utf8_lossy(&got).contains("HTTP/1.1"));

    // `http/1.1` agreed, then the HTTP/2 preface: no HTTP/2 frame comes back.
    let mut tls = tls_connect(tls_addr, "www.tls.test", b"http/1.1").await;
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .expect("write");
    let got = read_until_closed(&mut tls).await.expect("closed");
    assert!(
        got.is_empty() || got.starts_with(b"HTTP/1.1 "),
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert_eq!(origin.hits(), 0);

    // Each protocol is served where it was agreed on.
    for alpn in [&b"h2"[..], b"http/1.1"] {
        let got = fronted_get(tls_addr, "www.tls.test", alpn, "www.tls.test").await;
        assert_eq!(got, (StatusCode::OK, "site www.tls.test".to_owned()));
    }
}

#[tokio::test]
async fn a_host_the_connection_certificate_does_not_cover_is_misdirected() {
    let (edge, tls_addr, origin) = tls_edge(false).await;
    for alpn in [&b"h2"[..], b"http/1.1"] {
        let what = String::from_utf8_lossy(alpn);
        // SNI for one distribution, Host for another with its own
        // certificate: domain fronting.
        let (status, body) = fronted_get(tls_addr, "www.tls.test", alpn, "www.other.test").await;
        assert_eq!(status, StatusCode::MISDIRECTED_REQUEST, "{what}: {body}");
        assert!(body.contains("MisdirectedRequest"), "{what}: {body}");
        // SNI and Host the same, or both covered by the wildcard: served.
        for (sni, host) in [
            ("www.tls.test", "www.tls.test"),
            ("www.tls.test", "shop.tls.test"),
            ("shop.tls.test", "www.tls.test"),
        ] {
            let got = fronted_get(tls_addr, sni, alpn, host).await;
            assert_eq!(
                got,
                (StatusCode::OK, format!("site {host}")),
                "{what} {sni}"
            );
        }
    }
    assert_eq!(origin.hits(), 6, "a fronted request reached the origin");
    // Plain HTTP has no certificate to hold the Host to.
    assert_eq!(
        edge.get("www.other.test", "/page").await.text(),
        "site www.other.test"
    );

    // With --allow-domain-fronting, the fronted request is served.
    let (_edge, tls_addr, _origin) = tls_edge(true).await;
    for alpn in [&b"h2"[..], b"http/1.1"] {
        let got = fronted_get(tls_addr, "www.tls.test", alpn, "www.other.test").await;
        assert_eq!(got, (StatusCode::OK, "site www.other.test".to_owned()));
    }
}

/// An HPACK block of literal fields without indexing, new names, no
/// Huffman coding (RFC 7541 6.2.2); every name and value under 127 bytes.
fn hpack(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut block = Vec::new();
    for (name, value) in fields {
        block.push(0);
        for s in [name, value] {
            block.push(u8::try_from(s.len()).expect("short"));
            block.extend_from_slice(s.as_bytes());
        }
    }
    block
}

/// An HTTP/2 frame.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("small").to_be_bytes();
    let mut out = vec![len[1], len[2], len[3], kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// What the host answered on `stream`: `Ok(status)` for a response whose
/// `:status` is in the static table (200, 400, ...), `Err(code)` for a
/// RST_STREAM. Acknowledges the host's SETTINGS on the way.
async fn h2_answer(conn: &mut tokio::net::TcpStream, stream: u32) -> Result<u16, u32> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    const STATUSES: [u16; 7] = [200, 204, 206, 304, 400, 404, 500];
    loop {
        let mut head = [0u8; 9];
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            conn.read_exact(&mut head),
        )
        .await
        .expect("an answer in time")
        .expect("the connection stays open");
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let mut payload = vec![0u8; len];
        conn.read_exact(&mut payload).await.expect("payload");
        let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        match head[3] {
            0x4 if head[4] & 1 == 0 => {
                conn.write_all(&frame(0x4, 1, 0, &[])).await.expect("ack");
            }
            0x7 => panic!("GOAWAY: {payload:?}"),
            0x1 if id == stream => {
                // Indexed fields 8..=14 of the static table are the statuses.
                let first = payload.first().copied().unwrap_or(0);
                let index = usize::from(first & 0x7f);
                assert!(
                    first & 0x80 != 0 && (8..=14).contains(&index),
                    "{payload:?}"
                );
                return Ok(STATUSES[index - 8]);
            }
            0x3 if id == stream => {
                return Err(u32::from_be_bytes(
                    payload[..4].try_into().expect("4 bytes"),
                ));
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn malformed_http2_requests_are_refused_before_an_http1_origin_sees_them() {
    use tokio::io::AsyncWriteExt as _;
    let origin = Origin::start(|seen| {
        let mut fields: Vec<String> = seen
            .headers
            .iter()
            .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap_or("?")))
            .collect();
        fields.sort();
        Reply::ok(fields.join("\n"))
    })
    .await;
    let edge = Edge::start().await;
    let mut config = config_for(&[("o", &origin)]);
    config["aliases"] = json!(["h2.test", "evil.test"]);
    config["default_cache_behavior"]["default_ttl"] = json!(0);
    edge.create(config).await;

    let mut conn = tokio::net::TcpStream::connect(edge.viewer)
        .await
        .expect("connect");
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    hello.extend(frame(0x4, 0, 0, &[]));
    conn.write_all(&hello).await.expect("preface");
    let get = |extra: &[(&'static str, &'static str)]| {
        let mut fields = vec![
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/page"),
            (":authority", "h2.test"),
        ];
        fields.extend_from_slice(extra);
        hpack(&fields)
    };
    // END_STREAM | END_HEADERS.
    let probes: [(&str, Vec<u8>, u16); 6] = [
        ("host differs", get(&[("host", "evil.test")]), 400),
        ("host the same", get(&[("host", "H2.test")]), 200),
        ("leading space", get(&[("x-pad", " padded")]), 400),
        ("trailing tab", get(&[("x-pad", "padded\t")]), 400),
        ("trailing space", get(&[("x-pad", "padded ")]), 400),
        ("clean", get(&[("x-pad", "in the middle ok")]), 200),
    ];
    let mut wrong = Vec::new();
    for (n, (what, block, want)) in probes.iter().enumerate() {
        let stream = 1 + 2 * u32::try_from(n).expect("few");
        conn.write_all(&frame(0x1, 0x5, stream, block))
            .await
            .expect("headers");
        // A stream error (RST_STREAM PROTOCOL_ERROR) is as good as a 400.
        let got = h2_answer(&mut conn, stream).await;
        let ok = match got {
            Ok(status) => status == *want,
            Err(code) => *want == 400 && code == 0x1,
        };
        if !ok {
            wrong.push(format!("{what}: {got:?}, wanted {want}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert_eq!(origin.hits(), 2, "a malformed request reached the origin");

    // Pseudo-header fields in trailers make a malformed request (RFC 9113
    // 8.1): the stream is reset with PROTOCOL_ERROR, and the connection
    // (and its HPACK state) carries on.
    let post = hpack(&[
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/upload"),
        (":authority", "h2.test"),
    ]);
    let pseudo_trailers = [
        hpack(&[(":path", "/evil"), ("x-trailer", "1")]),
        hpack(&[(":method", "GET")]),
        hpack(&[("x-trailer", "1"), (":path", "/evil")]),
    ];
    for (n, trailers) in pseudo_trailers.iter().enumerate() {
        let stream = 13 + 2 * u32::try_from(n).expect("few");
        conn.write_all(&frame(0x1, 0x4, stream, &post))
            .await
            .expect("headers");
        conn.write_all(&frame(0x0, 0, stream, b"body"))
            .await
            .expect("data");
        conn.write_all(&frame(0x1, 0x5, stream, trailers))
            .await
            .expect("trailers");
        assert_eq!(h2_answer(&mut conn, stream).await, Err(0x1), "trailers {n}");
    }
    // The same trailers without the pseudo-header field are taken.
    let stream = 19;
    conn.write_all(&frame(0x1, 0x4, stream, &post))
        .await
        .expect("headers");
    conn.write_all(&frame(0x0, 0, stream, b"body"))
        .await
        .expect("data");
    let trailers = hpack(&[("x-trailer", "1")]);
    conn.write_all(&frame(0x1, 0x5, stream, &trailers))
        .await
        .expect("trailers");
    assert_eq!(h2_answer(&mut conn, stream).await, Ok(200));
    let seen = origin.last();
    assert_eq!(seen.target, "/upload");
}

// Framing watcher and hyper agree

/// The status of every response in `raw`, in order.
fn framing_statuses(raw: &str) -> Vec<u16> {
    raw.match_indices("HTTP/1.1 ")
        .filter_map(|(at, _)| raw.get(at + 9..at + 12)?.parse().ok())
        .collect()
}

/// An origin that answers with the method and target it saw, behind a host
/// serving `watch.test`.
async fn framing_edge() -> (Origin, Edge) {
    let origin = Origin::start(|seen| Reply::ok(format!("{} {}", seen.method, seen.target))).await;
    let edge = Edge::start().await;
    let mut config = config_for(&[("o", &origin)]);
    config["aliases"] = json!(["watch.test"]);
    // Nothing stored: every request the host serves reaches the origin.
    config["default_cache_behavior"]["default_ttl"] = json!(0);
    edge.create(config).await;
    (origin, edge)
}

const BARE_LF_GET: &str = "GET /a HTTP/1.1\nhost: watch.test\n\n";
const BOTH_LENGTHS: &str = "POST /smuggled HTTP/1.1\r\nhost: watch.test\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n";

/// A head with bare LF line endings (which hyper accepts) used to make the
/// watch on the connection lose count: a request with both lengths after it
/// on the same connection was passed on instead of refused.
#[tokio::test]
async fn both_lengths_after_a_bare_lf_request_are_refused() {
    let (origin, edge) = framing_edge().await;
    let got = edge
        .raw_exchange(format!("{BARE_LF_GET}{BOTH_LENGTHS}").as_bytes())
        .await;
    assert_eq!(framing_statuses(&got), [200, 400], "{got}");
    assert!(got.contains("GET /a"), "{got}");
    assert!(got.contains("AmbiguousFraming"), "{got}");
    assert_eq!(origin.hits(), 1);
    assert_eq!(origin.last().target, "/a");
}

/// ... and in a pipeline, the well-formed request after a bare-LF one was
/// blamed for the next one's framing.
#[tokio::test]
async fn a_bare_lf_request_pipelined_with_a_well_formed_one_serves_both() {
    let (origin, edge) = framing_edge().await;
    let well_formed = "GET /b HTTP/1.1\r\nhost: watch.test\r\n\r\n";
    let got = edge
        .raw_exchange(format!("{BARE_LF_GET}{well_formed}{BOTH_LENGTHS}").as_bytes())
        .await;
    assert_eq!(framing_statuses(&got), [200, 200, 400], "{got}");
    assert!(got.contains("GET /a") && got.contains("GET /b"), "{got}");
    let closing = "GET /c HTTP/1.1\r\nhost: watch.test\r\nconnection: close\r\n\r\n";
    let got = edge
        .raw_exchange(format!("{BARE_LF_GET}{closing}").as_bytes())
        .await;
    assert_eq!(framing_statuses(&got), [200, 200], "{got}");
    assert!(got.contains("GET /c"), "{got}");
    assert_eq!(
        origin.hits(),
        4,
        "the ambiguous request never reached the origin"
    );
}
