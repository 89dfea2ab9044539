//! The `sim` driver: a simulated Windows failover cluster that behaves where the runbook cares
//! (what each operation does, and why, is in [`ferry_sim::ops`]).
//!
//! This module is the driver around those operations: it opens the state, holds the cluster's
//! lock while an operation runs, consumes armed faults, and waits the configured latency, so
//! faults and latency apply to every agent of the cluster. A migration reads its source from a
//! sibling directory (or from the same in-memory world) before it takes the target's lock.
//!
//! State lives in `DIR/cluster.json` (see [`ferry_sim`]); several drivers, in one process or in
//! several, may share it. [`SimDriver::in_memory`] works on a [`SimWorld`] instead, for tests and
//! benchmarks that want no file write per operation.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    ClusterDriver, ConfigFacts, DiskReplacement, DriverError, GroupOutcome, LocalPaths,
    MigrationReport, PathsAsGiven, PerfSnapshot,
};
use ferry_core::model::{Disk, Group, InventoryDocument, Resource};
use ferry_sim::ops::{self, DiskFolders, Fault, SourceGroup};
use ferry_sim::{
    DISKS_DIR, OperationRecord, STATE_FILE, SimOp, SimPaths, SimState, SimWorld, StateFile,
};

// The Migration Wizard's rules, reachable from the driver as they were before the operations
// moved into the simulator.
pub use ferry_sim::ops::{check_migration_path, loses_file_shares};

/// Settings of one driver instance; `None` takes the value from the cluster's state file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SimDriverOptions {
    /// Overrides the per-operation latency of the state file (e.g. zero for benchmarks).
    pub latency: Option<Duration>,
    /// Upper bound on an operation's wait (latency or an injected hang); past it the call fails
    /// with `Timeout`. Without it a hung call waits until the caller drops it.
    pub op_timeout: Option<Duration>,
}

enum Backend {
    Dir {
        file: Arc<StateFile>,
        /// Source clusters read by migrations, found once among the sibling directories.
        siblings: Mutex<HashMap<String, Arc<StateFile>>>,
    },
    Memory {
        world: Arc<SimWorld>,
    },
}

struct Inner {
    backend: Backend,
    cluster: String,
    options: SimDriverOptions,
}

/// A driver for one simulated cluster. Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct SimDriver {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SimDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimDriver")
            .field("cluster", &self.inner.cluster)
            .field("options", &self.inner.options)
            .finish()
    }
}

enum Gate<F, R> {
    Ran(Result<R, DriverError>),
    Deferred {
        f: F,
        fault: Option<Fault>,
        delay: Duration,
    },
}

fn io_error(e: io::Error) -> DriverError {
    match e.kind() {
        io::ErrorKind::NotFound => DriverError::NotFound(e.to_string()),
        _ => DriverError::Failed(format!("simulated cluster state: {e}")),
    }
}

fn join_error(e: tokio::task::JoinError) -> DriverError {
    DriverError::Failed(format!("simulated cluster operation aborted: {e}"))
}

impl SimDriver {
    /// A driver for the simulated cluster in `dir`, with the latency of its state file.
    pub fn open(dir: impl Into<PathBuf>) -> Result<SimDriver, DriverError> {
        SimDriver::open_with(dir, SimDriverOptions::default())
    }

    pub fn open_with(
        dir: impl Into<PathBuf>,
        options: SimDriverOptions,
    ) -> Result<SimDriver, DriverError> {
        let file = StateFile::open(dir).map_err(io_error)?;
        let cluster = file.read(|s| s.cluster.clone()).map_err(io_error)?;
        Ok(SimDriver {
            inner: Arc::new(Inner {
                backend: Backend::Dir {
                    file: Arc::new(file),
                    siblings: Mutex::default(),
                },
                cluster,
                options,
            }),
        })
    }

    /// A driver for cluster `cluster` of an in-memory world.
    pub fn in_memory(
        world: Arc<SimWorld>,
        cluster: &str,
        options: SimDriverOptions,
    ) -> Result<SimDriver, DriverError> {
        let Some(state) = world.state(cluster) else {
            return Err(DriverError::NotFound(format!(
                "the simulated world has no cluster named {cluster}"
            )));
        };
        Ok(SimDriver {
            inner: Arc::new(Inner {
                backend: Backend::Memory { world },
                cluster: state.cluster,
                options,
            }),
        })
    }

