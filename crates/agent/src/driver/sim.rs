//! The `sim` driver: a simulated Windows failover cluster that behaves where the runbook cares.
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
//! - Every operation takes the configured latency, and faults armed in the state file (fail the
//!   next K calls, hang) apply to every agent of the cluster.
//!
//! State lives in `DIR/cluster.json` (see [`ferry_sim`]); several drivers, in one process or in
//! several, may share it. [`SimDriver::in_memory`] works on a [`SimWorld`] instead, for tests and
//! benchmarks that want no file write per operation.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::json;

use super::{
    ClusterDriver, ConfigFacts, CsvVolumeFacts, DiskReplacement, DriverError, ErrorKind,
    GroupOutcome, MigrationReport, MigrationStatus, NetworkFacts, NodeFacts, PerfSnapshot,
    QuorumFacts, ResourceError, ResourceMigration, ResourceOutcome, normalize_drive_letter,
};
use ferry_core::model::{
    Disk, Group, InventoryDocument, Network, Node, OsGeneration, Resource, ResourceKind,
    ResourceState,
};
use ferry_sim::state::{prop_bool, prop_str, same_name};
use ferry_sim::{
    DISKS_DIR, FaultSpec, STATE_FILE, SimDisk, SimOp, SimState, SimWorld, StateFile, disk_folder,
};

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

/// Where the operation finds disk folders; `None` skips file-system checks.
struct Ctx {
    disks_root: Option<PathBuf>,
}

impl Ctx {
    fn disk_dir(&self, disk: &SimDisk) -> Option<PathBuf> {
        disk.backing.clone().or_else(|| {
            self.disks_root
                .as_ref()
                .map(|root| root.join(disk_folder(&disk.name)))
        })
    }
}

/// What a migration needs of its source, copied out so the source's lock is not held while the
/// target's is taken (two migrations in opposite directions would otherwise deadlock).
struct SourceGroup {
    cluster: String,
    os: OsGeneration,
    group: Option<Group>,
    never_online: BTreeSet<String>,
}

impl SourceGroup {
    fn extract(state: &SimState, group: &str) -> SourceGroup {
        let found = state.group(group).cloned();
        let never_online = found
            .iter()
            .flat_map(|g| g.resources.iter())
            .filter(|r| state.never_online.contains(&r.name))
            .map(|r| r.name.clone())
            .collect();
        SourceGroup {
            cluster: state.cluster.clone(),
            os: state.os,
            group: found,
            never_online,
        }
    }
}

