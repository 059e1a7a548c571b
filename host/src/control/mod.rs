//! The control API: JSON over HTTP on its own listener, bearer-token protected,
//! with CloudFront's semantics (ETag / If-Match, `CNAMEAlreadyExists`, ...).

pub mod certificates;
pub mod console;
pub mod distributions;
pub mod error;
pub mod fleet;
pub mod hooks;
pub mod invalidations;
pub mod policies;
pub mod state;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE, ETAG, HeaderValue, IF_MATCH, LOCATION, WWW_AUTHENTICATE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use serde_json::json;

use crate::cache::SharedCache;
use crate::metrics::Metrics;
pub use error::ApiError;
pub use state::{ControlOptions, ControlPlane, DeployStatus, DistributionRecord, IfMatch};

use error::ErrorCode;
use fleet::FleetView;
use state::{InvalidationRecord, PolicyRecord};

/// Largest JSON body the API reads unless told otherwise
/// (`--max-api-body-bytes`).
pub const MAX_JSON_BODY: usize = 1 << 20;
/// Largest hook component (Lambda@Edge allows 50 MB for origin events).
const MAX_HOOK_BODY: usize = 32 << 20;
/// Largest KV value.
const MAX_KV_VALUE: usize = 1 << 20;

/// The control API service.
#[derive(Debug)]
pub struct ControlApi {
    plane: Arc<ControlPlane>,
    token: String,
    metrics: Arc<Metrics>,
    cache: SharedCache,
    /// Largest JSON body read; larger ones get 413.
    max_body: usize,
}

