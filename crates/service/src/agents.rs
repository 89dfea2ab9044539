//! Join tokens, enrollment, agents and tasks: the operations of the API, and what an agent's
//! session needs while it is connected (authentication, delivery, leases, fenced results, the
//! reaper's passes).

use chrono::Utc;
use uuid::Uuid;

use crate::auth::{self, Caller};
use crate::links::Disconnect;
use crate::{Service, page_window, paginate};
use ferry_core::error::{Error, ErrorCode, Result};
use ferry_core::model::PageParams;
use ferry_core::model::{
    Action, Agent, AgentState, CreatedJoinToken, DEFAULT_JOIN_TOKEN_TTL_SECONDS, DiscoveryState,
    EnrollRequest, Enrollment, InventoryDocument, JoinTokenInfo, NewJoinToken, Page, Reported,
    Role, Task, TaskError, TaskOutcome, TaskProgress, TaskRef, TaskState, check_capabilities,
    check_text,
};
use ferry_store::{AgentEnrollment, Change, JoinTokenRecord, NewTask};

/// Prefix of join tokens, so a leaked one is recognisable (API tokens use `fy_`).
pub const JOIN_TOKEN_PREFIX: &str = "fyj_";
/// Prefix of agent secrets.
pub const AGENT_SECRET_PREFIX: &str = "fya_";

/// Most unfinished tasks sent to an agent when it connects; the rest follow on its next connect.
const MAX_DELIVERY: u32 = 1000;

/// What became of a result an agent reported.
#[derive(Debug, Clone, PartialEq)]
pub enum ResultVerdict {
    /// It is now the task's outcome.
    Applied(Box<Task>),
    /// This attempt's result was applied before.
    Duplicate,
    /// The attempt or lease is no longer current; says why.
    Stale(String),
}

/// The audit actor of an agent.
pub(crate) fn agent_actor(agent_id: Uuid) -> String {
    format!("agent:{agent_id}")
}

/// A name from an unauthenticated request as it may appear in the audit log: bounded, and
/// without control characters, since it was not validated when the request is refused.
fn audit_label(name: &str) -> String {
    audit_text(name, ferry_core::model::MAX_NAME_LEN)
}

/// Longest agent message kept in an audit record's detail: enough for a path and its rule.
const MAX_AUDIT_DETAIL: usize = 1024;

/// Text an agent or a caller chose, as the audit log keeps it: at most `max` characters, without
/// control characters.
fn audit_text(text: &str, max: usize) -> String {
    text.chars().filter(|c| !c.is_control()).take(max).collect()
}

pub(super) fn parse_id(what: &str, id: &str) -> Result<Uuid> {
    Uuid::parse_str(id)
        .map_err(|_| Error::not_found(format!("no {what} `{id}` ({what} ids are UUIDs)")))
}

impl Service {
    // ---- join tokens and enrollment ---------------------------------------------------------

    pub async fn create_join_token(
        &self,
        caller: &Caller,
        new: &NewJoinToken,
    ) -> Result<CreatedJoinToken> {
        self.audited(
            caller,
            Role::Admin,
            "join_token.create",
            format!("cluster:{}", new.cluster),
            async {
                let errors = new.validate();
                if !errors.is_empty() {
                    return Err(Error::validation(errors));
                }
                let cluster = self.store.get_cluster(&new.cluster).await?;
                let secret = auth::generate_secret_with(JOIN_TOKEN_PREFIX);
                let now = Utc::now();
                let info = JoinTokenInfo {
                    id: Uuid::now_v7(),
                    cluster_id: cluster.id,
                    cluster_name: cluster.name,
                    expires_at: now
                        + chrono::Duration::seconds(
                            new.ttl_seconds.unwrap_or(DEFAULT_JOIN_TOKEN_TTL_SECONDS),
                        ),
                    uses_left: new.uses.unwrap_or(1),
                    created_at: now,
                    created_by: caller.name.clone(),
                };
                self.store
                    .insert_join_token(&JoinTokenRecord {
                        info: info.clone(),
                        secret_hash: auth::hash_secret(&secret),
                    })
                    .await?;
                Ok(CreatedJoinToken {
                    info,
                    token: Some(secret),
                })
            },
        )
        .await
    }

