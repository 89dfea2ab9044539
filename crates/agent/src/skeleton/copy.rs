//! The copy: creating each directory under its destination parent, then its owner, extended
//! attributes, mode and times, in the order the module docs give; every directory created,
//! link skipped and error goes to the log.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs::File;
use std::io::{self, BufWriter, ErrorKind, Write};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, Timespec, Timestamps};
use rustix::io::Errno;
use xattr::FileExt as _;

use super::verify::verify;
use super::walk::{
    Listed, Loc, Opener, PROGRESS_EVERY, child, dev_ino, file_type, invalid, lock, read_dir,
    run_pool, with_path,
};
use super::{
    MAX_ERRORS_LISTED, SkeletonOptions, SkeletonReport, Verification, render_path, worker_count,
};
use crate::Progress;

const ACL_ACCESS: &[u8] = b"system.posix_acl_access";
const ACL_DEFAULT: &[u8] = b"system.posix_acl_default";

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
fn mode(bits: u32) -> Mode {
    Mode::from_raw_mode(bits as rfs::RawMode)
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
