//! The one error type of Ferry. Its [`ErrorCode`] is what the transports map to an HTTP status and
//! problem type, or a gRPC status (each transport holds its own mapping), so REST and gRPC always
//! agree. Internal detail (database text, I/O errors) is logged and never put in a response.

use crate::model::FieldError;

/// What kind of failure this is, independent of transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The request cannot be parsed: malformed JSON, bad query string, bad header.
    BadRequest,
    /// The request parsed but its content is invalid; `fields` says where.
    Validation,
    Unauthenticated,
    PermissionDenied,
    NotFound,
    /// Conflicts with current state: duplicate name, object held by another operation.
    Conflict,
    /// `If-Match` did not match the current ETag.
    PreconditionFailed,
    /// `If-Match` is required but was not given.
    PreconditionRequired,
    PayloadTooLarge,
    UnsupportedMediaType,
    /// A retry of an `Idempotency-Key` whose first request is still running.
    IdempotencyInProgress,
    Unavailable,
    Internal,
}

impl ErrorCode {
    pub fn slug(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad-request",
            ErrorCode::Validation => "validation",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::PermissionDenied => "permission-denied",
            ErrorCode::NotFound => "not-found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::PreconditionFailed => "precondition-failed",
            ErrorCode::PreconditionRequired => "precondition-required",
            ErrorCode::PayloadTooLarge => "payload-too-large",
            ErrorCode::UnsupportedMediaType => "unsupported-media-type",
            ErrorCode::IdempotencyInProgress => "idempotency-in-progress",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "Bad request",
            ErrorCode::Validation => "Validation failed",
            ErrorCode::Unauthenticated => "Authentication required",
            ErrorCode::PermissionDenied => "Permission denied",
            ErrorCode::NotFound => "Not found",
            ErrorCode::Conflict => "Conflict",
            ErrorCode::PreconditionFailed => "Precondition failed",
            ErrorCode::PreconditionRequired => "Precondition required",
            ErrorCode::PayloadTooLarge => "Payload too large",
            ErrorCode::UnsupportedMediaType => "Unsupported media type",
            ErrorCode::IdempotencyInProgress => "Request in progress",
            ErrorCode::Unavailable => "Service unavailable",
            ErrorCode::Internal => "Internal error",
        }
    }

    /// The RFC 9457 `type` URI of this problem.
    pub fn type_uri(self) -> String {
        format!("urn:ferry:problem:{}", self.slug())
    }
}

/// A failure with a message a person can act on.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
    /// Field-level problems for [`ErrorCode::Validation`].
    pub fields: Vec<FieldError>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            fields: Vec::new(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthenticated, message)
    }

    pub fn permission_denied(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::PermissionDenied, message)
    }

    pub fn precondition_failed(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::PreconditionFailed, message)
    }

    /// Validation failure listing every bad field.
    pub fn validation(fields: Vec<FieldError>) -> Self {
        let message = match fields.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            many => format!("{} fields are invalid; see `errors`", many.len()),
        };
        Self {
            code: ErrorCode::Validation,
            message,
            fields,
        }
    }

    /// Validation failure of a single field.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError::new(field, message)])
    }

    /// An unexpected failure. `detail` goes to the log with a reference; the client gets only the
    /// reference.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        let reference = uuid::Uuid::now_v7();
        tracing::error!(%reference, error = %detail, "internal error");
        Self::new(
            ErrorCode::Internal,
            format!(
                "an internal error occurred (reference {reference}); the server log has the detail"
            ),
        )
    }

    pub fn unavailable(detail: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %detail, "dependency unavailable");
        Self::new(
            ErrorCode::Unavailable,
            "the database is not reachable; try again",
        )
    }
}
