//! Plans and jobs: the dry-run plan, creating a job (holding its groups and disks), reading it,
//! and the operator's verbs. The scheduler (`crate::scheduler`) does the moving; these calls
//! only change what it reads, then wake it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::Utc;
use uuid::Uuid;

use crate::auth::Caller;
use crate::{Service, page_window, paginate};
use ferry_core::error::{Error, Result};
use ferry_core::model::PageParams;
use ferry_core::model::{
    AgentState, Approval, ApproveRequest, Cluster, Finding, GroupPlan, GroupState, Job, JobDetail,
    JobEvent, JobGroup, JobRequest, JobState, JobStep, NewJobEvent, Page, Plan, PlannedStep,
    ResourceKind, Role, Severity, StepAction, StepState, snake,
};
use ferry_core::plan::{
    ClusterRef, Phase, RouteRequest, RunbookOptions, cutover_estimate, plan_route,
};
use ferry_store::{Change, EventFilter, GroupUpdate, JobUpdate, NewJob};

/// Groups read per page while planning.
const GROUP_PAGE: u32 = 1000;

/// A plan, and what creating a job from it needs besides.
struct Planned {
    plan: Plan,
    source: Cluster,
    target: Cluster,
    groups: Vec<JobGroup>,
    holds: Vec<String>,
    /// Failing validation reports the request's override lets through: (cluster, version).
    overridden: Vec<(String, i64)>,
}

fn hold_key(kind: &str, cluster: &Cluster, name: &str) -> String {
    format!("{kind}:{}:{}", cluster.id, name.to_lowercase())
}

/// The check of a plan's finding on how old the source inventory is.
const INVENTORY_AGE: &str = "inventory_age";

/// A source inventory older than this warns: groups or shares may have changed since.
const STALE_INVENTORY: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// `3 d 4 h`, `2 h 5 min`, `40 s`: an age as a person reads it.
fn humane(age: chrono::TimeDelta) -> String {
    let seconds = age.num_seconds();
    if seconds < 60 {
        format!("{seconds} s")
    } else if seconds < 3_600 {
        format!("{} min", seconds / 60)
    } else if seconds < 86_400 {
        format!("{} h {} min", seconds / 3_600, seconds % 3_600 / 60)
    } else {
        format!("{} d {} h", seconds / 86_400, seconds % 86_400 / 3_600)
    }
}

fn parse_job_id(id: &str) -> Result<Uuid> {
    Uuid::parse_str(id).map_err(|_| Error::not_found(format!("no job `{id}` (job ids are UUIDs)")))
}

impl Service {
    /// `POST /v1/plans`: what a job from this request would do. Executes nothing.
    pub async fn plan_job(&self, caller: &Caller, request: &JobRequest) -> Result<Plan> {
        Self::require(caller, Role::Viewer)?;
        Ok(self.build_plan(request).await?.plan)
    }

