//! Simulated clusters held in memory, for tests and benchmarks that run many agents in one
//! process and do not want a file write per operation.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::state::{FaultSpec, SimOp, SimState};
use crate::{DISKS_DIR, disk_folder};

/// A set of simulated clusters that migrate between each other, like sibling directories.
#[derive(Debug, Default)]
pub struct SimWorld {
    /// Where disk folders live (`ROOT/<cluster>/disks/<disk>`); without it the simulation skips
    /// every file-system check (share folders are assumed to exist).
    root: Option<PathBuf>,
    clusters: Mutex<BTreeMap<String, SimState>>,
}

impl SimWorld {
    pub fn new() -> Arc<SimWorld> {
        Arc::new(SimWorld::default())
    }

    /// A world whose disks are folders under `root`, as `create_sim_cluster` lays them out when
    /// each cluster's directory is `root/<cluster>`.
    pub fn with_root(root: impl Into<PathBuf>) -> Arc<SimWorld> {
        Arc::new(SimWorld {
            root: Some(root.into()),
            clusters: Mutex::default(),
        })
    }

    fn key(name: &str) -> String {
        name.to_lowercase()
    }

    fn clusters(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, SimState>> {
        self.clusters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds or replaces a cluster.
    pub fn insert(&self, state: SimState) {
        self.clusters().insert(Self::key(&state.cluster), state);
    }

    pub fn state(&self, cluster: &str) -> Option<SimState> {
        self.clusters().get(&Self::key(cluster)).cloned()
    }

    pub fn cluster_names(&self) -> Vec<String> {
        self.clusters()
            .values()
            .map(|s| s.cluster.clone())
            .collect()
    }

    /// Runs `f` on one cluster's state; `None` when there is no such cluster.
    pub fn update<R>(&self, cluster: &str, f: impl FnOnce(&mut SimState) -> R) -> Option<R> {
        self.clusters().get_mut(&Self::key(cluster)).map(f)
    }

    pub fn inject_fault(&self, cluster: &str, op: SimOp, fault: FaultSpec) -> bool {
        self.update(cluster, |s| {
            s.faults.insert(op, fault);
        })
        .is_some()
    }

    pub fn clear_faults(&self, cluster: &str) -> bool {
        self.update(cluster, |s| s.faults.clear()).is_some()
    }

    /// Folder of one disk of `cluster`, when this world has folders.
    pub fn disks_root(&self, cluster: &str) -> Option<PathBuf> {
        self.root.as_ref().map(|r| r.join(cluster).join(DISKS_DIR))
    }

    pub fn disk_dir(&self, cluster: &str, disk: &str) -> Option<PathBuf> {
        self.disks_root(cluster).map(|r| r.join(disk_folder(disk)))
    }
}
