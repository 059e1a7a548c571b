//! Stopping and handing over a host: SIGTERM lets in-flight requests finish;
//! `--take-over` moves the listening sockets to a new host with no request
//! lost; `--reuse-port` lets a new host bind the ports the old one holds.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{request, start};

/// An origin that answers `body` after `delay`, on a thread.
fn slow_origin(body: &'static str, delay: Duration) -> std::net::SocketAddr {
    common::origin(body, delay, "no-store")
}

fn distribution(alias: &str, origin: std::net::SocketAddr) -> String {
    format!(
        r#"{{"aliases": ["{alias}"], "origins": [{{"id": "web", "domain_name": "{origin}", "protocol": "http"}}], "default_cache_behavior": {{"target_origin_id": "web"}}}}"#
    )
}

/// Creates the distribution for `slow.example.com` on `origin`.
fn create(control: std::net::SocketAddr, origin: std::net::SocketAddr) {
    create_for(control, "slow.example.com", origin);
}

fn create_for(control: std::net::SocketAddr, alias: &str, origin: std::net::SocketAddr) {
    let (status, body) = request(
        control,
        "POST",
        "/v1/distributions",
        "control",
        &distribution(alias, origin),
    )
    .expect("create");
    assert_eq!(status, 201, "{body}");
}

fn sigterm(child: &std::process::Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
}

#[test]
fn sigterm_lets_an_in_flight_request_finish_then_stops() {
    let origin = slow_origin("worth the wait", Duration::from_secs(2));
    let dir = tempfile::tempdir().expect("temp dir");
    let mut served = start(dir.path(), &[]);
    create(served.control, origin);
    let viewer = served.viewer;
    let in_flight = std::thread::spawn(move || request(viewer, "GET", "/", "slow.example.com", ""));
    std::thread::sleep(Duration::from_millis(300));
    let signalled = Instant::now();
    sigterm(&served.child);
    let (status, body) = in_flight
        .join()
        .expect("viewer thread")
        .expect("the in-flight request");
    assert_eq!((status, body.as_str()), (200, "worth the wait"));
    let exit = served.child.wait().expect("exit");
    assert!(exit.success(), "{exit}");
    assert!(signalled.elapsed() < Duration::from_secs(10));
    assert!(
        request(viewer, "GET", "/", "slow.example.com", "").is_err(),
        "a stopped host accepted a connection"
    );
}

#[test]
fn reuse_port_lets_a_new_host_take_over_while_the_old_drains() {
    let origin = slow_origin("served", Duration::from_millis(10));
    let dir_old = tempfile::tempdir().expect("temp dir");
    let dir_new = tempfile::tempdir().expect("temp dir");
    let mut old = start(dir_old.path(), &["--reuse-port"]);
    let port = format!("127.0.0.1:{}", old.viewer.port());
    // Without the option a second host cannot bind the port.
    let refused = Command::new(env!("CARGO_BIN_EXE_edge"))
        .args(["serve", "--listen", &port, "--control", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir_new.path().join("other"))
        .env("RUST_LOG", "error")
        .output()
        .expect("edge serve");
    assert!(
        !refused.status.success(),
        "a second host bound a port in use"
    );
    // With it, the new host binds beside the old one and serves once the old
    // one is gone.
    let mut new = start(dir_new.path(), &["--reuse-port", "--listen", &port]);
    assert_eq!(new.viewer, old.viewer);
    create(new.control, origin);
    sigterm(&old.child);
    assert!(old.child.wait().expect("exit").success());
    let (status, body) = request(new.viewer, "GET", "/", "slow.example.com", "").expect("served");
    assert_eq!((status, body.as_str()), (200, "served"));
    new.child.kill().expect("kill");
    new.child.wait().expect("reaped");
}

/// Viewers requesting `host` in a loop, each request on a new connection,
/// until `stop`; every answer other than a 200 is a failure.
fn looping_viewers(
    viewer: std::net::SocketAddr,
    host: &'static str,
    count: usize,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<std::thread::JoinHandle<(usize, Vec<String>)>> {
    (0..count)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let (mut sent, mut failures) = (0, Vec::new());
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    sent += 1;
                    match request(viewer, "GET", "/", host, "") {
                        Ok((200, _)) => {}
                        Ok((status, body)) => failures.push(format!("{status}: {body}")),
                        Err(err) => failures.push(err.to_string()),
                    }
                }
                (sent, failures)
            })
        })
        .collect()
}

#[test]
fn taking_over_moves_the_sockets_and_loses_no_request() {
    let quick = slow_origin("served", Duration::from_millis(2));
    let slow = slow_origin("slow but served", Duration::from_secs(2));
    let dir = tempfile::tempdir().expect("temp dir");
    let mut old = start(dir.path(), &[]);
    create_for(old.control, "www.example.com", quick);
    create_for(old.control, "slow.example.com", slow);

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let viewers = looping_viewers(old.viewer, "www.example.com", 4, &stop);
    std::thread::sleep(Duration::from_millis(300));
    // In flight on the old host when the new one takes over: it must finish.
    let viewer = old.viewer;
    let in_flight = std::thread::spawn(move || request(viewer, "GET", "/", "slow.example.com", ""));
    std::thread::sleep(Duration::from_millis(200));

    // Two generations: old -> new -> newest, all on the same data dir.
    let mut new = start(dir.path(), &["--take-over"]);
    assert_eq!((new.viewer, new.control), (old.viewer, old.control));
    let exit = old.child.wait().expect("the old host exits");
    assert!(exit.success(), "{exit}");
    std::thread::sleep(Duration::from_millis(300));
    let mut newest = start(dir.path(), &["--take-over"]);
    assert_eq!(newest.viewer, old.viewer);
    let exit = new.child.wait().expect("the second host exits");
    assert!(exit.success(), "{exit}");
    std::thread::sleep(Duration::from_millis(300));

    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (mut sent, mut failures) = (0, Vec::new());
    for v in viewers {
        let (s, f) = v.join().expect("viewer thread");
        sent += s;
        failures.extend(f);
    }
    let (status, body) = in_flight
        .join()
        .expect("viewer thread")
        .expect("the in-flight request");
    assert_eq!((status, body.as_str()), (200, "slow but served"));
    eprintln!(
        "two takeovers under 4 looping viewers: {sent} requests, {} failed",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {sent} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(sent > 100, "only {sent} requests were sent");

    // The store came along: the config is served and writes go through.
    let (status, body) =
        request(newest.viewer, "GET", "/", "slow.example.com", "").expect("served");
    assert_eq!((status, body.as_str()), (200, "slow but served"));
    create_for(newest.control, "more.example.com", quick);
    newest.child.kill().expect("kill");
    newest.child.wait().expect("reaped");
}

#[test]
fn a_take_over_without_a_running_host_fails_clearly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_edge"))
        .args([
            "serve",
            "--take-over",
            "--listen",
            "127.0.0.1:0",
            "--control",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .env("RUST_LOG", "error")
        .output()
        .expect("edge serve");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no host to take over"), "{err}");
}
