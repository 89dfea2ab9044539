//! The state of one simulated cluster, as stored in `DIR/cluster.json`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use ferry_core::model::facts::{HbaFacts, QuorumType};
use ferry_core::model::{Group, NetworkRole, OsGeneration, Processor, Resource, ResourceKind};
use ferry_protocol::report::driver::ErrorKind;

use crate::perf::PerfModel;

/// Version of the state file layout; bumped when a change is not backward compatible.
pub const STATE_FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimState {
    pub format: u32,
    pub cluster: String,
    pub os: OsGeneration,
    /// Seed the cluster was generated from; the perf model derives its noise from it too.
    pub seed: u64,
    /// Network names of this cluster authenticate with Kerberos: a network name migrated in fails
    /// its first online (first field note).
    #[serde(default)]
    pub kerberos: bool,
    /// Drive letters may repeat across disks, as generated past the 21st lettered group: the
    /// simulator then does not refuse a letter another disk has. Only for scale runs; a real
    /// cluster refuses, and so does the simulator by default.
    #[serde(default)]
    pub letters_repeat: bool,
    pub nodes: Vec<SimNode>,
    pub networks: Vec<SimNetwork>,
    pub disks: Vec<SimDisk>,
    pub groups: Vec<Group>,
    pub quorum: QuorumType,
    #[serde(default)]
    pub perf: PerfModel,
    #[serde(default)]
    pub latency: LatencyConfig,
    #[serde(default)]
    pub faults: BTreeMap<SimOp, FaultSpec>,
    /// Network name resources whose next online fails once with a transient Kerberos error.
    #[serde(default)]
    pub kerberos_pending: BTreeSet<String>,
    /// File share resources migrated in that have not been online here yet. A 2008 cluster only
    /// hands a share to the next Migration Wizard once its file server has brought it online
    /// (first field note), so these are lost if the group moves on before an online.
    #[serde(default)]
    pub never_online: BTreeSet<String>,
    /// An SMB bandwidth limit caps live migration traffic (third field note: needed when no
    /// network is dedicated to live migration).
    #[serde(default)]
    pub live_migration_qos: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimNode {
    pub name: String,
    pub address: String,
    pub processor: Processor,
    #[serde(default)]
    pub virtual_switches: Vec<String>,
    #[serde(default = "yes")]
    pub ntlm_enabled: bool,
    #[serde(default)]
    pub hbas: Vec<HbaFacts>,
    /// Hyper-V processor compatibility for migration is on for the node's virtual machines; off
    /// by default, as in Hyper-V.
    #[serde(default)]
    pub processor_compatibility: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimNetwork {
    pub name: String,
    pub role: NetworkRole,
    pub metric: i64,
    #[serde(default = "yes")]
    pub auto_metric: bool,
    pub subnet: String,
    #[serde(default)]
    pub ipsec_enabled: bool,
    #[serde(default = "yes")]
    pub client_for_microsoft_networks: bool,
    #[serde(default = "yes")]
    pub file_and_printer_sharing: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimDisk {
    /// Cluster-wide name of the disk resource, e.g. `Cluster Disk 1`.
    pub name: String,
    /// Identifies the LUN: a disk presented to two clusters has the same signature on both.
    pub signature: String,
    pub drive_letter: Option<String>,
    pub size_bytes: i64,
    pub free_bytes: i64,
    #[serde(default)]
    pub csv: bool,
    /// Directory holding the disk's files when it is not this cluster's own `disks/<name>` (a LUN
    /// presented from another simulated cluster).
    #[serde(default)]
    pub backing: Option<PathBuf>,
}

/// Operations of the simulated cluster, as named in fault and latency settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SimOp {
    ListGroups,
    Inventory,
    OfflineGroup,
    OnlineGroup,
    MigrateGroup,
    AddDiskResource,
    RemoveResource,
    SetDependencies,
    AssignDriveLetter,
    ConfigFacts,
    PerfCounters,
    PrepareDisk,
    ReplaceDiskResource,
    RemoveGroup,
}

impl SimOp {
    pub const ALL: [SimOp; 14] = [
        SimOp::ListGroups,
        SimOp::Inventory,
        SimOp::OfflineGroup,
        SimOp::OnlineGroup,
        SimOp::MigrateGroup,
        SimOp::AddDiskResource,
        SimOp::RemoveResource,
        SimOp::SetDependencies,
        SimOp::AssignDriveLetter,
        SimOp::ConfigFacts,
        SimOp::PerfCounters,
        SimOp::PrepareDisk,
        SimOp::ReplaceDiskResource,
        SimOp::RemoveGroup,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SimOp::ListGroups => "list_groups",
            SimOp::Inventory => "inventory",
            SimOp::OfflineGroup => "offline_group",
            SimOp::OnlineGroup => "online_group",
            SimOp::MigrateGroup => "migrate_group",
            SimOp::AddDiskResource => "add_disk_resource",
            SimOp::RemoveResource => "remove_resource",
            SimOp::SetDependencies => "set_dependencies",
            SimOp::AssignDriveLetter => "assign_drive_letter",
            SimOp::ConfigFacts => "config_facts",
            SimOp::PerfCounters => "perf_counters",
            SimOp::PrepareDisk => "prepare_disk",
            SimOp::ReplaceDiskResource => "replace_disk_resource",
            SimOp::RemoveGroup => "remove_group",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.as_str() == s)
    }
}

impl std::fmt::Display for SimOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A fault armed on one operation, consumed by the calls it affects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum FaultSpec {
    /// The next `times` calls fail with `kind` without doing anything.
    Fail {
        times: u32,
        #[serde(default = "transient")]
        kind: ErrorKind,
        #[serde(default)]
        message: Option<String>,
    },
    /// Calls never answer: they wait until the driver's operation timeout (then `Timeout`) or until
    /// the caller gives up. `times: None` hangs every call until the fault is cleared.
    Hang {
        #[serde(default)]
        times: Option<u32>,
    },
}

fn transient() -> ErrorKind {
    ErrorKind::Transient
}

impl FaultSpec {
    pub fn fail(times: u32, kind: ErrorKind) -> Self {
        FaultSpec::Fail {
            times,
            kind,
            message: None,
        }
    }

    pub fn hang() -> Self {
        FaultSpec::Hang { times: None }
    }
}

/// How long each operation takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyConfig {
    pub default_ms: u64,
    #[serde(default)]
    pub per_op: BTreeMap<SimOp, u64>,
}

