//! Phase 11, respond: every response leaves through here, once. An error
//! becomes its JSON answer with the status its kind maps to; then the fields
//! every response carries, the counters, the automatic gate's count and the
//! access-log record.

use std::sync::Arc;

use http::header::{
    CONTENT_TYPE, COOKIE, HeaderName, HeaderValue, REFERER, SET_COOKIE, USER_AGENT, VIA,
};
use http::{Request, Response};

use crate::access_log;
use crate::cache::{self, CacheStatus};
use crate::error::{ErrorSource, ProxyError};
use crate::origin::Origins;

use super::Proxy;
use super::body::{EdgeBody, LoggedBody};
use super::ctx::RequestCtx;
use super::routing::ServedDistribution;

static X_CACHE: HeaderName = HeaderName::from_static("x-cache");
static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-edge-request-id");

impl<O: Origins> Proxy<O> {
    /// The response the viewer gets for what the phases returned.
    pub(super) fn respond(
        &self,
        ctx: &mut RequestCtx,
        served: Result<Response<EdgeBody<O::Body>>, ProxyError>,
    ) -> Response<EdgeBody<O::Body>> {
        let mut resp = match served {
            Ok(resp) => resp,
            Err(err) => error_response(ctx, &err),
        };
        // Surrogate-Control is addressed to this cache, not to the viewer.
        let headers = resp.headers_mut();
        headers.remove(&cache::freshness::SURROGATE_CONTROL);
        headers.insert(&X_CACHE, ctx.cache_status.header_value());
        headers.append(VIA, self.via.clone());
        if let Ok(id) = HeaderValue::from_str(&ctx.request_id) {
            headers.insert(&X_REQUEST_ID, id);
        }
        if let Some(cookie) = ctx.sticky.take() {
            headers.append(SET_COOKIE, cookie);
        }
        let status = resp.status().as_u16();
        if let Some(gate) = &ctx.gate {
            gate.record(super::unix_now(), status >= 500);
        }
        self.metrics.record_response(ctx.cache_status, status);
        if let Some(stats) = &ctx.stats {
            stats.record(ctx.staging, ctx.cache_status, status);
        }
        if ctx.staging {
            self.metrics.record_staging_response(status);
        }
        let Some(mut record) = ctx.log.take() else {
            return resp;
        };
        record.sc_status = status;
        record.result_type = ctx.cache_status.as_str();
        record.hook_time_ms = ctx.hook_millis();
        if self.tail.watching() {
            let mut shown = record.clone();
            shown.done(ctx.started);
            self.tail.publish(crate::tail::TailEvent::Access(shown));
        }
        if let (true, Some(log)) = (ctx.log_to_file, &self.access_log) {
            let pending = access_log::Pending {
                record: *record,
                started: ctx.started,
                log: Arc::clone(log),
            };
            // A WebSocket's record is finished when it closes.
            if let Some(tunnel) = ctx.tunnel.as_mut().filter(|t| t.opens_with(resp.status())) {
                tunnel.log = Some(pending);
                return resp;
            }
            let (head, body) = resp.into_parts();
            resp = Response::from_parts(head, LoggedBody::wrap(body, pending));
        }
        resp
    }

    /// The access-log fields known when the request arrives.
    pub(super) fn log_record<B>(
        &self,
        req: &Request<B>,
        dist: &ServedDistribution,
        host: &str,
        ctx: &RequestCtx,
    ) -> access_log::Record {
        let header = |name: HeaderName| {
            req.headers()
                .get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        let logging = dist.config.raw.logging;
        access_log::Record {
            date: String::new(),
            time: String::new(),
            edge_id: self.host_id.clone(),
            sc_bytes: 0,
            c_ip: ctx.client.ip().to_string(),
            cs_method: req.method().to_string(),
            cs_host: dist.domain_name.clone(),
            cs_uri_stem: req.uri().path().to_owned(),
            sc_status: 0,
            cs_referer: header(REFERER),
            cs_user_agent: header(USER_AGENT),
            cs_uri_query: req.uri().query().map(str::to_owned),
            cs_cookie: if logging.include_cookies {
                header(COOKIE)
            } else {
                None
            },
            result_type: "Miss",
            request_id: ctx.request_id.clone(),
            host_header: host.to_owned(),
            cs_protocol: if ctx.tls { "https" } else { "http" },
            cs_protocol_version: format!("{:?}", req.version()),
            time_taken: 0.0,
            distribution_id: dist.id.to_string(),
            arm: "primary",
            origin: None,
            hook_time_ms: 0.0,
            cs_bytes: None,
        }
    }
}

/// The answer for a request that failed, logged by where it failed: JSON,
/// or for a gRPC request a gRPC status ([`grpc_error`]).
fn error_response<B>(ctx: &mut RequestCtx, err: &ProxyError) -> Response<EdgeBody<B>> {
    ctx.cache_status = CacheStatus::Error;
    let (status, _) = err.status_and_code();
    let source = err.source_of();
    if source == ErrorSource::Viewer {
        tracing::debug!(request_id = %ctx.request_id, source = source.as_str(), status = status.as_u16(), error = %err, "request refused");
    } else {
        tracing::warn!(request_id = %ctx.request_id, source = source.as_str(), status = status.as_u16(), error = %err, "request failed");
    }
    if ctx.grpc {
        return grpc_error(err);
    }
    let mut resp = Response::new(EdgeBody::full(err.body(&ctx.request_id)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
static GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
static X_EDGE_ERROR: HeaderName = HeaderName::from_static("x-edge-error");

/// A gRPC client reads a call's outcome from `grpc-status`, not from the
/// HTTP status or an HTML or JSON body: a failed gRPC request gets a
/// trailers-only response (`200`, `content-type: application/grpc`,
/// `grpc-status` and `grpc-message` in its one header block), and the
/// host's error code in `x-edge-error`.
fn grpc_error<B>(err: &ProxyError) -> Response<EdgeBody<B>> {
    let (_, code) = err.status_and_code();
    let mut resp = Response::new(EdgeBody::Empty);
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(&GRPC_STATUS, HeaderValue::from(err.grpc_status()));
    if let Ok(message) = HeaderValue::from_str(&grpc_percent_encode(&err.viewer_message())) {
        headers.insert(&GRPC_MESSAGE, message);
    }
    headers.insert(&X_EDGE_ERROR, HeaderValue::from_static(code));
    resp
}

/// `grpc-message`'s encoding: bytes outside printable ASCII, and `%`, as
/// `%XX`.
fn grpc_percent_encode(message: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(message.len());
    for b in message.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Whether a request is a gRPC call (`content-type: application/grpc`,
/// `application/grpc+proto` and the like; not gRPC-Web, whose clients read
/// HTTP statuses).
pub(super) fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.get(..16).map(|head| (head, &v[16..])))
        .is_some_and(|(head, rest)| {
            head.eq_ignore_ascii_case("application/grpc")
                && (rest.is_empty() || rest.starts_with(['+', ';']))
        })
}
