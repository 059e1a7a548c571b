//! `/v1/hooks` and `/v1/kv`: hook modules by name and version, and the KV
//! data hooks read.

use http::{Method, Request, StatusCode};
use hyper::body::Incoming;

use super::ControlApi;
use super::http::{ApiResponse, Route, bytes, json, list, no_content, not_found, read_body};
use crate::control::error::ApiError;
use crate::control::views::{
    HookItem, HookUploaded, HookVersionView, HookView, KvKeyItem, KvNamespaceItem, KvWritten,
};
use crate::control::writes::hooks::no_such_key;

/// The largest hook component an upload may carry.
const MAX_HOOK_BODY: usize = 32 << 20;
/// The largest KV value.
const MAX_KV_VALUE: usize = 1 << 20;

pub(super) const ROUTES: &[Route] = &[
    (&["hooks"], &[Method::GET]),
    (&["hooks", "*"], &[Method::GET, Method::PUT, Method::DELETE]),
    (&["kv"], &[Method::GET]),
    (&["kv", "*"], &[Method::GET]),
    (
        &["kv", "*", "*"],
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
        (Method::PUT, ["hooks", name]) => {
            let body = read_body(req, MAX_HOOK_BODY).await?;
            let version = plane.put_hook(name, body).await?;
            Ok(json(
                StatusCode::CREATED,
                &HookUploaded {
                    name: (*name).to_owned(),
                    version,
                },
            ))
        }
        (Method::GET, ["hooks"]) => {
            let state = plane.state();
            let items = state
                .hooks
                .iter()
                .map(|(name, record)| HookItem {
                    name: name.clone(),
                    latest: record.latest.clone(),
                    versions: record.versions.len(),
                })
                .collect();
            Ok(list::<HookItem>(items))
        }
        (Method::GET, ["hooks", name]) => {
            let state = plane.state();
            let record = state
                .hooks
                .get(*name)
                .ok_or_else(|| ApiError::no_such_hook(name))?;
            let versions = record
                .versions
                .iter()
                .map(|(version, v)| HookVersionView {
                    version: version.clone(),
                    size: v.meta.size,
                    uploaded: v.meta.uploaded.clone(),
                    world: v.compiled.world.name().to_owned(),
                })
                .collect();
            Ok(json(
                StatusCode::OK,
                &HookView {
                    name: (*name).to_owned(),
                    latest: record.latest.clone(),
                    versions,
                },
            ))
        }
        (Method::DELETE, ["hooks", name]) => {
            plane.delete_hook(name).await?;
            Ok(no_content())
        }
        (Method::PUT, ["kv", namespace, key]) => {
            let body = read_body(req, MAX_KV_VALUE).await?;
            let size = body.len();
            plane.kv_put(namespace, key, body).await?;
            Ok(json(
                StatusCode::OK,
                &KvWritten {
                    namespace: (*namespace).to_owned(),
                    key: (*key).to_owned(),
                    size,
                },
            ))
        }
        (Method::GET, ["kv", namespace, key]) => {
            let state = plane.state();
            let value = state
                .kv
                .get(namespace, key)
                .ok_or_else(|| no_such_key(namespace, key))?;
            Ok(bytes(value.clone(), "application/octet-stream"))
        }
        (Method::GET, ["kv"]) => {
            let state = plane.state();
            let items = state
                .kv
                .namespaces()
                .into_iter()
                .map(|(namespace, keys)| KvNamespaceItem {
                    namespace: namespace.to_owned(),
                    keys,
                })
                .collect();
            Ok(list::<KvNamespaceItem>(items))
        }
        (Method::GET, ["kv", namespace]) => {
            let state = plane.state();
            let items = state
                .kv
                .keys(namespace)
                .unwrap_or_default()
                .into_iter()
                .map(|(key, size)| KvKeyItem {
                    key: key.to_owned(),
                    size,
                })
                .collect();
            Ok(list::<KvKeyItem>(items))
        }
        (Method::DELETE, ["kv", namespace, key]) => {
            plane.kv_delete(namespace, key).await?;
            Ok(no_content())
        }
        _ => Err(not_found()),
    }
}
