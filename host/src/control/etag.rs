//! ETags and `If-Match`: a stored object's ETag is the store revision that
//! last wrote it.

use super::error::ApiError;
use crate::store::Revision;

/// The ETag string for a store revision.
pub fn etag_of(revision: Revision) -> String {
    format!("E{revision}")
}

/// Whether an `If-Match` value names `revision` (quotes and `W/` tolerated).
pub fn etag_matches(value: &str, revision: Revision) -> bool {
    let v = value.trim();
    let v = v.strip_prefix("W/").unwrap_or(v).trim_matches('"');
    v == etag_of(revision)
}

/// The `If-Match` a write carries.
#[derive(Debug, Clone, Copy)]
pub enum IfMatch<'a> {
    Missing,
    Value(&'a str),
}

impl<'a> IfMatch<'a> {
    /// From a request's `If-Match` header value, if it has one.
    pub fn from_header(value: Option<&'a str>) -> Self {
        value.map_or(Self::Missing, Self::Value)
    }

    /// Checks against the current ETag: missing → 400, stale → 412.
    pub fn check(self, current: Revision, what: &str) -> Result<(), ApiError> {
        match self {
            Self::Missing => Err(ApiError::missing_if_match()),
            Self::Value(v) if etag_matches(v, current) => Ok(()),
            Self::Value(_) => Err(ApiError::precondition_failed(what)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_accepts_quoted_and_weak_forms() {
        assert!(etag_matches("E7", 7));
        assert!(etag_matches("\"E7\"", 7));
        assert!(etag_matches("W/\"E7\"", 7));
        assert!(!etag_matches("E8", 7));
        assert!(IfMatch::Missing.check(7, "x").is_err());
    }
}