type ApiResponse = Response<Full<Bytes>>;

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
        }
    }

    /// The same API reading JSON bodies up to `bytes`.
    pub fn with_max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

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
                let mut resp = json_response(err.status(), err.body());
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
                let revision = self.plane.served_revision();
                return only(&req, &[Method::GET], || {
                    Ok(json_value(
                        StatusCode::OK,
                        &json!({"status": "ok", "store": store, "revision": revision}),
                    ))
                });
            }
            ["metrics"] => {
                return only(&req, &[Method::GET], || {
                    let text = self.metrics.render(
                        self.cache.weighted_bytes(),
                        self.cache.object_count(),
                        &self.plane.runtime.hook_stats(),
                    );
                    let mut resp = Response::new(Full::new(Bytes::from(text)));
                    resp.headers_mut().insert(
                        CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; version=0.0.4"),
                    );
                    Ok(resp)
                });
            }
            ["console"] => {
                return only(&req, &[Method::GET], || {
                    console::serve(None).ok_or_else(not_found)
                });
            }
            ["console", asset] => {
                return only(&req, &[Method::GET], || {
                    console::serve(Some(asset)).ok_or_else(not_found)
                });
            }
            ["v1", ..] => self.authorize(&req)?,
            _ => return Err(not_found()),
        }
        let method = req.method().clone();
        allowed(&method, &segments[1..])?;
        match (&method, &segments[1..]) {
            (&Method::POST, ["distributions"]) => self.create(req).await,
            (&Method::GET, ["distributions"]) => Ok(self.list().await),
            (&Method::GET, ["distributions", id]) => self.get(id, false).await,
            (&Method::GET, ["distributions", id, "config"]) => self.get(id, true).await,
            (&Method::PUT, ["distributions", id, "config"]) => {
                let id = (*id).to_owned();
                self.replace(&id, req).await
            }
            (&Method::DELETE, ["distributions", id]) => {
                let if_match = if_match(&req);
                self.plane.delete(id, if_match).await?;
                Ok(no_content())
            }
            (&Method::POST, ["distributions", id, "copy"]) => {
                let id = (*id).to_owned();
                let if_match = header_string(&req, IF_MATCH);
                let body = read_body(req, self.max_body).await?;
                let request = if body.iter().all(u8::is_ascii_whitespace) {
                    distributions::CopyRequest::default()
                } else {
                    crate::config::parse_json(&body)?
                };
                let record = self.plane.copy(&id, if_match.as_deref(), request).await?;
                Ok(self.created(&record).await)
            }
            (&Method::POST, ["distributions", id, "associate-alias"]) => {
                let id = (*id).to_owned();
                let body = read_body(req, self.max_body).await?;
                let request: distributions::AliasRequest = crate::config::parse_json(&body)?;
                let record = self.plane.associate_alias(&id, &request.alias).await?;
                Ok(self.record_response(StatusCode::OK, &record, false).await)
            }
            (&Method::POST, ["distributions", id, "promote"]) => {
                let id = (*id).to_owned();
                let if_match = header_string(&req, IF_MATCH);
                let body = read_body(req, self.max_body).await?;
                let request: distributions::PromoteRequest = crate::config::parse_json(&body)?;
                let record = self
                    .plane
                    .promote(&id, if_match.as_deref(), request)
                    .await?;
                Ok(self.record_response(StatusCode::OK, &record, false).await)
            }
            (&Method::POST, ["distributions", id, "invalidations"]) => {
                let id = (*id).to_owned();
                let body = read_body(req, self.max_body).await?;
                let request: invalidations::InvalidationRequest = crate::config::parse_json(&body)?;
                let record = self.plane.invalidate(&id, request).await?;
                let view = self.plane.fleet_view().await;
                let mut resp = json_value(StatusCode::CREATED, &invalidation_json(&record, &view));
                set_header(
                    &mut resp,
                    LOCATION,
                    &format!("/v1/distributions/{id}/invalidations/{}", record.stored.id),
                );
                Ok(resp)
            }
            (&Method::GET, ["distributions", id, "invalidations"]) => {
                self.plane.sync().await;
                let view = self.plane.fleet_view().await;
                let state = self.plane.state();
                state.distribution(id)?;
                let items: Vec<serde_json::Value> = state
                    .invalidations
                    .get(*id)
                    .into_iter()
                    .flatten()
                    .rev()
                    .map(|r| invalidation_json(r, &view))
                    .collect();
                Ok(list_response(items))
            }
            (&Method::GET, ["distributions", id, "invalidations", inv]) => {
                self.plane.sync().await;
                let view = self.plane.fleet_view().await;
                let state = self.plane.state();
                state.distribution(id)?;
                let record = state
                    .invalidations
                    .get(*id)
                    .into_iter()
                    .flatten()
                    .find(|r| r.stored.id == *inv)
                    .ok_or_else(|| {
                        ApiError::new(
                            ErrorCode::NoSuchInvalidation,
                            format!("distribution {id} has no invalidation {inv:?}"),
                        )
                    })?;
                Ok(json_value(
                    StatusCode::OK,
                    &invalidation_json(record, &view),
                ))
            }
            (&Method::POST, ["continuous-deployment-policies"]) => {
                let body = read_body(req, self.max_body).await?;
                let raw = crate::config::parse_json(&body)?;
                let record = self.plane.create_policy(raw).await?;
                let mut resp = policy_response(StatusCode::CREATED, &record);
                set_header(
                    &mut resp,
                    LOCATION,
                    &format!("/v1/continuous-deployment-policies/{}", record.stored.id),
                );
                Ok(resp)
            }
            (&Method::GET, ["continuous-deployment-policies"]) => {
                let state = self.plane.state();
                let items: Vec<serde_json::Value> =
                    state.policies.values().map(|p| policy_json(p)).collect();
                Ok(list_response(items))
            }
            (&Method::GET, ["continuous-deployment-policies", id]) => {
                let state = self.plane.state();
                Ok(policy_response(StatusCode::OK, state.policy(id)?))
            }
            (&Method::PUT, ["continuous-deployment-policies", id]) => {
                let id = (*id).to_owned();
                let if_match = header_string(&req, IF_MATCH);
                self.plane.state().policy(&id)?;
                let body = read_body(req, self.max_body).await?;
                let raw = crate::config::parse_json(&body)?;
                let record = self
                    .plane
                    .replace_policy(&id, IfMatch::from_header(if_match.as_deref()), raw)
                    .await?;
                Ok(policy_response(StatusCode::OK, &record))
            }
            (&Method::DELETE, ["continuous-deployment-policies", id]) => {
                let if_match = if_match(&req);
                self.plane.delete_policy(id, if_match).await?;
                Ok(no_content())
            }
            (&Method::PUT, ["hooks", name]) => {
                let name = (*name).to_owned();
                let body = read_body(req, MAX_HOOK_BODY).await?;
                let version = self.plane.put_hook(&name, body).await?;
                Ok(json_value(
                    StatusCode::CREATED,
                    &json!({ "name": name, "version": version }),
                ))
            }
            (&Method::PUT, ["certificates", name]) => {
                let name = (*name).to_owned();
                let body = read_body(req, self.max_body).await?;
                let upload: certificates::CertificateUpload = crate::config::parse_json(&body)?;
                let created = self.plane.put_certificate(&name, upload).await?;
                let status = if created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                };
                Ok(json_value(status, &self.certificate_json(&name)?))
            }
            (&Method::GET, ["certificates"]) => {
                let state = self.plane.state();
                let items = state
                    .certificates
                    .keys()
                    .map(|name| self.certificate_json(name))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(list_response(items))
            }
            (&Method::GET, ["certificates", name]) => {
                Ok(json_value(StatusCode::OK, &self.certificate_json(name)?))
            }
            (&Method::DELETE, ["certificates", name]) => {
                self.plane.delete_certificate(name).await?;
                Ok(no_content())
            }
            (&Method::GET, ["traffic"]) => {
                Ok(json_value(StatusCode::OK, &self.metrics.traffic_json()))
            }
            (&Method::GET, ["hooks"]) => Ok(self.list_hooks()),
            (&Method::GET, ["hooks", name]) => self.get_hook(name),
            (&Method::PUT, ["kv", namespace, key]) => {
                let (namespace, key) = ((*namespace).to_owned(), (*key).to_owned());
                let body = read_body(req, MAX_KV_VALUE).await?;
                let size = body.len();
                self.plane.kv_put(&namespace, &key, body).await?;
                Ok(json_value(
                    StatusCode::OK,
                    &json!({ "namespace": namespace, "key": key, "size": size }),
                ))
            }
            (&Method::GET, ["kv", namespace, key]) => {
                let state = self.plane.state();
                let value = state
                    .kv
                    .get(namespace, key)
                    .ok_or_else(|| state::no_such_key(namespace, key))?;
                let mut resp = Response::new(Full::new(value.clone()));
                resp.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                );
                Ok(resp)
            }
            (&Method::GET, ["kv"]) => {
                let state = self.plane.state();
                let items = state
                    .kv
                    .namespaces()
                    .into_iter()
                    .map(|(namespace, keys)| json!({ "namespace": namespace, "keys": keys }))
                    .collect();
                Ok(list_response(items))
            }
            (&Method::GET, ["kv", namespace]) => {
                let state = self.plane.state();
                let items = state
                    .kv
                    .keys(namespace)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(key, size)| json!({ "key": key, "size": size }))
                    .collect();
                Ok(list_response(items))
            }
            (&Method::DELETE, ["hooks", name]) => {
                self.plane.delete_hook(name).await?;
                Ok(no_content())
            }
            (&Method::DELETE, ["kv", namespace, key]) => {
                self.plane.kv_delete(namespace, key).await?;
                Ok(no_content())
            }
            // Every endpoint and method of ROUTES has its arm above.
            _ => Err(not_found()),
        }
    }

    /// A certificate as the API shows it: never its private key.
    fn certificate_json(&self, name: &str) -> Result<serde_json::Value, ApiError> {
        let state = self.plane.state();
        let record = state
            .certificates
            .get(name)
            .ok_or_else(|| certificates::no_such_certificate(name))?;
        Ok(json!({
            "name": name,
            "uploaded": record.stored.uploaded,
            "certificate_chain": record.stored.pem.certificate_chain,
        }))
    }

    fn list_hooks(&self) -> ApiResponse {
        let state = self.plane.state();
        let items: Vec<serde_json::Value> = state
            .hooks
            .iter()
            .map(|(name, record)| json!({"name": name, "latest": record.latest, "versions": record.versions.len()}))
            .collect();
        list_response(items)
    }

    fn get_hook(&self, name: &str) -> Result<ApiResponse, ApiError> {
        let state = self.plane.state();
        let record = state
            .hooks
            .get(name)
            .ok_or_else(|| ApiError::no_such_hook(name))?;
        let versions: Vec<serde_json::Value> = record
            .versions
            .iter()
            .map(|(version, v)| json!({"version": version, "size": v.meta.size, "uploaded": v.meta.uploaded}))
            .collect();
        Ok(json_value(
            StatusCode::OK,
            &json!({"name": name, "latest": record.latest, "versions": versions}),
        ))
    }

    fn authorize(&self, req: &Request<Incoming>) -> Result<(), ApiError> {
        let given = req
            .headers()
            .get(http::header::AUTHORIZATION)
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

    async fn create(&self, req: Request<Incoming>) -> Result<ApiResponse, ApiError> {
        let body = read_body(req, self.max_body).await?;
        let raw = crate::config::parse_json(&body)?;
        let record = self.plane.create(raw).await?;
        Ok(self.created(&record).await)
    }

    /// `201 Created` with the record, its ETag and its `Location`.
    async fn created(&self, record: &DistributionRecord) -> ApiResponse {
        let mut resp = self
            .record_response(StatusCode::CREATED, record, false)
            .await;
        set_header(
            &mut resp,
            LOCATION,
            &format!("/v1/distributions/{}", record.stored.id),
        );
        resp
    }

    async fn replace(&self, id: &str, req: Request<Incoming>) -> Result<ApiResponse, ApiError> {
        let if_match_value = header_string(&req, IF_MATCH);
        if !self.plane.state().distributions.contains_key(id) {
            return Err(ApiError::no_such_distribution(id));
        }
        let body = read_body(req, self.max_body).await?;
        let raw = crate::config::parse_json(&body)?;
        let if_match = IfMatch::from_header(if_match_value.as_deref());
        let record = self.plane.replace_config(id, if_match, raw).await?;
        Ok(self.record_response(StatusCode::OK, &record, false).await)
    }

    async fn get(&self, id: &str, config_only: bool) -> Result<ApiResponse, ApiError> {
        self.plane.sync().await;
        let state = self.plane.state();
        let record = state
            .distributions
            .get(id)
            .ok_or_else(|| ApiError::no_such_distribution(id))?;
        Ok(self
            .record_response(StatusCode::OK, record, config_only)
            .await)
    }

    async fn list(&self) -> ApiResponse {
        self.plane.sync().await;
        let view = self.plane.fleet_view().await;
        let state = self.plane.state();
        let items: Vec<serde_json::Value> = state
            .distributions
            .values()
            .map(|r| {
                json!({
                    "id": r.stored.id,
                    "domain_name": r.stored.domain_name,
                    "aliases": r.stored.config.aliases,
                    "status": view.status(r.revision),
                    "enabled": r.stored.config.enabled,
                    "staging": r.stored.staging,
                    "etag": r.etag(),
                    "comment": r.stored.config.comment,
                })
            })
            .collect();
        list_response(items)
    }

    async fn record_response(
        &self,
        status: StatusCode,
        record: &DistributionRecord,
        config_only: bool,
    ) -> ApiResponse {
        let value = if config_only {
            serde_json::to_value(&record.stored.config).unwrap_or_default()
        } else {
            let view = self.plane.fleet_view().await;
            json!({
                "id": record.stored.id,
                "domain_name": record.stored.domain_name,
                "status": view.status(record.revision),
                "hosts": view.hosts_json(record.revision),
                "staging": record.stored.staging,
                "etag": record.etag(),
                "last_modified": record.stored.last_modified,
                "config": record.stored.config,
            })
        };
        let mut resp = json_value(status, &value);
        set_header(&mut resp, ETAG, &record.etag());
        resp
    }
}

