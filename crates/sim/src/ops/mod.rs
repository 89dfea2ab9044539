//! The simulated operations: what each `ClusterDriver` call does to a cluster's [`SimState`],
//! one function per call, behaving where the runbook cares.
//!
//! - Migrating a file-server group straight from `ws2003` to `ws2008r2` loses its file share
//!   resources and their shares (KB 983840); `ws2003 -> ws2008` and `ws2008 -> ws2008r2` keep
//!   them. A 2012-or-later target refuses sources older than `ws2008`.
//! - A 2008-or-later source only hands over file shares that have been online on it, so a group
//!   migrated into the interim cluster must be brought online there before it moves on (the first
//!   field note's "thing that is not mentioned").
//! - A migrated group arrives offline, its disk resource still naming the source's disk, which
//!   fails to come online until the runbook swaps it for a disk this cluster sees.
//! - A file share only comes online when its folder exists on the group's disk with that drive
//!   letter: on the interim that is what the skeleton copy provides.
//! - A network name migrated into a Kerberos cluster fails its first online with a transient
//!   error and comes online on the second.
//! - Faults armed in the state (fail the next K calls, hang) live in the state, so they apply to
//!   every agent of the cluster: [`take_fault`] consumes one use, and the driver then fails or
//!   hangs the call.
//!
//! The functions hold no lock and never wait, so they serve a state file shared by several
//! processes and an in-memory world alike: the caller (the `sim` driver) locks the state, passes
//! it in, waits the latency, and writes the state back only when the operation set its `dirty`
//! flag.

mod disks;
mod faults;
mod groups;
mod migrate;
mod read;
mod resources;

use std::collections::HashMap;
use std::path::PathBuf;

use ferry_core::model::{Disk, Resource, ResourceState};
use ferry_protocol::report::driver::DriverError;

use crate::disk_folder;
use crate::state::{SimDisk, SimState, prop_str};

pub use disks::{add_disk_resource, assign_drive_letter, prepare_disk, replace_disk_resource};
pub use faults::{Fault, take_fault};
pub use groups::{offline_group, online_group, remove_group};
pub use migrate::{SourceGroup, check_migration_path, loses_file_shares, migrate_group};
pub use read::{config_facts, group, inventory, list_groups, perf_counters};
pub use resources::{remove_resource, set_dependencies};

/// Where an operation finds disk folders, to check that a disk has a volume and a share its
/// folder. Without a root (an in-memory world with no folders) those checks are skipped.
#[derive(Debug, Clone, Default)]
pub struct DiskFolders {
    root: Option<PathBuf>,
}

impl DiskFolders {
    /// Disks under `root` (a cluster's `DIR/disks`), or no file-system checks for `None`.
    pub fn new(root: Option<PathBuf>) -> DiskFolders {
        DiskFolders { root }
    }

    fn disk_dir(&self, disk: &SimDisk) -> Option<PathBuf> {
        disk.backing.clone().or_else(|| {
            self.root
                .as_ref()
                .map(|root| root.join(disk_folder(&disk.name)))
        })
    }
}

fn group_index(s: &SimState, group: &str) -> Result<usize, DriverError> {
    s.group_index(group).ok_or_else(|| {
        DriverError::NotFound(format!("cluster {} has no group named {group}", s.cluster))
    })
}

/// Resources in dependency order (dependencies first). Members of a cycle come last, in their
/// listed order, so they are still reported.
fn topo_order(resources: &[Resource]) -> Vec<usize> {
    let index: HashMap<String, usize> = resources
        .iter()
        .enumerate()
        .map(|(i, r)| (r.name.to_lowercase(), i))
        .collect();
    let mut done = vec![false; resources.len()];
    let mut order = Vec::with_capacity(resources.len());
    loop {
        let mut progressed = false;
        for (i, r) in resources.iter().enumerate() {
            if done[i] {
                continue;
            }
            let ready = r.depends_on.iter().all(|d| {
                index
                    .get(&d.to_lowercase())
                    .is_none_or(|&j| done[j] || j == i)
            });
            if ready {
                done[i] = true;
                order.push(i);
                progressed = true;
            }
        }
        if !progressed {
            break;
        }
    }
    order.extend((0..resources.len()).filter(|&i| !done[i]));
    order
}

/// A group's state from its resources'; an empty group is in the state it was asked for.
fn aggregate(resources: &[Resource], goal: ResourceState) -> ResourceState {
    if resources.is_empty() {
        return goal;
    }
    let online = resources
        .iter()
        .filter(|r| r.state == ResourceState::Online)
        .count();
    if online == resources.len() {
        ResourceState::Online
    } else if online > 0 {
        ResourceState::PartialOnline
    } else if resources.iter().any(|r| r.state == ResourceState::Failed) {
        ResourceState::Failed
    } else {
        ResourceState::Offline
    }
}

fn share_name(r: &Resource) -> Option<&str> {
    prop_str(r, "share_name")
}

fn model_disk(d: &SimDisk) -> Disk {
    Disk {
        resource: d.name.clone(),
        drive_letter: d.drive_letter.clone(),
        size_bytes: d.size_bytes,
        free_bytes: d.free_bytes,
        csv: d.csv,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::model::ResourceKind;

    fn res(name: &str, deps: &[&str]) -> Resource {
        Resource {
            name: name.into(),
            kind: ResourceKind::Generic,
            state: ResourceState::Offline,
            properties: Default::default(),
            depends_on: deps.iter().map(|d| (*d).into()).collect(),
        }
    }

    #[test]
    fn topo_order_puts_dependencies_first_and_keeps_cycles() {
        let rs = vec![
            res("share", &["fs"]),
            res("fs", &["name", "disk"]),
            res("disk", &[]),
            res("name", &["ip"]),
            res("ip", &[]),
            res("a", &["b"]),
            res("b", &["a"]),
        ];
        let order = topo_order(&rs);
        let pos = |n: &str| order.iter().position(|&i| rs[i].name == n).unwrap();
        assert!(pos("ip") < pos("name"));
        assert!(pos("name") < pos("fs") && pos("disk") < pos("fs"));
        assert!(pos("fs") < pos("share"));
        assert_eq!(order.len(), rs.len());
        assert!(pos("a") >= 5 && pos("b") >= 5);
    }
}
