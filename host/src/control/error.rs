//! Control API errors: one JSON shape, CloudFront's codes where one exists.

use http::StatusCode;

use crate::config::{ConfigError, ParseError};
use crate::store::StoreError;

/// The error codes of the control API (CloudFront's names where CloudFront
/// has the error), each with the one status it is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The bearer token is missing or wrong.
    AccessDenied,
    /// An alias belongs to another distribution.
    CNAMEAlreadyExists,
    /// A policy is attached to a primary, or its staging is.
    ContinuousDeploymentPolicyInUse,
    /// A distribution must be disabled before it is deleted.
    DistributionNotDisabled,
    /// A config names the hook or the version.
    HookInUse,
    /// The upload would take the hook store past its bound.
    HookStoreFull,
    /// The change is not allowed in the distribution's present state.
    IllegalUpdate,
    /// The host failed; nothing was changed.
    InternalError,
    /// The request is well-formed but its content is invalid.
    InvalidArgument,
    /// The certificate or its key does not parse or match.
    InvalidCertificate,
    /// The upload is not a component of the hooks world the host runs.
    InvalidHook,
    /// The request needs an If-Match header.
    InvalidIfMatchVersion,
    /// The body is not the JSON the endpoint reads.
    MalformedInput,
    /// The endpoint does not answer this method (`Allow` says which do).
    MethodNotAllowed,
    NoSuchCertificate,
    NoSuchContinuousDeploymentPolicy,
    NoSuchDistribution,
    NoSuchHook,
    NoSuchInvalidation,
    NoSuchKey,
    NoSuchSecret,
    /// No such endpoint.
    NotFound,
    /// The If-Match version is not the current ETag.
    PreconditionFailed,
    /// The body, or the write it makes, is too large.
    RequestEntityTooLarge,
    /// The config store failed; nothing was changed.
    ServiceUnavailable,
    /// A staging distribution serves a policy.
    StagingDistributionInUse,
}

impl ErrorCode {
    /// The HTTP status this code is answered with: decided here, once.
    pub fn status(self) -> StatusCode {
        match self {
            Self::AccessDenied => StatusCode::UNAUTHORIZED,
            Self::CNAMEAlreadyExists => StatusCode::CONFLICT,
            Self::ContinuousDeploymentPolicyInUse => StatusCode::CONFLICT,
            Self::DistributionNotDisabled => StatusCode::CONFLICT,
            Self::HookInUse => StatusCode::CONFLICT,
            Self::HookStoreFull => StatusCode::INSUFFICIENT_STORAGE,
            Self::IllegalUpdate => StatusCode::CONFLICT,
            Self::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            Self::InvalidArgument => StatusCode::BAD_REQUEST,
            Self::InvalidCertificate => StatusCode::BAD_REQUEST,
            Self::InvalidHook => StatusCode::BAD_REQUEST,
            Self::InvalidIfMatchVersion => StatusCode::BAD_REQUEST,
            Self::MalformedInput => StatusCode::BAD_REQUEST,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::NoSuchCertificate => StatusCode::NOT_FOUND,
            Self::NoSuchContinuousDeploymentPolicy => StatusCode::NOT_FOUND,
            Self::NoSuchDistribution => StatusCode::NOT_FOUND,
            Self::NoSuchHook => StatusCode::NOT_FOUND,
            Self::NoSuchInvalidation => StatusCode::NOT_FOUND,
            Self::NoSuchKey => StatusCode::NOT_FOUND,
            Self::NoSuchSecret => StatusCode::NOT_FOUND,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::RequestEntityTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::StagingDistributionInUse => StatusCode::CONFLICT,
        }
    }

    /// The code as the JSON body spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccessDenied => "AccessDenied",
            Self::CNAMEAlreadyExists => "CNAMEAlreadyExists",
            Self::ContinuousDeploymentPolicyInUse => "ContinuousDeploymentPolicyInUse",
            Self::DistributionNotDisabled => "DistributionNotDisabled",
            Self::HookInUse => "HookInUse",
            Self::HookStoreFull => "HookStoreFull",
            Self::IllegalUpdate => "IllegalUpdate",
            Self::InternalError => "InternalError",
            Self::InvalidArgument => "InvalidArgument",
            Self::InvalidCertificate => "InvalidCertificate",
            Self::InvalidHook => "InvalidHook",
            Self::InvalidIfMatchVersion => "InvalidIfMatchVersion",
            Self::MalformedInput => "MalformedInput",
            Self::MethodNotAllowed => "MethodNotAllowed",
            Self::NoSuchCertificate => "NoSuchCertificate",
            Self::NoSuchContinuousDeploymentPolicy => "NoSuchContinuousDeploymentPolicy",
            Self::NoSuchDistribution => "NoSuchDistribution",
            Self::NoSuchHook => "NoSuchHook",
            Self::NoSuchInvalidation => "NoSuchInvalidation",
            Self::NoSuchKey => "NoSuchKey",
            Self::NoSuchSecret => "NoSuchSecret",
            Self::NotFound => "NotFound",
            Self::PreconditionFailed => "PreconditionFailed",
            Self::RequestEntityTooLarge => "RequestEntityTooLarge",
            Self::ServiceUnavailable => "ServiceUnavailable",
            Self::StagingDistributionInUse => "StagingDistributionInUse",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused or failed control request. Nothing is changed when one is returned.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// The methods an endpoint answers, for a 405's `Allow` header.
    pub allow: Option<String>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            allow: None,
        }
    }

    /// The HTTP status of this error (its code's).
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }

    pub fn no_such_distribution(id: &str) -> Self {
        Self::new(
            ErrorCode::NoSuchDistribution,
            format!("no distribution has id {id:?}"),
        )
    }

    pub fn no_such_hook(name: &str) -> Self {
        Self::new(
            ErrorCode::NoSuchHook,
            format!("no hook named {name:?} has been uploaded"),
        )
    }

    pub fn precondition_failed(what: &str) -> Self {
        Self::new(
            ErrorCode::PreconditionFailed,
            format!("the If-Match version does not match the current ETag of {what}"),
        )
    }

    pub fn missing_if_match() -> Self {
        Self::new(
            ErrorCode::InvalidIfMatchVersion,
            "this request needs an If-Match header with the current ETag",
        )
    }

    pub fn alias_taken(alias: &str, owner: &str) -> Self {
        Self::new(
            ErrorCode::CNAMEAlreadyExists,
            format!("alias {alias:?} belongs to distribution {owner}"),
        )
    }

    pub fn body(&self) -> Vec<u8> {
        crate::error::json_error(self.code.as_str(), &self.message)
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
            ParseError::Malformed(msg) => Self::new(ErrorCode::MalformedInput, msg),
            ParseError::Invalid(err) => err.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        if let StoreError::TooLarge(reason) = &err {
            return Self::new(
                ErrorCode::RequestEntityTooLarge,
                format!(
                    "the config store refused a write that large; nothing was changed (etcd takes up to --max-request-bytes per write): {reason}"
                ),
            );
        }
        tracing::error!(error = %err, "store failure");
        Self::new(
            ErrorCode::ServiceUnavailable,
            format!("the config store failed; nothing was changed: {err}"),
        )
    }
}
