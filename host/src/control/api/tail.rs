//! `/v1/tail`: hook log lines and access records as they happen, one JSON
//! object per line (NDJSON), for `edge tail`.
//!
//! Query: `distribution` (an id), `hook` (a hook name: its log lines only),
//! `status` (`503` or `5xx`: access records only). The first line is
//! `{"kind": "start"}`; a watcher that fell behind gets `{"kind":
//! "dropped", "lines": n}` before the next line it is sent. The stream ends
//! when the client goes away.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response};
use http_body::{Body, Frame};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use tokio::sync::mpsc;

use super::ControlApi;
use super::http::{ApiResponse, Route};
use crate::control::error::ApiError;
use crate::tail::{Filter, Next, StatusFilter, Watcher};

pub(super) const ROUTES: &[Route] = &[(&["tail"], &[Method::GET])];

/// Lines waiting for a slow client before it loses some.
const BUFFERED: usize = 256;

/// The filter a query asks for.
fn filter(query: Option<&str>) -> Result<Filter, ApiError> {
    let mut filter = Filter::default();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = value.to_owned();
        match name {
            "distribution" => filter.distribution = Some(value),
            "hook" => filter.hook = Some(value),
            "status" => {
                filter.status =
                    Some(StatusFilter::parse(&value).map_err(ApiError::invalid_argument)?);
            }
            other => {
                return Err(ApiError::invalid_argument(format!(
                    "unknown query parameter {other:?} (distribution, hook, status)"
                )));
            }
        }
    }
    Ok(filter)
}

/// Answers `GET /v1/tail`.
pub(super) fn handle(api: &ControlApi, req: &Request<Incoming>) -> Result<ApiResponse, ApiError> {
    let filter = filter(req.uri().query())?;
    let watcher = api.tail.watch();
    let (lines, receiver) = mpsc::channel(BUFFERED);
    tokio::spawn(relay(watcher, filter, lines));
    let mut resp = Response::new(TailBody { receiver }.boxed_unsync());
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

fn line(value: &impl serde::Serialize) -> Bytes {
    let mut out = serde_json::to_vec(value).unwrap_or_default();
    out.push(b'\n');
    Bytes::from(out)
}

/// Moves what `watcher` sees and `filter` keeps to the client's lines,
/// counting what a full buffer loses and saying so as soon as there is
/// room; ends when the client goes away.
async fn relay(mut watcher: Watcher, filter: Filter, lines: mpsc::Sender<Bytes>) {
    if lines
        .send(line(&serde_json::json!({"kind": "start"})))
        .await
        .is_err()
    {
        return;
    }
    let mut dropped: u64 = 0;
    loop {
        let next = tokio::select! {
            next = watcher.next() => next,
            room = lines.reserve(), if dropped > 0 => {
                let Ok(room) = room else { return };
                room.send(line(&serde_json::json!({"kind": "dropped", "lines": dropped})));
                dropped = 0;
                continue;
            }
            () = lines.closed() => return,
        };
        match next {
            Next::Event(event) if filter.matches(&event) => {
                // What was lost goes before anything newer.
                if dropped > 0 {
                    dropped += 1;
                    continue;
                }
                match lines.try_send(line(&*event)) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => dropped += 1,
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                }
            }
            Next::Event(_) => {}
            Next::Dropped(n) => dropped += n,
        }
    }
}

/// The client's lines, as they come.
struct TailBody {
    receiver: mpsc::Receiver<Bytes>,
}

impl Body for TailBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.get_mut()
            .receiver
            .poll_recv(cx)
            .map(|line| line.map(|l| Ok(Frame::data(l))))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::tail::{TailEvent, TailHub};

    fn event(n: usize) -> TailEvent {
        TailEvent::Log {
            time: String::new(),
            distribution: "E1".to_owned(),
            request_id: n.to_string(),
            hook: "h".to_owned(),
            event: "viewer_request",
            line: "x".to_owned(),
        }
    }

    #[tokio::test]
    async fn a_client_that_reads_slowly_is_told_every_line_it_lost() {
        let hub = Arc::new(TailHub::default());
        let (lines, mut receiver) = mpsc::channel(4);
        let relaying = tokio::spawn(relay(hub.watch(), Filter::default(), lines));
        let start = receiver.recv().await.expect("the start line");
        assert!(start.starts_with(br#"{"kind":"start"}"#));
        // Far more than the hub and the client's buffer hold, unread.
        for n in 0..5000 {
            hub.publish(event(n));
            if n % 64 == 0 {
                tokio::task::yield_now().await;
            }
        }
        let (mut shown, mut dropped) = (0u64, 0u64);
        while let Ok(Some(line)) =
            tokio::time::timeout(std::time::Duration::from_millis(300), receiver.recv()).await
        {
            let value: serde_json::Value = serde_json::from_slice(&line).expect("JSON");
            match value["kind"].as_str() {
                Some("dropped") => dropped += value["lines"].as_u64().expect("lines"),
                _ => shown += 1,
            }
        }
        assert!(dropped > 0, "nothing dropped of {shown}");
        assert_eq!(shown + dropped, 5000, "shown {shown}, dropped {dropped}");
        drop(receiver);
        // The relay ends once the client is gone, and so does the watcher.
        relaying.await.expect("relay");
        assert!(!hub.watching());
    }
}
