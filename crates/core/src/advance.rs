//! The scheduler's decisions, as a pure function: given a group's stored state and what the world
//! looks like now (the job's state, the current step's task, the gates), the group's next state,
//! the task to start, and the events to record. No I/O and no clock: the shell passes `now`.
//!
//! One call moves a group as far as it can without waiting on anything: a finished task's step is
//! settled and the next step started in the same transition, so a step costs one write.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::model::{
    Action, Approval, GroupState, InventoryDocument, JobGroup, JobRequest, JobState, JobStep,
    NewJobEvent, ResourceKind, ResourceState, Share, ShareMismatch, StepAction, StepState,
    TaskError, VerificationReport, snake,
};
use crate::plan::{Phase, StepKind, Undo, WindowFit, fits};

/// Attempts any step gets when its attempts are lost rather than failed.
const LOST_ATTEMPTS: u32 = 3;

/// What the current step's task looks like in the store.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskView {
    /// The step has no task (not started, or waiting to retry).
    None,
    /// With an agent, or waiting for one.
    InFlight,
    Succeeded(serde_json::Value),
    Failed(TaskError),
    /// The lease ran out: the agent died or lost its connection mid-task.
    Lost,
    /// Cancelled (its agent was revoked before it ran).
    Cancelled,
}

/// Everything `advance` looks at besides the group itself.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    pub now: DateTime<Utc>,
    pub job_state: JobState,
    pub request: &'a JobRequest,
    /// Approval for the whole job.
    pub job_approval: Option<&'a Approval>,
    pub task: TaskView,
    /// The group's shares at preparation, once taken.
    pub baseline: Option<&'a [Share]>,
    /// A slot under the job's active-group limit is free (for a pending group).
    pub may_start: bool,
    /// The clusters of the cutover have room under the per-cluster cutover limit.
    pub may_cut_over: bool,
}

/// A task to start for a step.
#[derive(Debug, Clone, PartialEq)]
pub struct StartTask {
    /// `seq` of the step (in the rollback list when `rollback`).
    pub step: u32,
    pub rollback: bool,
    pub cluster: String,
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub group: JobGroup,
    pub start: Option<StartTask>,
    /// The group's shares, to store as its baseline (taken by the source's preflight).
    pub baseline: Option<Vec<Share>>,
    pub events: Vec<NewJobEvent>,
    /// When something time-based (a retry, a window) is due, if nothing else happens first.
    pub wake_at: Option<DateTime<Utc>>,
}

/// The next state of `group`, or `None` when nothing changes now.
pub fn advance(group: &JobGroup, inputs: &Inputs<'_>) -> Option<Transition> {
    // Most calls find the current step's task still running: answer before copying the group.
    if awaits_task(group, inputs) {
        return None;
    }
    let mut t = Transition {
        group: group.clone(),
        start: None,
        baseline: None,
        events: Vec::new(),
        wake_at: None,
    };
    let mut task = inputs.task.clone();
    let mut baseline = inputs.baseline.map(<[Share]>::to_vec);
    // Settle the running step, then start what follows, until something has to wait.
    loop {
        if t.group.state.is_settled() {
            break;
        }
        let rolling_back = t.group.state == GroupState::RollingBack;
        let Some(index) = current(&t.group, rolling_back) else {
            finish(&mut t, inputs.now, rolling_back);
            break;
        };
        let step = &steps(&t.group, rolling_back)[index];
        match step.state {
            StepState::Running
                if matches!(task, TaskView::InFlight)
                    && cancel_skips_wait(&t.group, inputs.job_state) =>
            {
                cancel(&mut t, inputs.now);
                break;
            }
            StepState::Running => {
                let outcome = std::mem::replace(&mut task, TaskView::None);
                if !settle(&mut t, index, rolling_back, outcome, &mut baseline, inputs) {
                    break;
                }
            }
            StepState::Pending | StepState::Retrying => {
                if !start(&mut t, index, rolling_back, baseline.as_deref(), inputs) {
                    break;
                }
                if t.start.is_some() {
                    break;
                }
            }
            // `current` skips done steps; a failed one settled the group already.
            StepState::Succeeded | StepState::Skipped | StepState::Failed => break,
        }
    }
    if t.group == *group && t.start.is_none() && t.events.is_empty() && t.baseline.is_none() {
        // Only a wake-up time may have come of it.
        return t.wake_at.map(|_| t);
    }
    if t.group != *group {
        t.group.updated_at = Some(inputs.now);
    }
    Some(t)
}

/// Whether the group's current step is running with its task in flight and nothing but the
/// task's result can move it: what the loop of [`advance`] would find without changing anything.
fn awaits_task(group: &JobGroup, inputs: &Inputs<'_>) -> bool {
    if group.state.is_settled() || !matches!(inputs.task, TaskView::InFlight) {
        return false;
    }
    let rolling_back = group.state == GroupState::RollingBack;
    current(group, rolling_back)
        .is_some_and(|index| steps(group, rolling_back)[index].state == StepState::Running)
        && !cancel_skips_wait(group, inputs.job_state)
}

/// Whether a cancel ends the group without waiting for its running step. Before the cutover
/// nothing needs undoing: a cancel need not wait for a step whose agent may never come (the
/// task is left to finish or expire unheeded).
fn cancel_skips_wait(group: &JobGroup, job_state: JobState) -> bool {
    group.state != GroupState::RollingBack
        && group.state != GroupState::CuttingOver
        && matches!(job_state, JobState::Cancelling | JobState::Cancelled)
}

fn steps(group: &JobGroup, rollback: bool) -> &Vec<JobStep> {
    if rollback {
        &group.rollback
    } else {
        &group.steps
    }
}

fn steps_mut(group: &mut JobGroup, rollback: bool) -> &mut Vec<JobStep> {
    if rollback {
        &mut group.rollback
    } else {
        &mut group.steps
    }
}

/// Index of the first step not done.
fn current(group: &JobGroup, rollback: bool) -> Option<usize> {
    steps(group, rollback).iter().position(|s| !s.is_done())
}

fn group_event(t: &mut Transition, state: GroupState, message: Option<String>) {
    t.group.state = state;
    t.events.push(NewJobEvent {
        kind: "group",
        group: Some(t.group.name.clone()),
        step: None,
        state: state.as_str().to_owned(),
        message,
        output: None,
    });
}

