//! The scheduler: a reconciler that moves every active job forward from what the store says.
//!
//! It has no input of its own. A pass reads the active jobs and their groups, asks the pure
//! [`advance`] what each group's next state is, and writes that state over the version it read,
//! together with the task it starts and the events it records, in one transaction. A crash at any
//! point leaves either the old state (the pass runs again) or the new one with its task (the
//! task's result is awaited); a step is never started twice for one attempt, because the task
//! and the step that names it are written together.
//!
//! Passes run when woken (a job changed, a job's task finished) and on a timer (retries and
//! windows are due at a time). With several replicas, one holds the scheduler lease in the store
//! and runs the passes; the others wait to take over when it lapses.

pub mod advance;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::error::Result;
use crate::model::{
    Action, GroupState, Job, JobGroup, JobState, NewJobEvent, StepState, TaskState,
};
use crate::service::Service;
use crate::store::{Change, GroupUpdate, JobUpdate, NewTask};

pub use advance::{Inputs, StartTask, TaskView, Transition, advance};

/// The `created_by` of the tasks jobs start, and the actor of the scheduler's audit records.
pub const SCHEDULER_ACTOR: &str = "scheduler";

/// How often a pass runs when nothing wakes it.
const TICK: Duration = Duration::from_secs(1);
/// How long the scheduler lease lasts; renewed on every pass.
const LEASE: Duration = Duration::from_secs(15);

/// What one pass did, for tests and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassStats {
    /// Group transitions written.
    pub transitions: u64,
    /// Tasks started.
    pub tasks: u64,
    /// Writes refused because someone else changed the group first.
    pub conflicts: u64,
    /// Jobs that finished in this pass.
    pub finished_jobs: u64,
}

/// Totals over the scheduler's passes on this server, for `/metrics` and the benchmark.
#[derive(Debug, Default)]
pub struct SchedulerTotals {
    pub passes: std::sync::atomic::AtomicU64,
    pub transitions: std::sync::atomic::AtomicU64,
    pub tasks: std::sync::atomic::AtomicU64,
    /// Time spent inside passes: the scheduler's own cost, agents' work excluded.
    pub busy_nanos: std::sync::atomic::AtomicU64,
}

impl SchedulerTotals {
    fn add(&self, stats: &PassStats, busy: Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        self.passes.fetch_add(1, Relaxed);
        self.transitions.fetch_add(stats.transitions, Relaxed);
        self.tasks.fetch_add(stats.tasks, Relaxed);
        self.busy_nanos
            .fetch_add(u64::try_from(busy.as_nanos()).unwrap_or(u64::MAX), Relaxed);
    }
}

pub struct Scheduler {
    service: Service,
    /// Names this replica in the scheduler lease.
    holder: String,
}

impl Scheduler {
    pub fn new(service: Service) -> Self {
        Scheduler {
            service,
            holder: format!("{}-{}", std::process::id(), Uuid::now_v7()),
        }
    }

    /// One pass over every active job, if this replica holds (or takes) the scheduler lease.
    pub async fn pass(&self) -> Result<PassStats> {
        let now = Utc::now();
        let store = self.service.store();
        let until = now + chrono::Duration::from_std(LEASE).unwrap_or_default();
        if !store.claim_scheduler(&self.holder, until, now).await? {
            return Ok(PassStats::default());
        }
        let jobs = store.active_jobs().await?;
        let mut loaded = Vec::with_capacity(jobs.len());
        for job in jobs {
            let groups = store.job_groups(job.id).await?;
            loaded.push((job, groups));
        }
        // Cutovers in progress per cluster, over every job: the per-cluster limit counts them all.
        let mut cutovers: HashMap<String, u32> = HashMap::new();
        for (_, groups) in &loaded {
            for group in groups.iter().filter(|g| g.state.in_cutover()) {
                for cluster in &group.route {
                    *cutovers.entry(cluster.clone()).or_default() += 1;
                }
            }
        }
        let mut stats = PassStats::default();
        // Failed jobs are loaded for their cutovers' sake only: nothing of theirs moves until
        // an operator retries a group, which makes the job run again.
        for (job, groups) in loaded
            .into_iter()
            .filter(|(j, _)| j.state != JobState::Failed)
        {
            self.advance_job(&job, groups, &mut cutovers, &mut stats)
                .await?;
        }
        Ok(stats)
    }