    pub fn cluster(&self) -> &str {
        &self.inner.cluster
    }

    /// The cluster's directory, for a file-backed driver.
    pub fn dir(&self) -> Option<&Path> {
        match &self.inner.backend {
            Backend::Dir { file, .. } => Some(file.dir()),
            Backend::Memory { .. } => None,
        }
    }

    /// A copy of the whole simulated state (tests and the demo inspect it).
    pub async fn state(&self) -> Result<SimState, DriverError> {
        self.transact(|s, _, _| s.clone()).await
    }

    /// Runs `f` on the state under the cluster's lock, off the async threads for a file.
    async fn transact<R, F>(&self, f: F) -> Result<R, DriverError>
    where
        R: Send + 'static,
        F: FnOnce(&mut SimState, &DiskFolders, &mut bool) -> R + Send + 'static,
    {
        match &self.inner.backend {
            Backend::Dir { file, .. } => {
                let file = file.clone();
                let folders = DiskFolders::new(Some(file.dir().join(DISKS_DIR)));
                tokio::task::spawn_blocking(move || file.transact(|s, dirty| f(s, &folders, dirty)))
                    .await
                    .map_err(join_error)?
                    .map_err(io_error)
            }
            Backend::Memory { world } => {
                let cluster = &self.inner.cluster;
                let folders = DiskFolders::new(world.disks_root(cluster));
                world
                    .update(cluster, |s| f(s, &folders, &mut false))
                    .ok_or_else(|| {
                        DriverError::NotFound(format!(
                            "cluster {cluster} was removed from the simulated world"
                        ))
                    })
            }
        }
    }

    /// Runs one operation: consumes an armed fault, waits the latency, then applies `f`. With no
    /// fault and no latency it all happens under one lock.
    async fn run<R, F>(&self, op: SimOp, f: F) -> Result<R, DriverError>
    where
        R: Send + 'static,
        F: FnOnce(&mut SimState, &DiskFolders, &mut bool) -> Result<R, DriverError>
            + Send
            + 'static,
    {
        let latency = self.inner.options.latency;
        let gate = self
            .transact(move |state, folders, dirty| {
                let fault = ops::take_fault(state, op, dirty);
                let delay = latency.unwrap_or_else(|| state.latency.of(op));
                if fault.is_none() && delay.is_zero() {
                    Gate::Ran(f(state, folders, dirty))
                } else {
                    Gate::Deferred { f, fault, delay }
                }
            })
            .await?;
        let (f, fault, delay) = match gate {
            Gate::Ran(result) => return result,
            Gate::Deferred { f, fault, delay } => (f, fault, delay),
        };
        let wait = async {
            tokio::time::sleep(delay).await;
            match fault {
                Some(Fault::Fail(e)) => Err(e),
                Some(Fault::Hang) => std::future::pending().await,
                None => Ok(()),
            }
        };
        match self.inner.options.op_timeout {
            Some(limit) => tokio::time::timeout(limit, wait).await.map_err(|_| {
                DriverError::Timeout(format!(
                    "{op} on cluster {} did not answer within {} ms",
                    self.inner.cluster,
                    limit.as_millis()
                ))
            })??,
            None => wait.await?,
        }
        self.transact(f).await?
    }

    /// Runs an operation that changes the cluster, then appends it to the cluster's operation
    /// log (a file-backed cluster only), whatever its outcome.
    async fn change<R, F>(&self, op: SimOp, subject: String, f: F) -> Result<R, DriverError>
    where
        R: Send + 'static,
        F: FnOnce(&mut SimState, &DiskFolders, &mut bool) -> Result<R, DriverError>
            + Send
            + 'static,
    {
        let result = self.run(op, f).await;
        if let Backend::Dir { file, .. } = &self.inner.backend {
            let record = OperationRecord {
                op: op.as_str().to_owned(),
                subject,
                outcome: match &result {
                    Ok(_) => "ok".to_owned(),
                    Err(e) => e.kind().as_str().to_owned(),
                },
                at: Utc::now(),
            };
            let file = file.clone();
            let logged = tokio::task::spawn_blocking(move || file.log_operation(&record)).await;
            if let Ok(Err(e)) | Err(e) = logged.map_err(std::io::Error::other) {
                tracing::warn!(error = %e, "could not append to the simulated cluster's operation log");
            }
        }
        result
    }

