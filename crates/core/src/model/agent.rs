//! Agents, join tokens and tasks: what the gateway stores and the API shows. Plain data and its
//! validation, no I/O.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    DriveLetter, FieldError, MAX_NAME_LEN, MAX_PATH_LEN, MAX_TEXT_LEN, Name, check_name,
    check_text, paths, valid_drive_letter,
};

/// Deepest skeleton copy accepted; real trees are a handful of levels.
pub const MAX_SKELETON_DEPTH: u32 = 64;
/// Longest `Echo` sleep: long enough to hold a lease in a test, short enough not to hold a slot
/// forever by mistake.
pub const MAX_ECHO_SLEEP_MS: u64 = 3_600_000;
/// Default lifetime of a join token.
pub const DEFAULT_JOIN_TOKEN_TTL_SECONDS: i64 = 30 * 60;

/// Timing of the agent protocol, the same for every agent of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentTiming {
    /// How often agents send a heartbeat.
    pub heartbeat: Duration,
    /// How long a task lease lasts without renewal.
    pub lease: Duration,
    /// Heartbeat TTL plus grace: an agent silent this long is marked down, and its session, if
    /// any, is closed.
    pub down_after: Duration,
}

impl Default for AgentTiming {
    /// A heartbeat every 10 s, leases of 30 s, down after a minute of silence.
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(10),
            lease: Duration::from_secs(30),
            down_after: Duration::from_secs(60),
        }
    }
}

impl AgentTiming {
    /// How often `last_seen_at` is written; heartbeats in between only touch memory.
    pub fn last_seen_every(&self) -> Duration {
        self.heartbeat.min(Duration::from_secs(5))
    }

    /// How often the reaper looks for expired leases and silent agents.
    pub fn reap_every(&self) -> Duration {
        self.heartbeat.min(Duration::from_secs(1))
    }
}
/// Most enrollments one join token may allow.
pub const MAX_JOIN_TOKEN_USES: u32 = 10_000;
/// Most capabilities an agent may announce.
pub const MAX_CAPABILITIES: usize = 64;

/// What a task does on a node. On the wire (REST) it is an object whose `action` field names the
/// kind: `{"action": "echo", "text": "hi"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Replicate a directory tree, directories only, `depth` levels deep, without following
    /// junctions. `source` and `destination` are absolute (`F:\`, `\\HOST\F$\`, `/srv/x`),
    /// without `..`, naming no device, and must lie under the agent's allowed paths; `log_path`
    /// is a plain file name in the agent's log directory (empty: named after the task).
    SkeletonCopy {
        #[schema(min_length = 1, max_length = 32767, pattern = r"^([A-Za-z]:\\|\\\\|/)")]
        source: String,
        #[schema(min_length = 1, max_length = 32767, pattern = r"^([A-Za-z]:\\|\\\\|/)")]
        destination: String,
        #[schema(minimum = 1, maximum = 64)]
        depth: u32,
        #[schema(max_length = 255)]
        log_path: String,
    },
    /// Read a group's shares with their permissions.
    ShareScan {
        #[schema(value_type = Name)]
        group: String,
    },
    /// List the cluster's groups.
    ListGroups {},
    OfflineGroup {
        #[schema(value_type = Name)]
        group: String,
    },
    OnlineGroup {
        #[schema(value_type = Name)]
        group: String,
    },
    /// Migrate a group's configuration from `source_cluster` onto this agent's cluster.
    MigrateGroup {
        #[schema(value_type = Name)]
        source_cluster: String,
        #[schema(value_type = Name)]
        group: String,
    },
    AddDiskResource {
        #[schema(value_type = Name)]
        group: String,
        #[schema(value_type = Name)]
        disk: String,
        #[schema(value_type = DriveLetter)]
        drive_letter: String,
    },
    RemoveResource {
        #[schema(value_type = Name)]
        group: String,
        #[schema(value_type = Name)]
        resource: String,
    },
    /// Replace a resource's dependencies.
    SetDependency {
        #[schema(value_type = Name)]
        group: String,
        #[schema(value_type = Name)]
        resource: String,
        #[schema(value_type = Vec<Name>)]
        depends_on: Vec<String>,
    },
    AssignDriveLetter {
        #[schema(value_type = Name)]
        disk: String,
        #[schema(value_type = DriveLetter)]
        drive_letter: String,
    },
    /// Report the node's facts (OS, processor, NICs).
    GatherFacts {},
    /// Report the cluster's whole inventory: nodes, networks, disks, groups with their shares.
    ReadInventory {},
    /// Report the cluster's storage: nodes, disks, and each group with its disk resources only
    /// (an inventory without shares): what a preflight on an interim or target checks, at a
    /// size that does not grow with the shares there. Naming disks (by resource) or drive
    /// letters narrows it to those disks and the groups owning them, so that its size does not
    /// grow with the groups there either; naming neither reports all.
    ReadStorage {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        #[schema(value_type = Vec<Name>)]
        disks: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        #[schema(value_type = Vec<DriveLetter>)]
        drive_letters: Vec<String>,
    },
    /// Give a disk that belongs to no group `drive_letter`, for a migrated group to land on.
    PrepareDisk {
        #[schema(value_type = DriveLetter)]
        drive_letter: String,
    },
    /// Make `disk` the group's only physical disk resource: add it, re-point the dependents of
    /// the group's other disk resources to it, remove those.
    ReplaceDiskResource {
        #[schema(value_type = Name)]
        group: String,
        #[schema(value_type = Name)]
        disk: String,
        #[schema(value_type = DriveLetter)]
        drive_letter: String,
    },
    /// Delete an offline group and its resources; an absent group is success.
    RemoveGroup {
        #[schema(value_type = Name)]
        group: String,
    },
    /// Harmless diagnostics: answers `text` after `sleep_ms`, holding the lease meanwhile.
    Echo {
        #[serde(default)]
        #[schema(max_length = 4096)]
        text: String,
        #[serde(default)]
        #[schema(maximum = 3600000)]
        sleep_ms: u64,
    },
}

