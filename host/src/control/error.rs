//! Control API errors: one JSON shape, CloudFront's codes where one exists.

use http::StatusCode;

use crate::config::{ConfigError, ParseError};
use crate::store::StoreError;

/// A refused or failed control request. Nothing is changed when one is returned.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// The methods an endpoint answers, for a 405's `Allow` header.
    pub allow: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            allow: None,
        }
    }

    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidArgument", message)
    }

    pub fn no_such_distribution(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NoSuchDistribution",
            format!("no distribution has id {id:?}"),
        )
    }

    pub fn no_such_hook(name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NoSuchHook",
            format!("no hook named {name:?} has been uploaded"),
        )
    }

    pub fn precondition_failed(what: &str) -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            "PreconditionFailed",
            format!("the If-Match version does not match the current ETag of {what}"),
        )
    }

    pub fn missing_if_match() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "InvalidIfMatchVersion",
            "this request needs an If-Match header with the current ETag",
        )
    }

    pub fn alias_taken(alias: &str, owner: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "CNAMEAlreadyExists",
            format!("alias {alias:?} belongs to distribution {owner}"),
        )
    }

    pub fn body(&self) -> Vec<u8> {
        crate::error::json_error(self.code, &self.message)
    }
}

impl From<ConfigError> for ApiError {
    fn from(err: ConfigError) -> Self {
        Self::invalid_argument(err.to_string())
    }
}

impl From<ParseError> for ApiError {
    fn from(err: ParseError) -> Self {
        match err {
            ParseError::Malformed(msg) => Self::new(StatusCode::BAD_REQUEST, "MalformedInput", msg),
            ParseError::Invalid(err) => err.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        if let StoreError::TooLarge(reason) = &err {
            return Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                format!(
                    "the config store refused a write that large; nothing was changed (etcd takes up to --max-request-bytes per write): {reason}"
                ),
            );
        }
        tracing::error!(error = %err, "store failure");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            format!("the config store failed; nothing was changed: {err}"),
        )
    }
}
