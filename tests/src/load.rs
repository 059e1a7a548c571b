//! Load while something changes: a viewer that requests one URL in a loop
//! and records every answer.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;

use crate::Edge;

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
