//! Plans and jobs: `proto/ferry/v1/jobs.proto` <-> `ferry_core::model::job` and `crate::plan`.
//!
//! Only the request (`JobRequest` with its windows) and the Watch filter come in from the wire,
//! so only they convert back, refusing what proto3 cannot rule out (a window with no kind, a
//! missing or out-of-range timestamp). Everything else is answers, which cannot fail.

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Bad, each, timestamp, value_to_pb};
use crate::pb;
use ferry_core::error::{Error, Result};
use ferry_core::model::{
    Approval, Finding, GroupContext, GroupPlan, GroupState, Job, JobDetail, JobEvent, JobGroup,
    JobRequest, JobState, JobStep, Plan, PlannedStep, ResourceKind, Severity, ShareMismatch,
    StepAction, StepState, VerificationReport,
};
use ferry_core::plan::{CutoverWindow, Hop, Phase, Route, StepKind, Undo};

enum_pair!(JobState => JobState {
    Running => Running,
    Paused => Paused,
    Cancelling => Cancelling,
    Succeeded => Succeeded,
    Failed => Failed,
    Cancelled => Cancelled,
});

enum_pair!(GroupState => GroupState {
    Pending => Pending,
    Preparing => Preparing,
    AwaitingWindow => AwaitingWindow,
    AwaitingApproval => AwaitingApproval,
    CuttingOver => CuttingOver,
    CleaningUp => CleaningUp,
    Succeeded => Succeeded,
    Failed => Failed,
    RollingBack => RollingBack,
    RolledBack => RolledBack,
    RollbackFailed => RollbackFailed,
    Cancelled => Cancelled,
});

enum_pair!(StepState => StepState {
    Pending => Pending,
    Running => Running,
    Retrying => Retrying,
    Succeeded => Succeeded,
    Failed => Failed,
    Skipped => Skipped,
});

enum_pair!(Severity => Severity { Pass => Pass, Warn => Warn, Fail => Fail });

enum_pair!(StepKind => StepKind {
    Preflight => Preflight,
    PrepareInterimDisk => PrepareInterimDisk,
    SkeletonCopy => SkeletonCopy,
    MigrateToInterim => MigrateToInterim,
    SwapInterimDisk => SwapInterimDisk,
    OfflineSource => OfflineSource,
    OnlineInterim => OnlineInterim,
    VerifyInterim => VerifyInterim,
    MigrateToTarget => MigrateToTarget,
    OfflineInterim => OfflineInterim,
    AttachTargetDisk => AttachTargetDisk,
    OnlineTarget => OnlineTarget,
    VerifyTarget => VerifyTarget,
    CleanupInterim => CleanupInterim,
});

enum_pair!(Undo => Undo {
    RemovePreparedDisk => RemovePreparedDisk,
    DeleteMigratedGroup => DeleteMigratedGroup,
    RestoreMigratedDisk => RestoreMigratedDisk,
    OnlineGroup => OnlineGroup,
    OfflineGroup => OfflineGroup,
    DetachDataDisk => DetachDataDisk,
});

enum_pair!(Phase => Phase { Prepare => Prepare, Cutover => Cutover, Cleanup => Cleanup });

fn resource_kinds(kinds: &[ResourceKind]) -> Vec<i32> {
    kinds
        .iter()
        .map(|&kind| pb::ResourceKind::from(kind) as i32)
        .collect()
}

// ---- the request --------------------------------------------------------------------------------

/// The request of PlanJob and CreateJob. Paths are relative to the request, as in REST, where
/// it is the whole body, so they read the same as the service's own validation errors.
pub fn job_request(request: Option<pb::JobRequest>) -> Result<JobRequest> {
    let r = request.ok_or_else(|| Error::invalid_field("request", "is required"))?;
    Ok(JobRequest {
        name: r.name,
        source: r.source,
        target: r.target,
        interim: r.interim,
        groups: r.groups,
        allow_lossy: r.allow_lossy,
        skeleton_depth: r.skeleton_depth,
        // Ordered like REST's, so the idempotency hash of a request does not depend on the
        // order a client's map happened to be encoded in.
        disk_mapping: r.disk_mapping.into_iter().collect(),
        windows: each(r.windows, cutover_window).map_err(|bad| bad.field("windows"))?,
        require_approval: r.require_approval,
        approval_ttl_seconds: r.approval_ttl_seconds,
        max_active_groups: r.max_active_groups,
        max_cluster_cutovers: r.max_cluster_cutovers,
        retry_backoff_seconds: r.retry_backoff_seconds,
        validation_override: r
            .validation_override_reason
            .map(|reason| ferry_core::model::ValidationOverride { reason }),
    })
}