enum Fault {
    Fail(DriverError),
    Hang,
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
        F: FnOnce(&mut SimState, &Ctx, &mut bool) -> R + Send + 'static,
    {
        match &self.inner.backend {
            Backend::Dir { file, .. } => {
                let file = file.clone();
                let ctx = Ctx {
                    disks_root: Some(file.dir().join(DISKS_DIR)),
                };
                tokio::task::spawn_blocking(move || file.transact(|s, dirty| f(s, &ctx, dirty)))
                    .await
                    .map_err(join_error)?
                    .map_err(io_error)
            }
            Backend::Memory { world } => {
                let cluster = &self.inner.cluster;
                let ctx = Ctx {
                    disks_root: world.disks_root(cluster),
                };
                world
                    .update(cluster, |s| f(s, &ctx, &mut false))
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
        F: FnOnce(&mut SimState, &Ctx, &mut bool) -> Result<R, DriverError> + Send + 'static,
    {
        let latency = self.inner.options.latency;
        let gate = self
            .transact(move |state, ctx, dirty| {
                let fault = take_fault(state, op, dirty);
                let delay = latency.unwrap_or_else(|| state.latency.of(op));
                if fault.is_none() && delay.is_zero() {
                    Gate::Ran(f(state, ctx, dirty))
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

/// Consumes one use of the fault armed on `op`, if any.
fn take_fault(state: &mut SimState, op: SimOp, dirty: &mut bool) -> Option<Fault> {
    let spec = state.faults.get_mut(&op)?;
    let (fault, exhausted) = match spec {
        FaultSpec::Fail {
            times,
            kind,
            message,
        } => {
            if *times == 0 {
                (None, true)
            } else {
                *times -= 1;
                let message = message.clone().unwrap_or_else(|| {
                    format!(
                        "injected fault: {op} fails ({} more time(s) after this)",
                        *times
                    )
                });
                (
                    Some(Fault::Fail(DriverError::new(*kind, message))),
                    *times == 0,
                )
            }
        }
        FaultSpec::Hang { times: None } => return Some(Fault::Hang),
        FaultSpec::Hang { times: Some(n) } => {
            if *n == 0 {
                (None, true)
            } else {
                *n -= 1;
                (Some(Fault::Hang), *n == 0)
            }
        }
    };
    if exhausted {
        state.faults.remove(&op);
    }
    *dirty = true;
    fault
}

// ---- operations on the state --------------------------------------------------------------------

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

fn op_offline(
    s: &mut SimState,
    group: &str,
    dirty: &mut bool,
) -> Result<GroupOutcome, DriverError> {
    let gi = group_index(s, group)?;
    let g = &mut s.groups[gi];
    let mut outcomes = Vec::with_capacity(g.resources.len());
    for i in topo_order(&g.resources).into_iter().rev() {
        let r = &mut g.resources[i];
        let changed = r.state != ResourceState::Offline;
        r.state = ResourceState::Offline;
        outcomes.push(ResourceOutcome {
            resource: r.name.clone(),
            kind: r.kind,
            state: r.state,
            changed,
            error: None,
        });
    }
    if outcomes.iter().any(|o| o.changed) || g.state != ResourceState::Offline {
        *dirty = true;
    }
    g.state = ResourceState::Offline;
    Ok(GroupOutcome {
        group: g.name.clone(),
        owner_node: g.owner_node.clone(),
        state: g.state,
        resources: outcomes,
    })
}

fn failed(message: String) -> ResourceError {
    ResourceError {
        kind: ErrorKind::Failed,
        message,
    }
}

/// Splits `F:\Shares\Finance` into `F:` and its folder components.
fn split_drive_path(path: &str) -> Option<(String, Vec<&str>)> {
    let (drive, rest) = path.split_once(':')?;
    let letter = normalize_drive_letter(drive).ok()?;
    let parts = rest
        .split(['\\', '/'])
        .filter(|p| !p.is_empty() && *p != ".")
        .collect::<Vec<_>>();
    if parts.contains(&"..") {
        return None;
    }
    Some((letter, parts))
}

/// Why resource `i` of group `gi` cannot come online now, if it cannot. The flag says the
/// failure consumed the pending Kerberos failure.
fn check_resource(
    s: &SimState,
    ctx: &Ctx,
    gi: usize,
    i: usize,
) -> Result<(), (ResourceError, bool)> {
    let g = &s.groups[gi];
    let r = &g.resources[i];
    match r.kind {
        ResourceKind::PhysicalDisk => {
            let signature = prop_str(r, "signature").unwrap_or_default();
            let Some(disk) = s.disk_by_signature(signature) else {
                let origin = prop_str(r, "cluster")
                    .filter(|c| !c.eq_ignore_ascii_case(&s.cluster))
                    .map(|c| format!(": it is storage of cluster {c}"))
                    .unwrap_or_default();
                return Err((
                    failed(format!(
                        "disk {} (signature {signature}) is not visible to cluster {}{origin}",
                        prop_str(r, "disk").unwrap_or(&r.name),
                        s.cluster
                    )),
                    false,
                ));
            };
            if disk.csv {
                return Err((
                    failed(format!(
                        "disk {} is a Cluster Shared Volume and cannot belong to a group",
                        disk.name
                    )),
                    false,
                ));
            }
            if let Some(dir) = ctx.disk_dir(disk)
                && !dir.is_dir()
            {
                return Err((
                    failed(format!(
                        "disk {} has no volume (folder {} is missing)",
                        disk.name,
                        dir.display()
                    )),
                    false,
                ));
            }
            Ok(())
        }
        ResourceKind::NetworkName if s.kerberos_pending.contains(&r.name) => Err((
            ResourceError {
                kind: ErrorKind::Transient,
                message: format!(
                    "network name {} failed to come online: its Kerberos computer object is \
                     still being updated after the migration; bring it online again",
                    prop_str(r, "dns_name").unwrap_or(&r.name)
                ),
            },
            true,
        )),
        ResourceKind::FileShare => {
            let path = prop_str(r, "path").unwrap_or_default();
            let Some((letter, parts)) = split_drive_path(path) else {
                return Err((
                    failed(format!("share path `{path}` is not a drive path")),
                    false,
                ));
            };
            let disk = g
                .resources
                .iter()
                .filter(|d| {
                    d.kind == ResourceKind::PhysicalDisk && d.state == ResourceState::Online
                })
                .filter_map(|d| s.disk_by_signature(prop_str(d, "signature")?))
                .find(|d| d.drive_letter.as_deref() == Some(letter.as_str()));
            let Some(disk) = disk else {
                return Err((
                    failed(format!(
                        "no online disk with drive letter {letter} in group {}",
                        g.name
                    )),
                    false,
                ));
            };
            if let Some(dir) = ctx.disk_dir(disk) {
                let folder: PathBuf = parts.iter().fold(dir, |p, c| p.join(c));
                if !folder.is_dir() {
                    return Err((
                        failed(format!("folder {path} does not exist on {}", disk.name)),
                        false,
                    ));
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

enum Verdict {
    Online,
    Blocked(ResourceError),
    Failed(ResourceError, bool),
}

fn op_online(
    s: &mut SimState,
    ctx: &Ctx,
    group: &str,
    dirty: &mut bool,
) -> Result<GroupOutcome, DriverError> {
    let gi = group_index(s, group)?;
    let count = s.groups[gi].resources.len();
    let index: HashMap<String, usize> = s.groups[gi]
        .resources
        .iter()
        .enumerate()
        .map(|(i, r)| (r.name.to_lowercase(), i))
        .collect();
    let mut errors: Vec<Option<ResourceError>> = vec![None; count];
    let mut outcomes = Vec::with_capacity(count);
    for i in topo_order(&s.groups[gi].resources) {
        let r = &s.groups[gi].resources[i];
        let before = r.state;
        if before == ResourceState::Online {
            outcomes.push(ResourceOutcome {
                resource: r.name.clone(),
                kind: r.kind,
                state: before,
                changed: false,
                error: None,
            });
            continue;
        }
        let mut blocked = None;
        for dep in &r.depends_on {
            match index.get(&dep.to_lowercase()) {
                None => {
                    blocked = Some(failed(format!("depends on {dep}, which does not exist")));
                    break;
                }
                Some(&j) if s.groups[gi].resources[j].state != ResourceState::Online => {
                    let d = &s.groups[gi].resources[j];
                    // A dependent of a transiently failed resource is as transient as its cause.
                    let kind = errors[j].as_ref().map_or(ErrorKind::Failed, |e| e.kind);
                    blocked = Some(ResourceError {
                        kind,
                        message: format!(
                            "not brought online: depends on {}, which is {}",
                            d.name,
                            d.state.as_str()
                        ),
                    });
                    break;
                }
                Some(_) => {}
            }
        }
        let verdict = match blocked {
            Some(e) => Verdict::Blocked(e),
            None => match check_resource(s, ctx, gi, i) {
                Ok(()) => Verdict::Online,
                Err((e, consumed_kerberos)) => Verdict::Failed(e, consumed_kerberos),
            },
        };
        let r = &mut s.groups[gi].resources[i];
        let name = r.name.clone();
        let (after, error, consumed_kerberos) = match verdict {
            Verdict::Online => (ResourceState::Online, None, false),
            // A resource waiting on a failed dependency is not itself failed.
            Verdict::Blocked(e) => (before, Some(e), false),
            Verdict::Failed(e, consumed) => (ResourceState::Failed, Some(e), consumed),
        };
        r.state = after;
        let outcome = ResourceOutcome {
            resource: name.clone(),
            kind: r.kind,
            state: after,
            changed: after != before,
            error: error.clone(),
        };
        if after != before || consumed_kerberos {
            *dirty = true;
        }
        if after == ResourceState::Online {
            s.never_online.remove(&name);
        }
        if consumed_kerberos {
            s.kerberos_pending.remove(&name);
        }
        errors[i] = error;
        outcomes.push(outcome);
    }
    let first_node = s.nodes.first().map(|n| n.name.clone());
    let g = &mut s.groups[gi];
    let state = aggregate(&g.resources, ResourceState::Online);
    if g.state != state {
        g.state = state;
        *dirty = true;
    }
    if g.owner_node.is_none() && first_node.is_some() {
        g.owner_node = first_node;
        *dirty = true;
    }
    Ok(GroupOutcome {
        group: g.name.clone(),
        owner_node: g.owner_node.clone(),
        state: g.state,
        resources: outcomes,
    })
}

/// Whether the Cluster Migration Wizard of `target` accepts a `source` cluster, with the reason
/// when it does not.
pub fn check_migration_path(source: OsGeneration, target: OsGeneration) -> Result<(), DriverError> {
    use OsGeneration::*;
    if target == Ws2003 {
        return Err(DriverError::Unsupported(
            "Windows Server 2003 has no Cluster Migration Wizard: a ws2003 cluster cannot be a \
             migration target"
                .into(),
        ));
    }
    if target < source {
        return Err(DriverError::Unsupported(format!(
            "cannot migrate from {source} to the older {target}: the Migration Wizard only \
             moves groups to the same or a newer Windows Server"
        )));
    }
    if target >= Ws2012 && source < Ws2008 {
        return Err(DriverError::Unsupported(format!(
            "the Copy Cluster Roles wizard of {target} accepts source clusters running Windows \
             Server 2008 (SP2), 2008 R2 (SP1) or 2012 and later, not {source}: route the group \
             through an interim ws2008 cluster"
        )));
    }
    Ok(())
}

/// KB 983840: the 2008 R2 Migration Wizard drops File Share resources of a 2003 cluster.
pub fn loses_file_shares(source: OsGeneration, target: OsGeneration) -> bool {
    source == OsGeneration::Ws2003 && target == OsGeneration::Ws2008r2
}

fn kb983840_reason() -> String {
    "KB 983840: the Migration Wizard of Windows Server 2008 R2 does not migrate File Share \
     resources from a Windows Server 2003 cluster; migrate through an interim ws2008 cluster"
        .into()
}

/// `base`, else `base (1)`, `base (2)`... the first name `taken` refuses.
fn unique_resource_name(taken: impl Fn(&str) -> bool, base: &str) -> String {
    if !taken(base) {
        return base.to_string();
    }
    (1..)
        .map(|n| format!("{base} ({n})"))
        .find(|c| !taken(c))
        .expect("an unused suffix exists")
}

fn share_name(r: &Resource) -> Option<&str> {
    prop_str(r, "share_name")
}

fn op_migrate(
    t: &mut SimState,
    src: SourceGroup,
    group: &str,
    dirty: &mut bool,
) -> Result<MigrationReport, DriverError> {
    check_migration_path(src.os, t.os)?;
    let kb = loses_file_shares(src.os, t.os);
    let lost_reason = |r: &Resource| -> Option<String> {
        if r.kind != ResourceKind::FileShare {
            None
        } else if kb {
            Some(kb983840_reason())
        } else if src.os >= OsGeneration::Ws2008 && src.never_online.contains(&r.name) {
            Some(format!(
                "file share {} was never online on {}: the Migration Wizard reads shares from \
                 the running file server, so bring the group online there first",
                share_name(r).unwrap_or(&r.name),
                src.cluster
            ))
        } else {
            None
        }
    };
    let mut report = MigrationReport {
        group: group.to_string(),
        source_cluster: src.cluster.clone(),
        source_os: Some(src.os),
        target_os: Some(t.os),
        already_present: false,
        resources: Vec::new(),
        shares_migrated: Vec::new(),
        shares_lost: Vec::new(),
    };

    if let Some(existing) = t.group(group) {
        report.already_present = true;
        report.group = existing.name.clone();
        let Some(sg) = &src.group else {
            report.resources = existing
                .resources
                .iter()
                .map(|r| ResourceMigration {
                    resource: r.name.clone(),
                    kind: r.kind,
                    status: MigrationStatus::Migrated,
                    target_name: Some(r.name.clone()),
                    reason: None,
                })
                .collect();
            report.shares_migrated = existing.shares.iter().map(|s| s.name.clone()).collect();
            return Ok(report);
        };
        for r in &sg.resources {
            let renamed_prefix = format!("{} (", r.name.to_lowercase());
            let found = existing
                .resources
                .iter()
                .find(|e| {
                    let lower = e.name.to_lowercase();
                    lower == r.name.to_lowercase() || lower.starts_with(&renamed_prefix)
                })
                // The runbook swaps the migrated disk resource for one of this cluster's disks;
                // a retried migration still counts the source's disk as arrived.
                .or_else(|| {
                    (r.kind == ResourceKind::PhysicalDisk)
                        .then(|| {
                            existing
                                .resources
                                .iter()
                                .find(|e| e.kind == ResourceKind::PhysicalDisk)
                        })
                        .flatten()
                });
            report.resources.push(match found {
                Some(e) => ResourceMigration {
                    resource: r.name.clone(),
                    kind: r.kind,
                    status: MigrationStatus::Migrated,
                    target_name: Some(e.name.clone()),
                    reason: None,
                },
                None => ResourceMigration {
                    resource: r.name.clone(),
                    kind: r.kind,
                    status: MigrationStatus::Lost,
                    target_name: None,
                    reason: Some(lost_reason(r).unwrap_or_else(|| {
                        format!(
                            "not in the group {} that already exists on {}",
                            existing.name, t.cluster
                        )
                    })),
                },
            });
        }
        for share in &sg.shares {
            let present = existing
                .shares
                .iter()
                .any(|s| same_name(&s.name, &share.name));
            if present {
                report.shares_migrated.push(share.name.clone());
            } else {
                report.shares_lost.push(share.name.clone());
            }
        }
        return Ok(report);
    }

    let Some(sg) = src.group.clone() else {
        return Err(DriverError::NotFound(format!(
            "cluster {} has no group named {group}",
            src.cluster
        )));
    };
    report.group = sg.name.clone();
    // Names given in this migration, not yet in the state.
    let mut assigned: BTreeSet<String> = BTreeSet::new();
    let mut renames: HashMap<String, String> = HashMap::new();
    let mut lost_shares: BTreeSet<String> = BTreeSet::new();
    let mut resources = Vec::with_capacity(sg.resources.len());
    for r in &sg.resources {
        if let Some(reason) = lost_reason(r) {
            if let Some(share) = share_name(r) {
                lost_shares.insert(share.to_lowercase());
            }
            report.resources.push(ResourceMigration {
                resource: r.name.clone(),
                kind: r.kind,
                status: MigrationStatus::Lost,
                target_name: None,
                reason: Some(reason),
            });
            continue;
        }
        // Resource names are unique cluster-wide; the target often has its own `Cluster Disk 1`.
        let name = unique_resource_name(
            |n| t.name_taken(n) || assigned.contains(&n.to_lowercase()),
            &r.name,
        );
        assigned.insert(name.to_lowercase());
        renames.insert(r.name.to_lowercase(), name.clone());
        let mut migrated = r.clone();
        migrated.name = name.clone();
        migrated.state = ResourceState::Offline;
        resources.push(migrated);
        report.resources.push(ResourceMigration {
            resource: r.name.clone(),
            kind: r.kind,
            status: MigrationStatus::Migrated,
            target_name: Some(name),
            reason: None,
        });
    }
    for r in &mut resources {
        r.depends_on = r
            .depends_on
            .iter()
            .filter_map(|d| renames.get(&d.to_lowercase()).cloned())
            .collect();
        match r.kind {
            ResourceKind::NetworkName if t.kerberos || prop_bool(r, "require_kerberos") => {
                t.kerberos_pending.insert(r.name.clone());
            }
            ResourceKind::FileShare => {
                t.never_online.insert(r.name.clone());
            }
            _ => {}
        }
    }
    let mut shares = Vec::with_capacity(sg.shares.len());
    for share in sg.shares {
        if lost_shares.contains(&share.name.to_lowercase()) {
            report.shares_lost.push(share.name);
        } else {
            report.shares_migrated.push(share.name.clone());
            shares.push(share);
        }
    }
    t.groups.push(Group {
        name: sg.name,
        owner_node: t.nodes.first().map(|n| n.name.clone()),
        state: ResourceState::Offline,
        resources,
        shares,
    });
    *dirty = true;
    Ok(report)
}

fn op_add_disk(
    s: &mut SimState,
    group: &str,
    disk: &str,
    dirty: &mut bool,
) -> Result<Resource, DriverError> {
    let gi = group_index(s, group)?;
    let Some(d) = s.disk(disk) else {
        let available: Vec<&str> = s
            .disks
            .iter()
            .filter(|d| !d.csv && s.disk_owner(&d.signature).is_none())
            .map(|d| d.name.as_str())
            .collect();
        return Err(DriverError::NotFound(format!(
            "cluster {} has no disk named {disk} (available storage: {})",
            s.cluster,
            if available.is_empty() {
                "none".to_string()
            } else {
                available.join(", ")
            }
        )));
    };
    if d.csv {
        return Err(DriverError::Conflict(format!(
            "disk {} is a Cluster Shared Volume and cannot be added to a group",
            d.name
        )));
    }
    if let Some((owner, r)) = s.disk_owner(&d.signature) {
        return if owner.name == s.groups[gi].name {
            Ok(r.clone())
        } else {
            Err(DriverError::Conflict(format!(
                "disk {} already belongs to group {}",
                d.name, owner.name
            )))
        };
    }
    let mut properties = ferry_core::model::Properties::new();
    properties.insert("disk".into(), json!(d.name));
    properties.insert("signature".into(), json!(d.signature));
    if let Some(letter) = &d.drive_letter {
        properties.insert("drive_letter".into(), json!(letter));
    }
    properties.insert("cluster".into(), json!(s.cluster));
    let resource = Resource {
        name: d.name.clone(),
        kind: ResourceKind::PhysicalDisk,
        state: ResourceState::Offline,
        properties,
        depends_on: Vec::new(),
    };
    let g = &mut s.groups[gi];
    g.resources.push(resource.clone());
    g.state = aggregate(&g.resources, g.state);
    *dirty = true;
    Ok(resource)
}

fn op_remove(
    s: &mut SimState,
    group: &str,
    resource: &str,
    dirty: &mut bool,
) -> Result<bool, DriverError> {
    let gi = group_index(s, group)?;
    let Some(ri) = s.groups[gi]
        .resources
        .iter()
        .position(|r| same_name(&r.name, resource))
    else {
        let elsewhere = s
            .groups
            .iter()
            .find(|g| g.resources.iter().any(|r| same_name(&r.name, resource)));
        return match elsewhere {
            Some(other) => Err(DriverError::Conflict(format!(
                "resource {resource} belongs to group {}, not {group}",
                other.name
            ))),
            None => Ok(false),
        };
    };
    let r = &s.groups[gi].resources[ri];
    if !matches!(r.state, ResourceState::Offline | ResourceState::Failed) {
        return Err(DriverError::Conflict(format!(
            "resource {} is {}: take it offline before deleting it",
            r.name,
            r.state.as_str()
        )));
    }
    let g = &mut s.groups[gi];
    let removed = g.resources.remove(ri);
    for other in &mut g.resources {
        other.depends_on.retain(|d| !same_name(d, &removed.name));
    }
    // Deleting a File Share resource deletes its share.
    if removed.kind == ResourceKind::FileShare
        && let Some(share) = share_name(&removed)
    {
        g.shares.retain(|sh| !same_name(&sh.name, share));
    }
    g.state = aggregate(&g.resources, ResourceState::Offline);
    s.kerberos_pending.remove(&removed.name);
    s.never_online.remove(&removed.name);
    *dirty = true;
    Ok(true)
}

fn op_set_dependencies(
    s: &mut SimState,
    group: &str,
    resource: &str,
    depends_on: &[String],
    dirty: &mut bool,
) -> Result<Resource, DriverError> {
    let gi = group_index(s, group)?;
    let g = &s.groups[gi];
    let Some(ri) = g
        .resources
        .iter()
        .position(|r| same_name(&r.name, resource))
    else {
        return Err(DriverError::NotFound(format!(
            "group {} has no resource named {resource}",
            g.name
        )));
    };
    let mut deps: Vec<String> = Vec::with_capacity(depends_on.len());
    for dep in depends_on {
        let Some(found) = g.resources.iter().find(|r| same_name(&r.name, dep)) else {
            return Err(DriverError::NotFound(format!(
                "group {} has no resource named {dep} for {} to depend on",
                g.name, g.resources[ri].name
            )));
        };
        if found.name == g.resources[ri].name {
            return Err(DriverError::Conflict(format!(
                "resource {} cannot depend on itself",
                found.name
            )));
        }
        if !deps.contains(&found.name) {
            deps.push(found.name.clone());
        }
    }
    // A dependency on something that (transitively) depends on this resource would be a cycle.
    let index: HashMap<String, usize> = g
        .resources
        .iter()
        .enumerate()
        .map(|(i, r)| (r.name.to_lowercase(), i))
        .collect();
    let mut stack: Vec<usize> = deps.iter().map(|d| index[&d.to_lowercase()]).collect();
    let mut seen = vec![false; g.resources.len()];
    while let Some(j) = stack.pop() {
        if j == ri {
            return Err(DriverError::Conflict(format!(
                "making {} depend on {} would create a dependency cycle",
                g.resources[ri].name,
                deps.join(", ")
            )));
        }
        if std::mem::replace(&mut seen[j], true) {
            continue;
        }
        stack.extend(
            g.resources[j]
                .depends_on
                .iter()
                .filter_map(|d| index.get(&d.to_lowercase()).copied()),
        );
    }
    let r = &mut s.groups[gi].resources[ri];
    if r.depends_on != deps {
        r.depends_on = deps;
        *dirty = true;
    }
    Ok(r.clone())
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

fn op_assign_letter(
    s: &mut SimState,
    disk: &str,
    letter: &str,
    dirty: &mut bool,
) -> Result<Disk, DriverError> {
    let letter = normalize_drive_letter(letter)?;
    let Some(di) = s.disks.iter().position(|d| same_name(&d.name, disk)) else {
        return Err(DriverError::NotFound(format!(
            "cluster {} has no disk named {disk}",
            s.cluster
        )));
    };
    let d = &s.disks[di];
    if d.drive_letter.as_deref() == Some(letter.as_str()) {
        return Ok(model_disk(d));
    }
    if d.csv {
        return Err(DriverError::Conflict(format!(
            "disk {} is a Cluster Shared Volume, reached under C:\\ClusterStorage, not by letter",
            d.name
        )));
    }
    if letter == "C:" {
        return Err(DriverError::Conflict(
            "C: is the system drive of every node".into(),
        ));
    }
    if let Some(other) = s
        .disks
        .iter()
        .find(|o| o.drive_letter.as_deref() == Some(letter.as_str()))
        .filter(|_| !s.letters_repeat)
    {
        return Err(DriverError::Conflict(format!(
            "drive letter {letter} is already used by disk {}",
            other.name
        )));
    }
    let signature = d.signature.clone();
    s.disks[di].drive_letter = Some(letter.clone());
    for g in &mut s.groups {
        for r in g.resources.iter_mut().filter(|r| {
            r.kind == ResourceKind::PhysicalDisk
                && prop_str(r, "signature").is_some_and(|x| x.eq_ignore_ascii_case(&signature))
        }) {
            r.properties.insert("drive_letter".into(), json!(letter));
        }
    }
    *dirty = true;
    Ok(model_disk(&s.disks[di]))
}

/// A disk some group could take: not a CSV, held by no group's physical disk resource (the sim
/// knows a disk by its signature, which a resource keeps across a rename).
fn is_free(s: &SimState, d: &SimDisk) -> bool {
    !d.csv && s.disk_owner(&d.signature).is_none()
}

fn op_prepare_disk(s: &mut SimState, letter: &str, dirty: &mut bool) -> Result<Disk, DriverError> {
    let letter = normalize_drive_letter(letter)?;
    if let Some(d) = s.disks.iter().find(|d| {
        d.drive_letter.as_deref() == Some(letter.as_str())
            && !(s.letters_repeat && s.disk_owner(&d.signature).is_some())
    }) {
        if let Some((owner, _)) = s.disk_owner(&d.signature) {
            return Err(DriverError::Conflict(format!(
                "drive letter {letter} is taken on cluster {} by disk {} of group {}",
                s.cluster, d.name, owner.name
            )));
        }
        // A retry after the letter was given, or a disk an operator prepared by hand.
        return Ok(model_disk(d));
    }
    if letter == "C:" {
        return Err(DriverError::Conflict(
            "C: is the system drive of every node".into(),
        ));
    }
    // An unlettered disk first: a lettered one may be in use outside the cluster's groups.
    let pick = s
        .disks
        .iter()
        .position(|d| is_free(s, d) && d.drive_letter.is_none())
        .or_else(|| s.disks.iter().position(|d| is_free(s, d)));
    let Some(di) = pick else {
        return Err(DriverError::NotFound(format!(
            "cluster {} has no disk in available storage (every disk belongs to a group or is a \
             Cluster Shared Volume): present a spare LUN to it",
            s.cluster
        )));
    };
    let name = s.disks[di].name.clone();
    op_assign_letter(s, &name, &letter, dirty)
}

fn op_replace_disk(
    s: &mut SimState,
    group: &str,
    disk: &str,
    letter: &str,
    dirty: &mut bool,
) -> Result<DiskReplacement, DriverError> {
    let letter = normalize_drive_letter(letter)?;
    let gi = group_index(s, group)?;
    let group_name = s.groups[gi].name.clone();
    let Some(d) = s.disk(disk) else {
        return Err(DriverError::NotFound(format!(
            "cluster {} has no disk named {disk}",
            s.cluster
        )));
    };
    if d.csv {
        return Err(DriverError::Conflict(format!(
            "disk {} is a Cluster Shared Volume and cannot belong to a group",
            d.name
        )));
    }
    let (disk_name, signature) = (d.name.clone(), d.signature.clone());
    let current = match s.disk_owner(&signature) {
        Some((owner, r)) if same_name(&owner.name, &group_name) => Some(r.name.clone()),
        Some((owner, _)) => {
            return Err(DriverError::Conflict(format!(
                "disk {disk_name} belongs to group {}, not {group_name}",
                owner.name
            )));
        }
        None => None,
    };
    let others: Vec<String> = s.groups[gi]
        .resources
        .iter()
        .filter(|r| {
            r.kind == ResourceKind::PhysicalDisk
                && current.as_deref().is_none_or(|c| !same_name(c, &r.name))
        })
        .map(|r| r.name.clone())
        .collect();
    // Every refusal comes before the first change, so a refused call leaves the group as it was.
    if let Some(r) = s.groups[gi].resources.iter().find(|r| {
        others.contains(&r.name)
            && !matches!(r.state, ResourceState::Offline | ResourceState::Failed)
    }) {
        return Err(DriverError::Conflict(format!(
            "disk resource {} of group {group_name} is {}: take the group offline first",
            r.name,
            r.state.as_str()
        )));
    }
    // The letter may still sit on a disk of this cluster that one of the replaced resources
    // holds; it moves with the replacement. On any other disk it is a conflict.
    let replaced_signatures: Vec<String> = s.groups[gi]
        .resources
        .iter()
        .filter(|r| others.contains(&r.name))
        .filter_map(|r| prop_str(r, "signature").map(str::to_owned))
        .collect();
    if letter == "C:" {
        return Err(DriverError::Conflict(
            "C: is the system drive of every node".into(),
        ));
    }
    if let Some(other) = s.disks.iter().find(|o| {
        !s.letters_repeat
            && o.drive_letter.as_deref() == Some(letter.as_str())
            && o.signature != signature
            && !replaced_signatures
                .iter()
                .any(|sig| sig.eq_ignore_ascii_case(&o.signature))
    }) {
        let holder = s
            .disk_owner(&other.signature)
            .map(|(g, _)| format!(" of group {}", g.name))
            .unwrap_or_default();
        return Err(DriverError::Conflict(format!(
            "drive letter {letter} is already used by disk {}{holder}",
            other.name
        )));
    }
    for other in s.disks.iter_mut().filter(|o| {
        o.drive_letter.as_deref() == Some(letter.as_str())
            && o.signature != signature
            && replaced_signatures
                .iter()
                .any(|sig| sig.eq_ignore_ascii_case(&o.signature))
    }) {
        other.drive_letter = None;
        *dirty = true;
    }
    op_assign_letter(s, &disk_name, &letter, dirty)?;
    let resource = match current {
        Some(name) => name,
        None => op_add_disk(s, &group_name, &disk_name, dirty)?.name,
    };
    let mut report = DiskReplacement {
        resource: resource.clone(),
        ..DiskReplacement::default()
    };
    let replaced = |name: &str| others.iter().any(|o| same_name(o, name));
    let g = &mut s.groups[gi];
    for r in g.resources.iter_mut() {
        if same_name(&r.name, &resource) || !r.depends_on.iter().any(|d| replaced(d)) {
            continue;
        }
        let mut deps: Vec<String> = Vec::with_capacity(r.depends_on.len());
        for dep in &r.depends_on {
            let dep = if replaced(dep) { &resource } else { dep };
            if !deps.iter().any(|d| same_name(d, dep)) {
                deps.push(dep.clone());
            }
        }
        r.depends_on = deps;
        report.repointed.push(r.name.clone());
    }
    g.resources.retain(|r| !replaced(&r.name));
    g.state = aggregate(&g.resources, ResourceState::Offline);
    for name in &others {
        s.kerberos_pending.remove(name);
        s.never_online.remove(name);
    }
    if !others.is_empty() {
        *dirty = true;
    }
    report.removed = others;
    Ok(report)
}

fn op_remove_group(s: &mut SimState, group: &str, dirty: &mut bool) -> Result<bool, DriverError> {
    let Some(gi) = s.group_index(group) else {
        return Ok(false);
    };
    let g = &s.groups[gi];
    if let Some(r) = g.resources.iter().find(|r| {
        matches!(
            r.state,
            ResourceState::Online | ResourceState::Pending | ResourceState::PartialOnline
        )
    }) {
        return Err(DriverError::Conflict(format!(
            "group {} is online (resource {} is {}): take it offline first",
            g.name,
            r.name,
            r.state.as_str()
        )));
    }
    // The group's disks stay in the cluster's storage: deleting a disk resource makes its disk
    // available again, which is what releases the data disk for the source. The letter goes with
    // the resource, so a later group asking for that letter gets a fresh disk, not this one with
    // the removed group's folders on it.
    let removed = s.groups.remove(gi);
    for r in &removed.resources {
        s.kerberos_pending.remove(&r.name);
        s.never_online.remove(&r.name);
        if r.kind == ResourceKind::PhysicalDisk
            && let Some(signature) = prop_str(r, "signature")
            && let Some(disk) = s
                .disks
                .iter_mut()
                .find(|d| d.signature.eq_ignore_ascii_case(signature))
        {
            disk.drive_letter = None;
        }
    }
    *dirty = true;
    Ok(true)
}

fn op_inventory(s: &SimState) -> InventoryDocument {
    InventoryDocument {
        nodes: s
            .nodes
            .iter()
            .map(|n| Node {
                name: n.name.clone(),
                address: n.address.clone(),
                processor: n.processor.clone(),
                facts: [
                    ("virtual_switches".to_string(), json!(n.virtual_switches)),
                    ("ntlm_enabled".to_string(), json!(n.ntlm_enabled)),
                    ("hbas".to_string(), json!(n.hbas)),
                ]
                .into_iter()
                .collect(),
            })
            .collect(),
        networks: s
            .networks
            .iter()
            .map(|n| Network {
                name: n.name.clone(),
                role: n.role,
                metric: n.metric,
                subnet: n.subnet.clone(),
            })
            .collect(),
        disks: s
            .disks
            .iter()
            .map(|d| {
                let mut disk = model_disk(d);
                // Where letters repeat, a group's letter is private to it (like a mount point):
                // only disks in available storage show theirs.
                if s.letters_repeat && s.disk_owner(&d.signature).is_some() {
                    disk.drive_letter = None;
                }
                disk
            })
            .collect(),
        groups: s.groups.clone(),
    }
}

fn op_config_facts(s: &SimState) -> ConfigFacts {
    ConfigFacts {
        cluster: Some(s.cluster.clone()),
        os: Some(s.os),
        networks: s
            .networks
            .iter()
            .map(|n| NetworkFacts {
                name: n.name.clone(),
                role: n.role,
                metric: n.metric,
                auto_metric: Some(n.auto_metric),
                subnet: n.subnet.clone(),
                ipsec_enabled: Some(n.ipsec_enabled),
                client_for_microsoft_networks: Some(n.client_for_microsoft_networks),
                file_and_printer_sharing: Some(n.file_and_printer_sharing),
            })
            .collect(),
        nodes: s
            .nodes
            .iter()
            .map(|n| NodeFacts {
                name: n.name.clone(),
                processor: n.processor.clone(),
                virtual_switches: n.virtual_switches.clone(),
                ntlm_enabled: Some(n.ntlm_enabled),
                hbas: n.hbas.clone(),
                processor_compatibility: Some(n.processor_compatibility),
            })
            .collect(),
        csv_volumes: s
            .disks
            .iter()
            .filter(|d| d.csv)
            .enumerate()
            .map(|(k, d)| CsvVolumeFacts {
                name: d.name.clone(),
                path: format!("C:\\ClusterStorage\\Volume{}", k + 1),
                size_bytes: d.size_bytes,
                free_bytes: d.free_bytes,
            })
            .collect(),
        quorum: Some(QuorumFacts {
            quorum_type: s.quorum,
            node_count: s.nodes.len() as u32,
        }),
        live_migration_qos: Some(s.live_migration_qos),
    }
}

fn op_perf(s: &SimState, at: DateTime<Utc>) -> PerfSnapshot {
    let nodes: Vec<String> = s.nodes.iter().map(|n| n.name.clone()).collect();
    s.perf.sample(s.seed, &s.cluster, &nodes, at)
}

#[async_trait]
impl ClusterDriver for SimDriver {
    fn driver_name(&self) -> &'static str {
        "sim"
    }

    async fn list_groups(&self) -> Result<Vec<Group>, DriverError> {
        self.run(SimOp::ListGroups, |s, _, _| Ok(s.groups.clone()))
            .await
    }

    /// Counts as `list_groups` for faults and latency, without copying every group.
    async fn group(&self, name: &str) -> Result<Group, DriverError> {
        let name = name.to_string();
        self.run(SimOp::ListGroups, move |s, _, _| {
            Ok(s.groups[group_index(s, &name)?].clone())
        })
        .await
    }

    async fn inventory(&self) -> Result<InventoryDocument, DriverError> {
        self.run(SimOp::Inventory, |s, _, _| Ok(op_inventory(s)))
            .await
    }

    async fn offline_group(&self, group: &str) -> Result<GroupOutcome, DriverError> {
        let group = group.to_string();
        self.run(SimOp::OfflineGroup, move |s, _, dirty| {
            op_offline(s, &group, dirty)
        })
        .await
    }

    async fn online_group(&self, group: &str) -> Result<GroupOutcome, DriverError> {
        let group = group.to_string();
        self.run(SimOp::OnlineGroup, move |s, ctx, dirty| {
            op_online(s, ctx, &group, dirty)
        })
        .await
    }

    async fn migrate_group(
        &self,
        source_cluster: &str,
        group: &str,
    ) -> Result<MigrationReport, DriverError> {
        let source = self.read_source(source_cluster, group).await?;
        let group = group.to_string();
        self.run(SimOp::MigrateGroup, move |s, _, dirty| {
            op_migrate(s, source, &group, dirty)
        })
        .await
    }

    async fn add_disk_resource(&self, group: &str, disk: &str) -> Result<Resource, DriverError> {
        let (group, disk) = (group.to_string(), disk.to_string());
        self.run(SimOp::AddDiskResource, move |s, _, dirty| {
            op_add_disk(s, &group, &disk, dirty)
        })
        .await
    }

    async fn remove_resource(&self, group: &str, resource: &str) -> Result<bool, DriverError> {
        let (group, resource) = (group.to_string(), resource.to_string());
        self.run(SimOp::RemoveResource, move |s, _, dirty| {
            op_remove(s, &group, &resource, dirty)
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
        self.run(SimOp::SetDependencies, move |s, _, dirty| {
            op_set_dependencies(s, &group, &resource, &depends_on, dirty)
        })
        .await
    }

    async fn assign_drive_letter(&self, disk: &str, letter: &str) -> Result<Disk, DriverError> {
        let (disk, letter) = (disk.to_string(), letter.to_string());
        self.run(SimOp::AssignDriveLetter, move |s, _, dirty| {
            op_assign_letter(s, &disk, &letter, dirty)
        })
        .await
    }

    async fn prepare_disk(&self, letter: &str) -> Result<Disk, DriverError> {
        let letter = letter.to_string();
        self.run(SimOp::PrepareDisk, move |s, _, dirty| {
            op_prepare_disk(s, &letter, dirty)
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
        self.run(SimOp::ReplaceDiskResource, move |s, _, dirty| {
            op_replace_disk(s, &group, &disk, &letter, dirty)
        })
        .await
    }

    async fn remove_group(&self, group: &str) -> Result<bool, DriverError> {
        let group = group.to_string();
        self.run(SimOp::RemoveGroup, move |s, _, dirty| {
            op_remove_group(s, &group, dirty)
        })
        .await
    }

    async fn config_facts(&self) -> Result<ConfigFacts, DriverError> {
        self.run(SimOp::ConfigFacts, |s, _, _| Ok(op_config_facts(s)))
            .await
    }

    async fn perf_counters(&self, at: DateTime<Utc>) -> Result<Option<PerfSnapshot>, DriverError> {
        self.run(SimOp::PerfCounters, move |s, _, _| Ok(Some(op_perf(s, at))))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn migration_paths_follow_the_wizards() {
        use OsGeneration::*;
        assert!(check_migration_path(Ws2003, Ws2008).is_ok());
        assert!(check_migration_path(Ws2003, Ws2008r2).is_ok());
        assert!(check_migration_path(Ws2008, Ws2008r2).is_ok());
        for target in [Ws2012, Ws2012r2, Ws2016, Ws2022, Ws2025] {
            let err = check_migration_path(Ws2003, target).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Unsupported);
            assert!(err.message().contains("interim"), "{err}");
            assert!(check_migration_path(Ws2008, target).is_ok());
            assert!(check_migration_path(Ws2008r2, target).is_ok());
            assert!(check_migration_path(Ws2012, target).is_ok());
        }
        assert!(check_migration_path(Ws2012, Ws2008r2).is_err());
        assert!(check_migration_path(Ws2003, Ws2003).is_err());
        assert!(loses_file_shares(Ws2003, Ws2008r2));
        assert!(!loses_file_shares(Ws2003, Ws2008));
        assert!(!loses_file_shares(Ws2008, Ws2008r2));
    }

    #[test]
    fn config_facts_carry_processor_compatibility_and_live_migration_qos() {
        let options = ferry_sim::SimCreateOptions::new("unused", "HV", OsGeneration::Ws2012r2);
        let mut state = ferry_sim::generate(&options).unwrap().state;
        let facts = op_config_facts(&state);
        assert!(
            facts
                .nodes
                .iter()
                .all(|n| n.processor_compatibility == Some(false))
        );
        assert_eq!(facts.live_migration_qos, Some(false));

        state.nodes[0].processor_compatibility = true;
        state.live_migration_qos = true;
        let facts = op_config_facts(&state);
        assert_eq!(facts.nodes[0].processor_compatibility, Some(true));
        assert_eq!(facts.live_migration_qos, Some(true));

        // A state file written before these settings existed still loads, with both off.
        let mut old = serde_json::to_value(&state).unwrap();
        old.as_object_mut().unwrap().remove("live_migration_qos");
        old["nodes"][0]
            .as_object_mut()
            .unwrap()
            .remove("processor_compatibility");
        let old: SimState = serde_json::from_value(old).unwrap();
        assert!(!old.live_migration_qos);
        assert!(!old.nodes[0].processor_compatibility);
    }

    #[test]
    fn drive_paths_split() {
        let (letter, parts) = split_drive_path("f:\\Shares\\Финансы\\").unwrap();
        assert_eq!(letter, "F:");
        assert_eq!(parts, vec!["Shares", "Финансы"]);
        assert!(split_drive_path("\\\\server\\share").is_none());
        assert!(split_drive_path("F:\\..\\etc").is_none());
    }

    #[test]
    fn unique_names_get_suffixes() {
        let taken: BTreeSet<String> = ["cluster disk 1", "cluster disk 1 (1)"]
            .into_iter()
            .map(String::from)
            .collect();
        let taken = |n: &str| taken.contains(&n.to_lowercase());
        assert_eq!(
            unique_resource_name(taken, "cluster DISK 1"),
            "cluster DISK 1 (2)"
        );
        assert_eq!(unique_resource_name(taken, "Other"), "Other");
    }
}