    /// Reads the group from the source cluster of a migration.
    async fn read_source(&self, source: &str, group: &str) -> Result<SourceGroup, DriverError> {
        if source.eq_ignore_ascii_case(&self.inner.cluster) {
            return Err(DriverError::Conflict(format!(
                "cannot migrate group {group} from cluster {source} to itself"
            )));
        }
        let group = group.to_string();
        match &self.inner.backend {
            Backend::Memory { world } => world
                .update(source, |s| SourceGroup::extract(s, &group))
                .ok_or_else(|| {
                    DriverError::NotFound(format!(
                        "no simulated cluster named {source} to migrate from"
                    ))
                }),
            Backend::Dir { .. } => {
                let inner = self.inner.clone();
                let source = source.to_string();
                tokio::task::spawn_blocking(move || {
                    let file = inner.sibling(&source)?;
                    file.read(|s| SourceGroup::extract(s, &group))
                        .map_err(io_error)
                })
                .await
                .map_err(join_error)?
            }
        }
    }
}

impl Inner {
    /// The state file of the sibling cluster named `name`: `SIMROOT/<name>` first, then any
    /// sibling directory holding a cluster of that name.
    fn sibling(&self, name: &str) -> Result<Arc<StateFile>, DriverError> {
        let Backend::Dir { file, siblings } = &self.backend else {
            return Err(DriverError::Unsupported(
                "only a file-backed simulated cluster has siblings".into(),
            ));
        };
        let key = name.to_lowercase();
        if let Some(found) = siblings.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(found.clone());
        }
        let not_found = |looked: &Path| {
            DriverError::NotFound(format!(
                "no simulated cluster named {name} next to {} (looked in {})",
                file.dir().display(),
                looked.display()
            ))
        };
        let own = file
            .dir()
            .canonicalize()
            .unwrap_or(file.dir().to_path_buf());
        let Some(parent) = own.parent() else {
            return Err(not_found(&own));
        };
        let mut candidates = vec![parent.join(name)];
        if let Ok(entries) = std::fs::read_dir(parent) {
            let mut others: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| *p != own && p.join(STATE_FILE).is_file())
                .collect();
            others.sort();
            candidates.extend(others);
        }
        for dir in candidates {
            if dir == own || !dir.join(STATE_FILE).is_file() {
                continue;
            }
            let Ok(candidate) = StateFile::open(&dir) else {
                continue;
            };
            let matches = candidate
                .read(|s| s.cluster.eq_ignore_ascii_case(name))
                .unwrap_or(false);
            if matches {
                let candidate = Arc::new(candidate);
                siblings
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key, candidate.clone());
                return Ok(candidate);
            }
        }
        Err(not_found(parent))
    }
}

