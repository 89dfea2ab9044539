//! RFC 9457 problem details: how every [`Error`] looks on the wire.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::header;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{Error, ErrorCode};
use crate::model::FieldError;

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
            status: err.code.http_status().as_u16(),
            detail: err.message.clone(),
            errors: err.fields.clone(),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.code.http_status();
        let mut response = (status, Json(Problem::from(&self))).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static(PROBLEM_JSON),
        );
        if self.code == ErrorCode::Unauthenticated {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer realm=\"ferry\""),
            );
        }
        response
    }
}
