//! RFC 9457 problem details: how every [`Error`] looks on the wire. Handlers and extractors fail
//! with [`HttpError`], which every domain error turns into with `?`.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use ferry_core::error::{Error, ErrorCode};
use ferry_core::model::FieldError;

/// An `application/problem+json` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// URI naming the kind of problem, e.g. `urn:ferry:problem:not-found`.
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    /// What went wrong, in words a person can act on.
    pub detail: String,
    /// Field-level problems of a validation failure.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

pub const PROBLEM_JSON: &str = "application/problem+json";

impl From<&Error> for Problem {
    fn from(err: &Error) -> Self {
        Problem {
            problem_type: err.code.type_uri(),
            title: err.code.title().to_string(),
            status: status_of(err.code).as_u16(),
            detail: err.message.clone(),
            errors: err.fields.clone(),
        }
    }
}

/// The HTTP status of an error code.
pub fn status_of(code: ErrorCode) -> StatusCode {
    use StatusCode as S;
    match code {
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

/// A domain error on its way out as problem+json.
#[derive(Debug)]
pub struct HttpError(pub Error);

impl From<Error> for HttpError {
    fn from(err: Error) -> Self {
        HttpError(err)
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let HttpError(err) = self;
        let status = status_of(err.code);
        let mut response = (status, Json(Problem::from(&err))).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static(PROBLEM_JSON),
        );
        if err.code == ErrorCode::Unauthenticated {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer realm=\"ferry\""),
            );
        }
        response
    }
}