/// A policy as the API shows it.
fn policy_json(record: &PolicyRecord) -> serde_json::Value {
    json!({
        "id": record.stored.id,
        "etag": record.etag(),
        "last_modified": record.stored.last_modified,
        "status": record.stored.status,
        "config": record.stored.config,
    })
}

fn policy_response(status: StatusCode, record: &PolicyRecord) -> ApiResponse {
    let mut resp = json_value(status, &policy_json(record));
    set_header(&mut resp, ETAG, &record.etag());
    resp
}

/// An invalidation as the API shows it: `Completed` once every live host has
/// dropped its objects (the host that took it does so before answering).
fn invalidation_json(record: &InvalidationRecord, view: &FleetView) -> serde_json::Value {
    let s = &record.stored;
    let status = match view.status(record.revision) {
        DeployStatus::Deployed => "Completed",
        DeployStatus::InProgress => "InProgress",
    };
    json!({
        "id": s.id,
        "status": status,
        "create_time": s.create_time,
        "paths": s.paths,
        "dropped": s.dropped,
    })
}

fn set_header(resp: &mut ApiResponse, name: http::header::HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, value);
    }
}

/// A header's value as text (empty when it is not text).
fn header_string(req: &Request<Incoming>, name: http::header::HeaderName) -> Option<String> {
    req.headers()
        .get(name)
        .map(|v| v.to_str().map(str::to_owned).unwrap_or_default())
}

