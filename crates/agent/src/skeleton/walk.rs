//! What the copy and the verification walk share: directories opened by descriptor (a root by
//! its path, links in it followed; every other directory by name under its open parent, never
//! through a link), a directory's entries read in one pass, the worker pool that runs a tree of
//! tasks depth-first, and the bounded lists their findings go into.

use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io::{self, ErrorKind};
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use rustix::fs::{self as rfs, FileType, Mode, OFlags};
use rustix::io::Errno;

/// Big enough for any directory entry (names are at most 255 bytes), and for a few hundred
/// per `getdents` call.
const DIR_BUFFER: usize = 64 * 1024;
pub(super) const PROGRESS_EVERY: u64 = 1024;

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(super) fn invalid(msg: &str) -> io::Error {
    io::Error::new(ErrorKind::InvalidInput, msg.to_owned())
}

pub(super) fn with_path(e: impl Into<io::Error>, what: &str, path: &Path) -> io::Error {
    let e = e.into();
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

#[allow(clippy::unnecessary_cast)]
pub(super) fn file_type(st: &rfs::Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode as rfs::RawMode)
}

#[allow(clippy::unnecessary_cast)]
pub(super) fn dev_ino(st: &rfs::Stat) -> (u64, u64) {
    (st.st_dev as u64, st.st_ino as u64)
}

// ---------------------------------------------------------------------------------------
// Directory handles: a root opened by path, or a name under an open parent.

pub(super) enum Loc {
    Open(File),
    At(Arc<File>, CString),
}

/// Opens directories with `O_NOATIME` while the kernel allows it, so that reading the
/// source, and the destination while verifying, does not disturb the access times being
/// copied; the first refusal (not the owner, no `CAP_FOWNER`) turns it off.
pub(super) struct Opener {
    noatime: AtomicBool,
}

impl Opener {
    pub(super) fn new() -> Self {
        Self {
            noatime: AtomicBool::new(cfg!(any(target_os = "linux", target_os = "android"))),
        }
    }

    pub(super) fn open_at(&self, parent: &File, name: &CStr) -> rustix::io::Result<File> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if self.noatime.load(Relaxed) {
            match rfs::openat(parent, name, flags | OFlags::NOATIME, Mode::empty()) {
                Err(Errno::PERM) => self.noatime.store(false, Relaxed),
                r => return r.map(File::from),
            }
        }
        rfs::openat(parent, name, flags, Mode::empty()).map(File::from)
    }

    /// A root, named by the caller: symbolic links in its path are followed.
    pub(super) fn open_root(&self, path: &Path) -> rustix::io::Result<File> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if self.noatime.load(Relaxed) {
            match rfs::open(path, flags | OFlags::NOATIME, Mode::empty()) {
                Err(Errno::PERM) => self.noatime.store(false, Relaxed),
                r => return r.map(File::from),
            }
        }
        rfs::open(path, flags, Mode::empty()).map(File::from)
    }

    pub(super) fn open(&self, loc: Loc) -> rustix::io::Result<File> {
        match loc {
            Loc::Open(f) => Ok(f),
            Loc::At(parent, name) => self.open_at(&parent, &name),
        }
    }
}

/// Calls `f` for every entry of the directory but `.` and `..`, with the type the directory
/// reports (`Unknown` on file systems that do not fill `d_type`).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(super) fn read_dir(
    fd: BorrowedFd<'_>,
    buf: &mut Vec<u8>,
    mut f: impl FnMut(&CStr, FileType, u64),
) -> rustix::io::Result<()> {
    let mut dir = rfs::RawDir::new(fd, buf.spare_capacity_mut());
    while let Some(entry) = dir.next() {
        let entry = entry?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            f(name, entry.file_type(), entry.ino());
        }
    }
    Ok(())
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(super) fn read_dir(
    fd: BorrowedFd<'_>,
    _buf: &mut Vec<u8>,
    mut f: impl FnMut(&CStr, FileType, u64),
) -> rustix::io::Result<()> {
    let mut dir = rfs::Dir::read_from(fd)?;
    while let Some(entry) = dir.read() {
        let entry = entry?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            f(name, entry.file_type(), entry.ino());
        }
    }
    Ok(())
}

pub(super) fn child(rel: &Path, name: &CStr) -> PathBuf {
    rel.join(OsStr::from_bytes(name.to_bytes()))
}

// ---------------------------------------------------------------------------------------
// Bounded lists and the work pool.

pub(super) struct Listed {
    items: Mutex<Vec<String>>,
    count: AtomicU64,
    cap: usize,
}

impl Listed {
    pub(super) fn new(cap: usize) -> Self {
        Self {
            items: Mutex::new(Vec::new()),
            count: AtomicU64::new(0),
            cap,
        }
    }

    /// Returns whether the item was kept.
    pub(super) fn push(&self, item: impl FnOnce() -> String) -> bool {
        if self.count.fetch_add(1, Relaxed) < self.cap as u64 {
            lock(&self.items).push(item());
            true
        } else {
            false
        }
    }

    pub(super) fn take(self) -> (Vec<String>, u64) {
        let mut items = self
            .items
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        items.sort_unstable();
        (items, self.count.into_inner())
    }
}

/// Runs `work` over a tree of tasks on `threads` workers: each call may push more tasks.
/// The queue is one LIFO stack, so the walk stays depth-first and the parents kept open by
/// queued children stay few.
pub(super) fn run_pool<T, F>(threads: usize, init: Vec<T>, work: F)
where
    T: Send,
    F: Fn(T, &mut Vec<u8>, &mut Vec<T>) + Sync,
{
    if threads <= 1 {
        let mut buf = Vec::with_capacity(DIR_BUFFER);
        let mut stack = init;
        let mut out = Vec::new();
        while let Some(task) = stack.pop() {
            work(task, &mut buf, &mut out);
            stack.append(&mut out);
        }
        return;
    }

    struct Queue<T> {
        tasks: Vec<T>,
        busy: usize,
        waiting: usize,
        aborted: bool,
    }
    struct Shared<T> {
        queue: Mutex<Queue<T>>,
        ready: Condvar,
    }
    // A panicking worker would leave `busy` up and the others waiting forever.
    struct AbortOnPanic<'a, T>(&'a Shared<T>);
    impl<T> Drop for AbortOnPanic<'_, T> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                lock(&self.0.queue).aborted = true;
                self.0.ready.notify_all();
            }
        }
    }

    let shared = Shared {
        queue: Mutex::new(Queue {
            tasks: init,
            busy: 0,
            waiting: 0,
            aborted: false,
        }),
        ready: Condvar::new(),
    };
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let _guard = AbortOnPanic(&shared);
                let mut buf = Vec::with_capacity(DIR_BUFFER);
                let mut out = Vec::new();
                let mut q = lock(&shared.queue);
                loop {
                    if q.aborted {
                        return;
                    }
                    if let Some(task) = q.tasks.pop() {
                        q.busy += 1;
                        if !q.tasks.is_empty() && q.waiting > 0 {
                            shared.ready.notify_one();
                        }
                        drop(q);
                        work(task, &mut buf, &mut out);
                        q = lock(&shared.queue);
                        q.busy -= 1;
                        q.tasks.append(&mut out);
                        continue;
                    }
                    if q.busy == 0 {
                        shared.ready.notify_all();
                        return;
                    }
                    q.waiting += 1;
                    q = shared.ready.wait(q).unwrap_or_else(PoisonError::into_inner);
                    q.waiting -= 1;
                }
            });
        }
    });
}
