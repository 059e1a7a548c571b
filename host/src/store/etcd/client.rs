//! A small etcd v3 client over etcd's JSON gateway (`POST /v3/...` on a member's client URL).
//!
//! etcd serves its gRPC API as JSON over HTTP/1.1 as well (grpc-gateway, on by
//! default on every client URL): each call posts its request message as JSON
//! and answers its response message as JSON. Keys and values are base64,
//! 64-bit integers are strings, and fields at their zero value are left out
//! of answers. A refused call answers a non-2xx status with
//! `{"error": ..., "message": ..., "code": <gRPC status>}`. A streaming call
//! (watch, lease keep-alive) answers one JSON object per message, each
//! `{"result": <message>}` or `{"error": {"grpc_code": ..., "message": ...}}`.
//!
//! Several members may be given: a call goes to the one that answered last
//! and moves on to the next when a connection cannot be made (nothing was
//! sent, so any call may be retried there).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// How long a connection to one member may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a call may take, connecting included (a stream: until its first
/// message, for the lease; until its head, for a watch).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A failed etcd call.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("etcd endpoint {endpoint:?}: {reason}")]
    Endpoint { endpoint: String, reason: String },
    #[error("cannot connect to etcd at {endpoint}: {reason}")]
    Connect { endpoint: String, reason: String },
    #[error("etcd did not answer within {0:?}")]
    Timeout(Duration),
    #[error("etcd at {endpoint}: {reason}")]
    Http { endpoint: String, reason: String },
    /// etcd refused the call with a gRPC status.
    #[error("etcd refused the call: {message} (gRPC status {code})")]
    Status { code: i32, message: String },
    #[error("etcd's answer is not understood: {0}")]
    Decode(String),
}

impl EtcdError {
    /// Whether etcd refused a request over its size limit: its own
    /// (`--max-request-bytes`) or gRPC's message limit past it.
    pub fn is_too_large(&self) -> bool {
        matches!(self, Self::Status { message, .. }
            if message.contains("request is too large") || message.contains("larger than max"))
    }
}

/// Base64 for keys and values.
mod b64 {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        STANDARD
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}

/// 64-bit integers, which proto3's JSON writes as strings (numbers are read
/// too).
mod int64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(n: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(n)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Number(i64),
            Text(String),
        }
        match Repr::deserialize(d)? {
            Repr::Number(n) => Ok(n),
            Repr::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// The header of every answer.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Header {
    /// The store's revision when the call was served.
    #[serde(with = "int64")]
    pub revision: i64,
}

/// One stored key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Kv {
    #[serde(with = "b64")]
    pub key: Vec<u8>,
    #[serde(with = "b64")]
    pub value: Vec<u8>,
    #[serde(with = "int64")]
    pub create_revision: i64,
    #[serde(with = "int64")]
    pub mod_revision: i64,
    /// The lease the key is bound to (0: none).
    #[serde(with = "int64")]
    pub lease: i64,
}

/// Reads one key, or the keys in `[key, range_end)`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RangeRequest {
    #[serde(with = "b64")]
    pub key: Vec<u8>,
    #[serde(with = "b64", skip_serializing_if = "Vec::is_empty")]
    pub range_end: Vec<u8>,
}

impl RangeRequest {
    /// The one key `key`.
    pub fn key(key: impl Into<Vec<u8>>) -> Self {
        Self {
            key: key.into(),
            range_end: Vec::new(),
        }
    }

    /// Every key that starts with `prefix`.
    pub fn prefix(prefix: impl Into<Vec<u8>>) -> Self {
        let key = prefix.into();
        Self {
            range_end: prefix_end(&key),
            key,
        }
    }
}

/// The answer to a [`RangeRequest`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RangeResponse {
    pub header: Header,
    pub kvs: Vec<Kv>,
}

/// Writes one key, bound to `lease` unless it is 0.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PutRequest {
    #[serde(with = "b64")]
    pub key: Vec<u8>,
    #[serde(with = "b64")]
    pub value: Vec<u8>,
    #[serde(with = "int64", skip_serializing_if = "is_zero")]
    pub lease: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// Deletes one key.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeleteRangeRequest {
    #[serde(with = "b64")]
    pub key: Vec<u8>,
}

