//! Discovery: a `read_inventory` task on an agent of the cluster, whose result is imported as
//! the cluster's next snapshot through the same path as `PUT /v1/clusters/{id}/inventory`,
//! audited as that agent. An operator asks for one (`POST /v1/clusters/{id}/discover`); each
//! cluster also gets one every `discovery_interval` (its own, or the server's), run by whichever
//! replica claims it first.
//!
//! A discovery is settled when its task's result is applied (on the replica that applied it),
//! and otherwise when it is read or by the schedule's sweep: a crash between the result and the
//! import leaves the discovery running over a finished task, which the next look settles. The
//! store refuses a second settling, so racing settlers store one answer.

use std::time::Duration;

use chrono::Utc;
use serde::Deserialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::agents::{agent_actor, parse_id};
use crate::auth::Caller;
use crate::imports::Precondition;
use crate::periodic::Duty;
use crate::{Replayable, Service, page_window, paginate};
use ferry_core::error::{ErrorCode, Result};
use ferry_core::model::{
    Action, Cluster, Discovery, DiscoveryReceipt, DiscoveryState, DiscoveryTrigger,
    InventoryDocument, Page, PageParams, Role, Task, TaskState,
};
use ferry_store::NewTask;

/// The `created_by` of scheduled discoveries and their tasks.
pub const DISCOVERY_ACTOR: &str = "discovery";

/// How often the schedule looks for due discoveries and unsettled ones.
const SCHEDULE_TICK: Duration = Duration::from_secs(15);

/// Unsettled discoveries one sweep settles at most.
const SETTLE_BATCH: u32 = 100;

/// How long after its task ended a discovery is left to the replica that applied the result:
/// that one imports it at once, and a reader or the sweep importing it too would only do the
/// work twice. Longer than the import of a large cluster takes.
const SETTLE_GRACE: chrono::TimeDelta = chrono::TimeDelta::minutes(2);

impl Replayable for Discovery {
    fn for_replay(&self) -> Self {
        self.clone()
    }
}

impl Service {
    /// `POST /v1/clusters/{id}/discover`: one discovery on a connected agent of the cluster, or
    /// on the first one to connect.
    pub async fn discover(&self, caller: &Caller, cluster: &str) -> Result<Discovery> {
        self.audited(
            caller,
            Role::Operator,
            "cluster.discover",
            format!("cluster:{cluster}"),
            async {
                let cluster = self.store.get_cluster(cluster).await?;
                self.start_discovery(&cluster, DiscoveryTrigger::Operator, &caller.name)
                    .await
            },
        )
        .await
    }

    /// Stores a discovery with its task, and hands the task to an agent connected here, or
    /// tells the replicas one waits.
    async fn start_discovery(
        &self,
        cluster: &Cluster,
        trigger: DiscoveryTrigger,
        created_by: &str,
    ) -> Result<Discovery> {
        let task_id = Uuid::now_v7();
        let placed = self.place_task(cluster.id, None, task_id);
        let mut discovery = Discovery {
            id: Uuid::now_v7(),
            cluster_id: cluster.id,
            cluster: cluster.name.clone(),
            state: DiscoveryState::Running,
            trigger,
            task_id: Some(task_id),
            snapshot: None,
            created: None,
            previous_snapshot: None,
            summary: None,
            error: None,
            created_by: created_by.to_owned(),
            created_at: Utc::now(),
            completed_at: None,
        };
        let task = self
            .store
            .create_discovery(
                &discovery,
                &NewTask {
                    cluster_id: cluster.id,
                    node: "",
                    agent_id: placed.map(|(agent, _)| agent),
                    action: &Action::ReadInventory {},
                    created_by,
                    id: Some(task_id),
                    lease_deadline: placed.map(|(_, lease)| lease),
                },
            )
            .await?;
        discovery.task_id = Some(task.id);
        self.hand_over(std::slice::from_ref(&task)).await;
        Ok(discovery)
    }

    /// `GET /v1/discoveries/{id}`.
    pub async fn get_discovery(&self, caller: &Caller, id: &str) -> Result<Discovery> {
        Self::require(caller, Role::Viewer)?;
        let discovery = self.store.get_discovery(parse_id("discovery", id)?).await?;
        self.settle_discovery(discovery, None).await
    }