    async fn advance_job(
        &self,
        job: &Job,
        mut groups: Vec<JobGroup>,
        cutovers: &mut HashMap<String, u32>,
        stats: &mut PassStats,
    ) -> Result<()> {
        let store = self.service.store();
        let mut active = groups.iter().filter(|g| g.state.is_active()).count() as u32;
        let cluster_limit = job.request.max_cluster_cutovers();
        for group in &mut groups {
            if group.state.is_settled() {
                continue;
            }
            let task = self.task_view(group).await?;
            let baseline = if needs_baseline(group) {
                store.job_baseline(job.id, &group.name).await?
            } else {
                None
            };
            let now = Utc::now();
            let inputs = Inputs {
                now,
                job_state: job.state,
                request: &job.request,
                job_approval: job.approval.as_ref(),
                task,
                baseline: baseline.as_deref(),
                may_start: active < job.request.max_active_groups(),
                may_cut_over: group
                    .route
                    .iter()
                    .all(|c| cutovers.get(c).copied().unwrap_or(0) < cluster_limit),
            };
            let Some(mut transition) = advance(group, &inputs) else {
                continue;
            };
            if transition.group == *group && transition.start.is_none() {
                continue;
            }
            let was_active = group.state.is_active();
            let was_cutting = group.state.in_cutover();
            let task_id = transition.start.as_ref().map(|_| Uuid::now_v7());
            if let (Some(start), Some(id)) = (&transition.start, task_id) {
                set_task_id(&mut transition.group, start, id);
            }
            let new_task = match (&transition.start, task_id) {
                (Some(start), Some(id)) => match self.new_task(start, id).await {
                    Ok(task) => Some(task),
                    // E.g. the step's cluster was deleted: this group waits (and says why in
                    // the log); the other groups and jobs go on.
                    Err(e) => {
                        tracing::warn!(job = %job.id, group = %group.name, error = %e,
                            "cannot start the group's next step");
                        continue;
                    }
                },
                _ => None,
            };
            let saved = store
                .save_group(
                    job.id,
                    &GroupUpdate {
                        group: &transition.group,
                        task: new_task.as_ref().map(|t| NewTask {
                            cluster_id: t.cluster_id,
                            node: &t.node,
                            agent_id: t.agent_id,
                            action: &t.action,
                            created_by: SCHEDULER_ACTOR,
                            id: Some(t.id),
                            lease_deadline: None,
                        }),
                        baseline: transition.baseline.as_deref(),
                        events: &transition.events,
                        at: now,
                    },
                )
                .await?;
            let Some(saved) = saved else {
                stats.conflicts += 1;
                continue;
            };
            stats.transitions += 1;
            transition.group.version = saved.version;
            if let Some(task) = saved.task {
                stats.tasks += 1;
                self.service.deliver(&task).await;
            }
            let is_active = transition.group.state.is_active();
            match (was_active, is_active) {
                (false, true) => active += 1,
                (true, false) => active = active.saturating_sub(1),
                _ => {}
            }
            let is_cutting = transition.group.state.in_cutover();
            if was_cutting != is_cutting {
                for cluster in &transition.group.route {
                    let n = cutovers.entry(cluster.clone()).or_default();
                    if is_cutting {
                        *n += 1;
                    } else {
                        *n = n.saturating_sub(1);
                    }
                }
            }
            *group = transition.group;
        }
        if groups.iter().all(|g| g.state.is_settled()) {
            self.finish_job(job, &groups, stats).await?;
        }
        Ok(())
    }

    /// The current step's task, as `advance` sees it.
    async fn task_view(&self, group: &JobGroup) -> Result<TaskView> {
        let rollback = group.state == GroupState::RollingBack;
        let steps = if rollback {
            &group.rollback
        } else {
            &group.steps
        };
        let Some(step) = steps.iter().find(|s| !s.is_done()) else {
            return Ok(TaskView::None);
        };
        let (StepState::Running, Some(task_id)) = (step.state, step.task_id) else {
            return Ok(TaskView::None);
        };
        let task = match self.service.store().get_task(task_id).await {
            Ok(task) => task,
            // The task vanished with its cluster or agent: the attempt is lost.
            Err(e) if e.code == crate::error::ErrorCode::NotFound => return Ok(TaskView::Lost),
            Err(e) => return Err(e),
        };
        Ok(match task.state {
            TaskState::Pending | TaskState::Assigned | TaskState::Running => TaskView::InFlight,
            TaskState::Succeeded => {
                TaskView::Succeeded(task.result.unwrap_or(serde_json::Value::Null))
            }
            TaskState::Failed => TaskView::Failed(task.error.unwrap_or(crate::model::TaskError {
                kind: "unknown".into(),
                message: "the task failed without saying why".into(),
                retryable: false,
            })),
            TaskState::Lost => TaskView::Lost,
            TaskState::Cancelled => TaskView::Cancelled,
        })
    }