fn if_match(req: &Request<Incoming>) -> IfMatch<'_> {
    match req.headers().get(IF_MATCH) {
        None => IfMatch::Missing,
        Some(v) => IfMatch::Value(v.to_str().unwrap_or("")),
    }
}

/// The `/v1` endpoints, by resource: a path pattern (`*` is one segment,
/// an id or a name) and the methods it answers. A 404 and a 405's `Allow`
/// come from this table alone.
const ROUTES: &[(&[&str], &[Method])] = &[
    // Distributions and what is done to them.
    (&["distributions"], &[Method::GET, Method::POST]),
    (&["distributions", "*"], &[Method::GET, Method::DELETE]),
    (
        &["distributions", "*", "config"],
        &[Method::GET, Method::PUT],
    ),
    (&["distributions", "*", "copy"], &[Method::POST]),
    (&["distributions", "*", "associate-alias"], &[Method::POST]),
    (&["distributions", "*", "promote"], &[Method::POST]),
    // Invalidations.
    (
        &["distributions", "*", "invalidations"],
        &[Method::GET, Method::POST],
    ),
    (
        &["distributions", "*", "invalidations", "*"],
        &[Method::GET],
    ),
    // Continuous-deployment policies.
    (
        &["continuous-deployment-policies"],
        &[Method::GET, Method::POST],
    ),
    (
        &["continuous-deployment-policies", "*"],
        &[Method::GET, Method::PUT, Method::DELETE],
    ),
    // Hooks and KV data.
    (&["hooks"], &[Method::GET]),
    (&["hooks", "*"], &[Method::GET, Method::PUT, Method::DELETE]),
    (&["kv"], &[Method::GET]),
    (&["kv", "*"], &[Method::GET]),
    (
        &["kv", "*", "*"],
        &[Method::GET, Method::PUT, Method::DELETE],
    ),
    // Certificates.
    (&["certificates"], &[Method::GET]),
    (
        &["certificates", "*"],
        &[Method::GET, Method::PUT, Method::DELETE],
    ),
    // Traffic by deployment arm.
    (&["traffic"], &[Method::GET]),
];

