//! Cluster drivers: every failover-cluster operation an agent performs goes through
//! [`ClusterDriver`].
//!
//! Two implementations exist: [`sim::SimDriver`], a simulated cluster whose state lives in a JSON
//! file (or in memory) so the demo and the tests do real work without Windows, and
//! [`powershell::PowerShellDriver`], which runs the FailoverClusters cmdlets.
//!
//! Delivery of tasks to agents is at-least-once, so every operation is idempotent or checks
//! before it acts: onlining an online group changes nothing, adding a disk that is already in the
//! group succeeds, migrating a group that already exists on the target reports what is there.
//!
//! Well-known resource property keys, the same for every driver (drivers may add others):
//!
//! | kind | keys |
//! | --- | --- |
//! | `network_name` | `dns_name`, `require_kerberos` |
//! | `ip_address` | `address`, `subnet_mask` |
//! | `physical_disk` | `disk` (disk name), `signature`, `drive_letter`, `cluster` (cluster whose storage it is) |
//! | `file_server` | `network_name` |
//! | `file_share` | `share_name`, `path` |

pub mod powershell;
pub mod sim;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::model::{
    Disk, Group, InventoryDocument, NetworkRole, OsGeneration, Processor, Resource, ResourceKind,
    ResourceState,
};

/// What went wrong, in terms a retry policy can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The group, resource, disk or cluster does not exist.
    NotFound,
    /// The request contradicts current state (already exists elsewhere, in use, online).
    Conflict,
    /// Worth retrying as is, e.g. the Kerberos first online of a migrated network name.
    Transient,
    /// The operation ran and failed; retrying unchanged will fail again.
    Failed,
    Timeout,
    /// This driver or this cluster pair cannot do it at all.
    Unsupported,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Transient => "transient",
            ErrorKind::Failed => "failed",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Unsupported => "unsupported",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            ErrorKind::NotFound,
            ErrorKind::Conflict,
            ErrorKind::Transient,
            ErrorKind::Failed,
            ErrorKind::Timeout,
            ErrorKind::Unsupported,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Failure of a driver operation. The message is for humans (operators read it in job logs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("transient failure (retry): {0}")]
    Transient(String),
    #[error("failed: {0}")]
    Failed(String),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("unsupported: {0}")]
    Unsupported(String),
}

impl DriverError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        let message = message.into();
        match kind {
            ErrorKind::NotFound => DriverError::NotFound(message),
            ErrorKind::Conflict => DriverError::Conflict(message),
            ErrorKind::Transient => DriverError::Transient(message),
            ErrorKind::Failed => DriverError::Failed(message),
            ErrorKind::Timeout => DriverError::Timeout(message),
            ErrorKind::Unsupported => DriverError::Unsupported(message),
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            DriverError::NotFound(_) => ErrorKind::NotFound,
            DriverError::Conflict(_) => ErrorKind::Conflict,
            DriverError::Transient(_) => ErrorKind::Transient,
            DriverError::Failed(_) => ErrorKind::Failed,
            DriverError::Timeout(_) => ErrorKind::Timeout,
            DriverError::Unsupported(_) => ErrorKind::Unsupported,
        }
    }

    /// The human message without the kind prefix.
    pub fn message(&self) -> &str {
        match self {
            DriverError::NotFound(m)
            | DriverError::Conflict(m)
            | DriverError::Transient(m)
            | DriverError::Failed(m)
            | DriverError::Timeout(m)
            | DriverError::Unsupported(m) => m,
        }
    }

    /// Whether running the same operation again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind(), ErrorKind::Transient | ErrorKind::Timeout)
    }
}

/// Why one resource did not reach the state asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceError {
    pub kind: ErrorKind,
    pub message: String,
}

/// What an offline or online did to one resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceOutcome {
    pub resource: String,
    pub kind: ResourceKind,
    /// State after the operation.
    pub state: ResourceState,
    /// False when the resource already was in the state asked for.
    pub changed: bool,
    pub error: Option<ResourceError>,
}

/// What an offline or online did to a group, resource by resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupOutcome {
    pub group: String,
    pub owner_node: Option<String>,
    /// Group state after the operation.
    pub state: ResourceState,
    pub resources: Vec<ResourceOutcome>,
}

impl GroupOutcome {
    /// True when any resource changed state.
    pub fn changed(&self) -> bool {
        self.resources.iter().any(|r| r.changed)
    }