    /// Exchanges a join token for an agent identity. The join token is the credential, so there
    /// is no caller; the audit record names the node.
    pub async fn enroll(
        &self,
        request: &EnrollRequest,
        source: Option<String>,
    ) -> Result<Enrollment> {
        let result = async {
            let errors = request.validate();
            if !errors.is_empty() {
                return Err(Error::validation(errors));
            }
            if request.join_token.trim().is_empty() {
                return Err(Error::unauthenticated(
                    "a join token is required; create one with `ferry token create --kind join`",
                ));
            }
            let cluster = self
                .store
                .get_cluster(&request.cluster)
                .await
                .map_err(|e| {
                    if e.code == ErrorCode::NotFound {
                        // Which clusters exist is not for someone without a valid token to learn.
                        Error::unauthenticated("this join token was issued for another cluster")
                    } else {
                        e
                    }
                })?;
            let secret = auth::generate_secret_with(AGENT_SECRET_PREFIX);
            let enrolled = self
                .store
                .enroll_agent(&AgentEnrollment {
                    token_hash: &auth::hash_secret(&request.join_token),
                    cluster_id: cluster.id,
                    agent_id: Uuid::now_v7(),
                    node: &request.node,
                    secret_hash: &auth::hash_secret(&secret),
                    software_version: &request.software_version,
                    capabilities: &request.capabilities,
                    at: Utc::now(),
                })
                .await?;
            Ok(Enrollment {
                agent: enrolled.agent,
                secret,
                replaced: enrolled.replaced,
            })
        }
        .await;
        self.audit(
            "join-token",
            source,
            "agent.enroll",
            format!(
                "node:{}/{}",
                audit_label(&request.cluster),
                audit_label(&request.node)
            ),
            &result,
        )
        .await;
        if let Ok(Enrollment {
            replaced: Some(old),
            agent,
            ..
        }) = &result
        {
            tracing::info!(
                old = %old,
                new = %agent.id,
                node = %agent.node,
                "node re-enrolled; old agent revoked"
            );
            self.links.disconnect(*old, Disconnect::Reenrolled);
        }
        result
    }

    // ---- agents -----------------------------------------------------------------------------

    pub async fn list_agents(
        &self,
        caller: &Caller,
        cluster: Option<&str>,
        page: &PageParams,
    ) -> Result<Page<Agent>> {
        Self::require(caller, Role::Viewer)?;
        let cluster_id = match cluster {
            Some(key) => Some(self.store.get_cluster(key).await?.id),
            None => None,
        };
        let (limit, after) = page_window(page)?;
        let after = after
            .map(|a| Uuid::parse_str(&a).map_err(|_| crate::invalid_cursor()))
            .transpose()?;
        let rows = self.store.list_agents(cluster_id, limit + 1, after).await?;
        Ok(paginate(rows, limit, |a| a.id.to_string()))
    }

    pub async fn get_agent(&self, caller: &Caller, id: &str) -> Result<Agent> {
        Self::require(caller, Role::Viewer)?;
        self.store.get_agent(parse_id("agent", id)?).await
    }

    /// Revokes an agent: its secret is refused from then on and its stream (on this server)
    /// closed at once.
    pub async fn revoke_agent(&self, caller: &Caller, id: &str) -> Result<Agent> {
        let agent = self
            .audited(
                caller,
                Role::Admin,
                "agent.revoke",
                format!("agent:{id}"),
                async {
                    self.store
                        .revoke_agent(parse_id("agent", id)?, Utc::now())
                        .await
                },
            )
            .await?;
        if !self.links.disconnect(agent.id, Disconnect::Revoked) {
            // Its stream, if it has one, is held by another replica.
            self.announce(Change::Agents).await;
        }
        Ok(agent)
    }

    // ---- tasks ------------------------------------------------------------------------------

