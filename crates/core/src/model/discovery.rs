//! Discovery: an agent of a cluster reads the whole cluster (nodes, networks, disks, groups with
//! their resources and dependencies, shares with their permissions), and the server imports what
//! it read as the cluster's next snapshot, exactly as a `PUT` of the same document would.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::diff::ChangeSummary;

/// Where a discovery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DiscoveryState {
    /// Its task waits for an agent of the cluster, or runs.
    Running,
    /// The inventory was read and imported (a new snapshot, or the newest one unchanged).
    Completed,
    /// Reading or importing failed; `error` says why.
    Failed,
}

impl DiscoveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DiscoveryState::Running => "running",
            DiscoveryState::Completed => "completed",
            DiscoveryState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            DiscoveryState::Running,
            DiscoveryState::Completed,
            DiscoveryState::Failed,
        ]
        .into_iter()
        .find(|state| state.as_str() == s)
    }
}

/// Who asked for a discovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DiscoveryTrigger {
    /// `POST /v1/clusters/{id}/discover`.
    Operator,
    /// The cluster's periodic discovery (`discovery_interval`).
    Schedule,
}

impl DiscoveryTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            DiscoveryTrigger::Operator => "operator",
            DiscoveryTrigger::Schedule => "schedule",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [DiscoveryTrigger::Operator, DiscoveryTrigger::Schedule]
            .into_iter()
            .find(|trigger| trigger.as_str() == s)
    }
}

/// `GET /v1/discoveries/{id}`: one discovery and, once it has ended, what it produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Discovery {
    pub id: Uuid,
    pub cluster_id: Uuid,
    /// The cluster's name.
    pub cluster: String,
    pub state: DiscoveryState,
    pub trigger: DiscoveryTrigger,
    /// The `read_inventory` task an agent of the cluster runs.
    pub task_id: Option<Uuid>,
    /// The snapshot the discovery produced, or the newest one when nothing changed.
    pub snapshot: Option<i64>,
    /// True when the discovery stored a new snapshot; false when the cluster was unchanged.
    pub created: Option<bool>,
    /// The snapshot the new one is compared with, if there was one.
    pub previous_snapshot: Option<i64>,
    /// What changed against `previous_snapshot`: added, removed and changed groups, shares and
    /// permission entries (and everything else).
    pub summary: Option<ChangeSummary>,
    pub error: Option<String>,
    /// The token (or `discovery` for the schedule) that asked for it.
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// The result a discovery's task keeps: where its inventory went, not the inventory itself (that
/// is the snapshot), so a task row stays small however large the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryReceipt {
    /// The snapshot the inventory was imported as, or the newest one when nothing changed.
    pub snapshot: i64,
    /// True when the import stored a new snapshot.
    pub created: bool,
    pub previous_snapshot: Option<i64>,
    pub summary: Option<ChangeSummary>,
}

/// The body of `POST /v1/clusters/{id}/discover`: nothing to choose yet, so an empty object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDiscovery {}

/// The event kind of a snapshot that differs from the one before it.
pub const INVENTORY_CHANGED: &str = "inventory.changed";

/// The event kind of a finding a running job learned (its source drifted, say).
pub const JOB_FINDING: &str = "finding";

/// The data of an `inventory.changed` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InventoryChange {
    pub cluster_id: Uuid,
    pub cluster: String,
    pub snapshot: i64,
    pub previous_snapshot: i64,
    /// Who imported it: a token's name, or `agent:<id>` for an agent's report or discovery.
    pub by: String,
    pub summary: ChangeSummary,
}