fn step_event(t: &mut Transition, step: &JobStep, message: Option<String>) {
    push_step_event(t, step, message, None);
}

fn push_step_event(
    t: &mut Transition,
    step: &JobStep,
    message: Option<String>,
    output: Option<serde_json::Value>,
) {
    t.events.push(NewJobEvent {
        kind: "step",
        group: Some(t.group.name.clone()),
        step: Some(step.seq),
        state: snake(&step.state),
        message: Some(match message {
            Some(m) => format!("{}: {m}", step.label()),
            None => step.label(),
        }),
        output,
    });
}

/// Every step ran: the group succeeded, or its rollback ended.
fn finish(t: &mut Transition, now: DateTime<Utc>, rolled_back: bool) {
    if rolled_back {
        t.group.downtime_ended_at.get_or_insert(now);
        group_event(
            t,
            GroupState::RolledBack,
            Some("back online on the source, shares verified".into()),
        );
    } else {
        group_event(t, GroupState::Succeeded, None);
    }
}

/// Largest agent report kept with a step's success event (and shown as the step's output): an
/// inventory of the whole cluster or a scan of hundreds of shares stays with its task instead.
pub const MAX_STEP_OUTPUT: usize = 4096;

/// What a step keeps of its task's report: the report itself when small, else where it is.
fn step_output(report: serde_json::Value, task: Option<uuid::Uuid>) -> serde_json::Value {
    let size = serde_json::to_vec(&report).map_or(0, |bytes| bytes.len());
    if size <= MAX_STEP_OUTPUT {
        return report;
    }
    serde_json::json!({
        "report_bytes": size,
        "task_id": task,
        "see": task.map(|id| format!("/v1/tasks/{id}")),
    })
}

/// Applies the outcome of the running step's task. True when the group can go on at once.
fn settle(
    t: &mut Transition,
    index: usize,
    rollback: bool,
    outcome: TaskView,
    baseline: &mut Option<Vec<Share>>,
    inputs: &Inputs<'_>,
) -> bool {
    let now = inputs.now;
    let failure = match outcome {
        TaskView::None | TaskView::InFlight => return false,
        TaskView::Succeeded(report) => {
            let step = steps(&t.group, rollback)[index].clone();
            match interpret(t, &step, &report, baseline, inputs) {
                Ok(()) => {
                    let step = &mut steps_mut(&mut t.group, rollback)[index];
                    step.state = StepState::Succeeded;
                    step.finished_at = Some(now);
                    step.error = None;
                    let step = step.clone();
                    let output = step_output(report, step.task_id);
                    push_step_event(t, &step, None, Some(output));
                    on_step_succeeded(t, &step, now);
                    return true;
                }
                // A check that failed will fail again: no retry.
                Err(message) => TaskError {
                    kind: "verification".into(),
                    message,
                    retryable: false,
                },
            }
        }
        TaskView::Failed(error) => error,
        TaskView::Lost => TaskError {
            kind: "lost".into(),
            message: "the agent stopped answering while running the step".into(),
            retryable: true,
        },
        TaskView::Cancelled => TaskError {
            kind: "cancelled".into(),
            message: "the task was cancelled (its agent was revoked)".into(),
            retryable: true,
        },
    };
    let step = &mut steps_mut(&mut t.group, rollback)[index];
    let message = format!("{} ({})", shorten(&failure.message), failure.kind);
    step.error = Some(message.clone());
    step.task_id = None;
    // A lost or cancelled attempt says nothing about the step itself (the agent died, or was
    // replaced): even a check gets another try.
    let limit = if matches!(failure.kind.as_str(), "lost" | "cancelled") {
        step.max_attempts.max(LOST_ATTEMPTS)
    } else {
        step.max_attempts
    };
    if failure.retryable && step.attempt < limit {
        let delay = retry_policy(step, inputs.request).backoff(step.attempt + 1);
        let at = now + chrono::Duration::from_std(delay).unwrap_or_default();
        step.state = StepState::Retrying;
        step.next_attempt_at = Some(at);
        let step = step.clone();
        t.group.retries += 1;
        step_event(
            t,
            &step,
            Some(format!(
                "attempt {} of {limit} failed: {message}; retrying",
                step.attempt
            )),
        );
        return true;
    }
    step.state = StepState::Failed;
    step.finished_at = Some(now);
    let step = step.clone();
    step_event(t, &step, Some(message.clone()));
    let why = format!(
        "step {} ({}) on {} failed after {} attempt{}: {message}",
        step.seq,
        step.label(),
        step.cluster,
        step.attempt,
        if step.attempt == 1 { "" } else { "s" }
    );
    fail_group(t, why, now);
    true
}

/// Drivers list every resource of a failed online; the job's log keeps the gist (the full text
/// stays on the task).
fn shorten(message: &str) -> String {
    const KEEP: usize = 400;
    if message.chars().count() <= KEEP {
        return message.to_owned();
    }
    let kept: String = message.chars().take(KEEP).collect();
    format!("{kept}… (see the task for the rest)")
}

fn retry_policy(step: &JobStep, request: &JobRequest) -> crate::plan::RetryPolicy {
    let mut policy = match step.action {
        StepAction::Run(kind) => kind.default_retry(),
        // Undo steps bring a group back: worth a few patient tries.
        StepAction::Undo(_) | StepAction::VerifySource => StepKind::OfflineSource.default_retry(),
    };
    policy.max_attempts = step.max_attempts;
    if let Some(seconds) = request.retry_backoff_seconds {
        policy.initial_backoff = std::time::Duration::from_secs(seconds);
        policy.max_backoff = policy.initial_backoff;
    }
    policy
}

/// After a step failed for good: a failure before the cutover leaves the source untouched; one
/// during it rolls the group back; one during the rollback needs an operator.
fn fail_group(t: &mut Transition, why: String, now: DateTime<Utc>) {
    t.group.error = Some(why.clone());
    match t.group.state {
        GroupState::RollingBack => {
            group_event(t, GroupState::RollbackFailed, Some(why));
        }
        GroupState::CuttingOver => begin_rollback(t, why, now),
        _ => group_event(t, GroupState::Failed, Some(why)),
    }
}

