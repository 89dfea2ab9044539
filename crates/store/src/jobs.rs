//! Jobs: their groups, the holds that keep two active jobs off the same group or disk, their
//! event log and the step outputs it carries, and the lease that lets one replica schedule.
//! [`JobStore`] is part of every [`Store`](crate::Store); [`impl_job_store!`] expands it for each
//! backend.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::NewTask;
use ferry_core::error::Result;
use ferry_core::model::{
    Approval, Finding, Job, JobEvent, JobGroup, JobRequest, JobState, NewJobEvent, Share, Task,
};

/// A job to store.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    pub id: Uuid,
    pub name: &'a str,
    pub request: &'a JobRequest,
    pub created_by: &'a str,
    pub groups: &'a [JobGroup],
    /// Keys of what the job holds while active (`group:...`, `disk:...`).
    pub holds: &'a [String],
    pub at: DateTime<Utc>,
}

/// A group's next state, as `save_group` writes it.
#[derive(Debug, Clone)]
pub struct GroupUpdate<'a> {
    /// Its `version` is the version read; the stored one becomes `version + 1`.
    pub group: &'a JobGroup,
    pub task: Option<NewTask<'a>>,
    pub baseline: Option<&'a [Share]>,
    pub events: &'a [NewJobEvent],
    pub at: DateTime<Utc>,
}

/// A step's report, as its success event stored it.
#[derive(Debug, Clone, PartialEq)]
pub struct StepOutput {
    pub group: String,
    pub step: u32,
    pub output: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SavedGroup {
    pub version: i64,
    pub task: Option<Task>,
    /// The job's [`ActiveJob::groups_written`] after this write.
    pub groups_written: i64,
}

/// What changes of a job the scheduler moves: its request never does, so a reader that has
/// it keeps it.
#[derive(Debug, Clone)]
pub struct ActiveJob {
    pub id: Uuid,
    pub state: JobState,
    pub approval: Option<Approval>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
    /// How many writes of its groups the job has had. A reader that remembers the groups as of
    /// count `n` knows them current while the count is still `n`.
    pub groups_written: i64,
}

impl ActiveJob {
    /// `job` (the same job, read earlier) as it is now.
    pub fn apply_to(&self, job: &mut Job) {
        job.state = self.state;
        job.approval.clone_from(&self.approval);
        job.updated_at = self.updated_at;
        job.version = self.version;
    }
}

#[derive(Debug, Clone)]
pub struct JobUpdate<'a> {
    pub expected_version: i64,
    pub state: JobState,
    /// `Some(None)` clears the approval.
    pub approval: Option<Option<&'a Approval>>,
    pub events: &'a [NewJobEvent],
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct EventFilter<'a> {
    pub job_id: Option<Uuid>,
    pub group: Option<&'a str>,
    pub step: Option<u32>,
}

