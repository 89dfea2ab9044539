//! Directory skeleton copy: the field notes' step 3,
//! `robocopy SRC DST /e /z /xjf /xjd /xf * /lev:N /tee /log:FILE`, done natively on Unix.
//!
//! Semantics, with robocopy's in mind:
//! - **Levels.** The source root is level 1. `depth = 1` makes only the destination root,
//!   `depth = 2` also the root's direct subdirectories, and so on. Only directories at levels
//!   `1..depth-1` are read: their entries are the candidates for the next level. An entry is
//!   "seen" (counted as a skipped file or link) only in those directories, so files inside the
//!   deepest copied level are neither read nor counted. That keeps the largest level of a tree at
//!   a `stat` + `mkdir` each instead of a full directory read.
//! - **Links.** Symbolic links (to files or directories, dangling or looping) are the Linux face
//!   of `/xjf /xjd`: never followed, never copied, counted in `skipped_links` and logged. Other
//!   non-directories (files, fifos, sockets, devices) are counted in `files_skipped`. Mount
//!   points inside the source are ordinary directories and are descended into, as `rsync -a` does.
//!   The two roots are the caller's choice, so symbolic links naming them are followed.
//! - **Metadata,** for every directory created or found existing: owner and group when running
//!   as root (quietly skipped otherwise), extended attributes including POSIX ACLs, mode bits,
//!   then access and modification times, the latter after the directory's children exist.
//!   `security.*` attributes are not copied: SELinux labels and the like belong to the
//!   destination's policy. An attribute the destination file system refuses as unsupported is
//!   skipped and counted in `xattrs_unsupported`. On an existing destination directory,
//!   attributes the source lacks are removed, so an ACL inherited or left by an earlier run
//!   does not survive.
//! - **Restartable.** Existing destination directories are fine: metadata is applied again.
//!   A destination entry that exists but is not a directory (a file, a symbolic link) is an
//!   error for that name and is never followed.
//! - **Errors** on one directory (permission denied, a name that vanished while we looked) are
//!   counted, the first [`MAX_ERRORS_LISTED`] are kept, and the copy goes on. A directory whose
//!   source cannot be read is still created, with the metadata its parent could see.
//! - **Verification** walks both trees again within the depth: a source directory missing at
//!   the destination fails it (robocopy: a failure), an extra destination directory is reported
//!   but passes (robocopy: an extra, a warning). A directory that cannot be read during
//!   verification fails it too: what was not looked at is not verified.
//! - **Log** (`/log:FILE` + `/tee`): the file is truncated, then gets one tab-separated line per
//!   created directory (`New Dir`), per skipped link (`Skip Link`), per error (`ERROR`), per
//!   verification finding (`Missing`, `Extra`), and a summary. Every line also goes to `tracing`
//!   (per-directory lines at `trace`, errors at `warn`, the summary at `info`).
//! - **Names** are bytes: the work uses `OsStr`/`CStr` throughout. Reports and logs render paths
//!   relative to the roots (`.` for a root), escaping control characters (`\n`, `\t`), the
//!   backslash, and bytes that are not UTF-8 (`\xff`), so one line is always one entry.
//!
//! Speed: per directory, the parent does one `statat` and one `mkdirat`; the directory's own task
//! opens its source (`O_NOATIME` where allowed), lists its attributes once, reads its entries
//! (levels below the depth only), and sets owner/mode/times by file descriptor or by name
//! (`chmod` only when the mode is not already right). Subtrees run in parallel on a small pool
//! with a shared LIFO queue: depth-first order keeps the number of open directories small.
//! A parent's times are set at the end of its own task because only the creation of its direct
//! children changes them, and those all happen earlier in that same task.
//!
//! Everything here is blocking; the agent calls it from `tokio::task::spawn_blocking`.

use std::path::{Path, PathBuf};

use crate::Progress;

pub use ferry_protocol::report::skeleton::{
    MAX_ERRORS_LISTED, MAX_VERIFY_LISTED, SkeletonReport, Verification,
};

/// How to copy a skeleton.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkeletonOptions {
    /// Levels of directories to copy, the source root being level 1 (robocopy's `/lev:N`).
    /// Must be at least 1; `u32::MAX` copies the whole tree.
    pub depth: u32,
    /// Log file, truncated at the start (robocopy's `/log:FILE`).
    pub log: Option<PathBuf>,
    /// Worker threads; 0 picks one per core, at least 2 and at most 8.
    pub threads: usize,
}

impl Default for SkeletonOptions {
    /// The field notes' `/lev:2`, no log, automatic threads.
    fn default() -> Self {
        Self {
            depth: 2,
            log: None,
            threads: 0,
        }
    }
}

/// Copies the directories of `src` into `dst`, `options.depth` levels deep, then verifies them.
///
/// Errors only when `src` cannot be opened as a directory, `dst` cannot be created or opened,
/// both name the same directory, `depth` is 0, or the log file cannot be created (the caller
/// asked for it). Everything that goes wrong below the roots is in the report.
pub fn copy_skeleton(
    src: &Path,
    dst: &Path,
    options: &SkeletonOptions,
    progress: &dyn Progress,
) -> std::io::Result<SkeletonReport> {
    #[cfg(unix)]
    {
        imp::copy(src, dst, options, progress, None)
    }
    #[cfg(not(unix))]
    {
        let _ = (src, dst, options, progress);
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "the skeleton copy runs on Unix agents only",
        ))
    }
}

/// [`copy_skeleton`] that stops early once `cancel` is set: directories not yet started are left
/// alone (a later run resumes, existing directories being fine) and the answer is an
/// `ErrorKind::Interrupted` error instead of a report.
pub fn copy_skeleton_cancellable(
    src: &Path,
    dst: &Path,
    options: &SkeletonOptions,
    progress: &dyn Progress,
    cancel: &std::sync::atomic::AtomicBool,
) -> std::io::Result<SkeletonReport> {
    #[cfg(unix)]
    {
        imp::copy(src, dst, options, progress, Some(cancel))
    }
    #[cfg(not(unix))]
    {
        let _ = (src, dst, options, progress, cancel);
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "the skeleton copy runs on Unix agents only",
        ))
    }
}