/// The undo steps of the cutover so far, newest first, then a check of the source's shares.
/// Steps before the cutover are kept: a retry resumes the cutover without preparing again.
fn begin_rollback(t: &mut Transition, why: String, now: DateTime<Utc>) {
    let mut seq = t.group.steps.len() as u32;
    let mut rollback = Vec::new();
    for step in t.group.steps.iter().rev() {
        let StepAction::Run(kind) = step.action else {
            continue;
        };
        // The failed step may have half-applied (an online that partly came up), so it is
        // undone too; steps that never ran are not.
        let ran = matches!(step.state, StepState::Succeeded | StepState::Failed)
            || (step.state == StepState::Running);
        if step.phase != Phase::Cutover || !ran {
            continue;
        }
        let Some(undo) = kind.undo() else { continue };
        if !matches!(
            undo,
            Undo::OnlineGroup
                | Undo::OfflineGroup
                | Undo::DetachDataDisk
                | Undo::DeleteMigratedGroup
        ) {
            continue;
        }
        seq += 1;
        rollback.push(new_step(seq, StepAction::Undo(undo), &step.cluster, 3));
    }
    seq += 1;
    let source = t.group.route.first().cloned().unwrap_or_default();
    rollback.push(new_step(seq, StepAction::VerifySource, &source, 2));
    // Steps of the cutover that never ran will not: the retry resets them.
    for step in &mut t.group.steps {
        if matches!(step.state, StepState::Pending | StepState::Retrying) {
            step.state = StepState::Skipped;
            step.next_attempt_at = None;
        }
    }
    t.group.rollback = rollback;
    let _ = now;
    group_event(t, GroupState::RollingBack, Some(why));
}

fn new_step(seq: u32, action: StepAction, cluster: &str, max_attempts: u32) -> JobStep {
    JobStep {
        seq,
        action,
        phase: Phase::Cutover,
        cluster: cluster.to_owned(),
        peer: None,
        state: StepState::Pending,
        attempt: 0,
        max_attempts,
        skeleton_depth: None,
        estimate_seconds: 60,
        task_id: None,
        next_attempt_at: None,
        started_at: None,
        finished_at: None,
        output: None,
        error: None,
    }
}

fn on_step_succeeded(t: &mut Transition, step: &JobStep, now: DateTime<Utc>) {
    match step.action {
        StepAction::Run(StepKind::OfflineSource) => {
            t.group.downtime_started_at = step.started_at.or(Some(now));
            t.group.downtime_ended_at = None;
        }
        StepAction::Run(StepKind::VerifyTarget) => {
            t.group.downtime_ended_at = Some(now);
            if t.group
                .steps
                .iter()
                .any(|s| s.phase == Phase::Cleanup && !s.is_done())
            {
                group_event(t, GroupState::CleaningUp, None);
            }
        }
        _ => {}
    }
}

/// Starts the step at `index` if its time, window, approval and limits allow. True when the
/// loop may look at the group again (a task was started, or the step needed none).
fn start(
    t: &mut Transition,
    index: usize,
    rollback: bool,
    baseline: Option<&[Share]>,
    inputs: &Inputs<'_>,
) -> bool {
    let now = inputs.now;
    let step = steps(&t.group, rollback)[index].clone();
    if !rollback {
        match inputs.job_state {
            JobState::Paused => return false,
            JobState::Cancelling | JobState::Cancelled => {
                cancel(t, now);
                return true;
            }
            _ => {}
        }
    }
    if let Some(at) = step.next_attempt_at
        && at > now
    {
        t.wake_at = Some(at);
        return false;
    }
    if !rollback && !gate(t, &step, inputs) {
        return false;
    }
    let action = match action_for(&t.group, &step, inputs.request, baseline) {
        Ok(action) => action,
        Err(message) => {
            let step = &mut steps_mut(&mut t.group, rollback)[index];
            step.state = StepState::Failed;
            step.error = Some(message.clone());
            step.finished_at = Some(now);
            let step = step.clone();
            step_event(t, &step, Some(message.clone()));
            let why = format!("step {} ({}) cannot run: {message}", step.seq, step.label());
            fail_group(t, why, now);
            return true;
        }
    };
    let step = &mut steps_mut(&mut t.group, rollback)[index];
    step.state = StepState::Running;
    step.attempt += 1;
    step.next_attempt_at = None;
    step.started_at.get_or_insert(now);
    let step = step.clone();
    step_event(
        t,
        &step,
        (step.attempt > 1).then(|| format!("attempt {}", step.attempt)),
    );
    t.start = Some(StartTask {
        step: step.seq,
        rollback,
        cluster: step.cluster.clone(),
        action,
    });
    true
}

/// The job was cancelled: a group not yet in its cutover stops; one in its cutover rolls back.
fn cancel(t: &mut Transition, now: DateTime<Utc>) {
    if t.group.state == GroupState::CuttingOver {
        begin_rollback(t, "the job was cancelled during the cutover".into(), now);
        return;
    }
    for step in &mut t.group.steps {
        if !step.is_done() {
            step.state = StepState::Skipped;
            step.next_attempt_at = None;
        }
    }
    group_event(t, GroupState::Cancelled, None);
}

/// Moves the group's state to what the step needs before it may start; false when it must wait.
fn gate(t: &mut Transition, step: &JobStep, inputs: &Inputs<'_>) -> bool {
    let now = inputs.now;
    if t.group.state == GroupState::Pending {
        if !inputs.may_start {
            return false;
        }
        group_event(t, GroupState::Preparing, None);
    }
    match step.phase {
        Phase::Prepare => true,
        Phase::Cleanup => {
            if t.group.state != GroupState::CleaningUp {
                group_event(t, GroupState::CleaningUp, None);
            }
            true
        }
        Phase::Cutover if t.group.state == GroupState::CuttingOver => true,
        Phase::Cutover => {
            let needed = remaining_cutover(&t.group);
            match fits(&inputs.request.windows, now, needed) {
                WindowFit::Now { .. } => {}
                WindowFit::Later { opens_at } => {
                    t.wake_at = Some(opens_at);
                    if t.group.state != GroupState::AwaitingWindow {
                        group_event(
                            t,
                            GroupState::AwaitingWindow,
                            Some(format!("next window with room opens at {opens_at}")),
                        );
                    }
                    return false;
                }
                WindowFit::Never => {
                    if t.group.state != GroupState::AwaitingWindow {
                        group_event(
                            t,
                            GroupState::AwaitingWindow,
                            Some(format!(
                                "no cutover window has room for the estimated {} s cutover",
                                needed.as_secs()
                            )),
                        );
                    }
                    return false;
                }
            }
            if inputs.request.require_approval {
                let valid = |a: &&Approval| a.expires_at.is_none_or(|at| at > now);
                let approved = t.group.approval.as_ref().filter(valid).is_some()
                    || inputs.job_approval.filter(valid).is_some();
                if !approved {
                    if t.group.state != GroupState::AwaitingApproval {
                        let message = if t.group.approval.is_some() {
                            "the approval expired; approve again"
                        } else {
                            "waiting for an operator's approval"
                        };
                        group_event(t, GroupState::AwaitingApproval, Some(message.into()));
                    }
                    return false;
                }
            }
            if !inputs.may_cut_over {
                return false;
            }
            group_event(t, GroupState::CuttingOver, None);
            true
        }
    }
}

