//! The control API's HTTP face: JSON over HTTP on its own listener, bearer-token
//! protected, with CloudFront's semantics (ETag / If-Match,
//! `CNAMEAlreadyExists`, ...). One file per resource, each with its route
//! table, from which every 404 and 405's `Allow` come.

mod certificates;
mod distributions;
mod hooks;
pub mod http;
mod invalidations;
mod policies;
mod secrets;
mod tail;

use std::convert::Infallible;
use std::sync::Arc;

use ::http::header::{ALLOW, HeaderValue, WWW_AUTHENTICATE};
use ::http::{Method, Request, StatusCode};
use hyper::body::Incoming;

use self::http::{ApiResponse, Route, allowed, bearer_token, not_found, only};
use super::console;
use super::error::{ApiError, ErrorCode};
use super::plane::ControlPlane;
use super::views::Health;
use crate::cache::SharedCache;
use crate::ids::constant_time_eq;
use crate::metrics::Metrics;

/// Largest JSON body the API reads unless told otherwise
/// (`--max-api-body-bytes`).
pub const MAX_JSON_BODY: usize = 1 << 20;

/// Traffic by deployment arm.
const TRAFFIC: &[Route] = &[(&["traffic"], &[Method::GET])];

/// Every `/v1` endpoint, resource by resource.
fn routes() -> impl Iterator<Item = &'static Route> {
    [
        distributions::ROUTES,
        invalidations::ROUTES,
        policies::ROUTES,
        hooks::ROUTES,
        certificates::ROUTES,
        secrets::ROUTES,
        tail::ROUTES,
        TRAFFIC,
    ]
    .into_iter()
    .flatten()
}

/// The control API service.
#[derive(Debug)]
pub struct ControlApi {
    plane: Arc<ControlPlane>,
    token: String,
    metrics: Arc<Metrics>,
    cache: SharedCache,
    /// Largest JSON body read; larger ones get 413.
    max_body: usize,
    /// Where `/v1/tail` watches from.
    tail: Arc<crate::tail::TailHub>,
}

impl ControlApi {
    pub fn new(
        plane: Arc<ControlPlane>,
        token: String,
        metrics: Arc<Metrics>,
        cache: SharedCache,
    ) -> Self {
        Self {
            plane,
            token,
            metrics,
            cache,
            max_body: MAX_JSON_BODY,
            tail: Arc::default(),
        }
    }

    /// The same API reading JSON bodies up to `bytes`.
    pub fn with_max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// Watches `hub` for `/v1/tail` (the one the proxy publishes to).
    pub fn with_tail(mut self, hub: Arc<crate::tail::TailHub>) -> Self {
        self.tail = hub;
        self
    }

    /// The control plane this API writes through.
    pub fn plane(&self) -> &Arc<ControlPlane> {
        &self.plane
    }

    /// Serves one control request.
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<ApiResponse, Infallible> {
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let resp = match self.route(req).await {
            Ok(resp) => resp,
            Err(err) => {
                if err.status().is_server_error() {
                    tracing::error!(%method, %path, code = err.code.as_str(), message = %err.message, "control request failed");
                } else {
                    tracing::debug!(%method, %path, code = err.code.as_str(), message = %err.message, "control request refused");
                }
                let mut resp = http::json_bytes(err.status(), err.body());
                if let Some(allow) = err
                    .allow
                    .as_deref()
                    .and_then(|a| HeaderValue::from_str(a).ok())
                {
                    resp.headers_mut().insert(ALLOW, allow);
                }
                if err.status() == StatusCode::UNAUTHORIZED {
                    resp.headers_mut()
                        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                }
                resp
            }
        };
        Ok(resp)
    }

