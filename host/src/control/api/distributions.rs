//! `/v1/distributions`: create, list, read, replace, delete, and the
//! blue/green moves (copy, associate-alias, promote).

use http::header::IF_MATCH;
use http::{Method, Request, StatusCode};
use hyper::body::Incoming;

use super::ControlApi;
use super::http::{
    ApiResponse, Route, header_string, if_match, json, list, no_content, not_found, read_body,
    read_json, with_etag, with_location,
};
use crate::control::error::ApiError;
use crate::control::etag::IfMatch;
use crate::control::records::distributions::DistributionRecord;
use crate::control::views::{DistributionItem, DistributionView};
use crate::control::writes::distributions::CopyRequest;

pub(super) const ROUTES: &[Route] = &[
    (&["distributions"], &[Method::GET, Method::POST]),
    (&["distributions", "*"], &[Method::GET, Method::DELETE]),
    (
        &["distributions", "*", "config"],
        &[Method::GET, Method::PUT],
    ),
    (&["distributions", "*", "copy"], &[Method::POST]),
    (&["distributions", "*", "associate-alias"], &[Method::POST]),
    (&["distributions", "*", "promote"], &[Method::POST]),
];

/// Answers one request of [`ROUTES`] (`segments` after `/v1`).
pub(super) async fn handle(
    api: &ControlApi,
    req: Request<Incoming>,
    segments: &[&str],
) -> Result<ApiResponse, ApiError> {
    let plane = &api.plane;
    match (req.method().clone(), segments) {
        (Method::POST, ["distributions"]) => {
            let raw = read_json(req, api.max_body).await?;
            let record = plane.create(raw).await?;
            Ok(created(api, &record).await)
        }
        (Method::GET, ["distributions"]) => {
            plane.sync().await;
            let view = plane.fleet_view().await;
            let state = plane.state();
            let items = state
                .distributions
                .values()
                .map(|r| DistributionItem::new(r, &view))
                .collect();
            Ok(list::<DistributionItem>(items))
        }
        (Method::GET, ["distributions", id]) => {
            plane.sync().await;
            let state = plane.state();
            Ok(record_response(api, StatusCode::OK, state.distribution(id)?).await)
        }
        (Method::GET, ["distributions", id, "config"]) => {
            plane.sync().await;
            let state = plane.state();
            let record = state.distribution(id)?;
            Ok(with_etag(
                json(StatusCode::OK, &record.stored.config),
                &record.etag(),
            ))
        }
        (Method::PUT, ["distributions", id, "config"]) => {
            let if_match_value = header_string(&req, IF_MATCH);
            plane.state().distribution(id)?;
            let raw = read_json(req, api.max_body).await?;
            let if_match = IfMatch::from_header(if_match_value.as_deref());
            let record = plane.replace_config(id, if_match, raw).await?;
            Ok(record_response(api, StatusCode::OK, &record).await)
        }
        (Method::DELETE, ["distributions", id]) => {
            plane.delete(id, if_match(&req)).await?;
            Ok(no_content())
        }
        (Method::POST, ["distributions", id, "copy"]) => {
            let if_match = header_string(&req, IF_MATCH);
            let body = read_body(req, api.max_body).await?;
            let request = if body.iter().all(u8::is_ascii_whitespace) {
                CopyRequest::default()
            } else {
                crate::config::parse_json(&body)?
            };
            let record = plane.copy(id, if_match.as_deref(), request).await?;
            Ok(created(api, &record).await)
        }
        (Method::POST, ["distributions", id, "associate-alias"]) => {
            let request: crate::control::writes::distributions::AliasRequest =
                read_json(req, api.max_body).await?;
            let record = plane.associate_alias(id, &request.alias).await?;
            Ok(record_response(api, StatusCode::OK, &record).await)
        }
        (Method::POST, ["distributions", id, "promote"]) => {
            let if_match = header_string(&req, IF_MATCH);
            let request = read_json(req, api.max_body).await?;
            let record = plane.promote(id, if_match.as_deref(), request).await?;
            Ok(record_response(api, StatusCode::OK, &record).await)
        }
        _ => Err(not_found()),
    }
}

/// `201 Created` with the record, its ETag and its `Location`.
async fn created(api: &ControlApi, record: &DistributionRecord) -> ApiResponse {
    with_location(
        record_response(api, StatusCode::CREATED, record).await,
        &format!("/v1/distributions/{}", record.stored.id),
    )
}

/// The record as [`DistributionView`], with its ETag.
async fn record_response(
    api: &ControlApi,
    status: StatusCode,
    record: &DistributionRecord,
) -> ApiResponse {
    let view = api.plane.fleet_view().await;
    with_etag(
        json(
            status,
            &DistributionView::new(record, &view, &api.plane.fetcher),
        ),
        &record.etag(),
    )
}
