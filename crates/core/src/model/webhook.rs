//! Webhooks: receivers of job events, posted in batches and signed with a shared secret.
//!
//! Receivers are `http://` or `https://`; an HTTPS receiver's certificate is checked when each
//! delivery is made (against the public web roots, or the CA the server's `webhook_ca` pins), so
//! one that does not verify shows as a failed delivery with the reason in `last_error`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{FieldError, JobEvent};

/// Longest webhook URL accepted.
pub const MAX_WEBHOOK_URL_LEN: usize = 2048;
/// Shortest secret a caller may choose: an HMAC key much shorter than this is guessable.
pub const MIN_WEBHOOK_SECRET_LEN: usize = 16;
/// Longest secret a caller may choose.
pub const MAX_WEBHOOK_SECRET_LEN: usize = 256;

/// Body of `POST /v1/webhooks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// Where events are posted: `http://` or `https://host[:port]/path`. An HTTPS receiver's
    /// certificate must verify against the public web roots, or the server's `webhook_ca`.
    // Printable ASCII without `#` and `@` (no fragment, no user info), the host not empty.
    #[schema(
        min_length = 8,
        max_length = 2048,
        pattern = r#"^[Hh][Tt][Tt][Pp][Ss]?://[!-"$-.0-?A-~][!-"$-?A-~]*$"#
    )]
    pub url: String,
    /// Only this job's events; absent means every job's.
    #[serde(default)]
    pub job_id: Option<Uuid>,
    /// The HMAC-SHA256 key that signs each delivery (16 to 256 characters). Absent: the server
    /// generates one and returns it once.
    #[serde(default)]
    #[schema(
        min_length = 16,
        max_length = 256,
        pattern = "^[^\\u0000-\\u0020\\u007F-\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]*$"
    )]
    pub secret: Option<String>,
}

impl NewWebhook {
    /// Everything wrong with the request that needs no store to know.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if let Err(message) = check_webhook_url(&self.url) {
            errors.push(FieldError::new("url", message));
        }
        if let Some(secret) = &self.secret {
            let len = secret.chars().count();
            if !(MIN_WEBHOOK_SECRET_LEN..=MAX_WEBHOOK_SECRET_LEN).contains(&len) {
                errors.push(FieldError::new(
                    "secret",
                    format!(
                        "must be {MIN_WEBHOOK_SECRET_LEN} to {MAX_WEBHOOK_SECRET_LEN} characters"
                    ),
                ));
            } else if secret.chars().any(|c| c.is_control() || c.is_whitespace()) {
                errors.push(FieldError::new(
                    "secret",
                    "must not contain whitespace or control characters",
                ));
            }
        }
        errors
    }
}

/// Checks a receiver URL: `http://` or `https://`, a host, a parseable URI, and nothing an HTTP
/// client would silently drop or misread (credentials, fragments).
pub fn check_webhook_url(url: &str) -> Result<(), String> {
    if url.len() > MAX_WEBHOOK_URL_LEN {
        return Err(format!("must be at most {MAX_WEBHOOK_URL_LEN} bytes"));
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("must not contain whitespace or control characters".into());
    }
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err("must start with http:// or https://".into());
    }
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("is not a valid URL: {e}"))?;
    let Some(authority) = uri.authority() else {
        return Err("must name a host, e.g. http://hooks.example:8080/ferry".into());
    };
    if authority.as_str().contains('@') {
        return Err("must not carry credentials; the signature authenticates deliveries".into());
    }
    if authority.host().is_empty() {
        return Err("must name a host, e.g. http://hooks.example:8080/ferry".into());
    }
    if url.contains('#') {
        return Err("must not have a fragment".into());
    }
    Ok(())
}

/// A registered webhook; the secret signs its deliveries, so it is kept as given.
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    pub id: Uuid,
    pub url: String,
    pub secret: String,
    pub job_id: Option<Uuid>,
    /// The last event sequence delivered.
    pub delivered: i64,
    pub failures: u32,
    pub next_attempt: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WebhookDelivery {
    pub delivered: i64,
    pub failures: u32,
    pub next_attempt: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// A webhook as listed: everything but its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WebhookInfo {
    pub id: Uuid,
    pub url: String,
    /// Only this job's events; absent means every job's.
    pub job_id: Option<Uuid>,
    /// Sequence number of the last event the receiver acknowledged; the next delivery starts
    /// after it. A new webhook starts at the newest event when it was created.
    pub delivered: i64,
    /// Failed deliveries in a row since the last success.
    pub failures: u32,
    /// When the next delivery may be tried after failures; absent when none is pending.
    pub next_attempt: Option<DateTime<Utc>>,
    /// Why the last delivery failed.
    pub last_error: Option<String>,
    /// Name of the token that created it.
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// Answer to a webhook creation: the secret is shown here once and never again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub info: WebhookInfo,
    /// The HMAC key of `X-Ferry-Signature`. Absent when an `Idempotency-Key` replay answers.
    pub secret: Option<String>,
}

/// What each delivery posts: events in sequence order, oldest first, at most 100.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WebhookPayload {
    pub events: Vec<JobEvent>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        for ok in [
            "http://127.0.0.1:9000/hook",
            "http://hooks.example/ferry?team=storage",
            "HTTP://hooks.example",
            "http://[::1]:8080/",
            "https://hooks.example/ferry",
            "HTTPS://hooks.example:8443",
        ] {
            assert_eq!(check_webhook_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "ftp://hooks.example/",
            "hooks.example/ferry",
            "http://",
            "http:///path",
            "http://user:pw@hooks.example/",
            "http://hooks.example/a b",
            "http://hooks.example/#frag",
            "https://",
            "https://user@hooks.example/",
        ] {
            assert!(check_webhook_url(bad).is_err(), "{bad}");
        }
        let long = format!("http://h/{}", "a".repeat(MAX_WEBHOOK_URL_LEN));
        assert!(check_webhook_url(&long).is_err());
    }

    #[test]
    fn chosen_secrets_must_be_long_enough() {
        let new = |secret: &str| NewWebhook {
            url: "http://h/".into(),
            job_id: None,
            secret: Some(secret.into()),
        };
        assert_eq!(new("short").validate().len(), 1);
        assert_eq!(new("a secret with spaces").validate().len(), 1);
        assert!(new("0123456789abcdef").validate().is_empty());
    }
}
