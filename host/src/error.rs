//! Viewer-side errors: where each came from, and the one place that maps them to a
//! status code and a JSON body.

use http::StatusCode;

use crate::origin::OriginError;
use crate::wasm::HookError;

/// Where a failure came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorSource {
    /// The viewer's request cannot be served as sent.
    Viewer,
    /// The origin failed or misbehaved.
    Origin,
    /// A hook trapped, overran a limit or returned invalid output.
    Hook,
    /// A fault of the host itself.
    Internal,
}

impl ErrorSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Origin => "origin",
            Self::Hook => "hook",
            Self::Internal => "internal",
        }
    }
}

/// A request that could not be answered normally.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("the request has no Host header")]
    MissingHost,
    #[error("the Host header is not valid: {reason}")]
    BadHost { reason: &'static str },
    #[error("the request body is malformed: {reason}")]
    BadBody { reason: String },
    #[error("no distribution answers host {host:?}")]
    UnknownHost { host: String },
    #[error("host {host:?} is not served by the certificate this connection was opened with")]
    MisdirectedRequest { host: String },
    #[error("the HTTP/2 request is malformed: {reason}")]
    MalformedHttp2 { reason: String },
    #[error("distribution {id} is disabled")]
    DistributionDisabled { id: String },
    #[error("the request target is not a path")]
    BadTarget,
    #[error("the request path is ambiguous: {0}")]
    BadPath(#[from] crate::path::PathError),
    #[error("the request has both Content-Length and Transfer-Encoding")]
    AmbiguousFraming,
    #[error("the request head is larger than this host accepts")]
    HeadTooLarge,
    #[error("the transfer coding {coding:?} is not implemented; only chunked is")]
    TransferCodingNotImplemented { coding: String },
    #[error("a {method} request has no body to send")]
    BodyNotAllowed { method: http::Method },
    #[error("the request body is longer than the {limit} bytes a hook of this path reads")]
    BodyTooLarge { limit: usize },
    #[error("the origin's body is longer than the {limit} bytes its origin-response hook reads")]
    OriginBodyTooLarge { limit: usize },
    #[error(transparent)]
    Origin(#[from] OriginError),
    #[error(transparent)]
    Hook(#[from] HookError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ProxyError {
    /// Where the failure came from.
    pub fn source_of(&self) -> ErrorSource {
        match self {
            Self::MissingHost
            | Self::BadHost { .. }
            | Self::BadBody { .. }
            | Self::UnknownHost { .. }
            | Self::MisdirectedRequest { .. }
            | Self::MalformedHttp2 { .. }
            | Self::DistributionDisabled { .. }
            | Self::BadTarget
            | Self::BadPath(_)
            | Self::AmbiguousFraming
            | Self::TransferCodingNotImplemented { .. }
            | Self::HeadTooLarge
            | Self::BodyNotAllowed { .. }
            | Self::BodyTooLarge { .. } => ErrorSource::Viewer,
            Self::Origin(_) | Self::OriginBodyTooLarge { .. } => ErrorSource::Origin,
            Self::Hook(_) => ErrorSource::Hook,
            Self::Internal(_) => ErrorSource::Internal,
        }
    }

    /// The status and error code the viewer sees.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::MissingHost => (StatusCode::BAD_REQUEST, "MissingHost"),
            Self::BadHost { .. } => (StatusCode::BAD_REQUEST, "InvalidHost"),
            Self::BadBody { .. } => (StatusCode::BAD_REQUEST, "InvalidRequestBody"),
            Self::UnknownHost { .. } => (StatusCode::MISDIRECTED_REQUEST, "UnknownDistribution"),
            Self::MisdirectedRequest { .. } => {
                (StatusCode::MISDIRECTED_REQUEST, "MisdirectedRequest")
            }
            Self::MalformedHttp2 { .. } => (StatusCode::BAD_REQUEST, "MalformedRequest"),
            Self::DistributionDisabled { .. } => (StatusCode::FORBIDDEN, "DistributionDisabled"),
            Self::BadTarget => (StatusCode::BAD_REQUEST, "InvalidRequestTarget"),
            Self::BadPath(_) => (StatusCode::BAD_REQUEST, "InvalidRequestPath"),
            Self::AmbiguousFraming => (StatusCode::BAD_REQUEST, "AmbiguousFraming"),
            Self::HeadTooLarge => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "RequestHeaderFieldsTooLarge",
            ),
            Self::TransferCodingNotImplemented { .. } => {
                (StatusCode::NOT_IMPLEMENTED, "TransferCodingNotImplemented")
            }
            Self::BodyNotAllowed { .. } => (StatusCode::BAD_REQUEST, "RequestBodyNotAllowed"),
            Self::BodyTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "RequestBodyTooLarge"),
            Self::OriginBodyTooLarge { .. } => (StatusCode::BAD_GATEWAY, "OriginBodyTooLarge"),
            Self::Origin(OriginError::Timeout { .. }) => {
                (StatusCode::GATEWAY_TIMEOUT, "OriginTimeout")
            }
            Self::Origin(OriginError::Connect { .. }) => {
                (StatusCode::BAD_GATEWAY, "OriginConnectionFailed")
            }
            Self::Origin(OriginError::Protocol { .. }) => {
                (StatusCode::BAD_GATEWAY, "OriginProtocolError")
            }
            Self::Origin(OriginError::Tls { .. }) => (StatusCode::BAD_GATEWAY, "OriginTlsFailed"),
            Self::Hook(e) if e.is_limit() => (StatusCode::SERVICE_UNAVAILABLE, "HookLimitExceeded"),
            Self::Hook(HookError::InvalidOutput { .. }) => {
                (StatusCode::BAD_GATEWAY, "HookInvalidOutput")
            }
            Self::Hook(_) => (StatusCode::BAD_GATEWAY, "HookFailed"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
        }
    }

    /// What the viewer is told. A viewer's own mistake is explained in full;
    /// an origin's, a hook's or the host's failure is named without its
    /// details (addresses, OS errors, hook versions, traps), which go to the
    /// log under the request id, and to `edge hook test`.
    pub fn viewer_message(&self) -> String {
        match self {
            Self::Origin(OriginError::Timeout { .. }) => "the origin did not answer in time".into(),
            Self::Origin(OriginError::Connect { .. }) => "the origin could not be reached".into(),
            Self::Origin(OriginError::Protocol { .. }) => {
                "the origin's answer was not valid HTTP".into()
            }
            Self::Origin(OriginError::Tls { .. }) => {
                "the TLS connection to the origin failed".into()
            }
            Self::OriginBodyTooLarge { .. } => {
                "the origin's body is longer than this path's hook reads".into()
            }
            Self::Hook(e) if e.is_limit() => "a hook ran past one of its limits".into(),
            Self::Hook(HookError::InvalidOutput { .. }) => "a hook returned invalid output".into(),
            Self::Hook(_) => "a hook failed".into(),
            Self::Internal(_) => "the edge host failed to serve this request".into(),
            viewer => viewer.to_string(),
        }
    }

    /// The gRPC status a gRPC viewer gets for this error (its answer is a
    /// gRPC one, `grpc-status` in a trailers-only response, not a JSON
    /// body): gRPC's mapping of HTTP statuses ("HTTP to gRPC Status Code
    /// Mapping"), with an origin's timeout as `DEADLINE_EXCEEDED`, a body
    /// too large as `RESOURCE_EXHAUSTED` and a distribution unknown here as
    /// `UNIMPLEMENTED`.
    pub fn grpc_status(&self) -> u16 {
        const DEADLINE_EXCEEDED: u16 = 4;
        const RESOURCE_EXHAUSTED: u16 = 8;
        const UNIMPLEMENTED: u16 = 12;
        const INTERNAL: u16 = 13;
        const UNAVAILABLE: u16 = 14;
        const PERMISSION_DENIED: u16 = 7;
        const UNKNOWN: u16 = 2;
        match self {
            Self::Origin(OriginError::Timeout { .. }) => DEADLINE_EXCEEDED,
            Self::BodyTooLarge { .. } => RESOURCE_EXHAUSTED,
            Self::UnknownHost { .. } | Self::MisdirectedRequest { .. } => UNIMPLEMENTED,
            other => match other.status_and_code().0.as_u16() {
                400 | 500 => INTERNAL,
                403 => PERMISSION_DENIED,
                429 | 502..=504 => UNAVAILABLE,
                _ => UNKNOWN,
            },
        }
    }

    /// The JSON body: `{"error": {"code", "message", "request_id"}}`, the
    /// message as [`Self::viewer_message`] words it.
    pub fn body(&self, request_id: &str) -> Vec<u8> {
        let (_, code) = self.status_and_code();
        let value = serde_json::json!({
            "error": { "code": code, "message": self.viewer_message(), "request_id": request_id }
        });
        serde_json::to_vec(&value).unwrap_or_default()
    }
}

/// The error shape used everywhere: `{"error": {"code": "...", "message": "..."}}`.
pub fn json_error(code: &str, message: &str) -> Vec<u8> {
    let value = serde_json::json!({ "error": { "code": code, "message": message } });
    serde_json::to_vec(&value).unwrap_or_default()
}
