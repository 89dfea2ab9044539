//! Persistence: one [`Store`] trait, implemented for SQLite (embedded default, one writer) and
//! Postgres (several server replicas). Both run the same conformance suite (`tests/store.rs`).
//!
//! Every method is one transaction: it either fully happens or leaves nothing behind. Errors are
//! already [`ferry_core::error::Error`]s with user-facing messages; database text only reaches the log.

mod common;
pub mod perf;
pub mod postgres;
pub mod sqlite;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use ferry_core::error::Result;
use ferry_core::model::{
    Action, Agent, AuditFilter, AuditRecord, Cluster, ClusterPatch, GroupSummary, InventoryCounts,
    InventoryDocument, JoinTokenInfo, NewAudit, NewCluster, Resource, Share, ShareFilter,
    SnapshotInfo, Task, TaskOutcome, TaskProgress, TaskRef, TaskState, TokenInfo,
};
use ferry_core::model::{
    Approval, Job, JobEvent, JobGroup, JobRequest, JobState, NewJobEvent, Validation, Webhook,
    WebhookDelivery,
};

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A canonical inventory ready to become a snapshot.
#[derive(Debug, Clone, Copy)]
pub struct InventoryImport<'a> {
    pub cluster_id: Uuid,
    /// Canonical (sorted, validated) document.
    pub document: &'a InventoryDocument,
    /// Its canonical JSON text, stored as the snapshot body.
    pub document_json: &'a str,
    pub content_hash: &'a str,
    pub counts: InventoryCounts,
    pub created_by: &'a str,
    /// When set, the import only happens if the newest snapshot has this content hash
    /// (`If-Match`); otherwise `PreconditionFailed`.
    pub expected_hash: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ImportOutcome {
    pub snapshot: SnapshotInfo,
    /// False when the content equals the newest snapshot and that one is returned.
    pub created: bool,
}

/// How to look a group up: by id, or by name optionally qualified by its cluster's name.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupKey {
    Id(Uuid),
    Name {
        cluster: Option<String>,
        group: String,
    },
}

/// A token as stored: its info plus the SHA-256 hex of the secret.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRecord {
    pub info: TokenInfo,
    pub secret_hash: String,
}

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

