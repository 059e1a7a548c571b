//! The control API's HTTP plumbing: route tables and the `Allow` they give,
//! bodies read within a limit, JSON answers, and the bearer token.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, ETAG, HeaderName, HeaderValue, IF_MATCH, LOCATION};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use serde::Serialize;

use crate::control::error::{ApiError, ErrorCode};
use crate::control::etag::IfMatch;
use crate::control::views::List;

/// A control API body: whole (nearly every answer) or streamed (`/v1/tail`).
pub type ApiBody = http_body_util::combinators::UnsyncBoxBody<Bytes, std::convert::Infallible>;

pub type ApiResponse = Response<ApiBody>;

/// A whole body.
pub fn full(bytes: impl Into<Bytes>) -> ApiBody {
    Full::new(bytes.into()).boxed_unsync()
}

/// One endpoint: a path pattern after `/v1` (`*` is one segment, an id or a
/// name) and the methods it answers.
pub type Route = (&'static [&'static str], &'static [Method]);

/// Whether `segments` (after `/v1`) name an endpoint of `routes` that answers
/// `method`: 404 for no endpoint, 405 with the endpoint's `Allow` for
/// another method.
pub fn allowed<'r>(
    routes: impl IntoIterator<Item = &'r Route>,
    method: &Method,
    segments: &[&str],
) -> Result<(), ApiError> {
    let matches = |pattern: &[&str]| {
        pattern.len() == segments.len()
            && pattern
                .iter()
                .zip(segments)
                .all(|(p, s)| *p == "*" || p == s)
    };
    let (_, methods) = routes
        .into_iter()
        .find(|(pattern, _)| matches(pattern))
        .ok_or_else(not_found)?;
    if methods.contains(method) {
        Ok(())
    } else {
        Err(method_not_allowed(methods))
    }
}

/// `f` when `req`'s method is one of `methods`, else 405.
pub fn only(
    req: &Request<Incoming>,
    methods: &[Method],
    f: impl FnOnce() -> Result<ApiResponse, ApiError>,
) -> Result<ApiResponse, ApiError> {
    if methods.contains(req.method()) {
        f()
    } else {
        Err(method_not_allowed(methods))
    }
}

/// The body, at most `limit` bytes (more: 413).
pub async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, ApiError> {
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

/// The body as the JSON document `T`, at most `limit` bytes.
pub async fn read_json<T: serde::de::DeserializeOwned>(
    req: Request<Incoming>,
    limit: usize,
) -> Result<T, ApiError> {
    let body = read_body(req, limit).await?;
    Ok(crate::config::parse_json(&body)?)
}

pub fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such endpoint")
}

fn method_not_allowed(methods: &[Method]) -> ApiError {
    let allow = methods
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    let mut err = ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("this endpoint answers {allow}"),
    );
    err.allow = Some(allow);
    err
}

/// A header's value as text (empty when it is not text).
pub fn header_string(req: &Request<Incoming>, name: HeaderName) -> Option<String> {
    req.headers()
        .get(name)
        .map(|v| v.to_str().map(str::to_owned).unwrap_or_default())
}

pub fn if_match(req: &Request<Incoming>) -> IfMatch<'_> {
    match req.headers().get(IF_MATCH) {
        None => IfMatch::Missing,
        Some(v) => IfMatch::Value(v.to_str().unwrap_or("")),
    }
}

pub fn set_header(resp: &mut ApiResponse, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, value);
    }
}

/// `resp` with its `ETag`.
pub fn with_etag(mut resp: ApiResponse, etag: &str) -> ApiResponse {
    set_header(&mut resp, ETAG, etag);
    resp
}

/// `resp` with its `Location`.
pub fn with_location(mut resp: ApiResponse, location: &str) -> ApiResponse {
    set_header(&mut resp, LOCATION, location);
    resp
}

/// A `204 No Content`.
pub fn no_content() -> ApiResponse {
    let mut resp = Response::new(full(Bytes::new()));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    resp
}

/// A list of views.
pub fn list<T: Serialize>(items: Vec<T>) -> ApiResponse {
    json(StatusCode::OK, &List::new(items))
}

/// A view as pretty-printed JSON.
pub fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> ApiResponse {
    json_bytes(status, serde_json::to_vec_pretty(value).unwrap_or_default())
}

pub fn json_bytes(status: StatusCode, body: Vec<u8>) -> ApiResponse {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// Raw bytes with their content type.
pub fn bytes(body: Bytes, content_type: &'static str) -> ApiResponse {
    let mut resp = Response::new(full(body));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// The token of `Bearer` credentials (RFC 6750 2.1): the scheme is
/// case-insensitive (RFC 9110 11.1), one or more spaces separate it from the
/// token. `None` for another scheme.
pub fn bearer_token(credentials: &str) -> Option<&str> {
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