#[async_trait]
impl ClusterDriver for SimDriver {
    fn driver_name(&self) -> &'static str {
        "sim"
    }

    fn cluster_name(&self) -> Option<String> {
        Some(self.inner.cluster.clone())
    }

    async fn list_groups(&self) -> Result<Vec<Group>, DriverError> {
        self.run(SimOp::ListGroups, |s, _, _| Ok(ops::list_groups(s)))
            .await
    }

    /// Counts as `list_groups` for faults and latency, without copying every group.
    async fn group(&self, name: &str) -> Result<Group, DriverError> {
        let name = name.to_string();
        self.run(SimOp::ListGroups, move |s, _, _| ops::group(s, &name))
            .await
    }

    async fn inventory(&self) -> Result<InventoryDocument, DriverError> {
        self.run(SimOp::Inventory, |s, _, _| Ok(ops::inventory(s)))
            .await
    }

    async fn offline_group(&self, group: &str) -> Result<GroupOutcome, DriverError> {
        let group = group.to_string();
        self.change(SimOp::OfflineGroup, group.clone(), move |s, _, dirty| {
            ops::offline_group(s, &group, dirty)
        })
        .await
    }

    async fn online_group(&self, group: &str) -> Result<GroupOutcome, DriverError> {
        let group = group.to_string();
        self.change(
            SimOp::OnlineGroup,
            group.clone(),
            move |s, folders, dirty| ops::online_group(s, folders, &group, dirty),
        )
        .await
    }

    async fn migrate_group(
        &self,
        source_cluster: &str,
        group: &str,
    ) -> Result<MigrationReport, DriverError> {
        let source = self.read_source(source_cluster, group).await?;
        let group = group.to_string();
        self.change(SimOp::MigrateGroup, group.clone(), move |s, _, dirty| {
            ops::migrate_group(s, source, &group, dirty)
        })
        .await
    }

    async fn add_disk_resource(&self, group: &str, disk: &str) -> Result<Resource, DriverError> {
        let (group, disk) = (group.to_string(), disk.to_string());
        self.change(SimOp::AddDiskResource, group.clone(), move |s, _, dirty| {
            ops::add_disk_resource(s, &group, &disk, dirty)
        })
        .await
    }

    async fn remove_resource(&self, group: &str, resource: &str) -> Result<bool, DriverError> {
        let (group, resource) = (group.to_string(), resource.to_string());
        self.change(SimOp::RemoveResource, group.clone(), move |s, _, dirty| {
            ops::remove_resource(s, &group, &resource, dirty)
        })
        .await
    }

    async fn set_dependencies(
        &self,
        group: &str,
        resource: &str,
        depends_on: &[String],
    ) -> Result<Resource, DriverError> {
        let (group, resource) = (group.to_string(), resource.to_string());
        let depends_on = depends_on.to_vec();
        self.change(SimOp::SetDependencies, group.clone(), move |s, _, dirty| {
            ops::set_dependencies(s, &group, &resource, &depends_on, dirty)
        })
        .await
    }

    async fn assign_drive_letter(&self, disk: &str, letter: &str) -> Result<Disk, DriverError> {
        let (disk, letter) = (disk.to_string(), letter.to_string());
        self.change(
            SimOp::AssignDriveLetter,
            disk.clone(),
            move |s, _, dirty| ops::assign_drive_letter(s, &disk, &letter, dirty),
        )
        .await
    }

    async fn prepare_disk(&self, letter: &str) -> Result<Disk, DriverError> {
        let letter = letter.to_string();
        self.change(SimOp::PrepareDisk, letter.clone(), move |s, _, dirty| {
            ops::prepare_disk(s, &letter, dirty)
        })
        .await
    }

    async fn replace_disk_resource(
        &self,
        group: &str,
        disk: &str,
        letter: &str,
    ) -> Result<DiskReplacement, DriverError> {
        let (group, disk, letter) = (group.to_string(), disk.to_string(), letter.to_string());
        self.change(
            SimOp::ReplaceDiskResource,
            group.clone(),
            move |s, _, dirty| ops::replace_disk_resource(s, &group, &disk, &letter, dirty),
        )
        .await
    }

    async fn remove_group(&self, group: &str) -> Result<bool, DriverError> {
        let group = group.to_string();
        self.change(SimOp::RemoveGroup, group.clone(), move |s, _, dirty| {
            ops::remove_group(s, &group, dirty)
        })
        .await
    }

    async fn config_facts(&self) -> Result<ConfigFacts, DriverError> {
        self.run(SimOp::ConfigFacts, |s, _, _| Ok(ops::config_facts(s)))
            .await
    }

    async fn perf_counters(&self, at: DateTime<Utc>) -> Result<Option<PerfSnapshot>, DriverError> {
        self.run(SimOp::PerfCounters, move |s, _, _| {
            Ok(Some(ops::perf_counters(s, at)))
        })
        .await
    }

    /// Drive and UNC paths onto the cluster's disk folders (see [`ferry_sim::paths`]). An
    /// in-memory world has no directory of its own, so its paths are taken as given: its callers
    /// hand a skeleton copy local folders.
    fn local_paths(&self) -> Box<dyn LocalPaths> {
        match &self.inner.backend {
            Backend::Dir { file, .. } => Box::new(SimPaths::new(file.clone())),
            Backend::Memory { .. } => Box::new(PathsAsGiven),
        }
    }

    /// The disk folders of this cluster and of its siblings under the sim root: what a node's
    /// cluster disks and the administrative shares a migration reads (`\\HOST\X$`) are in the
    /// simulation. For an in-memory world with folders, every cluster's disks folder.
    async fn default_roots(&self) -> Result<Vec<PathBuf>, DriverError> {
        match &self.inner.backend {
            Backend::Dir { file, .. } => {
                let paths = SimPaths::new(file.clone());
                tokio::task::spawn_blocking(move || paths.disk_folders())
                    .await
                    .map_err(join_error)?
                    .map_err(DriverError::Failed)
            }
            Backend::Memory { world } => Ok(world
                .cluster_names()
                .iter()
                .filter_map(|name| world.disks_root(name))
                .collect()),
        }
    }
}

