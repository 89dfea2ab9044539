//! Simulated failover clusters: the generator behind `ferry sim create`, the state file the `sim`
//! driver works on, the operations it runs on that state (`ops`), where the Windows paths an
//! agent is handed are among the cluster's folders (`paths`), and the knobs tests and the demo
//! turn from outside (faults, latency, CSV redirected mode, presenting a LUN to another cluster).
//!
//! Layout of a simulated cluster's directory `DIR` (the `--dir` of `ferry sim create`):
//!
//! ```text
//! SIMROOT/                 parent: every subdirectory is one simulated cluster
//!   FS-OLD/                DIR of cluster FS-OLD
//!     cluster.json         the whole state (nodes, networks, disks, groups, faults, perf model)
//!     .cluster.lock        advisory lock and revision counter, see `store`
//!     disks/
//!       Cluster Disk 1/    a real folder tree per disk: share folders, subfolders, files, symlinks
//!   FS-NEW/
//!     ...
//! ```
//!
//! A migration reads its source from the sibling directory named after the source cluster
//! (`SIMROOT/<source>/`), or from whichever sibling holds that cluster.

pub mod generate;
pub mod ops;
pub mod paths;
pub mod perf;
pub mod state;
pub mod store;
pub mod world;

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

pub use generate::{
    DiskTree, GeneratedCluster, SimCreateOptions, SimSummary, create_sim_cluster, generate,
    seed_from_name,
};
pub use paths::SimPaths;
pub use perf::{PerfModel, PerfVolume, Workload};
pub use state::{
    FaultSpec, LatencyConfig, STATE_FORMAT, SimDisk, SimNetwork, SimNode, SimOp, SimState,
};
pub use store::{
    OPERATIONS_LOG, OperationRecord, STATE_FILE, StateFile, load_state, read_operations,
};
pub use world::SimWorld;

/// Folder of the disks under a cluster's directory.
pub const DISKS_DIR: &str = "disks";

/// Name of a disk's folder: the disk name, with path separators replaced so that no name can
/// escape `disks/`.
pub fn disk_folder(disk: &str) -> String {
    let cleaned: String = disk
        .chars()
        .map(|c| match c {
            '/' | '\\' | '\0' => '_',
            c => c,
        })
        .collect();
    match cleaned.as_str() {
        "" | "." | ".." => format!("_{cleaned}"),
        _ => cleaned,
    }
}

/// Folder holding a disk's files: its backing folder when it is presented from another cluster,
/// else `DIR/disks/<disk>`.
pub fn disk_dir(dir: &Path, disk: &SimDisk) -> PathBuf {
    disk.backing
        .clone()
        .unwrap_or_else(|| dir.join(DISKS_DIR).join(disk_folder(&disk.name)))
}

/// Changes the state in `dir` under its lock.
pub fn update_state<R>(dir: &Path, f: impl FnOnce(&mut SimState) -> R) -> anyhow::Result<R> {
    let file = StateFile::open(dir)?;
    file.transact(|state, dirty| {
        *dirty = true;
        f(state)
    })
    .with_context(|| format!("update the simulated cluster in {}", dir.display()))
}

/// Arms a fault on one operation of the cluster in `dir`, for every agent of that cluster.
pub fn inject_fault(dir: &Path, op: SimOp, fault: FaultSpec) -> anyhow::Result<()> {
    update_state(dir, |s| {
        s.faults.insert(op, fault);
    })
}

pub fn clear_faults(dir: &Path) -> anyhow::Result<()> {
    update_state(dir, |s| s.faults.clear())
}

pub fn set_latency(dir: &Path, latency: LatencyConfig) -> anyhow::Result<()> {
    update_state(dir, |s| s.latency = latency)
}

/// Switches CSV volumes in or out of redirected I/O: `volume` names one (its path, e.g.
/// `C:\ClusterStorage\Volume1`), `None` means every CSV volume. Returns how many were switched.
pub fn set_csv_redirected(
    dir: &Path,
    volume: Option<&str>,
    redirected: bool,
) -> anyhow::Result<usize> {
    let switched = update_state(dir, |s| {
        let mut n = 0;
        for v in s.perf.volumes.iter_mut().filter(|v| v.csv) {
            if volume.is_none_or(|name| v.name.eq_ignore_ascii_case(name)) {
                v.redirected = redirected;
                n += 1;
            }
        }
        n
    })?;
    if switched == 0 {
        match volume {
            Some(name) => bail!("{} has no CSV volume named {name}", dir.display()),
            None => bail!("{} has no CSV volume", dir.display()),
        }
    }
    Ok(switched)
}

/// Presents a disk of the cluster in `source_dir` to the cluster in `target_dir` (the same LUN
/// zoned to both): the target gets a disk in available storage with the same signature and the
/// same folder. Returns the disk's name on the target; presenting twice is harmless.
pub fn present_disk(target_dir: &Path, source_dir: &Path, disk: &str) -> anyhow::Result<String> {
    let source = load_state(source_dir)
        .with_context(|| format!("read the simulated cluster in {}", source_dir.display()))?;
    let Some(source_disk) = source.disk(disk) else {
        bail!("cluster {} has no disk named {disk}", source.cluster);
    };
    let backing = disk_dir(source_dir, source_disk);
    let backing = backing.canonicalize().unwrap_or(backing);
    let mut presented = source_disk.clone();
    presented.backing = Some(backing);
    presented.drive_letter = None;
    update_state(target_dir, move |target| {
        if let Some(existing) = target.disk_by_signature(&presented.signature) {
            return existing.name.clone();
        }
        let taken = target.taken_names();
        let mut n = target.disks.len() + 1;
        let name = loop {
            let candidate = format!("Cluster Disk {n}");
            if !taken.contains(&candidate.to_lowercase()) {
                break candidate;
            }
            n += 1;
        };
        presented.name = name.clone();
        target.disks.push(presented);
        name
    })
}