fn cutover_window(window: pb::CutoverWindow) -> Result<CutoverWindow, Bad> {
    use pb::cutover_window::Window;
    match window.window {
        None => Err(Bad::new("must have `interval` or `recurring` set")),
        Some(Window::Interval(interval)) => Ok(CutoverWindow::Interval {
            start: required_timestamp(interval.start)
                .map_err(|bad| bad.field("start").field("interval"))?,
            end: required_timestamp(interval.end)
                .map_err(|bad| bad.field("end").field("interval"))?,
        }),
        // Zero and over-long durations are left to the window's own validation, which names the
        // window the same way for both transports.
        Some(Window::Recurring(recurring)) => Ok(CutoverWindow::Recurring {
            cron: recurring.cron,
            duration: Duration::from_secs(recurring.duration_seconds),
            time_zone: recurring.time_zone,
        }),
    }
}

fn required_timestamp(at: Option<prost_types::Timestamp>) -> Result<DateTime<Utc>, Bad> {
    let at = at.ok_or_else(|| Bad::new("is required"))?;
    let nanos = u32::try_from(at.nanos)
        .ok()
        .filter(|n| *n < 1_000_000_000)
        .ok_or_else(|| Bad::new("nanos must be 0 to 999999999"))?;
    DateTime::from_timestamp(at.seconds, nanos)
        .ok_or_else(|| Bad::new("is outside the range of representable dates"))
}

/// The job filter of Watch: absent means every job; a malformed id is refused rather than
/// watched forever without an event.
pub fn watch_job(job_id: Option<String>) -> Result<Option<Uuid>> {
    job_id
        .map(|id| {
            Uuid::parse_str(&id)
                .map_err(|_| Error::invalid_field("job_id", format!("`{id}` is not a job UUID")))
        })
        .transpose()
}

impl From<JobRequest> for pb::JobRequest {
    fn from(r: JobRequest) -> Self {
        pb::JobRequest {
            name: r.name,
            source: r.source,
            target: r.target,
            interim: r.interim,
            groups: r.groups,
            allow_lossy: r.allow_lossy,
            skeleton_depth: r.skeleton_depth,
            disk_mapping: r.disk_mapping.into_iter().collect(),
            windows: r.windows.into_iter().map(Into::into).collect(),
            require_approval: r.require_approval,
            approval_ttl_seconds: r.approval_ttl_seconds,
            max_active_groups: r.max_active_groups,
            max_cluster_cutovers: r.max_cluster_cutovers,
            retry_backoff_seconds: r.retry_backoff_seconds,
            validation_override_reason: r.validation_override.map(|o| o.reason),
        }
    }
}

impl From<CutoverWindow> for pb::CutoverWindow {
    fn from(window: CutoverWindow) -> Self {
        use pb::cutover_window::Window;
        let window = match window {
            CutoverWindow::Interval { start, end } => Window::Interval(pb::IntervalWindow {
                start: Some(timestamp(start)),
                end: Some(timestamp(end)),
            }),
            CutoverWindow::Recurring {
                cron,
                duration,
                time_zone,
            } => Window::Recurring(pb::RecurringWindow {
                cron,
                duration_seconds: duration.as_secs(),
                time_zone,
            }),
        };
        pb::CutoverWindow {
            window: Some(window),
        }
    }
}

// ---- plans --------------------------------------------------------------------------------------

impl From<Finding> for pb::Finding {
    fn from(f: Finding) -> Self {
        pb::Finding {
            severity: pb::Severity::from(f.severity) as i32,
            check: f.check,
            message: f.message,
            group: f.group,
        }
    }
}

