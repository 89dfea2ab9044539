//! How a domain [`Error`] is told to a gRPC client: its code decides the status code, and the
//! field violations follow the message, one per line, as REST lists them in `errors`.

use ferry_core::error::{Error, ErrorCode};
use tonic::{Code, Status};

/// The gRPC status code of an error code.
pub fn code_of(code: ErrorCode) -> Code {
    match code {
        ErrorCode::BadRequest | ErrorCode::Validation | ErrorCode::UnsupportedMediaType => {
            Code::InvalidArgument
        }
        ErrorCode::Unauthenticated => Code::Unauthenticated,
        ErrorCode::PermissionDenied => Code::PermissionDenied,
        ErrorCode::NotFound => Code::NotFound,
        ErrorCode::Conflict => Code::AlreadyExists,
        ErrorCode::IdempotencyInProgress => Code::Aborted,
        ErrorCode::PreconditionFailed | ErrorCode::PreconditionRequired => Code::FailedPrecondition,
        ErrorCode::PayloadTooLarge => Code::ResourceExhausted,
        ErrorCode::Unavailable => Code::Unavailable,
        ErrorCode::Internal => Code::Internal,
    }
}

/// The status a failed call answers with.
pub fn status_of(err: Error) -> Status {
    let mut message = err.message;
    for f in &err.fields {
        message.push_str(&format!("\n{}: {}", f.field, f.message));
    }
    Status::new(code_of(err.code), message)
}
