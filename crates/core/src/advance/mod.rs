//! The scheduler's decisions, as a pure function: given a group's stored state and what the world
//! looks like now (the job's state, the current step's task, the gates), the group's next state,
//! the task to start, and the events to record. No I/O and no clock: the shell passes `now`.
//!
//! One call moves a group as far as it can without waiting on anything: a finished task's step is
//! settled and the next step started in the same transition, so a step costs one write.
//!
//! The state machine is here; the two places where a step meets an agent have a file each:
//! `action.rs` builds the action a step asks of its agent from what earlier steps learned, and
//! `report.rs` reads a successful step's report into the group (the source's disk, drive letter
//! and shares, what the targets present, the verification against the baseline).

use chrono::{DateTime, Utc};

use crate::model::{
    Action, Approval, GroupState, JobGroup, JobRequest, JobState, JobStep, NewJobEvent, Share,
    StepAction, StepState, TaskError, snake,
};
use crate::plan::{Phase, StepKind, Undo, WindowFit, fits};

mod action;
mod report;

use action::action_for;
use report::interpret;

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
        data: None,
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
        data: None,
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

#[cfg(test)]
mod tests;
