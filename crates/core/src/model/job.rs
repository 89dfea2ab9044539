//! Migration jobs: what an operator asks for, the plan Ferry answers with, and the durable state
//! of a job's groups and steps that the scheduler moves forward.
//!
//! A group's whole progress (its steps, their attempts, the rollback, the approval, the measured
//! downtime) is one document, [`JobGroup`], stored with a version. The scheduler reads it, computes
//! the next state with a pure function, and writes it back only if the version is unchanged, in
//! the same transaction as the task it starts and the events it emits. One row per group keeps a
//! step's transition to one small write, and makes a half-applied transition impossible.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{FieldError, MAX_NAME_LEN, MAX_SKELETON_DEPTH, Name, ResourceKind, Share, check_name};
use crate::plan::{CutoverWindow, Phase, Route, StepKind, Undo};

/// Default directory levels of the skeleton copy (the field notes' `/lev:2`).
pub const DEFAULT_SKELETON_DEPTH: u32 = 2;
/// Groups of one job that may be in progress at once, unless the request says otherwise.
pub const DEFAULT_MAX_ACTIVE_GROUPS: u32 = 4;
/// Cutovers that may run at once on one cluster (any job), unless the request says otherwise.
pub const DEFAULT_MAX_CLUSTER_CUTOVERS: u32 = 2;
/// Longest an approval may stay valid.
pub const MAX_APPROVAL_TTL_SECONDS: u64 = 90 * 86_400;
/// Most groups in one job.
pub const MAX_JOB_GROUPS: usize = 10_000;

/// Body of `POST /v1/plans` and `POST /v1/jobs`: move `groups` from `source` to `target`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    /// Shown in lists; defaults to `source -> target`.
    #[serde(default)]
    #[schema(value_type = Option<Name>)]
    pub name: Option<String>,
    /// Source cluster name.
    #[schema(value_type = Name)]
    pub source: String,
    /// Target cluster name.
    #[schema(value_type = Name)]
    pub target: String,
    /// Forces the route through this registered cluster.
    #[serde(default)]
    #[schema(value_type = Option<Name>)]
    pub interim: Option<String>,
    /// Group names of the source's newest inventory snapshot, each once (names compare
    /// case-insensitively); empty means all of them.
    #[serde(default)]
    #[schema(max_items = 10000, value_type = Vec<Name>)]
    pub groups: Vec<String>,
    /// Plan a direct hop that loses resources when no lossless route exists; the plan lists
    /// what would be lost.
    #[serde(default)]
    pub allow_lossy: bool,
    /// Directory levels of the skeleton copy, the drive root being level 1. Default: deep enough
    /// for every share's folder, at least 2; a smaller value fails the preflight, since shares
    /// whose folders are missing cannot come online on the interim.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 64)]
    pub skeleton_depth: Option<u32>,
    /// Source disk resource name -> the target's disk holding the same data (the LUN presented
    /// to the target). A disk not listed keeps its name.
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, Name>)]
    pub disk_mapping: BTreeMap<String, String>,
    /// When cutovers may run; none means any time.
    #[serde(default)]
    pub windows: Vec<CutoverWindow>,
    /// Each group waits in `awaiting_approval` before its cutover until an operator approves it.
    #[serde(default)]
    pub require_approval: bool,
    /// How long an approval stays valid; none means until used.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 7776000)]
    pub approval_ttl_seconds: Option<u64>,
    /// Groups of this job in progress at once (default 4).
    #[serde(default)]
    #[schema(value_type = Option<u64>, minimum = 1, maximum = 4_294_967_295_u64)]
    pub max_active_groups: Option<u32>,
    /// Cutovers running at once on any one cluster, counting every job (default 2).
    #[serde(default)]
    #[schema(value_type = Option<u64>, minimum = 1, maximum = 4_294_967_295_u64)]
    pub max_cluster_cutovers: Option<u32>,
    /// Pause before every retry, replacing each step kind's own backoff (e.g. 15 s, doubling,
    /// before the second online of a network name).
    #[serde(default)]
    #[schema(maximum = 3600)]
    pub retry_backoff_seconds: Option<u64>,
    /// Runs the job although the interim's or target's latest validation report fails; the
    /// reason is audited (`job.validation_override`).
    #[serde(default)]
    pub validation_override: Option<ValidationOverride>,
}

