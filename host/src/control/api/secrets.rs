//! `/v1/secrets`: hook secrets, set, listed (names, versions and times,
//! never values) and deleted.

use std::time::{Duration, UNIX_EPOCH};

use http::{Method, Request, StatusCode};
use hyper::body::Incoming;

use super::ControlApi;
use super::http::{ApiResponse, Route, json, list, no_content, not_found, read_body};
use crate::control::error::ApiError;
use crate::control::records::secrets::MAX_SECRET_VALUE;
use crate::control::views::{SecretStoreItem, SecretView};
use crate::control::writes::secrets::no_such_secret;
use crate::time::rfc3339;
use crate::wasm::secrets::Secret;

pub(super) const ROUTES: &[Route] = &[
    (&["secrets"], &[Method::GET]),
    (&["secrets", "*"], &[Method::GET]),
    (
        &["secrets", "*", "*"],
        &[Method::GET, Method::PUT, Method::DELETE],
    ),
];

fn view(store: &str, name: &str, secret: &Secret) -> SecretView {
    SecretView {
        store: store.to_owned(),
        name: name.to_owned(),
        version: secret.version,
        updated: rfc3339(UNIX_EPOCH + Duration::from_secs(secret.updated)),
    }
}

/// Answers one request of [`ROUTES`] (`segments` after `/v1`).
pub(super) async fn handle(
    api: &ControlApi,
    req: Request<Incoming>,
    segments: &[&str],
) -> Result<ApiResponse, ApiError> {
    let plane = &api.plane;
    match (req.method().clone(), segments) {
        (Method::PUT, ["secrets", store, name]) => {
            let value = read_body(req, MAX_SECRET_VALUE).await?;
            let version = plane.put_secret(store, name, value).await?;
            let status = if version == 1 {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            let state = plane.state();
            let secret = state
                .kv
                .secret(store, name)
                .ok_or_else(|| no_such_secret(store, name))?;
            Ok(json(status, &view(store, name, secret)))
        }
        (Method::GET, ["secrets"]) => {
            let state = plane.state();
            let items = state
                .kv
                .secret_stores()
                .into_iter()
                .map(|(store, secrets)| SecretStoreItem {
                    store: store.to_owned(),
                    secrets,
                })
                .collect();
            Ok(list::<SecretStoreItem>(items))
        }
        (Method::GET, ["secrets", store]) => {
            let state = plane.state();
            let items = state
                .kv
                .secrets_of(store)
                .unwrap_or_default()
                .into_iter()
                .map(|(name, secret)| view(store, name, secret))
                .collect();
            Ok(list::<SecretView>(items))
        }
        (Method::GET, ["secrets", store, name]) => {
            let state = plane.state();
            let secret = state
                .kv
                .secret(store, name)
                .ok_or_else(|| no_such_secret(store, name))?;
            Ok(json(StatusCode::OK, &view(store, name, secret)))
        }
        (Method::DELETE, ["secrets", store, name]) => {
            plane.delete_secret(store, name).await?;
            Ok(no_content())
        }
        _ => Err(not_found()),
    }
}
