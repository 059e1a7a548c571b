//! `/v1/certificates`: viewer TLS certificates, uploaded, listed, read (never
//! their keys) and deleted.

use http::{Method, Request, StatusCode};
use hyper::body::Incoming;

use super::ControlApi;
use super::http::{ApiResponse, Route, json, list, no_content, not_found, read_json};
use crate::control::error::ApiError;
use crate::control::state::ControlState;
use crate::control::views::CertificateView;
use crate::control::writes::certificates::{CertificateUpload, no_such_certificate};

pub(super) const ROUTES: &[Route] = &[
    (&["certificates"], &[Method::GET]),
    (
        &["certificates", "*"],
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
        (Method::PUT, ["certificates", name]) => {
            let upload: CertificateUpload = read_json(req, api.max_body).await?;
            let created = plane.put_certificate(name, upload).await?;
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(json(status, &view(&plane.state(), name)?))
        }
        (Method::GET, ["certificates"]) => {
            let state = plane.state();
            let items = state
                .certificates
                .keys()
                .map(|name| view(&state, name))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(list(items))
        }
        (Method::GET, ["certificates", name]) => {
            Ok(json(StatusCode::OK, &view(&plane.state(), name)?))
        }
        (Method::DELETE, ["certificates", name]) => {
            plane.delete_certificate(name).await?;
            Ok(no_content())
        }
        _ => Err(not_found()),
    }
}

/// A certificate as the API shows it: never its private key.
fn view(state: &ControlState, name: &str) -> Result<CertificateView, ApiError> {
    let record = state
        .certificates
        .get(name)
        .ok_or_else(|| no_such_certificate(name))?;
    Ok(CertificateView {
        name: name.to_owned(),
        uploaded: record.stored.uploaded.clone(),
        certificate_chain: record.stored.pem.certificate_chain.clone(),
    })
}
