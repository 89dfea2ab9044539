//! What an agent does with each action. The session loop only knows the [`Executor`] trait, so
//! tests can count or script executions; [`Builtin`] is the executor of `ferry agent`.
//!
//! Cluster actions go through a [`ClusterDriver`] opened per task, so a simulated cluster edited
//! by another process (faults, latency) is seen as it is now. Driver errors keep their kind
//! (`not_found`, `conflict`, `transient`, `failed`, `timeout`, `unsupported`) so the retry policy
//! can act on them. Cancellation aborts the task's future: a driver call is dropped where it
//! stands, and the skeleton copy stops at its next directory.
//!
//! Paths of a skeleton copy and of a share are Windows paths (`F:\`, `\\CLUSTER\F$\`); the driver
//! says where they are on this machine ([`ClusterDriver::local_paths`]). The PowerShell driver
//! runs on Windows and takes them as given; the sim driver maps them onto its simulated disks
//! (see [`crate::driver::sim`]). An agent without a cluster driver takes them as given too: its
//! tasks name local folders.
//!
//! Every path a task names is confined ([`crate::confine`]) before anything opens it: to the
//! agent's `--allow-path` list ([`Builtin::allow_paths`]), or without one to the cluster disks its
//! driver reports, and never into its own state directory. Logs go to `<state-dir>/logs/`, named
//! by the task. A refusal fails the task with kind `forbidden`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::Progress;
use crate::confine::{self, Confinement, RootsOrigin};
use crate::driver::sim::SimDriver;
use crate::driver::{ClusterDriver, DriverError, LocalPaths, PathsAsGiven};
use ferry_core::model::paths::check_dir_path;
use ferry_core::model::{Action, OsGeneration, TaskError, TaskRef};
use ferry_protocol::pb;
pub use ferry_protocol::report::actions::{
    AclSummary, EchoReport, GroupRemovedReport, RemovedReport, ScannedResource, ScannedShare,
    ShareScanReport,
};

/// Runs actions for the session loop. Implementations must be idempotent per action or check
/// before they act: a task can be delivered again after a crash.
#[async_trait]
pub trait Executor: Send + Sync + 'static {
    /// The action kinds (`Action::kind`) this executor runs, announced in Hello.
    fn capabilities(&self) -> Vec<String>;

    /// Called once by the session loop with its event queue, which reaches whatever stream is
    /// open, the node the agent serves and its state directory: executors that report unasked
    /// (perf batches, inventory) start doing so here, and logs go under the state directory.
    fn attach(&self, events: mpsc::Sender<pb::AgentMessage>, node: &str, state_dir: &Path) {
        let _ = (events, node, state_dir);
    }

    /// Runs one action, attempt `task` of its task. Success is the executor's report as JSON,
    /// which must be the report of the action's kind: the session types it for the wire by that
    /// kind (`TaskReport::from_json`).
    async fn execute(
        &self,
        task: TaskRef,
        action: Action,
        progress: Arc<dyn Progress>,
    ) -> Result<serde_json::Value, TaskError>;
}

/// Which cluster driver the agent uses once cluster actions are wired in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverKind {
    /// The simulated failover cluster (state under `--sim-dir`).
    Sim,
    /// The FailoverClusters PowerShell cmdlets.
    PowerShell,
}

impl std::str::FromStr for DriverKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sim" => Ok(DriverKind::Sim),
            "powershell" => Ok(DriverKind::PowerShell),
            other => Err(format!("driver must be sim or powershell, got `{other}`")),
        }
    }
}

/// Runs every action; reports nothing unasked (see [`NodeExecutor`] for that).
#[derive(Debug, Clone)]
pub struct Builtin {
    pub driver: DriverKind,
    pub sim_dir: Option<PathBuf>,
    /// The folders tasks may name (`--allow-path`). Empty: the cluster disks the driver reports
    /// ([`ClusterDriver::default_roots`]); an agent without a driver then may touch no folder.
    pub allow_paths: Vec<PathBuf>,
    /// The agent's state directory: logs go to `logs/` in it, and tasks may not name it. Set by
    /// [`Self::with_state_dir`] or, failing that, by the session when it attaches.
    state_dir: Arc<OnceLock<PathBuf>>,
    opened: OpenedDriver,
}

