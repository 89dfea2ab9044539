//! What an agent does with each action. The session loop only knows the [`Executor`] trait, so
//! tests can count or script executions; [`Builtin`] is the executor of `ferry agent`.
//!
//! Cluster actions go through a [`ClusterDriver`] opened per task, so a simulated cluster edited
//! by another process (faults, latency) is seen as it is now. Driver errors keep their kind
//! (`not_found`, `conflict`, `transient`, `failed`, `timeout`, `unsupported`) so the retry policy
//! can act on them. Cancellation aborts the task's future: a driver call is dropped where it
//! stands, and the skeleton copy stops at its next directory.
//!
//! Paths of a skeleton copy are Windows paths (`F:\`, `\\CLUSTER\F$\`). The PowerShell driver
//! runs on Windows and uses them as given. For the sim driver, `X:\rest` is the folder of the disk
//! lettered `X:` of this agent's cluster and `\\CLUSTER\X$\rest` the one of the sibling simulated
//! cluster `CLUSTER` (see [`ferry_sim`] for the layout); a relative log path goes under the sim
//! directory's `logs/` (under the process's working directory for other drivers).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::Progress;
use crate::driver::sim::SimDriver;
use crate::driver::{ClusterDriver, DriverError};
use ferry_core::model::{Action, OsGeneration, TaskError};
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
    /// open, and the node the agent serves: executors that report unasked (perf batches,
    /// inventory) start doing so here.
    fn attach(&self, events: mpsc::Sender<pb::AgentMessage>, node: &str) {
        let _ = (events, node);
    }

    /// Runs one action. Success is the executor's report as JSON, which must be the report of the
    /// action's kind: the session types it for the wire by that kind (`TaskReport::from_json`).
    async fn execute(
        &self,
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
            opened: OpenedDriver::default(),
        }
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

    fn attach(&self, events: mpsc::Sender<pb::AgentMessage>, node: &str) {
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
        action: Action,
        progress: Arc<dyn Progress>,
    ) -> Result<serde_json::Value, TaskError> {
        let scan = matches!(action, Action::ShareScan { .. });
        let result = self.inner.execute(action, progress).await;
        // The scan also refreshes the server's view of the cluster; best effort, the task's
        // own result is what the caller waits for.
        if scan
            && result.is_ok()
            && self.inventory_report_due()
            && let Some(events) = self.events.get()
            && let Ok(driver) = self.inner.open_driver()
        {
            match driver.inventory().await {
                Ok(inventory) => crate::reports::send_inventory(events, inventory),
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
        if let Some(driver) = self.opened.0.get() {
            return Ok(Arc::clone(driver));
        }
        let driver = self.connect_driver()?;
        // Two first tasks at once may both open it; either copy serves.
        Ok(Arc::clone(self.opened.0.get_or_init(|| driver)))
    }

    fn connect_driver(&self) -> Result<Arc<dyn ClusterDriver>, TaskError> {
        match self.driver {
            DriverKind::Sim => {
                let Some(dir) = &self.sim_dir else {
                    return Err(TaskError {
                        kind: "unsupported".into(),
                        message: "this agent runs the sim driver without --sim-dir".into(),
                        retryable: false,
                    });
                };
                Ok(Arc::new(
                    SimDriver::open(dir.clone()).map_err(driver_error)?,
                ))
            }
            DriverKind::PowerShell => Ok(Arc::new(
                crate::driver::powershell::PowerShellDriver::local(POWERSHELL_DEFAULT_OS),
            )),
        }
    }

    async fn cluster_action(&self, action: Action) -> Result<serde_json::Value, TaskError> {
        let driver = self.open_driver()?;
        let d = driver.as_ref();
        match action {
            Action::ListGroups => to_json(d.list_groups().await.map_err(driver_error)?),
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
            Action::GatherFacts => to_json(d.config_facts().await.map_err(driver_error)?),
            Action::ReadInventory => to_json(d.inventory().await.map_err(driver_error)?),
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
                // Hundreds of folders are read from disk: on a blocking thread, so the agent's
                // heartbeats keep flowing meanwhile.
                let this = self.clone();
                let report = tokio::task::spawn_blocking(move || this.scan_shares(group))
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

    /// Reads each share's folder ACL. The sim's drive letters are looked up once for the whole
    /// scan rather than per share.
    fn scan_shares(&self, group: ferry_core::model::Group) -> ShareScanReport {
        let disks: Option<Result<Vec<(String, PathBuf)>, String>> =
            match (self.driver, &self.sim_dir) {
                (DriverKind::Sim, Some(dir)) => Some(
                    ferry_sim::load_state(dir)
                        .map_err(|e| format!("{e:#}"))
                        .map(|state| {
                            state
                                .disks
                                .iter()
                                .filter_map(|d| {
                                    let letter = d.drive_letter.as_deref()?.to_ascii_uppercase();
                                    Some((letter, ferry_sim::disk_dir(dir, d)))
                                })
                                .collect()
                        }),
                ),
                _ => None,
            };
        let folder = |path: &str| -> Result<PathBuf, String> {
            let Some(disks) = &disks else {
                return Ok(PathBuf::from(path));
            };
            let disks = disks.as_ref().map_err(Clone::clone)?;
            let (letter, rest) = path
                .split_once(':')
                .ok_or_else(|| format!("share path {path} has no drive letter"))?;
            let letter = format!("{}:", letter.to_ascii_uppercase());
            let (_, root) = disks
                .iter()
                .find(|(l, _)| *l == letter)
                .ok_or_else(|| format!("no disk has drive {letter}"))?;
            let mut dir = root.clone();
            dir.extend(
                rest.split(['\\', '/'])
                    .filter(|c| !c.is_empty() && *c != "." && *c != ".."),
            );
            Ok(dir)
        };
        let shares = group
            .shares
            .iter()
            .map(|share| {
                let acl = folder(&share.path).and_then(|p| acl_summary(&p));
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

    /// Where a skeleton copy's source or destination is on this machine (see the module
    /// documentation): drive and UNC paths map onto simulated disks for the sim, a local path
    /// (a test's temporary directory) stays as it is, and Windows resolves everything itself.
    fn copy_path(&self, path: &str) -> Result<PathBuf, String> {
        let (DriverKind::Sim, Some(dir)) = (self.driver, &self.sim_dir) else {
            return Ok(PathBuf::from(path));
        };
        if let Some(unc) = path.strip_prefix("\\\\") {
            let mut parts = unc.splitn(3, '\\');
            let host = parts.next().unwrap_or_default();
            let share = parts.next().unwrap_or_default();
            let rest = parts.next().unwrap_or_default();
            let letter = share
                .strip_suffix('$')
                .filter(|l| l.len() == 1 && l.chars().all(|c| c.is_ascii_alphabetic()))
                .ok_or_else(|| {
                    format!(
                        "{path}: the simulated cluster only serves administrative drive shares \
                         such as \\\\{host}\\F$"
                    )
                })?;
            let cluster_dir = sim_cluster_dir(dir, host)?;
            return sim_disk_path(&cluster_dir, letter, rest);
        }
        match drive_path(path) {
            Some((letter, rest)) => sim_disk_path(dir, letter, rest),
            None => Ok(PathBuf::from(path)),
        }
    }

    /// Where a skeleton copy writes its log: a relative path goes under the sim directory's
    /// `logs/` (created), so the logs of a simulated cluster stay next to its state; for other
    /// drivers it stays relative to the agent's working directory.
    fn log_path(&self, log_path: &str) -> Result<PathBuf, String> {
        if log_path.is_empty() {
            return Ok(PathBuf::new());
        }
        let (DriverKind::Sim, Some(dir)) = (self.driver, &self.sim_dir) else {
            return Ok(PathBuf::from(log_path));
        };
        if log_path.starts_with("\\\\") || drive_path(log_path).is_some() {
            return self.copy_path(log_path);
        }
        let path = Path::new(log_path);
        if path.is_absolute() {
            return Ok(path.to_path_buf());
        }
        let logs = dir.join(SIM_LOG_DIR);
        std::fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;
        Ok(logs.join(path))
    }
}

/// Folder under a simulated cluster's directory holding the logs of relative `log_path`s.
pub const SIM_LOG_DIR: &str = "logs";

/// `F:\rest` as (`F`, `rest`).
fn drive_path(path: &str) -> Option<(&str, &str)> {
    let (letter, rest) = path.split_once(':')?;
    (letter.len() == 1 && letter.chars().all(|c| c.is_ascii_alphabetic())).then_some((letter, rest))
}

/// `rest` under the folder of the disk lettered `letter` of the simulated cluster in `dir`.
fn sim_disk_path(dir: &Path, letter: &str, rest: &str) -> Result<PathBuf, String> {
    let letter = format!("{}:", letter.to_ascii_uppercase());
    let state = ferry_sim::load_state(dir).map_err(|e| format!("{e:#}"))?;
    let lettered = || {
        state.disks.iter().filter(|d| {
            d.drive_letter
                .as_deref()
                .is_some_and(|l| l.eq_ignore_ascii_case(&letter))
        })
    };
    // Only a disk that is online has its volume mounted: where simulated letters repeat (past
    // the 21st group), the online disk is the one a path names.
    let mounted = |d: &&ferry_sim::SimDisk| {
        state
            .disk_owner(&d.signature)
            .is_none_or(|(_, r)| r.state == ferry_core::model::ResourceState::Online)
    };
    let disk = lettered()
        .find(mounted)
        .or_else(|| lettered().next())
        .ok_or_else(|| format!("no disk of {} has drive {letter}", state.cluster))?;
    let mut path = ferry_sim::disk_dir(dir, disk);
    path.extend(
        rest.split(['\\', '/'])
            .filter(|c| !c.is_empty() && *c != "." && *c != ".."),
    );
    Ok(path)
}

/// The directory of the simulated cluster named `host` (or having a node of that name): this
/// agent's own, else a sibling under the same sim root, as a migration finds its source.
fn sim_cluster_dir(own: &Path, host: &str) -> Result<PathBuf, String> {
    let serves = |dir: &Path| {
        ferry_sim::load_state(dir).is_ok_and(|s| {
            s.cluster.eq_ignore_ascii_case(host)
                || s.nodes.iter().any(|n| n.name.eq_ignore_ascii_case(host))
        })
    };
    if serves(own) {
        return Ok(own.to_path_buf());
    }
    let own = own.canonicalize().unwrap_or_else(|_| own.to_path_buf());
    let parent = own
        .parent()
        .ok_or_else(|| format!("{} has no sim root above it", own.display()))?;
    let is_cluster = |dir: &Path| dir.join(ferry_sim::STATE_FILE).is_file();
    let named = parent.join(host);
    if is_cluster(&named) && serves(&named) {
        return Ok(named);
    }
    let mut siblings: Vec<PathBuf> = std::fs::read_dir(parent)
        .map_err(|e| format!("{}: {e}", parent.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| *p != own && is_cluster(p))
        .collect();
    siblings.sort();
    siblings.into_iter().find(|p| serves(p)).ok_or_else(|| {
        format!(
            "no simulated cluster or node named {host} under {}",
            parent.display()
        )
    })
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

/// Runs a skeleton copy on a blocking thread. A failed verification fails the task with kind
/// `verification_failed`, the report in the message, so nobody mistakes it for a copy.
async fn skeleton_copy(
    source: PathBuf,
    destination: PathBuf,
    depth: u32,
    log_path: PathBuf,
    progress: Arc<dyn Progress>,
) -> Result<serde_json::Value, TaskError> {
    let cancel = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Set when the task's future is dropped (cancellation), so the blocking copy stops too.
    let _guard = CancelOnDrop(cancel.clone());
    let options = crate::skeleton::SkeletonOptions {
        depth,
        log: (!log_path.as_os_str().is_empty()).then_some(log_path),
        threads: 0,
    };
    let report = tokio::task::spawn_blocking(move || {
        crate::skeleton::copy_skeleton_cancellable(
            &source,
            &destination,
            &options,
            progress.as_ref(),
            &cancel,
        )
    })
    .await
    .map_err(|e| TaskError {
        kind: "failed".into(),
        message: format!("the skeleton copy panicked: {e}"),
        retryable: false,
    })?
    .map_err(|e| TaskError {
        kind: if e.kind() == std::io::ErrorKind::Interrupted {
            "cancelled".into()
        } else {
            "io".into()
        },
        message: e.to_string(),
        retryable: false,
    })?;
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

    async fn execute(
        &self,
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
                let resolve = |what: &str, path: Result<PathBuf, String>| {
                    path.map_err(|e| TaskError {
                        kind: "not_found".into(),
                        message: format!("the {what} of the skeleton copy: {e}"),
                        retryable: false,
                    })
                };
                let source = resolve("source", self.copy_path(&source))?;
                let destination = resolve("destination", self.copy_path(&destination))?;
                let log_path = resolve("log", self.log_path(&log_path))?;
                skeleton_copy(source, destination, depth, log_path, progress).await
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
            .execute(Action::ListGroups, Arc::new(NoProgress))
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
        let b = Builtin::new(DriverKind::Sim, Some(mid.clone()));

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

        // A relative log goes under the sim directory's logs/, an absolute one stays.
        assert_eq!(
            b.log_path("skeleton-FS01.log").unwrap(),
            mid.join(SIM_LOG_DIR).join("skeleton-FS01.log")
        );
        assert!(mid.join(SIM_LOG_DIR).is_dir());
        assert_eq!(
            b.log_path("/var/log/s.log").unwrap(),
            PathBuf::from("/var/log/s.log")
        );
        assert_eq!(b.log_path("").unwrap(), PathBuf::new());

        // Windows resolves its own paths.
        let ps = Builtin::new(DriverKind::PowerShell, None);
        assert_eq!(
            ps.copy_path("\\\\OLD\\F$\\").unwrap(),
            PathBuf::from("\\\\OLD\\F$\\")
        );
        assert_eq!(ps.log_path("s.log").unwrap(), PathBuf::from("s.log"));
    }
}
