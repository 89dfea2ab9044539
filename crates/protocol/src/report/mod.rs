//! The typed reports tasks answer with. Executors answer with JSON (the agent's `Executor`
//! contract, which test executors implement too), and the server stores and serves JSON. In
//! between, on the wire, a report is typed: [`TaskReport`] reads an executor's JSON as the report
//! of the task's action, `convert::report` carries it as its message and back, so the JSON shape
//! has one definition: these structs.

pub mod actions;
pub mod driver;
pub mod perf;
pub mod skeleton;

use serde::Serialize;
use serde::de::DeserializeOwned;

use ferry_core::model::{Action, Disk, Group, InventoryDocument, Resource, facts::ConfigFacts};

pub use actions::{
    AclSummary, EchoReport, GroupRemovedReport, RemovedReport, ScannedResource, ScannedShare,
    ShareScanReport,
};
pub use driver::{DiskReplacement, GroupOutcome, MigrationReport};
pub use skeleton::{SkeletonReport, Verification};

/// Every report the built-in executors produce, one variant per `Succeeded.report` case.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskReport {
    Skeleton(SkeletonReport),
    ShareScan(ShareScanReport),
    Groups(Vec<Group>),
    GroupOutcome(GroupOutcome),
    Migration(MigrationReport),
    Resource(Resource),
    Removed(RemovedReport),
    Disk(Disk),
    Facts(ConfigFacts),
    Echo(EchoReport),
    Inventory(InventoryDocument),
    DiskReplacement(DiskReplacement),
    GroupRemoved(GroupRemovedReport),
}

impl TaskReport {
    /// Reads an executor's JSON report as the report of `action`. The match is exhaustive, so a
    /// new action does not compile until it has a report here (and so on the wire).
    pub fn from_json(action: &Action, value: serde_json::Value) -> Result<Self, serde_json::Error> {
        fn read<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, serde_json::Error> {
            serde_json::from_value(value)
        }
        Ok(match action {
            Action::SkeletonCopy { .. } => TaskReport::Skeleton(read(value)?),
            Action::ShareScan { .. } => TaskReport::ShareScan(read(value)?),
            Action::ListGroups {} => TaskReport::Groups(read(value)?),
            Action::OfflineGroup { .. } | Action::OnlineGroup { .. } => {
                TaskReport::GroupOutcome(read(value)?)
            }
            Action::MigrateGroup { .. } => TaskReport::Migration(read(value)?),
            Action::AddDiskResource { .. } | Action::SetDependency { .. } => {
                TaskReport::Resource(read(value)?)
            }
            Action::RemoveResource { .. } => TaskReport::Removed(read(value)?),
            Action::AssignDriveLetter { .. } | Action::PrepareDisk { .. } => {
                TaskReport::Disk(read(value)?)
            }
            Action::GatherFacts {} => TaskReport::Facts(read(value)?),
            Action::Echo { .. } => TaskReport::Echo(read(value)?),
            Action::ReadInventory {} | Action::ReadStorage { .. } => {
                TaskReport::Inventory(read(value)?)
            }
            Action::ReplaceDiskResource { .. } => TaskReport::DiskReplacement(read(value)?),
            Action::RemoveGroup { .. } => TaskReport::GroupRemoved(read(value)?),
        })
    }

    /// The report as its executor serializes it: what the server stores and REST serves.
    pub fn to_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        fn write(value: &impl Serialize) -> Result<serde_json::Value, serde_json::Error> {
            serde_json::to_value(value)
        }
        match self {
            TaskReport::Skeleton(r) => write(r),
            TaskReport::ShareScan(r) => write(r),
            TaskReport::Groups(r) => write(r),
            TaskReport::GroupOutcome(r) => write(r),
            TaskReport::Migration(r) => write(r),
            TaskReport::Resource(r) => write(r),
            TaskReport::Removed(r) => write(r),
            TaskReport::Disk(r) => write(r),
            TaskReport::Facts(r) => write(r),
            TaskReport::Echo(r) => write(r),
            TaskReport::Inventory(r) => write(r),
            TaskReport::DiskReplacement(r) => write(r),
            TaskReport::GroupRemoved(r) => write(r),
        }
    }
}
