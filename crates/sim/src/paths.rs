//! Where the Windows paths an agent is handed are on this machine, for a simulated cluster.
//!
//! A skeleton copy names its source and destination as a Windows node would (`F:\`,
//! `\\CLUSTER\F$\`), and a share names its folder on a drive (`F:\Shares\Finance`). In the
//! simulation those drives are folders (see the layout in the crate documentation):
//!
//! - `X:\rest` is `rest` on the disk lettered `X:` of this cluster;
//! - `\\HOST\X$\rest` is `rest` on the disk lettered `X:` of the simulated cluster named `HOST`
//!   or having a node of that name: this one, else a sibling under the same sim root, as a
//!   migration finds its source. Only administrative drive shares are served;
//! - anything else is a path of this machine (a test's temporary folder) and stays as it is.
//!
//! Where a path may lead is the agent's decision, not the mapping's: by default an agent of a
//! simulated cluster may touch the disk folders of its cluster and of the sibling clusters under
//! the same sim root ([`SimPaths::disk_folders`]), the simulated counterpart of a node's cluster
//! disks and the administrative shares a migration reads.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use ferry_core::model::{ResourceKind, ResourceState};

use crate::disk_dir;
use crate::state::{SimState, prop_str};
use crate::store::{STATE_FILE, StateFile, load_state};

/// Maps the Windows paths of one task onto the folders of the simulated cluster in a directory.
/// The cluster's state is read at most once per resolver, on the first path that needs it, so a
/// share scan reads it once rather than once per share, and a copy between local folders not at
/// all.
#[derive(Debug)]
pub struct SimPaths {
    file: Arc<StateFile>,
    own: OnceLock<Result<ClusterDrives, String>>,
}

impl SimPaths {
    /// Paths of the cluster whose state `file` is (the driver's, so its cache serves).
    pub fn new(file: Arc<StateFile>) -> SimPaths {
        SimPaths {
            file,
            own: OnceLock::new(),
        }
    }