    pub fn failures(&self) -> impl Iterator<Item = &ResourceOutcome> {
        self.resources.iter().filter(|r| r.error.is_some())
    }

    /// The outcome when every resource reached its state, else an error a retry policy can use:
    /// `Transient` when every failure was transient (retrying the operation is the cure),
    /// otherwise the kind of the first non-transient failure.
    pub fn into_result(self) -> Result<Self, DriverError> {
        let failures: Vec<&ResourceOutcome> = self.failures().collect();
        if failures.is_empty() {
            return Ok(self);
        }
        let kind = failures
            .iter()
            .filter_map(|r| r.error.as_ref())
            .map(|e| e.kind)
            .find(|k| *k != ErrorKind::Transient)
            .unwrap_or(ErrorKind::Transient);
        let detail: Vec<String> = failures
            .iter()
            .map(|r| {
                let message = r.error.as_ref().map(|e| e.message.as_str()).unwrap_or("");
                format!("{}: {message}", r.resource)
            })
            .collect();
        Err(DriverError::new(
            kind,
            format!(
                "group {} is {}: {}",
                self.group,
                self.state.as_str(),
                detail.join("; ")
            ),
        ))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationStatus {
    Migrated,
    Lost,
}

/// What a migration did with one resource of the source group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceMigration {
    /// Name on the source cluster.
    pub resource: String,
    pub kind: ResourceKind,
    pub status: MigrationStatus,
    /// Name on the target when migrated; differs from `resource` when the name was taken there.
    pub target_name: Option<String>,
    /// Why it was lost.
    pub reason: Option<String>,
}

/// Result of migrating a group's configuration from another cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationReport {
    pub group: String,
    pub source_cluster: String,
    pub source_os: Option<OsGeneration>,
    pub target_os: Option<OsGeneration>,
    /// The group already existed on the target: nothing was changed, the report describes it.
    pub already_present: bool,
    pub resources: Vec<ResourceMigration>,
    pub shares_migrated: Vec<String>,
    pub shares_lost: Vec<String>,
}

impl MigrationReport {
    pub fn migrated(&self) -> impl Iterator<Item = &ResourceMigration> {
        self.resources
            .iter()
            .filter(|r| r.status == MigrationStatus::Migrated)
    }

    pub fn lost(&self) -> impl Iterator<Item = &ResourceMigration> {
        self.resources
            .iter()
            .filter(|r| r.status == MigrationStatus::Lost)
    }

    /// True when every resource and every share came across.
    pub fn complete(&self) -> bool {
        self.lost().next().is_none() && self.shares_lost.is_empty()
    }
}

/// What [`ClusterDriver::replace_disk_resource`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskReplacement {
    /// The group's physical disk resource now.
    pub resource: String,
    /// Physical disk resources taken out of the group (and deleted).
    pub removed: Vec<String>,
    /// Resources whose dependency moved from a removed disk resource to `resource`.
    pub repointed: Vec<String>,
}

// ---- configuration facts ------------------------------------------------------------------------

/// Configuration facts the validation rules judge (third field note). `None` means the driver could
/// not tell, which the rules report as "unknown" rather than pass or fail.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct ConfigFacts {
    pub cluster: Option<String>,
    pub os: Option<OsGeneration>,
    pub networks: Vec<NetworkFacts>,
    pub nodes: Vec<NodeFacts>,
    pub csv_volumes: Vec<CsvVolumeFacts>,
    pub quorum: Option<QuorumFacts>,
    /// An SMB bandwidth limit (QoS policy) caps live migration traffic, which the field note asks
    /// for when no network is dedicated to live migration.
    #[serde(default)]
    pub live_migration_qos: Option<bool>,
}

impl ConfigFacts {
    /// The network carrying CSV traffic: the one with the CSV role, else the cluster-only network
    /// with the lowest metric (CSV uses the highest-priority network).
    pub fn csv_network(&self) -> Option<&NetworkFacts> {
        self.networks
            .iter()
            .find(|n| n.role == NetworkRole::Csv)
            .or_else(|| {
                self.networks
                    .iter()
                    .filter(|n| n.role == NetworkRole::Cluster)
                    .min_by_key(|n| n.metric)
            })
    }