/// An operator's decision to run a job over a failing validation report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidationOverride {
    /// Why the failing checks do not matter for this move (1 to 1000 characters).
    #[schema(
        min_length = 1,
        max_length = 1000,
        pattern = "[^\\u0009-\\u000D\\u0020\\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]"
    )]
    pub reason: String,
}

/// Longest override reason kept.
pub const MAX_OVERRIDE_REASON: usize = 1000;

impl JobRequest {
    /// Everything wrong with the request that needs no store to know.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if let Some(name) = &self.name {
            check_name(&mut errors, "name", name);
        }
        check_name(&mut errors, "source", &self.source);
        check_name(&mut errors, "target", &self.target);
        if let Some(over) = &self.validation_override {
            let len = over.reason.trim().chars().count();
            if len == 0 || len > MAX_OVERRIDE_REASON {
                errors.push(FieldError::new(
                    "validation_override.reason",
                    format!("must say why, in 1 to {MAX_OVERRIDE_REASON} characters"),
                ));
            }
        }
        if let Some(interim) = &self.interim {
            check_name(&mut errors, "interim", interim);
        }
        if self.groups.len() > MAX_JOB_GROUPS {
            errors.push(FieldError::new(
                "groups",
                format!("at most {MAX_JOB_GROUPS} groups per job"),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, group) in self.groups.iter().enumerate() {
            check_name(&mut errors, &format!("groups[{i}]"), group);
            if !seen.insert(group.to_lowercase()) {
                errors.push(FieldError::new(
                    format!("groups[{i}]"),
                    format!("group `{group}` is listed twice"),
                ));
            }
        }
        if let Some(depth) = self.skeleton_depth
            && !(1..=MAX_SKELETON_DEPTH).contains(&depth)
        {
            errors.push(FieldError::new(
                "skeleton_depth",
                format!("must be 1 to {MAX_SKELETON_DEPTH} (the source root is level 1)"),
            ));
        }
        for (from, to) in &self.disk_mapping {
            check_name(&mut errors, &format!("disk_mapping.{from}"), from);
            check_name(&mut errors, &format!("disk_mapping.{from}"), to);
        }
        for (i, window) in self.windows.iter().enumerate() {
            if let Err(message) = window.validate() {
                errors.push(FieldError::new(format!("windows[{i}]"), message));
            }
        }
        if self.retry_backoff_seconds.is_some_and(|s| s > 3600) {
            errors.push(FieldError::new(
                "retry_backoff_seconds",
                "must be at most 3600 (one hour)",
            ));
        }
        if self
            .approval_ttl_seconds
            .is_some_and(|s| s > MAX_APPROVAL_TTL_SECONDS)
        {
            errors.push(FieldError::new(
                "approval_ttl_seconds",
                format!("must be at most {MAX_APPROVAL_TTL_SECONDS} (90 days)"),
            ));
        }
        if self.approval_ttl_seconds == Some(0) {
            errors.push(FieldError::new(
                "approval_ttl_seconds",
                "must be positive; leave it out for approvals that do not expire",
            ));
        }
        for (field, value) in [
            ("max_active_groups", self.max_active_groups),
            ("max_cluster_cutovers", self.max_cluster_cutovers),
        ] {
            if value == Some(0) {
                errors.push(FieldError::new(field, "must be at least 1"));
            }
        }
        errors
    }

    pub fn display_name(&self) -> String {
        let name = self
            .name
            .clone()
            .unwrap_or_else(|| format!("{} -> {}", self.source, self.target));
        name.chars().take(MAX_NAME_LEN).collect()
    }

    pub fn skeleton_depth(&self) -> u32 {
        self.skeleton_depth.unwrap_or(DEFAULT_SKELETON_DEPTH)
    }

    pub fn max_active_groups(&self) -> u32 {
        self.max_active_groups.unwrap_or(DEFAULT_MAX_ACTIVE_GROUPS)
    }

    pub fn max_cluster_cutovers(&self) -> u32 {
        self.max_cluster_cutovers
            .unwrap_or(DEFAULT_MAX_CLUSTER_CUTOVERS)
    }

    /// The target's disk for a source disk.
    pub fn target_disk<'a>(&'a self, source_disk: &'a str) -> &'a str {
        self.disk_mapping
            .get(source_disk)
            .map_or(source_disk, String::as_str)
    }
}

