//! An in-memory origin for the phase tests: canned answers by origin and path,
//! every request it was sent, failures on demand, and a gate that holds fetches.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use http_body_util::combinators::MapErr;
use http_body_util::{BodyExt as _, Full};
use tokio::sync::watch;

use crate::origin::{OriginError, OriginTarget, Origins, UpstreamBody};

/// The body of a canned answer: whole, and never failing.
pub type CannedBody = MapErr<Full<Bytes>, fn(Infallible) -> hyper::Error>;

/// A request as the origin received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// The id of the origin it was sent to.
    pub origin: String,
    pub method: Method,
    /// The absolute URI it was sent to.
    pub uri: Uri,
    pub headers: HeaderMap,
    /// The length of its body.
    pub body_len: usize,
}

/// How an origin fails every request sent to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The connection is refused.
    Refused,
    /// No answer within the origin's read timeout (reported at once).
    Timeout,
}

/// A canned answer.
#[derive(Debug, Clone)]
pub struct Canned {
    pub status: StatusCode,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
}

#[derive(Debug, Default)]
struct State {
    /// By origin id and request path (the origin's path prefix included).
    canned: HashMap<(String, String), Canned>,
    failing: HashMap<String, Failure>,
    received: Vec<Received>,
}

/// Origins in memory. A request with no canned answer gets `200`,
/// `Cache-Control: max-age=60` and the body `<origin> <method> <path> #<n>`,
/// `n` counting the requests received so far.
#[derive(Debug)]
pub struct Memory {
    state: Mutex<State>,
    /// While `false`, requests wait (received, not answered).
    open: watch::Sender<bool>,
}

impl Default for Memory {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            open: watch::Sender::new(true),
        }
    }
}

impl Memory {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Answers requests for `path` on `origin` with `canned`.
    pub fn answer(&self, origin: &str, path: &str, canned: Canned) {
        self.state()
            .canned
            .insert((origin.to_owned(), path.to_owned()), canned);
    }

    /// Fails every request to `origin` as `failure` says, or (`None`) none.
    pub fn fail(&self, origin: &str, failure: Option<Failure>) {
        let mut state = self.state();
        match failure {
            Some(failure) => state.failing.insert(origin.to_owned(), failure),
            None => state.failing.remove(origin),
        };
    }

    /// Holds every answer until [`Memory::release`].
    pub fn hold(&self) {
        self.open.send_replace(false);
    }

    /// Answers what was held, and everything from now on.
    pub fn release(&self) {
        self.open.send_replace(true);
    }

    /// Every request received, in order.
    pub fn received(&self) -> Vec<Received> {
        self.state().received.clone()
    }

    /// How many requests `origin` received.
    pub fn count(&self, origin: &str) -> usize {
        self.state()
            .received
            .iter()
            .filter(|r| r.origin == origin)
            .count()
    }
}

impl Origins for Memory {
    type Body = CannedBody;

    fn send(
        &self,
        to: OriginTarget<'_>,
        req: Request<UpstreamBody>,
    ) -> impl Future<Output = Result<Response<CannedBody>, OriginError>> + Send {
        let origin = to.origin.id.clone();
        let read_timeout = to.origin.read_timeout;
        async move {
            let (head, body) = req.into_parts();
            let body = body.collect().await.map_err(|e| OriginError::Protocol {
                origin: origin.clone(),
                reason: e.to_string(),
            })?;
            let path = head.uri.path().to_owned();
            let (n, canned, failure) = {
                let mut state = self.state();
                state.received.push(Received {
                    origin: origin.clone(),
                    method: head.method.clone(),
                    uri: head.uri,
                    headers: head.headers,
                    body_len: body.to_bytes().len(),
                });
                (
                    state.received.len(),
                    state.canned.get(&(origin.clone(), path.clone())).cloned(),
                    state.failing.get(&origin).copied(),
                )
            };
            let mut open = self.open.subscribe();
            // The sender lives as long as `self`.
            let _ = open.wait_for(|open| *open).await;
            match failure {
                Some(Failure::Refused) => {
                    return Err(OriginError::Connect {
                        origin,
                        reason: "connection refused".to_owned(),
                    });
                }
                Some(Failure::Timeout) => {
                    return Err(OriginError::Timeout {
                        origin,
                        timeout: read_timeout,
                    });
                }
                None => {}
            }
            let canned = canned.unwrap_or_else(|| Canned {
                status: StatusCode::OK,
                headers: vec![("cache-control", "max-age=60".to_owned())],
                body: Bytes::from(format!("{origin} {} {path} #{n}", head.method)),
            });
            let never: fn(Infallible) -> hyper::Error = |never| match never {};
            let mut resp = Response::new(Full::new(canned.body).map_err(never));
            *resp.status_mut() = canned.status;
            for (name, value) in canned.headers {
                if let Ok(value) = value.parse() {
                    resp.headers_mut().append(name, value);
                }
            }
            Ok(resp)
        }
    }
}