fn remaining_cutover(group: &JobGroup) -> std::time::Duration {
    std::time::Duration::from_secs(
        group
            .steps
            .iter()
            .filter(|s| s.phase == Phase::Cutover && !s.is_done())
            .map(|s| s.estimate_seconds)
            .sum(),
    )
}

/// The agent action of a step, from what earlier steps learned.
fn action_for(
    group: &JobGroup,
    step: &JobStep,
    request: &JobRequest,
    baseline: Option<&[Share]>,
) -> Result<Action, String> {
    let name = group.name.clone();
    let ctx = &group.context;
    let letter = || {
        ctx.drive_letter
            .clone()
            .ok_or_else(|| "the source preflight did not find the shares' drive letter".to_owned())
    };
    let source = group.route.first().cloned().unwrap_or_default();
    Ok(match step.action {
        StepAction::Run(kind) => match kind {
            StepKind::Preflight if step.cluster == source => Action::ShareScan { group: name },
            // Only the disk the step checks, so the report does not grow with the groups
            // already there.
            StepKind::Preflight if step.cluster == *group.route.last().unwrap_or(&source) => {
                Action::ReadStorage {
                    disks: ctx
                        .source_disk
                        .as_deref()
                        .map(|disk| request.target_disk(disk).to_owned())
                        .into_iter()
                        .collect(),
                    drive_letters: Vec::new(),
                }
            }
            StepKind::Preflight => Action::ReadStorage {
                disks: Vec::new(),
                drive_letters: ctx.drive_letter.iter().cloned().collect(),
            },
            StepKind::PrepareInterimDisk => Action::PrepareDisk {
                drive_letter: letter()?,
            },
            StepKind::SkeletonCopy => {
                let letter = letter()?;
                let peer = step.peer.clone().unwrap_or_else(|| source.clone());
                let drive = letter.trim_end_matches(':');
                Action::SkeletonCopy {
                    source: format!("\\\\{peer}\\{drive}$\\"),
                    destination: format!("{letter}\\"),
                    // Deep enough for every share's folder unless the operator chose a depth
                    // (which the preflight checked).
                    depth: request
                        .skeleton_depth
                        .unwrap_or_else(|| request.skeleton_depth().max(ctx.share_depth)),
                    log_path: format!("skeleton-{}.log", file_safe(&group.name)),
                }
            }
            StepKind::MigrateToInterim | StepKind::MigrateToTarget => Action::MigrateGroup {
                source_cluster: step
                    .peer
                    .clone()
                    .ok_or("the runbook names no cluster to migrate from")?,
                group: name,
            },
            StepKind::SwapInterimDisk => Action::ReplaceDiskResource {
                group: name,
                disk: ctx
                    .interim_disk
                    .clone()
                    .ok_or("no disk was prepared on the interim")?,
                drive_letter: letter()?,
            },
            StepKind::AttachTargetDisk => {
                let source_disk = ctx
                    .source_disk
                    .clone()
                    .ok_or("the source preflight found no disk resource in the group")?;
                Action::ReplaceDiskResource {
                    group: name,
                    disk: request.target_disk(&source_disk).to_owned(),
                    drive_letter: letter()?,
                }
            }
            StepKind::OfflineSource | StepKind::OfflineInterim => {
                Action::OfflineGroup { group: name }
            }
            StepKind::OnlineInterim | StepKind::OnlineTarget => Action::OnlineGroup { group: name },
            StepKind::VerifyInterim | StepKind::VerifyTarget => {
                if baseline.is_none() {
                    return Err("no baseline of the source's shares was taken".into());
                }
                Action::ShareScan { group: name }
            }
            StepKind::CleanupInterim => Action::RemoveGroup { group: name },
        },
        StepAction::Undo(undo) => match undo {
            Undo::OnlineGroup => Action::OnlineGroup { group: name },
            Undo::OfflineGroup => Action::OfflineGroup { group: name },
            // The migrated group goes whole, its disk resource with it, which releases the data
            // disk for the source.
            Undo::DetachDataDisk | Undo::DeleteMigratedGroup => Action::RemoveGroup { group: name },
            Undo::RemovePreparedDisk | Undo::RestoreMigratedDisk => {
                return Err(format!("{} is not undone by a rollback", snake(&undo)));
            }
        },
        StepAction::VerifySource => {
            if baseline.is_none() {
                return Err("no baseline of the source's shares was taken".into());
            }
            Action::ShareScan { group: name }
        }
    })
}

fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// What a share scan reports, as far as verification needs it.
#[derive(Debug)]
struct ScanReport {
    shares: Vec<Share>,
    resources: Vec<ScannedResource>,
}

impl<'de> Deserialize<'de> for ScanReport {
    /// Each scanned share is a `Share` plus what the agent found on disk (`acl`, `acl_error`);
    /// `Share` refuses unknown fields, so those are set aside first.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(default)]
            shares: Vec<serde_json::Map<String, serde_json::Value>>,
            #[serde(default)]
            resources: Vec<ScannedResource>,
        }
        let raw = Raw::deserialize(d)?;
        let shares = raw
            .shares
            .into_iter()
            .map(|mut share| {
                share.remove("acl");
                share.remove("acl_error");
                Share::deserialize(serde_json::Value::Object(share))
                    .map_err(serde::de::Error::custom)
            })
            .collect::<Result<_, _>>()?;
        Ok(ScanReport {
            shares,
            resources: raw.resources,
        })
    }
}

#[derive(Debug, Deserialize)]
struct ScannedResource {
    name: String,
    kind: ResourceKind,
    state: ResourceState,
}

