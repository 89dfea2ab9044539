//! What both stores share: row types and their conversion to the model, error mapping, the import
//! plan, and — in [`impl_store!`] — the one implementation of [`Store`](crate::Store) that each
//! backend expands for itself.
//!
//! The SQL is written once for both databases: `$N` placeholders (SQLite accepts them too), ids as
//! UUID text, JSON as text, and the same column names in both migrations. What really differs is
//! passed to the macro (row locking, the principal filter) or is an inherent method of the store
//! (`insert_shares`, the one hot bulk path).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, SubsecRound, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use ferry_core::error::{Error, Result};
use ferry_core::model::{
    Agent, AgentState, AuditOutcome, AuditRecord, CachingMode, Cluster, Group, GroupSummary,
    InventoryCounts, InventoryDocument, OsGeneration, Permission, Resource, ResourceKind,
    ResourceState, Role, Share, SnapshotInfo, Task, TaskError, TaskState, TokenInfo,
};

/// Idempotency records older than this are forgotten.
pub(crate) const IDEMPOTENCY_TTL: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// The current time at the precision both databases keep (Postgres stores microseconds), so a
/// value returned from a write equals the one read back later.
pub(crate) fn now() -> DateTime<Utc> {
    truncate(Utc::now())
}

pub(crate) fn truncate(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

// ---- errors ---------------------------------------------------------------------------------

/// Maps a database failure that has no domain meaning: unreachable database -> `Unavailable`,
/// anything else -> `Internal`. The database text only goes to the log.
pub(crate) fn db_error(err: sqlx::Error) -> Error {
    let transient = match &err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => true,
        sqlx::Error::Database(db) => is_transient(db.as_ref()),
        _ => false,
    };
    if transient {
        Error::unavailable(err)
    } else {
        Error::internal(err)
    }
}

fn is_transient(db: &dyn sqlx::error::DatabaseError) -> bool {
    let Some(code) = db.code() else {
        return false;
    };
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        // SQLITE_BUSY (5) and SQLITE_LOCKED (6), including their extended codes.
        return code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6));
    }
    // Postgres SQLSTATE: connection exceptions, shutdown, too many connections, and
    // serialization failures / deadlocks, which succeed when the client retries.
    code.starts_with("08")
        || code.starts_with("57P")
        || matches!(code.as_ref(), "53300" | "40001" | "40P01")
}

pub(crate) fn is_foreign_key_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_foreign_key_violation())
}

pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// `conflict()` for a unique violation, [`db_error`] for anything else.
pub(crate) fn unique_or(err: sqlx::Error, conflict: impl FnOnce() -> Error) -> Error {
    if is_unique_violation(&err) {
        conflict()
    } else {
        db_error(err)
    }
}

pub(crate) fn corrupt(what: &str, value: &str) -> Error {
    Error::internal(format!("database holds an invalid {what}: `{value}`"))
}

pub(crate) fn parse_uuid(value: &str) -> Result<Uuid> {
    Uuid::parse_str(value).map_err(|_| corrupt("id", value))
}

pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(what: &str, value: &str) -> Result<T> {
    serde_json::from_str(value)
        .map_err(|e| Error::internal(format!("database holds invalid {what} JSON: {e}")))
}

/// A task's progress as stored: its time at the store's precision, like every other.
pub(crate) fn progress_json(progress: &ferry_core::model::TaskProgress) -> String {
    to_json(&ferry_core::model::TaskProgress {
        at: truncate(progress.at),
        ..progress.clone()
    })
}

pub(crate) fn parse_task_result(result: Option<&str>) -> Result<Option<serde_json::Value>> {
    result.map(|r| parse_json("task result", r)).transpose()
}

pub(crate) fn parse_task_error(
    error: Option<&str>,
) -> Result<Option<ferry_core::model::TaskError>> {
    error.map(|e| parse_json("task error", e)).transpose()
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data serializes")
}

/// The serde spelling, so the column reads like the API.
pub(crate) fn caching_str(mode: CachingMode) -> &'static str {
    match mode {
        CachingMode::Manual => "manual",
        CachingMode::Documents => "documents",
        CachingMode::Programs => "programs",
        CachingMode::None => "none",
        CachingMode::BranchCache => "branch_cache",
    }
}

fn parse_caching(value: &str) -> Result<CachingMode> {
    Ok(match value {
        "manual" => CachingMode::Manual,
        "documents" => CachingMode::Documents,
        "programs" => CachingMode::Programs,
        "none" => CachingMode::None,
        "branch_cache" => CachingMode::BranchCache,
        other => return Err(corrupt("caching mode", other)),
    })
}

fn parse_state(value: &str) -> Result<ResourceState> {
    ResourceState::parse(value).ok_or_else(|| corrupt("resource state", value))
}

/// Message of a failed `If-Match` on a cluster record.
pub(crate) fn check_version(cluster: &Cluster, expected: Option<i64>) -> Result<()> {
    match expected {
        Some(version) if version != cluster.version => Err(Error::precondition_failed(format!(
            "cluster `{}` has changed: its current ETag is {}",
            cluster.name,
            cluster.etag()
        ))),
        _ => Ok(()),
    }
}

// ---- rows -----------------------------------------------------------------------------------

/// Columns of [`ClusterRow`], from `clusters c`; the latest snapshot number is looked up in the
/// snapshots primary key rather than kept on the cluster row, so imports never touch the
/// cluster record (and so never invalidate its ETag).
macro_rules! select_cluster {
    ($($tail:literal),*) => {
        concat!(
            "SELECT c.id, c.name, c.os, c.description, c.version, ",
            "(SELECT max(s.number) FROM snapshots s WHERE s.cluster_id = c.id) AS latest_snapshot, ",
            "c.created_at, c.updated_at FROM clusters c ",
            $($tail),*
        )
    };
}
pub(crate) use select_cluster;