/// A condition of a transaction: the key's mod revision equals
/// `mod_revision` (0: the key is absent).
#[derive(Debug, Clone, Serialize)]
pub struct Compare {
    #[serde(with = "b64")]
    key: Vec<u8>,
    target: &'static str,
    result: &'static str,
    #[serde(with = "int64")]
    mod_revision: i64,
}

impl Compare {
    pub fn mod_revision_equals(key: impl Into<Vec<u8>>, revision: i64) -> Self {
        Self {
            key: key.into(),
            target: "MOD",
            result: "EQUAL",
            mod_revision: revision,
        }
    }
}

/// One operation of a transaction (etcd's `RequestOp`).
#[derive(Debug, Clone, Serialize)]
pub enum RequestOp {
    #[serde(rename = "request_range")]
    Range(RangeRequest),
    #[serde(rename = "request_put")]
    Put(PutRequest),
    #[serde(rename = "request_delete_range")]
    DeleteRange(DeleteRangeRequest),
}

/// If every compare holds, the `success` operations, else the `failure`
/// ones, at one revision.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TxnRequest {
    pub compare: Vec<Compare>,
    pub success: Vec<RequestOp>,
    pub failure: Vec<RequestOp>,
}

/// The answer to a [`TxnRequest`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TxnResponse {
    pub header: Header,
    /// Whether the compares held (the success branch ran).
    pub succeeded: bool,
    /// One answer per operation of the branch that ran.
    pub responses: Vec<ResponseOp>,
}

/// The answer to one operation of a transaction (only reads are kept).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ResponseOp {
    pub response_range: Option<RangeResponse>,
}

#[derive(Debug, Serialize)]
struct LeaseGrantRequest {
    #[serde(rename = "TTL", with = "int64")]
    ttl: i64,
}

#[derive(Debug, Serialize)]
struct LeaseIdRequest {
    #[serde(rename = "ID", with = "int64")]
    id: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LeaseResponse {
    #[serde(rename = "ID", with = "int64")]
    id: i64,
    #[serde(rename = "TTL", with = "int64")]
    ttl: i64,
    error: String,
}

#[derive(Debug, Serialize)]
struct WatchRequest {
    create_request: WatchCreateRequest,
}

#[derive(Debug, Serialize)]
struct WatchCreateRequest {
    #[serde(with = "b64")]
    key: Vec<u8>,
    #[serde(with = "b64", skip_serializing_if = "Vec::is_empty")]
    range_end: Vec<u8>,
    #[serde(with = "int64")]
    start_revision: i64,
}

/// What happened to a key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum EventKind {
    /// Left out of the JSON: it is the zero value.
    #[default]
    Put,
    Delete,
}

/// One change a watch reports.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// The key as written (a delete: only the key and its mod revision).
    pub kv: Kv,
}

/// One message of a watch: its creation, a batch of events, or its end.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct WatchResponse {
    pub header: Header,
    pub created: bool,
    pub canceled: bool,
    pub cancel_reason: String,
    /// Set when the watch started before etcd's compacted history.
    #[serde(with = "int64")]
    pub compact_revision: i64,
    pub events: Vec<Event>,
}

/// The keys after `prefix` in byte order end before this key: `prefix` with
/// its last byte below 0xff incremented and what follows dropped (`\0`, etcd's
/// "to the end", when there is none).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// One message of a streaming answer.
#[derive(Debug, Deserialize)]
struct StreamItem<T> {
    result: Option<T>,
    error: Option<StreamError>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StreamError {
    grpc_code: i32,
    message: String,
}

/// The body of a refused unary call.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ErrorBody {
    error: String,
    message: String,
    code: i32,
}

/// The error a non-2xx answer carries.
fn refused(status: http::StatusCode, body: &[u8]) -> EtcdError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) if !e.message.is_empty() || !e.error.is_empty() => EtcdError::Status {
            code: e.code,
            message: if e.message.is_empty() {
                e.error
            } else {
                e.message
            },
        },
        _ => EtcdError::Decode(format!(
            "{status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        )),
    }
}