/// The driver, opened on first use and kept: a simulated cluster's state is then read again
/// only when someone else changed it, not once per task.
#[derive(Clone, Default)]
struct OpenedDriver(Arc<std::sync::OnceLock<Arc<dyn ClusterDriver>>>);

impl std::fmt::Debug for OpenedDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "opened"
        } else {
            "not opened"
        })
    }
}

impl Builtin {
    pub fn new(driver: DriverKind, sim_dir: Option<PathBuf>) -> Self {
        Builtin {
            driver,
            sim_dir,
            allow_paths: Vec::new(),
            state_dir: Arc::default(),
            opened: OpenedDriver::default(),
        }
    }

    /// Confines tasks to these folders instead of the driver's cluster disks.
    pub fn with_allow_paths(mut self, paths: impl IntoIterator<Item = PathBuf>) -> Self {
        self.allow_paths = paths.into_iter().collect();
        self
    }

    /// The agent's state directory, for an executor used without a session (which tells it).
    pub fn with_state_dir(self, dir: impl Into<PathBuf>) -> Self {
        // A fresh builder's cell is empty; a second call keeps the first directory.
        let _ = self.state_dir.set(dir.into());
        self
    }

    pub fn state_dir(&self) -> Option<&Path> {
        self.state_dir.get().map(PathBuf::as_path)
    }
}

/// The executor of `ferry agent`: [`Builtin`] plus what it reports unasked, perf batches on an
/// interval and an inventory report after a share scan (at most one a minute).
#[derive(Debug)]
pub struct NodeExecutor {
    pub inner: Builtin,
    /// How often perf batches are sampled and sent.
    pub perf_interval: Duration,
    events: OnceLock<mpsc::Sender<pb::AgentMessage>>,
    last_inventory_report: std::sync::Mutex<Option<std::time::Instant>>,
}

/// Least time between two inventory reports. A report is the whole cluster: a migration scans
/// shares after every online, and a report per scan grows with the cluster.
const INVENTORY_REPORT_INTERVAL: Duration = Duration::from_secs(60);

impl NodeExecutor {
    pub fn new(inner: Builtin) -> Self {
        NodeExecutor {
            inner,
            perf_interval: crate::reports::DEFAULT_PERF_INTERVAL,
            events: OnceLock::new(),
            last_inventory_report: std::sync::Mutex::new(None),
        }
    }

    pub fn with_perf_interval(mut self, interval: Duration) -> Self {
        self.perf_interval = interval;
        self
    }
}

#[async_trait]
impl Executor for NodeExecutor {
    fn capabilities(&self) -> Vec<String> {
        self.inner.capabilities()
    }

    fn attach(&self, events: mpsc::Sender<pb::AgentMessage>, node: &str, state_dir: &Path) {
        self.inner.attach(events.clone(), node, state_dir);
        if self.events.set(events.clone()).is_err() {
            return;
        }
        // Without a driver (no --sim-dir) the node's own disk counters are still sent.
        let driver = self.inner.open_driver().ok();
        tokio::spawn(crate::reports::perf_loop(
            self.perf_interval,
            driver,
            events,
            node.to_owned(),
        ));
    }

