//! Validations: each cluster's numbered runs of the configuration rules, from gathering facts to
//! their findings. [`ValidationStore`] is part of every [`Store`](crate::Store);
//! [`impl_validation_store!`] expands it for each backend.

use async_trait::async_trait;
use uuid::Uuid;

use ferry_core::error::Result;
use ferry_core::model::Validation;

#[async_trait]
pub trait ValidationStore: Send + Sync {
    /// Stores a new validation as its cluster's next version and answers it as stored (version
    /// and cluster name set). `NotFound` when the cluster is gone.
    async fn create_validation(&self, validation: &Validation) -> Result<Validation>;
    /// `NotFound` for an unknown id.
    async fn get_validation(&self, id: Uuid) -> Result<Validation>;
    /// The cluster's validations, newest first; with `before`, only versions older than it.
    async fn list_validations(
        &self,
        cluster_id: Uuid,
        limit: u32,
        before: Option<i64>,
    ) -> Result<Vec<Validation>>;
    /// Records how a gathering validation ended (its state, facts, findings, error); false when
    /// it had ended already, and then nothing changes.
    async fn finish_validation(&self, validation: &Validation) -> Result<bool>;
}

/// Expands [`ValidationStore`] for one backend: `$ty` is the store. A new validation is numbered
/// under its cluster's lock, taken with
/// [`impl_inventory_store!`](crate::inventory::impl_inventory_store)'s `lock_cluster`.
macro_rules! impl_validation_store {
    ($ty:ty $(,)?) => {
        #[async_trait::async_trait]
        impl $crate::ValidationStore for $ty {
            async fn create_validation(
                &self,
                validation: &::ferry_core::model::Validation,
            ) -> ::ferry_core::error::Result<::ferry_core::model::Validation> {
                use $crate::db::{db_error, to_json, truncate};
                use $crate::rows::{select_validation, ValidationRow};
                let id = validation.id.to_string();
                let mut tx = self.writer().begin().await.map_err(db_error)?;
                // Numbering under the cluster's lock: two validations never share a version.
                Self::lock_cluster(&mut tx, validation.cluster_id).await?;
                sqlx::query(
                    "INSERT INTO validations (id, cluster_id, version, state, task_id, thresholds, \
                     facts, findings, overall, error, created_by, created_at, completed_at) \
                     SELECT $1, $2, COALESCE(MAX(version), 0) + 1, $3, $4, $5, $6, $7, $8, $9, \
                     $10, $11, $12 FROM validations WHERE cluster_id = $2",
                )
                .bind(&id)
                .bind(validation.cluster_id.to_string())
                .bind(validation.state.as_str())
                .bind(validation.task_id.map(|t| t.to_string()))
                .bind(to_json(&validation.thresholds))
                .bind(validation.facts.as_ref().map(to_json))
                .bind(to_json(&validation.findings))
                .bind(validation.overall.map(|o| o.as_str()))
                .bind(&validation.error)
                .bind(&validation.created_by)
                .bind(truncate(validation.created_at))
                .bind(validation.completed_at.map(truncate))
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
                let stored = sqlx::query_as::<_, ValidationRow>(select_validation!("WHERE v.id = $1"))
                    .bind(&id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_error)?
                    .into_model()?;
                tx.commit().await.map_err(db_error)?;
                Ok(stored)
            }

            async fn get_validation(
                &self,
                id: uuid::Uuid,
            ) -> ::ferry_core::error::Result<::ferry_core::model::Validation> {
                use $crate::db::db_error;
                use $crate::rows::{select_validation, ValidationRow};
                sqlx::query_as::<_, ValidationRow>(select_validation!("WHERE v.id = $1"))
                    .bind(id.to_string())
                    .fetch_optional(self.reader())
                    .await
                    .map_err(db_error)?
                    .ok_or_else(|| ::ferry_core::error::Error::not_found(format!("no validation `{id}`")))?
                    .into_model()
            }

            async fn list_validations(
                &self,
                cluster_id: uuid::Uuid,
                limit: u32,
                before: Option<i64>,
            ) -> ::ferry_core::error::Result<Vec<::ferry_core::model::Validation>> {
                use $crate::db::db_error;
                use $crate::rows::{select_validation, ValidationRow};
                sqlx::query_as::<_, ValidationRow>(select_validation!(
                    "WHERE v.cluster_id = $1 AND v.version < $2 ORDER BY v.version DESC LIMIT $3"
                ))
                .bind(cluster_id.to_string())
                .bind(before.unwrap_or(i64::MAX))
                .bind(i64::from(limit))
                .fetch_all(self.reader())
                .await
                .map_err(db_error)?
                .into_iter()
                .map(ValidationRow::into_model)
                .collect()
            }

            async fn finish_validation(
                &self,
                validation: &::ferry_core::model::Validation,
            ) -> ::ferry_core::error::Result<bool> {
                use $crate::db::{db_error, to_json, truncate};
                let changed = sqlx::query(
                    "UPDATE validations SET state = $2, facts = $3, findings = $4, overall = $5, \
                     error = $6, completed_at = $7 WHERE id = $1 AND state = 'gathering'",
                )
                .bind(validation.id.to_string())
                .bind(validation.state.as_str())
                .bind(validation.facts.as_ref().map(to_json))
                .bind(to_json(&validation.findings))
                .bind(validation.overall.map(|o| o.as_str()))
                .bind(&validation.error)
                .bind(validation.completed_at.map(truncate))
                .execute(self.writer())
                .await
                .map_err(db_error)?
                .rows_affected();
                Ok(changed == 1)
            }
        }
    };
}
pub(crate) use impl_validation_store;