/// Whether `segments` (after `/v1`) name an endpoint that answers `method`:
/// 404 for no endpoint, 405 with the endpoint's `Allow` for another method.
fn allowed(method: &Method, segments: &[&str]) -> Result<(), ApiError> {
    let matches = |pattern: &[&str]| {
        pattern.len() == segments.len()
            && pattern
                .iter()
                .zip(segments)
                .all(|(p, s)| *p == "*" || p == s)
    };
    let (_, methods) = ROUTES
        .iter()
        .find(|(pattern, _)| matches(pattern))
        .ok_or_else(not_found)?;
    if methods.contains(method) {
        Ok(())
    } else {
        let allow: Vec<&str> = methods.iter().map(Method::as_str).collect();
        Err(method_not_allowed(&allow.join(", ")))
    }
}

fn only(
    req: &Request<Incoming>,
    methods: &[Method],
    f: impl FnOnce() -> Result<ApiResponse, ApiError>,
) -> Result<ApiResponse, ApiError> {
    if methods.contains(req.method()) {
        f()
    } else {
        let allow: Vec<&str> = methods.iter().map(Method::as_str).collect();
        Err(method_not_allowed(&allow.join(", ")))
    }
}

async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, ApiError> {
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            ErrorCode::RequestEntityTooLarge,
            format!("the body is larger than {limit} bytes"),
        )),
        Err(err) => Err(ApiError::new(
            ErrorCode::MalformedInput,
            format!("reading the body failed: {err}"),
        )),
    }
}

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such endpoint")
}