    fn own(&self) -> Result<&ClusterDrives, String> {
        self.own
            .get_or_init(|| {
                self.file
                    .read(|state| ClusterDrives::of(self.file.dir(), state))
                    .map_err(|e| format!("{e:#}"))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// A skeleton copy's source or destination: a drive or UNC path onto a simulated disk, any
    /// other path as it is.
    pub fn copy_path(&self, path: &str) -> Result<PathBuf, String> {
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
            return match self.own() {
                Ok(own) if own.serves(host) => own.disk_path(letter, rest),
                _ => sibling_serving(self.file.dir(), host)?.disk_path(letter, rest),
            };
        }
        match drive_path(path) {
            Some((letter, rest)) => self.own()?.disk_path(letter, rest),
            None => Ok(PathBuf::from(path)),
        }
    }

    /// The folder of every disk of this cluster and of the sibling clusters under the same sim
    /// root (a presented disk's folder is its backing folder): every folder a drive or UNC path
    /// of [`Self::copy_path`] can lead into. A sibling whose state cannot be read is left out, so
    /// it contributes nothing.
    pub fn disk_folders(&self) -> Result<Vec<PathBuf>, String> {
        let mut folders = self
            .file
            .read(|state| disk_folders_of(self.file.dir(), state))
            .map_err(|e| format!("{e:#}"))?;
        let own = self.file.dir();
        let own = own.canonicalize().unwrap_or_else(|_| own.to_path_buf());
        if let Some(parent) = own.parent()
            && let Ok(entries) = std::fs::read_dir(parent)
        {
            for dir in entries.filter_map(|e| e.ok().map(|e| e.path())) {
                if dir != own
                    && dir.join(STATE_FILE).is_file()
                    && let Ok(state) = load_state(&dir)
                {
                    folders.extend(disk_folders_of(&dir, &state));
                }
            }
        }
        folders.sort();
        folders.dedup();
        Ok(folders)
    }

    /// The folder of a share's path (`F:\Shares\Finance`), on the first disk of this cluster
    /// with that letter. A share lives on a drive, so a path without one is an error.
    pub fn share_folder(&self, path: &str) -> Result<PathBuf, String> {
        let own = self.own()?;
        let (letter, rest) = path
            .split_once(':')
            .ok_or_else(|| format!("share path {path} has no drive letter"))?;
        let letter = format!("{}:", letter.to_ascii_uppercase());
        let disk = own
            .disks
            .iter()
            .find(|d| d.letter == letter)
            .ok_or_else(|| format!("no disk has drive {letter}"))?;
        Ok(join_windows_path(disk.folder.clone(), rest))
    }
}

fn disk_folders_of(dir: &Path, state: &SimState) -> Vec<PathBuf> {
    state.disks.iter().map(|d| disk_dir(dir, d)).collect()
}

/// What mapping paths needs of one cluster: its names and where its lettered disks are.
#[derive(Debug)]
struct ClusterDrives {
    cluster: String,
    nodes: Vec<String>,
    disks: Vec<LetteredDisk>,
}

#[derive(Debug)]
struct LetteredDisk {
    /// Upper case, with its colon: `F:`.
    letter: String,
    folder: PathBuf,
    /// Only a disk that is online, or in available storage, has its volume mounted.
    mounted: bool,
}

impl ClusterDrives {
    fn of(dir: &Path, state: &SimState) -> ClusterDrives {
        // The state of each disk's resource, found once: the first holder of a signature, as
        // `SimState::disk_owner` finds it, without a walk over every group per disk.
        let mut held: HashMap<String, ResourceState> = HashMap::new();
        for r in state
            .groups
            .iter()
            .flat_map(|g| g.resources.iter())
            .filter(|r| r.kind == ResourceKind::PhysicalDisk)
        {
            if let Some(signature) = prop_str(r, "signature") {
                held.entry(signature.to_ascii_lowercase())
                    .or_insert(r.state);
            }
        }
        let disks = state
            .disks
            .iter()
            .filter_map(|d| {
                Some(LetteredDisk {
                    letter: d.drive_letter.as_deref()?.to_ascii_uppercase(),
                    folder: disk_dir(dir, d),
                    mounted: held
                        .get(&d.signature.to_ascii_lowercase())
                        .is_none_or(|state| *state == ResourceState::Online),
                })
            })
            .collect();
        ClusterDrives {
            cluster: state.cluster.clone(),
            nodes: state.nodes.iter().map(|n| n.name.clone()).collect(),
            disks,
        }
    }

    fn load(dir: &Path) -> io::Result<ClusterDrives> {
        load_state(dir).map(|state| ClusterDrives::of(dir, &state))
    }

    /// Whether `host` names this cluster or one of its nodes.
    fn serves(&self, host: &str) -> bool {
        self.cluster.eq_ignore_ascii_case(host)
            || self.nodes.iter().any(|n| n.eq_ignore_ascii_case(host))
    }

    /// `rest` under the folder of the disk lettered `letter`. Where simulated letters repeat
    /// (past the 21st group), the disk whose volume is mounted is the one a path names.
    fn disk_path(&self, letter: &str, rest: &str) -> Result<PathBuf, String> {
        let letter = format!("{}:", letter.to_ascii_uppercase());
        let lettered = || self.disks.iter().filter(|d| d.letter == letter);
        let disk = lettered()
            .find(|d| d.mounted)
            .or_else(|| lettered().next())
            .ok_or_else(|| format!("no disk of {} has drive {letter}", self.cluster))?;
        Ok(join_windows_path(disk.folder.clone(), rest))
    }
}

/// `F:\rest` as (`F`, `rest`).
fn drive_path(path: &str) -> Option<(&str, &str)> {
    let (letter, rest) = path.split_once(':')?;
    (letter.len() == 1 && letter.chars().all(|c| c.is_ascii_alphabetic())).then_some((letter, rest))
}

/// `rest` (separated by `\` or `/`) under `folder`; `.` and `..` are dropped, so no path leaves
/// the disk.
fn join_windows_path(mut folder: PathBuf, rest: &str) -> PathBuf {
    folder.extend(
        rest.split(['\\', '/'])
            .filter(|c| !c.is_empty() && *c != "." && *c != ".."),
    );
    folder
}

/// The sibling of the cluster in `own` (a directory under the same sim root) that `host` names,
/// by cluster or node name: `SIMROOT/<host>` first, then the others in name order.
fn sibling_serving(own: &Path, host: &str) -> Result<ClusterDrives, String> {
    let own = own.canonicalize().unwrap_or_else(|_| own.to_path_buf());
    let parent = own
        .parent()
        .ok_or_else(|| format!("{} has no sim root above it", own.display()))?;
    let is_cluster = |dir: &Path| dir.join(STATE_FILE).is_file();
    let serving = |dir: &Path| {
        ClusterDrives::load(dir)
            .ok()
            .filter(|drives| drives.serves(host))
    };
    let named = parent.join(host);
    if is_cluster(&named)
        && let Some(drives) = serving(&named)
    {
        return Ok(drives);
    }
    let mut siblings: Vec<PathBuf> = std::fs::read_dir(parent)
        .map_err(|e| format!("{}: {e}", parent.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| *p != own && is_cluster(p))
        .collect();
    siblings.sort();
    siblings.iter().find_map(|p| serving(p)).ok_or_else(|| {
        format!(
            "no simulated cluster or node named {host} under {}",
            parent.display()
        )
    })
}