    async fn execute(
        &self,
        task: TaskRef,
        action: Action,
        progress: Arc<dyn Progress>,
    ) -> Result<serde_json::Value, TaskError> {
        let scan = matches!(action, Action::ShareScan { .. });
        let result = self.inner.execute(task, action, progress).await;
        // The scan also refreshes the server's view of the cluster; best effort, the task's
        // own result is what the caller waits for.
        if scan
            && result.is_ok()
            && self.inventory_report_due()
            && let Some(events) = self.events.get()
            && let Ok(driver) = self.inner.open_driver()
        {
            match driver.inventory().await {
                Ok(inventory) => {
                    crate::reports::send_inventory(events, inventory, driver.cluster_name())
                }
                Err(e) => tracing::warn!("no inventory report after the share scan: {e}"),
            }
        }
        result
    }
}

impl NodeExecutor {
    /// True (and the clock restarted) when no inventory report went out in the last interval.
    fn inventory_report_due(&self) -> bool {
        let mut last = self
            .last_inventory_report
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let due = last.is_none_or(|at| at.elapsed() >= INVENTORY_REPORT_INTERVAL);
        if due {
            *last = Some(std::time::Instant::now());
        }
        due
    }
}

/// Runs `echo`: sleeps in steps (reporting progress, which renews the lease), then answers.
pub async fn echo(
    text: String,
    sleep_ms: u64,
    progress: &dyn Progress,
) -> Result<serde_json::Value, TaskError> {
    const STEP_MS: u64 = 1000;
    let steps = sleep_ms.div_ceil(STEP_MS);
    let mut left = sleep_ms;
    for step in 0..steps {
        progress.report(step, Some(steps), "sleeping");
        let now = left.min(STEP_MS);
        tokio::time::sleep(Duration::from_millis(now)).await;
        left -= now;
    }
    progress.report(steps, Some(steps), "done");
    Ok(serde_json::to_value(EchoReport {
        text,
        slept_ms: sleep_ms,
    })
    .expect("plain data serializes"))
}

/// A driver error as a task error: same kind, retryable when the driver says so.
pub fn driver_error(e: DriverError) -> TaskError {
    TaskError {
        kind: e.kind().as_str().into(),
        message: e.message().into(),
        retryable: e.is_retryable(),
    }
}

fn to_json(value: impl Serialize) -> Result<serde_json::Value, TaskError> {
    serde_json::to_value(value).map_err(|e| TaskError {
        kind: "failed".into(),
        message: format!("the report could not be serialized: {e}"),
        retryable: false,
    })
}

/// The generation handed to the PowerShell driver. The agent is not told its cluster's
/// generation, and the FailoverClusters module (and so this driver) exists from 2008 R2 on, so
/// the oldest generation it can drive picks the most compatible scripts.
pub const POWERSHELL_DEFAULT_OS: OsGeneration = OsGeneration::Ws2008r2;

/// Every action [`Builtin`] runs.
pub const BUILTIN_ACTIONS: &[&str] = &[
    "skeleton_copy",
    "share_scan",
    "list_groups",
    "offline_group",
    "online_group",
    "migrate_group",
    "add_disk_resource",
    "remove_resource",
    "set_dependency",
    "assign_drive_letter",
    "gather_facts",
    "echo",
    "read_inventory",
    "read_storage",
    "prepare_disk",
    "replace_disk_resource",
    "remove_group",
];

impl Builtin {
    fn open_driver(&self) -> Result<Arc<dyn ClusterDriver>, TaskError> {
        self.configured_driver()?.ok_or_else(|| TaskError {
            kind: "unsupported".into(),
            message: "this agent runs the sim driver without --sim-dir".into(),
            retryable: false,
        })
    }

    /// The driver, or `None` when the agent has no cluster to drive (the sim driver without
    /// `--sim-dir`): such an agent still answers echo and copies between local folders.
    fn configured_driver(&self) -> Result<Option<Arc<dyn ClusterDriver>>, TaskError> {
        if let Some(driver) = self.opened.0.get() {
            return Ok(Some(Arc::clone(driver)));
        }
        let Some(driver) = self.connect_driver()? else {
            return Ok(None);
        };
        // Two first tasks at once may both open it; either copy serves.
        Ok(Some(Arc::clone(self.opened.0.get_or_init(|| driver))))
    }