/// The next announcement of another replica from [`Store::subscribe`]'s receiver; pends forever
/// where there are none (`None`), so it can sit in a `select!` beside a timer.
pub async fn next_change(
    changes: &mut Option<tokio::sync::mpsc::Receiver<Change>>,
) -> Option<Change> {
    match changes {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

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

/// Where a task stands: its outcome once it has one (`result` on success, `error` on failure
/// or loss).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskStatus {
    pub id: Uuid,
    pub state: TaskState,
    pub result: Option<serde_json::Value>,
    pub error: Option<ferry_core::model::TaskError>,
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

/// What a replica announces to the others sharing its database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A task waits for an agent that may be connected elsewhere.
    Tasks,
    /// An agent was revoked; whoever holds its stream must close it.
    Agents,
    /// A job or one of its tasks changed; the replica running the scheduler looks now.
    Jobs,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Tasks => "tasks",
            Change::Agents => "agents",
            Change::Jobs => "jobs",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Change::Tasks, Change::Agents, Change::Jobs]
            .into_iter()
            .find(|c| c.as_str() == s)
    }
}

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
pub trait Store: perf::PerfStore + Send + Sync + 'static {
    fn backend(&self) -> Backend;

    /// Cheap round trip for `/readyz`.
    async fn ping(&self) -> Result<()>;

    // ---- clusters -------------------------------------------------------------------------

    /// `Conflict` when the name is taken.
    async fn create_cluster(&self, new: &NewCluster) -> Result<Cluster>;
    /// By id (a UUID) or by unique name. `NotFound` otherwise.
    async fn get_cluster(&self, id_or_name: &str) -> Result<Cluster>;
    /// Ordered by name (byte order); names strictly after `after`; at most `limit` rows.
    async fn list_clusters(&self, limit: u32, after: Option<&str>) -> Result<Vec<Cluster>>;
    /// Applies the set fields and bumps `version`. With `expected_version`, fails with
    /// `PreconditionFailed` unless the stored version equals it. `Conflict` on a taken name.
    async fn update_cluster(
        &self,
        id: Uuid,
        patch: &ClusterPatch,
        expected_version: Option<i64>,
    ) -> Result<Cluster>;
    /// Deletes the cluster with its snapshots and current inventory.
    async fn delete_cluster(&self, id: Uuid, expected_version: Option<i64>) -> Result<()>;

    // ---- inventory ------------------------------------------------------------------------

    /// Stores a new numbered snapshot and makes it the cluster's current inventory (groups keep
    /// their ids across imports by name), unless its content hash equals the newest snapshot's.
    async fn import_inventory(&self, import: InventoryImport<'_>) -> Result<ImportOutcome>;
    /// Ordered by number ascending, numbers strictly after `after`.
    async fn list_snapshots(
        &self,
        cluster_id: Uuid,
        limit: u32,
        after: Option<i64>,
    ) -> Result<Vec<SnapshotInfo>>;
    /// Snapshot info and its canonical JSON document.
    async fn get_snapshot(&self, cluster_id: Uuid, number: i64) -> Result<(SnapshotInfo, String)>;
    /// Current groups of a cluster, ordered by name, names strictly after `after`.
    async fn list_groups(
        &self,
        cluster_id: Uuid,
        limit: u32,
        after: Option<&str>,
    ) -> Result<Vec<GroupSummary>>;
    /// Groups matching the key (at most 2 are returned, enough to tell ambiguity).
    async fn find_groups(&self, key: &GroupKey) -> Result<Vec<GroupSummary>>;
    /// Resources of a group ordered by name, with their dependencies.
    async fn group_resources(&self, group_id: Uuid) -> Result<Vec<Resource>>;
    /// Shares of a group ordered by name (byte order), names strictly after `after`.
    async fn list_shares(
        &self,
        group_id: Uuid,
        filter: &ShareFilter,
        limit: u32,
        after: Option<&str>,
    ) -> Result<Vec<Share>>;

    // ---- tokens ---------------------------------------------------------------------------

    /// `Conflict` when the name is taken.
    async fn insert_token(&self, token: &TokenRecord) -> Result<()>;
    /// Makes sure a non-revoked, non-expiring admin token with this hash exists.
    async fn ensure_bootstrap_token(&self, token: &TokenRecord) -> Result<()>;
    /// The token with this secret hash, whatever its state (the caller checks expiry/revocation).
    async fn token_by_hash(&self, secret_hash: &str) -> Result<Option<TokenInfo>>;
    /// Ordered by id (creation order), ids strictly after `after`.
    async fn list_tokens(&self, limit: u32, after: Option<Uuid>) -> Result<Vec<TokenInfo>>;
    /// Sets `revoked_at` (kept if already revoked). `NotFound` for an unknown id.
    async fn revoke_token(&self, id: Uuid, at: DateTime<Utc>) -> Result<TokenInfo>;

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
    /// Agents revoked after `since`, with the time they were revoked, oldest first.
    async fn revoked_agents_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(Uuid, DateTime<Utc>)>>;
    /// Tells every replica sharing the database (this one included) that `change` happened, so
    /// its sweep runs now rather than at its next tick. A no-op where one server owns the
    /// database.
    async fn announce(&self, change: Change) -> Result<()>;
    /// The announcements of every replica, or `None` where there are no other replicas. A lost
    /// connection drops announcements; the periodic sweep makes up for them.
    async fn subscribe(&self) -> Result<Option<tokio::sync::mpsc::Receiver<Change>>>;
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

    // ---- jobs -----------------------------------------------------------------------------

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
    /// [`Store::save_groups`] for one group.
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
    /// The reports carried by the job's step events (see [`NewJobEvent::output`]), oldest
    /// first: the last one of a group's step is its current output.
    async fn step_outputs(&self, job_id: Uuid) -> Result<Vec<StepOutput>>;
    /// Takes or renews the scheduler lease for `holder` until `until`; false while another
    /// holder's lease runs.
    async fn claim_scheduler(
        &self,
        holder: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    // ---- validations ----------------------------------------------------------------------

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

    // ---- webhooks -------------------------------------------------------------------------

    async fn create_webhook(&self, hook: &Webhook) -> Result<()>;
    /// Oldest first.
    async fn list_webhooks(&self) -> Result<Vec<Webhook>>;
    /// False when there was no such webhook.
    async fn delete_webhook(&self, id: Uuid) -> Result<bool>;
    /// Records a delivery attempt: `delivered` is the last event sequence it has acknowledged.
    async fn record_webhook_delivery(&self, id: Uuid, delivery: &WebhookDelivery) -> Result<()>;

    // ---- audit ----------------------------------------------------------------------------

    async fn append_audit(&self, record: &NewAudit) -> Result<()>;
    /// Newest first; ids strictly below `before`.
    async fn list_audit(
        &self,
        filter: &AuditFilter,
        limit: u32,
        before: Option<i64>,
    ) -> Result<Vec<AuditRecord>>;

    // ---- idempotency ----------------------------------------------------------------------

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

/// Opens the store a database URL names (`sqlite://...` or `postgres://...`) and applies its
/// migrations.
pub async fn open(url: &str) -> anyhow::Result<std::sync::Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(std::sync::Arc::new(sqlite::SqliteStore::open(url).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(std::sync::Arc::new(
            postgres::PostgresStore::open(url).await?,
        ))
    } else {
        anyhow::bail!("database URL must start with sqlite: or postgres:, got `{url}`")
    }
}
