//! Webhooks: the subscriptions to job events, and how far each one's delivery has got.
//! [`WebhookStore`] is part of every [`Store`](crate::Store); [`impl_webhook_store!`] expands it
//! for each backend.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use ferry_core::error::Result;
use ferry_core::model::{Webhook, WebhookDelivery};

#[async_trait]
pub trait WebhookStore: Send + Sync {
    async fn create_webhook(&self, hook: &Webhook) -> Result<()>;
    /// Oldest first.
    async fn list_webhooks(&self) -> Result<Vec<Webhook>>;
    /// False when there was no such webhook.
    async fn delete_webhook(&self, id: Uuid) -> Result<bool>;
    /// Takes the next delivery of webhook `id` until `until`, if its mark is still `delivered`
    /// and nobody holds it past `now`: false when another replica delivers it (or has moved its
    /// mark) meanwhile, so one replica posts each batch.
    async fn claim_webhook_delivery(
        &self,
        id: Uuid,
        delivered: i64,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool>;
    /// Records a delivery attempt: `delivered` is the last event sequence it has acknowledged.
    /// A mark never moves back: a record older than the stored mark is dropped.
    async fn record_webhook_delivery(&self, id: Uuid, delivery: &WebhookDelivery) -> Result<()>;
}

/// Expands [`WebhookStore`] for one backend: `$ty` is the store.
macro_rules! impl_webhook_store {
    ($ty:ty $(,)?) => {
        #[async_trait::async_trait]
        impl $crate::WebhookStore for $ty {
            async fn create_webhook(
                &self,
                hook: &ferry_core::model::Webhook,
            ) -> ::ferry_core::error::Result<()> {
                use $crate::db::{db_error, truncate};
                sqlx::query(
                    "INSERT INTO webhooks (id, url, secret, job_id, delivered, failures, \
                     next_attempt, last_error, created_by, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(hook.id.to_string())
                .bind(&hook.url)
                .bind(&hook.secret)
                .bind(hook.job_id.map(|j| j.to_string()))
                .bind(hook.delivered)
                .bind(i64::from(hook.failures))
                .bind(hook.next_attempt.map(truncate))
                .bind(&hook.last_error)
                .bind(&hook.created_by)
                .bind(truncate(hook.created_at))
                .execute(self.writer())
                .await
                .map_err(db_error)?;
                Ok(())
            }

            async fn list_webhooks(
                &self,
            ) -> ::ferry_core::error::Result<Vec<ferry_core::model::Webhook>> {
                use $crate::db::db_error;
                use $crate::rows::WebhookRow;
                sqlx::query_as::<_, WebhookRow>(
                    "SELECT id, url, secret, job_id, delivered, failures, next_attempt, \
                     last_error, created_by, created_at FROM webhooks ORDER BY id",
                )
                .fetch_all(self.reader())
                .await
                .map_err(db_error)?
                .into_iter()
                .map(WebhookRow::into_model)
                .collect()
            }

            async fn delete_webhook(&self, id: uuid::Uuid) -> ::ferry_core::error::Result<bool> {
                use $crate::db::db_error;
                Ok(sqlx::query("DELETE FROM webhooks WHERE id = $1")
                    .bind(id.to_string())
                    .execute(self.writer())
                    .await
                    .map_err(db_error)?
                    .rows_affected()
                    > 0)
            }

            async fn claim_webhook_delivery(
                &self,
                id: uuid::Uuid,
                delivered: i64,
                now: chrono::DateTime<chrono::Utc>,
                until: chrono::DateTime<chrono::Utc>,
            ) -> ::ferry_core::error::Result<bool> {
                use $crate::db::{db_error, truncate};
                let claimed = sqlx::query(
                    "UPDATE webhooks SET next_attempt = $3 WHERE id = $1 AND delivered = $2 \
                     AND (next_attempt IS NULL OR next_attempt <= $4)",
                )
                .bind(id.to_string())
                .bind(delivered)
                .bind(truncate(until))
                .bind(truncate(now))
                .execute(self.writer())
                .await
                .map_err(db_error)?
                .rows_affected();
                Ok(claimed > 0)
            }

            async fn record_webhook_delivery(
                &self,
                id: uuid::Uuid,
                delivery: &ferry_core::model::WebhookDelivery,
            ) -> ::ferry_core::error::Result<()> {
                use $crate::db::{db_error, truncate};
                sqlx::query(
                    "UPDATE webhooks SET delivered = $2, failures = $3, next_attempt = $4, \
                     last_error = $5 WHERE id = $1 AND delivered <= $2",
                )
                .bind(id.to_string())
                .bind(delivery.delivered)
                .bind(i64::from(delivery.failures))
                .bind(delivery.next_attempt.map(truncate))
                .bind(&delivery.last_error)
                .execute(self.writer())
                .await
                .map_err(db_error)?;
                Ok(())
            }
        }
    };
}
pub(crate) use impl_webhook_store;