    fn connect_driver(&self) -> Result<Option<Arc<dyn ClusterDriver>>, TaskError> {
        match self.driver {
            DriverKind::Sim => {
                let Some(dir) = &self.sim_dir else {
                    return Ok(None);
                };
                Ok(Some(Arc::new(
                    SimDriver::open(dir.clone()).map_err(driver_error)?,
                )))
            }
            DriverKind::PowerShell => Ok(Some(Arc::new(
                crate::driver::powershell::PowerShellDriver::local(POWERSHELL_DEFAULT_OS),
            ))),
        }
    }

    /// Where the Windows paths of one task are on this machine (the driver's answer, or the
    /// paths as given without a driver), and what the task may touch: the `--allow-path` list,
    /// else the driver's cluster disks, else nothing.
    async fn local_paths(&self) -> Result<(Box<dyn LocalPaths>, Confinement), TaskError> {
        let driver = self.configured_driver()?;
        let paths: Box<dyn LocalPaths> = match &driver {
            Some(driver) => driver.local_paths(),
            None => Box::new(PathsAsGiven),
        };
        let state_dir = self.state_dir().map(Path::to_path_buf);
        let confinement = if !self.allow_paths.is_empty() {
            Confinement::new(self.allow_paths.clone(), RootsOrigin::Configured, state_dir)
        } else {
            let roots = match &driver {
                Some(driver) => driver.default_roots().await.map_err(|e| TaskError {
                    message: format!(
                        "the cluster disks this agent may touch (it has no --allow-path) could not be \
                         read: {}",
                        e.message()
                    ),
                    ..driver_error(e)
                })?,
                None => Vec::new(),
            };
            Confinement::new(roots, RootsOrigin::Driver, state_dir)
        };
        Ok((paths, confinement))
    }

    async fn cluster_action(&self, action: Action) -> Result<serde_json::Value, TaskError> {
        let driver = self.open_driver()?;
        let d = driver.as_ref();
        match action {
            Action::ListGroups {} => to_json(d.list_groups().await.map_err(driver_error)?),
            Action::OfflineGroup { group } => {
                outcome_json(d.offline_group(&group).await.map_err(driver_error)?)
            }
            Action::OnlineGroup { group } => {
                outcome_json(d.online_group(&group).await.map_err(driver_error)?)
            }
            // Losses are part of the report, not an error: the caller decides whether to go
            // through an interim cluster.
            Action::MigrateGroup {
                source_cluster,
                group,
            } => to_json(
                d.migrate_group(&source_cluster, &group)
                    .await
                    .map_err(driver_error)?,
            ),
            Action::AddDiskResource {
                group,
                disk,
                drive_letter,
            } => {
                // Lettering first, so the resource reports the letter the task asked for.
                d.assign_drive_letter(&disk, &drive_letter)
                    .await
                    .map_err(driver_error)?;
                to_json(
                    d.add_disk_resource(&group, &disk)
                        .await
                        .map_err(driver_error)?,
                )
            }
            Action::RemoveResource { group, resource } => {
                let removed = d
                    .remove_resource(&group, &resource)
                    .await
                    .map_err(driver_error)?;
                to_json(RemovedReport {
                    group,
                    resource,
                    removed,
                })
            }
            Action::SetDependency {
                group,
                resource,
                depends_on,
            } => to_json(
                d.set_dependencies(&group, &resource, &depends_on)
                    .await
                    .map_err(driver_error)?,
            ),
            Action::AssignDriveLetter { disk, drive_letter } => to_json(
                d.assign_drive_letter(&disk, &drive_letter)
                    .await
                    .map_err(driver_error)?,
            ),
            Action::GatherFacts {} => to_json(d.config_facts().await.map_err(driver_error)?),
            Action::ReadInventory {} => to_json(d.inventory().await.map_err(driver_error)?),
            Action::ReadStorage {
                disks,
                drive_letters,
            } => to_json(
                d.inventory()
                    .await
                    .map_err(driver_error)?
                    .storage_view(&disks, &drive_letters),
            ),
            Action::PrepareDisk { drive_letter } => {
                to_json(d.prepare_disk(&drive_letter).await.map_err(driver_error)?)
            }
            Action::ReplaceDiskResource {
                group,
                disk,
                drive_letter,
            } => to_json(
                d.replace_disk_resource(&group, &disk, &drive_letter)
                    .await
                    .map_err(driver_error)?,
            ),
            Action::RemoveGroup { group } => {
                let removed = d.remove_group(&group).await.map_err(driver_error)?;
                to_json(GroupRemovedReport { removed })
            }
            Action::ShareScan { group } => {
                let group = d.group(&group).await.map_err(driver_error)?;
                let paths = d.local_paths();
                // Hundreds of folders are read from disk: on a blocking thread, so the agent's
                // heartbeats keep flowing meanwhile.
                let report =
                    tokio::task::spawn_blocking(move || scan_shares(group, paths.as_ref()))
                        .await
                        .map_err(|e| TaskError {
                            kind: "io".into(),
                            message: format!("the share scan stopped: {e}"),
                            retryable: true,
                        })?;
                to_json(report)
            }
            // `execute` runs these itself; answering rather than panicking keeps a future caller
            // safe.
            Action::SkeletonCopy { .. } | Action::Echo { .. } => Err(TaskError {
                kind: "unsupported".into(),
                message: "not a cluster driver action".into(),
                retryable: false,
            }),
        }
    }
}

