//! Agents and their tasks: join tokens and enrollment, the agents' sessions and liveness, and the
//! tasks handed to them under fenced leases. [`AgentStore`] is part of every
//! [`Store`](crate::Store); [`impl_agent_store!`] expands it for each backend.
//!
//! Task states in the SQL are literals, not binds, so that the partial indexes on unfinished and
//! in-flight tasks apply.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::db::{to_json, truncate};
use ferry_core::error::Result;
use ferry_core::model::{
    Action, Agent, JoinTokenInfo, Task, TaskError, TaskOutcome, TaskProgress, TaskRef, TaskState,
};

/// A join token as stored: its info plus the SHA-256 hex of the secret.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinTokenRecord {
    pub info: JoinTokenInfo,
    pub secret_hash: String,
}

/// An enrollment to perform: consume one use of the join token with `token_hash` and create the
/// agent, in one transaction.
#[derive(Debug, Clone, Copy)]
pub struct AgentEnrollment<'a> {
    pub token_hash: &'a str,
    /// The cluster the agent claims; the token must have been issued for it.
    pub cluster_id: Uuid,
    pub agent_id: Uuid,
    pub node: &'a str,
    pub secret_hash: &'a str,
    pub software_version: &'a str,
    pub capabilities: &'a [String],
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Enrolled {
    pub agent: Agent,
    /// The agent the node had before, now revoked; its pending tasks moved to the new one.
    pub replaced: Option<Uuid>,
}

/// What authenticating an agent needs.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentCredentials {
    pub agent: Agent,
    pub secret_hash: String,
}

#[derive(Debug, Clone, Copy)]
pub struct NewTask<'a> {
    pub cluster_id: Uuid,
    pub node: &'a str,
    pub agent_id: Option<Uuid>,
    pub action: &'a Action,
    pub created_by: &'a str,
    /// The id to store it under; a new one when `None`. The scheduler names the task in its
    /// step before both are written in one transaction.
    pub id: Option<Uuid>,
    /// Stores the task already assigned to `agent_id` under this lease (generation 1), for an
    /// agent connected to this server: one write instead of a store and an assignment.
    pub lease_deadline: Option<DateTime<Utc>>,
}

/// Where a task stands: its outcome once it has one (`result` on success, `error` on failure
/// or loss).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskStatus {
    pub id: Uuid,
    pub state: TaskState,
    pub result: Option<serde_json::Value>,
    pub error: Option<TaskError>,
}

#[async_trait]
pub trait AgentStore: Send + Sync {
    // ---- agents ---------------------------------------------------------------------------