#[async_trait]
pub trait JobStore: Send + Sync {
    /// Stores a job, its groups, its holds and its first event in one transaction. A hold that
    /// another active job has is a `Conflict` naming that job, and nothing is stored.
    async fn create_job(&self, job: &NewJob<'_>) -> Result<Job>;
    /// `NotFound` for an unknown id.
    async fn get_job(&self, id: Uuid) -> Result<Job>;
    /// Oldest first; ids strictly above `after`.
    async fn list_jobs(&self, limit: u32, after: Option<Uuid>) -> Result<Vec<Job>>;
    /// Jobs running, paused, cancelling or failed (a failed job still holds its groups and can
    /// be retried), oldest first, without their requests.
    async fn active_jobs(&self) -> Result<Vec<ActiveJob>>;
    /// The job's groups in request order, each with its version.
    async fn job_groups(&self, job_id: Uuid) -> Result<Vec<JobGroup>>;
    /// Each group's name and version in request order: what changed since a read, cheaply.
    async fn job_group_versions(&self, job_id: Uuid) -> Result<Vec<(String, i64)>>;
    /// The groups of `names` (exact stored spelling), in request order.
    async fn job_groups_named(&self, job_id: Uuid, names: &[String]) -> Result<Vec<JobGroup>>;
    async fn job_baseline(&self, job_id: Uuid, group: &str) -> Result<Option<Vec<Share>>>;
    /// Writes each group's new state over its `update.group.version` (the version read), with
    /// its task, baseline and events, all in one transaction. An entry is `None` when that
    /// group's version moved on: someone else changed it first, and nothing of it was written;
    /// the others are written all the same.
    async fn save_groups(
        &self,
        job_id: Uuid,
        updates: &[GroupUpdate<'_>],
    ) -> Result<Vec<Option<SavedGroup>>>;
    /// [`JobStore::save_groups`] for one group.
    async fn save_group(
        &self,
        job_id: Uuid,
        update: &GroupUpdate<'_>,
    ) -> Result<Option<SavedGroup>> {
        Ok(self
            .save_groups(job_id, std::slice::from_ref(update))
            .await?
            .pop()
            .flatten())
    }
    /// Which of `keys` an unfinished job holds, and which job.
    async fn job_holders(&self, keys: &[String]) -> Result<Vec<(String, Uuid)>>;
    /// Sequence number of the newest event (of one job, when given); 0 when there is none.
    async fn newest_event_seq(&self, job_id: Option<Uuid>) -> Result<i64>;
    /// Sets the job's state (and approval, when `Some`) over `expected_version`, with events;
    /// a finished job's holds are released. `None` when the version moved on.
    async fn update_job(&self, job_id: Uuid, update: &JobUpdate<'_>) -> Result<Option<Job>>;
    /// Events in sequence order after `after`, of one job or all, optionally of one group and
    /// step.
    async fn job_events(
        &self,
        filter: &EventFilter<'_>,
        after: i64,
        limit: u32,
    ) -> Result<Vec<JobEvent>>;
    /// The reports carried by the job's step events (see [`NewJobEvent::output`]), of one group
    /// when given, oldest first: the last one of a group's step is its current output.
    async fn step_outputs(&self, job_id: Uuid, group: Option<&str>) -> Result<Vec<StepOutput>>;
    /// Stores events of no job about `cluster_id` (a cluster's `inventory.changed`), numbered
    /// after every event stored before them.
    async fn record_cluster_events(
        &self,
        cluster_id: Uuid,
        events: &[NewJobEvent],
        at: DateTime<Utc>,
    ) -> Result<()>;
    /// Replaces the findings a running job learned, with the events announcing them; the job's
    /// version is left alone, so a concurrent state change of the job is not refused for it.
    /// `NotFound` for an unknown job.
    async fn set_job_findings(
        &self,
        job_id: Uuid,
        findings: &[Finding],
        events: &[NewJobEvent],
        at: DateTime<Utc>,
    ) -> Result<()>;
    /// Takes or renews the scheduler lease for `holder` until `until`; false while another
    /// holder's lease runs.
    async fn claim_scheduler(
        &self,
        holder: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool>;
}

/// Expands [`JobStore`] for one backend (`$ty` the store, `$db` its database). A group's next
/// task is written with [`impl_agent_store!`](crate::agents::impl_agent_store)'s `insert_task`,
/// in the same transaction.
///
/// - `event_lock`: run before inserting job events, so their sequence numbers commit in order
///   (an advisory lock where several writers can race), with the events channel bound as `$1`
///   so that it also notifies it at commit; `None` where writers are serialised, and the
///   backend's `notify_at_commit` is called instead.
macro_rules! impl_job_store {
    ($ty:ty, $db:ty, event_lock = $event_lock:expr $(,)?) => {
        impl $ty {
            /// Numbers and stores `events` of the job `job_id` (`None` for events of no job, such
            /// as a cluster's `inventory.changed`, which name `cluster_id` instead).
            async fn insert_events(
                conn: &mut <$db as sqlx::Database>::Connection,
                job_id: Option<&str>,
                cluster_id: Option<&str>,
                events: &[(chrono::DateTime<chrono::Utc>, &::ferry_core::model::NewJobEvent)],
            ) -> sqlx::Result<()> {
                if events.is_empty() {
                    return Ok(());
                }
                let lock: Option<&str> = $event_lock;
                match lock {
                    // One round trip for the lock and the notice, on the hot path of every pass.
                    Some(lock) => {
                        sqlx::query(lock)
                            .bind($crate::channels::EVENTS)
                            .execute(&mut *conn)
                            .await?;
                    }
                    None => Self::notify_at_commit(&mut *conn, $crate::channels::EVENTS).await?,
                }
                for chunk in events.chunks(Self::MAX_BINDS / 10) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO job_events \
                         (at, job_id, kind, grp, step, state, message, output, cluster_id, data) ",
                    );
                    qb.push_values(chunk, |mut b, (at, e)| {
                        b.push_bind(*at)
                            .push_bind(job_id)
                            .push_bind(e.kind)
                            .push_bind(e.group.as_deref())
                            .push_bind(e.step.map(i64::from))
                            .push_bind(e.state.as_str())
                            .push_bind(e.message.as_deref())
                            .push_bind(e.output.as_ref().map($crate::db::to_json))
                            .push_bind(cluster_id)
                            .push_bind(e.data.as_ref().map($crate::db::to_json));
                    });
                    qb.build().execute(&mut *conn).await?;
                }
                Ok(())
            }

            async fn job_summary(
                conn: &mut <$db as sqlx::Database>::Connection,
                job_id: &str,
            ) -> sqlx::Result<std::collections::BTreeMap<String, u32>> {
                let rows: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT state, COUNT(*) FROM job_groups WHERE job_id = $1 GROUP BY state",
                )
                .bind(job_id)
                .fetch_all(&mut *conn)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(state, n)| (state, u32::try_from(n).unwrap_or(u32::MAX)))
                    .collect())
            }

            /// The jobs of `ids`, in that order; a job deleted meanwhile is skipped.
            async fn load_jobs(
                conn: &mut <$db as sqlx::Database>::Connection,
                ids: Vec<(String,)>,
            ) -> ::ferry_core::error::Result<Vec<::ferry_core::model::Job>> {
                let mut jobs = Vec::with_capacity(ids.len());
                for (id,) in ids {
                    if let Some(job) = Self::load_job(conn, &id).await? {
                        jobs.push(job);
                    }
                }
                Ok(jobs)
            }

            async fn load_job(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: &str,
            ) -> ::ferry_core::error::Result<Option<::ferry_core::model::Job>> {
                use $crate::db::db_error;
                use $crate::rows::JobRow;
                let Some(row) = sqlx::query_as::<_, JobRow>(
                    "SELECT id, name, state, request, approval, created_by, created_at, \
                     updated_at, version, findings FROM jobs WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&mut *conn)
                .await
                .map_err(db_error)?
                else {
                    return Ok(None);
                };
                let summary = Self::job_summary(conn, id).await.map_err(db_error)?;
                row.into_model(summary).map(Some)
            }
        }

        #[async_trait::async_trait]
        impl $crate::JobStore for $ty {
            async fn create_job(
                &self,
                job: &$crate::NewJob<'_>,
            ) -> ::ferry_core::error::Result<::ferry_core::model::Job> {
                use $crate::db::{db_error, to_json, truncate};
                let id = job.id.to_string();
                let at = truncate(job.at);
                let mut tx = self.writer().begin().await.map_err(db_error)?;
                for key in job.holds {
                    let holder: Option<(String,)> =
                        sqlx::query_as("SELECT job_id FROM job_holds WHERE key = $1")
                            .bind(key)
                            .fetch_optional(&mut *tx)
                            .await
                            .map_err(db_error)?;
                    if let Some((holder,)) = holder {
                        let what = key.split(':').next().unwrap_or("group");
                        let name = key.rsplit(':').next().unwrap_or(key);
                        return Err(::ferry_core::error::Error::conflict(format!(
                            "{what} `{name}` belongs to job {holder}, which has not finished \
                             (a failed job keeps its groups until retried or cancelled); wait \
                             for it or cancel it"
                        )));
                    }
                }
                sqlx::query(
                    "INSERT INTO jobs (id, name, state, request, approval, created_by, \
                     created_at, updated_at, version) VALUES ($1, $2, 'running', $3, NULL, $4, \
                     $5, $5, 1)",
                )
                .bind(&id)
                .bind(job.name)
                .bind(to_json(job.request))
                .bind(job.created_by)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
                for (position, group) in job.groups.iter().enumerate() {
                    sqlx::query(
                        "INSERT INTO job_groups (job_id, name, position, state, doc, version) \
                         VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(&id)
                    .bind(&group.name)
                    .bind(position as i64)
                    .bind(group.state.as_str())
                    .bind(to_json(group))
                    .bind(group.version)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                }
                for key in job.holds {
                    sqlx::query("INSERT INTO job_holds (key, job_id) VALUES ($1, $2)")
                        .bind(key)
                        .bind(&id)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| $crate::db::unique_or(e, || {
                            ::ferry_core::error::Error::conflict(format!(
                                "`{key}` was taken by another job a moment ago; plan again"
                            ))
                        }))?;
                }
                let created = ::ferry_core::model::NewJobEvent {
                    kind: "job",
                    group: None,
                    step: None,
                    state: ::ferry_core::model::JobState::Running.as_str().to_owned(),
                    message: Some(format!("created with {} groups", job.groups.len())),
                    output: None,
                    data: None,
                };
                Self::insert_events(&mut tx, Some(&id), None, &[(at, &created)])
                    .await
                    .map_err(db_error)?;
                let stored = Self::load_job(&mut tx, &id).await?;
                tx.commit().await.map_err(db_error)?;
                self.events.moved();
                stored.ok_or_else(|| ::ferry_core::error::Error::internal("the job vanished"))
            }

            async fn get_job(
                &self,
                id: uuid::Uuid,
            ) -> ::ferry_core::error::Result<::ferry_core::model::Job> {
                use $crate::db::db_error;
                let mut conn = self.reader().acquire().await.map_err(db_error)?;
                Self::load_job(&mut conn, &id.to_string())
                    .await?
                    .ok_or_else(|| ::ferry_core::error::Error::not_found(format!("no job `{id}`")))
            }

            async fn list_jobs(
                &self,
                limit: u32,
                after: Option<uuid::Uuid>,
            ) -> ::ferry_core::error::Result<Vec<::ferry_core::model::Job>> {
                use $crate::db::db_error;
                let mut conn = self.reader().acquire().await.map_err(db_error)?;
                let ids: Vec<(String,)> = sqlx::query_as(
                    "SELECT id FROM jobs WHERE id > $1 ORDER BY id LIMIT $2",
                )
                .bind(after.map(|a| a.to_string()).unwrap_or_default())
                .bind(i64::from(limit))
                .fetch_all(&mut *conn)
                .await
                .map_err(db_error)?;
                Self::load_jobs(&mut conn, ids).await
            }

            async fn active_jobs(
                &self,
            ) -> ::ferry_core::error::Result<Vec<$crate::ActiveJob>> {
                use $crate::db::{corrupt, db_error, parse_json, parse_uuid};
                type Row = (String, String, Option<String>, chrono::DateTime<chrono::Utc>, i64, i64);
                let rows: Vec<Row> = sqlx::query_as(
                    "SELECT id, state, approval, updated_at, version, groups_written FROM jobs \
                     WHERE state IN ('running', 'paused', 'cancelling', 'failed') ORDER BY id",
                )
                .fetch_all(self.reader())
                .await
                .map_err(db_error)?;
                rows.into_iter()
                    .map(|(id, state, approval, updated_at, version, groups_written)| {
                        Ok($crate::ActiveJob {
                            id: parse_uuid(&id)?,
                            state: ::ferry_core::model::JobState::parse(&state)
                                .ok_or_else(|| corrupt("job state", &state))?,
                            approval: approval
                                .as_deref()
                                .map(|a| parse_json("job approval", a))
                                .transpose()?,
                            updated_at,
                            version,
                            groups_written,
                        })
                    })
                    .collect()
            }

            async fn job_groups(
                &self,
                job_id: uuid::Uuid,
            ) -> ::ferry_core::error::Result<Vec<::ferry_core::model::JobGroup>> {
                use $crate::db::{db_error, parse_json};
                let rows: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT doc, version FROM job_groups WHERE job_id = $1 ORDER BY position",
                )
                .bind(job_id.to_string())
                .fetch_all(self.reader())
                .await
                .map_err(db_error)?;
                rows.into_iter()
                    .map(|(doc, version)| {
                        let mut group: ::ferry_core::model::JobGroup = parse_json("job group", &doc)?;
                        group.version = version;
                        Ok(group)
                    })
                    .collect()
            }

            async fn job_group_versions(
                &self,
                job_id: uuid::Uuid,
            ) -> ::ferry_core::error::Result<Vec<(String, i64)>> {
                use $crate::db::db_error;
                sqlx::query_as(
                    "SELECT name, version FROM job_groups WHERE job_id = $1 ORDER BY position",
                )
                .bind(job_id.to_string())
                .fetch_all(self.reader())
                .await
                .map_err(db_error)
            }

            async fn job_groups_named(
                &self,
                job_id: uuid::Uuid,
                names: &[String],
            ) -> ::ferry_core::error::Result<Vec<::ferry_core::model::JobGroup>> {
                use $crate::db::{db_error, parse_json};
                let mut groups = Vec::with_capacity(names.len());
                for chunk in names.chunks(Self::MAX_BINDS - 1) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "SELECT doc, version FROM job_groups WHERE job_id = ",
                    );
                    qb.push_bind(job_id.to_string()).push(" AND name");
                    $crate::db::push_in_list(&mut qb, chunk.iter().cloned());
                    qb.push(" ORDER BY position");
                    let rows: Vec<(String, i64)> = qb
                        .build_query_as()
                        .fetch_all(self.reader())
                        .await
                        .map_err(db_error)?;
                    for (doc, version) in rows {
                        let mut group: ::ferry_core::model::JobGroup = parse_json("job group", &doc)?;
                        group.version = version;
                        groups.push(group);
                    }
                }
                Ok(groups)
            }

            async fn job_baseline(
                &self,
                job_id: uuid::Uuid,
                group: &str,
            ) -> ::ferry_core::error::Result<Option<Vec<::ferry_core::model::Share>>> {
                use $crate::db::{db_error, parse_json};
                let row: Option<(String,)> = sqlx::query_as(
                    "SELECT shares FROM job_baselines WHERE job_id = $1 AND name = $2",
                )
                .bind(job_id.to_string())
                .bind(group)
                .fetch_optional(self.reader())
                .await
                .map_err(db_error)?;
                row.map(|(shares,)| parse_json("job baseline", &shares))
                    .transpose()
            }

            async fn save_groups(
                &self,
                job_id: uuid::Uuid,
                updates: &[$crate::GroupUpdate<'_>],
            ) -> ::ferry_core::error::Result<Vec<Option<$crate::SavedGroup>>> {
                use $crate::db::{db_error, to_json, truncate};
                let mut saved = Vec::with_capacity(updates.len());
                let Some(last) = updates.last() else {
                    return Ok(saved);
                };
                let id = job_id.to_string();
                let mut tx = self.writer().begin().await.map_err(db_error)?;
                // The job row first, in the order `update_job` takes its locks, so a scheduler
                // write and an operator's verb cannot deadlock on Postgres.
                // Rolled back with the rest when no group is written.
                let written: Option<(i64,)> = sqlx::query_as(
                    "UPDATE jobs SET updated_at = $2, groups_written = groups_written + 1 \
                     WHERE id = $1 RETURNING groups_written",
                )
                .bind(&id)
                .bind(truncate(last.at))
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?;
                let Some((groups_written,)) = written else {
                    // No such job: none of its groups can be written.
                    saved.resize(updates.len(), None);
                    return Ok(saved);
                };
                // Written together after the groups, in the updates' order.
                let mut events = Vec::new();
                for update in updates {
                    let group = update.group;
                    let read = group.version;
                    // The document keeps the version it was read at: every read takes the
                    // column's, and copying the group to change it costs more than the write.
                    let changed = sqlx::query(
                        "UPDATE job_groups SET state = $3, doc = $4, version = $5 \
                         WHERE job_id = $1 AND name = $2 AND version = $6",
                    )
                    .bind(&id)
                    .bind(&group.name)
                    .bind(group.state.as_str())
                    .bind(to_json(group))
                    .bind(read + 1)
                    .bind(read)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?
                    .rows_affected();
                    if changed == 0 {
                        saved.push(None);
                        continue;
                    }
                    let task = match &update.task {
                        Some(new) => Some(Self::insert_task(&mut tx, new).await?),
                        None => None,
                    };
                    if let Some(shares) = update.baseline {
                        sqlx::query(
                            "INSERT INTO job_baselines (job_id, name, shares) \
                             VALUES ($1, $2, $3) \
                             ON CONFLICT (job_id, name) DO UPDATE SET shares = excluded.shares",
                        )
                        .bind(&id)
                        .bind(&group.name)
                        .bind(to_json(&shares))
                        .execute(&mut *tx)
                        .await
                        .map_err(db_error)?;
                    }
                    let at = truncate(update.at);
                    events.extend(update.events.iter().map(|e| (at, e)));
                    saved.push(Some($crate::SavedGroup {
                        version: read + 1,
                        task,
                        groups_written,
                    }));
                }
                Self::insert_events(&mut tx, Some(&id), None, &events)
                    .await
                    .map_err(db_error)?;
                if saved.iter().any(Option::is_some) {
                    tx.commit().await.map_err(db_error)?;
                    self.events.moved();
                } else {
                    tx.rollback().await.map_err(db_error)?;
                }
                Ok(saved)
            }

            async fn job_holders(
                &self,
                keys: &[String],
            ) -> ::ferry_core::error::Result<Vec<(String, uuid::Uuid)>> {
                use $crate::db::{db_error, parse_uuid};
                let mut held = Vec::new();
                for chunk in keys.chunks(Self::MAX_BINDS) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "SELECT key, job_id FROM job_holds WHERE key",
                    );
                    $crate::db::push_in_list(&mut qb, chunk.iter().cloned());
                    let rows: Vec<(String, String)> = qb
                        .build_query_as()
                        .fetch_all(self.reader())
                        .await
                        .map_err(db_error)?;
                    for (key, job) in rows {
                        held.push((key, parse_uuid(&job)?));
                    }
                }
                Ok(held)
            }

            async fn newest_event_seq(
                &self,
                job_id: Option<uuid::Uuid>,
            ) -> ::ferry_core::error::Result<i64> {
                use $crate::db::db_error;
                let (seq,): (Option<i64>,) = match job_id {
                    Some(job) => sqlx::query_as("SELECT MAX(seq) FROM job_events WHERE job_id = $1")
                        .bind(job.to_string())
                        .fetch_one(self.reader())
                        .await,
                    None => sqlx::query_as("SELECT MAX(seq) FROM job_events")
                        .fetch_one(self.reader())
                        .await,
                }
                .map_err(db_error)?;
                Ok(seq.unwrap_or(0))
            }

            async fn update_job(
                &self,
                job_id: uuid::Uuid,
                update: &$crate::JobUpdate<'_>,
            ) -> ::ferry_core::error::Result<Option<::ferry_core::model::Job>> {
                use $crate::db::{db_error, to_json, truncate};
                let id = job_id.to_string();
                let at = truncate(update.at);
                // A job finishes only while all its groups are settled: an operator's retry
                // that slipped in after the scheduler read them keeps it running.
                let finishing = update.state.is_finished();
                let mut tx = self.writer().begin().await.map_err(db_error)?;
                let changed = match update.approval {
                    Some(approval) => sqlx::query(
                        "UPDATE jobs SET state = $2, approval = $3, updated_at = $4, \
                         version = version + 1 WHERE id = $1 AND version = $5 \
                         AND (NOT $6 OR NOT EXISTS (SELECT 1 FROM job_groups g \
                         WHERE g.job_id = jobs.id \
                         AND g.state NOT IN ('succeeded', 'failed', 'rolled_back', \
                         'rollback_failed', 'cancelled')))",
                    )
                    .bind(&id)
                    .bind(update.state.as_str())
                    .bind(approval.map(to_json))
                    .bind(at)
                    .bind(update.expected_version)
                    .bind(finishing),
                    None => sqlx::query(
                        "UPDATE jobs SET state = $2, updated_at = $3, version = version + 1 \
                         WHERE id = $1 AND version = $4 \
                         AND (NOT $5 OR NOT EXISTS (SELECT 1 FROM job_groups g \
                         WHERE g.job_id = jobs.id \
                         AND g.state NOT IN ('succeeded', 'failed', 'rolled_back', \
                         'rollback_failed', 'cancelled')))",
                    )
                    .bind(&id)
                    .bind(update.state.as_str())
                    .bind(at)
                    .bind(update.expected_version)
                    .bind(finishing),
                }
                .execute(&mut *tx)
                .await
                .map_err(db_error)?
                .rows_affected();
                if changed == 0 {
                    return Ok(None);
                }
                // A failed job keeps its groups (half-migrated, maybe) until it is retried or
                // cancelled.
                if matches!(
                    update.state,
                    ::ferry_core::model::JobState::Succeeded | ::ferry_core::model::JobState::Cancelled
                ) {
                    sqlx::query("DELETE FROM job_holds WHERE job_id = $1")
                        .bind(&id)
                        .execute(&mut *tx)
                        .await
                        .map_err(db_error)?;
                }
                let events: Vec<_> = update.events.iter().map(|e| (at, e)).collect();
                Self::insert_events(&mut tx, Some(&id), None, &events)
                    .await
                    .map_err(db_error)?;
                let job = Self::load_job(&mut tx, &id).await?;
                tx.commit().await.map_err(db_error)?;
                self.events.moved();
                Ok(job)
            }

            async fn job_events(
                &self,
                filter: &$crate::EventFilter<'_>,
                after: i64,
                limit: u32,
            ) -> ::ferry_core::error::Result<Vec<::ferry_core::model::JobEvent>> {
                use $crate::db::db_error;
                use $crate::rows::JobEventRow;
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "SELECT seq, at, job_id, cluster_id, kind, grp, step, state, message, data \
                     FROM job_events WHERE seq > ",
                );
                qb.push_bind(after);
                if let Some(job_id) = filter.job_id {
                    qb.push(" AND job_id = ").push_bind(job_id.to_string());
                }
                if let Some(group) = filter.group {
                    qb.push(" AND grp = ").push_bind(group.to_owned());
                }
                if let Some(step) = filter.step {
                    qb.push(" AND step = ").push_bind(i64::from(step));
                }
                qb.push(" ORDER BY seq LIMIT ").push_bind(i64::from(limit));
                qb.build_query_as::<JobEventRow>()
                    .fetch_all(self.reader())
                    .await
                    .map_err(db_error)?
                    .into_iter()
                    .map(JobEventRow::into_model)
                    .collect()
            }

            async fn step_outputs(
                &self,
                job_id: uuid::Uuid,
                group: Option<&str>,
            ) -> ::ferry_core::error::Result<Vec<$crate::StepOutput>> {
                use $crate::db::{corrupt, db_error, parse_json};
                let rows: Vec<(String, i64, String)> = sqlx::query_as(
                    "SELECT grp, step, output FROM job_events \
                     WHERE job_id = $1 AND output IS NOT NULL AND ($2 IS NULL OR grp = $2) \
                     ORDER BY seq",
                )
                .bind(job_id.to_string())
                .bind(group)
                .fetch_all(self.reader())
                .await
                .map_err(db_error)?;
                rows.into_iter()
                    .map(|(group, step, output)| {
                        Ok($crate::StepOutput {
                            step: u32::try_from(step)
                                .map_err(|_| corrupt("step number", &step.to_string()))?,
                            output: parse_json("step output", &output)?,
                            group,
                        })
                    })
                    .collect()
            }

            async fn record_cluster_events(
                &self,
                cluster_id: uuid::Uuid,
                events: &[::ferry_core::model::NewJobEvent],
                at: chrono::DateTime<chrono::Utc>,
            ) -> ::ferry_core::error::Result<()> {
                use $crate::db::{db_error, truncate};
                let at = truncate(at);
                let events: Vec<_> = events.iter().map(|e| (at, e)).collect();
                let mut tx = self.writer().begin().await.map_err(db_error)?;
                Self::insert_events(&mut tx, None, Some(&cluster_id.to_string()), &events)
                    .await
                    .map_err(db_error)?;
                tx.commit().await.map_err(db_error)?;
                self.events.moved();
                Ok(())
            }

            async fn set_job_findings(
                &self,
                job_id: uuid::Uuid,
                findings: &[::ferry_core::model::Finding],
                events: &[::ferry_core::model::NewJobEvent],
                at: chrono::DateTime<chrono::Utc>,
            ) -> ::ferry_core::error::Result<()> {
                use $crate::db::{db_error, to_json, truncate};
                let id = job_id.to_string();
                let at = truncate(at);
                let mut tx = self.writer().begin().await.map_err(db_error)?;
                let updated = sqlx::query("UPDATE jobs SET findings = $2 WHERE id = $1")
                    .bind(&id)
                    .bind(to_json(&findings))
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?
                    .rows_affected();
                if updated == 0 {
                    return Err(::ferry_core::error::Error::not_found(format!(
                        "no job `{job_id}`"
                    )));
                }
                let events: Vec<_> = events.iter().map(|e| (at, e)).collect();
                Self::insert_events(&mut tx, Some(&id), None, &events)
                    .await
                    .map_err(db_error)?;
                tx.commit().await.map_err(db_error)?;
                self.events.moved();
                Ok(())
            }

            async fn claim_scheduler(
                &self,
                holder: &str,
                until: chrono::DateTime<chrono::Utc>,
                now: chrono::DateTime<chrono::Utc>,
            ) -> ::ferry_core::error::Result<bool> {
                use $crate::db::{db_error, truncate};
                let claimed = sqlx::query(
                    "INSERT INTO scheduler_lease (id, holder, until) VALUES (1, $1, $2) \
                     ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, \
                     until = excluded.until \
                     WHERE scheduler_lease.holder = excluded.holder OR scheduler_lease.until < $3",
                )
                .bind(holder)
                .bind(truncate(until))
                .bind(truncate(now))
                .execute(self.writer())
                .await
                .map_err(db_error)?
                .rows_affected();
                Ok(claimed > 0)
            }
        }
    };
}
pub(crate) use impl_job_store;