impl Action {
    /// The serde tag, e.g. `echo`; also the capability an agent announces for it.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::SkeletonCopy { .. } => "skeleton_copy",
            Action::ShareScan { .. } => "share_scan",
            Action::ListGroups {} => "list_groups",
            Action::OfflineGroup { .. } => "offline_group",
            Action::OnlineGroup { .. } => "online_group",
            Action::MigrateGroup { .. } => "migrate_group",
            Action::AddDiskResource { .. } => "add_disk_resource",
            Action::RemoveResource { .. } => "remove_resource",
            Action::SetDependency { .. } => "set_dependency",
            Action::AssignDriveLetter { .. } => "assign_drive_letter",
            Action::GatherFacts {} => "gather_facts",
            Action::ReadInventory {} => "read_inventory",
            Action::ReadStorage { .. } => "read_storage",
            Action::PrepareDisk { .. } => "prepare_disk",
            Action::ReplaceDiskResource { .. } => "replace_disk_resource",
            Action::RemoveGroup { .. } => "remove_group",
            Action::Echo { .. } => "echo",
        }
    }

    /// The kinds that read one node's disks, so that only that node's agent can run them.
    pub const NODE_BOUND_KINDS: [&'static str; 2] = ["skeleton_copy", "share_scan"];

    /// Whether any agent of the cluster can run it. Cluster operations go through the cluster's
    /// API, which every node reaches; skeleton copies and share scans read one node's disks.
    pub fn runs_on_any_node(&self) -> bool {
        !Self::NODE_BOUND_KINDS.contains(&self.kind())
    }

    /// Every problem at once; field names as in the JSON body.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let e = &mut errors;
        let drive = |e: &mut Vec<FieldError>, letter: &str| {
            if !valid_drive_letter(letter) {
                e.push(FieldError::new(
                    "drive_letter",
                    "must be a letter followed by a colon, e.g. `F:`",
                ));
            }
        };
        match self {
            Action::SkeletonCopy {
                source,
                destination,
                depth,
                log_path,
            } => {
                for (field, path) in [("source", source), ("destination", destination)] {
                    if path.chars().count() > MAX_PATH_LEN {
                        check_text(e, field, path, MAX_PATH_LEN);
                    } else if let Err(rule) = paths::check_dir_path(path) {
                        e.push(FieldError::new(field, rule));
                    }
                }
                if let Err(rule) = paths::check_log_name(log_path) {
                    e.push(FieldError::new("log_path", rule));
                }
                if !(1..=MAX_SKELETON_DEPTH).contains(depth) {
                    e.push(FieldError::new(
                        "depth",
                        format!("must be between 1 and {MAX_SKELETON_DEPTH}"),
                    ));
                }
            }
            Action::ShareScan { group }
            | Action::OfflineGroup { group }
            | Action::OnlineGroup { group }
            | Action::RemoveGroup { group } => check_name(e, "group", group),
            Action::PrepareDisk { drive_letter } => drive(e, drive_letter),
            Action::ReplaceDiskResource {
                group,
                disk,
                drive_letter,
            } => {
                check_name(e, "group", group);
                check_name(e, "disk", disk);
                drive(e, drive_letter);
            }
            Action::MigrateGroup {
                source_cluster,
                group,
            } => {
                check_name(e, "source_cluster", source_cluster);
                check_name(e, "group", group);
            }
            Action::AddDiskResource {
                group,
                disk,
                drive_letter,
            } => {
                check_name(e, "group", group);
                check_name(e, "disk", disk);
                drive(e, drive_letter);
            }
            Action::RemoveResource { group, resource } => {
                check_name(e, "group", group);
                check_name(e, "resource", resource);
            }
            Action::SetDependency {
                group,
                resource,
                depends_on,
            } => {
                check_name(e, "group", group);
                check_name(e, "resource", resource);
                for (i, name) in depends_on.iter().enumerate() {
                    check_name(e, &format!("depends_on[{i}]"), name);
                }
            }
            Action::AssignDriveLetter { disk, drive_letter } => {
                check_name(e, "disk", disk);
                drive(e, drive_letter);
            }
            Action::ReadStorage {
                disks,
                drive_letters,
            } => {
                for (i, disk) in disks.iter().enumerate() {
                    check_name(e, &format!("disks[{i}]"), disk);
                }
                for (i, letter) in drive_letters.iter().enumerate() {
                    if !valid_drive_letter(letter) {
                        e.push(FieldError::new(
                            format!("drive_letters[{i}]"),
                            "must be a letter followed by a colon, e.g. `F:`",
                        ));
                    }
                }
            }
            Action::ListGroups {} | Action::GatherFacts {} | Action::ReadInventory {} => {}
            Action::Echo { text, sleep_ms } => {
                check_text(e, "text", text, MAX_TEXT_LEN);
                if *sleep_ms > MAX_ECHO_SLEEP_MS {
                    e.push(FieldError::new(
                        "sleep_ms",
                        format!("must be at most {MAX_ECHO_SLEEP_MS} (one hour)"),
                    ));
                }
            }
        }
        errors
    }
}