/// Compares the directories of `src` and `dst` within `depth` levels (see the module docs).
/// Errors only when `src` cannot be opened as a directory or `depth` is 0; a missing `dst` is
/// reported as everything missing.
pub fn verify_skeleton(src: &Path, dst: &Path, depth: u32) -> std::io::Result<Verification> {
    #[cfg(unix)]
    {
        imp::verify(src, dst, depth, 0, &crate::NoProgress)
    }
    #[cfg(not(unix))]
    {
        let _ = (src, dst, depth);
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "the skeleton verification runs on Unix agents only",
        ))
    }
}

/// Renders a path relative to a root for a report or a log line: `.` for the root itself,
/// control characters and `\` escaped Rust-style, bytes that are not UTF-8 as `\xNN`.
pub fn render_path(path: &Path) -> String {
    let bytes = path.as_os_str().as_encoded_bytes();
    if bytes.is_empty() {
        return ".".to_owned();
    }
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' || c.is_control() {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

fn worker_count(threads: usize) -> usize {
    if threads > 0 {
        return threads;
    }
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, 8)
}

#[cfg(unix)]
mod imp {
    use std::cmp::Ordering;
    use std::ffi::{CStr, CString, OsStr, OsString};
    use std::fs::File;
    use std::io::{self, BufWriter, ErrorKind, Write};
    use std::os::fd::{AsFd, BorrowedFd};
    use std::os::unix::ffi::OsStrExt;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
    use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
    use std::time::Instant;

    use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
    use rustix::io::Errno;
    use xattr::FileExt as _;

    use super::{
        MAX_ERRORS_LISTED, MAX_VERIFY_LISTED, SkeletonOptions, SkeletonReport, Verification,
        render_path, worker_count,
    };
    use crate::Progress;

    const ACL_ACCESS: &[u8] = b"system.posix_acl_access";
    const ACL_DEFAULT: &[u8] = b"system.posix_acl_default";
    /// Big enough for any directory entry (names are at most 255 bytes), and for a few hundred
    /// per `getdents` call.
    const DIR_BUFFER: usize = 64 * 1024;
    const PROGRESS_EVERY: u64 = 1024;

    fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn invalid(msg: &str) -> io::Error {
        io::Error::new(ErrorKind::InvalidInput, msg.to_owned())
    }

    fn with_path(e: impl Into<io::Error>, what: &str, path: &Path) -> io::Error {
        let e = e.into();
        io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
    }

    // ---------------------------------------------------------------------------------------
    // Metadata of a source directory, taken once by whoever found it.

    #[derive(Clone, Copy)]
    struct Meta {
        perm: u32,
        uid: u32,
        gid: u32,
        atime: Timespec,
        mtime: Timespec,
    }

    // The field types of `struct stat` differ between Unixes; on Linux most casts are no-ops.
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    impl Meta {
        fn of(st: &rfs::Stat) -> Self {
            Self {
                perm: (st.st_mode as u32) & 0o7777,
                uid: st.st_uid as u32,
                gid: st.st_gid as u32,
                atime: Timespec {
                    tv_sec: st.st_atime as i64,
                    tv_nsec: st.st_atime_nsec as _,
                },
                mtime: Timespec {
                    tv_sec: st.st_mtime as i64,
                    tv_nsec: st.st_mtime_nsec as _,
                },
            }
        }
    }

    #[allow(clippy::unnecessary_cast)]
    fn file_type(st: &rfs::Stat) -> FileType {
        FileType::from_raw_mode(st.st_mode as rfs::RawMode)
    }

    #[allow(clippy::unnecessary_cast)]
    fn dev_ino(st: &rfs::Stat) -> (u64, u64) {
        (st.st_dev as u64, st.st_ino as u64)
    }

    #[allow(clippy::unnecessary_cast)]
    fn mode(bits: u32) -> Mode {
        Mode::from_raw_mode(bits as rfs::RawMode)
    }

    // ---------------------------------------------------------------------------------------
    // Directory handles: a root opened by path, or a name under an open parent.

    enum Loc {
        Open(File),
        At(Arc<File>, CString),
    }

    /// Opens directories with `O_NOATIME` while the kernel allows it, so that reading the
    /// source, and the destination while verifying, does not disturb the access times being
    /// copied; the first refusal (not the owner, no `CAP_FOWNER`) turns it off.
    struct Opener {
        noatime: AtomicBool,
    }

    impl Opener {
        fn new() -> Self {
            Self {
                noatime: AtomicBool::new(cfg!(any(target_os = "linux", target_os = "android"))),
            }
        }