/// Reads each share's folder ACL, the folders found through one resolver for the whole scan.
fn scan_shares(group: ferry_core::model::Group, paths: &dyn LocalPaths) -> ShareScanReport {
    let shares = group
        .shares
        .iter()
        .map(|share| {
            let acl = paths
                .share_folder(&share.path)
                .and_then(|p| acl_summary(&p));
            ScannedShare {
                share: share.clone(),
                acl: acl.as_ref().ok().cloned(),
                acl_error: acl.err(),
            }
        })
        .collect();
    let resources = group
        .resources
        .iter()
        .map(|r| ScannedResource {
            name: r.name.clone(),
            kind: r.kind,
            state: r.state,
        })
        .collect();
    ShareScanReport {
        group: group.name.clone(),
        shares,
        resources,
    }
}

fn outcome_json(outcome: crate::driver::GroupOutcome) -> Result<serde_json::Value, TaskError> {
    // A failed resource fails the task (so `transient` is retried), the message naming each.
    let outcome = outcome.into_result().map_err(driver_error)?;
    to_json(outcome)
}

#[cfg(unix)]
fn acl_summary(path: &std::path::Path) -> Result<AclSummary, String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // The xattr is a 4-byte header and 8 bytes per entry (linux/posix_acl_xattr.h).
    let posix_acl_entries = xattr::get(path, "system.posix_acl_access")
        .ok()
        .flatten()
        .filter(|v| v.len() >= 4)
        .map(|v| ((v.len() - 4) / 8) as u32);
    Ok(AclSummary {
        path: path.display().to_string(),
        uid: meta.uid(),
        gid: meta.gid(),
        mode: meta.mode() & 0o7777,
        posix_acl_entries,
    })
}

#[cfg(not(unix))]
fn acl_summary(path: &std::path::Path) -> Result<AclSummary, String> {
    Err(format!(
        "{}: ACL summaries are read on Unix agents only",
        path.display()
    ))
}

/// The two directories of a skeleton copy: as the task gave them, and where they are on this
/// machine, still to be confined.
struct CopyPaths {
    source: (String, PathBuf),
    destination: (String, PathBuf),
}