    /// `Conflict` when the secret hash is taken.
    async fn insert_join_token(&self, token: &JoinTokenRecord) -> Result<()>;
    /// Consumes one use of the join token and creates the agent, in one transaction; a node's
    /// live agent is revoked and replaced. `Unauthenticated` for an unknown, used or expired
    /// token, or one issued for another cluster: nothing changes then.
    async fn enroll_agent(&self, enrollment: &AgentEnrollment<'_>) -> Result<Enrolled>;
    /// `NotFound` for an unknown id.
    async fn get_agent(&self, id: Uuid) -> Result<Agent>;
    /// The agent with its secret hash, whatever its state.
    async fn agent_credentials(&self, id: Uuid) -> Result<Option<AgentCredentials>>;
    /// Ordered by id (enrollment order), ids strictly after `after`.
    async fn list_agents(
        &self,
        cluster_id: Option<Uuid>,
        limit: u32,
        after: Option<Uuid>,
    ) -> Result<Vec<Agent>>;
    /// Marks the agent revoked (kept if already revoked); its pending tasks are cancelled and its
    /// tasks in flight lost, since nothing can report on them any more. `NotFound` otherwise.
    async fn revoke_agent(&self, id: Uuid, at: DateTime<Utc>) -> Result<Agent>;
    /// Agents revoked after `since`, with the time they were revoked, oldest first.
    async fn revoked_agents_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(Uuid, DateTime<Utc>)>>;
    /// Records a new session. `Unauthenticated` when the agent was revoked meanwhile.
    async fn agent_connected(
        &self,
        id: Uuid,
        session_id: Uuid,
        software_version: &str,
        capabilities: &[String],
        at: DateTime<Utc>,
    ) -> Result<Agent>;
    /// Marks the agent disconnected if `session_id` is still its current session; false when a
    /// newer session (or the reaper) got there first.
    async fn agent_disconnected(
        &self,
        id: Uuid,
        session_id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<bool>;
    /// Sets `last_seen_at` of many agents in one statement.
    async fn touch_agents(&self, ids: &[Uuid], at: DateTime<Utc>) -> Result<()>;
    /// Marks agents not seen since `silent_since` down; returns their ids.
    async fn mark_agents_down(&self, silent_since: DateTime<Utc>) -> Result<Vec<Uuid>>;

    // ---- tasks ----------------------------------------------------------------------------

    /// Stores a task, attempt 1: pending with generation 0, or assigned with generation 1 when
    /// `new.lease_deadline` is set.
    async fn create_task(&self, new: &NewTask<'_>) -> Result<Task>;
    /// Pending tasks of any agent or cluster, oldest first: what the gateways' sweep offers to
    /// the agents connected to them.
    async fn pending_tasks(&self, limit: u32) -> Result<Vec<Task>>;
    /// `NotFound` for an unknown id.
    async fn get_task(&self, id: Uuid) -> Result<Task>;
    /// The tasks of `ids` that exist, in no particular order.
    async fn get_tasks(&self, ids: &[Uuid]) -> Result<Vec<Task>>;
    /// The state and outcome of each task of `ids` that exists, in no particular order: what
    /// the scheduler settles steps on, without the tasks' actions.
    async fn task_statuses(&self, ids: &[Uuid]) -> Result<Vec<TaskStatus>>;
    /// The agent's unfinished tasks (pending, assigned, running), oldest first.
    async fn tasks_to_deliver(&self, agent_id: Uuid, limit: u32) -> Result<Vec<Task>>;
    /// Pending tasks of the cluster that wait for any of its agents, oldest first.
    async fn unassigned_tasks(&self, cluster_id: Uuid, limit: u32) -> Result<Vec<Task>>;
    /// Hands a pending task to an agent under a lease, bumping its generation. `None` when the
    /// task is not pending (any more): someone else assigned it.
    async fn assign_task(
        &self,
        id: Uuid,
        agent_id: Uuid,
        lease_deadline: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<Option<Task>>;
    /// Renews the leases of the listed attempts that are current, in flight and held by the
    /// agent, and marks them running. Returns how many were renewed.
    async fn renew_leases(
        &self,
        agent_id: Uuid,
        tasks: &[TaskRef],
        lease_deadline: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<u64>;
    /// Stores the progress of a current attempt held by the agent and renews its lease; false
    /// when the attempt is not current.
    async fn record_progress(
        &self,
        agent_id: Uuid,
        task: &TaskRef,
        progress: &TaskProgress,
        lease_deadline: DateTime<Utc>,
    ) -> Result<bool>;
    /// Applies an outcome, and the last progress when given, fenced: only to the current attempt
    /// and generation of a task in flight and held by `agent_id`. `None` when nothing matched
    /// (stale, duplicate or not this agent's).
    async fn complete_task(
        &self,
        agent_id: Uuid,
        task: &TaskRef,
        outcome: &TaskOutcome,
        progress: Option<&TaskProgress>,
        at: DateTime<Utc>,
    ) -> Result<Option<Task>>;
    /// Marks every attempt in flight whose lease ended before `now` lost; returns them.
    async fn expire_leases(&self, now: DateTime<Utc>) -> Result<Vec<Task>>;
    /// Moves every lease in flight that ends before `deadline` to `deadline`: a starting server
    /// gives agents time to reconnect rather than blaming them for its own absence.
    async fn extend_leases(&self, deadline: DateTime<Utc>) -> Result<u64>;
}

/// The error a lost attempt carries.
pub(crate) fn lost_error(message: &str) -> String {
    to_json(&TaskError {
        kind: "lost".into(),
        message: message.into(),
        retryable: true,
    })
}

/// A task's progress as stored: its time at the store's precision, like every other.
pub(crate) fn progress_json(progress: &TaskProgress) -> String {
    to_json(&TaskProgress {
        at: truncate(progress.at),
        ..progress.clone()
    })
}

/// Expands [`AgentStore`] for one backend (`$ty` the store, `$db` its database), with
/// `insert_task`, which the jobs' store also writes a step's task with.
macro_rules! impl_agent_store {
    ($ty:ty, $db:ty $(,)?) => {
        impl $ty {
            async fn insert_task(
                conn: &mut <$db as sqlx::Database>::Connection,
                new: &$crate::NewTask<'_>,
            ) -> ::ferry_core::error::Result<::ferry_core::model::Task> {
                use $crate::db::{db_error, now, to_json, truncate};
                let id = new.id.unwrap_or_else(uuid::Uuid::now_v7);
                let at = now();
                let lease_deadline = new
                    .lease_deadline
                    .filter(|_| new.agent_id.is_some())
                    .map(truncate);
                let (state, generation) = match lease_deadline {
                    Some(_) => (::ferry_core::model::TaskState::Assigned, 1),
                    None => (::ferry_core::model::TaskState::Pending, 0),
                };
                sqlx::query(
                    "INSERT INTO tasks (id, cluster_id, node, agent_id, action, state, attempt, \
                     generation, lease_deadline, result, error, progress, created_at, updated_at, \
                     created_by) \
                     VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8, NULL, NULL, NULL, $9, $9, $10)",
                )
                .bind(id.to_string())
                .bind(new.cluster_id.to_string())
                .bind(new.node)
                .bind(new.agent_id.map(|a| a.to_string()))
                .bind(to_json(new.action))
                .bind(state.as_str())
                .bind(generation)
                .bind(lease_deadline)
                .bind(at)
                .bind(new.created_by)
                .execute(&mut *conn)
                .await
                .map_err(db_error)?;
                Ok(::ferry_core::model::Task {
                    id,
                    cluster_id: new.cluster_id,
                    node: new.node.to_owned(),
                    agent_id: new.agent_id,
                    action: new.action.clone(),
                    state,
                    attempt: 1,
                    generation,
                    lease_deadline,
                    result: None,
                    error: None,
                    progress: None,
                    created_at: at,
                    updated_at: at,
                    created_by: new.created_by.to_owned(),
                })
            }
        }

        #[async_trait::async_trait]
        impl $crate::AgentStore for $ty {
            // ---- agents -------------------------------------------------------------------

            async fn insert_join_token(
                &self,
                token: &$crate::JoinTokenRecord,
            ) -> ::ferry_core::error::Result<()> {
                use $crate::db::{truncate, unique_or};
                let info = &token.info;
                sqlx::query(
                    "INSERT INTO join_tokens (id, cluster_id, secret_hash, expires_at, uses_left, \
                     created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(info.id.to_string())
                .bind(info.cluster_id.to_string())
                .bind(&token.secret_hash)
                .bind(truncate(info.expires_at))
                .bind(i64::from(info.uses_left))
                .bind(truncate(info.created_at))
                .bind(&info.created_by)
                .execute(self.writer())
                .await
                .map_err(|e| {
                    unique_or(e, || {
                        ::ferry_core::error::Error::conflict("a join token with this secret already exists")
                    })
                })?;
                Ok(())
            }

            async fn enroll_agent(
                &self,
                enrollment: &$crate::AgentEnrollment<'_>,
            ) -> ::ferry_core::error::Result<$crate::Enrolled> {
                use $crate::db::{db_error, to_json, truncate, unique_or};
                use $crate::rows::{select_agent, AgentRow, JoinTokenStateRow};
                let at = truncate(enrollment.at);
                let cluster_id = enrollment.cluster_id.to_string();
                let agent_id = enrollment.agent_id.to_string();
                let mut tx = self.writer().begin().await.map_err(db_error)?;
                // One statement checks and decrements, so two enrollments racing for the last use
                // cannot both win; the cluster check is part of it so a refusal consumes nothing.
                let consumed = sqlx::query(
                    "UPDATE join_tokens SET uses_left = uses_left - 1 \
                     WHERE secret_hash = $1 AND uses_left > 0 AND expires_at > $2 \
                     AND cluster_id = $3",
                )
                .bind(enrollment.token_hash)
                .bind(at)
                .bind(&cluster_id)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?
                .rows_affected();
                if consumed == 0 {
                    let token = sqlx::query_as::<_, JoinTokenStateRow>(
                        "SELECT cluster_id, expires_at, uses_left FROM join_tokens \
                         WHERE secret_hash = $1",
                    )
                    .bind(enrollment.token_hash)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_error)?;
                    return Err(match token {
                        None => ::ferry_core::error::Error::unauthenticated(
                            "unknown join token; create one with `ferry token create --kind join`",
                        ),
                        Some(token) => token.refusal(enrollment.cluster_id, at),
                    });
                }
                let replaced: Option<String> = sqlx::query_scalar(
                    "UPDATE agents SET state = 'revoked', revoked_at = $3, session_id = NULL \
                     WHERE cluster_id = $1 AND node = $2 AND revoked_at IS NULL RETURNING id",
                )
                .bind(&cluster_id)
                .bind(enrollment.node)
                .bind(at)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?;
                sqlx::query(
                    "INSERT INTO agents (id, cluster_id, node, secret_hash, software_version, \
                     capabilities, state, session_id, connected_at, last_seen_at, revoked_at, \
                     created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, 'disconnected', NULL, NULL, $7, NULL, $7)",
                )
                .bind(&agent_id)
                .bind(&cluster_id)
                .bind(enrollment.node)
                .bind(enrollment.secret_hash)
                .bind(enrollment.software_version)
                .bind(to_json(&enrollment.capabilities))
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    unique_or(e, || {
                        ::ferry_core::error::Error::conflict(format!(
                            "node `{}` was enrolled by someone else at the same time; retry",
                            enrollment.node
                        ))
                    })
                })?;
                if let Some(old) = &replaced {
                    // Work queued for the old agent was meant for the node, not for that process.
                    sqlx::query(
                        "UPDATE tasks SET agent_id = $2, updated_at = $3 \
                         WHERE agent_id = $1 AND state IN ('pending')",
                    )
                    .bind(old)
                    .bind(&agent_id)
                    .bind(at)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                }
                let agent = sqlx::query_as::<_, AgentRow>(select_agent!("WHERE a.id = $1"))
                    .bind(&agent_id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_error)?
                    .into_model()?;
                tx.commit().await.map_err(db_error)?;
                Ok($crate::Enrolled {
                    agent,
                    replaced: replaced
                        .as_deref()
                        .map($crate::db::parse_uuid)
                        .transpose()?,
                })
            }

            async fn get_agent(
                &self,
                id: uuid::Uuid,
            ) -> ::ferry_core::error::Result<::ferry_core::model::Agent> {
                use $crate::db::db_error;
                use $crate::rows::{select_agent, AgentRow};
                sqlx::query_as::<_, AgentRow>(select_agent!("WHERE a.id = $1"))
                    .bind(id.to_string())
                    .fetch_optional(self.reader())
                    .await
                    .map_err(db_error)?
                    .ok_or_else(|| ::ferry_core::error::Error::not_found(format!("no agent `{id}`")))?
                    .into_model()
            }

            async fn agent_credentials(
                &self,
                id: uuid::Uuid,
            ) -> ::ferry_core::error::Result<Option<$crate::AgentCredentials>> {
                use $crate::db::db_error;
                use $crate::rows::{agent_columns, AgentCredentialsRow};
                let row = sqlx::query_as::<_, AgentCredentialsRow>(concat!(
                    "SELECT ",
                    agent_columns!(),
                    ", a.secret_hash FROM agents a JOIN clusters c ON c.id = a.cluster_id \
                     WHERE a.id = $1"
                ))
                .bind(id.to_string())
                .fetch_optional(self.reader())
                .await
                .map_err(db_error)?;
                row.map(|row| {
                    Ok($crate::AgentCredentials {
                        agent: row.agent.into_model()?,
                        secret_hash: row.secret_hash,
                    })
                })
                .transpose()
            }

            async fn list_agents(
                &self,
                cluster_id: Option<uuid::Uuid>,
                limit: u32,
                after: Option<uuid::Uuid>,
            ) -> ::ferry_core::error::Result<Vec<::ferry_core::model::Agent>> {
                use $crate::db::db_error;
                use $crate::rows::{select_agent, AgentRow};
                let mut qb = sqlx::QueryBuilder::<$db>::new(select_agent!("WHERE 1 = 1"));
                if let Some(cluster_id) = cluster_id {
                    qb.push(" AND a.cluster_id = ").push_bind(cluster_id.to_string());
                }
                if let Some(after) = after {
                    qb.push(" AND a.id > ").push_bind(after.to_string());
                }
                qb.push(" ORDER BY a.id LIMIT ").push_bind(i64::from(limit));
                qb.build_query_as::<AgentRow>()
                    .fetch_all(self.reader())
                    .await
                    .map_err(db_error)?
                    .into_iter()
                    .map(AgentRow::into_model)
                    .collect()
            }

            async fn revoke_agent(
                &self,
                id: uuid::Uuid,
                at: chrono::DateTime<chrono::Utc>,
            ) -> ::ferry_core::error::Result<::ferry_core::model::Agent> {
                use $crate::db::{db_error, to_json, truncate};
                use $crate::rows::{select_agent, AgentRow};
                use $crate::agents::lost_error;
                let at = truncate(at);
                let agent_id = id.to_string();
                let mut tx = self.writer().begin().await.map_err(db_error)?;
                let found = sqlx::query(
                    "UPDATE agents SET state = 'revoked', revoked_at = COALESCE(revoked_at, $2), \
                     session_id = NULL WHERE id = $1",
                )
                .bind(&agent_id)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?
                .rows_affected();
                if found == 0 {
                    return Err(::ferry_core::error::Error::not_found(format!("no agent `{id}`")));
                }
                let cancelled = to_json(&::ferry_core::model::TaskError {
                    kind: "cancelled".into(),
                    message: "the agent was revoked before the task was sent".into(),
                    retryable: true,
                });
                sqlx::query(
                    "UPDATE tasks SET state = 'cancelled', error = $2, updated_at = $3 \
                     WHERE agent_id = $1 AND state IN ('pending')",
                )
                .bind(&agent_id)
                .bind(cancelled)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
                sqlx::query(
                    "UPDATE tasks SET state = 'lost', error = $2, updated_at = $3 \
                     WHERE agent_id = $1 AND state IN ('assigned', 'running')",
                )
                .bind(&agent_id)
                .bind(lost_error("the agent holding the task was revoked"))
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
                let agent = sqlx::query_as::<_, AgentRow>(select_agent!("WHERE a.id = $1"))
                    .bind(&agent_id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_error)?
                    .into_model()?;
                tx.commit().await.map_err(db_error)?;
                Ok(agent)
            }

            async fn revoked_agents_since(
                &self,
                since: chrono::DateTime<chrono::Utc>,
            ) -> ::ferry_core::error::Result<Vec<(uuid::Uuid, chrono::DateTime<chrono::Utc>)>> {
                use $crate::db::{db_error, parse_uuid, truncate};
                let rows: Vec<(String, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
                    "SELECT id, revoked_at FROM agents WHERE revoked_at > $1 \
                     ORDER BY revoked_at, id",
                )
                .bind(truncate(since))
                .fetch_all(self.reader())
                .await
                .map_err(db_error)?;
                rows.into_iter()
                    .map(|(id, at)| Ok((parse_uuid(&id)?, at)))
                    .collect()
            }

            async fn agent_connected(
                &self,
                id: uuid::Uuid,
                session_id: uuid::Uuid,
                software_version: &str,
                capabilities: &[String],
                at: chrono::DateTime<chrono::Utc>,
            ) -> ::ferry_core::error::Result<::ferry_core::model::Agent> {
                use $crate::db::{db_error, to_json, truncate};
                use $crate::rows::{select_agent, AgentRow};
                let mut tx = self.writer().begin().await.map_err(db_error)?;
                let updated = sqlx::query(
                    "UPDATE agents SET state = 'connected', session_id = $2, \
                     software_version = $3, capabilities = $4, connected_at = $5, \
                     last_seen_at = $5 WHERE id = $1 AND revoked_at IS NULL",
                )
                .bind(id.to_string())
                .bind(session_id.to_string())
                .bind(software_version)
                .bind(to_json(&capabilities))
                .bind(truncate(at))
                .execute(&mut *tx)
                .await
                .map_err(db_error)?
                .rows_affected();
                if updated == 0 {
                    return Err(::ferry_core::error::Error::unauthenticated(format!(
                        "agent `{id}` was revoked; enroll again with a new join token"
                    )));
                }
                let agent = sqlx::query_as::<_, AgentRow>(select_agent!("WHERE a.id = $1"))
                    .bind(id.to_string())
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_error)?
                    .into_model()?;
                tx.commit().await.map_err(db_error)?;
                Ok(agent)
            }

            async fn agent_disconnected(
                &self,
                id: uuid::Uuid,
                session_id: uuid::Uuid,
                at: chrono::DateTime<chrono::Utc>,
            ) -> ::ferry_core::error::Result<bool> {
                use $crate::db::{db_error, truncate};
                let updated = sqlx::query(
                    "UPDATE agents SET state = 'disconnected', session_id = NULL, \
                     last_seen_at = $3 WHERE id = $1 AND session_id = $2 AND state = 'connected'",
                )
                .bind(id.to_string())
                .bind(session_id.to_string())
                .bind(truncate(at))
                .execute(self.writer())
                .await
                .map_err(db_error)?
                .rows_affected();
                Ok(updated == 1)
            }

            async fn touch_agents(
                &self,
                ids: &[uuid::Uuid],
                at: chrono::DateTime<chrono::Utc>,
            ) -> ::ferry_core::error::Result<()> {
                use $crate::db::{db_error, truncate};
                let at = truncate(at);
                for chunk in ids.chunks(Self::MAX_BINDS - 1) {
                    let mut qb =
                        sqlx::QueryBuilder::<$db>::new("UPDATE agents SET last_seen_at = ");
                    qb.push_bind(at).push(" WHERE id IN (");
                    let mut list = qb.separated(", ");
                    for id in chunk {
                        list.push_bind(id.to_string());
                    }
                    qb.push(")");
                    qb.build().execute(self.writer()).await.map_err(db_error)?;
                }
                Ok(())
            }

            async fn mark_agents_down(
                &self,
                silent_since: chrono::DateTime<chrono::Utc>,
            ) -> ::ferry_core::error::Result<Vec<uuid::Uuid>> {
                use $crate::db::{db_error, parse_uuid, truncate};
                let ids: Vec<String> = sqlx::query_scalar(
                    "UPDATE agents SET state = 'down', session_id = NULL \
                     WHERE state IN ('connected', 'disconnected') AND last_seen_at < $1 \
                     RETURNING id",
                )
                .bind(truncate(silent_since))
                .fetch_all(self.writer())
                .await
                .map_err(db_error)?;
                ids.iter().map(|id| parse_uuid(id)).collect()
            }

            // ---- tasks --------------------------------------------------------------------

            async fn create_task(
                &self,
                new: &$crate::NewTask<'_>,
            ) -> ::ferry_core::error::Result<::ferry_core::model::Task> {
                let mut conn = self
                    .writer()
                    .acquire()
                    .await
                    .map_err($crate::db::db_error)?;
                Self::insert_task(&mut conn, new).await
            }

            async fn pending_tasks(
                &self,
                limit: u32,
            ) -> ::ferry_core::error::Result<Vec<::ferry_core::model::Task>> {
                use $crate::db::db_error;
                use $crate::rows::{task_columns, TaskRow};
                sqlx::query_as::<_, TaskRow>(concat!(
                    "SELECT ",
                    task_columns!(),
                    " FROM tasks WHERE state = 'pending' ORDER BY id LIMIT $1"
                ))
                .bind(i64::from(limit))
                .fetch_all(self.reader())
                .await
                .map_err(db_error)?
                .into_iter()
                .map(TaskRow::into_model)
                .collect()
            }

            async fn get_task(
                &self,
                id: uuid::Uuid,
            ) -> ::ferry_core::error::Result<::ferry_core::model::Task> {
                use $crate::db::db_error;
                use $crate::rows::{task_columns, TaskRow};
                sqlx::query_as::<_, TaskRow>(concat!(
                    "SELECT ",
                    task_columns!(),
                    " FROM tasks WHERE id = $1"
                ))
                .bind(id.to_string())
                .fetch_optional(self.reader())
                .await
                .map_err(db_error)?
                .ok_or_else(|| ::ferry_core::error::Error::not_found(format!("no task `{id}`")))?
                .into_model()
            }

            async fn get_tasks(
                &self,
                ids: &[uuid::Uuid],
            ) -> ::ferry_core::error::Result<Vec<::ferry_core::model::Task>> {
                use $crate::db::db_error;
                use $crate::rows::{task_columns, TaskRow};
                let mut tasks = Vec::with_capacity(ids.len());
                for chunk in ids.chunks(Self::MAX_BINDS) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(concat!(
                        "SELECT ",
                        task_columns!(),
                        " FROM tasks WHERE id"
                    ));
                    $crate::db::push_in_list(&mut qb, chunk.iter().map(ToString::to_string));
                    for row in qb
                        .build_query_as::<TaskRow>()
                        .fetch_all(self.reader())
                        .await
                        .map_err(db_error)?
                    {
                        tasks.push(row.into_model()?);
                    }
                }
                Ok(tasks)
            }

            async fn task_statuses(
                &self,
                ids: &[uuid::Uuid],
            ) -> ::ferry_core::error::Result<Vec<$crate::TaskStatus>> {
                use $crate::db::{corrupt, db_error, parse_uuid};
                use $crate::rows::{parse_task_error, parse_task_result};
                let mut statuses = Vec::with_capacity(ids.len());
                for chunk in ids.chunks(Self::MAX_BINDS) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "SELECT id, state, result, error FROM tasks WHERE id",
                    );
                    $crate::db::push_in_list(&mut qb, chunk.iter().map(ToString::to_string));
                    let rows: Vec<(String, String, Option<String>, Option<String>)> = qb
                        .build_query_as()
                        .fetch_all(self.reader())
                        .await
                        .map_err(db_error)?;
                    for (id, state, result, error) in rows {
                        statuses.push($crate::TaskStatus {
                            id: parse_uuid(&id)?,
                            state: ::ferry_core::model::TaskState::parse(&state)
                                .ok_or_else(|| corrupt("task state", &state))?,
                            result: parse_task_result(result.as_deref())?,
                            error: parse_task_error(error.as_deref())?,
                        });
                    }
                }
                Ok(statuses)
            }

            async fn tasks_to_deliver(
                &self,
                agent_id: uuid::Uuid,
                limit: u32,
            ) -> ::ferry_core::error::Result<Vec<::ferry_core::model::Task>> {
                use $crate::db::db_error;
                use $crate::rows::{task_columns, TaskRow};
                // From the writer: a task stored a moment ago must not be missed because a
                // reader connection has not seen the commit yet.
                sqlx::query_as::<_, TaskRow>(concat!(
                    "SELECT ",
                    task_columns!(),
                    " FROM tasks WHERE agent_id = $1 \
                     AND state IN ('pending', 'assigned', 'running') ORDER BY id LIMIT $2"
                ))
                .bind(agent_id.to_string())
                .bind(i64::from(limit))
                .fetch_all(self.writer())
                .await
                .map_err(db_error)?
                .into_iter()
                .map(TaskRow::into_model)
                .collect()
            }

            async fn unassigned_tasks(
                &self,
                cluster_id: uuid::Uuid,
                limit: u32,
            ) -> ::ferry_core::error::Result<Vec<::ferry_core::model::Task>> {
                use $crate::db::db_error;
                use $crate::rows::{task_columns, TaskRow};
                // From the writer, like tasks_to_deliver: a task stored a moment ago counts.
                sqlx::query_as::<_, TaskRow>(concat!(
                    "SELECT ",
                    task_columns!(),
                    " FROM tasks WHERE cluster_id = $1 AND agent_id IS NULL \
                     AND state = 'pending' ORDER BY id LIMIT $2"
                ))
                .bind(cluster_id.to_string())
                .bind(i64::from(limit))
                .fetch_all(self.writer())
                .await
                .map_err(db_error)?
                .into_iter()
                .map(TaskRow::into_model)
                .collect()
            }

            async fn assign_task(
                &self,
                id: uuid::Uuid,
                agent_id: uuid::Uuid,
                lease_deadline: chrono::DateTime<chrono::Utc>,
                at: chrono::DateTime<chrono::Utc>,
            ) -> ::ferry_core::error::Result<Option<::ferry_core::model::Task>> {
                use $crate::db::{db_error, truncate};
                use $crate::rows::{task_columns, TaskRow};
                sqlx::query_as::<_, TaskRow>(concat!(
                    "UPDATE tasks SET state = 'assigned', agent_id = $2, \
                     node = COALESCE((SELECT node FROM agents WHERE agents.id = $2), node), \
                     generation = generation + 1, lease_deadline = $3, updated_at = $4 \
                     WHERE id = $1 AND state IN ('pending') RETURNING ",
                    task_columns!()
                ))
                .bind(id.to_string())
                .bind(agent_id.to_string())
                .bind(truncate(lease_deadline))
                .bind(truncate(at))
                .fetch_optional(self.writer())
                .await
                .map_err(db_error)?
                .map(TaskRow::into_model)
                .transpose()
            }

            async fn renew_leases(
                &self,
                agent_id: uuid::Uuid,
                tasks: &[::ferry_core::model::TaskRef],
                lease_deadline: chrono::DateTime<chrono::Utc>,
                at: chrono::DateTime<chrono::Utc>,
            ) -> ::ferry_core::error::Result<u64> {
                use $crate::db::{db_error, truncate};
                if tasks.is_empty() {
                    return Ok(0);
                }
                let mut renewed = 0;
                let mut tx = self.writer().begin().await.map_err(db_error)?;
                for task in tasks {
                    renewed += sqlx::query(
                        "UPDATE tasks SET state = 'running', lease_deadline = $5, updated_at = $6 \
                         WHERE id = $1 AND attempt = $2 AND generation = $3 AND agent_id = $4 \
                         AND state IN ('assigned', 'running')",
                    )
                    .bind(task.task_id.to_string())
                    .bind(task.attempt)
                    .bind(task.generation)
                    .bind(agent_id.to_string())
                    .bind(truncate(lease_deadline))
                    .bind(truncate(at))
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?
                    .rows_affected();
                }
                tx.commit().await.map_err(db_error)?;
                Ok(renewed)
            }

            async fn record_progress(
                &self,
                agent_id: uuid::Uuid,
                task: &::ferry_core::model::TaskRef,
                progress: &::ferry_core::model::TaskProgress,
                lease_deadline: chrono::DateTime<chrono::Utc>,
            ) -> ::ferry_core::error::Result<bool> {
                use $crate::db::{db_error, truncate};
                use $crate::agents::progress_json;
                let updated = sqlx::query(
                    "UPDATE tasks SET state = 'running', progress = $5, lease_deadline = $6, \
                     updated_at = $7 \
                     WHERE id = $1 AND attempt = $2 AND generation = $3 AND agent_id = $4 \
                     AND state IN ('assigned', 'running')",
                )
                .bind(task.task_id.to_string())
                .bind(task.attempt)
                .bind(task.generation)
                .bind(agent_id.to_string())
                .bind(progress_json(progress))
                .bind(truncate(lease_deadline))
                .bind(truncate(progress.at))
                .execute(self.writer())
                .await
                .map_err(db_error)?
                .rows_affected();
                Ok(updated == 1)
            }

            async fn complete_task(
                &self,
                agent_id: uuid::Uuid,
                task: &::ferry_core::model::TaskRef,
                outcome: &::ferry_core::model::TaskOutcome,
                progress: Option<&::ferry_core::model::TaskProgress>,
                at: chrono::DateTime<chrono::Utc>,
            ) -> ::ferry_core::error::Result<Option<::ferry_core::model::Task>> {
                use ::ferry_core::model::TaskOutcome;
                use $crate::db::{db_error, to_json, truncate};
                use $crate::rows::{task_columns, TaskRow};
                use $crate::agents::progress_json;
                let (state, result, error) = match outcome {
                    TaskOutcome::Succeeded(value) => ("succeeded", Some(to_json(value)), None),
                    TaskOutcome::Failed(error) => ("failed", None, Some(to_json(error))),
                };
                let progress = progress.map(progress_json);
                sqlx::query_as::<_, TaskRow>(concat!(
                    "UPDATE tasks SET state = $5, result = $6, error = $7, lease_deadline = NULL, \
                     updated_at = $8, progress = COALESCE($9, progress) \
                     WHERE id = $1 AND attempt = $2 AND generation = $3 AND agent_id = $4 \
                     AND state IN ('assigned', 'running') RETURNING ",
                    task_columns!()
                ))
                .bind(task.task_id.to_string())
                .bind(task.attempt)
                .bind(task.generation)
                .bind(agent_id.to_string())
                .bind(state)
                .bind(result)
                .bind(error)
                .bind(truncate(at))
                .bind(progress)
                .fetch_optional(self.writer())
                .await
                .map_err(db_error)?
                .map(TaskRow::into_model)
                .transpose()
            }

            async fn expire_leases(
                &self,
                now: chrono::DateTime<chrono::Utc>,
            ) -> ::ferry_core::error::Result<Vec<::ferry_core::model::Task>> {
                use $crate::db::{db_error, truncate};
                use $crate::rows::{task_columns, TaskRow};
                use $crate::agents::lost_error;
                sqlx::query_as::<_, TaskRow>(concat!(
                    "UPDATE tasks SET state = 'lost', error = $2, updated_at = $1 \
                     WHERE state IN ('assigned', 'running') AND lease_deadline < $1 RETURNING ",
                    task_columns!()
                ))
                .bind(truncate(now))
                .bind(lost_error(
                    "the lease ran out: the agent stopped renewing it (gone, hung or cut off)",
                ))
                .fetch_all(self.writer())
                .await
                .map_err(db_error)?
                .into_iter()
                .map(TaskRow::into_model)
                .collect()
            }

            async fn extend_leases(
                &self,
                deadline: chrono::DateTime<chrono::Utc>,
            ) -> ::ferry_core::error::Result<u64> {
                use $crate::db::{db_error, truncate};
                let deadline = truncate(deadline);
                Ok(sqlx::query(
                    "UPDATE tasks SET lease_deadline = $1 \
                     WHERE state IN ('assigned', 'running') AND lease_deadline < $1",
                )
                .bind(deadline)
                .execute(self.writer())
                .await
                .map_err(db_error)?
                .rows_affected())
            }
        }
    };
}
pub(crate) use impl_agent_store;
