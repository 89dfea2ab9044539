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
//! On Unix the work is split by what it does: `walk.rs` opens directories by descriptor, reads
//! their entries and runs the worker pool both passes share, `copy.rs` creates the directories
//! and applies their metadata and the log, `verify.rs` walks both trees again.
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
        copy::copy(src, dst, options, progress, None)
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
        copy::copy(src, dst, options, progress, Some(cancel))
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
        verify::verify(src, dst, depth, 0, &crate::NoProgress)
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
mod copy;
#[cfg(unix)]
mod verify;
#[cfg(unix)]
mod walk;

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