/// Confines both directories, then runs the skeleton copy between the resolved ones, all on a
/// blocking thread (resolving a path is file-system work too). A failed verification fails the
/// task with kind `verification_failed`, the report in the message, so nobody mistakes it for a
/// copy.
async fn skeleton_copy(
    paths: CopyPaths,
    confinement: Confinement,
    depth: u32,
    log: PathBuf,
    progress: Arc<dyn Progress>,
) -> Result<serde_json::Value, TaskError> {
    let cancel = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Set when the task's future is dropped (cancellation), so the blocking copy stops too.
    let _guard = CancelOnDrop(cancel.clone());
    let options = crate::skeleton::SkeletonOptions {
        depth,
        log: Some(log),
        threads: 0,
    };
    let report = tokio::task::spawn_blocking(move || {
        let (given, local) = &paths.source;
        let source = confinement.directory("source", given, local)?;
        let (given, local) = &paths.destination;
        let destination = confinement.directory("destination", given, local)?;
        crate::skeleton::copy_skeleton_cancellable(
            &source,
            &destination,
            &options,
            progress.as_ref(),
            &cancel,
        )
        .map_err(|e| TaskError {
            kind: if e.kind() == std::io::ErrorKind::Interrupted {
                "cancelled".into()
            } else {
                "io".into()
            },
            message: e.to_string(),
            retryable: false,
        })
    })
    .await
    .map_err(|e| TaskError {
        kind: "failed".into(),
        message: format!("the skeleton copy panicked: {e}"),
        retryable: false,
    })??;
    let value = to_json(&report)?;
    if report.succeeded() {
        Ok(value)
    } else {
        Err(TaskError {
            kind: "verification_failed".into(),
            message: value.to_string(),
            retryable: false,
        })
    }
}

