//! Webhooks: receivers of job events, posted in batches and signed with a shared secret.
//!
//! Only plain `http://` receivers are accepted. The server carries no TLS client for outbound
//! calls (its REST API is plain HTTP behind the operator's proxy too), so an `https://` URL is
//! refused when the webhook is created rather than failing on every delivery later; point the
//! webhook at a local forwarder or a TLS-terminating proxy instead.

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
    /// Where events are posted: `http://host[:port]/path`. `https://` is refused (see the
    /// operation's description).
    pub url: String,
    /// Only this job's events; absent means every job's.
    #[serde(default)]
    pub job_id: Option<Uuid>,
    /// The HMAC-SHA256 key that signs each delivery (16 to 256 characters). Absent: the server
    /// generates one and returns it once.
    #[serde(default)]
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

/// Checks a receiver URL: `http://`, a host, a parseable URI, and nothing a plain HTTP client
/// would silently drop or misread (credentials, fragments).
pub fn check_webhook_url(url: &str) -> Result<(), String> {
    if url.len() > MAX_WEBHOOK_URL_LEN {
        return Err(format!("must be at most {MAX_WEBHOOK_URL_LEN} bytes"));
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("must not contain whitespace or control characters".into());
    }
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return Err(
            "https:// is not supported: the server has no outbound TLS client; use an http:// \
             receiver (e.g. a local forwarder or a TLS-terminating proxy)"
                .into(),
        );
    }
    if !lower.starts_with("http://") {
        return Err("must start with http://".into());
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
        ] {
            assert!(check_webhook_url(bad).is_err(), "{bad}");
        }
        let https = check_webhook_url("https://hooks.example/").unwrap_err();
        assert!(https.contains("https:// is not supported"), "{https}");
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
