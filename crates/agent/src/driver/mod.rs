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

use std::path::PathBuf;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use ferry_core::model::facts::{
    ConfigFacts, CsvVolumeFacts, HbaFacts, NetworkFacts, NodeFacts, QuorumFacts, QuorumType,
};
pub use ferry_protocol::report::driver::{
    DiskReplacement, DriverError, ErrorKind, GroupOutcome, MigrationReport, MigrationStatus,
    ResourceError, ResourceMigration, ResourceOutcome, normalize_drive_letter,
};
pub use ferry_protocol::report::perf::{PerfSnapshot, PerfSource, VolumeCounters};

use ferry_core::model::{Disk, Group, InventoryDocument, Resource};

/// Every cluster operation an agent performs. Names compare case-insensitively, as on Windows.
#[async_trait]
pub trait ClusterDriver: Send + Sync {
    /// Short driver name for logs: `sim`, `powershell`.
    fn driver_name(&self) -> &'static str;

    /// The name of the cluster this driver reads, when it knows it without asking the cluster:
    /// what an inventory report says it is of, so the server can refuse a report of a cluster
    /// the agent is not enrolled for. `None` leaves it to the agent's enrollment.
    fn cluster_name(&self) -> Option<String> {
        None
    }

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

    /// Where the Windows paths of one task (a skeleton copy's, a share scan's) are on this
    /// machine. A resolver per task rather than a call per path, so a driver that must read its
    /// cluster's state to answer reads it once for a whole scan. By default paths are taken as
    /// given: on a cluster node Windows resolves its own.
    fn local_paths(&self) -> Box<dyn LocalPaths> {
        Box::new(PathsAsGiven)
    }

    /// What an agent of this driver may touch when its configuration names nothing
    /// (`--allow-path`): the cluster's disks, as [`Self::local_paths`] reaches them on this
    /// machine (see [`crate::confine`]). Asked by a task that names paths, not before, since a
    /// driver may have to ask its cluster. None by default: an agent whose driver knows no disks
    /// touches no folder it was not told about.
    async fn default_roots(&self) -> Result<Vec<PathBuf>, DriverError> {
        Ok(Vec::new())
    }
}

/// Maps the Windows paths a task names (`F:\x`, `\\CLUSTER\F$\x`) onto this machine's folders.
/// Errors are messages for the task's report: the executor adds which path of the task it was.
/// Mapping says where a path is, not whether the agent may touch it: that is
/// [`crate::confine`]'s, after the mapping.
pub trait LocalPaths: Send + Sync {
    /// A skeleton copy's source or destination.
    fn copy_path(&self, path: &str) -> Result<PathBuf, String>;

    /// The folder of a share, from the share's path (`F:\Shares\Finance`).
    fn share_folder(&self, path: &str) -> Result<PathBuf, String>;
}

/// Paths as given: what a driver on a Windows node needs, where `F:\` and `\\CLUSTER\F$\` are
/// real; also what an agent with no cluster driver uses, whose tasks name local folders.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathsAsGiven;

impl LocalPaths for PathsAsGiven {
    fn copy_path(&self, path: &str) -> Result<PathBuf, String> {
        Ok(PathBuf::from(path))
    }

    fn share_folder(&self, path: &str) -> Result<PathBuf, String> {
        Ok(PathBuf::from(path))
    }
}