    async fn build_plan(&self, request: &JobRequest) -> Result<Planned> {
        let errors = request.validate();
        if !errors.is_empty() {
            return Err(Error::validation(errors));
        }
        let source = self.named_cluster("source", &request.source).await?;
        let target = self.named_cluster("target", &request.target).await?;
        let clusters = self.all_clusters().await?;
        let refs: Vec<ClusterRef> = clusters
            .iter()
            .map(|c| ClusterRef {
                name: c.name.clone(),
                os: c.os,
            })
            .collect();
        let route = plan_route(
            &RouteRequest {
                source: source.name.clone(),
                target: target.name.clone(),
                interim: request.interim.clone(),
                allow_lossy: request.allow_lossy,
            },
            &refs,
            &self.hops,
        )
        .map_err(|e| Error::invalid_field("route", e.to_string()))?;
        let route_names: Vec<String> = std::iter::once(source.name.clone())
            .chain(route.hops.iter().map(|h| h.to_cluster.clone()))
            .collect();

        let mut findings = Vec::new();
        if route.lossy {
            findings.push(Finding::new(
                Severity::Warn,
                "lossy_route",
                format!(
                    "the direct hop loses {} resources; they must be recreated by hand",
                    route
                        .losses
                        .iter()
                        .map(snake)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        for hop in &route.hops {
            if let Some(sp) = &hop.min_source_service_pack {
                findings.push(Finding::new(
                    Severity::Warn,
                    "service_pack",
                    format!(
                        "the {} wizard needs {} {sp} or later on {}; check it, registrations \
                         do not record service packs",
                        hop.to_os, hop.from_os, hop.from_cluster
                    ),
                ));
            }
        }
        let mut nodes_by_cluster = BTreeMap::new();
        for cluster in clusters.iter().filter(|c| route_names.contains(&c.name)) {
            let agents = self.store.list_agents(Some(cluster.id), 1000, None).await?;
            let connected: Vec<String> = agents
                .iter()
                .filter(|a| a.state == AgentState::Connected)
                .map(|a| a.node.clone())
                .collect();
            if connected.is_empty() {
                findings.push(Finding::new(
                    Severity::Warn,
                    "agent_connected",
                    format!(
                        "no agent of {} is connected; its steps wait until one connects",
                        cluster.name
                    ),
                ));
            }
            nodes_by_cluster.insert(cluster.name.clone(), connected);
        }
        // The configuration of every cluster the groups land on, as last validated.
        let mut overridden = Vec::new();
        for cluster in clusters
            .iter()
            .filter(|c| c.id != source.id && route_names.contains(&c.name))
        {
            let (finding, over) = self
                .validation_finding(cluster, request.validation_override.as_ref())
                .await?;
            findings.push(finding);
            overridden.extend(over);
        }

        // The groups, from the source's newest inventory.
        let mut available = BTreeMap::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .list_groups(source.id, GROUP_PAGE, after.as_deref())
                .await?;
            let full = page.len() == GROUP_PAGE as usize;
            let last = page.last().map(|g| g.name.clone());
            for group in page {
                available.insert(group.name.to_lowercase(), group);
            }
            match last {
                Some(name) if full => after = Some(name),
                _ => break,
            }
        }
        if available.is_empty() {
            return Err(Error::invalid_field(
                "source",
                format!(
                    "{} has no inventory yet: discover it with its agents (POST \
                     /v1/clusters/{}/discover, or `ferry cluster discover {}`) or import one \
                     (PUT /v1/clusters/{}/inventory)",
                    source.name, source.name, source.name, source.name
                ),
            ));
        }
        findings.push(self.inventory_age(&source).await?);
        let selected: Vec<_> = if request.groups.is_empty() {
            available.values().cloned().collect()
        } else {
            let mut missing = Vec::new();
            let mut out = Vec::new();
            for (i, name) in request.groups.iter().enumerate() {
                match available.get(&name.to_lowercase()) {
                    Some(group) => out.push(group.clone()),
                    None => missing.push(ferry_core::model::FieldError::new(
                        format!("groups[{i}]"),
                        format!("{} has no group `{name}`", source.name),
                    )),
                }
            }
            if !missing.is_empty() {
                return Err(Error::validation(missing));
            }
            out
        };

        let options = RunbookOptions {
            skeleton_depth: request.skeleton_depth(),
            ..RunbookOptions::default()
        };
        let specs = ferry_core::plan::runbook(&route, &options);
        let estimated: u64 = specs.iter().map(|s| s.estimate.as_secs()).sum();
        let downtime = cutover_estimate(&specs).as_secs();
        let mut group_plans = Vec::with_capacity(selected.len());
        let mut groups = Vec::with_capacity(selected.len());
        let mut holds = Vec::new();
        for summary in &selected {
            // (key, what it names, finding code) of everything the group's job would hold.
            let mut group_holds = vec![(
                hold_key("group", &source, &summary.name),
                format!("group `{}`", summary.name),
                "group_free",
            )];
            for resource in self.store.group_resources(summary.id).await? {
                if resource.kind == ResourceKind::PhysicalDisk {
                    let target_disk = request.target_disk(&resource.name);
                    group_holds.push((
                        hold_key("disk", &source, &resource.name),
                        format!("disk `{}` of {}", resource.name, source.name),
                        "disk_free",
                    ));
                    group_holds.push((
                        hold_key("disk", &target, target_disk),
                        format!("disk `{target_disk}` of {}", target.name),
                        "disk_free",
                    ));
                }
            }
            // Exactly what creating the job would be refused for (409), said in advance.
            let keys: Vec<String> = group_holds.iter().map(|(k, ..)| k.clone()).collect();
            let held: BTreeMap<String, Uuid> =
                self.store.job_holders(&keys).await?.into_iter().collect();
            let group_findings: Vec<Finding> = group_holds
                .iter()
                .filter_map(|(key, what, code)| {
                    let job = held.get(key)?;
                    Some(Finding::new(
                        Severity::Fail,
                        code,
                        format!("{what} belongs to job {job}, which has not finished"),
                    ))
                })
                .collect();
            holds.extend(keys);
            let steps: Vec<PlannedStep> = specs
                .iter()
                .enumerate()
                .map(|(i, spec)| PlannedStep {
                    seq: i as u32 + 1,
                    kind: spec.kind,
                    phase: spec.phase,
                    cluster: spec.cluster.clone(),
                    node: nodes_by_cluster
                        .get(&spec.cluster)
                        .and_then(|n| n.first().cloned()),
                    estimate_seconds: spec.estimate.as_secs(),
                    max_attempts: spec.retry.max_attempts,
                })
                .collect();
            groups.push(JobGroup {
                name: summary.name.clone(),
                state: GroupState::Pending,
                route: route_names.clone(),
                losses: route.losses.clone(),
                steps: specs
                    .iter()
                    .enumerate()
                    .map(|(i, spec)| JobStep {
                        seq: i as u32 + 1,
                        action: StepAction::Run(spec.kind),
                        phase: spec.phase,
                        cluster: spec.cluster.clone(),
                        peer: spec.peer.clone(),
                        state: StepState::Pending,
                        attempt: 0,
                        max_attempts: spec.retry.max_attempts.max(1),
                        skeleton_depth: spec.skeleton_depth,
                        estimate_seconds: spec.estimate.as_secs(),
                        task_id: None,
                        next_attempt_at: None,
                        started_at: None,
                        finished_at: None,
                        output: None,
                        error: None,
                    })
                    .collect(),
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
            });
            group_plans.push(GroupPlan {
                group: summary.name.clone(),
                route: route_names.clone(),
                route_detail: route.clone(),
                steps,
                estimated_seconds: estimated,
                estimated_downtime_seconds: downtime,
                findings: group_findings,
            });
        }
        // Two groups on one disk hold it once.
        let mut seen = BTreeSet::new();
        holds.retain(|k| seen.insert(k.clone()));
        let runnable = findings
            .iter()
            .chain(group_plans.iter().flat_map(|g| g.findings.iter()))
            .all(|f| f.severity != Severity::Fail);
        Ok(Planned {
            plan: Plan {
                request: request.clone(),
                route: route_names,
                refused_direct: route.refused_direct.clone(),
                losses: route.losses.iter().map(snake).collect(),
                groups: group_plans,
                findings,
                runnable,
            },
            source,
            target,
            groups,
            holds,
            overridden,
        })
    }

    async fn named_cluster(&self, field: &str, name: &str) -> Result<Cluster> {
        self.store.get_cluster(name).await.map_err(|e| {
            if e.code == ferry_core::error::ErrorCode::NotFound {
                Error::invalid_field(field, format!("no cluster named `{name}` is registered"))
            } else {
                e
            }
        })
    }

    /// How old the source inventory a plan reads is: the groups, their disks and the baseline
    /// all come from it, so a stale one warns.
    async fn inventory_age(&self, source: &Cluster) -> Result<Finding> {
        let newest = match source.latest_snapshot {
            Some(number) => self
                .store
                .list_snapshots(source.id, 1, Some(number - 1))
                .await?
                .pop(),
            None => None,
        };
        let Some(snapshot) = newest else {
            return Ok(Finding::new(
                Severity::Warn,
                INVENTORY_AGE,
                format!("{} has no snapshot", source.name),
            ));
        };
        let age = (Utc::now() - snapshot.created_at).max(chrono::TimeDelta::zero());
        let told = format!(
            "the source inventory is snapshot {} of {}, taken {} ago by {}",
            snapshot.number,
            source.name,
            humane(age),
            snapshot.created_by
        );
        Ok(if age > STALE_INVENTORY {
            Finding::new(
                Severity::Warn,
                INVENTORY_AGE,
                format!(
                    "{told}: discover it again before the cutover (`ferry cluster discover {}`)",
                    source.name
                ),
            )
        } else {
            Finding::new(Severity::Pass, INVENTORY_AGE, told)
        })
    }

    async fn all_clusters(&self) -> Result<Vec<Cluster>> {
        let mut out: Vec<Cluster> = Vec::new();
        loop {
            let after = out.last().map(|c| c.name.clone());
            let page = self.store.list_clusters(1000, after.as_deref()).await?;
            let done = page.len() < 1000;
            out.extend(page);
            if done {
                return Ok(out);
            }
        }
    }

    /// `POST /v1/jobs`: plans, refuses a plan with failing findings, and stores the job with its
    /// holds. The scheduler takes it from there.
    pub async fn create_job(&self, caller: &Caller, request: &JobRequest) -> Result<JobDetail> {
        let detail = self
            .audited(
                caller,
                Role::Operator,
                "job.create",
                format!("cluster:{}", request.source),
                async {
                    let planned = self.build_plan(request).await?;
                    if !planned.plan.runnable {
                        let reasons: Vec<String> = planned
                            .plan
                            .findings
                            .iter()
                            .chain(planned.plan.groups.iter().flat_map(|g| g.findings.iter()))
                            .filter(|f| f.severity == Severity::Fail)
                            .map(|f| f.message.clone())
                            .collect();
                        return Err(Error::conflict(format!(
                            "the plan has failing checks: {}",
                            reasons.join("; ")
                        )));
                    }
                    let id = Uuid::now_v7();
                    let name = request.display_name();
                    let job = self
                        .store
                        .create_job(&NewJob {
                            id,
                            name: &name,
                            request,
                            created_by: &caller.name,
                            groups: &planned.groups,
                            holds: &planned.holds,
                            at: Utc::now(),
                        })
                        .await?;
                    let _ = (&planned.source, &planned.target);
                    if let Some(over) = &request.validation_override {
                        for (cluster, version) in &planned.overridden {
                            self.audit_override(caller, id, cluster, *version, &over.reason)
                                .await;
                        }
                    }
                    // The job and its first events were stored in one transaction.
                    let event_seq = self.store.newest_event_seq(Some(job.id)).await?;
                    Ok(JobDetail {
                        job,
                        groups: planned.groups,
                        event_seq,
                    })
                },
            )
            .await?;
        self.wake_scheduler().await;
        Ok(detail)
    }

    pub async fn list_jobs(&self, caller: &Caller, page: &PageParams) -> Result<Page<Job>> {
        Self::require(caller, Role::Viewer)?;
        let (limit, after) = page_window(page)?;
        let after = after
            .map(|a| Uuid::parse_str(&a).map_err(|_| crate::invalid_cursor()))
            .transpose()?;
        let rows = self.store.list_jobs(limit + 1, after).await?;
        Ok(paginate(rows, limit, |j| j.id.to_string()))
    }

    pub async fn get_job(&self, caller: &Caller, id: &str) -> Result<JobDetail> {
        Self::require(caller, Role::Viewer)?;
        self.job_detail(parse_job_id(id)?).await
    }

    async fn job_detail(&self, id: Uuid) -> Result<JobDetail> {
        // Read first: a change stored while the rest is read then has a later event, which a
        // client re-reads for, rather than being missed.
        let event_seq = self.store.newest_event_seq(Some(id)).await?;
        let job = self.store.get_job(id).await?;
        let mut groups = self.store.job_groups(id).await?;
        self.attach_outputs(id, None, &mut groups).await?;
        Ok(JobDetail {
            job,
            groups,
            event_seq,
        })
    }

    /// One group of a job as [`Service::get_job`] shows it: what a client that follows the
    /// job's events re-reads of a 1,000-group job when one group moved.
    pub async fn get_job_group(&self, caller: &Caller, id: &str, group: &str) -> Result<JobGroup> {
        Self::require(caller, Role::Viewer)?;
        let job_id = parse_job_id(id)?;
        self.store.get_job(job_id).await?;
        let mut groups = self
            .store
            .job_groups_named(job_id, &[group.to_owned()])
            .await?;
        if groups.is_empty() {
            return Err(Error::not_found(format!(
                "job {job_id} has no group `{group}`"
            )));
        }
        self.attach_outputs(job_id, Some(group), &mut groups)
            .await?;
        Ok(groups.remove(0))
    }

    /// Puts each succeeded step's report (stored with its events) into the groups' documents.
    async fn attach_outputs(
        &self,
        job_id: Uuid,
        group: Option<&str>,
        groups: &mut [JobGroup],
    ) -> Result<()> {
        // Oldest first: a step's newer report replaces an older one.
        let mut outputs: HashMap<String, HashMap<u32, serde_json::Value>> = HashMap::new();
        for o in self.store.step_outputs(job_id, group).await? {
            outputs.entry(o.group).or_default().insert(o.step, o.output);
        }
        // Only a step that succeeded shows one: a retried group's later steps start over. A
        // document written before outputs moved to the events keeps its own.
        for group in groups {
            let Some(mut reports) = outputs.remove(&group.name) else {
                continue;
            };
            for step in group.steps.iter_mut().chain(group.rollback.iter_mut()) {
                if step.state == StepState::Succeeded
                    && let Some(output) = reports.remove(&step.seq)
                {
                    step.output = Some(output);
                }
            }
        }
        Ok(())
    }

    /// `GET /v1/jobs/{id}/logs`: the job's events, oldest first, by group and step.
    pub async fn job_logs(
        &self,
        caller: &Caller,
        id: &str,
        group: Option<&str>,
        step: Option<u32>,
        page: &PageParams,
    ) -> Result<Page<JobEvent>> {
        Self::require(caller, Role::Viewer)?;
        let job_id = parse_job_id(id)?;
        self.store.get_job(job_id).await?;
        let (limit, after) = page_window(page)?;
        let after = after
            .map(|a| a.parse::<i64>().map_err(|_| crate::invalid_cursor()))
            .transpose()?
            .unwrap_or(0);
        let rows = self
            .store
            .job_events(
                &EventFilter {
                    job_id: Some(job_id),
                    group,
                    step,
                },
                after,
                limit + 1,
            )
            .await?;
        Ok(paginate(rows, limit, |e| e.seq.to_string()))
    }

    /// Events of all jobs or one, after `after`: what `GET /v1/events` and `Watch` stream.
    pub async fn events_after(
        &self,
        caller: &Caller,
        job_id: Option<Uuid>,
        after: i64,
        limit: u32,
    ) -> Result<Vec<JobEvent>> {
        Self::require(caller, Role::Viewer)?;
        self.store
            .job_events(
                &EventFilter {
                    job_id,
                    ..EventFilter::default()
                },
                after,
                limit,
            )
            .await
    }

    /// A reader of the event log that waits for commits instead of polling: what `GET
    /// /v1/events` and `Watch` stream through.
    pub async fn follow_events(&self) -> Result<EventFollower> {
        Ok(EventFollower {
            service: self.clone(),
            feed: self.store.event_feed().await?,
        })
    }

    /// Sequence number of the newest event, of one job when given; 0 when there is none.
    pub async fn newest_event_seq(&self, caller: &Caller, job_id: Option<Uuid>) -> Result<i64> {
        Self::require(caller, Role::Viewer)?;
        self.store.newest_event_seq(job_id).await
    }

    /// Approves the cutover of one group, or of every group of the job.
    pub async fn approve_job(
        &self,
        caller: &Caller,
        id: &str,
        approve: &ApproveRequest,
    ) -> Result<JobDetail> {
        let target = match &approve.group {
            Some(group) => format!("job:{id}/{group}"),
            None => format!("job:{id}"),
        };
        self.audited(caller, Role::Operator, "job.approve", target, async {
            let job_id = parse_job_id(id)?;
            let job = self.store.get_job(job_id).await?;
            if job.state.is_finished() {
                return Err(Error::conflict(format!(
                    "job {job_id} is {}; there is nothing to approve",
                    job.state.as_str()
                )));
            }
            let now = Utc::now();
            let approval = Approval {
                by: caller.name.clone(),
                at: now,
                expires_at: job.request.approval_ttl_seconds.map(|ttl| {
                    now + chrono::Duration::seconds(i64::try_from(ttl).unwrap_or(i64::MAX / 2))
                }),
            };
            match &approve.group {
                None => {
                    let event = NewJobEvent {
                        kind: "job",
                        group: None,
                        step: None,
                        state: "approved".into(),
                        message: Some(format!("every group approved by {}", caller.name)),
                        output: None,
                        data: None,
                    };
                    self.store
                        .update_job(
                            job_id,
                            &JobUpdate {
                                expected_version: job.version,
                                state: job.state,
                                approval: Some(Some(&approval)),
                                events: &[event],
                                at: now,
                            },
                        )
                        .await?;
                }
                Some(name) => {
                    let events = [NewJobEvent {
                        kind: "group",
                        group: Some(name.clone()),
                        step: None,
                        state: "approved".into(),
                        message: Some(format!("approved by {}", caller.name)),
                        output: None,
                        data: None,
                    }];
                    self.change_group(job_id, name, &events, |group| {
                        group.approval = Some(approval.clone());
                        Ok(())
                    })
                    .await?;
                }
            }
            Ok(())
        })
        .await?;
        self.wake_scheduler().await;
        self.job_detail(parse_job_id(id)?).await
    }

    /// Pause (no new step starts; running ones finish), resume, or cancel (groups not yet in
    /// their cutover stop; groups in it roll back).
    pub async fn set_job_state(
        &self,
        caller: &Caller,
        id: &str,
        verb: JobVerb,
    ) -> Result<JobDetail> {
        self.audited(
            caller,
            Role::Operator,
            verb.audit_action(),
            format!("job:{id}"),
            async {
                let job_id = parse_job_id(id)?;
                let job = self.store.get_job(job_id).await?;
                let next = match (verb, job.state) {
                    // A failed job still holds its groups; cancelling it lets them go.
                    (JobVerb::Cancel, JobState::Failed) => JobState::Cancelling,
                    (_, state) if state.is_finished() => {
                        return Err(Error::conflict(format!(
                            "job {job_id} is {}; it can no longer be changed",
                            state.as_str()
                        )));
                    }
                    (JobVerb::Pause, JobState::Running | JobState::Paused) => JobState::Paused,
                    (JobVerb::Resume, JobState::Paused | JobState::Running) => JobState::Running,
                    (JobVerb::Cancel, _) => JobState::Cancelling,
                    (_, JobState::Cancelling) => {
                        return Err(Error::conflict(format!("job {job_id} is being cancelled")));
                    }
                    (_, state) => {
                        return Err(Error::conflict(format!(
                            "job {job_id} is {}",
                            state.as_str()
                        )));
                    }
                };
                if next == job.state {
                    return Ok(());
                }
                let event = NewJobEvent {
                    kind: "job",
                    group: None,
                    step: None,
                    state: next.as_str().to_owned(),
                    message: Some(format!("{} by {}", verb.past(), caller.name)),
                    output: None,
                    data: None,
                };
                self.store
                    .update_job(
                        job_id,
                        &JobUpdate {
                            expected_version: job.version,
                            state: next,
                            approval: None,
                            events: &[event],
                            at: Utc::now(),
                        },
                    )
                    .await?
                    .ok_or_else(|| Error::conflict("the job changed meanwhile; try again"))?;
                Ok(())
            },
        )
        .await?;
        self.wake_scheduler().await;
        self.job_detail(parse_job_id(id)?).await
    }

    /// Resumes a failed or rolled-back group: a failure before the cutover resumes at the failed
    /// step; after a rollback the cutover runs again from its first step (the rollback undid
    /// it), while the preparation is kept.
    pub async fn retry_group(&self, caller: &Caller, id: &str, group: &str) -> Result<JobDetail> {
        self.audited(
            caller,
            Role::Operator,
            "job.retry",
            format!("job:{id}/{group}"),
            async {
                let job_id = parse_job_id(id)?;
                let job = self.store.get_job(job_id).await?;
                if !matches!(
                    job.state,
                    JobState::Running | JobState::Paused | JobState::Failed
                ) {
                    return Err(Error::conflict(format!(
                        "job {job_id} is {}; only groups of a running, paused or failed job can \
                         be retried",
                        job.state.as_str()
                    )));
                }
                let events = [NewJobEvent {
                    kind: "group",
                    group: Some(group.to_owned()),
                    step: None,
                    state: GroupState::Pending.as_str().to_owned(),
                    message: Some(format!("retried by {}", caller.name)),
                    output: None,
                    data: None,
                }];
                self.change_group(job_id, group, &events, |g| {
                    let resume_from = match g.state {
                        GroupState::Failed => g
                            .steps
                            .iter()
                            .position(|s| s.state == StepState::Failed)
                            .unwrap_or(0),
                        GroupState::RolledBack => g
                            .steps
                            .iter()
                            .position(|s| s.phase == Phase::Cutover)
                            .unwrap_or(0),
                        state => {
                            return Err(Error::conflict(format!(
                                "group `{}` is {}; only failed or rolled-back groups can be \
                                 retried",
                                g.name,
                                state.as_str()
                            )));
                        }
                    };
                    for step in g.steps.iter_mut().skip(resume_from) {
                        step.state = StepState::Pending;
                        step.attempt = 0;
                        step.task_id = None;
                        step.next_attempt_at = None;
                        step.error = None;
                        step.output = None;
                        step.started_at = None;
                        step.finished_at = None;
                    }
                    g.rollback.clear();
                    g.error = None;
                    g.verification = None;
                    g.downtime_started_at = None;
                    g.downtime_ended_at = None;
                    g.state = GroupState::Pending;
                    Ok(())
                })
                .await?;
                // A failed job runs again. Should the scheduler be finishing it as failed at
                // this very moment, or change it before this write, its next pass sees the
                // pending group and sets it running itself.
                let job = self.store.get_job(job_id).await?;
                if job.state == JobState::Failed {
                    self.reopen_job(&job, format!("running again: {group} retried"))
                        .await?;
                }
                Ok(())
            },
        )
        .await?;
        self.wake_scheduler().await;
        self.job_detail(parse_job_id(id)?).await
    }

    /// Sets a failed job running again; `None` when it changed meanwhile.
    pub(crate) async fn reopen_job(&self, job: &Job, message: String) -> Result<Option<Job>> {
        let event = NewJobEvent {
            kind: "job",
            group: None,
            step: None,
            state: JobState::Running.as_str().to_owned(),
            message: Some(message),
            output: None,
            data: None,
        };
        self.store
            .update_job(
                job.id,
                &JobUpdate {
                    expected_version: job.version,
                    state: JobState::Running,
                    approval: None,
                    events: &[event],
                    at: Utc::now(),
                },
            )
            .await
    }

    /// Applies an operator's change to one group over the version read.
    async fn change_group(
        &self,
        job_id: Uuid,
        name: &str,
        events: &[NewJobEvent],
        change: impl Fn(&mut JobGroup) -> Result<()>,
    ) -> Result<()> {
        // The scheduler may write the group between our read and write; try again then.
        for _ in 0..5 {
            let mut group = self
                .store
                .job_groups(job_id)
                .await?
                .into_iter()
                .find(|g| g.name.eq_ignore_ascii_case(name))
                .ok_or_else(|| Error::not_found(format!("job {job_id} has no group `{name}`")))?;
            change(&mut group)?;
            group.updated_at = Some(Utc::now());
            // Events name the group as stored, whatever the caller's spelling.
            let events: Vec<NewJobEvent> = events
                .iter()
                .map(|e| NewJobEvent {
                    group: e.group.as_ref().map(|_| group.name.clone()),
                    ..e.clone()
                })
                .collect();
            let saved = self
                .store
                .save_group(
                    job_id,
                    &GroupUpdate {
                        group: &group,
                        task: None,
                        baseline: None,
                        events: &events,
                        at: Utc::now(),
                    },
                )
                .await?;
            if saved.is_some() {
                return Ok(());
            }
        }
        Err(Error::conflict(
            "the group keeps changing under the scheduler; try again",
        ))
    }

    /// Wakes the scheduler here and, through the store, on the replica running it. When this
    /// replica runs the jobs for a while yet, the announcement would only cost a round trip to
    /// the database and wake this scheduler a second time; should its lease lapse meanwhile,
    /// the replica taking over reads every job afresh.
    pub async fn wake_scheduler(&self) {
        self.scheduler_wake.notify_one();
        if !self.scheduler_lease_here.held_for(LEASE_MARGIN) {
            self.announce(Change::Jobs).await;
        }
    }
}

/// An operator's verb on a whole job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobVerb {
    Pause,
    Resume,
    Cancel,
}

impl JobVerb {
    fn audit_action(self) -> &'static str {
        match self {
            JobVerb::Pause => "job.pause",
            JobVerb::Resume => "job.resume",
            JobVerb::Cancel => "job.cancel",
        }
    }

    fn past(self) -> &'static str {
        match self {
            JobVerb::Pause => "paused",
            JobVerb::Resume => "resumed",
            JobVerb::Cancel => "cancelled",
        }
    }
}

