//! Agents and their tasks: the agent admin calls' answers (agents, join tokens, tasks) and what
//! a session carries both ways (enrollment, task assignments, actions, results, progress). What
//! an agent sends is checked on the way in: the fencing token must parse, and a result whose
//! report this server cannot read ends its task rather than leaving it to its lease.

use chrono::Utc;
use uuid::Uuid;

use super::{report, timestamp};
use crate::pb;
use ferry_core::error::{Error, Result};
use ferry_core::model::{
    Action, Agent, CreatedJoinToken, EnrollRequest, JoinTokenInfo, NewJoinToken, Reported, Task,
    TaskError, TaskOutcome, TaskProgress, TaskRef,
};

impl From<Agent> for pb::Agent {
    fn from(a: Agent) -> Self {
        pb::Agent {
            id: a.id.to_string(),
            cluster_id: a.cluster_id.to_string(),
            cluster_name: a.cluster_name,
            node: a.node,
            software_version: a.software_version,
            capabilities: a.capabilities,
            state: pb::AgentState::from(a.state) as i32,
            session_id: a.session_id.map(|s| s.to_string()).unwrap_or_default(),
            connected_at: a.connected_at.map(timestamp),
            last_seen_at: a.last_seen_at.map(timestamp),
            revoked_at: a.revoked_at.map(timestamp),
            created_at: Some(timestamp(a.created_at)),
        }
    }
}

impl From<JoinTokenInfo> for pb::JoinTokenInfo {
    fn from(t: JoinTokenInfo) -> Self {
        pb::JoinTokenInfo {
            id: t.id.to_string(),
            cluster_id: t.cluster_id.to_string(),
            cluster_name: t.cluster_name,
            expires_at: Some(timestamp(t.expires_at)),
            uses_left: t.uses_left,
            created_at: Some(timestamp(t.created_at)),
            created_by: t.created_by,
        }
    }
}

pub fn created_join_token(
    created: CreatedJoinToken,
    replayed: bool,
) -> pb::CreateJoinTokenResponse {
    pb::CreateJoinTokenResponse {
        info: Some(created.info.into()),
        token: created.token,
        replayed,
    }
}

pub fn new_join_token(request: &pb::CreateJoinTokenRequest) -> NewJoinToken {
    NewJoinToken {
        cluster: request.cluster.clone(),
        ttl_seconds: request.ttl_seconds,
        uses: request.uses,
    }
}

pub fn enroll_request(request: pb::EnrollRequest) -> EnrollRequest {
    EnrollRequest {
        join_token: request.join_token,
        cluster: request.cluster,
        node: request.node,
        software_version: request.software_version,
        capabilities: request.capabilities,
    }
}

impl From<Action> for pb::Action {
    fn from(action: Action) -> Self {
        use pb::action::Kind;
        let kind = match action {
            Action::SkeletonCopy {
                source,
                destination,
                depth,
                log_path,
            } => Kind::SkeletonCopy(pb::SkeletonCopy {
                source,
                destination,
                depth,
                log_path,
            }),
            Action::ShareScan { group } => Kind::ShareScan(pb::ShareScan { group }),
            Action::ListGroups {} => Kind::ListGroups(pb::ListGroups {}),
            Action::OfflineGroup { group } => Kind::OfflineGroup(pb::OfflineGroup { group }),
            Action::OnlineGroup { group } => Kind::OnlineGroup(pb::OnlineGroup { group }),
            Action::MigrateGroup {
                source_cluster,
                group,
            } => Kind::MigrateGroup(pb::MigrateGroup {
                source_cluster,
                group,
            }),
            Action::AddDiskResource {
                group,
                disk,
                drive_letter,
            } => Kind::AddDiskResource(pb::AddDiskResource {
                group,
                disk,
                drive_letter,
            }),
            Action::RemoveResource { group, resource } => {
                Kind::RemoveResource(pb::RemoveResource { group, resource })
            }
            Action::SetDependency {
                group,
                resource,
                depends_on,
            } => Kind::SetDependency(pb::SetDependency {
                group,
                resource,
                depends_on,
            }),
            Action::AssignDriveLetter { disk, drive_letter } => {
                Kind::AssignDriveLetter(pb::AssignDriveLetter { disk, drive_letter })
            }
            Action::GatherFacts {} => Kind::GatherFacts(pb::GatherFacts {}),
            Action::Echo { text, sleep_ms } => Kind::Echo(pb::Echo { text, sleep_ms }),
            Action::ReadInventory {} => Kind::ReadInventory(pb::ReadInventory {}),
            Action::ReadStorage {
                disks,
                drive_letters,
            } => Kind::ReadStorage(pb::ReadStorage {
                disks,
                drive_letters,
            }),
            Action::PrepareDisk { drive_letter } => {
                Kind::PrepareDisk(pb::PrepareDisk { drive_letter })
            }
            Action::ReplaceDiskResource {
                group,
                disk,
                drive_letter,
            } => Kind::ReplaceDiskResource(pb::ReplaceDiskResource {
                group,
                disk,
                drive_letter,
            }),
            Action::RemoveGroup { group } => Kind::RemoveGroup(pb::RemoveGroup { group }),
        };
        pb::Action { kind: Some(kind) }
    }
}

