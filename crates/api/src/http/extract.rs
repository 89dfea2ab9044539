//! Request extractors whose every rejection is a problem+json [`Error`] a person can act on.

use super::problem::{HttpError, Problem};
use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{StatusCode, header};
use serde::de::DeserializeOwned;

use super::AppState;
use ferry_core::error::{Error, ErrorCode};
use ferry_service::auth::{Caller, parse_bearer};

impl FromRequestParts<AppState> for Caller {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, HttpError> {
        let secret = match parts.headers.get(header::AUTHORIZATION) {
            None => None,
            Some(value) => Some(value.to_str().ok().and_then(parse_bearer).ok_or_else(|| {
                Error::unauthenticated("malformed Authorization header: expected `Bearer <token>`")
            })?),
        };
        let source = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_string());
        Ok(state.service.authenticate(secret, source).await?)
    }
}

/// A JSON body: needs a JSON content type, fits the route's size limit, and deserializes
/// strictly; the error names the offending field.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        let json_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|m| {
                let m = m.trim().to_ascii_lowercase();
                m == "application/json" || m.ends_with("+json")
            });
        if json_type != Some(true) {
            return Err(HttpError(Error::new(
                ErrorCode::UnsupportedMediaType,
                "the request body must be JSON: send `Content-Type: application/json`",
            ))
            .into_response());
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_rejection)?;
        parse_json(&bytes)
            .map(ApiJson)
            .map_err(|e| HttpError(e).into_response())
    }
}

fn body_rejection(rejection: BytesRejection) -> Response {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return HttpError(Error::new(
            ErrorCode::PayloadTooLarge,
            "the request body is larger than this route accepts (see max_body_bytes and max_inventory_bytes)",
        ))
        .into_response();
    }
    // The router's body timeout (`RequestBodyTimeoutLayer`) ends a body that stops arriving;
    // that is the client's silence, not a malformed request, and no error code names it.
    if caused_by_body_timeout(&rejection) {
        return Problem::for_status(
            StatusCode::REQUEST_TIMEOUT,
            "the request body stopped arriving before it was complete; send it again",
        )
        .into_response_with(StatusCode::REQUEST_TIMEOUT);
    }
    HttpError(Error::bad_request(format!(
        "could not read the request body: {}",
        rejection.body_text()
    )))
    .into_response()
}

fn caused_by_body_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(err) = cause {
        if err.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = err.source();
    }
    false
}

/// Strict JSON parsing with the path of the first bad field. Every request body of the API is
/// an object; serde would also read a struct from an array of its fields in order
/// (`[null, null]`), which no client means, so anything but an object is refused.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{') {
        return Err(Error::invalid_field(
            "body",
            "must be a JSON object ({...})",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = match serde_path_to_error::deserialize(&mut de) {
        Ok(value) => value,
        // JSON has one number type: `5.0` is the integer 5 to JSON Schema and to most clients'
        // encoders, but serde refuses it for an integer field. Read such a body again with its
        // integral numbers as integers; the common case pays nothing for it.
        Err(e)
            if e.inner()
                .to_string()
                .starts_with("invalid type: floating point") =>
        {
            let mut tree: serde_json::Value = serde_json::from_slice(bytes)
                .map_err(|e| Error::bad_request(format!("malformed JSON: {e}")))?;
            integral_floats_as_integers(&mut tree);
            return serde_path_to_error::deserialize(tree).map_err(json_error);
        }
        Err(e) => return Err(json_error(e)),
    };
    de.end().map_err(|e| {
        Error::bad_request(format!(
            "malformed JSON: unexpected content after the value at line {}, column {}",
            e.line(),
            e.column()
        ))
    })?;
    Ok(value)
}

/// Rewrites every number with no fractional part (`5.0`, `1e3`) as that integer, within the
/// range where a float holds every integer exactly (I-JSON's ±(2^53 - 1)): beyond it, `2^63`
/// and `2^63 + 1` read as the same float, and guessing which was meant would accept numbers an
/// integer field cannot hold.
fn integral_floats_as_integers(value: &mut serde_json::Value) {
    const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;
    match value {
        serde_json::Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f.fract() == 0.0 && f.abs() <= MAX_SAFE_INTEGER {
                *n = serde_json::Number::from(f as i64);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(integral_floats_as_integers),
        serde_json::Value::Object(fields) => {
            fields.values_mut().for_each(integral_floats_as_integers)
        }
        _ => {}
    }
}

/// The problem of a body serde could not read: a field error where a field is to blame.
fn json_error(e: serde_path_to_error::Error<serde_json::Error>) -> Error {
    let path = e.path().to_string();
    let inner = e.into_inner();
    let (line, column) = (inner.line(), inner.column());
    let message = without_position(&inner.to_string());
    match inner.classify() {
        serde_json::error::Category::Data => {
            let field = if path == "." {
                "body".to_string()
            } else {
                path
            };
            Error::invalid_field(field, message)
        }
        _ => Error::bad_request(format!(
            "malformed JSON at line {line}, column {column}: {message}"
        )),
    }
}

/// serde_json appends "at line L column C"; the position is given separately or is meaningless
/// for a field error.
fn without_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// Query parameters; a wrong type or unknown value is a 400 naming the parameter.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, HttpError> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(ApiQuery)
            .map_err(|e| {
                let path = e.path().to_string();
                let message = e.into_inner().to_string();
                if path == "." {
                    Error::bad_request(format!("invalid query string: {message}"))
                } else {
                    Error::bad_request(format!("invalid query parameter `{path}`: {message}"))
                }
                .into()
            })
    }
}

/// Path parameters; a segment of the wrong type is a 400.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, HttpError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| ApiPath(v))
            .map_err(|rejection| Error::bad_request(rejection.body_text()).into())
    }
}

/// The value of an optional header, which must be visible ASCII.
pub fn header_str<'a>(headers: &'a http::HeaderMap, name: &str) -> Result<Option<&'a str>, Error> {
    headers
        .get(name)
        .map(|v| {
            v.to_str()
                .map_err(|_| Error::bad_request(format!("header {name} must be visible ASCII")))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::model::NewCluster;

    #[test]
    fn integral_numbers_written_as_floats_are_integers() {
        let cluster: NewCluster =
            parse_json(br#"{"name": "FS1", "os": "ws2008", "discovery_interval_seconds": 3600.0}"#)
                .unwrap();
        assert_eq!(cluster.discovery_interval_seconds, Some(3600));
        let cluster: NewCluster =
            parse_json(br#"{"name": "FS1", "os": "ws2008", "discovery_interval_seconds": 36e2}"#)
                .unwrap();
        assert_eq!(cluster.discovery_interval_seconds, Some(3600));
    }

    #[test]
    fn fractions_negatives_and_unsafe_integers_are_refused_by_field() {
        // Past 2^53 a float cannot tell neighbouring integers apart: `-2^63 - 1` is not i64::MIN.
        for value in [
            "3600.5",
            "-1.0",
            "1e30",
            "18446744073709551616",
            "9007199254740993.0",
        ] {
            let body = format!(
                r#"{{"name": "FS1", "os": "ws2008", "discovery_interval_seconds": {value}}}"#
            );
            let refused = parse_json::<NewCluster>(body.as_bytes()).unwrap_err();
            assert_eq!(refused.fields.len(), 1, "{value}: {refused:?}");
            assert_eq!(refused.fields[0].field, "discovery_interval_seconds");
        }
    }
}
