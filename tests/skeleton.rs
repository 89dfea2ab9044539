//! The directory skeleton copy on real trees: odd names, links and loops, levels deeper than the
//! copy, modes, times, owners (when root), user attributes and POSIX ACLs (when the file system
//! has them), the log, an interrupted run completed by a second one, and the verification.

#![cfg(unix)]

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, FileTimes};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use ferry::agent::skeleton::{
    SkeletonOptions, SkeletonReport, copy_skeleton, render_path, verify_skeleton,
};
use ferry::agent::{NoProgress, Progress};

const DEPTH: u32 = 4;
const TEST_XATTR: &str = "user.ferry.test";

fn os(bytes: &[u8]) -> &OsStr {
    OsStr::from_bytes(bytes)
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Directories of the test tree, relative to the source root, as bytes (one is not UTF-8).
fn tree_dirs() -> Vec<PathBuf> {
    let names: &[&[u8]] = &[
        b"dept a",
        b"dept a/sub 1",
        b"dept a/sub 1/level3",
        b"dept a/sub 1/level3/level4",
        b"dept a/sub 1/level3/level4/level5",
        b"dept a/sub 2",
        "ünïcødé-目录".as_bytes(),
        "ünïcødé-目录/inner".as_bytes(),
        "ünïcødé-目录/inner/deep".as_bytes(),
        b"new\nline",
        b"new\nline/x",
        b"-leading-dash",
        b"--",
        b"bad\xffbyte",
        b"bad\xffbyte/deep",
        b"bad\xffbyte/deep/deeper",
        b"bad\xffbyte/deep/deeper/deepest",
        b"empty",
    ];
    names.iter().map(|n| PathBuf::from(os(n))).collect()
}

/// Builds the source tree: the directories above, a file in every directory, links to files,
/// to directories, to an ancestor, a self loop, a two-link loop and a dangling link; modes,
/// an owner (when root), a user attribute and ACLs (when supported); times set last.
/// Returns whether user attributes and ACLs took.
fn build_source(src: &Path) -> (bool, bool) {
    fs::create_dir(src).unwrap();
    for d in tree_dirs() {
        fs::create_dir(src.join(d)).unwrap();
    }
    let mut all = vec![PathBuf::new()];
    all.extend(tree_dirs());
    for (i, d) in all.iter().enumerate() {
        fs::write(src.join(d).join(format!("file {i}.txt")), b"data").unwrap();
    }
    symlink("dept a", src.join("link-dir")).unwrap();
    symlink("file 0.txt", src.join("link-file")).unwrap();
    symlink("loop", src.join("loop")).unwrap();
    symlink("loop-b", src.join("loop-a")).unwrap();
    symlink("loop-a", src.join("loop-b")).unwrap();
    symlink("nowhere", src.join("dangling")).unwrap();
    symlink("../..", src.join("dept a/sub 1/up")).unwrap();
    symlink("../file 0.txt", src.join("dept a/link-up-file")).unwrap();
    // Beyond the copy's reach: never seen.
    symlink("..", src.join("dept a/sub 1/level3/beyond")).unwrap();

    fs::set_permissions(src.join("dept a"), fs::Permissions::from_mode(0o750)).unwrap();
    fs::set_permissions(src.join("ünïcødé-目录"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::set_permissions(
        src.join("-leading-dash"),
        fs::Permissions::from_mode(0o1777),
    )
    .unwrap();
    fs::set_permissions(src.join("--"), fs::Permissions::from_mode(0o2755)).unwrap();
    fs::set_permissions(src.join("empty"), fs::Permissions::from_mode(0o555)).unwrap();
    if is_root() {
        std::os::unix::fs::chown(src.join("ünïcødé-目录"), Some(1234), Some(5678)).unwrap();
        std::os::unix::fs::chown(src.join("new\nline/x"), Some(4321), None).unwrap();
    }

    let user_xattrs = xattr::set(src.join("dept a"), TEST_XATTR, b"finance").is_ok();
    if user_xattrs {
        xattr::set(
            src.join(os(b"bad\xffbyte/deep")),
            TEST_XATTR,
            b"\x00binary\xff",
        )
        .unwrap();
    } else {
        eprintln!("notice: this file system refuses user attributes; not checking them");
    }
    let acl = acl_bytes(&[
        (0x01, 7, None),
        (0x02, 5, Some(4242)),
        (0x04, 5, None),
        (0x10, 5, None),
        (0x20, 0, None),
    ]);
    let acls = xattr::set(src.join("dept a"), "system.posix_acl_access", &acl).is_ok()
        && xattr::set(src.join("dept a"), "system.posix_acl_default", &acl).is_ok();
    if !acls {
        eprintln!("notice: this file system refuses POSIX ACLs; not checking them");
    }

    // Times last: creating entries changes a directory's modification time.
    for (i, d) in all.iter().enumerate() {
        let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_500_000_000 + 86_400 * i as u64);
        let times = FileTimes::new()
            .set_modified(base + Duration::from_nanos(123_456_789))
            .set_accessed(base + Duration::from_secs(3600) + Duration::from_nanos(987_654_321));
        File::open(src.join(d)).unwrap().set_times(times).unwrap();
    }
    (user_xattrs, acls)
}

/// A POSIX ACL in the kernel's `system.posix_acl_*` attribute format.
fn acl_bytes(entries: &[(u16, u16, Option<u32>)]) -> Vec<u8> {
    let mut out = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in entries {
        out.extend(tag.to_le_bytes());
        out.extend(perm.to_le_bytes());
        out.extend(id.unwrap_or(u32::MAX).to_le_bytes());
    }
    out
}

/// What a copy of `src` at `depth` must give: every directory within depth, and the links and
/// files seen in the directories whose subdirectories are candidates.
struct Expected {
    dirs: Vec<PathBuf>,
    links: u64,
    files: u64,
}

fn expected(src: &Path, depth: u32) -> Expected {
    fn walk(src: &Path, rel: &Path, level: u32, depth: u32, e: &mut Expected) {
        e.dirs.push(rel.to_path_buf());
        if level >= depth {
            return;
        }
        for entry in fs::read_dir(src.join(rel)).unwrap() {
            let entry = entry.unwrap();
            let ty = entry.file_type().unwrap();
            if ty.is_symlink() {
                e.links += 1;
            } else if ty.is_dir() {
                walk(src, &rel.join(entry.file_name()), level + 1, depth, e);
            } else {
                e.files += 1;
            }
        }
    }
    let mut e = Expected {
        dirs: Vec::new(),
        links: 0,
        files: 0,
    };
    walk(src, Path::new(""), 1, depth, &mut e);
    e.dirs.sort();
    e
}

/// Every entry under `dst`, never following links: relative path -> is a real directory.
fn all_entries(dst: &Path) -> BTreeMap<PathBuf, bool> {
    fn walk(dst: &Path, rel: &Path, out: &mut BTreeMap<PathBuf, bool>) {
        for entry in fs::read_dir(dst.join(rel)).unwrap() {
            let entry = entry.unwrap();
            let rel = rel.join(entry.file_name());
            let is_dir = entry.file_type().unwrap().is_dir();
            out.insert(rel.clone(), is_dir);
            if is_dir {
                walk(dst, &rel, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dst, Path::new(""), &mut out);
    out
}

/// Checks directory by directory: same mode, times, owner, attributes; then that nothing but
/// those directories exists. Metadata first: listing a directory may update its access time.
fn check_copy(src: &Path, dst: &Path, want: &Expected, user_xattrs: bool, acls: bool) {
    for rel in &want.dirs {
        let shown = render_path(rel);
        let s = fs::symlink_metadata(src.join(rel)).unwrap();
        let d = fs::symlink_metadata(dst.join(rel))
            .unwrap_or_else(|e| panic!("{shown} missing at the destination: {e}"));
        assert!(d.file_type().is_dir(), "{shown} is not a directory");
        assert_eq!(d.mode() & 0o7777, s.mode() & 0o7777, "{shown}: mode");
        assert_eq!(
            (d.mtime(), d.mtime_nsec()),
            (s.mtime(), s.mtime_nsec()),
            "{shown}: mtime"
        );
        assert_eq!(
            (d.atime(), d.atime_nsec()),
            (s.atime(), s.atime_nsec()),
            "{shown}: atime"
        );
        if is_root() {
            assert_eq!((d.uid(), d.gid()), (s.uid(), s.gid()), "{shown}: owner");
        }
        let names = |p: &Path| -> Vec<OsString> {
            let mut v: Vec<OsString> = xattr::list(p)
                .map(|l| {
                    l.filter(|n| !n.as_bytes().starts_with(b"security."))
                        .collect()
                })
                .unwrap_or_default();
            v.sort();
            v
        };
        let (sn, dn) = (names(&src.join(rel)), names(&dst.join(rel)));
        if user_xattrs || acls {
            assert_eq!(dn, sn, "{shown}: attribute names");
            for n in &sn {
                assert_eq!(
                    xattr::get(dst.join(rel), n).unwrap(),
                    xattr::get(src.join(rel), n).unwrap(),
                    "{shown}: attribute {}",
                    n.display()
                );
            }
        }
    }
    if user_xattrs {
        assert_eq!(
            xattr::get(dst.join("dept a"), TEST_XATTR)
                .unwrap()
                .as_deref(),
            Some(&b"finance"[..])
        );
    }
    if acls {
        assert!(
            xattr::get(dst.join("dept a"), "system.posix_acl_default")
                .unwrap()
                .is_some()
        );
    }

    let entries = all_entries(dst);
    let not_dirs: Vec<String> = entries
        .iter()
        .filter(|(_, is_dir)| !**is_dir)
        .map(|(p, _)| render_path(p))
        .collect();
    assert!(not_dirs.is_empty(), "files or links copied: {not_dirs:?}");
    let got: Vec<&PathBuf> = entries.keys().collect();
    let want_dirs: Vec<&PathBuf> = want
        .dirs
        .iter()
        .filter(|p| !p.as_os_str().is_empty())
        .collect();
    assert_eq!(got, want_dirs, "the destination's directories");
}

fn options(depth: u32, log: Option<PathBuf>, threads: usize) -> SkeletonOptions {
    SkeletonOptions {
        depth,
        log,
        threads,
    }
}

fn log_lines(path: &Path) -> Vec<(String, String)> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l
                .split_once('\t')
                .unwrap_or_else(|| panic!("not a log line: {l:?}"));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

#[derive(Default)]
struct Recorder(Mutex<Vec<(u64, Option<u64>, String)>>);

impl Progress for Recorder {
    fn report(&self, done: u64, total: Option<u64>, message: &str) {
        self.0
            .lock()
            .unwrap()
            .push((done, total, message.to_owned()));
    }
}

fn copy_and_rerun(threads: usize) {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let dst = t.path().join("out/dst");
    let log = t.path().join("skeleton.log");
    let (user_xattrs, acls) = build_source(&src);
    let want = expected(&src, DEPTH);
    let progress = Recorder::default();

    let r = copy_skeleton(
        &src,
        &dst,
        &options(DEPTH, Some(log.clone()), threads),
        &progress,
    )
    .unwrap();
    assert_eq!(r.errors, Vec::<String>::new());
    assert_eq!(r.error_count, 0);
    assert_eq!(r.dirs_created, want.dirs.len() as u64, "{r:?}");
    assert_eq!(r.dirs_existing, 0);
    assert_eq!(r.skipped_links, want.links);
    assert_eq!(r.files_skipped, want.files);
    let want_xattrs = u64::from(user_xattrs) * 2 + u64::from(acls) * 2;
    assert_eq!(r.xattrs_copied, want_xattrs);
    assert!(r.verification.passed, "{:?}", r.verification);
    assert_eq!(r.verification.checked, want.dirs.len() as u64);
    assert!(r.verification.missing.is_empty() && r.verification.extra.is_empty());
    assert!(r.succeeded());
    check_copy(&src, &dst, &want, user_xattrs, acls);
    assert!(!progress.0.lock().unwrap().is_empty());

    // The log: a start line, one line per created directory and per skipped link, a summary.
    let lines = log_lines(&log);
    assert_eq!(lines[0].0, "Start");
    let created: Vec<&str> = lines
        .iter()
        .filter(|l| l.0 == "New Dir")
        .map(|l| l.1.as_str())
        .collect();
    assert_eq!(created.len() as u64, r.dirs_created);
    for rel in &want.dirs {
        assert!(
            created.contains(&render_path(rel).as_str()),
            "no log line for {rel:?}"
        );
    }
    for shown in [
        ".",
        "dept a",
        "new\\nline",
        "new\\nline/x",
        "bad\\xffbyte/deep/deeper",
        "-leading-dash",
        "ünïcødé-目录/inner/deep",
    ] {
        assert!(created.contains(&shown), "no log line for {shown}");
    }
    let links: Vec<&str> = lines
        .iter()
        .filter(|l| l.0 == "Skip Link")
        .map(|l| l.1.as_str())
        .collect();
    assert_eq!(links.len() as u64, want.links);
    for shown in ["link-dir", "loop", "loop-a", "dangling", "dept a/sub 1/up"] {
        assert!(links.contains(&shown), "no skipped-link line for {shown}");
    }
    let summary = &lines
        .iter()
        .find(|l| l.0 == "Summary")
        .expect("a summary line")
        .1;
    assert!(
        summary.contains(&format!("dirs_created={}", r.dirs_created)),
        "{summary}"
    );
    let verification = &lines.last().unwrap();
    assert_eq!(verification.0, "Verification");
    assert!(verification.1.contains("passed=true"), "{verification:?}");

    // An interrupted run: some directories never made it, one lost its metadata, and one has an
    // attribute the source does not have. The second run completes and repairs the tree.
    fs::remove_dir_all(dst.join("ünïcødé-目录/inner")).unwrap();
    fs::remove_dir(dst.join("dept a/sub 1/level3")).unwrap();
    fs::remove_dir(dst.join(os(b"new\nline/x"))).unwrap();
    fs::set_permissions(dst.join("-leading-dash"), fs::Permissions::from_mode(0o700)).unwrap();
    File::open(dst.join("empty"))
        .unwrap()
        .set_times(FileTimes::new().set_modified(SystemTime::now()))
        .unwrap();
    let stale = user_xattrs && xattr::set(dst.join("--"), "user.stale", b"x").is_ok();
    let removed = 4;

    let r2 = copy_skeleton(
        &src,
        &dst,
        &options(DEPTH, Some(log.clone()), threads),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(r2.errors, Vec::<String>::new());
    assert_eq!(r2.dirs_created, removed, "{r2:?}");
    assert_eq!(r2.dirs_existing, want.dirs.len() as u64 - removed);
    assert_eq!(r2.skipped_links, want.links);
    assert!(r2.succeeded(), "{r2:?}");
    check_copy(&src, &dst, &want, user_xattrs, acls);
    if stale {
        assert_eq!(xattr::get(dst.join("--"), "user.stale").unwrap(), None);
    }
    // The log was started afresh and names only what this run created.
    let lines = log_lines(&log);
    let created: Vec<&str> = lines
        .iter()
        .filter(|l| l.0 == "New Dir")
        .map(|l| l.1.as_str())
        .collect();
    assert_eq!(
        created
            .iter()
            .copied()
            .collect::<std::collections::BTreeSet<_>>(),
        [
            "dept a/sub 1/level3",
            "new\\nline/x",
            "ünïcødé-目录/inner",
            "ünïcødé-目录/inner/deep"
        ]
        .into_iter()
        .collect()
    );

    // A third run has nothing left to create.
    let r3 = copy_skeleton(&src, &dst, &options(DEPTH, None, threads), &NoProgress).unwrap();
    assert_eq!(
        (r3.dirs_created, r3.dirs_existing),
        (0, want.dirs.len() as u64)
    );
    assert!(r3.succeeded());
    cleanup(&src);
}

/// Read-only directories would stop the temporary directory's removal when not root.
fn cleanup(src: &Path) {
    let _ = fs::set_permissions(src.join("empty"), fs::Permissions::from_mode(0o755));
}

#[test]
fn copies_the_skeleton_and_a_rerun_completes_it_single_thread() {
    copy_and_rerun(1);
}

#[test]
fn copies_the_skeleton_and_a_rerun_completes_it_in_parallel() {
    copy_and_rerun(4);
}

#[test]
fn every_depth_copies_exactly_its_levels() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    build_source(&src);
    for depth in 1..=7 {
        let dst = t.path().join(format!("dst{depth}"));
        let want = expected(&src, depth);
        let r = copy_skeleton(&src, &dst, &options(depth, None, 2), &NoProgress).unwrap();
        assert!(r.succeeded(), "depth {depth}: {r:?}");
        assert_eq!(r.dirs_created, want.dirs.len() as u64, "depth {depth}");
        assert_eq!(
            (r.skipped_links, r.files_skipped),
            (want.links, want.files),
            "depth {depth}"
        );
        let got: Vec<PathBuf> = all_entries(&dst).into_keys().collect();
        let want: Vec<PathBuf> = want
            .dirs
            .into_iter()
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        assert_eq!(got, want, "depth {depth}");
    }
    cleanup(&src);
}

#[test]
fn verification_reports_missing_and_extra_directories() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    build_source(&src);
    let dst = t.path().join("dst");
    let r = copy_skeleton(&src, &dst, &options(3, None, 2), &NoProgress).unwrap();
    assert!(r.succeeded());

    // Missing: a removed subtree (each of its directories), a directory replaced by a file, one
    // replaced by a link to a directory. Extra: new directories within depth, and one beyond it
    // that the verification must not look at.
    fs::remove_dir_all(dst.join("dept a")).unwrap();
    fs::remove_dir(dst.join(os(b"bad\xffbyte/deep"))).unwrap();
    fs::write(dst.join(os(b"bad\xffbyte/deep")), b"not a dir").unwrap();
    fs::remove_dir(dst.join("new\nline/x")).unwrap();
    symlink("/tmp", dst.join("new\nline/x")).unwrap();
    fs::create_dir_all(dst.join("extra/inner/beyond")).unwrap();
    fs::create_dir(dst.join("empty/stray")).unwrap_or_else(|_| {
        // Not root: the copy made it read-only like the source.
        fs::set_permissions(dst.join("empty"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::create_dir(dst.join("empty/stray")).unwrap();
    });

    let v = verify_skeleton(&src, &dst, 3).unwrap();
    assert!(!v.passed);
    assert_eq!(
        v.missing,
        [
            "bad\\xffbyte/deep",
            "dept a",
            "dept a/sub 1",
            "dept a/sub 2",
            "new\\nline/x"
        ]
    );
    assert_eq!(v.missing_count, 5);
    assert_eq!(v.extra, ["empty/stray", "extra", "extra/inner"]);
    assert_eq!(v.extra_count, 3);
    assert_eq!(v.checked, expected(&src, 3).dirs.len() as u64);
    assert_eq!(v.error_count, 0);

    // Extra directories alone are a warning, not a failure.
    let dst2 = t.path().join("dst2");
    copy_skeleton(&src, &dst2, &options(2, None, 1), &NoProgress).unwrap();
    fs::create_dir(dst2.join("stray")).unwrap();
    let v = verify_skeleton(&src, &dst2, 2).unwrap();
    assert!(v.passed, "{v:?}");
    assert_eq!(v.extra, ["stray"]);
    assert!(v.missing.is_empty());

    // The report serializes for the server.
    let json = serde_json::to_string(&r).unwrap();
    let back: SkeletonReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back, r);
    cleanup(&src);
}

#[test]
fn unusable_roots_are_errors() {
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("file");
    fs::write(&file, b"x").unwrap();
    let o = options(2, None, 1);
    assert!(
        copy_skeleton(
            &t.path().join("absent"),
            &t.path().join("d"),
            &o,
            &NoProgress
        )
        .is_err()
    );
    assert!(copy_skeleton(&file, &t.path().join("d"), &o, &NoProgress).is_err());
    assert!(copy_skeleton(t.path(), &file.join("under-a-file"), &o, &NoProgress).is_err());
    let bad_log = options(2, Some(file.join("log")), 1);
    assert!(copy_skeleton(t.path(), &t.path().join("d2"), &bad_log, &NoProgress).is_err());
    assert!(verify_skeleton(&t.path().join("absent"), t.path(), 2).is_err());
}

#[test]
fn an_unreadable_subtree_is_counted_and_the_copy_goes_on() {
    if is_root() {
        eprintln!("notice: running as root, which reads everything; skipping");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    fs::create_dir_all(src.join("open/inside")).unwrap();
    fs::create_dir_all(src.join("closed/inside")).unwrap();
    fs::set_permissions(src.join("closed"), fs::Permissions::from_mode(0o000)).unwrap();
    let dst = t.path().join("dst");
    let r = copy_skeleton(&src, &dst, &options(3, None, 2), &NoProgress).unwrap();
    assert!(r.error_count >= 1, "{r:?}");
    assert!(
        r.errors.iter().any(|e| e.starts_with("closed: ")),
        "{:?}",
        r.errors
    );
    assert!(dst.join("open/inside").is_dir());
    // The unreadable directory is still made, with the source's mode.
    let mode = |p: &Path| fs::symlink_metadata(p).unwrap().mode() & 0o7777;
    assert_eq!(mode(&dst.join("closed")), 0o000, "{r:?}");
    assert!(!r.verification.passed);

    // Again: the destination directory is now unreadable too, and the run still gets through.
    let r = copy_skeleton(&src, &dst, &options(3, None, 2), &NoProgress).unwrap();
    assert_eq!((r.dirs_created, r.dirs_existing), (0, 4), "{r:?}");
    assert_eq!(mode(&dst.join("closed")), 0o000);

    // Once the source can be read, a rerun completes the tree.
    fs::set_permissions(src.join("closed"), fs::Permissions::from_mode(0o755)).unwrap();
    let r = copy_skeleton(&src, &dst, &options(3, None, 2), &NoProgress).unwrap();
    assert!(r.succeeded(), "{r:?}");
    assert_eq!(r.dirs_created, 1);
    assert!(dst.join("closed/inside").is_dir());
    assert_eq!(mode(&dst.join("closed")), 0o755);
}
