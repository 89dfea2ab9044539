//! The reports of the built-in actions that are not a driver's answer as it stands: `echo`,
//! `remove_resource`, `remove_group` and the share scan with each folder's ACL.

use serde::{Deserialize, Serialize};

use ferry_core::model::{ResourceKind, ResourceState, Share};

/// The report of `echo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EchoReport {
    pub text: String,
    pub slept_ms: u64,
}

/// The report of `remove_resource`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedReport {
    pub group: String,
    pub resource: String,
    /// False when the resource was already gone.
    pub removed: bool,
}

/// A share as the driver reports it, with the file-system ACL of its folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScannedShare {
    #[serde(flatten)]
    pub share: Share,
    pub acl: Option<AclSummary>,
    /// Why the folder's ACL could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acl_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShareScanReport {
    pub group: String,
    pub shares: Vec<ScannedShare>,
    /// The group's resources: verification checks the network name is online and finds the
    /// disk resource here. Absent in reports of older agents.
    #[serde(default)]
    pub resources: Vec<ScannedResource>,
}

/// A resource of a scanned group, as far as verification needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScannedResource {
    pub name: String,
    pub kind: ResourceKind,
    pub state: ResourceState,
}

/// The report of `remove_group`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRemovedReport {
    /// False when the group did not exist.
    pub removed: bool,
}

/// Ownership and permissions of a share's folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclSummary {
    pub path: String,
    pub uid: u32,
    pub gid: u32,
    /// Permission bits, e.g. `0o755` as 493.
    pub mode: u32,
    /// Entries of the POSIX access ACL, when the folder has one beyond its mode bits.
    pub posix_acl_entries: Option<u32>,
}