    /// Stores a task for the agent and sends it. An agent connected here gets it stored already
    /// assigned (one write, then the push); otherwise it waits pending for the replica holding
    /// the agent's stream, or for the agent's next connect.
    pub async fn run_task(&self, caller: &Caller, agent_id: &str, action: &Action) -> Result<Task> {
        self.audited(
            caller,
            Role::Operator,
            "task.run",
            format!("agent:{agent_id}"),
            async {
                let errors = action.validate();
                if !errors.is_empty() {
                    return Err(Error::validation(errors));
                }
                let agent = self.store.get_agent(parse_id("agent", agent_id)?).await?;
                if agent.state == AgentState::Revoked {
                    return Err(Error::conflict(format!(
                        "agent `{}` is revoked; run the task on the node's current agent",
                        agent.id
                    )));
                }
                let connected_here = self.links.is_connected(agent.id);
                let task = self
                    .store
                    .create_task(&NewTask {
                        cluster_id: agent.cluster_id,
                        node: &agent.node,
                        agent_id: Some(agent.id),
                        action,
                        created_by: &caller.name,
                        id: None,
                        lease_deadline: connected_here.then(|| Utc::now() + self.lease()),
                    })
                    .await?;
                // Pushed before the audit record is written: the agent need not wait for it.
                if task.state == TaskState::Assigned {
                    self.links.send_task(&task);
                } else {
                    self.announce(Change::Tasks).await;
                }
                Ok(task)
            },
        )
        .await
    }

    /// Stores a task for whichever agent of the cluster is connected (the action must not need
    /// one node's file system) and hands it to one; with none connected it waits for the first
    /// agent of the cluster that connects.
    pub async fn run_cluster_task(
        &self,
        caller: &Caller,
        cluster: &str,
        action: &Action,
    ) -> Result<Task> {
        let task = self
            .audited(
                caller,
                Role::Operator,
                "task.run",
                format!("cluster:{cluster}"),
                async {
                    let mut errors = action.validate();
                    if !action.runs_on_any_node() {
                        errors.push(ferry_core::model::FieldError::new(
                            "action",
                            format!(
                                "`{}` works on one node's disks: run it on that node's agent \
                                 with POST /v1/agents/{{id}}/tasks",
                                action.kind()
                            ),
                        ));
                    }
                    if !errors.is_empty() {
                        return Err(Error::validation(errors));
                    }
                    let cluster = self.store.get_cluster(cluster).await?;
                    self.store
                        .create_task(&NewTask {
                            cluster_id: cluster.id,
                            node: "",
                            agent_id: None,
                            action,
                            created_by: &caller.name,
                            id: None,
                            lease_deadline: None,
                        })
                        .await
                },
            )
            .await?;
        match self.offer(&task).await {
            Some(assigned) => Ok(assigned),
            None => {
                self.announce(Change::Tasks).await;
                Ok(task)
            }
        }
    }

    pub async fn get_task(&self, caller: &Caller, id: &str) -> Result<Task> {
        Self::require(caller, Role::Viewer)?;
        self.store.get_task(parse_id("task", id)?).await
    }

    /// Offers a pending task to an agent connected here: its own agent, or for a cluster task
    /// one of the cluster's. `Some` with the task as assigned and pushed; `None` when no such
    /// agent is connected here, or another replica or a connect assigned it first.
    pub(super) async fn offer(&self, task: &Task) -> Option<Task> {
        let agent_id = match task.agent_id {
            Some(agent_id) if self.links.is_connected(agent_id) => agent_id,
            Some(_) => return None,
            // Spread cluster tasks over the connected agents instead of always loading the first.
            None => self
                .links
                .connected_agent_of(task.cluster_id, task.id.as_u128())?,
        };
        let now = Utc::now();
        match self
            .store
            .assign_task(task.id, agent_id, now + self.lease(), now)
            .await
        {
            Ok(Some(assigned)) => {
                self.links.send_task(&assigned);
                Some(assigned)
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(
                    task = %task.id,
                    error = %e,
                    "could not assign task; the next sweep or connect delivers it"
                );
                None
            }
        }
    }

