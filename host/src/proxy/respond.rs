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

/// The JSON answer for a request that failed, logged by where it failed.
fn error_response<B>(ctx: &mut RequestCtx, err: &ProxyError) -> Response<EdgeBody<B>> {
    ctx.cache_status = CacheStatus::Error;
    let (status, _) = err.status_and_code();
    let source = err.source_of();
    if source == ErrorSource::Viewer {
        tracing::debug!(request_id = %ctx.request_id, source = source.as_str(), status = status.as_u16(), error = %err, "request refused");
    } else {
        tracing::warn!(request_id = %ctx.request_id, source = source.as_str(), status = status.as_u16(), error = %err, "request failed");
    }
    let mut resp = Response::new(EdgeBody::full(err.body(&ctx.request_id)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}