/// How serious a preflight finding is: `fail` blocks the job, `warn` is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Pass,
    Warn,
    Fail,
}

/// What a plan's preflight found. Named `PreflightFinding` in the spec: a validation report's
/// `Finding` is another type, and two schemas of one name would leave one of them wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = PreflightFinding)]
pub struct Finding {
    pub severity: Severity,
    /// Short machine-readable name, e.g. `agent_connected`.
    pub check: String,
    pub message: String,
    /// The group it is about, when it is about one group of a job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

impl Finding {
    pub fn new(severity: Severity, check: &str, message: impl Into<String>) -> Self {
        Finding {
            severity,
            check: check.to_owned(),
            message: message.into(),
            group: None,
        }
    }

    /// The same finding, about `group`.
    pub fn for_group(mut self, group: &str) -> Self {
        self.group = Some(group.to_owned());
        self
    }
}

/// One planned step, as shown by a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PlannedStep {
    pub seq: u32,
    pub kind: StepKind,
    pub phase: Phase,
    /// Cluster whose agent runs it.
    pub cluster: String,
    /// A connected agent's node that would run it now, if any.
    pub node: Option<String>,
    pub estimate_seconds: u64,
    pub max_attempts: u32,
}

/// The plan for one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GroupPlan {
    pub group: String,
    /// Cluster names from source to target.
    pub route: Vec<String>,
    pub route_detail: Route,
    pub steps: Vec<PlannedStep>,
    pub estimated_seconds: u64,
    /// The cutover steps' estimate: the downtime to expect.
    pub estimated_downtime_seconds: u64,
    pub findings: Vec<Finding>,
}

/// Answer of `POST /v1/plans`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Plan {
    pub request: JobRequest,
    /// Cluster names from source to target, the same for every group.
    pub route: Vec<String>,
    /// Why the route does not go straight from source to target, when it does not.
    pub refused_direct: Option<String>,
    /// Resource kinds an allowed lossy hop loses.
    pub losses: Vec<String>,
    pub groups: Vec<GroupPlan>,
    /// Findings about the job as a whole (clusters, agents, holds).
    pub findings: Vec<Finding>,
    /// False when any finding fails: a job from this request would be refused.
    pub runnable: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Running,
    Paused,
    /// Cancelled by an operator; groups in cutover are rolling back.
    Cancelling,
    Succeeded,
    /// Finished with at least one group failed or rolled back.
    Failed,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 6] = [
        JobState::Running,
        JobState::Paused,
        JobState::Cancelling,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Running => "running",
            JobState::Paused => "paused",
            JobState::Cancelling => "cancelling",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupState {
    /// Waits for a slot under the job's concurrency limit.
    Pending,
    /// Running the preparation steps, ahead of any window.
    Preparing,
    AwaitingWindow,
    AwaitingApproval,
    /// Downtime: the cutover steps run.
    CuttingOver,
    /// The cutover succeeded; the interim is being cleaned up.
    CleaningUp,
    Succeeded,
    /// A step failed before the cutover; nothing needed undoing. Retry resumes it.
    Failed,
    /// A cutover step failed (or the job was cancelled during the cutover): the undo steps run.
    RollingBack,
    /// Back online on the source with its shares verified. Retry resumes from the failed step.
    RolledBack,
    /// The rollback itself failed: an operator must look.
    RollbackFailed,
    Cancelled,
}

impl GroupState {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Pending => "pending",
            GroupState::Preparing => "preparing",
            GroupState::AwaitingWindow => "awaiting_window",
            GroupState::AwaitingApproval => "awaiting_approval",
            GroupState::CuttingOver => "cutting_over",
            GroupState::CleaningUp => "cleaning_up",
            GroupState::Succeeded => "succeeded",
            GroupState::Failed => "failed",
            GroupState::RollingBack => "rolling_back",
            GroupState::RolledBack => "rolled_back",
            GroupState::RollbackFailed => "rollback_failed",
            GroupState::Cancelled => "cancelled",
        }
    }

    /// Nothing more happens without an operator.
    pub fn is_settled(self) -> bool {
        matches!(
            self,
            GroupState::Succeeded
                | GroupState::Failed
                | GroupState::RolledBack
                | GroupState::RollbackFailed
                | GroupState::Cancelled
        )
    }

    /// Holds one of the job's active-group slots.
    pub fn is_active(self) -> bool {
        !self.is_settled() && self != GroupState::Pending
    }

    /// Counts against the per-cluster cutover limit.
    pub fn in_cutover(self) -> bool {
        matches!(self, GroupState::CuttingOver | GroupState::RollingBack)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Pending,
    /// A task of this step is with an agent.
    Running,
    /// The last attempt failed; the next starts at `next_attempt_at`.
    Retrying,
    Succeeded,
    Failed,
    /// Not run: the group was cancelled or rolled back before it.
    Skipped,
}