/// Reads a successful step's report into the group; `Err` when a check in it failed.
fn interpret(
    t: &mut Transition,
    step: &JobStep,
    report: &serde_json::Value,
    baseline: &mut Option<Vec<Share>>,
    inputs: &Inputs<'_>,
) -> Result<(), String> {
    let source = t.group.route.first().cloned().unwrap_or_default();
    match step.action {
        StepAction::Run(StepKind::Preflight) if step.cluster == source => {
            let scan: ScanReport = parse(report)?;
            let disk = scan
                .resources
                .iter()
                .find(|r| r.kind == ResourceKind::PhysicalDisk)
                .map(|r| r.name.clone());
            t.group.context.source_disk = disk;
            t.group.context.drive_letter = drive_letter_of(&scan.shares);
            t.group.context.baseline_shares = scan.shares.len() as u32;
            t.group.context.share_depth = share_depth(&scan.shares);
            if let Some(depth) = inputs.request.skeleton_depth
                && depth < t.group.context.share_depth
            {
                return Err(format!(
                    "share folders reach {} levels below the drive root; skeleton_depth {depth} \
                     would leave them missing on the interim, so its shares could not come \
                     online: use skeleton_depth {} or more (or leave it out)",
                    t.group.context.share_depth - 1,
                    t.group.context.share_depth
                ));
            }
            if t.group.context.drive_letter.is_none() && !scan.shares.is_empty() {
                return Err("the group's shares have no drive letter in their paths".into());
            }
            *baseline = Some(scan.shares.clone());
            t.baseline = Some(scan.shares);
            Ok(())
        }
        StepAction::Run(StepKind::Preflight) => {
            let inventory: InventoryDocument = parse(report)?;
            let last = t.group.route.last().cloned().unwrap_or_default();
            if step.cluster == last {
                if let Some(source_disk) = &t.group.context.source_disk {
                    let wanted = inputs.request.target_disk(source_disk);
                    let Some(disk) = inventory.disks.iter().find(|d| d.resource == wanted) else {
                        return Err(format!(
                            "disk `{wanted}` holding the data of `{source_disk}` is not presented \
                             to {}; present the LUN or set disk_mapping",
                            step.cluster
                        ));
                    };
                    let owner = inventory.groups.iter().find(|g| {
                        g.resources.iter().any(|r| {
                            r.kind == ResourceKind::PhysicalDisk && r.name == disk.resource
                        })
                    });
                    if disk.csv || owner.is_some() {
                        return Err(format!(
                            "disk `{wanted}` on {} is {}; set disk_mapping to the disk the LUN of \
                             `{source_disk}` was presented as",
                            step.cluster,
                            match owner {
                                Some(group) => format!("in use by group `{}`", group.name),
                                None => "a Cluster Shared Volume".to_owned(),
                            }
                        ));
                    }
                }
            } else if let Some(letter) = &t.group.context.drive_letter {
                // The interim's prepared disk takes the source's letter.
                let taken = inventory.disks.iter().find(|d| {
                    d.drive_letter
                        .as_deref()
                        .is_some_and(|l| l.eq_ignore_ascii_case(letter))
                });
                if let Some(disk) = taken
                    && inventory.groups.iter().any(|g| {
                        g.name != t.group.name
                            && g.resources.iter().any(|r| {
                                r.kind == ResourceKind::PhysicalDisk && r.name == disk.resource
                            })
                    })
                {
                    return Err(format!(
                        "drive {letter} is taken on {} by disk `{}` of another group",
                        step.cluster, disk.resource
                    ));
                }
            }
            Ok(())
        }
        StepAction::Run(StepKind::PrepareInterimDisk) => {
            #[derive(Deserialize)]
            struct Prepared {
                resource: String,
            }
            let disk: Prepared = parse(report)?;
            t.group.context.interim_disk = Some(disk.resource);
            Ok(())
        }
        StepAction::Run(StepKind::VerifyInterim | StepKind::VerifyTarget)
        | StepAction::VerifySource => {
            let scan: ScanReport = parse(report)?;
            let expected = baseline.as_deref().unwrap_or_default();
            let mut verification = verify(expected, &scan, &step.cluster, inputs.now);
            if t.group.losses.contains(&ResourceKind::FileShare)
                && step.action != StepAction::VerifySource
            {
                verification.lost = std::mem::take(&mut verification.missing);
                verification.passed = verification.changed.is_empty()
                    && verification.unexpected.is_empty()
                    && verification.network_name_online;
            }
            let passed = verification.passed;
            let summary = format!(
                "{} of {} shares identical on {}{}",
                verification.identical,
                verification.expected,
                step.cluster,
                if verification.network_name_online {
                    ""
                } else {
                    ", network name not online"
                }
            );
            t.group.verification = Some(verification);
            if passed { Ok(()) } else { Err(summary) }
        }
        _ => Ok(()),
    }
}

fn parse<T: serde::de::DeserializeOwned>(report: &serde_json::Value) -> Result<T, String> {
    T::deserialize(report).map_err(|e| format!("the agent's report could not be read: {e}"))
}

/// Skeleton levels that create every share's folder: `F:\\A\\B` needs 3 (root, A, B).
fn share_depth(shares: &[Share]) -> u32 {
    shares
        .iter()
        .map(|s| {
            let below_drive = s
                .path
                .split_once(':')
                .map_or(s.path.as_str(), |(_, rest)| rest);
            below_drive.split('\\').filter(|c| !c.is_empty()).count() as u32 + 1
        })
        .max()
        .unwrap_or(1)
}

/// The drive most of the shares live on, e.g. `F:`.
fn drive_letter_of(shares: &[Share]) -> Option<String> {
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for share in shares {
        if let Some((drive, _)) = share.path.split_once(':')
            && drive.len() == 1
            && drive.chars().all(|c| c.is_ascii_alphabetic())
        {
            *counts
                .entry(format!("{}:", drive.to_ascii_uppercase()))
                .or_default() += 1;
        }
    }
    counts
        .into_iter()
        .max_by_key(|(letter, n)| (*n, std::cmp::Reverse(letter.clone())))
        .map(|(letter, _)| letter)
}