impl Default for LatencyConfig {
    fn default() -> Self {
        LatencyConfig {
            default_ms: 5,
            per_op: BTreeMap::new(),
        }
    }
}

impl LatencyConfig {
    pub fn zero() -> Self {
        LatencyConfig {
            default_ms: 0,
            per_op: BTreeMap::new(),
        }
    }

    pub fn of(&self, op: SimOp) -> Duration {
        Duration::from_millis(*self.per_op.get(&op).unwrap_or(&self.default_ms))
    }
}

impl SimState {
    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| same_name(&g.name, name))
    }

    pub fn group_index(&self, name: &str) -> Option<usize> {
        self.groups.iter().position(|g| same_name(&g.name, name))
    }

    pub fn disk(&self, name: &str) -> Option<&SimDisk> {
        self.disks.iter().find(|d| same_name(&d.name, name))
    }

    pub fn disk_by_signature(&self, signature: &str) -> Option<&SimDisk> {
        self.disks
            .iter()
            .find(|d| d.signature.eq_ignore_ascii_case(signature))
    }

    /// The group whose physical disk resource holds the disk with this signature.
    pub fn disk_owner(&self, signature: &str) -> Option<(&Group, &Resource)> {
        self.groups.iter().find_map(|g| {
            g.resources
                .iter()
                .find(|r| {
                    r.kind == ResourceKind::PhysicalDisk
                        && prop_str(r, "signature")
                            .is_some_and(|s| s.eq_ignore_ascii_case(signature))
                })
                .map(|r| (g, r))
        })
    }

    /// Whether a resource or disk of this cluster already has `name`: resource names are unique
    /// across a cluster, and a disk in available storage is a resource too.
    pub fn name_taken(&self, name: &str) -> bool {
        for g in &self.groups {
            for r in &g.resources {
                if same_name(&r.name, name) {
                    return true;
                }
            }
        }
        self.disks.iter().any(|d| same_name(&d.name, name))
    }

    /// Every name taken cluster-wide, lowercased (see [`Self::name_taken`]).
    pub fn taken_names(&self) -> BTreeSet<String> {
        self.groups
            .iter()
            .flat_map(|g| g.resources.iter().map(|r| r.name.to_lowercase()))
            .chain(self.disks.iter().map(|d| d.name.to_lowercase()))
            .collect()
    }
}

/// Windows names compare case-insensitively. Names of different UTF-8 length are taken as
/// different without looking further (only exotic case pairs such as the Kelvin sign change
/// length), which keeps a migration's checks against a 1,000-group cluster cheap.
pub fn same_name(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && (a.eq_ignore_ascii_case(b)
            || (!(a.is_ascii() && b.is_ascii()) && a.to_lowercase() == b.to_lowercase()))
}

/// A string property of a resource.
pub fn prop_str<'a>(resource: &'a Resource, key: &str) -> Option<&'a str> {
    resource.properties.get(key).and_then(|v| v.as_str())
}

pub fn prop_bool(resource: &Resource, key: &str) -> bool {
    resource
        .properties
        .get(key)
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}