    /// `GET /v1/clusters/{id}/discoveries`: newest first.
    pub async fn list_discoveries(
        &self,
        caller: &Caller,
        cluster: &str,
        page: &PageParams,
    ) -> Result<Page<Discovery>> {
        Self::require(caller, Role::Viewer)?;
        let (limit, before) = page_window(page)?;
        let before = before
            .map(|b| Uuid::parse_str(&b))
            .transpose()
            .map_err(|_| crate::invalid_cursor())?;
        let cluster = self.store.get_cluster(cluster).await?;
        let rows = self
            .store
            .list_discoveries(cluster.id, limit + 1, before)
            .await?;
        let mut settled = Vec::with_capacity(rows.len());
        for discovery in rows {
            settled.push(self.settle_discovery(discovery, None).await?);
        }
        Ok(paginate(settled, limit, |d| d.id.to_string()))
    }

    /// Settles the discovery `task` runs, if it runs one: called with a task whose result was
    /// just applied, so it is not read back.
    pub(crate) async fn discovery_task_finished(&self, task: Task) {
        if !matches!(task.action, Action::ReadInventory {}) {
            return;
        }
        let discovery = match self.store.discovery_of_task(task.id).await {
            Ok(Some(discovery)) => discovery,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(task = %task.id, error = %e, "could not look up a discovery; the schedule's sweep settles it");
                return;
            }
        };
        let id = discovery.id;
        if let Err(e) = self.settle_discovery(discovery, Some(task)).await {
            tracing::warn!(discovery = %id, error = %e, "could not settle a discovery; the schedule's sweep settles it");
        }
    }

    /// A running discovery whose task has ended, imported (or failed) and stored; any other as
    /// it is. `task` is the discovery's task when the caller has it already.
    async fn settle_discovery(
        &self,
        mut discovery: Discovery,
        task: Option<Task>,
    ) -> Result<Discovery> {
        let (DiscoveryState::Running, Some(task_id)) = (discovery.state, discovery.task_id) else {
            return Ok(discovery);
        };
        let task = match task {
            Some(task) => Some(task),
            None => match self.store.get_task(task_id).await {
                // The replica that applied the result is importing it.
                Ok(task) if task.updated_at > Utc::now() - SETTLE_GRACE => {
                    return Ok(discovery);
                }
                Ok(task) => Some(task),
                Err(e) if e.code == ErrorCode::NotFound => None,
                Err(e) => return Err(e),
            },
        };
        let Some(task) = task else {
            return self
                .finish(
                    discovery,
                    Err("the task reading the inventory is gone (its agent was deleted)".into()),
                )
                .await;
        };
        let outcome = match task.state {
            TaskState::Pending | TaskState::Assigned | TaskState::Running => {
                return Ok(discovery);
            }
            TaskState::Succeeded => {
                let result = task.result.unwrap_or_default();
                // The result of the replica that imported the inventory as it arrived; an
                // inventory kept whole is from a server before receipts, imported here.
                match DiscoveryReceipt::deserialize(&result) {
                    Ok(receipt) => Ok(receipt),
                    Err(_) => {
                        let actor = task
                            .agent_id
                            .map_or_else(|| DISCOVERY_ACTOR.to_owned(), agent_actor);
                        self.import_kept_inventory(&discovery, &actor, result)
                            .await?
                    }
                }
            }
            TaskState::Failed | TaskState::Lost | TaskState::Cancelled => {
                let why = task.error.map_or_else(
                    || format!("the task ended {}", task.state.as_str()),
                    |e| format!("{}: {}", e.kind, e.message),
                );
                Err(format!("reading the inventory failed: {why}"))
            }
        };
        match outcome {
            Ok(receipt) => {
                discovery.snapshot = Some(receipt.snapshot);
                discovery.created = Some(receipt.created);
                discovery.previous_snapshot = receipt.previous_snapshot;
                discovery.summary = receipt.summary;
                self.finish(discovery, Ok(())).await
            }
            Err(why) => self.finish(discovery, Err(why)).await,
        }
    }

    /// Imports an inventory a task kept as its result, audited as `actor`.
    async fn import_kept_inventory(
        &self,
        discovery: &Discovery,
        actor: &str,
        result: serde_json::Value,
    ) -> Result<std::result::Result<DiscoveryReceipt, String>> {
        match serde_json::from_value::<InventoryDocument>(result) {
            Ok(document) => {
                self.import_discovered_inventory(discovery, actor, None, document)
                    .await
            }
            Err(e) => Ok(Err(format!("the agent's inventory could not be read: {e}"))),
        }
    }

    /// Imports a discovery's inventory as the cluster's next snapshot, audited as `actor`
    /// (`inventory.discover`). An unreachable database is an error (the agent offers its
    /// result again, or the next look tries again); a refused inventory is why the discovery
    /// failed.
    pub(crate) async fn import_discovered_inventory(
        &self,
        discovery: &Discovery,
        actor: &str,
        source: Option<String>,
        document: InventoryDocument,
    ) -> Result<std::result::Result<DiscoveryReceipt, String>> {
        let result = self
            .import_document(
                actor,
                &discovery.cluster_id.to_string(),
                document,
                Precondition::None,
            )
            .await;
        self.audit(
            actor,
            source,
            "inventory.discover",
            format!("cluster:{}", discovery.cluster),
            &result,
        )
        .await;
        match result {
            Ok(imported) => Ok(Ok(imported.into())),
            Err(e) if e.code == ErrorCode::Unavailable => Err(e),
            Err(e) => Ok(Err(format!("the inventory could not be imported: {e}"))),
        }
    }

    /// Stores how a discovery ended; the answer another settler stored first wins.
    async fn finish(
        &self,
        mut discovery: Discovery,
        outcome: std::result::Result<(), String>,
    ) -> Result<Discovery> {
        discovery.completed_at = Some(Utc::now());
        match outcome {
            Ok(()) => discovery.state = DiscoveryState::Completed,
            Err(why) => {
                tracing::warn!(discovery = %discovery.id, cluster = %discovery.cluster, "discovery failed: {why}");
                discovery.state = DiscoveryState::Failed;
                discovery.error = Some(why);
            }
        }
        if self.store.finish_discovery(&discovery).await? {
            Ok(discovery)
        } else {
            self.store.get_discovery(discovery.id).await
        }
    }

    /// One pass of the schedule: settles discoveries a crash left running, then starts the
    /// periodic discovery of every cluster that is due (this replica's claim won), unless one of
    /// that cluster is still running. `default_interval` is the server's `discovery_interval`;
    /// zero turns the schedule off for clusters without their own.
    pub async fn discovery_pass(&self, default_interval: Duration) -> Result<u32> {
        for discovery in self.store.unsettled_discoveries(SETTLE_BATCH).await? {
            let id = discovery.id;
            if let Err(e) = self.settle_discovery(discovery, None).await {
                tracing::warn!(discovery = %id, error = %e, "could not settle a discovery; retrying");
            }
        }
        let mut started = 0;
        let now = Utc::now();
        for (cluster_id, own) in self.store.clusters_due_for_discovery(now).await? {
            let interval = own.map_or(default_interval, Duration::from_secs);
            if interval.is_zero() {
                continue;
            }
            // Own intervals are at most a year; the server's could be anything it was given.
            let next = chrono::Duration::from_std(interval)
                .ok()
                .and_then(|interval| now.checked_add_signed(interval))
                .unwrap_or(chrono::DateTime::<Utc>::MAX_UTC);
            if !self.store.claim_discovery(cluster_id, now, next).await? {
                continue;
            }
            if self.store.discovery_running(cluster_id).await? {
                tracing::debug!(cluster = %cluster_id, "periodic discovery skipped: one is still running");
                continue;
            }
            let cluster = match self.store.get_cluster(&cluster_id.to_string()).await {
                Ok(cluster) => cluster,
                Err(e) if e.code == ErrorCode::NotFound => continue,
                Err(e) => return Err(e),
            };
            let discovery = self
                .start_discovery(&cluster, DiscoveryTrigger::Schedule, DISCOVERY_ACTOR)
                .await?;
            tracing::info!(cluster = %cluster.name, discovery = %discovery.id, "periodic discovery started");
            started += 1;
        }
        Ok(started)
    }
}

/// Runs the discovery schedule until `stopped` turns true.
pub fn start_schedule(
    service: Service,
    default_interval: Duration,
    mut stopped: watch::Receiver<bool>,
) -> JoinHandle<anyhow::Result<()>> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SCHEDULE_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stopped.wait_for(|s| *s) => break,
            }
            if !service
                .claim_period(Duty::DiscoverySchedule, SCHEDULE_TICK)
                .await
            {
                continue;
            }
            if let Err(e) = service.discovery_pass(default_interval).await {
                tracing::warn!(error = %e, "discovery schedule pass failed; retrying");
            }
        }
        Ok(())
    })
}