    /// The task for a step: for an action one node's disks are needed for, a connected agent of
    /// the cluster (any one: a cluster's nodes see the same clustered disks); otherwise whichever
    /// agent of the cluster takes it first.
    async fn new_task(&self, start: &StartTask, id: Uuid) -> Result<PlannedTask> {
        let store = self.service.store();
        let cluster = store.get_cluster(&start.cluster).await?;
        let (agent_id, node) = if start.action.runs_on_any_node() {
            (None, String::new())
        } else {
            let agents = store.list_agents(Some(cluster.id), 1000, None).await?;
            let pick = agents
                .iter()
                .filter(|a| a.state != crate::model::AgentState::Revoked)
                .min_by_key(|a| {
                    (
                        a.state != crate::model::AgentState::Connected,
                        a.node.clone(),
                    )
                });
            match pick {
                Some(agent) => (Some(agent.id), agent.node.clone()),
                None => (None, String::new()),
            }
        };
        Ok(PlannedTask {
            id,
            cluster_id: cluster.id,
            node,
            agent_id,
            action: start.action.clone(),
        })
    }

    /// Settles a job whose groups are all settled: succeeded when every group did, cancelled
    /// when it was being cancelled, failed otherwise.
    async fn finish_job(
        &self,
        job: &Job,
        groups: &[JobGroup],
        stats: &mut PassStats,
    ) -> Result<()> {
        let state = match job.state {
            JobState::Cancelling => JobState::Cancelled,
            _ if groups.iter().all(|g| g.state == GroupState::Succeeded) => JobState::Succeeded,
            // Failed (or rolled back, or rollback failed): retry or cancel is the operator's.
            JobState::Running => JobState::Failed,
            // A paused job stays paused until resumed, even with nothing left to run.
            _ => return Ok(()),
        };
        let succeeded = groups
            .iter()
            .filter(|g| g.state == GroupState::Succeeded)
            .count();
        let event = NewJobEvent {
            kind: "job",
            group: None,
            step: None,
            state: state.as_str().to_owned(),
            message: Some(format!("{succeeded} of {} groups succeeded", groups.len())),
        };
        let updated = self
            .service
            .store()
            .update_job(
                job.id,
                &JobUpdate {
                    expected_version: job.version,
                    state,
                    approval: None,
                    events: &[event],
                    at: Utc::now(),
                },
            )
            .await?;
        if updated.is_some() {
            stats.finished_jobs += 1;
            tracing::info!(job = %job.id, state = state.as_str(), "job finished");
        }
        Ok(())
    }
}

/// A task about to be stored with its step.
struct PlannedTask {
    id: Uuid,
    cluster_id: Uuid,
    node: String,
    agent_id: Option<Uuid>,
    action: Action,
}

fn set_task_id(group: &mut JobGroup, start: &StartTask, id: Uuid) {
    let steps = if start.rollback {
        &mut group.rollback
    } else {
        &mut group.steps
    };
    if let Some(step) = steps.iter_mut().find(|s| s.seq == start.step) {
        step.task_id = Some(id);
    }
}

/// Whether a verification may run in this transition: only during the cutover or its rollback
/// (a settled online moves straight on to its verification, so the current step alone does not
/// tell).
fn needs_baseline(group: &JobGroup) -> bool {
    group.state.in_cutover()
}

/// Runs passes until `stopped` turns true: when woken by this server, by another replica's
/// announcement, or at least every second.
pub async fn start(
    service: Service,
    mut stopped: watch::Receiver<bool>,
) -> anyhow::Result<JoinHandle<anyhow::Result<()>>> {
    let mut changes = service.store().subscribe().await?;
    let wake = Arc::clone(service.scheduler_wake());
    let scheduler = Scheduler::new(service);
    Ok(tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = wake.notified() => {}
                Some(change) = crate::store::next_change(&mut changes) => {
                    if change != Change::Jobs {
                        continue;
                    }
                }
                _ = stopped.wait_for(|s| *s) => break,
            }
            // A pass that found work runs again at once: one pass moves each group one
            // transition, and the next may already be possible.
            loop {
                let started = std::time::Instant::now();
                let result = scheduler.pass().await;
                if let Ok(stats) = &result {
                    scheduler
                        .service
                        .scheduler_totals()
                        .add(stats, started.elapsed());
                }
                match result {
                    Ok(stats) if stats.transitions > 0 && stats.conflicts == 0 => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "scheduler pass failed; retrying");
                        break;
                    }
                }
            }
        }
        Ok(())
    }))
}

/// When the next retry or window of a group is due, for tests that drive passes by hand.
pub fn next_due(group: &JobGroup) -> Option<DateTime<Utc>> {
    group
        .steps
        .iter()
        .chain(group.rollback.iter())
        .filter_map(|s| s.next_attempt_at)
        .min()
}
