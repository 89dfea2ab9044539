//! The rows both databases return, and their conversion to the model. Each `SELECT` column
//! list sits beside the row type whose fields it must match.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::db::{corrupt, parse_json, parse_uuid};
use ferry_core::error::{Error, Result};
use ferry_core::model::{
    Agent, AgentState, AuditOutcome, AuditRecord, CachingMode, Cluster, GroupSummary,
    InventoryCounts, OsGeneration, Permission, Resource, ResourceKind, ResourceState, Role, Share,
    SnapshotInfo, Task, TaskState, TokenInfo,
};

// ---- clusters and inventory -----------------------------------------------------------------

/// Columns of [`ClusterRow`], from `clusters c`; the latest snapshot number is looked up in the
/// snapshots primary key rather than kept on the cluster row, so imports never touch the
/// cluster record (and so never invalidate its ETag).
macro_rules! select_cluster {
    ($($tail:literal),*) => {
        concat!(
            "SELECT c.id, c.name, c.os, c.description, c.version, ",
            "(SELECT max(s.number) FROM snapshots s WHERE s.cluster_id = c.id) AS latest_snapshot, ",
            "c.discovery_interval_seconds, c.created_at, c.updated_at FROM clusters c ",
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
    discovery_interval_seconds: Option<i64>,
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
            discovery_interval_seconds: self
                .discovery_interval_seconds
                .map(|s| {
                    u64::try_from(s).map_err(|_| corrupt("discovery interval", &s.to_string()))
                })
                .transpose()?,
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

// ---- tokens ---------------------------------------------------------------------------------

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
            $crate::rows::agent_columns!(),
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

pub(crate) fn parse_task_result(result: Option<&str>) -> Result<Option<serde_json::Value>> {
    result.map(|r| parse_json("task result", r)).transpose()
}

pub(crate) fn parse_task_error(
    error: Option<&str>,
) -> Result<Option<ferry_core::model::TaskError>> {
    error.map(|e| parse_json("task error", e)).transpose()
}

// ---- jobs -----------------------------------------------------------------------------------

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
    findings: String,
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
            findings: parse_json("job findings", &self.findings)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct JobEventRow {
    seq: i64,
    at: DateTime<Utc>,
    job_id: Option<String>,
    cluster_id: Option<String>,
    kind: String,
    grp: Option<String>,
    step: Option<i64>,
    state: String,
    message: Option<String>,
    data: Option<String>,
}

impl JobEventRow {
    pub(crate) fn into_model(self) -> Result<ferry_core::model::JobEvent> {
        Ok(ferry_core::model::JobEvent {
            seq: self.seq,
            at: self.at,
            job_id: self.job_id.as_deref().map(parse_uuid).transpose()?,
            cluster_id: self.cluster_id.as_deref().map(parse_uuid).transpose()?,
            kind: self.kind,
            group: self.grp,
            step: self.step.and_then(|s| u32::try_from(s).ok()),
            state: self.state,
            message: self.message,
            data: self
                .data
                .as_deref()
                .map(|d| parse_json("event data", d))
                .transpose()?,
        })
    }
}

// ---- discoveries ----------------------------------------------------------------------------

/// Columns of [`DiscoveryRow`], from `discoveries d` with its cluster's name.
macro_rules! select_discovery {
    ($($tail:literal),*) => {
        concat!(
            "SELECT d.id, d.cluster_id, c.name AS cluster, d.task_id, d.state, d.trigger_kind, ",
            "d.snapshot, d.created, d.previous_snapshot, d.summary, d.error, d.created_by, ",
            "d.created_at, d.completed_at FROM discoveries d JOIN clusters c ON c.id = d.cluster_id ",
            $($tail),*
        )
    };
}
pub(crate) use select_discovery;

#[derive(sqlx::FromRow)]
pub(crate) struct DiscoveryRow {
    id: String,
    cluster_id: String,
    cluster: String,
    task_id: Option<String>,
    state: String,
    trigger_kind: String,
    snapshot: Option<i64>,
    created: Option<bool>,
    previous_snapshot: Option<i64>,
    summary: Option<String>,
    error: Option<String>,
    created_by: String,
    created_at: DateTime<Utc>,
    completed_at: Option<DateTime<Utc>>,
}

impl DiscoveryRow {
    pub(crate) fn into_model(self) -> Result<ferry_core::model::Discovery> {
        use ferry_core::model::{DiscoveryState, DiscoveryTrigger};
        Ok(ferry_core::model::Discovery {
            id: parse_uuid(&self.id)?,
            cluster_id: parse_uuid(&self.cluster_id)?,
            cluster: self.cluster,
            state: DiscoveryState::parse(&self.state)
                .ok_or_else(|| corrupt("discovery state", &self.state))?,
            trigger: DiscoveryTrigger::parse(&self.trigger_kind)
                .ok_or_else(|| corrupt("discovery trigger", &self.trigger_kind))?,
            task_id: self.task_id.as_deref().map(parse_uuid).transpose()?,
            snapshot: self.snapshot,
            created: self.created,
            previous_snapshot: self.previous_snapshot,
            summary: self
                .summary
                .as_deref()
                .map(|s| parse_json("discovery summary", s))
                .transpose()?,
            error: self.error,
            created_by: self.created_by,
            created_at: self.created_at,
            completed_at: self.completed_at,
        })
    }
}

// ---- validations ----------------------------------------------------------------------------

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

// ---- webhooks -------------------------------------------------------------------------------

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

// ---- audit ----------------------------------------------------------------------------------

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

// ---- idempotency ----------------------------------------------------------------------------

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