/// Connection state of an agent as the servers last recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    Connected,
    /// The stream ended; the agent is expected back.
    Disconnected,
    /// Not heard from for longer than the heartbeat TTL and grace.
    Down,
    Revoked,
}

impl AgentState {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::Connected => "connected",
            AgentState::Disconnected => "disconnected",
            AgentState::Down => "down",
            AgentState::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            AgentState::Connected,
            AgentState::Disconnected,
            AgentState::Down,
            AgentState::Revoked,
        ]
        .into_iter()
        .find(|state| state.as_str() == s)
    }
}

/// An enrolled agent. Its secret is never shown after enrollment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Agent {
    pub id: Uuid,
    pub cluster_id: Uuid,
    pub cluster_name: String,
    /// The node (or storage server) it runs on; one live agent per node.
    pub node: String,
    pub software_version: String,
    /// Action kinds it announced, e.g. `echo`.
    pub capabilities: Vec<String>,
    pub state: AgentState,
    /// The current session while connected.
    pub session_id: Option<Uuid>,
    pub connected_at: Option<DateTime<Utc>>,
    /// Updated every few seconds while connected, not on every heartbeat.
    pub last_seen_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// The OpenAPI schema `ClusterAction`: the [`Action`]s any agent of a cluster can run, the body
/// of `POST /v1/clusters/{id}/tasks` (every action but [`Action::NODE_BOUND_KINDS`]).
pub struct ClusterAction;

