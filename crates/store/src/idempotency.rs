//! `Idempotency-Key`s: a request's claim on its key, and the answer a repeat of it replays.
//! [`IdempotencyStore`] is part of every [`Store`](crate::Store); [`impl_idempotency_store!`]
//! expands it for each backend.

use async_trait::async_trait;

use ferry_core::error::Result;

/// Idempotency records older than this are forgotten.
pub(crate) const IDEMPOTENCY_TTL: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// Result of claiming an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq)]
pub enum IdempotencyClaim {
    /// First use of the key: run the request, then complete or release the claim.
    Claimed,
    /// Another request with this key has claimed it and not finished.
    InProgress,
    /// The request ran before; replay its answer if `request_hash` matches.
    Completed {
        request_hash: String,
        status: u16,
        body: String,
    },
}

#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims `key` within `scope` (the caller's token and the route). Records older than 24 h
    /// are forgotten.
    async fn idempotency_claim(
        &self,
        scope: &str,
        key: &str,
        request_hash: &str,
    ) -> Result<IdempotencyClaim>;
    async fn idempotency_complete(
        &self,
        scope: &str,
        key: &str,
        status: u16,
        body: &str,
    ) -> Result<()>;
    /// Drops a claim whose request failed, so the key can be used again.
    async fn idempotency_release(&self, scope: &str, key: &str) -> Result<()>;
}

/// Expands [`IdempotencyStore`] for one backend: `$ty` is the store.
macro_rules! impl_idempotency_store {
    ($ty:ty $(,)?) => {
        #[async_trait::async_trait]
        impl $crate::IdempotencyStore for $ty {
            async fn idempotency_claim(
                &self,
                scope: &str,
                key: &str,
                request_hash: &str,
            ) -> ::ferry_core::error::Result<$crate::IdempotencyClaim> {
                use $crate::db::{db_error, now};
                use $crate::rows::{IdempotencyRow, IDEMPOTENCY_PENDING};
                use $crate::idempotency::IDEMPOTENCY_TTL;
                let at = now();
                let mut tx = self.writer().begin().await.map_err(db_error)?;
                sqlx::query("DELETE FROM idempotency WHERE created_at < $1")
                    .bind(at - IDEMPOTENCY_TTL)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                // A concurrent release can delete the row between the insert and the select
                // (Postgres, several replicas); then the key is free again and we retry.
                for _ in 0..3 {
                    let inserted = sqlx::query(
                        "INSERT INTO idempotency (scope, key, request_hash, status, body, state, created_at) \
                         VALUES ($1, $2, $3, NULL, NULL, $4, $5) ON CONFLICT (scope, key) DO NOTHING",
                    )
                    .bind(scope)
                    .bind(key)
                    .bind(request_hash)
                    .bind(IDEMPOTENCY_PENDING)
                    .bind(at)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?
                    .rows_affected();
                    if inserted == 1 {
                        tx.commit().await.map_err(db_error)?;
                        return Ok($crate::IdempotencyClaim::Claimed);
                    }
                    let existing = sqlx::query_as::<_, IdempotencyRow>(
                        "SELECT request_hash, status, body, state FROM idempotency \
                         WHERE scope = $1 AND key = $2",
                    )
                    .bind(scope)
                    .bind(key)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_error)?;
                    if let Some(existing) = existing {
                        tx.commit().await.map_err(db_error)?;
                        return existing.into_claim();
                    }
                }
                tx.commit().await.map_err(db_error)?;
                Ok($crate::IdempotencyClaim::InProgress)
            }

            async fn idempotency_complete(
                &self,
                scope: &str,
                key: &str,
                status: u16,
                body: &str,
            ) -> ::ferry_core::error::Result<()> {
                use $crate::db::db_error;
                use $crate::rows::IDEMPOTENCY_DONE;
                sqlx::query(
                    "UPDATE idempotency SET status = $3, body = $4, state = $5 \
                     WHERE scope = $1 AND key = $2",
                )
                .bind(scope)
                .bind(key)
                .bind(i64::from(status))
                .bind(body)
                .bind(IDEMPOTENCY_DONE)
                .execute(self.writer())
                .await
                .map_err(db_error)?;
                Ok(())
            }

            async fn idempotency_release(
                &self,
                scope: &str,
                key: &str,
            ) -> ::ferry_core::error::Result<()> {
                sqlx::query("DELETE FROM idempotency WHERE scope = $1 AND key = $2")
                    .bind(scope)
                    .bind(key)
                    .execute(self.writer())
                    .await
                    .map_err($crate::db::db_error)?;
                Ok(())
            }
        }
    };
}
pub(crate) use impl_idempotency_store;