impl LocalPaths for SimPaths {
    fn copy_path(&self, path: &str) -> Result<PathBuf, String> {
        SimPaths::copy_path(self, path)
    }

    fn share_folder(&self, path: &str) -> Result<PathBuf, String> {
        SimPaths::share_folder(self, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::model::OsGeneration;

    #[test]
    fn skeleton_paths_map_onto_simulated_disks() {
        let root = tempfile::tempdir().unwrap();
        let create = |name: &str, os: OsGeneration, groups: u32| {
            let mut o = ferry_sim::SimCreateOptions::new(root.path().join(name), name, os);
            o.groups = groups;
            o.shares = 2;
            o.latency_ms = 0;
            ferry_sim::create_sim_cluster(&o).unwrap();
            o.dir
        };
        let old = create("OLD", OsGeneration::Ws2003, 1);
        let mid = create("MID", OsGeneration::Ws2008, 0);
        let old_state = ferry_sim::load_state(&old).unwrap();
        let lettered = old_state
            .disks
            .iter()
            .find(|d| d.drive_letter.is_some())
            .unwrap();
        let letter = lettered.drive_letter.clone().unwrap();
        let drive = letter.trim_end_matches(':');
        let old_disk = ferry_sim::disk_dir(&old, lettered);
        let b = SimDriver::open(&mid).unwrap().local_paths();

        // A sibling cluster by name or by node, over its administrative share.
        for host in ["OLD", "old", "OLD-n1"] {
            assert_eq!(
                b.copy_path(&format!("\\\\{host}\\{drive}$\\")).unwrap(),
                old_disk
            );
        }
        assert_eq!(
            b.copy_path(&format!("\\\\OLD\\{drive}$\\Shares\\..\\x"))
                .unwrap(),
            old_disk.join("Shares").join("x")
        );
        assert!(b.copy_path("\\\\NOPE\\F$\\").unwrap_err().contains("NOPE"));
        assert!(b.copy_path("\\\\OLD\\Data\\").is_err());
        // This cluster's drive: MID has no lettered disk yet.
        assert!(b.copy_path("F:\\").unwrap_err().contains("no disk of MID"));
        // A plain local path (tests, benchmarks) stays as it is.
        assert_eq!(b.copy_path("/tmp/x").unwrap(), PathBuf::from("/tmp/x"));

        // Where the agent may go by default: every disk folder of MID and of its sibling OLD,
        // nothing else of either directory.
        let roots = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(SimDriver::open(&mid).unwrap().default_roots())
            .unwrap();
        let mid_state = ferry_sim::load_state(&mid).unwrap();
        let mut expected: Vec<PathBuf> = old_state
            .disks
            .iter()
            .map(|d| ferry_sim::disk_dir(&old, d))
            .chain(mid_state.disks.iter().map(|d| ferry_sim::disk_dir(&mid, d)))
            .collect();
        expected.sort();
        assert_eq!(roots, expected);
        assert!(roots.contains(&old_disk));

        // A share's folder is on this cluster's disk with the share's letter.
        let old_paths = SimDriver::open(&old).unwrap().local_paths();
        assert_eq!(
            old_paths
                .share_folder(&format!("{}\\Shares\\x", letter.to_lowercase()))
                .unwrap(),
            old_disk.join("Shares").join("x")
        );
        assert!(
            old_paths
                .share_folder("\\\\OLD\\Data")
                .unwrap_err()
                .contains("no drive letter")
        );
        assert!(
            b.share_folder("F:\\x")
                .unwrap_err()
                .contains("no disk has drive F:")
        );
    }
}
