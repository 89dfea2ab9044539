//! Skeleton copy benchmark: Ferry's `copy_skeleton` (copy and verification, as the agent runs
//! it) against `rsync -a -f'+ */' -f'- *' SRC/ DST/` on one generated tree of about 200,000
//! directories with a few files each. Best of N runs each, alternating, into fresh
//! destinations, after a `sync` so neither pays for the other's write-back. Also shown:
//! `rsync -aAX`, which copies the attributes and ACLs Ferry copies, and verification alone.
//! Prints a table; asserts nothing about time.
//!
//! Run: `cargo bench --bench skeleton` (options after `--`: `--dirs N` for a quicker tree,
//! `--files N` per directory, `--runs N`, `--threads N`, `--base DIR` for where the tree goes).
//! Needs `rsync` for the comparison (`apt-get install rsync`); without it Ferry runs alone.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ferry::agent::NoProgress;
use ferry::agent::skeleton::{SkeletonOptions, copy_skeleton, verify_skeleton};

struct Args {
    dirs: u64,
    files: u32,
    runs: u32,
    threads: usize,
    base: Option<PathBuf>,
}

fn args() -> Args {
    let mut a = Args {
        dirs: 200_000,
        files: 2,
        runs: 3,
        threads: 0,
        base: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--dirs" => a.dirs = value().parse().expect("--dirs N"),
            "--files" => a.files = value().parse().expect("--files N"),
            "--runs" => a.runs = value().parse::<u32>().expect("--runs N").max(1),
            "--threads" => a.threads = value().parse().expect("--threads N"),
            "--base" => a.base = Some(PathBuf::from(value())),
            _ => {} // `cargo bench` passes `--bench`
        }
    }
    a
}

/// Fan-outs per level giving at least `dirs` directories (root included) in five levels, the
/// last level the widest, as share trees are: 20 x 20 x 20 x 24 -> 200,421.
fn fanouts(dirs: u64) -> Vec<u64> {
    let mut f = vec![20u64, 20, 20];
    let above: u64 = 1 + 20 + 400 + 8000;
    if dirs <= above {
        // Small trees: shrink evenly.
        let k = ((dirs as f64).powf(1.0 / 4.0).ceil() as u64).max(2);
        return vec![k; 4];
    }
    f.push((dirs - above).div_ceil(8000));
    f
}

fn generate(root: &Path, fanouts: &[u64], files: u32) -> (u64, u64) {
    fn level(dir: &Path, fanouts: &[u64], files: u32, counts: &mut (u64, u64)) {
        for i in 0..files {
            fs::write(dir.join(format!("document {i}.docx")), b"skeleton bench").unwrap();
            counts.1 += 1;
        }
        let Some((&n, rest)) = fanouts.split_first() else {
            return;
        };
        for i in 0..n {
            let child = dir.join(format!("folder {i:03}"));
            fs::create_dir(&child).unwrap();
            counts.0 += 1;
            level(&child, rest, files, counts);
        }
    }
    fs::create_dir(root).unwrap();
    let mut counts = (1, 0);
    level(root, fanouts, files, &mut counts);
    counts
}

fn sync() {
    rustix::fs::sync();
}

fn rsync_available() -> bool {
    Command::new("rsync")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

// `-f'+ */'` is one argument: a filter rule with a space in it.
#[allow(clippy::suspicious_command_arg_space)]
fn rsync(flags: &str, src: &Path, dst: &Path) -> Duration {
    let started = Instant::now();
    let status = Command::new("rsync")
        .arg(flags)
        .arg("-f+ */")
        .arg("-f- *")
        .arg(format!("{}/", src.display()))
        .arg(format!("{}/", dst.display()))
        .status()
        .expect("rsync runs");
    let took = started.elapsed();
    assert!(status.success(), "rsync failed: {status}");
    took
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn main() {
    let a = args();
    let base = match &a.base {
        Some(b) => tempfile::tempdir_in(b),
        None => tempfile::tempdir(),
    }
    .expect("a temporary directory");
    let src = base.path().join("src");
    let fan = fanouts(a.dirs);
    println!(
        "generating a tree with fan-outs {fan:?} and {} files per directory under {}",
        a.files,
        base.path().display()
    );
    let started = Instant::now();
    let (dirs, files) = generate(&src, &fan, a.files);
    let generation = started.elapsed();
    sync();
    println!(
        "generated {dirs} directories and {files} files in {}",
        secs(generation)
    );

    let have_rsync = rsync_available();
    if !have_rsync {
        println!("notice: rsync is not installed (apt-get install rsync); timing Ferry alone");
    }
    let options = SkeletonOptions {
        depth: u32::MAX,
        log: Some(base.path().join("skeleton.log")),
        threads: a.threads,
    };
    let (mut ferry, mut plain, mut attrs, mut verify) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // Every run writes a new destination and nothing is deleted until the end: ext4's inode
    // allocator slows down markedly right after mass deletions, which would charge one tool
    // for the other's clean-up.
    for run in 1..=a.runs {
        let dst = base.path().join(format!("ferry-{run}"));
        sync();
        let started = Instant::now();
        let report = copy_skeleton(&src, &dst, &options, &NoProgress).expect("the copy runs");
        let took = started.elapsed();
        assert!(report.succeeded(), "the copy failed: {:?}", report.errors);
        assert_eq!(report.dirs_created, dirs);
        ferry.push(took);
        sync();
        let started = Instant::now();
        let v = verify_skeleton(&src, &dst, u32::MAX).unwrap();
        verify.push(started.elapsed());
        assert!(v.passed && v.checked == dirs);
        print!("run {run}: ferry {}", secs(took));

        if have_rsync {
            for (flags, times) in [("-a", &mut plain), ("-aAX", &mut attrs)] {
                let dst = base.path().join(format!("rsync{flags}-{run}"));
                sync();
                let took = rsync(flags, &src, &dst);
                times.push(took);
                print!(", rsync {flags} {}", secs(took));
                let v = verify_skeleton(&src, &dst, u32::MAX).unwrap();
                assert!(
                    v.passed && v.extra.is_empty(),
                    "rsync's copy differs: {v:?}"
                );
            }
        }
        println!();
    }
    let best = |v: &[Duration]| v.iter().min().copied();
    let ferry = best(&ferry).unwrap();
    println!();
    println!(
        "| dirs | files | threads | generate | Ferry copy+verify | (verify alone) | rsync -a | rsync/Ferry | rsync -aAX | rsync -aAX/Ferry |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let cell = |d: Option<Duration>| d.map_or("n/a".to_owned(), secs);
    let ratio = |d: Option<Duration>| {
        d.map_or("n/a".to_owned(), |d| {
            format!("{:.2}", d.as_secs_f64() / ferry.as_secs_f64())
        })
    };
    let threads = if a.threads == 0 {
        "auto".to_owned()
    } else {
        a.threads.to_string()
    };
    println!(
        "| {dirs} | {files} | {threads} | {} | {} | {} | {} | {} | {} | {} |",
        secs(generation),
        secs(ferry),
        cell(best(&verify)),
        cell(best(&plain)),
        ratio(best(&plain)),
        cell(best(&attrs)),
        ratio(best(&attrs)),
    );
    println!(
        "(best of {} runs each; a ratio >= 1.00 means Ferry is at least as fast)",
        a.runs
    );
    println!("removing the trees...");
}
