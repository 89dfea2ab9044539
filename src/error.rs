//! The one error type of Ferry. Its [`ErrorCode`] decides the HTTP status, the problem type URI and
//! the gRPC status, so REST and gRPC always agree. Internal detail (database text, I/O errors) is
//! logged and never put in a response.

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

    pub fn http_status(self) -> http::StatusCode {
        use http::StatusCode as S;
        match self {
            ErrorCode::BadRequest => S::BAD_REQUEST,
            ErrorCode::Validation => S::UNPROCESSABLE_ENTITY,
            ErrorCode::Unauthenticated => S::UNAUTHORIZED,
            ErrorCode::PermissionDenied => S::FORBIDDEN,
            ErrorCode::NotFound => S::NOT_FOUND,
            ErrorCode::Conflict | ErrorCode::IdempotencyInProgress => S::CONFLICT,
            ErrorCode::PreconditionFailed => S::PRECONDITION_FAILED,
            ErrorCode::PreconditionRequired => S::PRECONDITION_REQUIRED,
            ErrorCode::PayloadTooLarge => S::PAYLOAD_TOO_LARGE,
            ErrorCode::UnsupportedMediaType => S::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::Unavailable => S::SERVICE_UNAVAILABLE,
            ErrorCode::Internal => S::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn grpc_code(self) -> tonic::Code {
        use tonic::Code as C;
        match self {
            ErrorCode::BadRequest | ErrorCode::Validation | ErrorCode::UnsupportedMediaType => {
                C::InvalidArgument
            }
            ErrorCode::Unauthenticated => C::Unauthenticated,
            ErrorCode::PermissionDenied => C::PermissionDenied,
            ErrorCode::NotFound => C::NotFound,
            ErrorCode::Conflict => C::AlreadyExists,
            ErrorCode::IdempotencyInProgress => C::Aborted,
            ErrorCode::PreconditionFailed | ErrorCode::PreconditionRequired => {
                C::FailedPrecondition
            }
            ErrorCode::PayloadTooLarge => C::ResourceExhausted,
            ErrorCode::Unavailable => C::Unavailable,
            ErrorCode::Internal => C::Internal,
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

impl From<Error> for tonic::Status {
    fn from(err: Error) -> Self {
        let mut message = err.message;
        for f in &err.fields {
            message.push_str(&format!("\n{}: {}", f.field, f.message));
        }
        tonic::Status::new(err.code.grpc_code(), message)
    }
}
