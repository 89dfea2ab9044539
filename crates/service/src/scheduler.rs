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

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::Service;
use ferry_core::error::Result;
use ferry_core::model::{
    Action, GroupState, Job, JobGroup, JobState, NewJobEvent, Share, StepState, TaskState,
};
use ferry_store::{ActiveJob, Change, GroupUpdate, JobUpdate, NewTask, TaskStatus};

pub use ferry_core::advance::{Inputs, StartTask, TaskView, Transition, advance};

/// The `created_by` of the tasks jobs start, and the actor of the scheduler's audit records.
pub const SCHEDULER_ACTOR: &str = "scheduler";

/// How often a pass runs when nothing wakes it.
const TICK: Duration = Duration::from_secs(1);
/// How long the scheduler trusts its count of a job's group writes before comparing versions
/// anyway.
const RECHECK: Duration = Duration::from_secs(10);
/// How long the scheduler lease lasts unless configured: how long the replicas wait for a holder
/// that stopped before one of them takes over.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(15);
/// Longest a pass trusts the clusters and agents an earlier pass read.
const CLUSTERS_FOR: Duration = Duration::from_secs(10);

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
    /// Transitions that freed a slot (a group left the active or cutover states) or settled a
    /// group: what can let another group, or the job, move without anything else happening.
    pub releases: u64,
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

/// Until when this replica's scheduler holds the lease, in milliseconds since the epoch (0:
/// it does not): what tells a result handled here that the scheduler it wakes is the one
/// running the jobs, so no other replica needs to hear of it.
#[derive(Debug, Default)]
pub struct LeaseHere(std::sync::atomic::AtomicI64);

