//! `/v1/distributions/{id}/invalidations`: create one, list them, read one.

use http::{Method, Request, StatusCode};
use hyper::body::Incoming;

use super::ControlApi;
use super::http::{ApiResponse, Route, json, list, not_found, read_json, with_location};
use crate::control::error::{ApiError, ErrorCode};
use crate::control::views::InvalidationView;

pub(super) const ROUTES: &[Route] = &[
    (
        &["distributions", "*", "invalidations"],
        &[Method::GET, Method::POST],
    ),
    (
        &["distributions", "*", "invalidations", "*"],
        &[Method::GET],
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
        (Method::POST, ["distributions", id, "invalidations"]) => {
            let request = read_json(req, api.max_body).await?;
            let record = plane.invalidate(id, request).await?;
            let view = plane.fleet_view().await;
            Ok(with_location(
                json(StatusCode::CREATED, &InvalidationView::new(&record, &view)),
                &format!("/v1/distributions/{id}/invalidations/{}", record.stored.id),
            ))
        }
        (Method::GET, ["distributions", id, "invalidations"]) => {
            plane.sync().await;
            let view = plane.fleet_view().await;
            let state = plane.state();
            state.distribution(id)?;
            let items = state
                .invalidations
                .get(*id)
                .into_iter()
                .flatten()
                .rev()
                .map(|r| InvalidationView::new(r, &view))
                .collect();
            Ok(list::<InvalidationView>(items))
        }
        (Method::GET, ["distributions", id, "invalidations", inv]) => {
            plane.sync().await;
            let view = plane.fleet_view().await;
            let state = plane.state();
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
            Ok(json(StatusCode::OK, &InvalidationView::new(record, &view)))
        }
        _ => Err(not_found()),
    }
}
