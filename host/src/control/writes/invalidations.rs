//! Invalidations: drop cached objects (or, soft, mark them stale) by path
//! (exact, or a prefix with a trailing `*`) or by tag, effective before the
//! API answers, kept in a history.

use std::sync::Arc;
use std::time::SystemTime;

use serde::Deserialize;

use crate::control::error::{ApiError, ErrorCode};
use crate::control::plane::ControlPlane;
use crate::control::records::invalidations::{
    InvalidationRecord, StoredInvalidation, invalidation_key,
};
use crate::control::records::put_json;
use crate::store::{Op, Txn};
use crate::time::rfc3339;

/// Paths one invalidation may list (CloudFront's limit).
pub const MAX_PATHS: usize = 3000;
/// Tags one invalidation may list.
pub const MAX_TAGS: usize = 1000;
/// Invalidations kept in a distribution's history; older ones are dropped.
pub const HISTORY: usize = 100;
const MAX_PATH_LEN: usize = 4096;

/// The body of `POST /v1/distributions/{id}/invalidations`: paths, tags or
/// both; `soft` marks what matches stale instead of dropping it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvalidationRequest {
    #[serde(default)]
    pub paths: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub soft: bool,
}

/// Checks one tag: what a `Surrogate-Key` or `Cache-Tag` field can name.
fn validate_tag(tag: &str) -> Result<(), String> {
    if tag.is_empty() || tag.len() > crate::cache::tags::MAX_TAG_BYTES {
        return Err(format!(
            "a tag is 1 to {} bytes",
            crate::cache::tags::MAX_TAG_BYTES
        ));
    }
    if tag.trim() != tag || tag.contains(',') {
        return Err(format!(
            "{tag:?}: a tag may not start or end with a space, nor hold a comma (Cache-Tag separates tags with commas)"
        ));
    }
    if tag.bytes().any(|b| b < b' ' || b == 0x7f) || !tag.is_ascii() {
        return Err(format!("{tag:?} holds a control or non-ASCII character"));
    }
    Ok(())
}

/// Checks one path: starts with `/`, no spaces or control characters, `*`
/// only as the last character.
fn validate_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("{path:?} must start with '/'"));
    }
    if path.len() > MAX_PATH_LEN {
        return Err(format!("a path may be at most {MAX_PATH_LEN} bytes"));
    }
    if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(format!("{path:?} holds a space or control character"));
    }
    if path.find('*').is_some_and(|i| i + 1 != path.len()) {
        return Err(format!("{path:?}: '*' may only end a path"));
    }
    Ok(())
}

impl ControlPlane {
    /// `POST /v1/distributions/{id}/invalidations`: records the invalidation,
    /// then drops the matching objects (both arms of a primary, the staging
    /// arm only for a staging distribution) before answering.
    pub async fn invalidate(
        &self,
        dist_id: &str,
        request: InvalidationRequest,
    ) -> Result<Arc<InvalidationRecord>, ApiError> {
        let InvalidationRequest { paths, tags, soft } = request;
        if paths.is_empty() && tags.is_empty() {
            return Err(ApiError::invalid_argument(
                "list the paths or the tags to invalidate (\"paths\": [\"/img/*\"], \"tags\": [\"product-42\"])",
            ));
        }
        if paths.len() > MAX_PATHS {
            return Err(ApiError::invalid_argument(format!(
                "paths: at most {MAX_PATHS} paths"
            )));
        }
        if tags.len() > MAX_TAGS {
            return Err(ApiError::invalid_argument(format!(
                "tags: at most {MAX_TAGS} tags"
            )));
        }
        for (i, path) in paths.iter().enumerate() {
            validate_path(path)
                .map_err(|m| ApiError::invalid_argument(format!("paths[{i}]: {m}")))?;
        }
        for (i, tag) in tags.iter().enumerate() {
            validate_tag(tag).map_err(|m| ApiError::invalid_argument(format!("tags[{i}]: {m}")))?;
        }
        let (_guard, state) = self.begin_write().await?;
        state.distribution(dist_id)?;
        let mut stored = StoredInvalidation {
            id: crate::ids::prefixed_id('I'),
            paths,
            tags,
            soft,
            create_time: rfc3339(SystemTime::now()),
            dropped: 0,
        };
        let key = |id: &str| invalidation_key(dist_id, id);
        let history = state
            .invalidations
            .get(dist_id)
            .map_or(&[][..], Vec::as_slice);
        let expired = history.len().saturating_sub(HISTORY - 1);
        // Drop first, then record: the count goes into the record, and a
        // failed commit leaves only objects refetched, never stale ones served.
        stored.dropped = self.cache.purge(dist_id, stored.purge());
        self.fleet.mark_applied(&stored.id);
        let mut txn = Txn::default();
        txn.ops.push(put_json(key(&stored.id), &stored)?);
        for old in &history[..expired] {
            txn.ops.push(Op::Delete {
                key: key(&old.stored.id),
            });
        }
        let id = stored.id.clone();
        let next = self.commit_write(&state, txn, dist_id, &[]).await?;
        let record = next
            .invalidations
            .get(dist_id)
            .and_then(|list| list.iter().find(|r| r.stored.id == id))
            .cloned()
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InternalError,
                    format!("invalidation {id} was committed but not decoded"),
                )
            })?;
        tracing::info!(distribution = dist_id, id = %record.stored.id, dropped = record.stored.dropped, "invalidated");
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_checked() {
        assert!(validate_path("/img/*").is_ok());
        assert!(validate_path("/index.html").is_ok());
        assert!(validate_path("/*").is_ok());
        assert!(validate_path("img/*").is_err());
        assert!(validate_path("/a*/b").is_err());
        assert!(validate_path("/a b").is_err());
    }

    #[test]
    fn tags_are_checked() {
        assert!(validate_tag("product-42").is_ok());
        assert!(validate_tag("a b").is_ok());
        for bad in ["", " a", "a ", "a,b", "a\tb", "é"] {
            assert!(validate_tag(bad).is_err(), "{bad:?}");
        }
        assert!(validate_tag(&"x".repeat(1025)).is_err());
    }
}
