//! API tokens: the tokens callers authenticate with, and the bootstrap token a server makes sure
//! of at start. Secrets are never stored, only their SHA-256. [`TokenStore`] is part of every
//! [`Store`](crate::Store); [`impl_token_store!`] expands it for each backend.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use ferry_core::error::Result;
use ferry_core::model::TokenInfo;

/// A token as stored: its info plus the SHA-256 hex of the secret.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRecord {
    pub info: TokenInfo,
    pub secret_hash: String,
}

#[async_trait]
pub trait TokenStore: Send + Sync {
    /// `Conflict` when the name is taken.
    async fn insert_token(&self, token: &TokenRecord) -> Result<()>;
    /// Makes sure a non-revoked, non-expiring admin token with this hash exists.
    async fn ensure_bootstrap_token(&self, token: &TokenRecord) -> Result<()>;
    /// The token with this secret hash, whatever its state (the caller checks expiry/revocation).
    /// Found tokens are cached until any token changes, here or (heard by notification) on
    /// another replica, so authentication does not read the database on every request.
    async fn token_by_hash(&self, secret_hash: &str) -> Result<Option<TokenInfo>>;
    /// Ordered by id (creation order), ids strictly after `after`.
    async fn list_tokens(&self, limit: u32, after: Option<Uuid>) -> Result<Vec<TokenInfo>>;
    /// Sets `revoked_at` (kept if already revoked). `NotFound` for an unknown id.
    async fn revoke_token(&self, id: Uuid, at: DateTime<Utc>) -> Result<TokenInfo>;
}

/// Expands [`TokenStore`] for one backend: `$ty` is the store, `$db` its database.
///
/// Every transaction that changes an existing token notifies the tokens channel, so other
/// replicas sharing the database empty their token caches when it commits. Adding a token needs
/// no notice: a cache holds only tokens it found.
macro_rules! impl_token_store {
    ($ty:ty, $db:ty $(,)?) => {
        #[async_trait::async_trait]
        impl $crate::TokenStore for $ty {
            async fn insert_token(
                &self,
                token: &$crate::TokenRecord,
            ) -> ::ferry_core::error::Result<()> {
                use $crate::db::{db_error, is_unique_violation, truncate};
                let info = &token.info;
                let result = sqlx::query(
                    "INSERT INTO tokens (id, name, role, secret_hash, created_at, expires_at, revoked_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(info.id.to_string())
                .bind(&info.name)
                .bind(info.role.as_str())
                .bind(&token.secret_hash)
                .bind(truncate(info.created_at))
                .bind(info.expires_at.map(truncate))
                .bind(info.revoked_at.map(truncate))
                .execute(self.writer())
                .await;
                match result {
                    Ok(_) => Ok(()),
                    Err(e) if is_unique_violation(&e) => {
                        // Which constraint failed only steers the message; none of the
                        // database's text reaches the client.
                        let on_secret = e
                            .as_database_error()
                            .is_some_and(|db| {
                                db.constraint().unwrap_or(db.message()).contains("secret_hash")
                            });
                        Err(::ferry_core::error::Error::conflict(if on_secret {
                            "a token with this secret already exists".to_owned()
                        } else {
                            format!("a token named `{}` already exists", info.name)
                        }))
                    }
                    Err(e) => Err(db_error(e)),
                }
            }

            async fn ensure_bootstrap_token(
                &self,
                token: &$crate::TokenRecord,
            ) -> ::ferry_core::error::Result<()> {
                use $crate::db::{db_error, truncate};
                let admin = ::ferry_core::model::Role::Admin.as_str();
                let mut tx = self.writer().begin().await.map_err(db_error)?;
                let revived = sqlx::query(
                    "UPDATE tokens SET role = $2, expires_at = NULL, revoked_at = NULL \
                     WHERE secret_hash = $1",
                )
                .bind(&token.secret_hash)
                .bind(admin)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?
                .rows_affected();
                if revived == 0 {
                    // The upsert on the name also settles two replicas bootstrapping at once.
                    sqlx::query(
                        "INSERT INTO tokens (id, name, role, secret_hash, created_at, expires_at, revoked_at) \
                         VALUES ($1, $2, $3, $4, $5, NULL, NULL) \
                         ON CONFLICT (name) DO UPDATE SET secret_hash = excluded.secret_hash, \
                         role = excluded.role, expires_at = NULL, revoked_at = NULL",
                    )
                    .bind(token.info.id.to_string())
                    .bind(&token.info.name)
                    .bind(admin)
                    .bind(&token.secret_hash)
                    .bind(truncate(token.info.created_at))
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                }
                Self::notify_at_commit(&mut tx, $crate::channels::TOKENS)
                    .await
                    .map_err(db_error)?;
                let _forget = self.tokens.forget_after();
                tx.commit().await.map_err(db_error)?;
                Ok(())
            }

            async fn token_by_hash(
                &self,
                secret_hash: &str,
            ) -> ::ferry_core::error::Result<Option<::ferry_core::model::TokenInfo>> {
                use $crate::db::db_error;
                use $crate::rows::TokenRow;
                let generation = match self.tokens.get(secret_hash) {
                    Ok(token) => return Ok(Some(token)),
                    Err(generation) => generation,
                };
                let token = sqlx::query_as::<_, TokenRow>(
                    "SELECT id, name, role, created_at, expires_at, revoked_at FROM tokens \
                     WHERE secret_hash = $1",
                )
                .bind(secret_hash)
                .fetch_optional(self.reader())
                .await
                .map_err(db_error)?
                .map(TokenRow::into_model)
                .transpose()?;
                if let Some(token) = &token {
                    self.tokens.keep(generation, secret_hash, token.clone());
                }
                Ok(token)
            }

            async fn list_tokens(
                &self,
                limit: u32,
                after: Option<uuid::Uuid>,
            ) -> ::ferry_core::error::Result<Vec<::ferry_core::model::TokenInfo>> {
                use $crate::db::db_error;
                use $crate::rows::TokenRow;
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "SELECT id, name, role, created_at, expires_at, revoked_at FROM tokens",
                );
                if let Some(after) = after {
                    qb.push(" WHERE id > ").push_bind(after.to_string());
                }
                qb.push(" ORDER BY id LIMIT ").push_bind(i64::from(limit));
                qb.build_query_as::<TokenRow>()
                    .fetch_all(self.reader())
                    .await
                    .map_err(db_error)?
                    .into_iter()
                    .map(TokenRow::into_model)
                    .collect()
            }

            async fn revoke_token(
                &self,
                id: uuid::Uuid,
                at: chrono::DateTime<chrono::Utc>,
            ) -> ::ferry_core::error::Result<::ferry_core::model::TokenInfo> {
                use $crate::db::{db_error, truncate};
                use $crate::rows::TokenRow;
                let mut tx = self.writer().begin().await.map_err(db_error)?;
                sqlx::query("UPDATE tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1")
                    .bind(id.to_string())
                    .bind(truncate(at))
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                let token = sqlx::query_as::<_, TokenRow>(
                    "SELECT id, name, role, created_at, expires_at, revoked_at FROM tokens \
                     WHERE id = $1",
                )
                .bind(id.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?
                .ok_or_else(|| ::ferry_core::error::Error::not_found(format!("no token `{id}`")))?;
                Self::notify_at_commit(&mut tx, $crate::channels::TOKENS)
                    .await
                    .map_err(db_error)?;
                let _forget = self.tokens.forget_after();
                tx.commit().await.map_err(db_error)?;
                token.into_model()
            }
        }
    };
}
pub(crate) use impl_token_store;