/// The first complete JSON value at the front of `buf`, taken off it;
/// `None` until one has arrived whole.
fn take_message(buf: &mut Vec<u8>) -> Result<Option<serde_json::Value>, EtcdError> {
    let mut values = serde_json::Deserializer::from_slice(buf).into_iter::<serde_json::Value>();
    match values.next() {
        None => {
            // Only whitespace between messages.
            buf.clear();
            Ok(None)
        }
        Some(Ok(value)) => {
            let used = values.byte_offset();
            buf.drain(..used);
            Ok(Some(value))
        }
        Some(Err(err)) if err.is_eof() => Ok(None),
        Some(Err(err)) => Err(EtcdError::Decode(err.to_string())),
    }
}

/// The message in one `{"result": ...}` / `{"error": ...}` object.
fn stream_message<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, EtcdError> {
    let item: StreamItem<T> =
        serde_json::from_value(value).map_err(|e| EtcdError::Decode(e.to_string()))?;
    match item {
        StreamItem {
            error: Some(error), ..
        } => Err(EtcdError::Status {
            code: error.grpc_code,
            message: error.message,
        }),
        StreamItem {
            result: Some(result),
            ..
        } => Ok(result),
        StreamItem { .. } => Err(EtcdError::Decode(
            "a stream message with neither result nor error".to_owned(),
        )),
    }
}

/// A streaming answer: JSON messages as they arrive.
#[derive(Debug)]
struct MessageStream {
    body: Incoming,
    buf: Vec<u8>,
}

