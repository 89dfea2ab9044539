//! The state file of a simulated cluster, shared by every agent process of that cluster.
//!
//! Every access takes an advisory lock on `DIR/.cluster.lock` (shared to read, exclusive to
//! change), then reads, mutates and writes `DIR/cluster.json` atomically (temporary file and
//! rename), then unlocks. The lock lives on a separate file because the rename replaces the
//! state file's inode: a lock held on the old inode would not exclude a process that opened the
//! new one.
//!
//! Parsing the whole file on every call would make a 1,000-group cluster slow, so each
//! [`StateFile`] keeps the last state it saw and a revision number. Writers bump the revision
//! stored in the lock file; a reader whose cached revision and file stamp (size, mtime, inode)
//! still match skips the parse. A hand edit of `cluster.json` changes the stamp and is picked up.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use crate::state::{STATE_FORMAT, SimState};

pub const STATE_FILE: &str = "cluster.json";
pub const LOCK_FILE: &str = ".cluster.lock";
/// One JSON line per change an operation asked for, appended by whichever agent ran it: what a
/// test counts to prove each step of a job ran once per attempt.
pub const OPERATIONS_LOG: &str = "operations.log";
const TEMP_FILE: &str = "cluster.json.tmp";

/// One line of [`OPERATIONS_LOG`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OperationRecord {
    /// `SimOp::as_str`.
    pub op: String,
    /// The group, disk or drive letter it named.
    pub subject: String,
    /// `ok`, or the error's kind.
    pub outcome: String,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// Identity of the state file's current content, cheap to read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

impl Stamp {
    fn of(path: &Path) -> io::Result<Stamp> {
        let meta = fs::metadata(path)?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let inode = 0;
        Ok(Stamp {
            len: meta.len(),
            modified: meta.modified().ok(),
            inode,
        })
    }
}

struct Cached {
    rev: u64,
    stamp: Stamp,
    state: SimState,
}

struct Inner {
    lock: File,
    cache: Option<Cached>,
}

/// Locked, cached access to one cluster's `cluster.json`.
pub struct StateFile {
    dir: PathBuf,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for StateFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateFile").field("dir", &self.dir).finish()
    }
}

/// Releases the advisory lock however the critical section ends.
struct LockGuard<'a>(&'a File);

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

fn open_lock(dir: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(LOCK_FILE))
}

fn read_rev(lock: &File) -> io::Result<u64> {
    let mut text = String::new();
    let mut file = lock;
    file.seek(SeekFrom::Start(0))?;
    file.read_to_string(&mut text)?;
    Ok(text.trim().parse().unwrap_or(0))
}

