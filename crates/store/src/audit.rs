//! The audit trail: who did what to which target, and how it ended. [`AuditStore`] is part of
//! every [`Store`](crate::Store); [`impl_audit_store!`] expands it for each backend.

use async_trait::async_trait;

use ferry_core::error::Result;
use ferry_core::model::{AuditFilter, AuditRecord, NewAudit};

#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn append_audit(&self, record: &NewAudit) -> Result<()>;
    /// Newest first; ids strictly below `before`.
    async fn list_audit(
        &self,
        filter: &AuditFilter,
        limit: u32,
        before: Option<i64>,
    ) -> Result<Vec<AuditRecord>>;
}

/// Expands [`AuditStore`] for one backend: `$ty` is the store, `$db` its database.
macro_rules! impl_audit_store {
    ($ty:ty, $db:ty $(,)?) => {
        #[async_trait::async_trait]
        impl $crate::AuditStore for $ty {
            async fn append_audit(
                &self,
                record: &::ferry_core::model::NewAudit,
            ) -> ::ferry_core::error::Result<()> {
                use $crate::db::{db_error, now};
                sqlx::query(
                    "INSERT INTO audit (at, actor, action, target, source, outcome, detail) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(now())
                .bind(&record.actor)
                .bind(&record.action)
                .bind(&record.target)
                .bind(&record.source)
                .bind(record.outcome.as_str())
                .bind(&record.detail)
                .execute(self.writer())
                .await
                .map_err(db_error)?;
                Ok(())
            }

            async fn list_audit(
                &self,
                filter: &ferry_core::model::AuditFilter,
                limit: u32,
                before: Option<i64>,
            ) -> ::ferry_core::error::Result<Vec<::ferry_core::model::AuditRecord>> {
                use $crate::db::db_error;
                use $crate::rows::AuditRow;
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "SELECT id, at, actor, action, target, source, outcome, detail FROM audit",
                );
                let mut joiner = " WHERE ";
                for (column, value) in [
                    (" actor = ", filter.actor.as_deref()),
                    (" action = ", filter.action.as_deref()),
                    (" target = ", filter.target.as_deref()),
                    (" outcome = ", filter.outcome.map(|o| o.as_str())),
                ] {
                    if let Some(value) = value {
                        qb.push(joiner).push(column).push_bind(value);
                        joiner = " AND ";
                    }
                }
                if let Some(before) = before {
                    qb.push(joiner).push(" id < ").push_bind(before);
                }
                qb.push(" ORDER BY id DESC LIMIT ")
                    .push_bind(i64::from(limit));
                qb.build_query_as::<AuditRow>()
                    .fetch_all(self.reader())
                    .await
                    .map_err(db_error)?
                    .into_iter()
                    .map(AuditRow::into_model)
                    .collect()
            }
        }
    };
}
pub(crate) use impl_audit_store;