/// Compares the scanned shares with the baseline: same names, paths, permissions and flags, and
/// the group's network name online.
fn verify(
    expected: &[Share],
    scan: &ScanReport,
    cluster: &str,
    at: DateTime<Utc>,
) -> VerificationReport {
    let key = |s: &Share| s.name.to_lowercase();
    let found: std::collections::BTreeMap<String, &Share> =
        scan.shares.iter().map(|s| (key(s), s)).collect();
    let wanted: std::collections::BTreeSet<String> = expected.iter().map(key).collect();
    let mut report = VerificationReport {
        cluster: cluster.to_owned(),
        expected: expected.len() as u32,
        at,
        ..VerificationReport::default()
    };
    for share in expected {
        match found.get(&key(share)) {
            None => report.missing.push(share.name.clone()),
            Some(got) => {
                let fields = differences(share, got);
                if fields.is_empty() {
                    report.identical += 1;
                } else {
                    report.changed.push(ShareMismatch {
                        share: share.name.clone(),
                        fields,
                    });
                }
            }
        }
    }
    report.unexpected = scan
        .shares
        .iter()
        .filter(|s| !wanted.contains(&key(s)))
        .map(|s| s.name.clone())
        .collect();
    let names: Vec<&ScannedResource> = scan
        .resources
        .iter()
        .filter(|r| r.kind == ResourceKind::NetworkName)
        .collect();
    report.network_name_online =
        !names.is_empty() && names.iter().all(|r| r.state == ResourceState::Online);
    report.passed = report.missing.is_empty()
        && report.changed.is_empty()
        && report.unexpected.is_empty()
        && report.network_name_online;
    report
}