fn write_rev(lock: &File, rev: u64) -> io::Result<()> {
    let mut file = lock;
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(rev.to_string().as_bytes())
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

fn load(path: &Path) -> io::Result<SimState> {
    let bytes = fs::read(path)?;
    let state: SimState = serde_json::from_slice(&bytes).map_err(|e| {
        invalid(format!(
            "{} is not a simulated cluster: {e}",
            path.display()
        ))
    })?;
    if state.format > STATE_FORMAT {
        return Err(invalid(format!(
            "{} has state format {}, newer than this ferry understands ({STATE_FORMAT})",
            path.display(),
            state.format
        )));
    }
    Ok(state)
}

/// Writes next to the target and renames, so a reader sees the old or the new file, never half.
/// No fsync: the simulation needs atomicity against concurrent agents, not durability.
fn store(dir: &Path, state: &SimState) -> io::Result<Stamp> {
    let temp = dir.join(TEMP_FILE);
    let target = dir.join(STATE_FILE);
    {
        let mut out = io::BufWriter::new(File::create(&temp)?);
        serde_json::to_writer(&mut out, state).map_err(io::Error::other)?;
        out.flush()?;
    }
    fs::rename(&temp, &target)?;
    Stamp::of(&target)
}

impl StateFile {
    /// Opens the state of the simulated cluster in `dir`; `NotFound` when there is none.
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<StateFile> {
        let dir = dir.into();
        let path = dir.join(STATE_FILE);
        if !path.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "no simulated cluster in {} ({STATE_FILE} is missing)",
                    dir.display()
                ),
            ));
        }
        let lock = open_lock(&dir)?;
        Ok(StateFile {
            dir,
            inner: Mutex::new(Inner { lock, cache: None }),
        })
    }

    /// Writes a fresh state into `dir` (created if needed), under the lock, replacing any state
    /// there.
    pub fn create(dir: &Path, state: &SimState) -> io::Result<StateFile> {
        fs::create_dir_all(dir)?;
        let lock = open_lock(dir)?;
        {
            lock.lock()?;
            let _guard = LockGuard(&lock);
            let rev = read_rev(&lock)? + 1;
            write_rev(&lock, rev)?;
            store(dir, state)?;
        }
        StateFile::open(dir)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends `record` to the cluster's operation log, under the exclusive lock so lines from
    /// several agent processes never interleave.
    pub fn log_operation(&self, record: &OperationRecord) -> io::Result<()> {
        let mut line = serde_json::to_vec(record).map_err(io::Error::other)?;
        line.push(b'\n');
        let guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        guard.lock.lock()?;
        let _unlock = LockGuard(&guard.lock);
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(OPERATIONS_LOG))?
            .write_all(&line)
    }

    /// Runs `f` on the current state under a shared lock.
    pub fn read<R>(&self, f: impl FnOnce(&SimState) -> R) -> io::Result<R> {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Inner { lock, cache } = &mut *guard;
        lock.lock_shared()?;
        let _unlock = LockGuard(lock);
        refresh(&self.dir, lock, cache)?;
        Ok(f(&cache.as_ref().expect("refreshed").state))
    }

    /// Runs `f` on the current state under an exclusive lock. `f` sets its `dirty` flag when it
    /// changed the state, and must not change it otherwise: only dirty states are written.
    pub fn transact<R>(&self, f: impl FnOnce(&mut SimState, &mut bool) -> R) -> io::Result<R> {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Inner { lock, cache } = &mut *guard;
        lock.lock()?;
        let _unlock = LockGuard(lock);
        let rev = refresh(&self.dir, lock, cache)?;
        let cached = cache.as_mut().expect("refreshed");
        let mut dirty = false;
        let result = f(&mut cached.state, &mut dirty);
        if dirty {
            // Bump the revision first: if the rename then fails, other readers merely re-parse.
            let next = rev + 1;
            match write_rev(lock, next).and_then(|_| store(&self.dir, &cached.state)) {
                Ok(stamp) => {
                    cached.rev = next;
                    cached.stamp = stamp;
                }
                Err(e) => {
                    // The cache holds a change the file does not: forget it.
                    *cache = None;
                    return Err(e);
                }
            }
        }
        Ok(result)
    }
}

/// Brings the cache up to date with the file; returns the current revision.
fn refresh(dir: &Path, lock: &File, cache: &mut Option<Cached>) -> io::Result<u64> {
    let rev = read_rev(lock)?;
    let path = dir.join(STATE_FILE);
    let stamp = Stamp::of(&path)?;
    let fresh = cache
        .as_ref()
        .is_some_and(|c| c.rev == rev && c.stamp == stamp);
    if !fresh {
        let state = load(&path)?;
        *cache = Some(Cached { rev, stamp, state });
    }
    Ok(rev)
}

/// The operation log of the simulated cluster in `dir`, oldest first; empty when nothing changed
/// it yet.
pub fn read_operations(dir: &Path) -> io::Result<Vec<OperationRecord>> {
    let text = match fs::read_to_string(dir.join(OPERATIONS_LOG)) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    text.lines()
        .map(|line| {
            serde_json::from_str(line)
                .map_err(|e| invalid(format!("{OPERATIONS_LOG}: {e}: {line}")))
        })
        .collect()
}

/// Reads the state in `dir` once, without keeping a cache.
pub fn load_state(dir: &Path) -> io::Result<SimState> {
    StateFile::open(dir)?.read(|s| s.clone())
}