struct CancelOnDrop(Arc<std::sync::atomic::AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

#[async_trait]
impl Executor for Builtin {
    fn capabilities(&self) -> Vec<String> {
        BUILTIN_ACTIONS.iter().map(|a| (*a).to_string()).collect()
    }

    fn attach(&self, _events: mpsc::Sender<pb::AgentMessage>, _node: &str, state_dir: &Path) {
        // A directory set by `with_state_dir` stays.
        let _ = self.state_dir.set(state_dir.to_path_buf());
    }

    async fn execute(
        &self,
        task: TaskRef,
        action: Action,
        progress: Arc<dyn Progress>,
    ) -> Result<serde_json::Value, TaskError> {
        match action {
            Action::Echo { text, sleep_ms } => echo(text, sleep_ms, progress.as_ref()).await,
            Action::SkeletonCopy {
                source,
                destination,
                depth,
                log_path,
            } => {
                // The server refuses these already; an agent checks again, since it obeys
                // whatever reaches its stream (an older server, a task stored by other means).
                for (field, path) in [("source", &source), ("destination", &destination)] {
                    check_dir_path(path).map_err(|rule| confine::forbidden(field, path, &rule))?;
                }
                let log = confine::log_file(self.state_dir(), task.task_id, &log_path)?;
                let (paths, confinement) = self.local_paths().await?;
                let map = |what: &str, path: &str| {
                    paths.copy_path(path).map_err(|e| TaskError {
                        kind: "not_found".into(),
                        message: format!("the {what} of the skeleton copy: {e}"),
                        retryable: false,
                    })
                };
                let local_source = map("source", &source)?;
                let local_destination = map("destination", &destination)?;
                let paths = CopyPaths {
                    source: (source, local_source),
                    destination: (destination, local_destination),
                };
                skeleton_copy(paths, confinement, depth, log, progress).await
            }
            other => self.cluster_action(other).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NoProgress;

    #[tokio::test]
    async fn echo_answers_its_text() {
        let builtin = Builtin::new(DriverKind::Sim, None);
        let report = builtin
            .execute(
                task(),
                Action::Echo {
                    text: "hi".into(),
                    sleep_ms: 5,
                },
                Arc::new(NoProgress),
            )
            .await
            .unwrap();
        assert_eq!(report, serde_json::json!({"text": "hi", "slept_ms": 5}));
        // The sim driver needs its directory.
        let refused = builtin
            .execute(task(), Action::ListGroups {}, Arc::new(NoProgress))
            .await
            .unwrap_err();
        assert_eq!(refused.kind, "unsupported");
        assert!(!refused.retryable);
    }

    #[test]
    fn drivers_parse() {
        assert_eq!("sim".parse::<DriverKind>(), Ok(DriverKind::Sim));
        assert!("bash".parse::<DriverKind>().is_err());
    }

    fn task() -> TaskRef {
        TaskRef {
            task_id: uuid::Uuid::now_v7(),
            attempt: 1,
            generation: 1,
        }
    }

    #[tokio::test]
    async fn paths_stay_as_given_without_a_simulated_cluster() {
        // Windows resolves its own paths.
        let (ps, _) = Builtin::new(DriverKind::PowerShell, None)
            .with_allow_paths([PathBuf::from("F:\\")])
            .local_paths()
            .await
            .unwrap();
        assert_eq!(
            ps.copy_path("\\\\OLD\\F$\\").unwrap(),
            PathBuf::from("\\\\OLD\\F$\\")
        );
        assert_eq!(
            ps.share_folder("F:\\Shares\\x").unwrap(),
            PathBuf::from("F:\\Shares\\x")
        );

        // No --sim-dir: tasks name local folders (tests, benchmarks), and may name none but
        // those of --allow-path.
        let (local, confinement) = Builtin::new(DriverKind::Sim, None)
            .local_paths()
            .await
            .unwrap();
        assert_eq!(local.copy_path("/tmp/x").unwrap(), PathBuf::from("/tmp/x"));
        assert!(confinement.roots().is_empty());
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_skeleton_copy_is_confined_and_logs_in_the_state_directory() {
        let t = tempfile::tempdir().unwrap();
        let allowed = t.path().join("allowed");
        std::fs::create_dir_all(allowed.join("in/a")).unwrap();
        let state = t.path().join("state");
        let builtin = Builtin::new(DriverKind::Sim, None)
            .with_allow_paths([allowed.clone()])
            .with_state_dir(&state);
        let copy = |source: &Path, destination: &Path, log_path: &str| Action::SkeletonCopy {
            source: source.display().to_string(),
            destination: destination.display().to_string(),
            depth: 3,
            log_path: log_path.into(),
        };
        let run = |action: Action| {
            let task = task();
            let builtin = builtin.clone();
            async move {
                (
                    task,
                    builtin.execute(task, action, Arc::new(NoProgress)).await,
                )
            }
        };
        let (task, done) = run(copy(&allowed.join("in"), &allowed.join("out"), "")).await;
        let report = done.unwrap();
        assert_eq!(report["verification"]["passed"], true, "{report}");
        assert!(allowed.join("out/a").is_dir());
        assert!(
            state
                .join("logs")
                .join(format!("{}.log", task.task_id))
                .is_file()
        );

        let precious = t.path().join("precious.db");
        std::fs::write(&precious, b"keep").unwrap();
        let outside = t.path().join("outside");
        for (action, field) in [
            (copy(t.path(), &allowed.join("o"), ""), "source"),
            (copy(&allowed.join("in"), &outside, ""), "destination"),
            (
                copy(
                    &allowed.join("in"),
                    &allowed.join("o"),
                    &precious.display().to_string(),
                ),
                "log_path",
            ),
            (
                copy(&allowed.join("in/../.."), &allowed.join("o"), ""),
                "source",
            ),
        ] {
            let refused = run(action).await.1.unwrap_err();
            assert_eq!(refused.kind, TaskError::FORBIDDEN, "{refused:?}");
            assert!(refused.message.starts_with(field), "{refused:?}");
        }
        assert_eq!(std::fs::read(&precious).unwrap(), b"keep");
        assert!(!outside.exists());
    }
}