        fn open_at(&self, parent: &File, name: &CStr) -> rustix::io::Result<File> {
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
        fn open_root(&self, path: &Path) -> rustix::io::Result<File> {
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

        fn open(&self, loc: Loc) -> rustix::io::Result<File> {
            match loc {
                Loc::Open(f) => Ok(f),
                Loc::At(parent, name) => self.open_at(&parent, &name),
            }
        }
    }

    /// Calls `f` for every entry of the directory but `.` and `..`, with the type the directory
    /// reports (`Unknown` on file systems that do not fill `d_type`).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn read_dir(
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
    fn read_dir(
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

    fn child(rel: &Path, name: &CStr) -> PathBuf {
        rel.join(OsStr::from_bytes(name.to_bytes()))
    }

    fn copyable(name: &OsStr) -> bool {
        !name.as_bytes().starts_with(b"security.")
    }

    fn unsupported(e: &io::Error) -> bool {
        // The same number on Linux, two on some other Unixes.
        let code = e.raw_os_error();
        e.kind() == ErrorKind::Unsupported
            || code == Some(Errno::NOTSUP.raw_os_error())
            || code == Some(Errno::OPNOTSUPP.raw_os_error())
    }

    /// Reads the process umask without changing it (`umask(2)` can only set it, and the agent
    /// has other threads creating files). `None` when unknown: modes are then always set.
    fn current_umask() -> Option<u32> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
        u32::from_str_radix(line.trim(), 8).ok()
    }

    // ---------------------------------------------------------------------------------------
    // Bounded lists, the log, and the work pool.

    struct Listed {
        items: Mutex<Vec<String>>,
        count: AtomicU64,
        cap: usize,
    }

    impl Listed {
        fn new(cap: usize) -> Self {
            Self {
                items: Mutex::new(Vec::new()),
                count: AtomicU64::new(0),
                cap,
            }
        }

        /// Returns whether the item was kept.
        fn push(&self, item: impl FnOnce() -> String) -> bool {
            if self.count.fetch_add(1, Relaxed) < self.cap as u64 {
                lock(&self.items).push(item());
                true
            } else {
                false
            }
        }

        fn take(self) -> (Vec<String>, u64) {
            let mut items = self
                .items
                .into_inner()
                .unwrap_or_else(PoisonError::into_inner);
            items.sort_unstable();
            (items, self.count.into_inner())
        }
    }

    struct Log {
        out: Mutex<Option<BufWriter<File>>>,
        failed: Mutex<Option<String>>,
    }

    impl Log {
        fn create(path: Option<&Path>) -> io::Result<Self> {
            let out = match path {
                Some(path) => {
                    let file = File::create(path)
                        .map_err(|e| with_path(e, "cannot create the log file", path))?;
                    Some(BufWriter::with_capacity(256 * 1024, file))
                }
                None => None,
            };
            Ok(Self {
                out: Mutex::new(out),
                failed: Mutex::new(None),
            })
        }

        fn line(&self, kind: &str, text: &str) {
            tracing::trace!(target: "ferry::skeleton", kind, "{text}");
            self.write(kind, text, false);
        }

        fn write(&self, kind: &str, text: &str, flush: bool) {
            let mut out = lock(&self.out);
            if let Some(w) = out.as_mut() {
                let mut r = writeln!(w, "{kind}\t{text}");
                if flush && r.is_ok() {
                    r = w.flush();
                }
                if let Err(e) = r {
                    *out = None;
                    *lock(&self.failed) = Some(e.to_string());
                }
            }
        }

        fn flush(&self) {
            let mut out = lock(&self.out);
            if let Some(w) = out.as_mut()
                && let Err(e) = w.flush()
            {
                *out = None;
                *lock(&self.failed) = Some(e.to_string());
            }
        }
    }

    /// Runs `work` over a tree of tasks on `threads` workers: each call may push more tasks.
    /// The queue is one LIFO stack, so the walk stays depth-first and the parents kept open by
    /// queued children stay few.
    fn run_pool<T, F>(threads: usize, init: Vec<T>, work: F)
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

    // ---------------------------------------------------------------------------------------
    // The copy.

    /// What we know of a destination directory before its metadata is applied.
    struct DstState {
        /// Current mode bits, `None` when unknown (then they are always set).
        mode: Option<u32>,
        /// Current owner and group, `None` when unknown (then root always sets them).
        owner: Option<(u32, u32)>,
        /// It has a default ACL, so what is created in it inherits ACLs.
        default_acl: bool,
        /// Copyable attributes it has, to remove unless the source has them too.
        present: Vec<OsString>,
        /// `mode`, `default_acl` and `present` must be read from the directory first.
        inspect: bool,
    }

    impl DstState {
        fn fresh(mode: Option<u32>, owner: Option<(u32, u32)>) -> Self {
            Self {
                mode,
                owner,
                default_acl: false,
                present: Vec::new(),
                inspect: false,
            }
        }

        fn unknown() -> Self {
            Self {
                mode: None,
                owner: None,
                default_acl: false,
                present: Vec::new(),
                inspect: true,
            }
        }
    }

    struct Task {
        src: Loc,
        dst: Loc,
        rel: PathBuf,
        level: u32,
        meta: Meta,
        state: DstState,
    }

    struct Ctx<'a> {
        depth: u32,
        privileged: bool,
        euid: u32,
        egid: u32,
        umask: Option<u32>,
        opener: Opener,
        dst_root: (u64, u64),
        created: AtomicU64,
        existing: AtomicU64,
        links: AtomicU64,
        files: AtomicU64,
        xattrs: AtomicU64,
        xattrs_unsupported: AtomicU64,
        errors: Listed,
        log: &'a Log,
        progress: &'a dyn Progress,
        done: AtomicU64,
        cancel: Option<&'a AtomicBool>,
    }

    impl Ctx<'_> {
        fn cancelled(&self) -> bool {
            self.cancel.is_some_and(|c| c.load(Relaxed))
        }

        fn error(&self, rel: &Path, what: &str, err: impl std::fmt::Display) {
            let msg = format!("{}: {what}: {err}", render_path(rel));
            if self.errors.push(|| msg.clone()) {
                tracing::warn!(target: "ferry::skeleton", "{msg}");
            }
            self.log.write("ERROR", &msg, true);
        }

        fn skip_link(&self, rel: &Path) {
            self.links.fetch_add(1, Relaxed);
            self.log.line("Skip Link", &render_path(rel));
        }

        fn tick(&self) {
            let n = self.done.fetch_add(1, Relaxed) + 1;
            if n.is_multiple_of(PROGRESS_EVERY) {
                self.progress
                    .report(n, None, &format!("skeleton: {n} directories copied"));
            }
        }

        /// The mode `mkdir(create)` gives inside `parent`, when it can be known without a
        /// `stat`: Linux semantics, no default ACL to replace the umask, no set-group-ID
        /// parent (whose inheritance some mount options change).
        fn predict_mode(&self, create: u32, parent: &DstState) -> Option<u32> {
            if !cfg!(any(target_os = "linux", target_os = "android")) || parent.default_acl {
                return None;
            }
            let umask = self.umask?;
            if parent.mode? & 0o2000 != 0 {
                return None;
            }
            Some(create & 0o1777 & !umask)
        }

        /// The owner `mkdir` gives inside `parent`, when it can be known without a `stat`: the
        /// effective user, and a group that is the same whether the file system takes the
        /// creator's (System V) or the parent's (BSD, `grpid`, set-group-ID parents).
        fn predict_owner(&self, parent: &DstState) -> Option<(u32, u32)> {
            match parent.owner {
                Some((_, gid)) if gid == self.egid => Some((self.euid, self.egid)),
                _ => None,
            }
        }
    }

