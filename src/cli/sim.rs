//! `ferry sim create|present-disk|redirect`: simulated failover clusters for tests, demos and
//! walkthroughs, and the knobs a storage admin would turn on a real one.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

use super::output::{OutputFormat, print_json};
use super::{Failure, failed, usage};
use crate::sim::{SimState, load_state};

#[derive(Args)]
pub struct SimArgs {
    /// table for people, json for machines.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table, global = true)]
    pub output: OutputFormat,
    #[command(subcommand)]
    pub command: SimCommand,
}

#[derive(Subcommand)]
pub enum SimCommand {
    /// Generate a simulated cluster (state file and real disk folders) in DIR.
    Create(SimCreateArgs),
    /// Present a disk of the simulated cluster in --from to the one in --dir (the same LUN zoned
    /// to both). The last line printed is the name the target gives the disk, and nothing else.
    PresentDisk {
        /// The target cluster's directory.
        #[arg(long, value_name = "TARGET_DIR")]
        dir: PathBuf,
        /// The directory of the cluster that owns the disk.
        #[arg(long, value_name = "SOURCE_DIR")]
        from: PathBuf,
        /// The disk's name on the source, e.g. "Cluster Disk 2".
        #[arg(long)]
        disk: String,
    },
    /// Switch a CSV volume of the simulated cluster in DIR into or out of redirected I/O.
    Redirect {
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// The CSV volume, e.g. 'C:\ClusterStorage\Volume1' (case-insensitive).
        #[arg(long)]
        volume: String,
        #[arg(value_enum)]
        switch: Switch,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

#[derive(Args)]
pub struct SimCreateArgs {
    /// The cluster's directory; sibling directories hold other simulated clusters.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// Cluster name; nodes are named CLUSTER-n1, CLUSTER-n2, ...
    #[arg(long)]
    cluster: String,
    /// Windows generation: ws2003, ws2008, ws2008r2, ws2012, ...
    #[arg(long, default_value = "ws2003")]
    os: String,
    #[arg(long, default_value_t = 2, value_name = "N")]
    nodes: u32,
    #[arg(long, default_value_t = 3, value_name = "N")]
    groups: u32,
    /// Shares per group.
    #[arg(long, default_value_t = 10, value_name = "N")]
    shares: u32,
    /// Empty disks in available storage: an interim cluster needs one per group it takes in
    /// at a time.
    #[arg(long, default_value_t = 1, value_name = "N")]
    spare_disks: u32,
    /// Generator seed (default: derived from the cluster name).
    #[arg(long, value_name = "S")]
    seed: Option<u64>,
    /// Let drive letters repeat between groups, as they do anyway past 21 groups: for an
    /// interim or target cluster that takes in more groups than there are letters.
    #[arg(long)]
    letters_repeat: bool,
    /// Base latency of every simulated operation in milliseconds (migrations and onlines take
    /// a multiple of it); 0 makes the cluster answer at once, for benchmarks. Default 5.
    #[arg(long, value_name = "MS")]
    latency_ms: Option<u64>,
    /// Replace a simulated cluster already in DIR.
    #[arg(long)]
    force: bool,
}

pub fn run(args: SimArgs) -> Result<(), Failure> {
    match args.command {
        SimCommand::Create(create) => sim_create(create, args.output),
        SimCommand::PresentDisk { dir, from, disk } => {
            present_disk(&dir, &from, &disk, args.output)
        }
        SimCommand::Redirect {
            dir,
            volume,
            switch,
        } => redirect(&dir, &volume, switch == Switch::On, args.output),
    }
}

fn sim_create(args: SimCreateArgs, output: OutputFormat) -> Result<(), Failure> {
    let os = crate::model::OsGeneration::parse(&args.os).ok_or_else(|| {
        usage(anyhow::anyhow!(
            "--os must be a Windows generation such as ws2003, ws2008 or ws2008r2, got `{}`",
            args.os
        ))
    })?;
    let mut opts = crate::sim::SimCreateOptions::new(args.dir, &args.cluster, os);
    opts.nodes = args.nodes;
    opts.groups = args.groups;
    opts.shares = args.shares;
    opts.spare_disks = args.spare_disks;
    opts.letters_repeat = args.letters_repeat;
    if let Some(latency_ms) = args.latency_ms {
        opts.latency_ms = latency_ms;
    }
    opts.force = args.force;
    if let Some(seed) = args.seed {
        opts.seed = seed;
    }
    let summary = crate::sim::create_sim_cluster(&opts).map_err(failed)?;
    if output == OutputFormat::Json {
        return print_json(&json!({
            "cluster": summary.cluster,
            "os": summary.os,
            "seed": summary.seed,
            "dir": summary.dir.display().to_string(),
            "nodes": summary.nodes,
            "groups": summary.groups,
            "resources": summary.resources,
            "shares": summary.shares,
            "permissions": summary.permissions,
            "disks": summary.disks,
            "directories": summary.directories,
            "files": summary.files,
            "symlinks": summary.symlinks,
        }));
    }
    outln!(
        "simulated cluster {} ({}, seed {}) in {}: {} nodes, {} groups, {} resources, {} shares \
         ({} permission entries), {} disks holding {} directories, {} files, {} symlinks",
        summary.cluster,
        summary.os,
        summary.seed,
        summary.dir.display(),
        summary.nodes,
        summary.groups,
        summary.resources,
        summary.shares,
        summary.permissions,
        summary.disks,
        summary.directories,
        summary.files,
        summary.symlinks
    );
    Ok(())
}

/// The simulated cluster in `dir`; a directory without one is a bad argument.
fn simulated_cluster(dir: &Path, flag: &str) -> Result<SimState, Failure> {
    load_state(dir).map_err(|e| {
        usage(anyhow::anyhow!(
            "{flag} {}: no simulated cluster there (`ferry sim create` makes one): {e:#}",
            dir.display()
        ))
    })
}

fn present_disk(
    target_dir: &Path,
    source_dir: &Path,
    disk: &str,
    output: OutputFormat,
) -> Result<(), Failure> {
    let source = simulated_cluster(source_dir, "--from")?;
    let target = simulated_cluster(target_dir, "--dir")?;
    if source.disk(disk).is_none() {
        let disks: Vec<&str> = source.disks.iter().map(|d| d.name.as_str()).collect();
        return Err(usage(anyhow::anyhow!(
            "cluster {} has no disk named `{disk}`; its disks: {}",
            source.cluster,
            disks.join(", ")
        )));
    }
    let name = crate::sim::present_disk(target_dir, source_dir, disk).map_err(failed)?;
    if output == OutputFormat::Json {
        return print_json(&json!({
            "cluster": target.cluster,
            "disk": name,
            "from_cluster": source.cluster,
            "from_disk": disk,
        }));
    }
    // The description goes to stderr so that stdout, and the last line of both, is the name a
    // script takes.
    eprintln!(
        "disk `{disk}` of {} is presented to {} as:",
        source.cluster, target.cluster
    );
    outln!("{name}");
    Ok(())
}

fn redirect(dir: &Path, volume: &str, on: bool, output: OutputFormat) -> Result<(), Failure> {
    let state = simulated_cluster(dir, "--dir")?;
    let csv_volumes: Vec<&str> = state
        .perf
        .volumes
        .iter()
        .filter(|v| v.csv)
        .map(|v| v.name.as_str())
        .collect();
    if !csv_volumes.iter().any(|v| v.eq_ignore_ascii_case(volume)) {
        let known = if !csv_volumes.is_empty() {
            format!("its CSV volumes: {}", csv_volumes.join(", "))
        } else if state.os < crate::model::OsGeneration::Ws2008r2 {
            format!(
                "it has none: CSV volumes came with ws2008r2, it is {}",
                state.os
            )
        } else {
            "it has none".to_owned()
        };
        return Err(usage(anyhow::anyhow!(
            "cluster {} has no CSV volume named `{volume}`; {known}",
            state.cluster
        )));
    }
    crate::sim::set_csv_redirected(dir, Some(volume), on).map_err(failed)?;
    if output == OutputFormat::Json {
        return print_json(&json!({
            "cluster": state.cluster,
            "volume": volume,
            "redirected": on,
        }));
    }
    outln!(
        "{volume} of {}: redirected I/O {}",
        state.cluster,
        if on { "on" } else { "off" }
    );
    Ok(())
}