impl MessageStream {
    /// The next message; `None` when etcd ended the stream.
    async fn next<T: DeserializeOwned>(&mut self) -> Result<Option<T>, EtcdError> {
        loop {
            if let Some(value) = take_message(&mut self.buf)? {
                return stream_message(value).map(Some);
            }
            match self.body.frame().await {
                None if self.buf.is_empty() => return Ok(None),
                None => {
                    return Err(EtcdError::Decode(
                        "the stream ended inside a message".to_owned(),
                    ));
                }
                Some(Err(err)) => {
                    return Err(EtcdError::Http {
                        endpoint: String::new(),
                        reason: error_chain(&err),
                    });
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}

/// A watch's messages, as etcd sends them; dropping it cancels the watch.
#[derive(Debug)]
pub struct WatchStream(MessageStream);

impl WatchStream {
    /// The next message; `None` when etcd ended the watch.
    pub async fn message(&mut self) -> Result<Option<WatchResponse>, EtcdError> {
        self.0.next().await
    }
}

/// An error and its sources, on one line.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A client of one etcd cluster.
#[derive(Debug)]
pub struct Client {
    http: HttpClient<HttpConnector, Full<Bytes>>,
    /// `http://host:port` of each member.
    endpoints: Vec<String>,
    /// The member to ask first (modulo their number): the last that answered.
    current: AtomicUsize,
}

impl Client {
    /// A client of the members at `endpoints` (`host:port` or
    /// `http://host:port`). Nothing is contacted until the first call.
    pub fn new(endpoints: &[String]) -> Result<Self, EtcdError> {
        let endpoints = endpoints
            .iter()
            .map(|e| normalize_endpoint(e))
            .collect::<Result<Vec<_>, _>>()?;
        if endpoints.is_empty() {
            return Err(EtcdError::Endpoint {
                endpoint: String::new(),
                reason: "no etcd endpoint given".to_owned(),
            });
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        // A member that vanishes without closing the connection is noticed.
        connector.set_keepalive(Some(Duration::from_secs(2)));
        let http = HttpClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Self {
            http,
            endpoints,
            current: AtomicUsize::new(0),
        })
    }

    /// Posts `body` to `path`, on the first member that takes a connection.
    async fn send(&self, path: &str, body: Bytes) -> Result<http::Response<Incoming>, EtcdError> {
        let count = self.endpoints.len();
        let first = self.current.load(Ordering::Relaxed);
        let mut failure = None;
        for step in 0..count {
            let index = (first + step) % count;
            let Some(endpoint) = self.endpoints.get(index) else {
                continue;
            };
            let request = http::Request::post(format!("{endpoint}{path}"))
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Full::new(body.clone()))
                .map_err(|e| EtcdError::Endpoint {
                    endpoint: endpoint.clone(),
                    reason: e.to_string(),
                })?;
            match self.http.request(request).await {
                Ok(response) => {
                    self.current.store(index, Ordering::Relaxed);
                    return Ok(response);
                }
                Err(err) if err.is_connect() => {
                    tracing::debug!(%endpoint, error = %error_chain(&err), "etcd member unreachable; trying the next");
                    failure = Some(EtcdError::Connect {
                        endpoint: endpoint.clone(),
                        reason: error_chain(&err),
                    });
                }
                Err(err) => {
                    return Err(EtcdError::Http {
                        endpoint: endpoint.clone(),
                        reason: error_chain(&err),
                    });
                }
            }
        }
        Err(failure.unwrap_or_else(|| EtcdError::Endpoint {
            endpoint: String::new(),
            reason: "no etcd endpoint given".to_owned(),
        }))
    }

    /// Runs `call` within [`REQUEST_TIMEOUT`]; a call that times out makes
    /// the next one start at another member.
    async fn timed<T>(
        &self,
        call: impl Future<Output = Result<T, EtcdError>>,
    ) -> Result<T, EtcdError> {
        match tokio::time::timeout(REQUEST_TIMEOUT, call).await {
            Ok(result) => result,
            Err(_) => {
                self.current.fetch_add(1, Ordering::Relaxed);
                Err(EtcdError::Timeout(REQUEST_TIMEOUT))
            }
        }
    }

    /// One unary call: `request` to `path`, its answer decoded.
    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        path: &str,
        request: &Req,
    ) -> Result<Resp, EtcdError> {
        let body =
            Bytes::from(serde_json::to_vec(request).map_err(|e| EtcdError::Decode(e.to_string()))?);
        self.timed(async {
            let response = self.send(path, body).await?;
            let status = response.status();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|err| EtcdError::Http {
                    endpoint: path.to_owned(),
                    reason: error_chain(&err),
                })?
                .to_bytes();
            if !status.is_success() {
                return Err(refused(status, &bytes));
            }
            serde_json::from_slice(&bytes).map_err(|e| EtcdError::Decode(e.to_string()))
        })
        .await
    }

    /// Starts a streaming call; its messages follow.
    async fn stream<Req: Serialize>(
        &self,
        path: &str,
        request: &Req,
    ) -> Result<MessageStream, EtcdError> {
        let body =
            Bytes::from(serde_json::to_vec(request).map_err(|e| EtcdError::Decode(e.to_string()))?);
        let response = self.send(path, body).await?;
        let status = response.status();
        if !status.is_success() {
            let bytes = response
                .into_body()
                .collect()
                .await
                .map(http_body_util::Collected::to_bytes)
                .unwrap_or_default();
            return Err(refused(status, &bytes));
        }
        Ok(MessageStream {
            body: response.into_body(),
            buf: Vec::new(),
        })
    }

    /// Reads a key or a range.
    pub async fn range(&self, request: &RangeRequest) -> Result<RangeResponse, EtcdError> {
        self.call("/v3/kv/range", request).await
    }

    /// Writes a key.
    pub async fn put(&self, request: &PutRequest) -> Result<Header, EtcdError> {
        #[derive(Deserialize)]
        struct PutResponse {
            #[serde(default)]
            header: Header,
        }
        let answer: PutResponse = self.call("/v3/kv/put", request).await?;
        Ok(answer.header)
    }

    /// Deletes a key.
    pub async fn delete(&self, request: &DeleteRangeRequest) -> Result<(), EtcdError> {
        let _: serde::de::IgnoredAny = self.call("/v3/kv/deleterange", request).await?;
        Ok(())
    }

    /// Runs a transaction.
    pub async fn txn(&self, request: &TxnRequest) -> Result<TxnResponse, EtcdError> {
        self.call("/v3/kv/txn", request).await
    }

    /// Grants a lease of `ttl` seconds; its id.
    pub async fn lease_grant(&self, ttl: i64) -> Result<i64, EtcdError> {
        let answer: LeaseResponse = self
            .call("/v3/lease/grant", &LeaseGrantRequest { ttl })
            .await?;
        if !answer.error.is_empty() {
            return Err(EtcdError::Status {
                code: 0,
                message: answer.error,
            });
        }
        Ok(answer.id)
    }

    /// Renews lease `id` once; the seconds it has left (0 or less: it is gone).
    pub async fn lease_keep_alive(&self, id: i64) -> Result<i64, EtcdError> {
        self.timed(async {
            let mut stream = self
                .stream("/v3/lease/keepalive", &LeaseIdRequest { id })
                .await?;
            let answer: LeaseResponse = stream.next().await?.ok_or_else(|| {
                EtcdError::Decode("the keep-alive stream ended without an answer".to_owned())
            })?;
            Ok(answer.ttl)
        })
        .await
    }

    /// Ends lease `id` and deletes its keys.
    pub async fn lease_revoke(&self, id: i64) -> Result<(), EtcdError> {
        let _: serde::de::IgnoredAny = self
            .call("/v3/lease/revoke", &LeaseIdRequest { id })
            .await?;
        Ok(())
    }

    /// Watches every key starting with `prefix`, from `start_revision` on.
    pub async fn watch_prefix(
        &self,
        prefix: &[u8],
        start_revision: i64,
    ) -> Result<WatchStream, EtcdError> {
        let request = WatchRequest {
            create_request: WatchCreateRequest {
                key: prefix.to_vec(),
                range_end: prefix_end(prefix),
                start_revision,
            },
        };
        let stream = self
            .timed(self.stream("/v3/watch", &request))
            .await
            .map(WatchStream)?;
        Ok(stream)
    }
}

/// `http://host:port` for `host:port` or an `http://` URL.
fn normalize_endpoint(endpoint: &str) -> Result<String, EtcdError> {
    let trimmed = endpoint.trim().trim_end_matches('/');
    let address = match trimmed.split_once("://") {
        None => trimmed,
        Some(("http", rest)) => rest,
        Some((scheme, _)) => {
            return Err(EtcdError::Endpoint {
                endpoint: endpoint.to_owned(),
                reason: format!("{scheme}:// is not supported (only http://host:port)"),
            });
        }
    };
    if address.is_empty() || address.contains('/') {
        return Err(EtcdError::Endpoint {
            endpoint: endpoint.to_owned(),
            reason: "expected host:port".to_owned(),
        });
    }
    Ok(format!("http://{address}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends_increment_the_last_byte_below_0xff() {
        assert_eq!(prefix_end(b"/edge/"), b"/edge0");
        assert_eq!(prefix_end(b"a\xff\xff"), b"b");
        assert_eq!(prefix_end(b"\xff"), b"\0");
        assert_eq!(prefix_end(b""), b"\0");
    }

    #[test]
    fn a_txn_encodes_as_the_gateway_reads_it() {
        let txn = TxnRequest {
            compare: vec![Compare::mod_revision_equals("/e/a", 0)],
            success: vec![
                RequestOp::Put(PutRequest {
                    key: b"/e/a".to_vec(),
                    value: vec![0, 255],
                    lease: 0,
                }),
                RequestOp::DeleteRange(DeleteRangeRequest {
                    key: b"/e/b".to_vec(),
                }),
            ],
            failure: vec![RequestOp::Range(RangeRequest::prefix("/e/"))],
        };
        let json = serde_json::to_value(&txn).expect("encodes");
        assert_eq!(
            json,
            serde_json::json!({
                // A compare against 0 ("absent") is written out, not left as
                // the zero value: the condition must reach etcd.
                "compare": [{"key": "L2UvYQ==", "target": "MOD", "result": "EQUAL", "mod_revision": "0"}],
                "success": [
                    {"request_put": {"key": "L2UvYQ==", "value": "AP8="}},
                    {"request_delete_range": {"key": "L2UvYg=="}},
                ],
                "failure": [{"request_range": {"key": "L2Uv", "range_end": "L2Uw"}}],
            })
        );
        let put = PutRequest {
            key: b"k".to_vec(),
            value: Vec::new(),
            lease: 7_587_882_231_450_011_000,
        };
        assert_eq!(
            serde_json::to_value(&put).expect("encodes"),
            serde_json::json!({"key": "aw==", "value": "", "lease": "7587882231450011000"})
        );
    }

    #[test]
    fn answers_decode_with_zero_values_left_out() {
        // A failed compare: `succeeded` is false, so etcd leaves it out; a
        // key written empty has no `value`.
        let txn: TxnResponse = serde_json::from_str(
            r#"{"header":{"cluster_id":"1","revision":"12"},
                "responses":[{"response_range":{"header":{"revision":"12"},
                  "kvs":[{"key":"L2UvYQ==","create_revision":"2","mod_revision":"9","version":"3","lease":"42"}],"count":"1"}},
                  {"response_range":{"header":{"revision":"12"}}}]}"#,
        )
        .expect("decodes");
        assert!(!txn.succeeded);
        assert_eq!(txn.header.revision, 12);
        let first = txn.responses[0].response_range.as_ref().expect("a range");
        assert_eq!(
            first.kvs,
            [Kv {
                key: b"/e/a".to_vec(),
                value: Vec::new(),
                create_revision: 2,
                mod_revision: 9,
                lease: 42,
            }]
        );
        assert!(
            txn.responses[1]
                .response_range
                .as_ref()
                .expect("a range")
                .kvs
                .is_empty()
        );
        let ok: TxnResponse =
            serde_json::from_str(r#"{"header":{"revision":"13"},"succeeded":true}"#)
                .expect("decodes");
        assert!(ok.succeeded);
    }

    #[test]
    fn refusals_carry_etcds_message_and_code() {
        let err = refused(
            http::StatusCode::BAD_REQUEST,
            br#"{"error":"etcdserver: request is too large","message":"etcdserver: request is too large","code":3}"#,
        );
        assert!(err.is_too_large(), "{err}");
        let err = refused(
            http::StatusCode::BAD_REQUEST,
            br#"{"error":"etcdserver: requested lease not found","message":"etcdserver: requested lease not found","code":5}"#,
        );
        assert!(matches!(err, EtcdError::Status { code: 5, .. }), "{err}");
        assert!(!err.is_too_large());
        let err = refused(http::StatusCode::BAD_GATEWAY, b"<html>nope</html>");
        assert!(matches!(err, EtcdError::Decode(_)), "{err}");
    }

    #[test]
    fn stream_messages_split_wherever_the_chunks_end() {
        let stream = concat!(
            r#"{"result":{"header":{"revision":"3"},"created":true}}"#,
            "\n",
            r#"{"result":{"header":{"revision":"5"},"events":[{"kv":{"key":"L2UvYQ==","mod_revision":"4","value":"aGk="}},{"type":"DELETE","kv":{"key":"L2UvYg==","mod_revision":"5"}}]}}"#,
            "\n",
            r#"{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader","http_status":"Service Unavailable"}}"#,
            "\n",
        )
        .as_bytes();
        for chunk in [1, 7, 64, stream.len()] {
            let mut buf = Vec::new();
            let mut got = Vec::new();
            for piece in stream.chunks(chunk) {
                buf.extend_from_slice(piece);
                while let Some(value) = take_message(&mut buf).expect("well-formed") {
                    got.push(stream_message::<WatchResponse>(value));
                }
            }
            assert!(buf.is_empty(), "left over: {buf:?}");
            assert_eq!(got.len(), 3, "chunks of {chunk}");
            let created = got[0].as_ref().expect("created");
            assert!(created.created && created.events.is_empty());
            let events = &got[1].as_ref().expect("events").events;
            assert_eq!(events[0].kind, EventKind::Put);
            assert_eq!(events[0].kv.value, b"hi");
            assert_eq!(events[1].kind, EventKind::Delete);
            assert_eq!(events[1].kv.key, b"/e/b");
            assert!(
                matches!(&got[2], Err(EtcdError::Status { code: 14, message }) if message.contains("no leader"))
            );
        }
        let mut broken = b"{\"result\": ]".to_vec();
        assert!(take_message(&mut broken).is_err());
    }

    #[test]
    fn endpoints_are_http_host_port() {
        let ok = |e: &str| normalize_endpoint(e).expect("valid");
        assert_eq!(ok("10.0.0.1:2379"), "http://10.0.0.1:2379");
        assert_eq!(ok("http://etcd:2379/"), "http://etcd:2379");
        assert!(normalize_endpoint("https://etcd:2379").is_err());
        assert!(normalize_endpoint("http://etcd:2379/v3").is_err());
        assert!(Client::new(&[]).is_err());
    }
}