/// The domain action; an action with no kind set (or one this build does not know, which decodes
/// the same way) is refused, naming `field`.
pub fn action(action: Option<pb::Action>, field: &'static str) -> Result<Action> {
    use pb::action::Kind;
    let kind = action.and_then(|a| a.kind).ok_or_else(|| {
        Error::invalid_field(field, "must be set to one of the actions this server knows")
    })?;
    Ok(match kind {
        Kind::SkeletonCopy(a) => Action::SkeletonCopy {
            source: a.source,
            destination: a.destination,
            depth: a.depth,
            log_path: a.log_path,
        },
        Kind::ShareScan(a) => Action::ShareScan { group: a.group },
        Kind::ListGroups(_) => Action::ListGroups {},
        Kind::OfflineGroup(a) => Action::OfflineGroup { group: a.group },
        Kind::OnlineGroup(a) => Action::OnlineGroup { group: a.group },
        Kind::MigrateGroup(a) => Action::MigrateGroup {
            source_cluster: a.source_cluster,
            group: a.group,
        },
        Kind::AddDiskResource(a) => Action::AddDiskResource {
            group: a.group,
            disk: a.disk,
            drive_letter: a.drive_letter,
        },
        Kind::RemoveResource(a) => Action::RemoveResource {
            group: a.group,
            resource: a.resource,
        },
        Kind::SetDependency(a) => Action::SetDependency {
            group: a.group,
            resource: a.resource,
            depends_on: a.depends_on,
        },
        Kind::AssignDriveLetter(a) => Action::AssignDriveLetter {
            disk: a.disk,
            drive_letter: a.drive_letter,
        },
        Kind::GatherFacts(_) => Action::GatherFacts {},
        Kind::Echo(a) => Action::Echo {
            text: a.text,
            sleep_ms: a.sleep_ms,
        },
        Kind::ReadInventory(_) => Action::ReadInventory {},
        Kind::ReadStorage(a) => Action::ReadStorage {
            disks: a.disks,
            drive_letters: a.drive_letters,
        },
        Kind::PrepareDisk(a) => Action::PrepareDisk {
            drive_letter: a.drive_letter,
        },
        Kind::ReplaceDiskResource(a) => Action::ReplaceDiskResource {
            group: a.group,
            disk: a.disk,
            drive_letter: a.drive_letter,
        },
        Kind::RemoveGroup(a) => Action::RemoveGroup { group: a.group },
    })
}

pub fn task_ref_to_pb(task: &TaskRef) -> pb::TaskRef {
    pb::TaskRef {
        task_id: task.task_id.to_string(),
        // Attempts count from 1 and generations from 0 and only grow by one per retry or
        // assignment: they never come near the limits of the wire types.
        attempt: u32::try_from(task.attempt).unwrap_or(u32::MAX),
        generation: u64::try_from(task.generation).unwrap_or_default(),
    }
}

