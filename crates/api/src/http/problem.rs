//! RFC 9457 problem details: how every [`Error`] looks on the wire. Handlers and extractors fail
//! with [`HttpError`], which every domain error turns into with `?`. A failure no [`ErrorCode`]
//! names (405, 408, or a status a layer or hyper's router chose) is told with
//! [`Problem::for_status`], so a client reads every 4xx and 5xx the same way.

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

impl Problem {
    /// The problem of an HTTP status: the error code's type and title where one answers with that
    /// status, else a type and title made from the status's reason phrase
    /// (`urn:ferry:problem:method-not-allowed`, "Method not allowed").
    pub fn for_status(status: StatusCode, detail: impl Into<String>) -> Self {
        let (problem_type, title) = match code_of_status(status) {
            Some(code) => (code.type_uri(), code.title().to_string()),
            None => match status.canonical_reason() {
                Some(reason) => (
                    format!(
                        "urn:ferry:problem:{}",
                        reason.to_ascii_lowercase().replace(' ', "-")
                    ),
                    sentence_case(reason),
                ),
                // RFC 9457 §4.2.1: `about:blank` says nothing beyond the status code.
                None => (
                    "about:blank".to_string(),
                    format!("HTTP {}", status.as_u16()),
                ),
            },
        };
        Problem {
            problem_type,
            title,
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    /// This problem as a response with its status and the problem+json content type.
    pub fn into_response_with(self, status: StatusCode) -> Response {
        let mut response = (status, Json(self)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static(PROBLEM_JSON),
        );
        response
    }
}

/// "Method Not Allowed" -> "Method not allowed", as the error codes' titles are written.
fn sentence_case(reason: &str) -> String {
    let mut words = reason.split(' ');
    let mut out = words.next().unwrap_or_default().to_string();
    for word in words {
        out.push(' ');
        // Acronyms (URI) stay as they are.
        if word.chars().all(|c| c.is_ascii_uppercase()) {
            out.push_str(word);
        } else {
            out.push_str(&word.to_ascii_lowercase());
        }
    }
    out
}

/// The error code that answers with `status`, where one does. Several codes share 409 and 400
/// is also what `BadRequest` means, so the first of those stands for the status.
pub fn code_of_status(status: StatusCode) -> Option<ErrorCode> {
    use StatusCode as S;
    Some(match status {
        S::BAD_REQUEST => ErrorCode::BadRequest,
        S::UNPROCESSABLE_ENTITY => ErrorCode::Validation,
        S::UNAUTHORIZED => ErrorCode::Unauthenticated,
        S::FORBIDDEN => ErrorCode::PermissionDenied,
        S::NOT_FOUND => ErrorCode::NotFound,
        S::CONFLICT => ErrorCode::Conflict,
        S::PRECONDITION_FAILED => ErrorCode::PreconditionFailed,
        S::PRECONDITION_REQUIRED => ErrorCode::PreconditionRequired,
        S::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
        S::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
        S::SERVICE_UNAVAILABLE => ErrorCode::Unavailable,
        S::INTERNAL_SERVER_ERROR => ErrorCode::Internal,
        _ => return None,
    })
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
        let mut response = Problem::from(&err).into_response_with(status_of(err.code));
        if err.code == ErrorCode::Unauthenticated {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer realm=\"ferry\""),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_code_is_found_again_from_its_status() {
        for code in [
            ErrorCode::BadRequest,
            ErrorCode::Validation,
            ErrorCode::Unauthenticated,
            ErrorCode::PermissionDenied,
            ErrorCode::NotFound,
            ErrorCode::Conflict,
            ErrorCode::PreconditionFailed,
            ErrorCode::PreconditionRequired,
            ErrorCode::PayloadTooLarge,
            ErrorCode::UnsupportedMediaType,
            ErrorCode::Unavailable,
            ErrorCode::Internal,
        ] {
            let status = status_of(code);
            assert_eq!(code_of_status(status), Some(code), "{code:?}");
            assert_eq!(
                Problem::for_status(status, "x").problem_type,
                code.type_uri()
            );
        }
        // Shares 409 with Conflict, which stands for the status.
        assert_eq!(
            code_of_status(status_of(ErrorCode::IdempotencyInProgress)),
            Some(ErrorCode::Conflict)
        );
    }

    #[test]
    fn statuses_without_a_code_get_a_type_from_their_reason() {
        let p = Problem::for_status(StatusCode::METHOD_NOT_ALLOWED, "no");
        assert_eq!(p.problem_type, "urn:ferry:problem:method-not-allowed");
        assert_eq!(p.title, "Method not allowed");
        assert_eq!(p.status, 405);
        let p = Problem::for_status(StatusCode::URI_TOO_LONG, "long");
        assert_eq!(p.problem_type, "urn:ferry:problem:uri-too-long");
        assert_eq!(p.title, "URI too long");
        let odd = StatusCode::from_u16(499).expect("a valid status");
        let p = Problem::for_status(odd, "odd");
        assert_eq!(p.problem_type, "about:blank");
        assert_eq!(p.title, "HTTP 499");
    }
}