/// How long a follower waits for the store's event feed to move before reading anyway. The feed
/// moves on every commit of events, here at once and from other replicas by notification, so
/// this only bounds the delay after a notification lost between two reconnections.
const EVENT_FALLBACK: std::time::Duration = std::time::Duration::from_secs(2);

/// How long this replica's scheduler lease must still run for a wake-up to stay local.
const LEASE_MARGIN: std::time::Duration = std::time::Duration::from_secs(1);

/// Follows the event log from a position; see [`Service::follow_events`].
pub struct EventFollower {
    service: Service,
    feed: tokio::sync::watch::Receiver<u64>,
}

impl EventFollower {
    /// The events after `after` (at most `limit`, oldest first), waiting until there is one.
    pub async fn next(
        &mut self,
        caller: &Caller,
        job_id: Option<Uuid>,
        after: i64,
        limit: u32,
    ) -> Result<Vec<JobEvent>> {
        loop {
            // Marked seen before the read: a commit landing during the read moves the feed
            // again, so the wait below cannot sleep through it.
            self.feed.borrow_and_update();
            let events = self
                .service
                .events_after(caller, job_id, after, limit)
                .await?;
            if !events.is_empty() {
                return Ok(events);
            }
            let _ = tokio::time::timeout(EVENT_FALLBACK, self.feed.changed()).await;
        }
    }
}
