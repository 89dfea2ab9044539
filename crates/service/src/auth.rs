//! Bearer API tokens (and join tokens and agent secrets): random secrets shown once, stored only
//! as SHA-256 hashes.
//!
//! A plain hash (not a password hash) is right here: the secrets are 256 random bits, so there is
//! nothing to brute-force, and every request pays for the check.

use chrono::{DateTime, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use ferry_core::model::{Role, TokenInfo};

/// Prefix of every secret Ferry issues, so leaked tokens are easy to recognise in scans.
pub const TOKEN_PREFIX: &str = "fy_";

/// Name of the token `FERRY_BOOTSTRAP_TOKEN` creates.
pub const BOOTSTRAP_TOKEN_NAME: &str = "bootstrap";

/// A fresh random API token secret: the prefix and 32 random bytes in hex.
pub fn generate_secret() -> String {
    generate_secret_with(TOKEN_PREFIX)
}

/// A fresh random secret with another prefix (join tokens, agent secrets).
pub fn generate_secret_with(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

/// The hash under which a secret is stored and looked up.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Who is calling: the token's identity and role, and where the call came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    pub token_id: Uuid,
    pub name: String,
    pub role: Role,
    /// Peer address, for the audit log.
    pub source: Option<String>,
}

impl Caller {
    pub fn new(token: &TokenInfo, source: Option<String>) -> Self {
        Self {
            token_id: token.id,
            name: token.name.clone(),
            role: token.role,
            source,
        }
    }

    /// A caller for work done from the command line, straight on the store.
    pub fn local(role: Role) -> Self {
        Self {
            token_id: Uuid::nil(),
            name: "local".into(),
            role,
            source: Some("cli".into()),
        }
    }
}

/// Why a presented token is not usable right now, if it is not.
pub fn token_problem(token: &TokenInfo, now: DateTime<Utc>) -> Option<String> {
    if let Some(at) = token.revoked_at {
        return Some(format!(
            "token `{}` was revoked at {}",
            token.name,
            at.to_rfc3339()
        ));
    }
    if let Some(at) = token.expires_at
        && at <= now
    {
        return Some(format!(
            "token `{}` expired at {}",
            token.name,
            at.to_rfc3339()
        ));
    }
    None
}

/// The secret from an `Authorization` header value (`Bearer <secret>`, scheme case-insensitive).
pub fn parse_bearer(header: &str) -> Option<&str> {
    let (scheme, rest) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let secret = rest.trim();
    (!secret.is_empty()).then_some(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_unique_prefixed_and_hash_stably() {
        let a = generate_secret();
        let b = generate_secret();
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 64);
        assert_eq!(hash_secret(&a), hash_secret(&a));
        assert_ne!(hash_secret(&a), hash_secret(&b));
        assert_ne!(hash_secret(&a), a, "never store the secret itself");
    }

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(parse_bearer("Bearer abc"), Some("abc"));
        assert_eq!(parse_bearer("bearer  abc "), Some("abc"));
        assert_eq!(parse_bearer("Basic abc"), None);
        assert_eq!(parse_bearer("Bearer "), None);
        assert_eq!(parse_bearer("abc"), None);
    }

    #[test]
    fn revoked_and_expired_tokens_are_refused() {
        let now = Utc::now();
        let mut t = TokenInfo {
            id: Uuid::now_v7(),
            name: "ci".into(),
            role: Role::Viewer,
            created_at: now,
            expires_at: None,
            revoked_at: None,
        };
        assert_eq!(token_problem(&t, now), None);
        t.expires_at = Some(now - chrono::Duration::seconds(1));
        assert!(token_problem(&t, now).unwrap().contains("expired"));
        t.expires_at = None;
        t.revoked_at = Some(now);
        assert!(token_problem(&t, now).unwrap().contains("revoked"));
    }
}