    async fn route(&self, req: Request<Incoming>) -> Result<ApiResponse, ApiError> {
        let path = req.uri().path().to_owned();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match segments.as_slice() {
            ["healthz"] => {
                // Serving, with or without the store: a host that lost the
                // store keeps serving its last snapshot and says so here.
                let store = if self.plane.store_connected() {
                    "connected"
                } else {
                    "disconnected"
                };
                let health = Health {
                    status: "ok".to_owned(),
                    store: store.to_owned(),
                    revision: self.plane.served_revision(),
                };
                return only(&req, &[Method::GET], || {
                    Ok(http::json(StatusCode::OK, &health))
                });
            }
            ["metrics"] => {
                return only(&req, &[Method::GET], || {
                    let mut text = self.metrics.render(
                        self.cache.weighted_bytes(),
                        self.cache.object_count(),
                        &self.plane.runtime.hook_stats(),
                    );
                    let disk = self.cache.disk().map(|tier| tier.metrics());
                    for (name, kind, help, value) in self
                        .plane
                        .runtime
                        .metrics()
                        .into_iter()
                        .chain(disk.into_iter().flatten())
                    {
                        crate::metrics::write_metric(&mut text, name, kind, help, value);
                    }
                    self.plane.fetcher.render_health(&mut text);
                    Ok(http::bytes(text.into(), "text/plain; version=0.0.4"))
                });
            }
            ["console"] => {
                return only(&req, &[Method::GET], || {
                    console::serve(None)
                        .map(|r| r.map(http_body_util::BodyExt::boxed_unsync))
                        .ok_or_else(not_found)
                });
            }
            ["console", asset] => {
                return only(&req, &[Method::GET], || {
                    console::serve(Some(asset))
                        .map(|r| r.map(http_body_util::BodyExt::boxed_unsync))
                        .ok_or_else(not_found)
                });
            }
            ["v1", ..] => self.authorize(&req)?,
            _ => return Err(not_found()),
        }
        let segments = &segments[1..];
        allowed(routes(), req.method(), segments)?;
        match segments {
            ["distributions", _, "invalidations", ..] => {
                invalidations::handle(self, req, segments).await
            }
            ["distributions", ..] => distributions::handle(self, req, segments).await,
            ["continuous-deployment-policies", ..] => policies::handle(self, req, segments).await,
            ["hooks" | "kv", ..] => hooks::handle(self, req, segments).await,
            ["certificates", ..] => certificates::handle(self, req, segments).await,
            ["secrets", ..] => secrets::handle(self, req, segments).await,
            ["tail"] => tail::handle(self, &req),
            ["traffic"] => Ok(http::json(StatusCode::OK, &self.metrics.traffic_json())),
            _ => Err(not_found()),
        }
    }

    fn authorize(&self, req: &Request<Incoming>) -> Result<(), ApiError> {
        let given = req
            .headers()
            .get(::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token);
        match given {
            Some(token) if constant_time_eq(token.as_bytes(), self.token.as_bytes()) => Ok(()),
            Some(_) => Err(ApiError::new(
                ErrorCode::AccessDenied,
                "the bearer token is not valid",
            )),
            None => Err(ApiError::new(
                ErrorCode::AccessDenied,
                "this API needs an Authorization: Bearer <token> header",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_and_not_found_come_from_the_route_tables() {
        let allow = |method: Method, path: &[&str]| match allowed(routes(), &method, path) {
            Ok(()) => Ok(()),
            Err(err) => Err((err.code, err.allow)),
        };
        assert_eq!(
            allow(Method::POST, &["distributions", "E1", "copy"]),
            Ok(())
        );
        assert_eq!(
            allow(Method::GET, &["distributions", "E1", "copy"]),
            Err((ErrorCode::MethodNotAllowed, Some("POST".to_owned())))
        );
        assert_eq!(
            allow(Method::PATCH, &["kv", "ns", "key"]),
            Err((
                ErrorCode::MethodNotAllowed,
                Some("GET, PUT, DELETE".to_owned())
            ))
        );
        assert_eq!(
            allow(Method::GET, &["distributions", "E1", "nothing"]),
            Err((ErrorCode::NotFound, None))
        );
        assert_eq!(allow(Method::GET, &["kv"]), Ok(()));
        // No two patterns overlap: the first that matches is the only one.
        let all: Vec<&Route> = routes().collect();
        for (i, (a, _)) in all.iter().enumerate() {
            for (b, _) in &all[i + 1..] {
                let overlap = a.len() == b.len()
                    && a.iter()
                        .zip(b.iter())
                        .all(|(x, y)| x == y || *x == "*" || *y == "*");
                assert!(!overlap, "{a:?} and {b:?} both match some path");
            }
        }
    }
}