#[derive(sqlx::FromRow)]
pub(crate) struct ClusterRow {
    id: String,
    name: String,
    os: String,
    description: String,
    version: i64,
    latest_snapshot: Option<i64>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl ClusterRow {
    pub(crate) fn into_model(self) -> Result<Cluster> {
        Ok(Cluster {
            id: parse_uuid(&self.id)?,
            os: OsGeneration::parse(&self.os).ok_or_else(|| corrupt("OS generation", &self.os))?,
            name: self.name,
            description: self.description,
            version: self.version,
            latest_snapshot: self.latest_snapshot,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

macro_rules! select_snapshot {
    ($($tail:literal),*) => {
        concat!(
            "SELECT cluster_id, number, content_hash, node_count, network_count, disk_count, ",
            "group_count, resource_count, share_count, permission_count, created_at, created_by ",
            $($tail),*
        )
    };
}
pub(crate) use select_snapshot;

#[derive(sqlx::FromRow)]
pub(crate) struct SnapshotRow {
    cluster_id: String,
    number: i64,
    content_hash: String,
    node_count: i64,
    network_count: i64,
    disk_count: i64,
    group_count: i64,
    resource_count: i64,
    share_count: i64,
    permission_count: i64,
    created_at: DateTime<Utc>,
    created_by: String,
}

impl SnapshotRow {
    pub(crate) fn number(&self) -> i64 {
        self.number
    }

    pub(crate) fn content_hash(&self) -> &str {
        &self.content_hash
    }

    pub(crate) fn into_model(self) -> Result<SnapshotInfo> {
        Ok(SnapshotInfo {
            cluster_id: parse_uuid(&self.cluster_id)?,
            number: self.number,
            content_hash: self.content_hash,
            counts: InventoryCounts {
                nodes: self.node_count,
                networks: self.network_count,
                disks: self.disk_count,
                groups: self.group_count,
                resources: self.resource_count,
                shares: self.share_count,
                permissions: self.permission_count,
            },
            created_at: self.created_at,
            created_by: self.created_by,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct SnapshotDocumentRow {
    #[sqlx(flatten)]
    pub(crate) info: SnapshotRow,
    pub(crate) document: String,
}

macro_rules! select_group {
    ($($tail:literal),*) => {
        concat!(
            "SELECT g.id, g.cluster_id, c.name AS cluster_name, g.name, g.owner_node, g.state, ",
            "g.resource_count, g.share_count FROM groups g JOIN clusters c ON c.id = g.cluster_id ",
            $($tail),*
        )
    };
}
pub(crate) use select_group;

#[derive(sqlx::FromRow)]
pub(crate) struct GroupRow {
    id: String,
    cluster_id: String,
    cluster_name: String,
    name: String,
    owner_node: Option<String>,
    state: String,
    resource_count: i64,
    share_count: i64,
}

impl GroupRow {
    pub(crate) fn into_model(self) -> Result<GroupSummary> {
        Ok(GroupSummary {
            id: parse_uuid(&self.id)?,
            cluster_id: parse_uuid(&self.cluster_id)?,
            cluster_name: self.cluster_name,
            name: self.name,
            owner_node: self.owner_node,
            state: parse_state(&self.state)?,
            resource_count: self.resource_count,
            share_count: self.share_count,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ResourceRow {
    name: String,
    kind: String,
    state: String,
    properties: String,
    depends_on: String,
}

impl ResourceRow {
    pub(crate) fn into_model(self) -> Result<Resource> {
        Ok(Resource {
            kind: ResourceKind::parse(&self.kind)
                .ok_or_else(|| corrupt("resource kind", &self.kind))?,
            state: parse_state(&self.state)?,
            properties: parse_json("resource properties", &self.properties)?,
            depends_on: parse_json("resource dependencies", &self.depends_on)?,
            name: self.name,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ShareRow {
    name: String,
    path: String,
    description: String,
    permissions: String,
    caching: String,
    access_based_enumeration: bool,
    continuous_availability: bool,
    encrypt_data: bool,
    user_limit: Option<i64>,
}

impl ShareRow {
    pub(crate) fn into_model(self) -> Result<Share> {
        Ok(Share {
            permissions: parse_json::<Vec<Permission>>("share permissions", &self.permissions)?,
            caching: parse_caching(&self.caching)?,
            name: self.name,
            path: self.path,
            description: self.description,
            access_based_enumeration: self.access_based_enumeration,
            continuous_availability: self.continuous_availability,
            encrypt_data: self.encrypt_data,
            user_limit: self.user_limit,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct TokenRow {
    id: String,
    name: String,
    role: String,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl TokenRow {
    pub(crate) fn into_model(self) -> Result<TokenInfo> {
        Ok(TokenInfo {
            id: parse_uuid(&self.id)?,
            role: Role::parse(&self.role).ok_or_else(|| corrupt("role", &self.role))?,
            name: self.name,
            created_at: self.created_at,
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow {
    id: i64,
    at: DateTime<Utc>,
    actor: String,
    action: String,
    target: String,
    source: Option<String>,
    outcome: String,
    detail: Option<String>,
}

impl AuditRow {
    pub(crate) fn into_model(self) -> Result<AuditRecord> {
        Ok(AuditRecord {
            outcome: AuditOutcome::parse(&self.outcome)
                .ok_or_else(|| corrupt("audit outcome", &self.outcome))?,
            id: self.id,
            at: self.at,
            actor: self.actor,
            action: self.action,
            target: self.target,
            source: self.source,
            detail: self.detail,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct IdempotencyRow {
    pub(crate) request_hash: String,
    pub(crate) status: Option<i64>,
    pub(crate) body: Option<String>,
    pub(crate) state: String,
}

pub(crate) const IDEMPOTENCY_PENDING: &str = "pending";
pub(crate) const IDEMPOTENCY_DONE: &str = "done";

impl IdempotencyRow {
    pub(crate) fn into_claim(self) -> Result<crate::IdempotencyClaim> {
        match (self.state.as_str(), self.status, self.body) {
            (IDEMPOTENCY_PENDING, _, _) => Ok(crate::IdempotencyClaim::InProgress),
            (IDEMPOTENCY_DONE, Some(status), Some(body)) => {
                Ok(crate::IdempotencyClaim::Completed {
                    request_hash: self.request_hash,
                    status: u16::try_from(status)
                        .map_err(|_| corrupt("HTTP status", &status.to_string()))?,
                    body,
                })
            }
            (state, _, _) => Err(corrupt("idempotency state", state)),
        }
    }
}

// ---- agents and tasks -----------------------------------------------------------------------

/// Columns of [`AgentRow`], from `agents a` joined with its cluster `c`.
macro_rules! agent_columns {
    () => {
        "a.id, a.cluster_id, c.name AS cluster_name, a.node, a.software_version, a.capabilities, \
         a.state, a.session_id, a.connected_at, a.last_seen_at, a.revoked_at, a.created_at"
    };
}
pub(crate) use agent_columns;

macro_rules! select_agent {
    ($($tail:literal),*) => {
        concat!(
            "SELECT ",
            $crate::common::agent_columns!(),
            " FROM agents a JOIN clusters c ON c.id = a.cluster_id ",
            $($tail),*
        )
    };
}
pub(crate) use select_agent;

#[derive(sqlx::FromRow)]
pub(crate) struct AgentRow {
    id: String,
    cluster_id: String,
    cluster_name: String,
    node: String,
    software_version: String,
    capabilities: String,
    state: String,
    session_id: Option<String>,
    connected_at: Option<DateTime<Utc>>,
    last_seen_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

impl AgentRow {
    pub(crate) fn into_model(self) -> Result<Agent> {
        Ok(Agent {
            id: parse_uuid(&self.id)?,
            cluster_id: parse_uuid(&self.cluster_id)?,
            cluster_name: self.cluster_name,
            node: self.node,
            software_version: self.software_version,
            capabilities: parse_json("agent capabilities", &self.capabilities)?,
            state: AgentState::parse(&self.state)
                .ok_or_else(|| corrupt("agent state", &self.state))?,
            session_id: self.session_id.as_deref().map(parse_uuid).transpose()?,
            connected_at: self.connected_at,
            last_seen_at: self.last_seen_at,
            revoked_at: self.revoked_at,
            created_at: self.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AgentCredentialsRow {
    #[sqlx(flatten)]
    pub(crate) agent: AgentRow,
    pub(crate) secret_hash: String,
}

/// Why a join token cannot be used, from its stored row.
#[derive(sqlx::FromRow)]
pub(crate) struct JoinTokenStateRow {
    pub(crate) cluster_id: String,
    pub(crate) expires_at: DateTime<Utc>,
    pub(crate) uses_left: i64,
}

impl JoinTokenStateRow {
    pub(crate) fn refusal(&self, cluster_id: Uuid, at: DateTime<Utc>) -> Error {
        if self.uses_left <= 0 {
            Error::unauthenticated("this join token has been used up; create a new one")
        } else if self.expires_at <= at {
            Error::unauthenticated(format!(
                "this join token expired at {}; create a new one",
                self.expires_at.to_rfc3339()
            ))
        } else if self.cluster_id != cluster_id.to_string() {
            Error::unauthenticated("this join token was issued for another cluster")
        } else {
            Error::unauthenticated("this join token cannot be used")
        }
    }
}

/// The columns of [`TaskRow`], for `SELECT` and `RETURNING` alike.
macro_rules! task_columns {
    () => {
        "id, cluster_id, node, agent_id, action, state, attempt, generation, lease_deadline, \
         result, error, progress, created_at, updated_at, created_by"
    };
}
pub(crate) use task_columns;

#[derive(sqlx::FromRow)]
pub(crate) struct TaskRow {
    id: String,
    cluster_id: String,
    node: String,
    agent_id: Option<String>,
    action: String,
    state: String,
    attempt: i64,
    generation: i64,
    lease_deadline: Option<DateTime<Utc>>,
    result: Option<String>,
    error: Option<String>,
    progress: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    created_by: String,
}

impl TaskRow {
    pub(crate) fn into_model(self) -> Result<Task> {
        Ok(Task {
            id: parse_uuid(&self.id)?,
            cluster_id: parse_uuid(&self.cluster_id)?,
            node: self.node,
            agent_id: self.agent_id.as_deref().map(parse_uuid).transpose()?,
            action: parse_json("task action", &self.action)?,
            state: TaskState::parse(&self.state)
                .ok_or_else(|| corrupt("task state", &self.state))?,
            attempt: self.attempt,
            generation: self.generation,
            lease_deadline: self.lease_deadline,
            result: parse_task_result(self.result.as_deref())?,
            error: parse_task_error(self.error.as_deref())?,
            progress: self
                .progress
                .as_deref()
                .map(|p| parse_json("task progress", p))
                .transpose()?,
            created_at: self.created_at,
            updated_at: self.updated_at,
            created_by: self.created_by,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct JobRow {
    id: String,
    name: String,
    state: String,
    request: String,
    approval: Option<String>,
    created_by: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: i64,
}

impl JobRow {
    pub(crate) fn into_model(
        self,
        summary: std::collections::BTreeMap<String, u32>,
    ) -> Result<ferry_core::model::Job> {
        Ok(ferry_core::model::Job {
            id: parse_uuid(&self.id)?,
            name: self.name,
            state: ferry_core::model::JobState::parse(&self.state)
                .ok_or_else(|| corrupt("job state", &self.state))?,
            request: parse_json("job request", &self.request)?,
            approval: self
                .approval
                .as_deref()
                .map(|a| parse_json("job approval", a))
                .transpose()?,
            created_by: self.created_by,
            created_at: self.created_at,
            updated_at: self.updated_at,
            summary,
            version: self.version,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct JobEventRow {
    seq: i64,
    at: DateTime<Utc>,
    job_id: String,
    kind: String,
    grp: Option<String>,
    step: Option<i64>,
    state: String,
    message: Option<String>,
}

impl JobEventRow {
    pub(crate) fn into_model(self) -> Result<ferry_core::model::JobEvent> {
        Ok(ferry_core::model::JobEvent {
            seq: self.seq,
            at: self.at,
            job_id: parse_uuid(&self.job_id)?,
            kind: self.kind,
            group: self.grp,
            step: self.step.and_then(|s| u32::try_from(s).ok()),
            state: self.state,
            message: self.message,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct WebhookRow {
    id: String,
    url: String,
    secret: String,
    job_id: Option<String>,
    delivered: i64,
    failures: i64,
    next_attempt: Option<DateTime<Utc>>,
    last_error: Option<String>,
    created_by: String,
    created_at: DateTime<Utc>,
}

impl WebhookRow {
    pub(crate) fn into_model(self) -> Result<ferry_core::model::Webhook> {
        Ok(ferry_core::model::Webhook {
            id: parse_uuid(&self.id)?,
            url: self.url,
            secret: self.secret,
            job_id: self.job_id.as_deref().map(parse_uuid).transpose()?,
            delivered: self.delivered,
            failures: u32::try_from(self.failures).unwrap_or(u32::MAX),
            next_attempt: self.next_attempt,
            last_error: self.last_error,
            created_by: self.created_by,
            created_at: self.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ValidationRow {
    id: String,
    cluster_id: String,
    cluster: String,
    version: i64,
    state: String,
    task_id: Option<String>,
    thresholds: String,
    facts: Option<String>,
    findings: String,
    overall: Option<String>,
    error: Option<String>,
    created_by: String,
    created_at: DateTime<Utc>,
    completed_at: Option<DateTime<Utc>>,
}

/// The columns of [`ValidationRow`], the cluster's current name joined in.
macro_rules! select_validation {
    ($where:literal) => {
        concat!(
            "SELECT v.id, v.cluster_id, c.name AS cluster, v.version, v.state, v.task_id, \
             v.thresholds, v.facts, v.findings, v.overall, v.error, v.created_by, v.created_at, \
             v.completed_at FROM validations v JOIN clusters c ON c.id = v.cluster_id ",
            $where
        )
    };
}
pub(crate) use select_validation;

impl ValidationRow {
    pub(crate) fn into_model(self) -> Result<ferry_core::model::Validation> {
        Ok(ferry_core::model::Validation {
            id: parse_uuid(&self.id)?,
            cluster_id: parse_uuid(&self.cluster_id)?,
            cluster: self.cluster,
            version: self.version,
            state: ferry_core::model::ValidationState::parse(&self.state)
                .ok_or_else(|| corrupt("validation state", &self.state))?,
            task_id: self.task_id.as_deref().map(parse_uuid).transpose()?,
            thresholds: parse_json("validation thresholds", &self.thresholds)?,
            facts: self
                .facts
                .as_deref()
                .map(|f| parse_json("validation facts", f))
                .transpose()?,
            findings: parse_json("validation findings", &self.findings)?,
            overall: self
                .overall
                .as_deref()
                .map(|o| {
                    ferry_core::validation::Verdict::parse(o).ok_or_else(|| corrupt("verdict", o))
                })
                .transpose()?,
            error: self.error,
            created_by: self.created_by,
            created_at: self.created_at,
            completed_at: self.completed_at,
        })
    }
}

/// The error a lost attempt carries.
pub(crate) fn lost_error(message: &str) -> String {
    to_json(&TaskError {
        kind: "lost".into(),
        message: message.into(),
        retryable: true,
    })
}

// ---- import ---------------------------------------------------------------------------------

/// A group row to upsert.
pub(crate) struct GroupInsert<'a> {
    pub(crate) id: &'a str,
    pub(crate) content_hash: &'a str,
    pub(crate) name: &'a str,
    pub(crate) owner_node: Option<&'a str>,
    pub(crate) state: &'static str,
    pub(crate) resource_count: i64,
    pub(crate) share_count: i64,
}

pub(crate) struct ResourceInsert<'a> {
    pub(crate) group_id: &'a str,
    pub(crate) name: &'a str,
    pub(crate) kind: &'static str,
    pub(crate) state: &'static str,
    pub(crate) properties: String,
    pub(crate) depends_on: String,
}

pub(crate) struct ShareInsert<'a> {
    pub(crate) group_id: &'a str,
    pub(crate) name: &'a str,
    pub(crate) name_folded: String,
    pub(crate) path: &'a str,
    pub(crate) description: &'a str,
    pub(crate) permissions: String,
    /// JSON array of the distinct lowercased principals, for the principal filter.
    pub(crate) principals: String,
    pub(crate) caching: &'static str,
    pub(crate) access_based_enumeration: bool,
    pub(crate) continuous_availability: bool,
    pub(crate) encrypt_data: bool,
    pub(crate) user_limit: Option<i64>,
}

/// How an import changes the current groups. Groups are matched by exact name, so a group keeps
/// its id across imports; a group whose content hash is unchanged keeps its resources and shares
/// untouched, which makes re-importing a large, slightly changed inventory cheap.
pub(crate) struct GroupPlan {
    /// One per document group, in document order.
    pub(crate) ids: Vec<String>,
    pub(crate) hashes: Vec<String>,
    /// Per document group: new, or its content differs from the stored one.
    pub(crate) changed: Vec<bool>,
    /// Existing groups whose content changed: their resources and shares are replaced.
    pub(crate) stale: Vec<String>,
    /// Existing groups that are no longer in the document.
    pub(crate) removed: Vec<String>,
}

impl GroupPlan {
    /// `existing`: (name, id, content hash) of the cluster's current groups.
    pub(crate) fn new(
        document: &InventoryDocument,
        existing: Vec<(String, String, String)>,
    ) -> Self {
        let mut existing: HashMap<String, (String, String)> = existing
            .into_iter()
            .map(|(name, id, hash)| (name, (id, hash)))
            .collect();
        let mut plan = GroupPlan {
            ids: Vec::with_capacity(document.groups.len()),
            hashes: Vec::with_capacity(document.groups.len()),
            changed: Vec::with_capacity(document.groups.len()),
            stale: Vec::new(),
            removed: Vec::new(),
        };
        for group in &document.groups {
            let hash = group_hash(group);
            match existing.remove(&group.name) {
                Some((id, old)) => {
                    let changed = old != hash;
                    if changed {
                        plan.stale.push(id.clone());
                    }
                    plan.ids.push(id);
                    plan.changed.push(changed);
                }
                None => {
                    plan.ids.push(Uuid::now_v7().to_string());
                    plan.changed.push(true);
                }
            }
            plan.hashes.push(hash);
        }
        plan.removed = existing.into_values().map(|(id, _)| id).collect();
        plan
    }
}

/// SHA-256 of a group's JSON (resources and shares included).
fn group_hash(group: &Group) -> String {
    let json = serde_json::to_vec(group).expect("plain data serializes");
    hex::encode(Sha256::digest(&json))
}

/// The current-inventory rows of a document.
pub(crate) struct InventoryRows<'a> {
    pub(crate) groups: Vec<GroupInsert<'a>>,
    pub(crate) resources: Vec<ResourceInsert<'a>>,
    pub(crate) shares: Vec<ShareInsert<'a>>,
}

impl<'a> InventoryRows<'a> {
    /// Rows of the groups the plan marks as changed.
    pub(crate) fn new(document: &'a InventoryDocument, plan: &'a GroupPlan) -> Self {
        let changed = || {
            document
                .groups
                .iter()
                .zip(&plan.ids)
                .zip(&plan.hashes)
                .zip(&plan.changed)
                .filter(|(_, changed)| **changed)
                .map(|(((group, id), hash), _)| (group, id, hash))
        };
        let mut rows = InventoryRows {
            groups: Vec::new(),
            resources: Vec::new(),
            shares: Vec::with_capacity(changed().map(|(g, _, _)| g.shares.len()).sum()),
        };
        for (group, id, hash) in changed() {
            rows.groups.push(GroupInsert {
                id,
                content_hash: hash,
                name: &group.name,
                owner_node: group.owner_node.as_deref(),
                state: group.state.as_str(),
                resource_count: group.resources.len() as i64,
                share_count: group.shares.len() as i64,
            });
            rows.resources
                .extend(group.resources.iter().map(|r| ResourceInsert {
                    group_id: id,
                    name: &r.name,
                    kind: r.kind.as_str(),
                    state: r.state.as_str(),
                    properties: to_json(&r.properties),
                    depends_on: to_json(&r.depends_on),
                }));
            rows.shares.extend(group.shares.iter().map(|s| {
                let mut principals: Vec<String> = s
                    .permissions
                    .iter()
                    .map(|p| p.principal.to_lowercase())
                    .collect();
                principals.sort_unstable();
                principals.dedup();
                ShareInsert {
                    group_id: id,
                    name: &s.name,
                    name_folded: s.name.to_lowercase(),
                    path: &s.path,
                    description: &s.description,
                    permissions: to_json(&s.permissions),
                    principals: to_json(&principals),
                    caching: caching_str(s.caching),
                    access_based_enumeration: s.access_based_enumeration,
                    continuous_availability: s.continuous_availability,
                    encrypt_data: s.encrypt_data,
                    user_limit: s.user_limit,
                }
            }));
        }
        rows
    }
}

/// Whether a document repeats a group name byte for byte. Validation already rejects that; an
/// unvalidated document is reported as the caller's bug rather than as an obscure upsert error.
pub(crate) fn has_duplicate_group(document: &InventoryDocument) -> bool {
    let mut seen = HashSet::new();
    !document.groups.iter().all(|g| seen.insert(g.name.as_str()))
}

// ---- the shared implementation ---------------------------------------------------------------

/// Expands the inherent bulk helpers and `impl Store` for one backend.
///
/// - `$ty`: the store; it has `fn reader(&self) -> &Pool<$db>`, `fn writer(&self) -> &Pool<$db>`
///   and `async fn insert_shares(&mut <$db as Database>::Connection, &[ShareInsert]) ->
///   sqlx::Result<()>`, the bulk insert that dominates a large import.
/// - `lock`: appended to the cluster `SELECT` of a writing transaction (`FOR UPDATE` where several
///   writers can race).
/// - `principal`: SQL around the bound lowercased principal, true when `s.principals` (a JSON
///   array of strings) contains it.
/// - `event_lock`: run before inserting job events, so their sequence numbers commit in order
///   (an advisory lock where several writers can race); `None` where writers are serialised.
/// - `max_binds`: the most bind parameters one statement may carry.
macro_rules! impl_store {
    (
        $ty:ty,
        $db:ty,
        backend = $backend:expr,
        lock = $lock:literal,
        principal = ($principal_open:literal, $principal_close:literal),
        event_lock = $event_lock:expr,
        max_binds = $max_binds:expr $(,)?
    ) => {
        impl $ty {
            const MAX_BINDS: usize = $max_binds;
            const EVENT_LOCK: Option<&'static str> = $event_lock;

            async fn lock_cluster(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: uuid::Uuid,
            ) -> ::ferry_core::error::Result<::ferry_core::model::Cluster> {
                sqlx::query_as::<_, $crate::common::ClusterRow>(concat!(
                    $crate::common::select_cluster!("WHERE c.id = $1 "),
                    $lock
                ))
                .bind(id.to_string())
                .fetch_optional(&mut *conn)
                .await
                .map_err($crate::common::db_error)?
                .ok_or_else(|| ::ferry_core::error::Error::not_found(format!("no cluster `{id}`")))?
                .into_model()
            }

            async fn upsert_groups(
                conn: &mut <$db as sqlx::Database>::Connection,
                cluster_id: &str,
                rows: &[$crate::common::GroupInsert<'_>],
            ) -> sqlx::Result<()> {
                for chunk in rows.chunks(Self::MAX_BINDS / 8) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO groups (id, cluster_id, name, owner_node, state, \
                         resource_count, share_count, content_hash) ",
                    );
                    qb.push_values(chunk, |mut b, g| {
                        b.push_bind(g.id)
                            .push_bind(cluster_id)
                            .push_bind(g.name)
                            .push_bind(g.owner_node)
                            .push_bind(g.state)
                            .push_bind(g.resource_count)
                            .push_bind(g.share_count)
                            .push_bind(g.content_hash);
                    });
                    qb.push(
                        " ON CONFLICT (cluster_id, name) DO UPDATE SET \
                         owner_node = excluded.owner_node, state = excluded.state, \
                         resource_count = excluded.resource_count, \
                         share_count = excluded.share_count, content_hash = excluded.content_hash",
                    );
                    qb.build().execute(&mut *conn).await?;
                }
                Ok(())
            }

            /// `delete` is a `DELETE ... WHERE <id column> IN (` prefix.
            async fn delete_by_ids(
                conn: &mut <$db as sqlx::Database>::Connection,
                delete: &'static str,
                ids: &[String],
            ) -> sqlx::Result<()> {
                for chunk in ids.chunks(Self::MAX_BINDS) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(delete);
                    let mut list = qb.separated(", ");
                    for id in chunk {
                        list.push_bind(id.as_str());
                    }
                    qb.push(")");
                    qb.build().execute(&mut *conn).await?;
                }
                Ok(())
            }

            async fn insert_task(
                conn: &mut <$db as sqlx::Database>::Connection,
                new: &$crate::NewTask<'_>,
            ) -> ::ferry_core::error::Result<::ferry_core::model::Task> {
                use $crate::common::{db_error, now, to_json, truncate};
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

            /// ` IN ($1, $2, ...)` over `items`, each bound.
            fn push_in_list(
                qb: &mut sqlx::QueryBuilder<$db>,
                items: impl IntoIterator<Item = String>,
            ) {
                qb.push(" IN (");
                let mut list = qb.separated(", ");
                for item in items {
                    list.push_bind(item);
                }
                qb.push(")");
            }

            async fn insert_events(
                conn: &mut <$db as sqlx::Database>::Connection,
                job_id: &str,
                events: &[(chrono::DateTime<chrono::Utc>, &::ferry_core::model::NewJobEvent)],
            ) -> sqlx::Result<()> {
                if events.is_empty() {
                    return Ok(());
                }
                if let Some(lock) = Self::EVENT_LOCK {
                    sqlx::query(lock).execute(&mut *conn).await?;
                }
                for chunk in events.chunks(Self::MAX_BINDS / 8) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO job_events \
                         (at, job_id, kind, grp, step, state, message, output) ",
                    );
                    qb.push_values(chunk, |mut b, (at, e)| {
                        b.push_bind(*at)
                            .push_bind(job_id)
                            .push_bind(e.kind)
                            .push_bind(e.group.as_deref())
                            .push_bind(e.step.map(i64::from))
                            .push_bind(e.state.as_str())
                            .push_bind(e.message.as_deref())
                            .push_bind(e.output.as_ref().map($crate::common::to_json));
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
                use $crate::common::{db_error, JobRow};
                let Some(row) = sqlx::query_as::<_, JobRow>(
                    "SELECT id, name, state, request, approval, created_by, created_at, \
                     updated_at, version FROM jobs WHERE id = $1",
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

            async fn insert_resources(
                conn: &mut <$db as sqlx::Database>::Connection,
                rows: &[$crate::common::ResourceInsert<'_>],
            ) -> sqlx::Result<()> {
                for chunk in rows.chunks(Self::MAX_BINDS / 6) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO resources (group_id, name, kind, state, properties, depends_on) ",
                    );
                    qb.push_values(chunk, |mut b, r| {
                        b.push_bind(r.group_id)
                            .push_bind(r.name)
                            .push_bind(r.kind)
                            .push_bind(r.state)
                            .push_bind(r.properties.as_str())
                            .push_bind(r.depends_on.as_str());
                    });
                    qb.build().execute(&mut *conn).await?;
                }
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::Store for $ty {
            fn backend(&self) -> $crate::Backend {
                $backend
            }

            async fn ping(&self) -> ::ferry_core::error::Result<()> {
                sqlx::query("SELECT 1")
                    .execute(self.reader())
                    .await
                    .map_err($crate::common::db_error)?;
                Ok(())
            }

            // ---- clusters -----------------------------------------------------------------

            async fn create_cluster(
                &self,
                new: &::ferry_core::model::NewCluster,
            ) -> ::ferry_core::error::Result<::ferry_core::model::Cluster> {
                let id = uuid::Uuid::now_v7();
                let at = $crate::common::now();
                sqlx::query(
                    "INSERT INTO clusters (id, name, os, description, version, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, 1, $5, $5)",
                )
                .bind(id.to_string())
                .bind(&new.name)
                .bind(new.os.as_str())
                .bind(&new.description)
                .bind(at)
                .execute(self.writer())
                .await
                .map_err(|e| {
                    $crate::common::unique_or(e, || {
                        ::ferry_core::error::Error::conflict(format!(
                            "a cluster named `{}` already exists",
                            new.name
                        ))
                    })
                })?;
                Ok(::ferry_core::model::Cluster {
                    id,
                    name: new.name.clone(),
                    os: new.os,
                    description: new.description.clone(),
                    version: 1,
                    latest_snapshot: None,
                    created_at: at,
                    updated_at: at,
                })
            }

            async fn get_cluster(
                &self,
                id_or_name: &str,
            ) -> ::ferry_core::error::Result<::ferry_core::model::Cluster> {
                use $crate::common::{db_error, select_cluster, ClusterRow};
                if let Ok(id) = uuid::Uuid::parse_str(id_or_name) {
                    let row = sqlx::query_as::<_, ClusterRow>(select_cluster!("WHERE c.id = $1"))
                        .bind(id.to_string())
                        .fetch_optional(self.reader())
                        .await
                        .map_err(db_error)?;
                    if let Some(row) = row {
                        return row.into_model();
                    }
                }
                sqlx::query_as::<_, ClusterRow>(select_cluster!("WHERE c.name = $1"))
                    .bind(id_or_name)
                    .fetch_optional(self.reader())
                    .await
                    .map_err(db_error)?
                    .ok_or_else(|| {
                        ::ferry_core::error::Error::not_found(format!("no cluster `{id_or_name}`"))
                    })?
                    .into_model()
            }

            async fn list_clusters(
                &self,
                limit: u32,
                after: Option<&str>,
            ) -> ::ferry_core::error::Result<Vec<::ferry_core::model::Cluster>> {
                use $crate::common::{db_error, select_cluster, ClusterRow};
                let mut qb = sqlx::QueryBuilder::<$db>::new(select_cluster!());
                if let Some(after) = after {
                    qb.push("WHERE c.name > ").push_bind(after);
                }
                qb.push(" ORDER BY c.name LIMIT ").push_bind(i64::from(limit));
                qb.build_query_as::<ClusterRow>()
                    .fetch_all(self.reader())
                    .await
                    .map_err(db_error)?
                    .into_iter()
                    .map(ClusterRow::into_model)
                    .collect()
            }

            async fn update_cluster(
                &self,
                id: uuid::Uuid,
                patch: &::ferry_core::model::ClusterPatch,
                expected_version: Option<i64>,
            ) -> ::ferry_core::error::Result<::ferry_core::model::Cluster> {
                use $crate::common::{check_version, db_error, now, unique_or};
                let mut tx = self.writer().begin().await.map_err(db_error)?;
                let current = Self::lock_cluster(&mut tx, id).await?;
                check_version(&current, expected_version)?;
                let name = patch.name.as_ref().unwrap_or(&current.name);
                let os = patch.os.unwrap_or(current.os);
                let description = patch.description.as_ref().unwrap_or(&current.description);
                if *name == current.name && os == current.os && *description == current.description
                {
                    return Ok(current);
                }
                let at = now();
                sqlx::query(
                    "UPDATE clusters SET name = $2, os = $3, description = $4, \
                     version = version + 1, updated_at = $5 WHERE id = $1",
                )
                .bind(id.to_string())
                .bind(name)
                .bind(os.as_str())
                .bind(description)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    unique_or(e, || {
                        ::ferry_core::error::Error::conflict(format!(
                            "a cluster named `{name}` already exists"
                        ))
                    })
                })?;
                tx.commit().await.map_err(db_error)?;
                Ok(::ferry_core::model::Cluster {
                    name: name.clone(),
                    os,
                    description: description.clone(),
                    version: current.version + 1,
                    updated_at: at,
                    ..current
                })
            }

            async fn delete_cluster(
                &self,
                id: uuid::Uuid,
                expected_version: Option<i64>,
            ) -> ::ferry_core::error::Result<()> {
                use $crate::common::{check_version, db_error};
                let mut tx = self.writer().begin().await.map_err(db_error)?;
                let current = Self::lock_cluster(&mut tx, id).await?;
                check_version(&current, expected_version)?;
                sqlx::query("DELETE FROM clusters WHERE id = $1")
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                tx.commit().await.map_err(db_error)
            }

            // ---- inventory ----------------------------------------------------------------

            async fn import_inventory(
                &self,
                import: $crate::InventoryImport<'_>,
            ) -> ::ferry_core::error::Result<$crate::ImportOutcome> {
                use ::ferry_core::error::Error;
                use $crate::common::{
                    db_error, has_duplicate_group, now, select_snapshot, GroupPlan,
                    InventoryRows, SnapshotRow,
                };
                if has_duplicate_group(import.document) {
                    return Err(Error::internal("import of a document with duplicate group names"));
                }
                let cluster_id = import.cluster_id.to_string();
                let mut tx = self.writer().begin().await.map_err(db_error)?;
                // Serializes imports of one cluster (snapshot numbering) across replicas.
                let cluster = Self::lock_cluster(&mut tx, import.cluster_id).await?;
                let latest = sqlx::query_as::<_, SnapshotRow>(select_snapshot!(
                    "FROM snapshots WHERE cluster_id = $1 ORDER BY number DESC LIMIT 1"
                ))
                .bind(&cluster_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?;
                if let Some(expected) = import.expected_hash {
                    match &latest {
                        Some(latest) if latest.content_hash() == expected => {}
                        Some(latest) => {
                            return Err(Error::precondition_failed(format!(
                                "the inventory of cluster `{}` has changed: its current ETag is \"{}\"",
                                cluster.name,
                                latest.content_hash()
                            )));
                        }
                        None => {
                            return Err(Error::precondition_failed(format!(
                                "cluster `{}` has no inventory yet, so no ETag can match",
                                cluster.name
                            )));
                        }
                    }
                }
                let number = match latest {
                    Some(latest) if latest.content_hash() == import.content_hash => {
                        return Ok($crate::ImportOutcome {
                            snapshot: latest.into_model()?,
                            created: false,
                        });
                    }
                    Some(latest) => latest.number() + 1,
                    None => 1,
                };

                let created_at = now();
                let counts = import.counts;
                sqlx::query(
                    "INSERT INTO snapshots (cluster_id, number, content_hash, node_count, \
                     network_count, disk_count, group_count, resource_count, share_count, \
                     permission_count, created_at, created_by, document) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                )
                .bind(&cluster_id)
                .bind(number)
                .bind(import.content_hash)
                .bind(counts.nodes)
                .bind(counts.networks)
                .bind(counts.disks)
                .bind(counts.groups)
                .bind(counts.resources)
                .bind(counts.shares)
                .bind(counts.permissions)
                .bind(created_at)
                .bind(import.created_by)
                .bind(import.document_json)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;

                let existing: Vec<(String, String, String)> = sqlx::query_as(
                    "SELECT name, id, content_hash FROM groups WHERE cluster_id = $1",
                )
                .bind(&cluster_id)
                .fetch_all(&mut *tx)
                .await
                .map_err(db_error)?;
                let plan = GroupPlan::new(import.document, existing);
                let rows = InventoryRows::new(import.document, &plan);
                for (delete, ids) in [
                    ("DELETE FROM groups WHERE id IN (", &plan.removed),
                    ("DELETE FROM resources WHERE group_id IN (", &plan.stale),
                    ("DELETE FROM shares WHERE group_id IN (", &plan.stale),
                ] {
                    Self::delete_by_ids(&mut tx, delete, ids).await.map_err(db_error)?;
                }
                Self::upsert_groups(&mut tx, &cluster_id, &rows.groups)
                    .await
                    .map_err(db_error)?;
                Self::insert_resources(&mut tx, &rows.resources)
                    .await
                    .map_err(db_error)?;
                Self::insert_shares(&mut tx, &rows.shares)
                    .await
                    .map_err(db_error)?;
                tx.commit().await.map_err(db_error)?;

                Ok($crate::ImportOutcome {
                    snapshot: ::ferry_core::model::SnapshotInfo {
                        cluster_id: import.cluster_id,
                        number,
                        content_hash: import.content_hash.to_owned(),
                        counts,
                        created_at,
                        created_by: import.created_by.to_owned(),
                    },
                    created: true,
                })
            }

            async fn list_snapshots(
                &self,
                cluster_id: uuid::Uuid,
                limit: u32,
                after: Option<i64>,
            ) -> ::ferry_core::error::Result<Vec<::ferry_core::model::SnapshotInfo>> {
                use $crate::common::{db_error, select_snapshot, SnapshotRow};
                let mut qb = sqlx::QueryBuilder::<$db>::new(select_snapshot!(
                    "FROM snapshots WHERE cluster_id = "
                ));
                qb.push_bind(cluster_id.to_string());
                if let Some(after) = after {
                    qb.push(" AND number > ").push_bind(after);
                }
                qb.push(" ORDER BY number LIMIT ").push_bind(i64::from(limit));
                qb.build_query_as::<SnapshotRow>()
                    .fetch_all(self.reader())
                    .await
                    .map_err(db_error)?
                    .into_iter()
                    .map(SnapshotRow::into_model)
                    .collect()
            }

            async fn get_snapshot(
                &self,
                cluster_id: uuid::Uuid,
                number: i64,
            ) -> ::ferry_core::error::Result<(::ferry_core::model::SnapshotInfo, String)> {
                use $crate::common::{db_error, select_snapshot, SnapshotDocumentRow};
                let row = sqlx::query_as::<_, SnapshotDocumentRow>(select_snapshot!(
                    ", document FROM snapshots WHERE cluster_id = $1 AND number = $2"
                ))
                .bind(cluster_id.to_string())
                .bind(number)
                .fetch_optional(self.reader())
                .await
                .map_err(db_error)?
                .ok_or_else(|| {
                    ::ferry_core::error::Error::not_found(format!(
                        "cluster {cluster_id} has no snapshot {number}"
                    ))
                })?;
                Ok((row.info.into_model()?, row.document))
            }

            async fn list_groups(
                &self,
                cluster_id: uuid::Uuid,
                limit: u32,
                after: Option<&str>,
            ) -> ::ferry_core::error::Result<Vec<::ferry_core::model::GroupSummary>> {
                use $crate::common::{db_error, select_group, GroupRow};
                let mut qb = sqlx::QueryBuilder::<$db>::new(select_group!("WHERE g.cluster_id = "));
                qb.push_bind(cluster_id.to_string());
                if let Some(after) = after {
                    qb.push(" AND g.name > ").push_bind(after);
                }
                qb.push(" ORDER BY g.name LIMIT ").push_bind(i64::from(limit));
                qb.build_query_as::<GroupRow>()
                    .fetch_all(self.reader())
                    .await
                    .map_err(db_error)?
                    .into_iter()
                    .map(GroupRow::into_model)
                    .collect()
            }

            async fn find_groups(
                &self,
                key: &$crate::GroupKey,
            ) -> ::ferry_core::error::Result<Vec<::ferry_core::model::GroupSummary>> {
                use $crate::common::{db_error, select_group, GroupRow};
                use $crate::GroupKey;
                let query = match key {
                    GroupKey::Id(id) => {
                        sqlx::query_as::<_, GroupRow>(select_group!("WHERE g.id = $1"))
                            .bind(id.to_string())
                    }
                    GroupKey::Name { cluster: Some(cluster), group } => {
                        sqlx::query_as::<_, GroupRow>(select_group!(
                            "WHERE c.name = $1 AND g.name = $2"
                        ))
                        .bind(cluster.as_str())
                        .bind(group.as_str())
                    }
                    // Two rows are enough to tell the caller the name is ambiguous.
                    GroupKey::Name { cluster: None, group } => {
                        sqlx::query_as::<_, GroupRow>(select_group!(
                            "WHERE g.name = $1 ORDER BY c.name LIMIT 2"
                        ))
                        .bind(group.as_str())
                    }
                };
                query
                    .fetch_all(self.reader())
                    .await
                    .map_err(db_error)?
                    .into_iter()
                    .map(GroupRow::into_model)
                    .collect()
            }

            async fn group_resources(
                &self,
                group_id: uuid::Uuid,
            ) -> ::ferry_core::error::Result<Vec<::ferry_core::model::Resource>> {
                use $crate::common::{db_error, ResourceRow};
                sqlx::query_as::<_, ResourceRow>(
                    "SELECT name, kind, state, properties, depends_on FROM resources \
                     WHERE group_id = $1 ORDER BY name",
                )
                .bind(group_id.to_string())
                .fetch_all(self.reader())
                .await
                .map_err(db_error)?
                .into_iter()
                .map(ResourceRow::into_model)
                .collect()
            }

            async fn list_shares(
                &self,
                group_id: uuid::Uuid,
                filter: &ferry_core::model::ShareFilter,
                limit: u32,
                after: Option<&str>,
            ) -> ::ferry_core::error::Result<Vec<::ferry_core::model::Share>> {
                use $crate::common::{db_error, ShareRow};
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "SELECT s.name, s.path, s.description, s.permissions, s.caching, \
                     s.access_based_enumeration, s.continuous_availability, s.encrypt_data, \
                     s.user_limit FROM shares s WHERE s.group_id = ",
                );
                qb.push_bind(group_id.to_string());
                if let Some(prefix) = &filter.name_prefix {
                    // substr, not LIKE: `%` and `_` in the prefix are literal.
                    let prefix = prefix.to_lowercase();
                    qb.push(" AND substr(s.name_folded, 1, length(")
                        .push_bind(prefix.clone())
                        .push(")) = ")
                        .push_bind(prefix);
                }
                if let Some(principal) = &filter.principal {
                    qb.push(concat!(" AND ", $principal_open))
                        .push_bind(principal.to_lowercase())
                        .push($principal_close);
                }
                if let Some(after) = after {
                    qb.push(" AND s.name > ").push_bind(after);
                }
                qb.push(" ORDER BY s.name LIMIT ").push_bind(i64::from(limit));
                qb.build_query_as::<ShareRow>()
                    .fetch_all(self.reader())
                    .await
                    .map_err(db_error)?
                    .into_iter()
                    .map(ShareRow::into_model)
                    .collect()
            }

            // ---- tokens -------------------------------------------------------------------

            async fn insert_token(
                &self,
                token: &$crate::TokenRecord,
            ) -> ::ferry_core::error::Result<()> {
                use $crate::common::{db_error, is_unique_violation, truncate};
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
                use $crate::common::{db_error, truncate};
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
                tx.commit().await.map_err(db_error)
            }

            async fn token_by_hash(
                &self,
                secret_hash: &str,
            ) -> ::ferry_core::error::Result<Option<::ferry_core::model::TokenInfo>> {
                use $crate::common::{db_error, TokenRow};
                sqlx::query_as::<_, TokenRow>(
                    "SELECT id, name, role, created_at, expires_at, revoked_at FROM tokens \
                     WHERE secret_hash = $1",
                )
                .bind(secret_hash)
                .fetch_optional(self.reader())
                .await
                .map_err(db_error)?
                .map(TokenRow::into_model)
                .transpose()
            }

            async fn list_tokens(
                &self,
                limit: u32,
                after: Option<uuid::Uuid>,
            ) -> ::ferry_core::error::Result<Vec<::ferry_core::model::TokenInfo>> {
                use $crate::common::{db_error, TokenRow};
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
                use $crate::common::{db_error, truncate, TokenRow};
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
                tx.commit().await.map_err(db_error)?;
                token.into_model()
            }

            // ---- agents -------------------------------------------------------------------
            //
            // Task states in the SQL are literals, not binds, so that the partial indexes on
            // unfinished and in-flight tasks apply.

            async fn insert_join_token(
                &self,
                token: &$crate::JoinTokenRecord,
            ) -> ::ferry_core::error::Result<()> {
                use $crate::common::{truncate, unique_or};
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
                use $crate::common::{
                    db_error, select_agent, to_json, truncate, unique_or, AgentRow,
                    JoinTokenStateRow,
                };
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
                        .map($crate::common::parse_uuid)
                        .transpose()?,
                })
            }

            async fn get_agent(
                &self,
                id: uuid::Uuid,
            ) -> ::ferry_core::error::Result<::ferry_core::model::Agent> {
                use $crate::common::{db_error, select_agent, AgentRow};
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
                use $crate::common::{agent_columns, db_error, AgentCredentialsRow};
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
                use $crate::common::{db_error, select_agent, AgentRow};
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
                use $crate::common::{
                    db_error, lost_error, select_agent, to_json, truncate, AgentRow,
                };
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

            async fn agent_connected(
                &self,
                id: uuid::Uuid,
                session_id: uuid::Uuid,
                software_version: &str,
                capabilities: &[String],
                at: chrono::DateTime<chrono::Utc>,
            ) -> ::ferry_core::error::Result<::ferry_core::model::Agent> {
                use $crate::common::{db_error, select_agent, to_json, truncate, AgentRow};
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
                use $crate::common::{db_error, truncate};
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
                use $crate::common::{db_error, truncate};
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
                use $crate::common::{db_error, parse_uuid, truncate};
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
                    .map_err($crate::common::db_error)?;
                Self::insert_task(&mut conn, new).await
            }

            async fn pending_tasks(
                &self,
                limit: u32,
            ) -> ::ferry_core::error::Result<Vec<::ferry_core::model::Task>> {
                use $crate::common::{db_error, task_columns, TaskRow};
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

            async fn revoked_agents_since(
                &self,
                since: chrono::DateTime<chrono::Utc>,
            ) -> ::ferry_core::error::Result<Vec<(uuid::Uuid, chrono::DateTime<chrono::Utc>)>> {
                use $crate::common::{db_error, parse_uuid, truncate};
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

            async fn announce(
                &self,
                change: $crate::Change,
            ) -> ::ferry_core::error::Result<()> {
                self.announce_change(change).await
            }

            async fn subscribe(
                &self,
            ) -> ::ferry_core::error::Result<
                Option<tokio::sync::mpsc::Receiver<$crate::Change>>,
            > {
                self.subscribe_changes().await
            }

            async fn get_task(
                &self,
                id: uuid::Uuid,
            ) -> ::ferry_core::error::Result<::ferry_core::model::Task> {
                use $crate::common::{db_error, task_columns, TaskRow};
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

            async fn tasks_to_deliver(
                &self,
                agent_id: uuid::Uuid,
                limit: u32,
            ) -> ::ferry_core::error::Result<Vec<::ferry_core::model::Task>> {
                use $crate::common::{db_error, task_columns, TaskRow};
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
                use $crate::common::{db_error, task_columns, TaskRow};
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
                use $crate::common::{db_error, task_columns, truncate, TaskRow};
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
                use $crate::common::{db_error, truncate};
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
                use $crate::common::{db_error, progress_json, truncate};
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
                use $crate::common::{
                    db_error, progress_json, task_columns, to_json, truncate, TaskRow,
                };
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
                use $crate::common::{db_error, lost_error, task_columns, truncate, TaskRow};
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
                use $crate::common::{db_error, truncate};
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

            // ---- audit --------------------------------------------------------------------

            async fn create_job(
                &self,
                job: &$crate::NewJob<'_>,
            ) -> ::ferry_core::error::Result<::ferry_core::model::Job> {
                use $crate::common::{db_error, to_json, truncate};
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
                        .map_err(|e| $crate::common::unique_or(e, || {
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
                };
                Self::insert_events(&mut tx, &id, &[(at, &created)])
                    .await
                    .map_err(db_error)?;
                let stored = Self::load_job(&mut tx, &id).await?;
                tx.commit().await.map_err(db_error)?;
                stored.ok_or_else(|| ::ferry_core::error::Error::internal("the job vanished"))
            }

            async fn get_job(
                &self,
                id: uuid::Uuid,
            ) -> ::ferry_core::error::Result<::ferry_core::model::Job> {
                use $crate::common::db_error;
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
                use $crate::common::db_error;
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
                use $crate::common::{corrupt, db_error, parse_json, parse_uuid};
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
                use $crate::common::{db_error, parse_json};
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

            async fn job_baseline(
                &self,
                job_id: uuid::Uuid,
                group: &str,
            ) -> ::ferry_core::error::Result<Option<Vec<::ferry_core::model::Share>>> {
                use $crate::common::{db_error, parse_json};
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
                use $crate::common::{db_error, to_json, truncate};
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
                Self::insert_events(&mut tx, &id, &events)
                    .await
                    .map_err(db_error)?;
                if saved.iter().any(Option::is_some) {
                    tx.commit().await.map_err(db_error)?;
                } else {
                    tx.rollback().await.map_err(db_error)?;
                }
                Ok(saved)
            }

            async fn job_group_versions(
                &self,
                job_id: uuid::Uuid,
            ) -> ::ferry_core::error::Result<Vec<(String, i64)>> {
                use $crate::common::db_error;
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
                use $crate::common::{db_error, parse_json};
                let mut groups = Vec::with_capacity(names.len());
                for chunk in names.chunks(Self::MAX_BINDS - 1) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "SELECT doc, version FROM job_groups WHERE job_id = ",
                    );
                    qb.push_bind(job_id.to_string()).push(" AND name");
                    Self::push_in_list(&mut qb, chunk.iter().cloned());
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

            async fn get_tasks(
                &self,
                ids: &[uuid::Uuid],
            ) -> ::ferry_core::error::Result<Vec<::ferry_core::model::Task>> {
                use $crate::common::{db_error, task_columns, TaskRow};
                let mut tasks = Vec::with_capacity(ids.len());
                for chunk in ids.chunks(Self::MAX_BINDS) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(concat!(
                        "SELECT ",
                        task_columns!(),
                        " FROM tasks WHERE id"
                    ));
                    Self::push_in_list(&mut qb, chunk.iter().map(ToString::to_string));
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
                use $crate::common::{
                    corrupt, db_error, parse_task_error, parse_task_result, parse_uuid,
                };
                let mut statuses = Vec::with_capacity(ids.len());
                for chunk in ids.chunks(Self::MAX_BINDS) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "SELECT id, state, result, error FROM tasks WHERE id",
                    );
                    Self::push_in_list(&mut qb, chunk.iter().map(ToString::to_string));
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

            async fn job_holders(
                &self,
                keys: &[String],
            ) -> ::ferry_core::error::Result<Vec<(String, uuid::Uuid)>> {
                use $crate::common::{db_error, parse_uuid};
                let mut held = Vec::new();
                for chunk in keys.chunks(Self::MAX_BINDS) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "SELECT key, job_id FROM job_holds WHERE key",
                    );
                    Self::push_in_list(&mut qb, chunk.iter().cloned());
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
                use $crate::common::db_error;
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
                use $crate::common::{db_error, to_json, truncate};
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
                Self::insert_events(&mut tx, &id, &events)
                    .await
                    .map_err(db_error)?;
                let job = Self::load_job(&mut tx, &id).await?;
                tx.commit().await.map_err(db_error)?;
                Ok(job)
            }

            async fn job_events(
                &self,
                filter: &$crate::EventFilter<'_>,
                after: i64,
                limit: u32,
            ) -> ::ferry_core::error::Result<Vec<::ferry_core::model::JobEvent>> {
                use $crate::common::{db_error, JobEventRow};
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "SELECT seq, at, job_id, kind, grp, step, state, message FROM job_events \
                     WHERE seq > ",
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
            ) -> ::ferry_core::error::Result<Vec<$crate::StepOutput>> {
                use $crate::common::{corrupt, db_error, parse_json};
                let rows: Vec<(String, i64, String)> = sqlx::query_as(
                    "SELECT grp, step, output FROM job_events \
                     WHERE job_id = $1 AND output IS NOT NULL ORDER BY seq",
                )
                .bind(job_id.to_string())
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

            async fn claim_scheduler(
                &self,
                holder: &str,
                until: chrono::DateTime<chrono::Utc>,
                now: chrono::DateTime<chrono::Utc>,
            ) -> ::ferry_core::error::Result<bool> {
                use $crate::common::{db_error, truncate};
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

            // ---- validations ------------------------------------------------------------

            async fn create_validation(
                &self,
                validation: &::ferry_core::model::Validation,
            ) -> ::ferry_core::error::Result<::ferry_core::model::Validation> {
                use $crate::common::{db_error, select_validation, to_json, truncate, ValidationRow};
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
                use $crate::common::{db_error, select_validation, ValidationRow};
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
                use $crate::common::{db_error, select_validation, ValidationRow};
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
                use $crate::common::{db_error, to_json, truncate};
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

            async fn create_webhook(
                &self,
                hook: &ferry_core::model::Webhook,
            ) -> ::ferry_core::error::Result<()> {
                use $crate::common::{db_error, truncate};
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
                use $crate::common::{db_error, WebhookRow};
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
                use $crate::common::db_error;
                Ok(sqlx::query("DELETE FROM webhooks WHERE id = $1")
                    .bind(id.to_string())
                    .execute(self.writer())
                    .await
                    .map_err(db_error)?
                    .rows_affected()
                    > 0)
            }

            async fn record_webhook_delivery(
                &self,
                id: uuid::Uuid,
                delivery: &ferry_core::model::WebhookDelivery,
            ) -> ::ferry_core::error::Result<()> {
                use $crate::common::{db_error, truncate};
                sqlx::query(
                    "UPDATE webhooks SET delivered = $2, failures = $3, next_attempt = $4, \
                     last_error = $5 WHERE id = $1",
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

            async fn append_audit(
                &self,
                record: &::ferry_core::model::NewAudit,
            ) -> ::ferry_core::error::Result<()> {
                use $crate::common::{db_error, now};
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
                use $crate::common::{db_error, AuditRow};
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
                qb.push(" ORDER BY id DESC LIMIT ").push_bind(i64::from(limit));
                qb.build_query_as::<AuditRow>()
                    .fetch_all(self.reader())
                    .await
                    .map_err(db_error)?
                    .into_iter()
                    .map(AuditRow::into_model)
                    .collect()
            }

            // ---- idempotency --------------------------------------------------------------

            async fn idempotency_claim(
                &self,
                scope: &str,
                key: &str,
                request_hash: &str,
            ) -> ::ferry_core::error::Result<$crate::IdempotencyClaim> {
                use $crate::common::{
                    db_error, now, IdempotencyRow, IDEMPOTENCY_PENDING, IDEMPOTENCY_TTL,
                };
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
                use $crate::common::{db_error, IDEMPOTENCY_DONE};
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
                    .map_err($crate::common::db_error)?;
                Ok(())
            }
        }
    };
}
pub(crate) use impl_store;
