//! Discoveries: a cluster's inventory read by one of its agents and imported as a snapshot, and
//! the schedule of each cluster's periodic discovery. [`DiscoveryStore`] is part of every
//! [`Store`](crate::Store); [`impl_discovery_store!`] expands it for each backend.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::NewTask;
use ferry_core::error::Result;
use ferry_core::model::{Discovery, Task};

#[async_trait]
pub trait DiscoveryStore: Send + Sync {
    /// Stores a new discovery and the `read_inventory` task that runs it, in one transaction, so
    /// there is never a task whose result no discovery waits for. `NotFound` when the cluster
    /// is gone.
    async fn create_discovery(&self, discovery: &Discovery, task: &NewTask<'_>) -> Result<Task>;
    /// `NotFound` for an unknown id.
    async fn get_discovery(&self, id: Uuid) -> Result<Discovery>;
    /// The discovery a task runs, if it runs one.
    async fn discovery_of_task(&self, task_id: Uuid) -> Result<Option<Discovery>>;
    /// The cluster's discoveries, newest first; with `before`, only those created before it.
    async fn list_discoveries(
        &self,
        cluster_id: Uuid,
        limit: u32,
        before: Option<Uuid>,
    ) -> Result<Vec<Discovery>>;
    /// Discoveries still running whose task has ended (or is gone): what a crash between the
    /// task's result and its import left behind.
    async fn unsettled_discoveries(&self, limit: u32) -> Result<Vec<Discovery>>;
    /// Whether a discovery of the cluster is still running.
    async fn discovery_running(&self, cluster_id: Uuid) -> Result<bool>;
    /// Records how a running discovery ended; false when it had ended already, and then nothing
    /// changes.
    async fn finish_discovery(&self, discovery: &Discovery) -> Result<bool>;
    /// The clusters whose periodic discovery is due at `now`, or was never scheduled, with their
    /// own interval in seconds (`None`: the server's).
    async fn clusters_due_for_discovery(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(Uuid, Option<u64>)>>;
    /// Claims the cluster's periodic discovery: true (and the next one set to `next`) when it
    /// was due at `now`. A cluster never scheduled is scheduled for `next` and not claimed, so a
    /// server that starts does not discover everything at once. With several replicas exactly
    /// one claim of a due discovery succeeds.
    async fn claim_discovery(
        &self,
        cluster_id: Uuid,
        now: DateTime<Utc>,
        next: DateTime<Utc>,
    ) -> Result<bool>;
}

/// Expands [`DiscoveryStore`] for one backend (`$ty` the store, `$db` its database). The task is
/// written with [`impl_agent_store!`](crate::agents::impl_agent_store)'s `insert_task`, in the
/// same transaction as the discovery.
macro_rules! impl_discovery_store {
    ($ty:ty, $db:ty $(,)?) => {
        #[async_trait::async_trait]
        impl $crate::DiscoveryStore for $ty {
            async fn create_discovery(
                &self,
                discovery: &::ferry_core::model::Discovery,
                task: &$crate::NewTask<'_>,
            ) -> ::ferry_core::error::Result<::ferry_core::model::Task> {
                use $crate::db::{db_error, is_foreign_key_violation, truncate};
                let mut tx = self.writer().begin().await.map_err(db_error)?;
                let task = Self::insert_task(&mut tx, task).await?;
                sqlx::query(
                    "INSERT INTO discoveries (id, cluster_id, task_id, state, trigger_kind, \
                     created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(discovery.id.to_string())
                .bind(discovery.cluster_id.to_string())
                .bind(task.id.to_string())
                .bind(discovery.state.as_str())
                .bind(discovery.trigger.as_str())
                .bind(&discovery.created_by)
                .bind(truncate(discovery.created_at))
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    if is_foreign_key_violation(&e) {
                        ::ferry_core::error::Error::not_found(format!(
                            "no cluster `{}`",
                            discovery.cluster
                        ))
                    } else {
                        db_error(e)
                    }
                })?;
                tx.commit().await.map_err(db_error)?;
                Ok(task)
            }

            async fn get_discovery(
                &self,
                id: uuid::Uuid,
            ) -> ::ferry_core::error::Result<::ferry_core::model::Discovery> {
                use $crate::db::db_error;
                use $crate::rows::{select_discovery, DiscoveryRow};
                sqlx::query_as::<_, DiscoveryRow>(select_discovery!("WHERE d.id = $1"))
                    .bind(id.to_string())
                    .fetch_optional(self.reader())
                    .await
                    .map_err(db_error)?
                    .ok_or_else(|| {
                        ::ferry_core::error::Error::not_found(format!("no discovery `{id}`"))
                    })?
                    .into_model()
            }

            async fn discovery_of_task(
                &self,
                task_id: uuid::Uuid,
            ) -> ::ferry_core::error::Result<Option<::ferry_core::model::Discovery>> {
                use $crate::db::db_error;
                use $crate::rows::{select_discovery, DiscoveryRow};
                sqlx::query_as::<_, DiscoveryRow>(select_discovery!("WHERE d.task_id = $1"))
                    .bind(task_id.to_string())
                    .fetch_optional(self.reader())
                    .await
                    .map_err(db_error)?
                    .map(DiscoveryRow::into_model)
                    .transpose()
            }

            async fn list_discoveries(
                &self,
                cluster_id: uuid::Uuid,
                limit: u32,
                before: Option<uuid::Uuid>,
            ) -> ::ferry_core::error::Result<Vec<::ferry_core::model::Discovery>> {
                use $crate::db::db_error;
                use $crate::rows::{select_discovery, DiscoveryRow};
                // Ids are UUIDv7: their order is the order they were made in.
                let mut qb = sqlx::QueryBuilder::<$db>::new(select_discovery!());
                qb.push("WHERE d.cluster_id = ").push_bind(cluster_id.to_string());
                if let Some(before) = before {
                    qb.push(" AND d.id < ").push_bind(before.to_string());
                }
                qb.push(" ORDER BY d.id DESC LIMIT ").push_bind(i64::from(limit));
                qb.build_query_as::<DiscoveryRow>()
                    .fetch_all(self.reader())
                    .await
                    .map_err(db_error)?
                    .into_iter()
                    .map(DiscoveryRow::into_model)
                    .collect()
            }

            async fn unsettled_discoveries(
                &self,
                limit: u32,
            ) -> ::ferry_core::error::Result<Vec<::ferry_core::model::Discovery>> {
                use $crate::db::db_error;
                use $crate::rows::{select_discovery, DiscoveryRow};
                sqlx::query_as::<_, DiscoveryRow>(select_discovery!(
                    "WHERE d.state = 'running' AND NOT EXISTS (SELECT 1 FROM tasks t \
                     WHERE t.id = d.task_id AND t.state IN ('pending', 'assigned', 'running')) \
                     ORDER BY d.id LIMIT $1"
                ))
                .bind(i64::from(limit))
                .fetch_all(self.reader())
                .await
                .map_err(db_error)?
                .into_iter()
                .map(DiscoveryRow::into_model)
                .collect()
            }

            async fn discovery_running(
                &self,
                cluster_id: uuid::Uuid,
            ) -> ::ferry_core::error::Result<bool> {
                use $crate::db::db_error;
                let running: Option<(String,)> = sqlx::query_as(
                    "SELECT id FROM discoveries WHERE cluster_id = $1 AND state = 'running' \
                     LIMIT 1",
                )
                .bind(cluster_id.to_string())
                .fetch_optional(self.reader())
                .await
                .map_err(db_error)?;
                Ok(running.is_some())
            }

            async fn finish_discovery(
                &self,
                discovery: &::ferry_core::model::Discovery,
            ) -> ::ferry_core::error::Result<bool> {
                use $crate::db::{db_error, to_json, truncate};
                let changed = sqlx::query(
                    "UPDATE discoveries SET state = $2, snapshot = $3, created = $4, \
                     previous_snapshot = $5, summary = $6, error = $7, completed_at = $8 \
                     WHERE id = $1 AND state = 'running'",
                )
                .bind(discovery.id.to_string())
                .bind(discovery.state.as_str())
                .bind(discovery.snapshot)
                .bind(discovery.created)
                .bind(discovery.previous_snapshot)
                .bind(discovery.summary.as_ref().map(to_json))
                .bind(&discovery.error)
                .bind(discovery.completed_at.map(truncate))
                .execute(self.writer())
                .await
                .map_err(db_error)?
                .rows_affected();
                Ok(changed == 1)
            }

            async fn clusters_due_for_discovery(
                &self,
                now: chrono::DateTime<chrono::Utc>,
            ) -> ::ferry_core::error::Result<Vec<(uuid::Uuid, Option<u64>)>> {
                use $crate::db::{corrupt, db_error, parse_uuid, truncate};
                let rows: Vec<(String, Option<i64>)> = sqlx::query_as(
                    "SELECT id, discovery_interval_seconds FROM clusters \
                     WHERE next_discovery_at IS NULL OR next_discovery_at <= $1 ORDER BY id",
                )
                .bind(truncate(now))
                .fetch_all(self.reader())
                .await
                .map_err(db_error)?;
                rows.into_iter()
                    .map(|(id, interval)| {
                        let interval = interval
                            .map(|s| {
                                u64::try_from(s)
                                    .map_err(|_| corrupt("discovery interval", &s.to_string()))
                            })
                            .transpose()?;
                        Ok((parse_uuid(&id)?, interval))
                    })
                    .collect()
            }

            async fn claim_discovery(
                &self,
                cluster_id: uuid::Uuid,
                now: chrono::DateTime<chrono::Utc>,
                next: chrono::DateTime<chrono::Utc>,
            ) -> ::ferry_core::error::Result<bool> {
                use $crate::db::{db_error, truncate};
                let id = cluster_id.to_string();
                let (now, next) = (truncate(now), truncate(next));
                let claimed = sqlx::query(
                    "UPDATE clusters SET next_discovery_at = $2 \
                     WHERE id = $1 AND next_discovery_at <= $3",
                )
                .bind(&id)
                .bind(next)
                .bind(now)
                .execute(self.writer())
                .await
                .map_err(db_error)?
                .rows_affected();
                if claimed == 1 {
                    return Ok(true);
                }
                sqlx::query(
                    "UPDATE clusters SET next_discovery_at = $2 \
                     WHERE id = $1 AND next_discovery_at IS NULL",
                )
                .bind(&id)
                .bind(next)
                .execute(self.writer())
                .await
                .map_err(db_error)?;
                Ok(false)
            }
        }
    };
}
pub(crate) use impl_discovery_store;