fn differences(want: &Share, got: &Share) -> Vec<String> {
    let mut fields = Vec::new();
    if !want.path.eq_ignore_ascii_case(&got.path) {
        fields.push("path".to_owned());
    }
    let sorted = |s: &Share| {
        let mut p = s.permissions.clone();
        p.sort_by(|a, b| {
            (a.principal.to_lowercase(), a.ace_type, a.access).cmp(&(
                b.principal.to_lowercase(),
                b.ace_type,
                b.access,
            ))
        });
        p
    };
    if sorted(want) != sorted(got) {
        fields.push("permissions".to_owned());
    }
    if want.caching != got.caching {
        fields.push("caching".to_owned());
    }
    if want.access_based_enumeration != got.access_based_enumeration {
        fields.push("access_based_enumeration".to_owned());
    }
    if want.continuous_availability != got.continuous_availability {
        fields.push("continuous_availability".to_owned());
    }
    if want.encrypt_data != got.encrypt_data {
        fields.push("encrypt_data".to_owned());
    }
    if want.user_limit != got.user_limit {
        fields.push("user_limit".to_owned());
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::OsGeneration;
    use crate::model::{Access, AceType, Permission};
    use crate::plan::{ClusterRef, RouteRequest, RunbookOptions, plan_route, runbook};
    use serde_json::json;

    fn request() -> JobRequest {
        serde_json::from_value(json!({"source": "OLD", "target": "NEW"})).unwrap()
    }

    /// A fresh group on the two-hop route OLD (ws2003) -> MID (ws2008) -> NEW (ws2008r2).
    fn group() -> JobGroup {
        let clusters = [
            ("OLD", OsGeneration::Ws2003),
            ("MID", OsGeneration::Ws2008),
            ("NEW", OsGeneration::Ws2008r2),
        ]
        .map(|(name, os)| ClusterRef {
            name: name.into(),
            os,
        });
        let route = plan_route(
            &RouteRequest {
                source: "OLD".into(),
                target: "NEW".into(),
                interim: None,
                allow_lossy: false,
            },
            &clusters,
            &crate::plan::HopTable::builtin(),
        )
        .unwrap();
        let steps = runbook(&route, &RunbookOptions::default())
            .into_iter()
            .enumerate()
            .map(|(i, spec)| JobStep {
                seq: i as u32 + 1,
                action: StepAction::Run(spec.kind),
                phase: spec.phase,
                cluster: spec.cluster,
                peer: spec.peer,
                state: StepState::Pending,
                attempt: 0,
                max_attempts: spec.retry.max_attempts,
                skeleton_depth: spec.skeleton_depth,
                estimate_seconds: spec.estimate.as_secs(),
                task_id: None,
                next_attempt_at: None,
                started_at: None,
                finished_at: None,
                output: None,
                error: None,
            })
            .collect();
        JobGroup {
            name: "FS1".into(),
            state: GroupState::Pending,
            route: vec!["OLD".into(), "MID".into(), "NEW".into()],
            losses: Vec::new(),
            steps,
            rollback: Vec::new(),
            context: Default::default(),
            approval: None,
            downtime_started_at: None,
            downtime_ended_at: None,
            verification: None,
            error: None,
            retries: 0,
            version: 1,
            updated_at: None,
        }
    }

    fn share(name: &str) -> Share {
        Share {
            name: name.into(),
            path: format!("F:\\Shares\\{name}"),
            description: String::new(),
            permissions: vec![Permission {
                principal: "CORP\\Finance".into(),
                ace_type: AceType::Allow,
                access: Access::Change,
            }],
            caching: Default::default(),
            access_based_enumeration: false,
            continuous_availability: false,
            encrypt_data: false,
            user_limit: None,
        }
    }

    fn scan(shares: &[Share], online: bool) -> serde_json::Value {
        json!({
            "group": "FS1",
            "shares": shares,
            "resources": [
                {"name": "FS1 Name", "kind": "network_name", "state": if online { "online" } else { "offline" }},
                {"name": "Cluster Disk 1", "kind": "physical_disk", "state": "online"},
            ],
        })
    }

    /// Answers a task the way a healthy cluster would.
    fn healthy(shares: &[Share]) -> impl FnMut(&StartTask) -> TaskView + '_ {
        move |start| {
            TaskView::Succeeded(match &start.action {
                Action::ShareScan { .. } => scan(shares, true),
                Action::ReadStorage { .. } => {
                    json!({"disks": [{"resource": "Cluster Disk 1", "size_bytes": 1, "free_bytes": 1}]})
                }
                Action::PrepareDisk { .. } => json!({"resource": "Cluster Disk 9"}),
                _ => json!({}),
            })
        }
    }

    struct Run {
        group: JobGroup,
        actions: Vec<(String, Action)>,
        events: Vec<NewJobEvent>,
        now: DateTime<Utc>,
    }

    /// Drives `advance` like the scheduler does, answering each task with `answer`, until the
    /// group settles or nothing more happens.
    fn drive(
        group: JobGroup,
        request: &JobRequest,
        job_state: JobState,
        answer: impl FnMut(&StartTask) -> TaskView,
    ) -> Run {
        drive_from(group, None, request, job_state, answer)
    }

    /// `drive` for a group whose baseline was taken earlier.
    fn drive_from(
        mut group: JobGroup,
        mut baseline: Option<Vec<Share>>,
        request: &JobRequest,
        job_state: JobState,
        mut answer: impl FnMut(&StartTask) -> TaskView,
    ) -> Run {
        let mut now = Utc::now();
        let mut actions = Vec::new();
        let mut events = Vec::new();
        let mut task = TaskView::None;
        for _ in 0..200 {
            let inputs = Inputs {
                now,
                job_state,
                request,
                job_approval: None,
                task: std::mem::replace(&mut task, TaskView::None),
                baseline: baseline.as_deref(),
                may_start: true,
                may_cut_over: true,
            };
            let Some(t) = advance(&group, &inputs) else {
                break;
            };
            if let Some(b) = &t.baseline {
                baseline = Some(b.clone());
            }
            events.extend(t.events.clone());
            group = t.group;
            if let Some(start) = &t.start {
                actions.push((start.cluster.clone(), start.action.clone()));
                task = answer(start);
            } else if let Some(at) = t.wake_at {
                now = at;
            } else if group.state.is_settled() {
                break;
            }
        }
        Run {
            group,
            actions,
            events,
            now,
        }
    }

    #[test]
    fn a_two_hop_group_runs_the_runbook_in_order_and_verifies() {
        let shares = [share("Finance"), share("HR$")];
        let run = drive(group(), &request(), JobState::Running, healthy(&shares));
        assert_eq!(
            run.group.state,
            GroupState::Succeeded,
            "{:?}",
            run.group.error
        );
        let kinds: Vec<String> = run
            .actions
            .iter()
            .map(|(cluster, action)| format!("{cluster}:{}", action.kind()))
            .collect();
        assert_eq!(
            kinds,
            [
                "OLD:share_scan",
                "MID:read_storage",
                "NEW:read_storage",
                "MID:prepare_disk",
                "MID:skeleton_copy",
                "MID:migrate_group",
                "MID:replace_disk_resource",
                "OLD:offline_group",
                "MID:online_group",
                "MID:share_scan",
                "NEW:migrate_group",
                "MID:offline_group",
                "NEW:replace_disk_resource",
                "NEW:online_group",
                "NEW:share_scan",
                "MID:remove_group",
            ]
        );
        // The skeleton reads the source's drive and writes the interim's disk of that letter.
        assert!(run.actions.iter().any(|(_, a)| matches!(a,
            Action::SkeletonCopy { source, destination, depth: 3, .. }
                if source == "\\\\OLD\\F$\\" && destination == "F:\\")));
        let report = run.group.verification.as_ref().unwrap();
        assert_eq!((report.identical, report.expected), (2, 2));
        assert_eq!(report.cluster, "NEW");
        assert!(run.group.downtime_seconds().is_some());
        assert_eq!(run.group.retries, 0);
    }

    #[test]
    fn a_network_name_failing_its_first_online_is_retried_after_a_backoff() {
        let shares = [share("Finance")];
        let mut healthy = healthy(&shares);
        let mut failed_once = false;
        let run = drive(group(), &request(), JobState::Running, |start| {
            if matches!(start.action, Action::OnlineGroup { .. })
                && start.cluster == "MID"
                && !failed_once
            {
                failed_once = true;
                return TaskView::Failed(TaskError {
                    kind: "transient".into(),
                    message: "network name FS1 failed: Kerberos".into(),
                    retryable: true,
                });
            }
            healthy(start)
        });
        assert_eq!(run.group.state, GroupState::Succeeded);
        assert_eq!(run.group.retries, 1);
        let online = run
            .group
            .steps
            .iter()
            .find(|s| s.action == StepAction::Run(StepKind::OnlineInterim))
            .unwrap();
        assert_eq!(online.attempt, 2);
        assert!(run.events.iter().any(|e| {
            e.message
                .as_deref()
                .is_some_and(|m| m.contains("attempt 1 of 3 failed") && m.contains("Kerberos"))
        }));
    }

    #[test]
    fn a_failed_cutover_step_rolls_back_to_the_source_and_verifies_it() {
        let shares = [share("Finance")];
        let mut healthy = healthy(&shares);
        let run = drive(group(), &request(), JobState::Running, |start| {
            if start.cluster == "NEW" && matches!(start.action, Action::OnlineGroup { .. }) {
                return TaskView::Failed(TaskError {
                    kind: "driver".into(),
                    message: "resource failed".into(),
                    retryable: false,
                });
            }
            healthy(start)
        });
        assert_eq!(
            run.group.state,
            GroupState::RolledBack,
            "{:?}",
            run.group.error
        );
        let undo: Vec<String> = run.group.rollback.iter().map(JobStep::label).collect();
        assert_eq!(
            undo,
            [
                "undo:offline_group",
                "undo:detach_data_disk",
                "undo:delete_migrated_group",
                "undo:offline_group",
                "undo:online_group",
                "verify_source"
            ]
        );
        let clusters: Vec<&str> = run
            .group
            .rollback
            .iter()
            .map(|s| s.cluster.as_str())
            .collect();
        assert_eq!(clusters, ["NEW", "NEW", "NEW", "MID", "OLD", "OLD"]);
        assert!(
            run.group
                .error
                .as_deref()
                .unwrap()
                .contains("online_target")
        );
        assert_eq!(run.group.verification.as_ref().unwrap().cluster, "OLD");
        // The cutover steps after the failure never ran.
        let verify_target = run
            .group
            .steps
            .iter()
            .find(|s| s.action == StepAction::Run(StepKind::VerifyTarget))
            .unwrap();
        assert_eq!(verify_target.state, StepState::Skipped);
    }

    #[test]
    fn a_share_missing_after_the_online_fails_verification_without_retrying() {
        let shares = [share("Finance"), share("HR")];
        let mut healthy = healthy(&shares);
        let run = drive(group(), &request(), JobState::Running, |start| {
            if start.cluster == "MID" && matches!(start.action, Action::ShareScan { .. }) {
                return TaskView::Succeeded(scan(&shares[..1], true));
            }
            healthy(start)
        });
        assert_eq!(run.group.state, GroupState::RolledBack);
        let verify = run
            .group
            .steps
            .iter()
            .find(|s| s.action == StepAction::Run(StepKind::VerifyInterim))
            .unwrap();
        assert_eq!((verify.state, verify.attempt), (StepState::Failed, 1));
        assert!(
            run.group
                .error
                .as_deref()
                .unwrap()
                .contains("1 of 2 shares identical")
        );
    }

    #[test]
    fn cutover_waits_for_a_window_and_for_approval() {
        let shares = [share("Finance")];
        let mut request = request();
        let start = Utc::now() + chrono::Duration::hours(3);
        request.windows = vec![crate::plan::CutoverWindow::Interval {
            start,
            end: start + chrono::Duration::hours(4),
        }];
        request.require_approval = true;
        let run = drive(group(), &request, JobState::Running, healthy(&shares));
        // Preparation ran; the window then opened (the driver jumps to wake times), and the
        // group stopped for approval.
        assert_eq!(run.group.state, GroupState::AwaitingApproval);
        assert!(run.now >= start);
        assert!(run.events.iter().any(|e| e.state == "awaiting_window"));
        let offline_ran = run
            .actions
            .iter()
            .any(|(c, a)| c == "OLD" && matches!(a, Action::OfflineGroup { .. }));
        assert!(!offline_ran, "no downtime before the approval");

        let mut group = run.group;
        group.approval = Some(Approval {
            by: "op".into(),
            at: run.now,
            expires_at: None,
        });
        let run = drive_from(
            group,
            Some(shares.to_vec()),
            &request,
            JobState::Running,
            healthy(&shares),
        );
        assert_eq!(run.group.state, GroupState::Succeeded);
    }

    #[test]
    fn an_expired_approval_holds_the_cutover_until_approved_again() {
        let shares = [share("Finance")];
        let mut request = request();
        request.require_approval = true;
        let mut group = group();
        // Approved ahead of time, but the approval ran out before the group reached its cutover.
        group.approval = Some(Approval {
            by: "op".into(),
            at: Utc::now() - chrono::Duration::hours(2),
            expires_at: Some(Utc::now() - chrono::Duration::hours(1)),
        });
        let run = drive(group, &request, JobState::Running, healthy(&shares));
        assert_eq!(run.group.state, GroupState::AwaitingApproval);
        assert!(run.events.iter().any(|e| {
            e.state == "awaiting_approval"
                && e.message.as_deref() == Some("the approval expired; approve again")
        }));
        assert!(
            !run.actions
                .iter()
                .any(|(_, a)| matches!(a, Action::OfflineGroup { .. })),
            "no downtime on an expired approval"
        );
        // Approved again, for the whole job this time, with time left: the cutover runs.
        let job_approval = Approval {
            by: "op".into(),
            at: run.now,
            expires_at: Some(run.now + chrono::Duration::hours(1)),
        };
        let t = advance(
            &run.group,
            &Inputs {
                now: run.now,
                job_state: JobState::Running,
                request: &request,
                job_approval: Some(&job_approval),
                task: TaskView::None,
                baseline: Some(&shares[..]),
                may_start: true,
                may_cut_over: true,
            },
        )
        .unwrap();
        assert_eq!(t.group.state, GroupState::CuttingOver);
        assert!(matches!(
            t.start.map(|s| s.action),
            Some(Action::OfflineGroup { .. })
        ));
    }

    #[test]
    fn a_paused_job_starts_nothing_and_a_cancelled_one_stops_before_its_cutover() {
        let shares = [share("Finance")];
        let run = drive(group(), &request(), JobState::Paused, healthy(&shares));
        assert!(run.actions.is_empty());
        assert_eq!(run.group.state, GroupState::Pending);

        let run = drive(group(), &request(), JobState::Cancelling, healthy(&shares));
        assert_eq!(run.group.state, GroupState::Cancelled);
        assert!(run.actions.is_empty());
    }

    #[test]
    fn cancelling_during_the_cutover_rolls_back() {
        let shares = [share("Finance")];
        let mut g = group();
        // Run until the source is offline and the interim online.
        let mut healthy_answers = healthy(&shares);
        let mut stop_after_online = |start: &StartTask| healthy_answers(start);
        let run = drive(g.clone(), &request(), JobState::Running, |start| {
            if start.cluster == "MID" && matches!(start.action, Action::ShareScan { .. }) {
                return TaskView::InFlight;
            }
            stop_after_online(start)
        });
        g = run.group;
        assert_eq!(g.state, GroupState::CuttingOver);
        // The verification in flight finishes, then the cancel rolls the group back.
        let inputs_task = TaskView::Succeeded(scan(&shares, true));
        let baseline = shares.to_vec();
        let t = advance(
            &g,
            &Inputs {
                now: Utc::now(),
                job_state: JobState::Cancelling,
                request: &request(),
                job_approval: None,
                task: inputs_task,
                baseline: Some(&baseline),
                may_start: true,
                may_cut_over: true,
            },
        )
        .unwrap();
        assert_eq!(t.group.state, GroupState::RollingBack);
        assert_eq!(
            t.start
                .as_ref()
                .map(|s| (s.cluster.as_str(), s.action.kind())),
            Some(("MID", "offline_group"))
        );
    }

    #[test]
    fn verification_compares_paths_permissions_and_flags() {
        let want = [share("A"), share("B"), share("C")];
        let mut changed = share("B");
        changed.permissions[0].access = Access::Read;
        changed.access_based_enumeration = true;
        let got = [share("A"), changed, share("D")];
        let scanned: ScanReport = serde_json::from_value(scan(&got, true)).unwrap();
        let report = verify(&want, &scanned, "NEW", Utc::now());
        assert_eq!(report.identical, 1);
        assert_eq!(report.missing, ["C"]);
        assert_eq!(report.unexpected, ["D"]);
        assert_eq!(
            report.changed[0].fields,
            ["permissions", "access_based_enumeration"]
        );
        assert!(!report.passed);
        let offline: ScanReport = serde_json::from_value(scan(&want, false)).unwrap();
        let report = verify(&want, &offline, "NEW", Utc::now());
        assert_eq!(report.identical, 3);
        assert!(!report.network_name_online && !report.passed);
    }
}