impl LeaseHere {
    fn set(&self, until: Option<DateTime<Utc>>) {
        self.0.store(
            until.map_or(0, |u| u.timestamp_millis()),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Held for at least `margin` more.
    pub fn held_for(&self, margin: Duration) -> bool {
        let margin = chrono::Duration::from_std(margin).unwrap_or_default();
        self.0.load(std::sync::atomic::Ordering::Relaxed) > (Utc::now() + margin).timestamp_millis()
    }
}

pub struct Scheduler {
    service: Service,
    /// Names this replica in the scheduler lease.
    holder: String,
    /// How long a claim of the lease lasts. The holder renews it when a third has run and acts
    /// only while its last claim is that young, so a holder that cannot reach the store stops
    /// acting long before another replica may take over.
    lease: Duration,
    /// What this replica read and wrote in earlier passes; one pass runs at a time.
    memory: tokio::sync::Mutex<Memory>,
}

/// The scheduler's memory between passes. Every entry is checked against the store before it is
/// used (the job's count of group writes, group versions) or never changes once written
/// (requests, baselines), so losing it costs reads, never correctness: a pass over 1,000 groups
/// that nobody else wrote reads no group at all.
#[derive(Default)]
struct Memory {
    /// When the lease must be renewed; `None` when this replica does not hold it.
    renew_at: Option<DateTime<Utc>>,
    /// Each active job as last read; its request never changes.
    jobs: HashMap<Uuid, Job>,
    /// Each active job's groups, as last read or written.
    groups: HashMap<Uuid, KnownGroups>,
    baselines: HashMap<(Uuid, String), Arc<Vec<Share>>>,
    clusters: ClusterCache,
}

/// A job's groups in request order, as a pass left them.
#[derive(Default)]
struct KnownGroups {
    /// When the versions were last compared with the store's. A writer that does not count its
    /// writes (a replica of an older release, during a rolling upgrade) is noticed within
    /// [`RECHECK`] all the same.
    checked_at: Option<std::time::Instant>,
    /// The job's `groups_written` these documents are current for; `None` when unsure (someone
    /// else wrote between our read and our write), which makes the next pass compare versions.
    written: Option<i64>,
    groups: Vec<JobGroup>,
}

impl Scheduler {
    pub fn new(service: Service) -> Self {
        Scheduler {
            service,
            holder: format!("{}-{}", std::process::id(), Uuid::now_v7()),
            lease: DEFAULT_LEASE,
            memory: tokio::sync::Mutex::new(Memory::default()),
        }
    }

    /// How long each claim of the scheduler lease lasts.
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// One pass over every active job, if this replica holds (or takes) the scheduler lease.
    pub async fn pass(&self) -> Result<PassStats> {
        let now = Utc::now();
        let store = self.service.store();
        let mut memory = self.memory.lock().await;
        // The lease is renewed when a third of it has run, not on every pass: a pass is often
        // a few milliseconds, a write costs more than that on a busy database.
        if memory.renew_at.is_none_or(|at| now >= at) {
            let until = now + chrono::Duration::from_std(self.lease).unwrap_or_default();
            let held = memory.renew_at.is_some();
            let claimed = store.claim_scheduler(&self.holder, until, now).await;
            self.service
                .scheduler_lease_here()
                .set(claimed.as_ref().is_ok_and(|c| *c).then_some(until));
            if !claimed? {
                if held {
                    tracing::warn!(holder = %self.holder, "another replica holds the scheduler lease now");
                }
                // Another replica writes now; what we remember would only cost memory.
                *memory = Memory::default();
                return Ok(PassStats::default());
            }
            if !held {
                tracing::info!(holder = %self.holder, "took the scheduler lease: this replica runs the jobs");
            }
            memory.renew_at =
                Some(now + chrono::Duration::from_std(self.lease / 3).unwrap_or_default());
        }
        let jobs = store.active_jobs().await?;
        let memory = &mut *memory;
        memory.jobs.retain(|id, _| jobs.iter().any(|j| j.id == *id));
        memory
            .groups
            .retain(|id, _| jobs.iter().any(|j| j.id == *id));
        memory
            .baselines
            .retain(|(id, _), _| jobs.iter().any(|j| j.id == *id));
        for active in &jobs {
            let id = active.id;
            match memory.jobs.get_mut(&id) {
                Some(job) => active.apply_to(job),
                None => {
                    let mut job = store.get_job(id).await?;
                    active.apply_to(&mut job);
                    memory.jobs.insert(id, job);
                }
            }
            let known = memory.groups.remove(&id).unwrap_or_default();
            // Nobody wrote the groups since we last did: what we remember is what is stored.
            let trusted = known.written == Some(active.groups_written)
                && known.checked_at.is_some_and(|at| at.elapsed() < RECHECK);
            let known = if trusted {
                known
            } else {
                let checked_at = Some(std::time::Instant::now());
                KnownGroups {
                    checked_at,
                    written: Some(active.groups_written),
                    groups: refresh_groups(store.as_ref(), id, known.groups).await?,
                }
            };
            memory.groups.insert(id, known);
        }
        // Cutovers in progress per cluster, over every job: the per-cluster limit counts them all.
        let mut cutovers: HashMap<String, u32> = HashMap::new();
        for known in memory.groups.values() {
            for group in known.groups.iter().filter(|g| g.state.in_cutover()) {
                for cluster in &group.route {
                    *cutovers.entry(cluster.clone()).or_default() += 1;
                }
            }
        }
        let mut stats = PassStats::default();
        // Taken out so that a pass that fails on the way leaves none behind.
        let mut clusters = std::mem::take(&mut memory.clusters);
        clusters.forget_if_stale(
            self.service.links.session_generation(),
            std::time::Instant::now(),
        );
        for ActiveJob { id: job_id, .. } in jobs {
            let (Some(mut known), Some(mut job)) =
                (memory.groups.remove(&job_id), memory.jobs.remove(&job_id))
            else {
                continue;
            };
            let moving = match job.state {
                // A failed job with a group no longer settled had a group retried: it runs
                // again (the operator's retry may have raced the job's failing; this settles it).
                JobState::Failed if known.groups.iter().any(|g| !g.state.is_settled()) => {
                    let reopened = self
                        .service
                        .reopen_job(&job, "running again: a group was retried".to_owned())
                        .await?;
                    reopened.map(|reopened| job = reopened).is_some()
                }
                // Failed jobs are read for their cutovers' sake only: nothing of theirs moves
                // until an operator retries a group.
                JobState::Failed => false,
                _ => true,
            };
            if moving {
                self.advance_job(
                    &job,
                    &mut known,
                    &mut memory.baselines,
                    &mut cutovers,
                    &mut clusters,
                    &mut stats,
                )
                .await?;
            }
            memory.groups.insert(job_id, known);
            memory.jobs.insert(job_id, job);
        }
        memory.clusters = clusters;
        Ok(stats)
    }

    /// Moves a job's groups: decides every group's transition first, then writes them all in
    /// one transaction, then hands their tasks to the agents.
    async fn advance_job(
        &self,
        job: &Job,
        known: &mut KnownGroups,
        baselines: &mut HashMap<(Uuid, String), Arc<Vec<Share>>>,
        cutovers: &mut HashMap<String, u32>,
        clusters: &mut ClusterCache,
        stats: &mut PassStats,
    ) -> Result<()> {
        let store = self.service.store();
        let groups = &mut known.groups;
        let running: Vec<Uuid> = groups
            .iter()
            .filter(|g| !g.state.is_settled())
            .filter_map(running_task)
            .collect();
        let mut tasks: HashMap<Uuid, TaskView> = if running.is_empty() {
            HashMap::new()
        } else {
            store
                .task_statuses(&running)
                .await?
                .into_iter()
                .map(|t| (t.id, task_view(t)))
                .collect()
        };
        // Slots are taken as soon as a transition takes them but freed only by the next pass:
        // a write refused below must not leave the limits exceeded.
        let mut active = groups.iter().filter(|g| g.state.is_active()).count() as u32;
        let cluster_limit = job.request.max_cluster_cutovers();
        let mut decided: Vec<(usize, Transition, Option<PlannedTask>)> = Vec::new();
        let max_active = job.request.max_active_groups();
        for (index, group) in groups.iter().enumerate() {
            if group.state.is_settled() {
                continue;
            }
            // Most of a large job waits for a slot: nothing to decide for those.
            if group.state == GroupState::Pending
                && job.state == JobState::Running
                && active >= max_active
            {
                continue;
            }
            let task = match running_task(group) {
                // The task vanished with its cluster or agent: the attempt is lost.
                Some(id) => tasks.remove(&id).unwrap_or(TaskView::Lost),
                None => TaskView::None,
            };
            let baseline = if needs_baseline(group) {
                let key = (job.id, group.name.clone());
                match baselines.get(&key) {
                    Some(shares) => Some(Arc::clone(shares)),
                    None => {
                        let loaded = store.job_baseline(job.id, &group.name).await?.map(Arc::new);
                        if let Some(shares) = &loaded {
                            baselines.insert(key, Arc::clone(shares));
                        }
                        loaded
                    }
                }
            } else {
                None
            };
            let inputs = Inputs {
                now: Utc::now(),
                job_state: job.state,
                request: &job.request,
                job_approval: job.approval.as_ref(),
                task,
                baseline: baseline.as_deref().map(Vec::as_slice),
                may_start: active < max_active,
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
            let planned = match &transition.start {
                Some(start) => match self.new_task(clusters, start).await {
                    Ok(task) => {
                        set_task_id(&mut transition.group, start, task.id);
                        Some(task)
                    }
                    // E.g. the step's cluster was deleted: this group waits (and says why in
                    // the log); the other groups and jobs go on.
                    Err(e) => {
                        tracing::warn!(job = %job.id, group = %group.name, error = %e,
                            "cannot start the group's next step");
                        continue;
                    }
                },
                None => None,
            };
            if !group.state.is_active() && transition.group.state.is_active() {
                active += 1;
            }
            if !group.state.in_cutover() && transition.group.state.in_cutover() {
                for cluster in &transition.group.route {
                    *cutovers.entry(cluster.clone()).or_default() += 1;
                }
            }
            decided.push((index, transition, planned));
        }
        if decided.is_empty() {
            if groups.iter().all(|g| g.state.is_settled()) {
                self.finish_job(job, groups, stats).await?;
            }
            return Ok(());
        }
        let now = Utc::now();
        let updates: Vec<GroupUpdate<'_>> = decided
            .iter()
            .map(|(_, transition, planned)| GroupUpdate {
                group: &transition.group,
                task: planned.as_ref().map(|t| NewTask {
                    cluster_id: t.cluster_id,
                    node: &t.node,
                    agent_id: t.agent_id,
                    action: &t.action,
                    created_by: SCHEDULER_ACTOR,
                    id: Some(t.id),
                    lease_deadline: t.lease_deadline,
                }),
                baseline: transition.baseline.as_deref(),
                events: &transition.events,
                at: now,
            })
            .collect();
        let saved = store.save_groups(job.id, &updates).await?;
        drop(updates);
        // Our write counts one; any more means another writer came between.
        if let Some(after) = saved.iter().flatten().map(|s| s.groups_written).next() {
            known.written = known
                .written
                .filter(|&before| before + 1 == after)
                .map(|_| after);
        }
        let mut started = Vec::new();
        for ((index, transition, _), saved) in decided.into_iter().zip(saved) {
            let Some(saved) = saved else {
                stats.conflicts += 1;
                // Someone else wrote the group: the next pass reads it again.
                groups[index].version = -1;
                known.written = None;
                continue;
            };
            stats.transitions += 1;
            let mut group = transition.group;
            let before = groups[index].state;
            if (before.is_active() && !group.state.is_active())
                || (before.in_cutover() && !group.state.in_cutover())
                || (!before.is_settled() && group.state.is_settled())
            {
                stats.releases += 1;
            }
            group.version = saved.version;
            if let Some(shares) = transition.baseline {
                baselines.insert((job.id, group.name.clone()), Arc::new(shares));
            }
            if let Some(task) = saved.task {
                stats.tasks += 1;
                started.push(task);
            }
            groups[index] = group;
        }
        self.service.hand_over(&started).await;
        Ok(())
    }

    /// The task for a step: for an action one node's disks are needed for, an agent of the
    /// cluster (a connected one first; a cluster's nodes see the same clustered disks);
    /// otherwise whichever agent of the cluster takes it first. When that agent is connected
    /// here, the task is stored already assigned to it.
    async fn new_task(
        &self,
        clusters: &mut ClusterCache,
        start: &StartTask,
    ) -> Result<PlannedTask> {
        let key = start.cluster.to_lowercase();
        let (cluster_id, agents) = match clusters.entries.get(&key) {
            Some(known) => known.clone(),
            None => {
                let store = self.service.store();
                let cluster = store.get_cluster(&start.cluster).await?;
                let mut agents: Vec<_> = store
                    .list_agents(Some(cluster.id), 1000, None)
                    .await?
                    .into_iter()
                    .filter(|a| a.state != ferry_core::model::AgentState::Revoked)
                    .collect();
                agents.sort_by_key(|a| {
                    (
                        a.state != ferry_core::model::AgentState::Connected,
                        a.node.clone(),
                    )
                });
                let agents: Vec<(Uuid, String)> =
                    agents.into_iter().map(|a| (a.id, a.node)).collect();
                clusters.entries.insert(key, (cluster.id, agents.clone()));
                (cluster.id, agents)
            }
        };
        let id = Uuid::now_v7();
        let links = &self.service.links;
        let wanted = if start.action.runs_on_any_node() {
            None
        } else {
            agents
                .iter()
                .find(|(agent, _)| links.is_connected(*agent))
                .or(agents.first())
                .map(|(agent, _)| *agent)
        };
        let placed = self.service.place_task(cluster_id, wanted, id);
        let agent_id = placed.map(|(agent, _)| agent).or(wanted);
        let node = agent_id
            .and_then(|a| agents.iter().find(|(id, _)| *id == a))
            .map(|(_, node)| node.clone())
            .unwrap_or_default();
        Ok(PlannedTask {
            id,
            cluster_id,
            node,
            agent_id,
            lease_deadline: placed.map(|(_, until)| until),
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
            output: None,
            data: None,
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
    lease_deadline: Option<DateTime<Utc>>,
    action: Action,
}

/// Each cluster tasks are started on: its id and its agents (id, node), connected ones (as the
/// store has it) first. Kept across passes while no agent connects here or leaves, for at most
/// [`CLUSTERS_FOR`] (agents enrolled, revoked or connected elsewhere); a failed pass drops it.
#[derive(Default)]
struct ClusterCache {
    entries: HashMap<String, (Uuid, Vec<(Uuid, String)>)>,
    /// The agent links' session generation when the entries began, and when.
    since: Option<(u64, std::time::Instant)>,
}

impl ClusterCache {
    fn forget_if_stale(&mut self, sessions: u64, now: std::time::Instant) {
        let current = self.since.is_some_and(|(generation, at)| {
            generation == sessions && now.duration_since(at) < CLUSTERS_FOR
        });
        if !current {
            self.entries.clear();
            self.since = Some((sessions, now));
        }
    }
}

/// The groups of a job as the store has them now, reusing the documents of `known` whose
/// version has not moved.
async fn refresh_groups(
    store: &dyn ferry_store::Store,
    job_id: Uuid,
    known: Vec<JobGroup>,
) -> Result<Vec<JobGroup>> {
    let versions = store.job_group_versions(job_id).await?;
    let mut known: HashMap<String, JobGroup> =
        known.into_iter().map(|g| (g.name.clone(), g)).collect();
    let stale: Vec<String> = versions
        .iter()
        .filter(|(name, version)| known.get(name).is_none_or(|g| g.version != *version))
        .map(|(name, _)| name.clone())
        .collect();
    if !stale.is_empty() {
        for group in store.job_groups_named(job_id, &stale).await? {
            known.insert(group.name.clone(), group);
        }
    }
    Ok(versions
        .into_iter()
        .filter_map(|(name, _)| known.remove(&name))
        .collect())
}

/// The task of the group's current step, when that step is running.
fn running_task(group: &JobGroup) -> Option<Uuid> {
    let steps = if group.state == GroupState::RollingBack {
        &group.rollback
    } else {
        &group.steps
    };
    let step = steps.iter().find(|s| !s.is_done())?;
    match (step.state, step.task_id) {
        (StepState::Running, Some(id)) => Some(id),
        _ => None,
    }
}

/// A stored task as `advance` sees it.
fn task_view(task: TaskStatus) -> TaskView {
    match task.state {
        TaskState::Pending | TaskState::Assigned | TaskState::Running => TaskView::InFlight,
        TaskState::Succeeded => TaskView::Succeeded(task.result.unwrap_or_default()),
        TaskState::Failed => {
            TaskView::Failed(task.error.unwrap_or_else(|| ferry_core::model::TaskError {
                kind: "unknown".into(),
                message: "the task failed without saying why".into(),
                retryable: false,
            }))
        }
        TaskState::Lost => TaskView::Lost,
        TaskState::Cancelled => TaskView::Cancelled,
    }
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
    lease: Duration,
    mut stopped: watch::Receiver<bool>,
) -> anyhow::Result<JoinHandle<anyhow::Result<()>>> {
    let mut changes = service.changes().await?;
    let wake = Arc::clone(service.scheduler_wake());
    let scheduler = Scheduler::new(service).with_lease(lease);
    Ok(tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = wake.notified() => {}
                Some(change) = changes.next() => {
                    if change != Change::Jobs {
                        continue;
                    }
                }
                _ = stopped.wait_for(|s| *s) => break,
            }
            // A pass moves each group as far as it can go by itself; what it cannot move waits
            // for a slot or for the job's other groups. A pass that freed some runs again at
            // once; anything else waits for a result, a verb or the tick.
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
                    Ok(stats) if stats.releases > 0 && stats.conflicts == 0 => continue,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cache_with_one(sessions: u64, at: std::time::Instant) -> ClusterCache {
        let mut cache = ClusterCache::default();
        cache.forget_if_stale(sessions, at);
        cache.entries.insert(
            "old".into(),
            (Uuid::now_v7(), vec![(Uuid::now_v7(), "n1".into())]),
        );
        cache
    }

    #[test]
    fn clusters_are_reread_when_an_agent_connects_or_leaves_or_they_are_old() {
        let start = std::time::Instant::now();
        let mut kept = cache_with_one(7, start);
        kept.forget_if_stale(7, start + CLUSTERS_FOR / 2);
        assert_eq!(kept.entries.len(), 1, "same sessions, recent: kept");

        let mut moved = cache_with_one(7, start);
        moved.forget_if_stale(8, start + Duration::from_millis(1));
        assert!(moved.entries.is_empty(), "a session opened or closed");

        let mut old = cache_with_one(7, start);
        old.forget_if_stale(7, start + CLUSTERS_FOR);
        assert!(old.entries.is_empty(), "read too long ago");
        // The clock restarts with the new read.
        old.entries
            .insert("old".into(), (Uuid::now_v7(), Vec::new()));
        old.forget_if_stale(7, start + CLUSTERS_FOR + CLUSTERS_FOR / 2);
        assert_eq!(old.entries.len(), 1);
    }
}