/// What a step does: a runbook step, or the undo of one during a rollback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", content = "kind", rename_all = "snake_case")]
pub enum StepAction {
    Run(StepKind),
    Undo(Undo),
    /// The rollback's last check: the source's shares as they were at preparation.
    VerifySource,
}

/// One durable step of a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobStep {
    /// Position in the group's runbook, from 1; rollback steps continue the numbering.
    pub seq: u32,
    pub action: StepAction,
    pub phase: Phase,
    /// Cluster whose agent runs it.
    pub cluster: String,
    /// Where a migration or a skeleton copy reads from.
    #[serde(default)]
    pub peer: Option<String>,
    pub state: StepState,
    /// Attempts started so far.
    pub attempt: u32,
    pub max_attempts: u32,
    #[serde(default)]
    #[schema(minimum = 1, maximum = 64)]
    pub skeleton_depth: Option<u32>,
    pub estimate_seconds: u64,
    /// The task of the current attempt.
    #[serde(default)]
    pub task_id: Option<Uuid>,
    #[serde(default)]
    pub next_attempt_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
    /// The agent's report of the successful attempt; a report over 4 KiB stays with its task
    /// (`GET /v1/tasks/{id}`) and this says where: `{"report_bytes", "task_id", "see"}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub output: Option<serde_json::Value>,
    /// Why the last attempt failed.
    #[serde(default)]
    pub error: Option<String>,
}

impl JobStep {
    pub fn is_done(&self) -> bool {
        matches!(self.state, StepState::Succeeded | StepState::Skipped)
    }

    pub fn label(&self) -> String {
        match self.action {
            StepAction::Run(kind) => snake(&kind),
            StepAction::Undo(undo) => format!("undo:{}", snake(&undo)),
            StepAction::VerifySource => "verify_source".to_owned(),
        }
    }
}

/// The serde name of a unit enum variant.
pub fn snake<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// Facts learned along the way that later steps need.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GroupContext {
    /// Drive letter of the source disk holding the shares, e.g. `F:`.
    #[serde(default)]
    pub drive_letter: Option<String>,
    /// The source's physical disk resource of the group.
    #[serde(default)]
    pub source_disk: Option<String>,
    /// The disk prepared on the (last) interim.
    #[serde(default)]
    pub interim_disk: Option<String>,
    /// Shares in the baseline taken at preparation.
    #[serde(default)]
    pub baseline_shares: u32,
    /// Skeleton levels needed to create every share's folder (the drive root is level 1).
    #[serde(default)]
    pub share_depth: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Approval {
    pub by: String,
    pub at: DateTime<Utc>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// The comparison of a group's shares on a cluster with the baseline taken at preparation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VerificationReport {
    pub cluster: String,
    pub expected: u32,
    /// Present with the same path, permissions and flags.
    pub identical: u32,
    pub missing: Vec<String>,
    /// Missing shares the lossy route was allowed to drop (KB 983840); to recreate by hand.
    #[serde(default)]
    pub lost: Vec<String>,
    pub changed: Vec<ShareMismatch>,
    pub unexpected: Vec<String>,
    pub network_name_online: bool,
    pub passed: bool,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ShareMismatch {
    pub share: String,
    /// Which fields differ, e.g. `permissions`, `path`.
    pub fields: Vec<String>,
}

/// The state of one group of a job: the document the scheduler rewrites.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobGroup {
    pub name: String,
    pub state: GroupState,
    /// Cluster names from source to target.
    pub route: Vec<String>,
    /// Resource kinds the (allowed) lossy route drops: missing shares are then reported as lost
    /// rather than failing the verification.
    #[serde(default)]
    pub losses: Vec<ResourceKind>,
    pub steps: Vec<JobStep>,
    /// The undo steps of the current rollback, in the order they run.
    #[serde(default)]
    pub rollback: Vec<JobStep>,
    #[serde(default)]
    pub context: GroupContext,
    #[serde(default)]
    pub approval: Option<Approval>,
    /// Source offline: the downtime began.
    #[serde(default)]
    pub downtime_started_at: Option<DateTime<Utc>>,
    /// Target verified (or the source back online after a rollback): the downtime ended.
    #[serde(default)]
    pub downtime_ended_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub verification: Option<VerificationReport>,
    /// What stopped the group: which step, and why.
    #[serde(default)]
    pub error: Option<String>,
    /// Attempts beyond the first, over all steps.
    #[serde(default)]
    pub retries: u32,
    /// Bumped by every write; the scheduler writes only over the version it read.
    #[serde(default)]
    pub version: i64,
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
}