    /// The agent connected here that a task about to be stored can go to at once (its own
    /// agent, or for a cluster task one of the cluster's), with the lease to store it under:
    /// stored assigned, the task costs one write instead of two.
    pub(crate) fn place_task(
        &self,
        cluster_id: Uuid,
        agent_id: Option<Uuid>,
        task_id: Uuid,
    ) -> Option<(Uuid, chrono::DateTime<Utc>)> {
        let agent = match agent_id {
            Some(id) => self.links.is_connected(id).then_some(id)?,
            None => self
                .links
                .connected_agent_of(cluster_id, task_id.as_u128())?,
        };
        Some((agent, Utc::now() + self.lease()))
    }

    /// Hands stored tasks over: an assigned one is pushed to its agent here; for pending ones
    /// the replicas are told once to look.
    pub(crate) async fn hand_over(&self, tasks: &[Task]) {
        let mut pending = false;
        for task in tasks {
            match task.state {
                TaskState::Assigned => {
                    self.links.send_task(task);
                }
                TaskState::Pending => pending = true,
                _ => {}
            }
        }
        if pending {
            self.announce(Change::Tasks).await;
        }
    }

    /// Wakes every replica's sweep. A failure only delays delivery until the next tick.
    pub(super) async fn announce(&self, change: Change) {
        if let Err(e) = self.store.announce(change).await {
            tracing::warn!(change = change.as_str(), error = %e, "could not announce a change");
        }
    }

    /// One pass of the sweep: pending tasks whose agent (or, for cluster tasks, some agent of
    /// whose cluster) is connected here are assigned and pushed, and the streams of agents
    /// revoked since `revoked_since` are closed. Returns the newest revocation seen, where the
    /// next pass starts. With one server this only catches what a failed push left behind; with
    /// replicas it is how work and revocations cross between them.
    pub async fn sweep(
        &self,
        revoked_since: chrono::DateTime<Utc>,
    ) -> Result<chrono::DateTime<Utc>> {
        if self.links.session_count() > 0 {
            for task in self.store.pending_tasks(MAX_DELIVERY).await? {
                self.offer(&task).await;
            }
        }
        let mut newest = revoked_since;
        for (agent_id, revoked_at) in self.store.revoked_agents_since(revoked_since).await? {
            self.links.disconnect(agent_id, Disconnect::Revoked);
            newest = newest.max(revoked_at);
        }
        Ok(newest)
    }