fn method_not_allowed(allow: &str) -> ApiError {
    let mut err = ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("this endpoint answers {allow}"),
    );
    err.allow = Some(allow.to_owned());
    err
}

/// A `204 No Content`.
fn no_content() -> ApiResponse {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    resp
}

/// A list: `{"items": [...], "quantity": n}`.
fn list_response(items: Vec<serde_json::Value>) -> ApiResponse {
    let quantity = items.len();
    json_value(
        StatusCode::OK,
        &json!({ "items": items, "quantity": quantity }),
    )
}

fn json_value(status: StatusCode, value: &serde_json::Value) -> ApiResponse {
    json_response(status, serde_json::to_vec_pretty(value).unwrap_or_default())
}

fn json_response(status: StatusCode, body: Vec<u8>) -> ApiResponse {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The token of `Bearer` credentials (RFC 6750 2.1): the scheme is
/// case-insensitive (RFC 9110 11.1), one or more spaces separate it from the
/// token. `None` for another scheme.
fn bearer_token(credentials: &str) -> Option<&str> {
    let credentials = credentials.trim_start();
    let (scheme, token) = credentials
        .split_once([' ', '\t'])
        .unwrap_or((credentials, ""));
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_matches([' ', '\t']))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_and_not_found_come_from_the_route_table() {
        let allow = |method: Method, path: &[&str]| match allowed(&method, path) {
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
        for (i, (a, _)) in ROUTES.iter().enumerate() {
            for (b, _) in &ROUTES[i + 1..] {
                let overlap = a.len() == b.len()
                    && a.iter()
                        .zip(b.iter())
                        .all(|(x, y)| x == y || *x == "*" || *y == "*");
                assert!(!overlap, "{a:?} and {b:?} both match some path");
            }
        }
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for value in [
            "Bearer t0k",
            "bearer t0k",
            "BEARER t0k",
            "bEaReR   t0k ",
            "Bearer\tt0k",
        ] {
            assert_eq!(bearer_token(value), Some("t0k"), "{value:?}");
        }
        assert_eq!(bearer_token("Bearer"), Some(""));
        for value in ["Basic dDBr", "Bearert0k", "t0k", ""] {
            assert_eq!(bearer_token(value), None, "{value:?}");
        }
    }
}
