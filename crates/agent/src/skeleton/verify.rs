//! The verification walk: both trees again within the depth, each directory's subdirectories
//! listed on both sides and merged in name order, so a source directory missing at the
//! destination and an extra one at the destination are found in one pass.

use std::cmp::Ordering;
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use rustix::fs::{self as rfs, AtFlags, FileType};
use rustix::io::Errno;

use super::walk::{
    Listed, Loc, Opener, PROGRESS_EVERY, child, dev_ino, file_type, invalid, read_dir, run_pool,
    with_path,
};
use super::{MAX_ERRORS_LISTED, MAX_VERIFY_LISTED, Verification, render_path, worker_count};
use crate::Progress;

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