    fn lease(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.timing.lease).unwrap_or(chrono::Duration::seconds(30))
    }

    // ---- an agent session's side -----------------------------------------------------------------

    /// The agent an `x-ferry-agent-id` and secret belong to, if both are right and the agent is
    /// not revoked.
    pub async fn authenticate_agent(
        &self,
        agent_id: Option<&str>,
        secret: Option<&str>,
    ) -> Result<Agent> {
        let (Some(agent_id), Some(secret)) = (agent_id, secret) else {
            return Err(Error::unauthenticated(
                "an agent authenticates with `x-ferry-agent-id` and \
                 `authorization: Bearer <agent secret>`",
            ));
        };
        let unknown = || Error::unauthenticated("unknown agent or wrong secret; enroll again");
        let id = Uuid::parse_str(agent_id).map_err(|_| unknown())?;
        let Some(credentials) = self.store.agent_credentials(id).await? else {
            return Err(unknown());
        };
        // Comparing hashes, not secrets: timing reveals nothing about the secret.
        if credentials.secret_hash != auth::hash_secret(secret) {
            return Err(unknown());
        }
        if let Some(at) = credentials.agent.revoked_at {
            return Err(Error::unauthenticated(format!(
                "agent `{id}` was revoked at {}; enroll again with a new join token",
                at.to_rfc3339()
            )));
        }
        Ok(credentials.agent)
    }

    /// Records a new session of an authenticated agent. `Unauthenticated` if it was revoked
    /// meanwhile.
    pub async fn agent_connected(
        &self,
        agent: &Agent,
        session_id: Uuid,
        software_version: &str,
        capabilities: &[String],
    ) -> Result<Agent> {
        let mut errors = Vec::new();
        check_text(
            &mut errors,
            "software_version",
            software_version,
            ferry_core::model::MAX_NAME_LEN,
        );
        check_capabilities(&mut errors, capabilities);
        if !errors.is_empty() {
            return Err(Error::validation(errors));
        }
        self.presence.seen(agent.id);
        self.store
            .agent_connected(
                agent.id,
                session_id,
                software_version,
                capabilities,
                Utc::now(),
            )
            .await
    }

    /// Records the end of a session, unless a newer one took over.
    pub async fn agent_disconnected(&self, agent_id: Uuid, session_id: Uuid) -> Result<bool> {
        self.store
            .agent_disconnected(agent_id, session_id, Utc::now())
            .await
    }

    /// Everything the agent should be working on: its pending tasks and the cluster's unassigned
    /// ones, now assigned to it under a lease, and the ones it already holds, which it may not
    /// have received (at-least-once).
    pub async fn tasks_to_deliver(&self, agent_id: Uuid) -> Result<Vec<Task>> {
        let now = Utc::now();
        let mut out = Vec::new();
        let cluster_id = self.store.get_agent(agent_id).await?.cluster_id;
        let mut tasks = self.store.tasks_to_deliver(agent_id, MAX_DELIVERY).await?;
        tasks.extend(
            self.store
                .unassigned_tasks(cluster_id, MAX_DELIVERY)
                .await?,
        );
        for task in tasks {
            if task.state == TaskState::Pending {
                if let Some(assigned) = self
                    .store
                    .assign_task(task.id, agent_id, now + self.lease(), now)
                    .await?
                {
                    out.push(assigned);
                }
            } else {
                out.push(task);
            }
        }
        Ok(out)
    }

    /// Renews the leases of the attempts a heartbeat lists.
    pub async fn renew_leases(&self, agent_id: Uuid, tasks: &[TaskRef]) -> Result<u64> {
        self.presence.seen(agent_id);
        if tasks.is_empty() {
            return Ok(0);
        }
        let now = Utc::now();
        self.store
            .renew_leases(agent_id, tasks, now + self.lease(), now)
            .await
    }

    /// Stores progress and renews the lease; false when the attempt is no longer current.
    /// Progress on a task that is not this agent's is refused with `PermissionDenied` and
    /// audited.
    pub async fn record_progress(
        &self,
        agent_id: Uuid,
        task: &TaskRef,
        progress: &TaskProgress,
        source: Option<String>,
    ) -> Result<bool> {
        self.presence.seen(agent_id);
        let lease_deadline = progress.at + self.lease();
        if self
            .store
            .record_progress(agent_id, task, progress, lease_deadline)
            .await?
        {
            return Ok(true);
        }
        self.held_by(agent_id, task, "task.progress", source)
            .await?;
        Ok(false)
    }

    /// Applies a result (with the task's last progress, when it came along), fenced by (task id,
    /// attempt, generation). A result on a task that is not this agent's is refused with
    /// `PermissionDenied` and audited; stale ones are answered, audited (`task.result`, denied)
    /// and change nothing; duplicates are answered, logged, and change nothing. An applied
    /// failure of kind `forbidden` (the agent refused a path) is audited as `task.forbidden`,
    /// denied, the agent the actor and its message the detail.
    ///
    /// A discovery's inventory is imported before the result is applied, and the task keeps
    /// only the [`DiscoveryReceipt`]: the import of a large cluster takes seconds, and a caller
    /// that must not wait that long (a stream that also carries heartbeats) runs this apart.
    pub async fn report_result(
        &self,
        agent: &Agent,
        task: &TaskRef,
        reported: Reported,
        progress: Option<&TaskProgress>,
        source: Option<String>,
    ) -> Result<ResultVerdict> {
        self.presence.seen(agent.id);
        let (outcome, progress) = match reported {
            Reported::Outcome(outcome) => (outcome, progress),
            // The agent's last progress came before the server's "importing", which stays.
            Reported::Inventory(document) => (
                self.import_discovered(agent, task, *document, source.clone())
                    .await?,
                None,
            ),
        };
        let outcome = &outcome;
        if let Some(applied) = self
            .store
            .complete_task(agent.id, task, outcome, progress, Utc::now())
            .await?
        {
            // An agent refused to touch a path: someone asked a node for what it may not do.
            // Only an applied result is audited, once per attempt; any other result costs one
            // string comparison.
            if let TaskOutcome::Failed(error) = outcome
                && error.kind == TaskError::FORBIDDEN
            {
                let refused: Result<()> = Err(Error::permission_denied(audit_text(
                    &error.message,
                    MAX_AUDIT_DETAIL,
                )));
                self.audit(
                    &agent_actor(agent.id),
                    source.clone(),
                    "task.forbidden",
                    format!("task:{}", applied.id),
                    &refused,
                )
                .await;
            }
            if applied.created_by == crate::scheduler::SCHEDULER_ACTOR {
                self.wake_scheduler().await;
            }
            if matches!(applied.action, Action::ReadInventory {}) {
                self.discovery_task_finished(applied.clone()).await;
            }
            return Ok(ResultVerdict::Applied(Box::new(applied)));
        }
        let current = self
            .held_by(agent.id, task, "task.result", source.clone())
            .await?;
        let same_attempt = current.attempt == task.attempt && current.generation == task.generation;
        if same_attempt && matches!(current.state, TaskState::Succeeded | TaskState::Failed) {
            tracing::info!(agent = %agent.id, task = %task.task_id, "duplicate result ignored");
            return Ok(ResultVerdict::Duplicate);
        }
        let why = format!(
            "task `{}` is {} at attempt {} generation {}; this result is for attempt {} \
             generation {}",
            current.id,
            current.state.as_str(),
            current.attempt,
            current.generation,
            task.attempt,
            task.generation
        );
        tracing::warn!(
            agent = %agent.id,
            task = %task.task_id,
            "stale result refused: {why}"
        );
        // A result that comes after its attempt was given up (an agent cut off past its lease,
        // a replica that lost it) is what an operator must be able to find afterwards: the work
        // may have been done twice on the cluster.
        let refused: Result<()> = Err(Error::permission_denied(audit_text(
            &format!("stale result refused: {why}"),
            MAX_AUDIT_DETAIL,
        )));
        self.audit(
            &agent_actor(agent.id),
            source,
            "task.result",
            format!("task:{}", current.id),
            &refused,
        )
        .await;
        Ok(ResultVerdict::Stale(why))
    }

    /// The outcome to store for an inventory an agent reported: the receipt of its import when
    /// the task is the current attempt of a running discovery; the failure of the discovery when
    /// the inventory is refused (nothing of it is stored); the inventory itself otherwise (a
    /// `read_inventory` task an operator created, or a report that is not current), which the
    /// fence then judges as any result. A result that turns stale between the import and the
    /// fence was still read from the cluster by its own agent, so its snapshot is true.
    async fn import_discovered(
        &self,
        agent: &Agent,
        task: &TaskRef,
        document: InventoryDocument,
        source: Option<String>,
    ) -> Result<TaskOutcome> {
        let kept_whole = |document: &InventoryDocument| {
            serde_json::to_value(document)
                .map(TaskOutcome::Succeeded)
                .map_err(|e| Error::internal(format!("an inventory could not be written: {e}")))
        };
        let discovery = self
            .store
            .discovery_of_task(task.task_id)
            .await?
            .filter(|d| d.state == DiscoveryState::Running);
        let Some(discovery) = discovery else {
            return kept_whole(&document);
        };
        // Said on the task, and its lease renewed: the import of a large cluster takes seconds,
        // during which the task would otherwise look stuck at the agent's last word. The store
        // records it only on the current attempt held by this agent, the fence every result
        // passes; a report it refuses is left to `complete_task` to refuse and audit.
        let importing = TaskProgress {
            done: 0,
            total: Some(1),
            message: "importing the inventory as the cluster's next snapshot".into(),
            at: Utc::now(),
        };
        let lease_deadline = importing.at + self.lease();
        if !self
            .store
            .record_progress(agent.id, task, &importing, lease_deadline)
            .await?
        {
            return kept_whole(&document);
        }
        let imported = self
            .import_discovered_inventory(&discovery, &agent_actor(agent.id), source, document)
            .await?;
        match imported {
            Ok(receipt) => serde_json::to_value(receipt)
                .map(TaskOutcome::Succeeded)
                .map_err(|e| Error::internal(format!("a receipt could not be written: {e}"))),
            Err(why) => Ok(TaskOutcome::Failed(TaskError {
                kind: "invalid".into(),
                message: why,
                retryable: false,
            })),
        }
    }

    /// The task a refused report was about, if it is the agent's; otherwise the report is
    /// audited as denied (`action`) and refused with `PermissionDenied`.
    async fn held_by(
        &self,
        agent_id: Uuid,
        task: &TaskRef,
        action: &str,
        source: Option<String>,
    ) -> Result<Task> {
        let current = match self.store.get_task(task.task_id).await {
            Ok(current) => Some(current),
            Err(e) if e.code == ErrorCode::NotFound => None,
            Err(e) => return Err(e),
        };
        match current {
            Some(current) if current.agent_id == Some(agent_id) => Ok(current),
            _ => {
                let refused: Result<Task> = Err(Error::permission_denied(format!(
                    "task `{}` is not assigned to this agent",
                    task.task_id
                )));
                tracing::warn!(
                    agent = %agent_id,
                    task = %task.task_id,
                    action,
                    "report refused: not this agent's task"
                );
                self.audit(
                    &agent_actor(agent_id),
                    source,
                    action,
                    format!("task:{}", task.task_id),
                    &refused,
                )
                .await;
                refused
            }
        }
    }

    // ---- the reaper ---------------------------------------------------------------------------

    /// Gives every lease in flight a full term from now; run once when a server starts.
    pub async fn extend_leases(&self) -> Result<u64> {
        self.store.extend_leases(Utc::now() + self.lease()).await
    }

    /// Writes `last_seen_at` of the agents heard from since the last flush, in one statement.
    pub async fn flush_seen(&self) -> Result<()> {
        let seen = self.presence.take();
        if seen.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.store.touch_agents(&seen, Utc::now()).await {
            self.presence.restore(seen);
            return Err(e);
        }
        Ok(())
    }

    /// One pass of the reaper: expired leases become lost attempts (their agents, if still
    /// connected here, are told to stop), and agents silent for longer than the heartbeat TTL and
    /// grace are marked down (their sessions, if any, closed).
    pub async fn reap(&self) -> Result<()> {
        let now = Utc::now();
        for task in self.store.expire_leases(now).await? {
            tracing::warn!(
                task = %task.id,
                agent = ?task.agent_id,
                attempt = task.attempt,
                generation = task.generation,
                "lease expired; attempt lost"
            );
            self.links.send_cancel(&task, "the lease expired");
            if task.created_by == crate::scheduler::SCHEDULER_ACTOR {
                self.scheduler_wake.notify_one();
            }
            if matches!(task.action, Action::ReadInventory {}) {
                let service = self.clone();
                tokio::spawn(async move { service.discovery_task_finished(task).await });
            }
        }
        let down_after = chrono::Duration::from_std(self.timing.down_after)
            .unwrap_or(chrono::Duration::minutes(1));
        for agent_id in self.store.mark_agents_down(now - down_after).await? {
            tracing::warn!(agent = %agent_id, "agent silent for too long; marked down");
            self.links.disconnect(agent_id, Disconnect::Silent);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unvalidated_names_are_tamed_for_the_audit_log() {
        assert_eq!(audit_label("N1\n\u{7}"), "N1");
        assert_eq!(
            audit_label(&"x".repeat(10_000)).len(),
            ferry_core::model::MAX_NAME_LEN
        );
    }

    #[test]
    fn ids_that_are_not_uuids_are_not_found() {
        let err = parse_id("agent", "nope").unwrap_err();
        assert_eq!(err.code, ErrorCode::NotFound);
        assert!(
            err.message.contains("agent ids are UUIDs"),
            "{}",
            err.message
        );
    }
}
