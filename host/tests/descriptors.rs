//! A host out of file descriptors: idle connections hold every descriptor
//! the process may open, and a new viewer and the operator still get in.

#[expect(
    dead_code,
    reason = "this test starts its host with a descriptor limit only"
)]
mod common;

use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{origin, request, start_limited};

/// One counter or gauge from the control listener's `/metrics`.
fn metric(control: SocketAddr, name: &str) -> u64 {
    let (status, text) = request(control, "GET", "/metrics", "control", "").expect("metrics");
    assert_eq!(status, 200, "{text}");
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

#[test]
fn idle_connections_that_exhaust_the_descriptors_are_shed_for_a_new_viewer() {
    const LIMIT: u32 = 256;
    let web = origin("hello", Duration::ZERO, "max-age=60");
    let dir = tempfile::tempdir().expect("temp dir");
    let host = start_limited(dir.path(), &[], Some(LIMIT));
    let config = format!(
        r#"{{"aliases": ["www.fd.test"], "origins": [{{"id": "web", "domain_name": "{web}", "protocol": "http"}}], "default_cache_behavior": {{"target_origin_id": "web"}}}}"#
    );
    let (status, body) = request(
        host.control,
        "POST",
        "/v1/distributions",
        "control",
        &config,
    )
    .expect("create");
    assert_eq!(status, 201, "{body}");

    // Twice the limit of connections that never send a byte (and one that
    // sends a lone `P`, a partial HTTP/2 preface): the host accepts them
    // until it has no descriptor left.
    let mut idle = Vec::new();
    for i in 0..2 * LIMIT {
        let mut stream = TcpStream::connect(host.viewer).expect("connect");
        if i == 0 {
            stream.write_all(b"P").expect("write");
        }
        idle.push(stream);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric(host.control, "edge_accept_exhausted_total") == 0 {
        assert!(
            Instant::now() < deadline,
            "the host never ran out of descriptors"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // A new viewer is served (the longest-idle connections made room), and
    // so is the operator.
    for _ in 0..5 {
        let (status, body) =
            request(host.viewer, "GET", "/", "www.fd.test", "").expect("a new viewer is answered");
        assert_eq!((status, body.as_str()), (200, "hello"));
    }
    let (status, body) =
        request(host.control, "GET", "/v1/distributions", "control", "").expect("the operator");
    assert_eq!(status, 200, "{body}");
    assert!(metric(host.control, "edge_connections_shed_total") > 0);
    let open = metric(host.control, "process_open_fds");
    assert!(open <= u64::from(LIMIT), "{open} descriptors open");
    assert_eq!(metric(host.control, "process_max_fds"), u64::from(LIMIT));
    drop(idle);
    let mut child = host.child;
    child.kill().expect("kill");
    child.wait().expect("reaped");
}
