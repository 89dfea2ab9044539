//! How a domain [`Error`] is told to a gRPC client: its code decides the status code, and the
//! field violations REST lists in `errors` travel twice: one per line after the message, for a
//! person reading it, and as `google.rpc.BadRequest` details (`grpc-status-details-bin`), with the
//! same field paths, for a program that wants to point at the bad field.

use ferry_core::error::{Error, ErrorCode};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

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

/// The message and the violations travel in the trailers, and the details repeat the message
/// (a `google.rpc.Status` holds code, message and details, then base64): hyper's HTTP/2 client,
/// tonic's, refuses a header list over 16 KiB, and a client that gets a protocol error instead
/// of the status learns nothing. An inventory of thousands of bad shares, or a message that
/// echoes a long input, would cross that, so the text is bounded: about 2.5 KiB of violations in
/// each form, plus a headline of at most 1 KiB, keeps the trailers near 9 KiB.
const VIOLATIONS_BUDGET: usize = 2560;
const HEADLINE_MAX: usize = 1024;
const FIELD_MAX: usize = 256;
const DESCRIPTION_MAX: usize = 512;

/// The status a failed call answers with.
pub fn status_of(err: Error) -> Status {
    let code = code_of(err.code);
    let mut message = clip(&err.message, HEADLINE_MAX);
    if err.fields.is_empty() {
        return Status::new(code, message);
    }
    let mut violations = Vec::with_capacity(err.fields.len().min(64));
    let mut used = 0;
    for f in &err.fields {
        let field = clip(&f.field, FIELD_MAX);
        let description = clip(&f.message, DESCRIPTION_MAX);
        used += field.len() + description.len();
        if used > VIOLATIONS_BUDGET && !violations.is_empty() {
            break;
        }
        violations.push(FieldViolation::new(field, description));
    }
    // A single violation is usually the headline already (`Error::validation` writes it as
    // `field: message`); saying it twice reads as two problems.
    let repeats_headline = matches!(
        violations.as_slice(),
        [only] if message == format!("{}: {}", only.field, only.description)
    );
    if !repeats_headline {
        for v in &violations {
            message.push_str(&format!("\n{}: {}", v.field, v.description));
        }
    }
    let left_out = err.fields.len() - violations.len();
    if left_out > 0 {
        message.push_str(&format!(
            "\n... and {left_out} more field errors (REST lists them all in `errors`)"
        ));
    }
    Status::with_error_details(code, message, ErrorDetails::with_bad_request(violations))
}

/// `text` cut to at most `max` bytes on a character boundary, marked when cut.
fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max.saturating_sub(3);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::model::FieldError;

    fn violations(status: &Status) -> Vec<(String, String)> {
        status
            .get_error_details()
            .bad_request()
            .map(|b| {
                b.field_violations
                    .iter()
                    .map(|v| (v.field.clone(), v.description.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn field_errors_become_bad_request_details_and_lines() {
        let status = status_of(Error::validation(vec![
            FieldError::new("name", "must not be blank"),
            FieldError::new("groups[0].shares[1].path", "must not be empty"),
        ]));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            violations(&status),
            [
                ("name".to_string(), "must not be blank".to_string()),
                (
                    "groups[0].shares[1].path".to_string(),
                    "must not be empty".to_string()
                ),
            ]
        );
        assert_eq!(
            status.message(),
            "2 fields are invalid; see `errors`\nname: must not be blank\n\
             groups[0].shares[1].path: must not be empty"
        );
    }

    #[test]
    fn one_field_is_said_once() {
        let status = status_of(Error::invalid_field("name", "must not be blank"));
        assert_eq!(status.message(), "name: must not be blank");
        assert_eq!(violations(&status).len(), 1);
    }

    #[test]
    fn errors_without_fields_carry_no_details() {
        let status = status_of(Error::not_found("no cluster `x`"));
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), "no cluster `x`");
        assert!(status.details().is_empty());
    }

    #[test]
    fn thousands_of_violations_stay_within_a_header_list() {
        let fields = (0..5000)
            .map(|i| FieldError::new(format!("groups[0].shares[{i}].path"), "must not be empty"))
            .collect();
        let status = status_of(Error::validation(fields));
        let kept = violations(&status).len();
        assert!((10..5000).contains(&kept), "{kept}");
        assert!(
            status.message().ends_with(&format!(
                "and {} more field errors (REST lists them all in `errors`)",
                5000 - kept
            )),
            "{}",
            status.message()
        );
        let mut headers = http::HeaderMap::new();
        status
            .add_header(&mut headers)
            .expect("a status encodes as headers");
        let size: usize = headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 32)
            .sum();
        assert!(size < 12 * 1024, "{size}");

        let long = "é".repeat(10_000);
        let status = status_of(Error::invalid_field(
            "job_id",
            format!("`{long}` is not a job UUID"),
        ));
        assert!(status.message().len() <= HEADLINE_MAX + DESCRIPTION_MAX + 16);
        assert!(status.message().ends_with("..."), "{}", status.message());
    }
}