impl utoipa::PartialSchema for ClusterAction {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::schema::Schema;
        let mut schema = <Action as utoipa::PartialSchema>::schema();
        if let RefOr::T(Schema::OneOf(one_of)) = &mut schema {
            one_of.items.retain(|variant| {
                let kind = serde_json::to_value(variant)
                    .ok()
                    .and_then(|v| v.pointer("/properties/action/enum/0").cloned());
                !kind.is_some_and(|kind| Action::NODE_BOUND_KINDS.iter().any(|k| kind == *k))
            });
            one_of.description = Some(
                "What a task does on any agent of a cluster: an action but those that read one \
                 node's disks (`skeleton_copy`, `share_scan`), which go to that node's agent."
                    .into(),
            );
        }
        schema
    }
}

impl ToSchema for ClusterAction {
    fn name() -> std::borrow::Cow<'static, str> {
        "ClusterAction".into()
    }

    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        <Action as ToSchema>::schemas(schemas);
    }
}

/// Body of `POST /v1/join-tokens`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewJoinToken {
    /// Cluster id or name the enrolled agents will belong to.
    #[schema(value_type = Name)]
    pub cluster: String,
    /// Lifetime in seconds, up to 30 days (default 1800).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 2592000)]
    pub ttl_seconds: Option<i64>,
    /// How many agents may enroll with it, up to 10,000 (default 1).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10000)]
    pub uses: Option<u32>,
}

impl NewJoinToken {
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        check_name(&mut errors, "cluster", &self.cluster);
        if let Some(ttl) = self.ttl_seconds
            && !(1..=30 * 24 * 3600).contains(&ttl)
        {
            errors.push(FieldError::new(
                "ttl_seconds",
                "must be between 1 and 2592000 (30 days)",
            ));
        }
        if let Some(uses) = self.uses
            && !(1..=MAX_JOIN_TOKEN_USES).contains(&uses)
        {
            errors.push(FieldError::new(
                "uses",
                format!("must be between 1 and {MAX_JOIN_TOKEN_USES}"),
            ));
        }
        errors
    }
}

/// A join token as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JoinTokenInfo {
    pub id: Uuid,
    pub cluster_id: Uuid,
    pub cluster_name: String,
    pub expires_at: DateTime<Utc>,
    pub uses_left: u32,
    pub created_at: DateTime<Utc>,
    /// Name of the API token that created it.
    pub created_by: String,
}

/// Answer to a join token creation: the secret is shown here once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreatedJoinToken {
    #[serde(flatten)]
    pub info: JoinTokenInfo,
    /// Give it to `ferry agent --join-token`. Absent in an `Idempotency-Key` replay.
    pub token: Option<String>,
}

/// What an agent presents to enroll.
#[derive(Debug, Clone, PartialEq)]
pub struct EnrollRequest {
    pub join_token: String,
    /// Cluster id or name.
    pub cluster: String,
    pub node: String,
    pub software_version: String,
    pub capabilities: Vec<String>,
}

impl EnrollRequest {
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        check_name(&mut errors, "cluster", &self.cluster);
        check_name(&mut errors, "node", &self.node);
        check_text(
            &mut errors,
            "software_version",
            &self.software_version,
            MAX_NAME_LEN,
        );
        check_capabilities(&mut errors, &self.capabilities);
        errors
    }
}

pub fn check_capabilities(errors: &mut Vec<FieldError>, capabilities: &[String]) {
    if capabilities.len() > MAX_CAPABILITIES {
        errors.push(FieldError::new(
            "capabilities",
            format!("at most {MAX_CAPABILITIES} entries"),
        ));
    }
    for (i, c) in capabilities.iter().enumerate() {
        check_name(errors, &format!("capabilities[{i}]"), c);
    }
}

/// An enrolled agent with its secret, shown to the agent once.
#[derive(Debug, Clone, PartialEq)]
pub struct Enrollment {
    pub agent: Agent,
    pub secret: String,
    /// The agent this one replaced on its node, now revoked.
    pub replaced: Option<Uuid>,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Stored, not yet sent.
    Pending,
    /// Sent under a lease, not yet reported as started.
    Assigned,
    Running,
    Succeeded,
    Failed,
    /// The lease ran out: the agent vanished or stopped renewing it.
    Lost,
    Cancelled,
}