    pub(super) fn copy(
        src: &Path,
        dst: &Path,
        options: &SkeletonOptions,
        progress: &dyn Progress,
        cancel: Option<&AtomicBool>,
    ) -> io::Result<SkeletonReport> {
        let started = Instant::now();
        if options.depth == 0 {
            return Err(invalid(
                "depth must be at least 1 (the destination root alone)",
            ));
        }
        let log = Log::create(options.log.as_deref())?;
        log.line(
            "Start",
            &format!(
                "source={} destination={} depth={} at={}",
                src.display(),
                dst.display(),
                options.depth,
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            ),
        );
        match copy_inner(src, dst, options, progress, cancel, &log, started) {
            Ok(report) => Ok(report),
            Err(e) => {
                log.write("FATAL", &e.to_string(), true);
                Err(e)
            }
        }
    }

    fn copy_inner(
        src: &Path,
        dst: &Path,
        options: &SkeletonOptions,
        progress: &dyn Progress,
        cancel: Option<&AtomicBool>,
        log: &Log,
        started: Instant,
    ) -> io::Result<SkeletonReport> {
        let euid = rustix::process::geteuid();
        let privileged = euid.is_root();
        let opener = Opener::new();
        let src_root = opener
            .open_root(src)
            .map_err(|e| with_path(e, "cannot open the source", src))?;
        let src_st = rfs::fstat(&src_root).map_err(|e| with_path(e, "cannot stat", src))?;
        let meta = Meta::of(&src_st);

        if let Some(parent) = dst.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)
                .map_err(|e| with_path(e, "cannot create the destination's parent", parent))?;
        }
        let create = create_mode(privileged, meta.perm);
        let created = match rfs::mkdir(dst, mode(create)) {
            Ok(()) => true,
            Err(Errno::EXIST) => false,
            Err(e) => return Err(with_path(e, "cannot create the destination", dst)),
        };
        let dst_root = opener
            .open_root(dst)
            .map_err(|e| with_path(e, "cannot open the destination", dst))?;
        let dst_st = rfs::fstat(&dst_root).map_err(|e| with_path(e, "cannot stat", dst))?;
        if dev_ino(&src_st) == dev_ino(&dst_st) {
            return Err(invalid(
                "the source and the destination are the same directory",
            ));
        }

        let ctx = Ctx {
            depth: options.depth,
            privileged,
            euid: euid.as_raw(),
            egid: rustix::process::getegid().as_raw(),
            umask: current_umask(),
            opener,
            dst_root: dev_ino(&dst_st),
            created: AtomicU64::new(u64::from(created)),
            existing: AtomicU64::new(u64::from(!created)),
            links: AtomicU64::new(0),
            files: AtomicU64::new(0),
            xattrs: AtomicU64::new(0),
            xattrs_unsupported: AtomicU64::new(0),
            errors: Listed::new(MAX_ERRORS_LISTED),
            log,
            progress,
            done: AtomicU64::new(0),
            cancel,
        };
        if created {
            log.line("New Dir", ".");
        }
        let root = Task {
            src: Loc::Open(src_root),
            dst: Loc::Open(dst_root),
            rel: PathBuf::new(),
            level: 1,
            meta,
            state: DstState::unknown(),
        };
        let threads = worker_count(options.threads);
        run_pool(threads, vec![root], |task, buf, out| {
            copy_dir(&ctx, task, buf, out);
        });
        if ctx.cancelled() {
            log.line("Cancelled", "");
            return Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "the skeleton copy was cancelled",
            ));
        }
        let copied_ms = started.elapsed().as_millis();
        progress.report(
            ctx.done.load(Relaxed),
            Some(ctx.done.load(Relaxed)),
            "skeleton: copy done, verifying",
        );

        let verification = match verify(src, dst, options.depth, threads, progress) {
            Ok(v) => v,
            Err(e) => Verification {
                checked: 0,
                missing: Vec::new(),
                extra: Vec::new(),
                passed: false,
                missing_count: 0,
                extra_count: 0,
                errors: vec![format!("verification: {e}")],
                error_count: 1,
            },
        };
        for m in &verification.missing {
            log.line("Missing", m);
        }
        for x in &verification.extra {
            log.line("Extra", x);
        }
        for e in &verification.errors {
            log.write("ERROR", &format!("verification: {e}"), false);
        }

        let (mut errors, mut error_count) = ctx.errors.take();
        log.flush();
        if let Some(e) = lock(&log.failed).take() {
            error_count += 1;
            if errors.len() < MAX_ERRORS_LISTED {
                errors.push(format!("log: {e}"));
            }
        }
        let report = SkeletonReport {
            dirs_created: ctx.created.into_inner(),
            dirs_existing: ctx.existing.into_inner(),
            skipped_links: ctx.links.into_inner(),
            files_skipped: ctx.files.into_inner(),
            xattrs_copied: ctx.xattrs.into_inner(),
            xattrs_unsupported: ctx.xattrs_unsupported.into_inner(),
            errors,
            error_count,
            verification,
            elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        };
        let summary = format!(
            "dirs_created={} dirs_existing={} skipped_links={} files_skipped={} xattrs_copied={} \
             xattrs_unsupported={} errors={} copy_ms={copied_ms} elapsed_ms={}",
            report.dirs_created,
            report.dirs_existing,
            report.skipped_links,
            report.files_skipped,
            report.xattrs_copied,
            report.xattrs_unsupported,
            report.error_count,
            report.elapsed_ms,
        );
        let v = &report.verification;
        let verified = format!(
            "checked={} missing={} extra={} errors={} passed={}",
            v.checked, v.missing_count, v.extra_count, v.error_count, v.passed
        );
        tracing::info!(target: "ferry::skeleton", source = %src.display(), destination = %dst.display(), "skeleton copied: {summary}; verification: {verified}");
        log.write("Summary", &summary, false);
        log.write("Verification", &verified, true);
        Ok(report)
    }

    fn copy_dir(ctx: &Ctx<'_>, task: Task, buf: &mut Vec<u8>, out: &mut Vec<Task>) {
        // Dropping the task without children drains the pool quickly.
        if ctx.cancelled() {
            return;
        }
        let Task {
            src,
            dst,
            rel,
            level,
            meta,
            mut state,
        } = task;
        let leaf = level >= ctx.depth;

        let src_fd = match ctx.opener.open(src) {
            Ok(f) => Some(Arc::new(f)),
            Err(e) => {
                ctx.error(&rel, "cannot open the source directory", e);
                None
            }
        };
        // The destination is opened when children go into it or its state must be read;
        // otherwise a leaf is handled by name, and opened only if an attribute or the mode
        // needs a descriptor.
        let (dst_fd, dst_at) = match dst {
            Loc::Open(f) => (Some(Arc::new(f)), None),
            Loc::At(parent, name) if !leaf || state.inspect => {
                match open_existing(ctx, &parent, &name) {
                    Ok(f) => (Some(Arc::new(f)), None),
                    Err(e) => {
                        ctx.error(&rel, "cannot open the destination directory", e);
                        ctx.tick();
                        return;
                    }
                }
            }
            Loc::At(parent, name) => (None, Some((parent, name))),
        };
        if state.inspect
            && let Some(d) = &dst_fd
        {
            inspect(d, &mut state);
        }

        if !leaf && let (Some(s), Some(d)) = (&src_fd, &dst_fd) {
            // Without root's override, an existing read-only directory would refuse children.
            if !ctx.privileged
                && let Some(m) = state.mode
                && m & 0o700 != 0o700
            {
                match rfs::fchmod(&**d, mode(m | 0o700)) {
                    Ok(()) => state.mode = Some(m | 0o700),
                    Err(e) => ctx.error(&rel, "cannot make the directory writable", e),
                }
            }
            create_children(ctx, s, d, &rel, level, &state, buf, out);
        }

        let mut dst = DstHandle {
            fd: dst_fd.as_deref(),
            at: dst_at.as_ref().map(|(p, n)| (&**p, n.as_c_str())),
            opened: None,
            opener: &ctx.opener,
        };
        apply_meta(ctx, src_fd.as_deref(), &mut dst, &rel, &meta, &mut state);
        ctx.tick();
    }

    /// The mode for `mkdir`. Without root's override the owner needs to read, write and search
    /// a directory until its own mode is set, last; root gets the final mode at once, so
    /// usually no `chmod` follows.
    fn create_mode(privileged: bool, perm: u32) -> u32 {
        if privileged {
            perm & 0o1777
        } else {
            perm & 0o1777 | 0o700
        }
    }

    /// Opens a destination directory. Without root's override, one that an earlier run left
    /// unreadable (its source's mode) is first opened up to its owner; its mode is set again
    /// at the end.
    fn open_existing(ctx: &Ctx<'_>, parent: &File, name: &CStr) -> rustix::io::Result<File> {
        match ctx.opener.open_at(parent, name) {
            Err(Errno::ACCESS) if !ctx.privileged => {
                let st = rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)?;
                if file_type(&st) != FileType::Directory {
                    return Err(Errno::NOTDIR);
                }
                let perm = Meta::of(&st).perm | 0o700;
                rfs::chmodat(parent, name, mode(perm), AtFlags::empty())?;
                ctx.opener.open_at(parent, name)
            }
            r => r,
        }
    }

    fn inspect(dst: &File, state: &mut DstState) {
        let meta = rfs::fstat(dst).ok().map(|st| Meta::of(&st));
        state.mode = meta.map(|m| m.perm);
        state.owner = meta.map(|m| (m.uid, m.gid));
        state.present = dst
            .list_xattr()
            .map(|names| names.filter(|n| copyable(n)).collect())
            .unwrap_or_default();
        state.default_acl = state.present.iter().any(|n| n.as_bytes() == ACL_DEFAULT);
        state.inspect = false;
    }

    #[allow(clippy::too_many_arguments)]
    fn create_children(
        ctx: &Ctx<'_>,
        src: &Arc<File>,
        dst: &Arc<File>,
        rel: &Path,
        level: u32,
        parent: &DstState,
        buf: &mut Vec<u8>,
        out: &mut Vec<Task>,
    ) {
        let mut names: Vec<CString> = Vec::new();
        let read = read_dir(src.as_fd(), buf, |name, kind, _| match kind {
            FileType::Directory | FileType::Unknown => names.push(name.to_owned()),
            FileType::Symlink => ctx.skip_link(&child(rel, name)),
            _ => {
                ctx.files.fetch_add(1, Relaxed);
            }
        });
        if let Err(e) = read {
            ctx.error(rel, "cannot read the source directory", e);
        }

        let child_level = level + 1;
        for name in names {
            let rel = child(rel, &name);
            let st = match rfs::statat(&**src, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::NOENT) => continue,
                Err(e) => {
                    ctx.error(&rel, "cannot stat the source directory", e);
                    continue;
                }
            };
            match file_type(&st) {
                FileType::Directory => {}
                FileType::Symlink => {
                    ctx.skip_link(&rel);
                    continue;
                }
                _ => {
                    ctx.files.fetch_add(1, Relaxed);
                    continue;
                }
            }
            if dev_ino(&st) == ctx.dst_root {
                ctx.log.line("Skip Dest", &render_path(&rel));
                continue;
            }
            let meta = Meta::of(&st);
            let create = create_mode(ctx.privileged, meta.perm);
            let state = match rfs::mkdirat(&**dst, name.as_c_str(), mode(create)) {
                Ok(()) => {
                    ctx.created.fetch_add(1, Relaxed);
                    ctx.log.line("New Dir", &render_path(&rel));
                    if parent.default_acl {
                        DstState::unknown()
                    } else {
                        DstState::fresh(ctx.predict_mode(create, parent), ctx.predict_owner(parent))
                    }
                }
                Err(Errno::EXIST) => {
                    match rfs::statat(&**dst, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) {
                        Ok(st) if file_type(&st) == FileType::Directory => {
                            ctx.existing.fetch_add(1, Relaxed);
                            DstState::unknown()
                        }
                        Ok(_) => {
                            ctx.error(
                                &rel,
                                "cannot create the destination directory",
                                "a non-directory of that name exists",
                            );
                            continue;
                        }
                        Err(e) => {
                            ctx.error(&rel, "cannot stat the destination directory", e);
                            continue;
                        }
                    }
                }
                Err(e) => {
                    ctx.error(&rel, "cannot create the destination directory", e);
                    continue;
                }
            };
            out.push(Task {
                src: Loc::At(src.clone(), name.clone()),
                dst: Loc::At(dst.clone(), name),
                rel,
                level: child_level,
                meta,
                state,
            });
        }
    }

    /// A destination directory known by descriptor, or by name under its open parent (then
    /// opened on first need).
    struct DstHandle<'a> {
        fd: Option<&'a File>,
        at: Option<(&'a File, &'a CStr)>,
        opened: Option<File>,
        opener: &'a Opener,
    }

    impl DstHandle<'_> {
        fn fd(&mut self) -> io::Result<&File> {
            if let Some(f) = self.fd {
                return Ok(f);
            }
            if self.opened.is_none() {
                let (parent, name) = self.at.expect("a destination has a descriptor or a name");
                self.opened = Some(self.opener.open_at(parent, name)?);
            }
            Ok(self.opened.as_ref().expect("opened above"))
        }

        fn current(&self) -> Option<&File> {
            self.fd.or(self.opened.as_ref())
        }
    }

    /// Owner first (it may clear set-ID bits), then attributes (an access ACL rewrites the
    /// permission bits), then the mode, and the times last: every other change here touches
    /// only the change time, and the children were all created before.
    fn apply_meta(
        ctx: &Ctx<'_>,
        src: Option<&File>,
        dst: &mut DstHandle<'_>,
        rel: &Path,
        meta: &Meta,
        state: &mut DstState,
    ) {
        if ctx.privileged && state.owner != Some((meta.uid, meta.gid)) {
            let uid = Some(rustix::fs::Uid::from_raw(meta.uid));
            let gid = Some(rustix::fs::Gid::from_raw(meta.gid));
            let r = match (dst.current(), dst.at) {
                (Some(f), _) => rfs::fchown(f, uid, gid),
                (None, Some((parent, name))) => {
                    rfs::chownat(parent, name, uid, gid, AtFlags::SYMLINK_NOFOLLOW)
                }
                (None, None) => Ok(()),
            };
            if let Err(e) = r {
                ctx.error(rel, "cannot set the owner", e);
            }
        }

        if let Some(src) = src {
            copy_xattrs(ctx, src, dst, rel, meta, state);
        }
        for name in std::mem::take(&mut state.present) {
            match dst.fd().and_then(|f| f.remove_xattr(&name)) {
                Ok(()) => {
                    if name.as_bytes() == ACL_ACCESS {
                        state.mode = None;
                    }
                }
                Err(e) if Errno::from_io_error(&e) == Some(Errno::NODATA) => {}
                Err(e) => ctx.error(
                    rel,
                    &format!("cannot remove attribute {}", name.display()),
                    e,
                ),
            }
        }

        if state.mode != Some(meta.perm)
            && let Err(e) = dst
                .fd()
                .and_then(|f| rfs::fchmod(f, mode(meta.perm)).map_err(io::Error::from))
        {
            ctx.error(rel, "cannot set the mode", e);
        }

        let times = Timestamps {
            last_access: meta.atime,
            last_modification: meta.mtime,
        };
        let r = match (dst.current(), dst.at) {
            (Some(f), _) => rfs::futimens(f, &times),
            (None, Some((parent, name))) => {
                rfs::utimensat(parent, name, &times, AtFlags::SYMLINK_NOFOLLOW)
            }
            (None, None) => Ok(()),
        };
        if let Err(e) = r {
            ctx.error(rel, "cannot set the times", e);
        }
    }

    fn copy_xattrs(
        ctx: &Ctx<'_>,
        src: &File,
        dst: &mut DstHandle<'_>,
        rel: &Path,
        meta: &Meta,
        state: &mut DstState,
    ) {
        let names = match src.list_xattr() {
            Ok(names) => names,
            Err(e) if unsupported(&e) => return,
            Err(e) => {
                ctx.error(rel, "cannot list the source's attributes", e);
                return;
            }
        };
        for name in names.filter(|n| copyable(n)) {
            state.present.retain(|p| *p != name);
            let value = match src.get_xattr(&name) {
                Ok(Some(v)) => v,
                Ok(None) => continue,
                Err(e) => {
                    ctx.error(rel, &format!("cannot read attribute {}", name.display()), e);
                    continue;
                }
            };
            match dst.fd().and_then(|f| f.set_xattr(&name, &value)) {
                Ok(()) => {
                    ctx.xattrs.fetch_add(1, Relaxed);
                    if name.as_bytes() == ACL_ACCESS {
                        state.mode = state.mode.map(|m| m & !0o777 | meta.perm & 0o777);
                    }
                }
                Err(e) if unsupported(&e) => {
                    ctx.xattrs_unsupported.fetch_add(1, Relaxed);
                }
                Err(e) => ctx.error(rel, &format!("cannot set attribute {}", name.display()), e),
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // Verification.

    enum Check {
        Both { src: Loc, dst: Loc },
        Missing { src: Loc },
        Extra { dst: Loc },
    }

    struct VTask {
        check: Check,
        rel: PathBuf,
        level: u32,
    }

    struct VCtx<'a> {
        depth: u32,
        opener: Opener,
        dst_root: Option<(u64, u64)>,
        checked: AtomicU64,
        missing: Listed,
        extra: Listed,
        errors: Listed,
        progress: &'a dyn Progress,
    }

    impl VCtx<'_> {
        fn error(&self, rel: &Path, what: &str, err: impl std::fmt::Display) {
            self.errors
                .push(|| format!("{}: {what}: {err}", render_path(rel)));
        }

        fn check(&self, n: u64) {
            let before = self.checked.fetch_add(n, Relaxed);
            if before / PROGRESS_EVERY != (before + n) / PROGRESS_EVERY {
                self.progress.report(
                    before + n,
                    None,
                    &format!("skeleton: {} directories verified", before + n),
                );
            }
        }

        /// Child directories of `dir`, sorted; on the source side without the destination root.
        fn subdirs(&self, dir: &File, source: bool, rel: &Path, buf: &mut Vec<u8>) -> Vec<CString> {
            let mut names = Vec::new();
            let read = read_dir(dir.as_fd(), buf, |name, kind, ino| {
                let is_dir = match kind {
                    FileType::Directory => true,
                    FileType::Unknown => rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
                        .is_ok_and(|st| file_type(&st) == FileType::Directory),
                    _ => false,
                };
                if !is_dir {
                    return;
                }
                if source
                    && let Some(root) = self.dst_root
                    && root.1 == ino
                    && rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
                        .is_ok_and(|st| dev_ino(&st) == root)
                {
                    return;
                }
                names.push(name.to_owned());
            });
            if let Err(e) = read {
                self.error(rel, "cannot read the directory", e);
            }
            names.sort_unstable();
            names
        }
    }

    pub(super) fn verify(
        src: &Path,
        dst: &Path,
        depth: u32,
        threads: usize,
        progress: &dyn Progress,
    ) -> io::Result<Verification> {
        if depth == 0 {
            return Err(invalid(
                "depth must be at least 1 (the destination root alone)",
            ));
        }
        let opener = Opener::new();
        let src_root = opener
            .open_root(src)
            .map_err(|e| with_path(e, "cannot open the source", src))?;
        let (dst_root, dst_id) = match opener.open_root(dst) {
            Ok(f) => {
                let id = rfs::fstat(&f).ok().map(|st| dev_ino(&st));
                (Some(f), id)
            }
            Err(Errno::NOENT | Errno::NOTDIR) => (None, None),
            Err(e) => return Err(with_path(e, "cannot open the destination", dst)),
        };
        let ctx = VCtx {
            depth,
            opener,
            dst_root: dst_id,
            checked: AtomicU64::new(0),
            missing: Listed::new(MAX_VERIFY_LISTED),
            extra: Listed::new(MAX_VERIFY_LISTED),
            errors: Listed::new(MAX_ERRORS_LISTED),
            progress,
        };
        ctx.check(1);
        let check = match dst_root {
            Some(d) => Check::Both {
                src: Loc::Open(src_root),
                dst: Loc::Open(d),
            },
            None => {
                ctx.missing.push(|| ".".to_owned());
                Check::Missing {
                    src: Loc::Open(src_root),
                }
            }
        };
        if depth > 1 {
            let root = VTask {
                check,
                rel: PathBuf::new(),
                level: 1,
            };
            run_pool(worker_count(threads), vec![root], |task, buf, out| {
                verify_dir(&ctx, task, buf, out);
            });
        }
        let (missing, missing_count) = ctx.missing.take();
        let (extra, extra_count) = ctx.extra.take();
        let (errors, error_count) = ctx.errors.take();
        Ok(Verification {
            checked: ctx.checked.into_inner(),
            missing,
            extra,
            passed: missing_count == 0 && error_count == 0,
            missing_count,
            extra_count,
            errors,
            error_count,
        })
    }

    fn verify_dir(ctx: &VCtx<'_>, task: VTask, buf: &mut Vec<u8>, out: &mut Vec<VTask>) {
        let VTask { check, rel, level } = task;
        let deeper = level + 1 < ctx.depth;
        let open = |loc: Loc, side: &str| match ctx.opener.open(loc) {
            Ok(f) => Some(Arc::new(f)),
            Err(e) => {
                ctx.error(&rel, &format!("cannot open the {side} directory"), e);
                None
            }
        };
        match check {
            Check::Both { src, dst } => {
                let (Some(s), Some(d)) = (open(src, "source"), open(dst, "destination")) else {
                    return;
                };
                let src_names = ctx.subdirs(&s, true, &rel, buf);
                let dst_names = ctx.subdirs(&d, false, &rel, buf);
                ctx.check(src_names.len() as u64);
                let (mut i, mut j) = (0, 0);
                while i < src_names.len() || j < dst_names.len() {
                    let order = match (src_names.get(i), dst_names.get(j)) {
                        (Some(a), Some(b)) => a.cmp(b),
                        (Some(_), None) => Ordering::Less,
                        _ => Ordering::Greater,
                    };
                    let name = match order {
                        Ordering::Equal => {
                            i += 1;
                            j += 1;
                            &src_names[i - 1]
                        }
                        Ordering::Less => {
                            i += 1;
                            ctx.missing
                                .push(|| render_path(&child(&rel, &src_names[i - 1])));
                            &src_names[i - 1]
                        }
                        Ordering::Greater => {
                            j += 1;
                            ctx.extra
                                .push(|| render_path(&child(&rel, &dst_names[j - 1])));
                            &dst_names[j - 1]
                        }
                    };
                    if deeper {
                        let check = match order {
                            Ordering::Equal => Check::Both {
                                src: Loc::At(s.clone(), name.clone()),
                                dst: Loc::At(d.clone(), name.clone()),
                            },
                            Ordering::Less => Check::Missing {
                                src: Loc::At(s.clone(), name.clone()),
                            },
                            Ordering::Greater => Check::Extra {
                                dst: Loc::At(d.clone(), name.clone()),
                            },
                        };
                        out.push(VTask {
                            check,
                            rel: child(&rel, name),
                            level: level + 1,
                        });
                    }
                }
            }
            Check::Missing { src } => {
                let Some(s) = open(src, "source") else { return };
                let names = ctx.subdirs(&s, true, &rel, buf);
                ctx.check(names.len() as u64);
                for name in names {
                    let child_rel = child(&rel, &name);
                    ctx.missing.push(|| render_path(&child_rel));
                    if deeper {
                        out.push(VTask {
                            check: Check::Missing {
                                src: Loc::At(s.clone(), name),
                            },
                            rel: child_rel,
                            level: level + 1,
                        });
                    }
                }
            }
            Check::Extra { dst } => {
                let Some(d) = open(dst, "destination") else {
                    return;
                };
                for name in ctx.subdirs(&d, false, &rel, buf) {
                    let child_rel = child(&rel, &name);
                    ctx.extra.push(|| render_path(&child_rel));
                    if deeper {
                        out.push(VTask {
                            check: Check::Extra {
                                dst: Loc::At(d.clone(), name),
                            },
                            rel: child_rel,
                            level: level + 1,
                        });
                    }
                }
            }
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::collections::BTreeSet;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::NoProgress;

    /// root/{a/{a1/{a11}, a2}, b/{b1}}, plus a file at each level.
    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        for d in ["a/a1/a11", "a/a2", "b/b1"] {
            fs::create_dir_all(src.join(d)).unwrap();
        }
        for f in ["f", "a/f", "a/a1/f", "a/a1/a11/f"] {
            fs::write(src.join(f), b"x").unwrap();
        }
        t
    }

    fn dirs_under(root: &Path) -> BTreeSet<String> {
        fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
            for e in fs::read_dir(dir).unwrap() {
                let e = e.unwrap();
                if e.file_type().unwrap().is_dir() {
                    let p = e.path();
                    out.insert(render_path(p.strip_prefix(root).unwrap()));
                    walk(root, &p, out);
                }
            }
        }
        let mut out = BTreeSet::new();
        walk(root, root, &mut out);
        out
    }

    fn options(depth: u32, threads: usize) -> SkeletonOptions {
        SkeletonOptions {
            depth,
            log: None,
            threads,
        }
    }

    #[test]
    fn depth_counts_the_root_as_level_one() {
        let expected: [&[&str]; 5] = [
            &[],
            &["a", "b"],
            &["a", "a/a1", "a/a2", "b", "b/b1"],
            &["a", "a/a1", "a/a1/a11", "a/a2", "b", "b/b1"],
            &["a", "a/a1", "a/a1/a11", "a/a2", "b", "b/b1"],
        ];
        for (i, want) in expected.iter().enumerate() {
            let depth = i as u32 + 1;
            for threads in [1, 3] {
                let t = tree();
                let dst = t.path().join("dst");
                let r = copy_skeleton(
                    &t.path().join("src"),
                    &dst,
                    &options(depth, threads),
                    &NoProgress,
                )
                .unwrap();
                let got = dirs_under(&dst);
                let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
                assert_eq!(got, want, "depth {depth}, {threads} threads");
                assert_eq!(r.dirs_created, want.len() as u64 + 1, "depth {depth}");
                assert_eq!(r.dirs_existing, 0);
                assert!(r.succeeded(), "{r:?}");
                assert_eq!(r.verification.checked, want.len() as u64 + 1);
                // Files are seen only in directories whose subdirectories are candidates.
                let files = [0, 1, 2, 3, 4][i];
                assert_eq!(r.files_skipped, files, "depth {depth}");
                // No files are ever copied.
                assert!(
                    fs::read_dir(&dst)
                        .unwrap()
                        .all(|e| e.unwrap().file_type().unwrap().is_dir())
                );
            }
        }
    }

    #[test]
    fn depth_zero_is_refused() {
        let t = tree();
        let e = copy_skeleton(
            &t.path().join("src"),
            &t.path().join("dst"),
            &options(0, 1),
            &NoProgress,
        )
        .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        assert!(verify_skeleton(&t.path().join("src"), &t.path().join("dst"), 0).is_err());
    }

    #[test]
    fn verification_stays_within_depth() {
        let t = tree();
        let src = t.path().join("src");
        let dst = t.path().join("dst");
        copy_skeleton(&src, &dst, &options(2, 1), &NoProgress).unwrap();
        // Deeper directories at the destination are outside depth 2 and so not extra.
        fs::create_dir_all(dst.join("a/deeper")).unwrap();
        let v = verify_skeleton(&src, &dst, 2).unwrap();
        assert!(
            v.passed && v.extra.is_empty() && v.missing.is_empty(),
            "{v:?}"
        );
        assert_eq!(v.checked, 3);
        let v = verify_skeleton(&src, &dst, 3).unwrap();
        assert!(!v.passed);
        assert_eq!(v.missing, ["a/a1", "a/a2", "b/b1"]);
        assert_eq!(v.extra, ["a/deeper"]);
    }

    #[test]
    fn missing_destination_root_is_all_missing() {
        let t = tree();
        let v = verify_skeleton(&t.path().join("src"), &t.path().join("nope"), 2).unwrap();
        assert!(!v.passed);
        assert_eq!(v.missing, [".", "a", "b"]);
        assert_eq!(v.missing_count, 3);
        assert_eq!(v.checked, 3);
    }

    #[test]
    fn destination_inside_the_source_is_not_copied_into_itself() {
        let t = tree();
        let src = t.path().join("src");
        let dst = src.join("a/copy");
        let r = copy_skeleton(&src, &dst, &options(u32::MAX, 2), &NoProgress).unwrap();
        assert!(r.succeeded(), "{r:?}");
        assert!(!dst.join("a/copy").exists());
        assert!(dst.join("a/a1/a11").is_dir());
    }

    #[test]
    fn same_directory_is_refused() {
        let t = tree();
        let src = t.path().join("src");
        let e = copy_skeleton(&src, &src, &options(2, 1), &NoProgress).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    }

    #[test]
    fn read_only_source_directories_still_get_children_and_their_mode() {
        let t = tree();
        let src = t.path().join("src");
        fs::set_permissions(src.join("a"), fs::Permissions::from_mode(0o555)).unwrap();
        let dst = t.path().join("dst");
        let r = copy_skeleton(&src, &dst, &options(3, 2), &NoProgress).unwrap();
        fs::set_permissions(src.join("a"), fs::Permissions::from_mode(0o755)).unwrap();
        assert!(r.succeeded(), "{r:?}");
        assert!(dst.join("a/a1").is_dir());
        let m = fs::metadata(dst.join("a")).unwrap().permissions().mode() & 0o7777;
        assert_eq!(m, 0o555);
        // A rerun must get past the now read-only destination directory.
        fs::set_permissions(dst.join("a"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::remove_dir(dst.join("a/a2")).unwrap();
        fs::set_permissions(dst.join("a"), fs::Permissions::from_mode(0o555)).unwrap();
        let r = copy_skeleton(&src, &dst, &options(3, 2), &NoProgress).unwrap();
        assert!(r.succeeded(), "{r:?}");
        assert_eq!(r.dirs_created, 1);
        fs::set_permissions(dst.join("a"), fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn render_escapes_what_would_break_a_line() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        assert_eq!(render_path(Path::new("")), ".");
        assert_eq!(render_path(Path::new("a b/ü")), "a b/ü");
        assert_eq!(
            render_path(Path::new("new\nline\ttab\\")),
            "new\\nline\\ttab\\\\"
        );
        assert_eq!(
            render_path(Path::new(OsStr::from_bytes(b"bad\xffbyte"))),
            "bad\\xffbyte"
        );
    }
}