impl From<Hop> for pb::Hop {
    fn from(h: Hop) -> Self {
        pb::Hop {
            from_cluster: h.from_cluster,
            to_cluster: h.to_cluster,
            from_os: pb::OsGeneration::from(h.from_os) as i32,
            to_os: pb::OsGeneration::from(h.to_os) as i32,
            loses: resource_kinds(&h.loses),
            min_source_service_pack: h.min_source_service_pack,
            rule_source: h.rule_source,
        }
    }
}

impl From<Route> for pb::Route {
    fn from(r: Route) -> Self {
        pb::Route {
            hops: r.hops.into_iter().map(Into::into).collect(),
            lossy: r.lossy,
            losses: resource_kinds(&r.losses),
            refused_direct: r.refused_direct,
        }
    }
}

impl From<PlannedStep> for pb::PlannedStep {
    fn from(s: PlannedStep) -> Self {
        pb::PlannedStep {
            seq: s.seq,
            kind: pb::StepKind::from(s.kind) as i32,
            phase: pb::Phase::from(s.phase) as i32,
            cluster: s.cluster,
            node: s.node,
            estimate_seconds: s.estimate_seconds,
            max_attempts: s.max_attempts,
        }
    }
}

impl From<GroupPlan> for pb::GroupPlan {
    fn from(g: GroupPlan) -> Self {
        pb::GroupPlan {
            group: g.group,
            route: g.route,
            route_detail: Some(g.route_detail.into()),
            steps: g.steps.into_iter().map(Into::into).collect(),
            estimated_seconds: g.estimated_seconds,
            estimated_downtime_seconds: g.estimated_downtime_seconds,
            findings: g.findings.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<Plan> for pb::Plan {
    fn from(p: Plan) -> Self {
        pb::Plan {
            request: Some(p.request.into()),
            route: p.route,
            refused_direct: p.refused_direct,
            // The plan keeps the kinds as their REST names; every one of them came from a
            // `ResourceKind`, so none is dropped here.
            losses: p
                .losses
                .iter()
                .filter_map(|name| ResourceKind::parse(name))
                .map(|kind| pb::ResourceKind::from(kind) as i32)
                .collect(),
            groups: p.groups.into_iter().map(Into::into).collect(),
            findings: p.findings.into_iter().map(Into::into).collect(),
            runnable: p.runnable,
        }
    }
}

// ---- jobs ---------------------------------------------------------------------------------------

impl From<Approval> for pb::Approval {
    fn from(a: Approval) -> Self {
        pb::Approval {
            by: a.by,
            at: Some(timestamp(a.at)),
            expires_at: a.expires_at.map(timestamp),
        }
    }
}

impl From<StepAction> for pb::StepAction {
    fn from(action: StepAction) -> Self {
        use pb::step_action::Action;
        let action = match action {
            StepAction::Run(kind) => Action::Run(pb::StepKind::from(kind) as i32),
            StepAction::Undo(undo) => Action::Undo(pb::Undo::from(undo) as i32),
            StepAction::VerifySource => Action::VerifySource(pb::VerifySource {}),
        };
        pb::StepAction {
            action: Some(action),
        }
    }
}

/// A Struct can only hold an object; agents' reports are objects, and anything else is wrapped
/// rather than dropped, so the operator still sees what the agent said.
fn output_to_pb(output: &serde_json::Value) -> prost_types::Struct {
    let fields = match output {
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(k, v)| (k.clone(), value_to_pb(v)))
            .collect(),
        other => std::iter::once(("value".to_owned(), value_to_pb(other))).collect(),
    };
    prost_types::Struct { fields }
}

impl From<JobStep> for pb::JobStep {
    fn from(s: JobStep) -> Self {
        pb::JobStep {
            seq: s.seq,
            action: Some(s.action.into()),
            phase: pb::Phase::from(s.phase) as i32,
            cluster: s.cluster,
            peer: s.peer,
            state: pb::StepState::from(s.state) as i32,
            attempt: s.attempt,
            max_attempts: s.max_attempts,
            skeleton_depth: s.skeleton_depth,
            estimate_seconds: s.estimate_seconds,
            task_id: s.task_id.map(|id| id.to_string()),
            next_attempt_at: s.next_attempt_at.map(timestamp),
            started_at: s.started_at.map(timestamp),
            finished_at: s.finished_at.map(timestamp),
            output: s.output.as_ref().map(output_to_pb),
            error: s.error,
        }
    }
}

impl From<GroupContext> for pb::GroupContext {
    fn from(c: GroupContext) -> Self {
        pb::GroupContext {
            drive_letter: c.drive_letter,
            source_disk: c.source_disk,
            interim_disk: c.interim_disk,
            baseline_shares: c.baseline_shares,
        }
    }
}

impl From<ShareMismatch> for pb::ShareMismatch {
    fn from(m: ShareMismatch) -> Self {
        pb::ShareMismatch {
            share: m.share,
            fields: m.fields,
        }
    }
}

impl From<VerificationReport> for pb::VerificationReport {
    fn from(v: VerificationReport) -> Self {
        pb::VerificationReport {
            cluster: v.cluster,
            expected: v.expected,
            identical: v.identical,
            missing: v.missing,
            lost: v.lost,
            changed: v.changed.into_iter().map(Into::into).collect(),
            unexpected: v.unexpected,
            network_name_online: v.network_name_online,
            passed: v.passed,
            at: Some(timestamp(v.at)),
        }
    }
}

impl From<JobGroup> for pb::JobGroup {
    fn from(g: JobGroup) -> Self {
        pb::JobGroup {
            downtime_seconds: g.downtime_seconds(),
            name: g.name,
            state: pb::GroupState::from(g.state) as i32,
            route: g.route,
            losses: resource_kinds(&g.losses),
            steps: g.steps.into_iter().map(Into::into).collect(),
            rollback: g.rollback.into_iter().map(Into::into).collect(),
            context: Some(g.context.into()),
            approval: g.approval.map(Into::into),
            downtime_started_at: g.downtime_started_at.map(timestamp),
            downtime_ended_at: g.downtime_ended_at.map(timestamp),
            verification: g.verification.map(Into::into),
            error: g.error,
            retries: g.retries,
            version: g.version,
            updated_at: g.updated_at.map(timestamp),
        }
    }
}

impl From<Job> for pb::Job {
    fn from(j: Job) -> Self {
        pb::Job {
            id: j.id.to_string(),
            name: j.name,
            state: pb::JobState::from(j.state) as i32,
            request: Some(j.request.into()),
            created_by: j.created_by,
            created_at: Some(timestamp(j.created_at)),
            updated_at: Some(timestamp(j.updated_at)),
            approval: j.approval.map(Into::into),
            summary: j.summary.into_iter().collect(),
            version: j.version,
            findings: j.findings.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<JobDetail> for pb::JobDetail {
    fn from(d: JobDetail) -> Self {
        pb::JobDetail {
            job: Some(d.job.into()),
            groups: d.groups.into_iter().map(Into::into).collect(),
            event_seq: d.event_seq,
        }
    }
}

impl From<JobEvent> for pb::JobEvent {
    fn from(e: JobEvent) -> Self {
        let kind = match e.kind.as_str() {
            "job" => pb::EventKind::Job,
            "group" => pb::EventKind::Group,
            "step" => pb::EventKind::Step,
            ferry_core::model::JOB_FINDING => pb::EventKind::Finding,
            ferry_core::model::INVENTORY_CHANGED => pb::EventKind::InventoryChanged,
            // The store's kinds are written by this build; an older or newer one's is still an
            // event worth streaming, so it is not an error.
            _ => pb::EventKind::Unspecified,
        };
        pb::JobEvent {
            seq: e.seq,
            at: Some(timestamp(e.at)),
            job_id: e.job_id.map(|id| id.to_string()).unwrap_or_default(),
            kind: kind.into(),
            group: e.group,
            step: e.step,
            state: e.state,
            message: e.message,
            cluster_id: e.cluster_id.map(|id| id.to_string()).unwrap_or_default(),
            data: e
                .data
                .as_ref()
                .and_then(|data| match value_to_pb(data).kind {
                    Some(prost_types::value::Kind::StructValue(fields)) => Some(fields),
                    _ => None,
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use prost_types::value::Kind;

    use super::*;

    fn interval(start: Option<i64>, end: Option<i64>) -> pb::CutoverWindow {
        let at = |seconds| prost_types::Timestamp { seconds, nanos: 0 };
        pb::CutoverWindow {
            window: Some(pb::cutover_window::Window::Interval(pb::IntervalWindow {
                start: start.map(at),
                end: end.map(at),
            })),
        }
    }

    fn request(windows: Vec<pb::CutoverWindow>) -> pb::JobRequest {
        pb::JobRequest {
            source: "OLD".into(),
            target: "NEW".into(),
            windows,
            ..Default::default()
        }
    }

    fn field_of(err: Error) -> String {
        err.fields
            .first()
            .map(|f| f.field.clone())
            .unwrap_or_default()
    }

    #[test]
    fn a_request_survives_the_round_trip() {
        let mut original = JobRequest {
            name: Some("wave 1".into()),
            source: "OLD".into(),
            target: "NEW".into(),
            interim: Some("MID".into()),
            groups: vec!["FS1".into(), "FS2".into()],
            allow_lossy: true,
            skeleton_depth: Some(3),
            disk_mapping: [("Disk F".to_owned(), "LUN 7".to_owned())].into(),
            windows: vec![
                CutoverWindow::Interval {
                    start: DateTime::from_timestamp(1_800_000_000, 5).unwrap(),
                    end: DateTime::from_timestamp(1_800_003_600, 0).unwrap(),
                },
                CutoverWindow::Recurring {
                    cron: "0 22 * * 6".into(),
                    duration: Duration::from_secs(4 * 3600),
                    time_zone: "Europe/Berlin".into(),
                },
            ],
            require_approval: true,
            approval_ttl_seconds: Some(600),
            max_active_groups: Some(2),
            max_cluster_cutovers: Some(1),
            retry_backoff_seconds: Some(15),
            validation_override: Some(ferry_core::model::ValidationOverride {
                reason: "known processor mix".into(),
            }),
        };
        let back = job_request(Some(original.clone().into())).unwrap();
        assert_eq!(back, original);
        original.windows.clear();
        assert_eq!(
            job_request(Some(original.clone().into())).unwrap(),
            original
        );
    }

    #[test]
    fn bad_windows_name_their_field() {
        let no_kind = request(vec![
            interval(Some(1), Some(2)),
            pb::CutoverWindow::default(),
        ]);
        assert_eq!(
            field_of(job_request(Some(no_kind)).unwrap_err()),
            "windows[1]"
        );
        let no_end = request(vec![interval(Some(1), None)]);
        assert_eq!(
            field_of(job_request(Some(no_end)).unwrap_err()),
            "windows[0].interval.end"
        );
        let mut bad_nanos = interval(Some(1), Some(2));
        if let Some(pb::cutover_window::Window::Interval(i)) = &mut bad_nanos.window {
            i.start.as_mut().unwrap().nanos = -1;
        }
        assert_eq!(
            field_of(job_request(Some(request(vec![bad_nanos]))).unwrap_err()),
            "windows[0].interval.start"
        );
        assert_eq!(field_of(job_request(None).unwrap_err()), "request");
    }

    #[test]
    fn outputs_that_are_not_objects_are_wrapped() {
        let wrapped = output_to_pb(&serde_json::json!([1, 2]));
        assert!(matches!(
            wrapped.fields.get("value").and_then(|v| v.kind.as_ref()),
            Some(Kind::ListValue(_))
        ));
        let object = output_to_pb(&serde_json::json!({"copied": 3}));
        assert!(matches!(
            object.fields.get("copied").and_then(|v| v.kind.as_ref()),
            Some(Kind::NumberValue(n)) if *n == 3.0
        ));
    }

    #[test]
    fn a_malformed_watch_filter_is_refused() {
        assert_eq!(watch_job(None).unwrap(), None);
        assert_eq!(
            field_of(watch_job(Some("nope".into())).unwrap_err()),
            "job_id"
        );
        let id = Uuid::now_v7();
        assert_eq!(watch_job(Some(id.to_string())).unwrap(), Some(id));
    }
}