/// The fencing token of an agent's report; `field` names the message's TaskRef field.
pub fn task_ref(task: Option<pb::TaskRef>, field: &'static str) -> Result<TaskRef> {
    let task = task.ok_or_else(|| Error::invalid_field(field, "is required"))?;
    Ok(TaskRef {
        task_id: Uuid::parse_str(&task.task_id).map_err(|_| {
            Error::invalid_field(format!("{field}.task_id"), "must be a task id (a UUID)")
        })?,
        attempt: i64::from(task.attempt),
        generation: i64::try_from(task.generation)
            .map_err(|_| Error::invalid_field(format!("{field}.generation"), "is out of range"))?,
    })
}

pub fn task_assignment(task: &Task) -> pb::TaskAssignment {
    pb::TaskAssignment {
        task: Some(task_ref_to_pb(&task.task_ref())),
        lease_deadline: task.lease_deadline.map(timestamp),
        action: Some(task.action.clone().into()),
    }
}

/// An agent's result: its fencing token and outcome. A success whose report this server cannot
/// read (an unknown or empty report, a required enum unset) becomes a `bad_result` failure, so
/// the task ends instead of waiting for a lease to run out: a retry would bring the same report.
/// The task, its outcome, and the last progress it sent along.
pub fn task_result(result: pb::TaskResult) -> Result<(TaskRef, Reported, Option<TaskProgress>)> {
    let task = task_ref(result.task, "task")?;
    let progress = result.final_progress.map(|p| TaskProgress {
        done: p.done,
        total: p.total,
        message: p.message,
        at: Utc::now(),
    });
    let outcome = match result.outcome {
        Some(pb::task_result::Outcome::Succeeded(s)) => match report::read_report(s) {
            Ok(reported) => reported,
            Err(why) => Reported::Outcome(TaskOutcome::Failed(TaskError {
                kind: "bad_result".into(),
                message: format!("the agent reported a result this server cannot read: {why}"),
                retryable: false,
            })),
        },
        Some(pb::task_result::Outcome::Failed(f)) => {
            Reported::Outcome(TaskOutcome::Failed(TaskError {
                kind: f.kind,
                message: f.message,
                retryable: f.retryable,
            }))
        }
        None => return Err(Error::invalid_field("outcome", "must be set")),
    };
    Ok((task, outcome, progress))
}

pub fn task_progress(progress: pb::TaskProgress) -> Result<(TaskRef, TaskProgress)> {
    let task = task_ref(progress.task, "task")?;
    Ok((
        task,
        TaskProgress {
            done: progress.done,
            total: progress.total,
            message: progress.message,
            at: Utc::now(),
        },
    ))
}

impl From<Task> for pb::Task {
    fn from(t: Task) -> Self {
        let task_ref = task_ref_to_pb(&t.task_ref());
        pb::Task {
            id: t.id.to_string(),
            cluster_id: t.cluster_id.to_string(),
            node: t.node,
            agent_id: t.agent_id.map(|a| a.to_string()).unwrap_or_default(),
            action: Some(t.action.into()),
            state: pb::TaskState::from(t.state) as i32,
            attempt: task_ref.attempt,
            generation: task_ref.generation,
            lease_deadline: t.lease_deadline.map(timestamp),
            result_json: t.result.map(|r| r.to_string()),
            error: t.error.map(|e| pb::TaskError {
                kind: e.kind,
                message: e.message,
                retryable: e.retryable,
            }),
            progress: t.progress.map(|p| pb::TaskProgressInfo {
                done: p.done,
                total: p.total,
                message: p.message,
                at: Some(timestamp(p.at)),
            }),
            created_at: Some(timestamp(t.created_at)),
            updated_at: Some(timestamp(t.updated_at)),
            created_by: t.created_by,
        }
    }
}