    pub fn live_migration_network(&self) -> Option<&NetworkFacts> {
        self.networks
            .iter()
            .find(|n| n.role == NetworkRole::LiveMigration)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NetworkFacts {
    pub name: String,
    pub role: NetworkRole,
    /// Lower is higher priority.
    pub metric: i64,
    pub auto_metric: Option<bool>,
    pub subnet: String,
    pub ipsec_enabled: Option<bool>,
    pub client_for_microsoft_networks: Option<bool>,
    pub file_and_printer_sharing: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NodeFacts {
    pub name: String,
    pub processor: Processor,
    pub virtual_switches: Vec<String>,
    pub ntlm_enabled: Option<bool>,
    pub hbas: Vec<HbaFacts>,
    /// Hyper-V processor compatibility ("migrate to a physical computer with a different processor
    /// version") is on for the node's virtual machines, which lets them live-migrate between
    /// different processor models of one manufacturer.
    #[serde(default)]
    pub processor_compatibility: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HbaFacts {
    pub model: String,
    pub driver_version: String,
    pub firmware_version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CsvVolumeFacts {
    pub name: String,
    /// e.g. `C:\ClusterStorage\Volume1`.
    pub path: String,
    pub size_bytes: i64,
    pub free_bytes: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuorumType {
    NodeMajority,
    NodeAndDiskMajority,
    NodeAndFileShareMajority,
    DiskOnly,
    /// Dynamic quorum (2012 R2 and later): `Majority` with a witness chosen by the cluster.
    Majority,
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct QuorumFacts {
    pub quorum_type: QuorumType,
    pub node_count: u32,
}

// ---- performance counters -----------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PerfSource {
    ClusterNode,
    /// The storage server behind the volumes (the iSCSI target of the second field note).
    StorageServer,
}

/// Disk counters of one volume as seen from one machine, per second unless named otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeCounters {
    pub node: String,
    pub source: PerfSource,
    pub volume: String,
    /// A cluster shared volume, which every node reaches (and where redirected I/O can show).
    #[serde(default)]
    pub csv: bool,
    pub reads_per_sec: f64,
    pub writes_per_sec: f64,
    pub transfers_per_sec: f64,
    pub read_bytes_per_sec: f64,
    pub write_bytes_per_sec: f64,
    pub avg_latency_ms: f64,
    pub queue_depth: f64,
    /// CSV I/O this node sends through the coordinator instead of to the disk.
    pub redirected_reads_per_sec: f64,
    pub redirected_writes_per_sec: f64,
}

/// All counters of a cluster at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerfSnapshot {
    pub at: DateTime<Utc>,
    pub cluster: String,
    pub counters: Vec<VolumeCounters>,
}

// ---- the trait ----------------------------------------------------------------------------------

/// Every cluster operation an agent performs. Names compare case-insensitively, as on Windows.
#[async_trait]
pub trait ClusterDriver: Send + Sync {
    /// Short driver name for logs: `sim`, `powershell`.
    fn driver_name(&self) -> &'static str;

    /// Every role group (not the core cluster groups) with its resources, their dependencies and
    /// its shares.
    async fn list_groups(&self) -> Result<Vec<Group>, DriverError>;

    /// One group, `NotFound` when absent.
    async fn group(&self, name: &str) -> Result<Group, DriverError> {
        self.list_groups()
            .await?
            .into_iter()
            .find(|g| g.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| DriverError::NotFound(format!("group {name} does not exist")))
    }

    /// The whole inventory: nodes, networks, disks, groups.
    async fn inventory(&self) -> Result<InventoryDocument, DriverError>;

    /// Takes every resource of the group offline, dependents first.
    async fn offline_group(&self, group: &str) -> Result<GroupOutcome, DriverError>;

    /// Brings the group online, dependencies first. Resources that fail are reported in the
    /// outcome (the call itself succeeds); [`GroupOutcome::into_result`] turns them into an error.
    async fn online_group(&self, group: &str) -> Result<GroupOutcome, DriverError>;

    /// Copies a group's configuration from `source_cluster` to this cluster, as the Cluster
    /// Migration Wizard does. The group arrives offline.
    async fn migrate_group(
        &self,
        source_cluster: &str,
        group: &str,
    ) -> Result<MigrationReport, DriverError>;

    /// Puts a cluster disk (from available storage) into the group as a physical disk resource.
    async fn add_disk_resource(&self, group: &str, disk: &str) -> Result<Resource, DriverError>;

    /// Deletes an offline resource of the group; `Ok(false)` when it was already gone.
    async fn remove_resource(&self, group: &str, resource: &str) -> Result<bool, DriverError>;

    /// Replaces the resource's dependencies with `depends_on` (all required).
    async fn set_dependencies(
        &self,
        group: &str,
        resource: &str,
        depends_on: &[String],
    ) -> Result<Resource, DriverError>;

    /// Gives a cluster disk a drive letter such as `F:`.
    async fn assign_drive_letter(&self, disk: &str, letter: &str) -> Result<Disk, DriverError>;

    /// Finds a disk no group holds and gives it `letter`, for a migrated group to land on (the
    /// interim cluster's prepared disk). A free disk that already has the letter is the answer
    /// (a retry); the letter on a disk some group holds is a `Conflict` naming the group; no free
    /// disk at all is `NotFound`.
    async fn prepare_disk(&self, letter: &str) -> Result<Disk, DriverError>;

    /// Makes `disk` (a disk of this cluster) the group's only physical disk resource, lettered
    /// `letter`: adds it when absent, moves every dependency on the group's other physical disk
    /// resources to it, then deletes those (a migrated group still names the source's disk).
    /// Running it again changes nothing.
    async fn replace_disk_resource(
        &self,
        group: &str,
        disk: &str,
        letter: &str,
    ) -> Result<DiskReplacement, DriverError>;

    /// Deletes the group with its resources; `Ok(false)` when it does not exist. A group with any
    /// resource online is a `Conflict`: deleting a serving group is never what a retry meant.
    async fn remove_group(&self, group: &str) -> Result<bool, DriverError>;

    async fn config_facts(&self) -> Result<ConfigFacts, DriverError>;

    /// Disk counters at `at`, or `None` when this driver has no counter source (the agent's own
    /// sampler reads the machine's counters then).
    async fn perf_counters(&self, at: DateTime<Utc>) -> Result<Option<PerfSnapshot>, DriverError>;
}

/// Drive letters are written `F:`; accepts `f`, `f:`, `F:\`.
pub fn normalize_drive_letter(letter: &str) -> Result<String, DriverError> {
    let trimmed = letter.trim().trim_end_matches('\\');
    let mut chars = trimmed.chars();
    let first = chars.next();
    let rest: String = chars.collect();
    match first {
        Some(c) if c.is_ascii_alphabetic() && (rest.is_empty() || rest == ":") => {
            Ok(format!("{}:", c.to_ascii_uppercase()))
        }
        _ => Err(DriverError::Failed(format!(
            "`{letter}` is not a drive letter; write it like `F:`"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(errors: &[Option<ErrorKind>]) -> GroupOutcome {
        GroupOutcome {
            group: "FS1".into(),
            owner_node: None,
            state: ResourceState::PartialOnline,
            resources: errors
                .iter()
                .enumerate()
                .map(|(i, e)| ResourceOutcome {
                    resource: format!("r{i}"),
                    kind: ResourceKind::Generic,
                    state: if e.is_some() {
                        ResourceState::Failed
                    } else {
                        ResourceState::Online
                    },
                    changed: true,
                    error: e.map(|kind| ResourceError {
                        kind,
                        message: "boom".into(),
                    }),
                })
                .collect(),
        }
    }

    #[test]
    fn outcome_result_kind_follows_failures() {
        assert!(outcome(&[None, None]).into_result().is_ok());
        let err = outcome(&[None, Some(ErrorKind::Transient)])
            .into_result()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Transient);
        assert!(err.is_retryable());
        assert!(err.message().contains("r1: boom"), "{err}");
        let err = outcome(&[Some(ErrorKind::Transient), Some(ErrorKind::Failed)])
            .into_result()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Failed);
        assert!(!err.is_retryable());
    }

    #[test]
    fn error_kinds_round_trip() {
        for kind in [
            ErrorKind::NotFound,
            ErrorKind::Conflict,
            ErrorKind::Transient,
            ErrorKind::Failed,
            ErrorKind::Timeout,
            ErrorKind::Unsupported,
        ] {
            let err = DriverError::new(kind, "m");
            assert_eq!(err.kind(), kind);
            assert_eq!(err.message(), "m");
            assert_eq!(ErrorKind::parse(kind.as_str()), Some(kind));
        }
    }

    #[test]
    fn drive_letters_normalize() {
        assert_eq!(normalize_drive_letter("f").unwrap(), "F:");
        assert_eq!(normalize_drive_letter("g:").unwrap(), "G:");
        assert_eq!(normalize_drive_letter("H:\\").unwrap(), "H:");
        assert!(normalize_drive_letter("FF:").is_err());
        assert!(normalize_drive_letter("1:").is_err());
        assert!(normalize_drive_letter("").is_err());
    }
}