impl JobGroup {
    pub fn downtime_seconds(&self) -> Option<f64> {
        let (start, end) = (self.downtime_started_at?, self.downtime_ended_at?);
        Some((end - start).num_milliseconds() as f64 / 1000.0)
    }

    /// The step a failed group stopped at.
    pub fn failed_step(&self) -> Option<&JobStep> {
        self.steps.iter().find(|s| s.state == StepState::Failed)
    }
}

/// A job as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Job {
    pub id: Uuid,
    pub name: String,
    pub state: JobState,
    pub request: JobRequest,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Approval given for every group at once.
    #[serde(default)]
    pub approval: Option<Approval>,
    /// Groups per state.
    pub summary: BTreeMap<String, u32>,
    /// Bumped by every change of the job record.
    pub version: i64,
    /// What the job learned while running that a person should know (the source drifted
    /// after a group's baseline was taken, say).
    #[serde(default)]
    pub findings: Vec<Finding>,
}

/// `GET /v1/jobs/{id}`: the job and every group with its steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobDetail {
    #[serde(flatten)]
    pub job: Job,
    pub groups: Vec<JobGroup>,
    /// The sequence number of the job's newest event when this was read: a client that follows
    /// `GET /v1/events?job=` from the start finds everything up to it already in this answer,
    /// and needs to re-read only what later events name.
    #[serde(default)]
    #[schema(minimum = 0, required = true)]
    pub event_seq: i64,
}

/// A line of a job's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobLogEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub group: Option<String>,
    pub step: Option<u32>,
    pub level: String,
    pub message: String,
}

/// A state change of a job, group or step, numbered in the order it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobEvent {
    pub seq: i64,
    pub at: DateTime<Utc>,
    /// The job; absent for an event of no job (`inventory.changed`).
    #[serde(default)]
    pub job_id: Option<Uuid>,
    /// The cluster an event of no job is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<Uuid>,
    /// `job`, `group`, `step`, `finding` (something a running job learned) or
    /// `inventory.changed` (a cluster's new snapshot differs from the one before it).
    pub kind: String,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub step: Option<u32>,
    /// The new state.
    pub state: String,
    #[serde(default)]
    pub message: Option<String>,
    /// What clients read of an event beyond its message: for `inventory.changed`, the
    /// [`InventoryChange`](super::InventoryChange).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

/// An event or log line to store, numbered by the store.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewJobEvent {
    pub kind: &'static str,
    pub group: Option<String>,
    pub step: Option<u32>,
    pub state: String,
    pub message: Option<String>,
    /// On a step's success: its agent's report, kept with the event rather than in the
    /// group's document, which every later step of the group rewrites.
    pub output: Option<serde_json::Value>,
    /// What clients read beyond the message (see [`JobEvent::data`]).
    pub data: Option<serde_json::Value>,
}

/// Answer of an approval: what it applies to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApproveRequest {
    /// Approve only this group; absent approves every group of the job.
    #[serde(default)]
    #[schema(value_type = Option<Name>)]
    pub group: Option<String>,
}

/// The baseline a group's shares are verified against, as taken from the source at preparation.
pub type Baseline = Vec<Share>;