impl TaskState {
    pub const ALL: [TaskState; 7] = [
        TaskState::Pending,
        TaskState::Assigned,
        TaskState::Running,
        TaskState::Succeeded,
        TaskState::Failed,
        TaskState::Lost,
        TaskState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Assigned => "assigned",
            TaskState::Running => "running",
            TaskState::Succeeded => "succeeded",
            TaskState::Failed => "failed",
            TaskState::Lost => "lost",
            TaskState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == s)
    }

    /// Held by an agent under a lease.
    pub fn in_flight(self) -> bool {
        matches!(self, TaskState::Assigned | TaskState::Running)
    }
}

/// Why an attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TaskError {
    /// Short class: `unsupported`, `invalid`, `io`, `driver`, `lost`, `forbidden`...
    pub kind: String,
    pub message: String,
    /// Whether running the step again may succeed.
    pub retryable: bool,
}

impl TaskError {
    /// The kind of an agent's refusal to touch a path outside what it is allowed (its
    /// `--allow-path` list, its own state directory) or a path that is not a plain folder; the
    /// server audits each such result as `task.forbidden`.
    pub const FORBIDDEN: &'static str = "forbidden";
}

/// The latest progress report of a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TaskProgress {
    pub done: u64,
    pub total: Option<u64>,
    pub message: String,
    pub at: DateTime<Utc>,
}

/// One attempt of one task under one lease: what every report of an agent is fenced by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TaskRef {
    pub task_id: Uuid,
    pub attempt: i64,
    pub generation: i64,
}

/// How an attempt ended, as the agent reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskOutcome {
    Succeeded(serde_json::Value),
    Failed(TaskError),
}

/// An attempt's outcome as it arrives from an agent. An inventory stays typed: a discovery imports
/// it as it is, rather than through JSON and back, and keeps only a [`DiscoveryReceipt`].
///
/// [`DiscoveryReceipt`]: super::DiscoveryReceipt
#[derive(Debug, Clone, PartialEq)]
pub enum Reported {
    Outcome(TaskOutcome),
    Inventory(Box<super::InventoryDocument>),
}

/// A task: one action for one node, handed to an agent under a lease.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Task {
    pub id: Uuid,
    pub cluster_id: Uuid,
    pub node: String,
    /// The agent holding (or meant to hold) it.
    pub agent_id: Option<Uuid>,
    pub action: Action,
    pub state: TaskState,
    /// 1 for the first attempt; a retry is a new attempt.
    pub attempt: i64,
    /// Bumped every time the task is handed to an agent: the fencing token of results.
    pub generation: i64,
    pub lease_deadline: Option<DateTime<Utc>>,
    /// The executor's report, once succeeded: an object, or a list for `list_groups`.
    pub result: Option<serde_json::Value>,
    pub error: Option<TaskError>,
    pub progress: Option<TaskProgress>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Name of the API token that created it.
    pub created_by: String,
}

