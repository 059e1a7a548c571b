//! `kill -9` at random points during a stream of control-API writes, 50
//! times: after each restart the store opens, every acknowledged write is
//! there and no refused one is.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TOKEN: &str = "crash-test-token";

/// Starts `edge serve` on the data dir; the process and its control address.
fn start(dir: &std::path::Path) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_edge"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--control",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(dir)
        .args(["--token", TOKEN])
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting edge serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let control = loop {
        let line = lines
            .next()
            .expect("edge serve exited before it listened (the store did not open?)")
            .expect("reading stdout");
        if let Some(addr) = line.strip_prefix("control: http://") {
            break addr.parse().expect("control address");
        }
    };
    (child, control)
}

/// One HTTP/1.1 request on a new connection: the status and body.
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: control\r\nauthorization: Bearer {TOKEN}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not a response: {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    Ok((status, body))
}

fn config(comment: &str, alias: &str) -> String {
    format!(
        r#"{{"comment": "{comment}", "aliases": ["{alias}"], "origins": [{{"id": "web", "domain_name": "127.0.0.1:9", "protocol": "http"}}], "default_cache_behavior": {{"target_origin_id": "web"}}}}"#
    )
}

/// A small, seeded pseudo-random sequence (the kill points).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

#[test]
fn acknowledged_writes_survive_kill_9_and_refused_ones_never_appear() {
    const KILLS: usize = 50;
    let dir = tempfile::tempdir().expect("temp dir");
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let refused = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut random = Lcg(0x5eed);
    for round in 0..KILLS {
        let (mut child, control) = start(dir.path());
        let (acked_w, refused_w) = (acked.clone(), refused.clone());
        let writer = std::thread::spawn(move || {
            for k in 0.. {
                let comment = format!("w-{round}-{k}");
                let alias = format!("w{round}-{k}.example.com");
                match request(
                    control,
                    "POST",
                    "/v1/distributions",
                    &config(&comment, &alias),
                ) {
                    Ok((201, _)) => acked_w.lock().expect("lock").push(comment),
                    Ok((status, body)) => panic!("a valid create got {status}: {body}"),
                    Err(_) => return,
                }
                // A write the API refuses (an origin-less config): never stored.
                let bad = format!("bad-{round}-{k}");
                let body = format!(
                    r#"{{"comment": "{bad}", "origins": [], "default_cache_behavior": {{"target_origin_id": "web"}}}}"#
                );
                match request(control, "POST", "/v1/distributions", &body) {
                    Ok((400, _)) => refused_w.lock().expect("lock").push(bad),
                    Ok((status, body)) => panic!("an invalid create got {status}: {body}"),
                    Err(_) => return,
                }
            }
        });
        std::thread::sleep(Duration::from_millis(20 + random.next(100)));
        child.kill().expect("kill -9");
        child.wait().expect("reaped");
        writer.join().expect("writer");
    }

    let (mut child, control) = start(dir.path());
    let (status, body) = request(control, "GET", "/v1/distributions", "").expect("list");
    child.kill().expect("kill");
    child.wait().expect("reaped");
    assert_eq!(status, 200, "{body}");
    let list: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let present: std::collections::HashSet<String> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|d| d["comment"].as_str().map(str::to_owned))
        .collect();
    let acked = acked.lock().expect("lock");
    let refused = refused.lock().expect("lock");
    let missing: Vec<&String> = acked.iter().filter(|c| !present.contains(*c)).collect();
    let stored_refusals: Vec<&String> = refused.iter().filter(|c| present.contains(*c)).collect();
    eprintln!(
        "crash: {KILLS} kill -9s; {} writes acknowledged, {} missing; {} refused, {} stored; {} present in all",
        acked.len(),
        missing.len(),
        refused.len(),
        stored_refusals.len(),
        present.len()
    );
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    assert!(
        stored_refusals.is_empty(),
        "refused but stored: {stored_refusals:?}"
    );
    assert!(
        acked.len() >= KILLS,
        "too few writes to mean anything: {}",
        acked.len()
    );
}
