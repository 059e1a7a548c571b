//! `kill -9` at random points during a stream of control-API writes, 50
//! times: after each restart the store opens, every acknowledged write is
//! there and no refused one is.

#[expect(dead_code, reason = "this test needs no origin")]
mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{request, start};

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
        let served = start(dir.path(), &[]);
        let (mut child, control) = (served.child, served.control);
        let (acked_w, refused_w) = (acked.clone(), refused.clone());
        let writer = std::thread::spawn(move || {
            for k in 0.. {
                let comment = format!("w-{round}-{k}");
                let alias = format!("w{round}-{k}.example.com");
                let body = config(&comment, &alias);
                match request(control, "POST", "/v1/distributions", "control", &body) {
                    Ok((201, _)) => acked_w.lock().expect("lock").push(comment),
                    Ok((status, body)) => panic!("a valid create got {status}: {body}"),
                    Err(_) => return,
                }
                // A write the API refuses (an origin-less config): never stored.
                let bad = format!("bad-{round}-{k}");
                let body = format!(
                    r#"{{"comment": "{bad}", "origins": [], "default_cache_behavior": {{"target_origin_id": "web"}}}}"#
                );
                match request(control, "POST", "/v1/distributions", "control", &body) {
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

    let served = start(dir.path(), &[]);
    // The restarted host serves viewers too.
    let (status, _) =
        request(served.viewer, "GET", "/", "w0-0.example.com", "").expect("a viewer request");
    assert_ne!(status, 421, "an acknowledged distribution is not served");
    let (mut child, control) = (served.child, served.control);
    let (status, body) = request(control, "GET", "/v1/distributions", "control", "").expect("list");
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
