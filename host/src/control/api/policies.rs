//! `/v1/continuous-deployment-policies`: create, list, read, replace, delete.

use http::header::IF_MATCH;
use http::{Method, Request, StatusCode};
use hyper::body::Incoming;

use super::ControlApi;
use super::http::{
    ApiResponse, Route, header_string, if_match, json, list, no_content, not_found, read_json,
    with_etag, with_location,
};
use crate::control::error::ApiError;
use crate::control::etag::IfMatch;
use crate::control::records::policies::PolicyRecord;
use crate::control::views::PolicyView;

pub(super) const ROUTES: &[Route] = &[
    (
        &["continuous-deployment-policies"],
        &[Method::GET, Method::POST],
    ),
    (
        &["continuous-deployment-policies", "*"],
        &[Method::GET, Method::PUT, Method::DELETE],
    ),
];

/// Answers one request of [`ROUTES`] (`segments` after `/v1`).
pub(super) async fn handle(
    api: &ControlApi,
    req: Request<Incoming>,
    segments: &[&str],
) -> Result<ApiResponse, ApiError> {
    let plane = &api.plane;
    match (req.method().clone(), segments) {
        (Method::POST, ["continuous-deployment-policies"]) => {
            let raw = read_json(req, api.max_body).await?;
            let record = plane.create_policy(raw).await?;
            Ok(with_location(
                response(StatusCode::CREATED, &record),
                &format!("/v1/continuous-deployment-policies/{}", record.stored.id),
            ))
        }
        (Method::GET, ["continuous-deployment-policies"]) => {
            let state = plane.state();
            let items = state
                .policies
                .values()
                .map(|p| PolicyView::new(p))
                .collect();
            Ok(list::<PolicyView>(items))
        }
        (Method::GET, ["continuous-deployment-policies", id]) => {
            Ok(response(StatusCode::OK, plane.state().policy(id)?))
        }
        (Method::PUT, ["continuous-deployment-policies", id]) => {
            let if_match = header_string(&req, IF_MATCH);
            plane.state().policy(id)?;
            let raw = read_json(req, api.max_body).await?;
            let record = plane
                .replace_policy(id, IfMatch::from_header(if_match.as_deref()), raw)
                .await?;
            Ok(response(StatusCode::OK, &record))
        }
        (Method::DELETE, ["continuous-deployment-policies", id]) => {
            plane.delete_policy(id, if_match(&req)).await?;
            Ok(no_content())
        }
        _ => Err(not_found()),
    }
}

fn response(status: StatusCode, record: &PolicyRecord) -> ApiResponse {
    with_etag(json(status, &PolicyView::new(record)), &record.etag())
}