impl Task {
    pub fn task_ref(&self) -> TaskRef {
        TaskRef {
            task_id: self.id,
            attempt: self.attempt,
            generation: self.generation,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_tagged_objects() {
        let echo: Action = serde_json::from_str(r#"{"action": "echo", "text": "hi"}"#).unwrap();
        assert_eq!(
            echo,
            Action::Echo {
                text: "hi".into(),
                sleep_ms: 0
            }
        );
        let list: Action = serde_json::from_str(r#"{"action": "list_groups"}"#).unwrap();
        assert_eq!(list, Action::ListGroups {});
        // Actions without fields refuse unknown ones too, as the spec says.
        for kind in ["list_groups", "gather_facts", "read_inventory"] {
            let body = format!(r#"{{"action": "{kind}", "group": "G"}}"#);
            let refused = serde_json::from_str::<Action>(&body).unwrap_err();
            assert!(
                refused.to_string().contains("unknown field `group`"),
                "{refused}"
            );
        }
        assert_eq!(
            serde_json::to_value(&list).unwrap(),
            serde_json::json!({"action": "list_groups"})
        );
        for bad in [
            r#"{"action": "echo", "txt": "hi"}"#,
            r#"{"action": "format_disk"}"#,
            r#"{"text": "hi"}"#,
        ] {
            assert!(serde_json::from_str::<Action>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn action_kind_is_the_serde_tag() {
        let actions = [
            Action::SkeletonCopy {
                source: "a".into(),
                destination: "b".into(),
                depth: 1,
                log_path: "l".into(),
            },
            Action::ListGroups {},
            Action::GatherFacts {},
            Action::ReadInventory {},
            Action::ReadStorage {
                disks: Vec::new(),
                drive_letters: Vec::new(),
            },
            Action::ReadStorage {
                disks: vec!["Cluster Disk 2".into()],
                drive_letters: vec!["F:".into()],
            },
            Action::PrepareDisk {
                drive_letter: "F:".into(),
            },
            Action::ReplaceDiskResource {
                group: "g".into(),
                disk: "d".into(),
                drive_letter: "F:".into(),
            },
            Action::RemoveGroup { group: "g".into() },
            Action::SetDependency {
                group: "g".into(),
                resource: "r".into(),
                depends_on: vec![],
            },
            Action::Echo {
                text: String::new(),
                sleep_ms: 0,
            },
        ];
        for action in actions {
            let json = serde_json::to_value(&action).unwrap();
            assert_eq!(json["action"], action.kind());
            assert_eq!(serde_json::from_value::<Action>(json).unwrap(), action);
        }
        // Cluster-wide steps of the scheduler go to any agent of the cluster.
        assert!(Action::ReadInventory {}.runs_on_any_node());
        assert!(Action::RemoveGroup { group: "g".into() }.runs_on_any_node());
    }

    #[test]
    fn actions_are_validated() {
        let errors = Action::AddDiskResource {
            group: String::new(),
            disk: "Cluster Disk 2".into(),
            drive_letter: "FF".into(),
        }
        .validate();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["group", "drive_letter"]);
        let errors = Action::SkeletonCopy {
            source: "D:\\Data".into(),
            destination: String::new(),
            depth: 0,
            log_path: "C:\\log.txt".into(),
        }
        .validate();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["destination", "log_path", "depth"]);
        // What the runbook sends passes; an escape is refused field by field.
        let copy = |source: &str, destination: &str, log_path: &str| Action::SkeletonCopy {
            source: source.into(),
            destination: destination.into(),
            depth: 2,
            log_path: log_path.into(),
        };
        assert_eq!(
            copy("\\\\OLD\\F$\\", "F:\\", "skeleton-FS01.log").validate(),
            []
        );
        assert_eq!(copy("/srv/in", "/srv/out", "").validate(), []);
        let errors = copy("/srv/in/../../etc", "/dev/sda", "/srv/precious.db").validate();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["source", "destination", "log_path"]);
        assert!(errors[0].message.contains("`..`"), "{errors:?}");
        assert!(errors[1].message.contains("`/dev`"), "{errors:?}");
        assert!(errors[2].message.contains("plain file name"), "{errors:?}");
        let errors = Action::ReplaceDiskResource {
            group: "FS1".into(),
            disk: String::new(),
            drive_letter: "F".into(),
        }
        .validate();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["disk", "drive_letter"]);
        assert_eq!(
            Action::PrepareDisk {
                drive_letter: "F:".into()
            }
            .validate(),
            []
        );
        assert!(
            Action::Echo {
                text: "x".into(),
                sleep_ms: MAX_ECHO_SLEEP_MS + 1
            }
            .validate()[0]
                .field
                == "sleep_ms"
        );
    }

    #[test]
    fn states_round_trip() {
        for state in TaskState::ALL {
            assert_eq!(TaskState::parse(state.as_str()), Some(state));
            assert_eq!(
                serde_json::to_value(state).unwrap(),
                serde_json::json!(state.as_str())
            );
        }
        assert_eq!(AgentState::parse("down"), Some(AgentState::Down));
        assert_eq!(AgentState::parse("gone"), None);
    }
}
