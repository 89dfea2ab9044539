//! Generates a simulated cluster from a seed: nodes, networks, disks, file-server groups with
//! hundreds of shares and realistic permissions, and a real folder tree on every group disk.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use ferry_core::model::facts::{HbaFacts, QuorumType};
use ferry_core::model::{
    Access, AceType, CachingMode, Group, NetworkRole, OsGeneration, Permission, Processor,
    Properties, Resource, ResourceKind, ResourceState, Share, check_name,
};

use crate::perf::{PerfModel, PerfVolume, Workload};
use crate::state::{LatencyConfig, STATE_FORMAT, SimDisk, SimNetwork, SimNode, SimOp, SimState};
use crate::store::{STATE_FILE, StateFile, load_state};
use crate::{DISKS_DIR, disk_folder};

/// Options of `ferry sim create`.
#[derive(Debug, Clone, PartialEq)]
pub struct SimCreateOptions {
    /// The cluster's own directory: `cluster.json` and `disks/` go here. Sibling directories are
    /// other simulated clusters, which migrations read.
    pub dir: PathBuf,
    pub cluster: String,
    pub os: OsGeneration,
    pub nodes: u32,
    pub groups: u32,
    /// Shares per group.
    pub shares: u32,
    pub seed: u64,
    /// Replace a simulated cluster already in `dir`.
    pub force: bool,
    /// Empty disks in available storage, e.g. for the interim cluster's prepared disk.
    pub spare_disks: u32,
    /// Network names authenticate with Kerberos (their first online after a migration fails).
    pub kerberos: bool,
    /// Base latency of every operation; migrations and onlines take a multiple of it.
    pub latency_ms: u64,
    /// Let drive letters repeat (see [`SimState::letters_repeat`]); always so past 21 groups.
    pub letters_repeat: bool,
    /// Length of the perf workload's cycle (ramp up, steady, ramp down) in seconds; 0 runs the
    /// workloads steadily.
    pub perf_cycle_secs: u64,
}

impl SimCreateOptions {
    /// Defaults: 2 nodes, 3 groups of 10 shares, one spare disk, Kerberos on, 5 ms per operation,
    /// and a seed derived from the cluster name so the same command gives the same cluster.
    pub fn new(dir: impl Into<PathBuf>, cluster: &str, os: OsGeneration) -> Self {
        SimCreateOptions {
            dir: dir.into(),
            cluster: cluster.to_string(),
            os,
            nodes: 2,
            groups: 3,
            shares: 10,
            seed: seed_from_name(cluster),
            force: false,
            spare_disks: 1,
            kerberos: true,
            latency_ms: 5,
            letters_repeat: false,
            perf_cycle_secs: 600,
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        let mut errors = Vec::new();
        check_name(&mut errors, "cluster", &self.cluster);
        if let Some(e) = errors.first() {
            bail!("invalid cluster name `{}`: {}", self.cluster, e.message);
        }
        if !(1..=64).contains(&self.nodes) {
            bail!("--nodes must be between 1 and 64 (a failover cluster has at most 64 nodes)");
        }
        if self.groups > 10_000 {
            bail!("--groups must be at most 10000");
        }
        if self.shares > 10_000 {
            bail!("--shares must be at most 10000 per group");
        }
        if self.spare_disks > 100 {
            bail!("--spare-disks must be at most 100");
        }
        Ok(())
    }
}

/// FNV-1a of the name: stable across releases, unlike `std`'s hasher.
pub fn seed_from_name(name: &str) -> u64 {
    name.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3)
    })
}

/// What `create_sim_cluster` made.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SimSummary {
    pub cluster: String,
    pub os: OsGeneration,
    pub seed: u64,
    pub dir: PathBuf,
    pub state_file: PathBuf,
    pub nodes: usize,
    pub groups: usize,
    pub resources: usize,
    pub shares: usize,
    pub permissions: usize,
    pub disks: usize,
    pub directories: usize,
    pub files: usize,
    pub symlinks: usize,
}

/// Folder tree of one disk, paths relative to the disk's root.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DiskTree {
    pub disk: String,
    /// Sorted, so parents come before children.
    pub dirs: BTreeSet<PathBuf>,
    pub files: BTreeMap<PathBuf, String>,
    /// Link path and its relative target.
    pub symlinks: Vec<(PathBuf, PathBuf)>,
}

/// A generated cluster before anything is written.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedCluster {
    pub state: SimState,
    pub trees: Vec<DiskTree>,
}

#[derive(Debug, Default, Clone, Copy)]
struct TreeCounts {
    dirs: usize,
    files: usize,
    symlinks: usize,
}

impl GeneratedCluster {
    /// Creates every disk's folder tree under `disks_root` (`DIR/disks`).
    fn materialize(&self, disks_root: &Path) -> anyhow::Result<TreeCounts> {
        let mut counts = TreeCounts::default();
        for disk in &self.state.disks {
            let root = disks_root.join(disk_folder(&disk.name));
            fs::create_dir_all(&root).with_context(|| format!("create {}", root.display()))?;
        }
        for tree in &self.trees {
            let root = disks_root.join(disk_folder(&tree.disk));
            for dir in &tree.dirs {
                let path = root.join(dir);
                // Parents sort first, so a plain mkdir suffices; a nested share folder may also
                // be a generated subfolder of its parent share, hence the tolerance.
                match fs::create_dir(&path) {
                    Ok(()) => counts.dirs += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => {
                        return Err(e).with_context(|| format!("create {}", path.display()));
                    }
                }
            }
            for (file, content) in &tree.files {
                let path = root.join(file);
                fs::write(&path, content).with_context(|| format!("write {}", path.display()))?;
                counts.files += 1;
            }
            for (link, target) in &tree.symlinks {
                #[cfg(unix)]
                {
                    let path = root.join(link);
                    std::os::unix::fs::symlink(target, &path)
                        .with_context(|| format!("symlink {}", path.display()))?;
                    counts.symlinks += 1;
                }
                #[cfg(not(unix))]
                let _ = (link, target);
            }
        }
        Ok(counts)
    }
}

/// Generates and writes a simulated cluster into `opts.dir`.
///
/// Refuses when `opts.dir` already holds a simulated cluster (or anything else) unless
/// `opts.force`; with `force` the old `cluster.json` and `disks/` are replaced, other files kept.
pub fn create_sim_cluster(opts: &SimCreateOptions) -> anyhow::Result<SimSummary> {
    let generated = generate(opts)?;
    let dir = &opts.dir;
    let state_path = dir.join(STATE_FILE);
    if state_path.exists() {
        let existing = load_state(dir).map(|s| s.cluster);
        if !opts.force {
            match existing {
                Ok(name) if name.eq_ignore_ascii_case(&opts.cluster) => bail!(
                    "{} already holds simulated cluster {name}; pass --force to replace it",
                    dir.display()
                ),
                Ok(name) => bail!(
                    "{} holds another simulated cluster, {name}; pass --force to replace it",
                    dir.display()
                ),
                Err(e) => bail!(
                    "{} has a {STATE_FILE} that is not readable ({e}); pass --force to replace it",
                    dir.display()
                ),
            }
        }
    } else if dir.is_dir()
        && fs::read_dir(dir)
            .with_context(|| format!("read {}", dir.display()))?
            .next()
            .is_some()
        && !opts.force
    {
        bail!(
            "{} is not empty and holds no simulated cluster; choose an empty directory or pass --force",
            dir.display()
        );
    }
    let disks_root = dir.join(DISKS_DIR);
    if disks_root.exists() {
        fs::remove_dir_all(&disks_root)
            .with_context(|| format!("remove old {}", disks_root.display()))?;
    }
    fs::create_dir_all(&disks_root).with_context(|| format!("create {}", disks_root.display()))?;
    let counts = generated.materialize(&disks_root)?;
    StateFile::create(dir, &generated.state)
        .with_context(|| format!("write {}", state_path.display()))?;

    let state = &generated.state;
    let counts_doc = ferry_core::model::InventoryDocument {
        groups: state.groups.clone(),
        ..Default::default()
    }
    .counts();
    Ok(SimSummary {
        cluster: state.cluster.clone(),
        os: state.os,
        seed: state.seed,
        dir: dir.clone(),
        state_file: state_path,
        nodes: state.nodes.len(),
        groups: state.groups.len(),
        resources: counts_doc.resources as usize,
        shares: counts_doc.shares as usize,
        permissions: counts_doc.permissions as usize,
        disks: state.disks.len(),
        directories: counts.dirs,
        files: counts.files,
        symlinks: counts.symlinks,
    })
}

// ---- vocabulary ---------------------------------------------------------------------------------

const DEPARTMENTS: &[&str] = &[
    "Finance",
    "HR",
    "Legal",
    "Engineering",
    "Sales",
    "Marketing",
    "Projects",
    "Archive",
    "Users",
    "Public",
    "Scans",
    "Software",
    "Templates",
    "Reports",
    "Budget",
    "Payroll",
    "Contracts",
    "Design",
    "Research",
    "Support",
    "Operations",
    "Facilities",
    "Training",
    "Quality",
    "Procurement",
    "IT",
    "Audit",
    "Board",
    "Compliance",
    "Logistics",
];

const UNICODE_NAMES: &[&str] = &[
    "Финансы",
    "共有",
    "Données",
    "Бухгалтерия",
    "資料",
    "Ærø",
    "Ελληνικά",
    "Büro",
    "Año Fiscal",
    "データ",
    "Müşteri",
    "Ärende",
    "Proyectos",
    "Αρχείο",
    "Документы",
];

const QUALIFIERS: &[&str] = &[
    "", "", "", " Archive", " 2019", " 2020", " 2021", " Team", " Shared", "-EU", "-US", " Old",
    " Private",
];

const SUBFOLDERS: &[&str] = &[
    "2019",
    "2020",
    "2021",
    "Archive",
    "Drafts",
    "Final",
    "Q1",
    "Q2",
    "Q3",
    "Q4",
    "Templates",
    "Old",
    "Incoming",
    "Отчёты",
    "資料",
];

const DESCRIPTIONS: &[&str] = &[
    "{} files",
    "Shared folder for {}",
    "{}: read-only for most staff",
    "Scanned documents ({})",
    "Данные: {}",
    "{} working area",
];

const DOMAIN: &str = "CONTOSO";
const DRIVE_LETTERS: &[char] = &[
    'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', 'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X',
    'Y', 'Z',
];
const GIB: i64 = 1 << 30;

fn processor(os: OsGeneration) -> Processor {
    let (vendor, model) = match os {
        OsGeneration::Ws2003 => ("GenuineIntel", "Intel(R) Xeon(TM) CPU 3.20GHz"),
        OsGeneration::Ws2008 => ("GenuineIntel", "Intel(R) Xeon(R) CPU E5430 @ 2.66GHz"),
        OsGeneration::Ws2008r2 => ("GenuineIntel", "Intel(R) Xeon(R) CPU X5670 @ 2.93GHz"),
        OsGeneration::Ws2012 | OsGeneration::Ws2012r2 => {
            ("GenuineIntel", "Intel(R) Xeon(R) CPU E5-2670 0 @ 2.60GHz")
        }
        OsGeneration::Ws2016 | OsGeneration::Ws2019 => {
            ("GenuineIntel", "Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz")
        }
        OsGeneration::Ws2022 | OsGeneration::Ws2025 => {
            ("AuthenticAMD", "AMD EPYC 7543 32-Core Processor")
        }
    };
    Processor {
        vendor: vendor.into(),
        model: model.into(),
    }
}

fn hba(os: OsGeneration) -> HbaFacts {
    if os <= OsGeneration::Ws2008r2 {
        HbaFacts {
            model: "QLogic QLE2562".into(),
            driver_version: "9.1.9.25".into(),
            firmware_version: "5.06.03".into(),
        }
    } else {
        HbaFacts {
            model: "Emulex LPe16002B".into(),
            driver_version: "11.2.139.0".into(),
            firmware_version: "11.2.156.27".into(),
        }
    }
}

fn network(name: &str, role: NetworkRole, metric: i64, subnet: String) -> SimNetwork {
    SimNetwork {
        name: name.into(),
        role,
        metric,
        auto_metric: true,
        subnet,
        ipsec_enabled: false,
        client_for_microsoft_networks: true,
        file_and_printer_sharing: true,
    }
}

fn networks(os: OsGeneration, octet: u64) -> Vec<SimNetwork> {
    let subnet = |n: u32| format!("10.{octet}.{n}.0/24");
    if os >= OsGeneration::Ws2008r2 {
        vec![
            network("Client", NetworkRole::Client, 10100, subnet(1)),
            network("Management", NetworkRole::Management, 10000, subnet(2)),
            network("Cluster-CSV", NetworkRole::Csv, 1000, subnet(3)),
            network("LiveMigration", NetworkRole::LiveMigration, 1100, subnet(4)),
            network("iSCSI", NetworkRole::Iscsi, 10200, subnet(5)),
        ]
    } else {
        vec![
            network("Public", NetworkRole::Client, 10000, subnet(1)),
            network("Private", NetworkRole::Cluster, 1000, subnet(3)),
            network("iSCSI", NetworkRole::Iscsi, 10100, subnet(5)),
        ]
    }
}

fn quorum(os: OsGeneration, nodes: u32) -> QuorumType {
    if os == OsGeneration::Ws2003 {
        QuorumType::DiskOnly
    } else if os >= OsGeneration::Ws2012r2 {
        QuorumType::Majority
    } else if nodes.is_multiple_of(2) {
        QuorumType::NodeAndDiskMajority
    } else {
        QuorumType::NodeMajority
    }
}

fn props(pairs: &[(&str, serde_json::Value)]) -> Properties {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), v.clone()))
        .collect()
}

fn resource(name: String, kind: ResourceKind, properties: Properties, deps: &[&str]) -> Resource {
    Resource {
        name,
        kind,
        state: ResourceState::Online,
        properties,
        depends_on: deps.iter().map(|d| (*d).to_string()).collect(),
    }
}

/// Address number `n` of the client subnet's /16, as dotted quad.
fn client_address(octet: u64, n: u64) -> String {
    format!("10.{octet}.{}.{}", 1 + n / 250, n % 250 + 1)
}

struct ShareSpec {
    share: Share,
    /// Path components below the drive root.
    folder: Vec<String>,
    nested: bool,
}

fn unique_name(taken: &mut BTreeSet<String>, base: &str) -> String {
    let hidden = base.ends_with('$');
    let stem = base.trim_end_matches('$');
    let mut n = 1;
    loop {
        let candidate = match (n, hidden) {
            (1, false) => stem.to_string(),
            (1, true) => format!("{stem}$"),
            (_, false) => format!("{stem} {n}"),
            (_, true) => format!("{stem} {n}$"),
        };
        if taken.insert(candidate.to_lowercase()) {
            return candidate;
        }
        n += 1;
    }
}

fn permissions(rng: &mut ChaCha8Rng, dept: &str, force_deny: bool) -> Vec<Permission> {
    let allow = |principal: String, access| Permission {
        principal,
        ace_type: AceType::Allow,
        access,
    };
    let mut list = Vec::new();
    if rng.random_bool(0.7) {
        list.push(allow("Everyone".into(), Access::Read));
    }
    if rng.random_bool(0.9) {
        list.push(allow("BUILTIN\\Administrators".into(), Access::Full));
    }
    list.push(allow(format!("{DOMAIN}\\{dept} Users"), Access::Change));
    if rng.random_bool(0.5) {
        list.push(allow(format!("{DOMAIN}\\{dept} Managers"), Access::Full));
    }
    if force_deny || rng.random_bool(0.12) {
        let (principal, access) = if rng.random_bool(0.6) {
            ("Contractors", Access::Change)
        } else {
            ("Interns", Access::Full)
        };
        list.push(Permission {
            principal: format!("{DOMAIN}\\{principal}"),
            ace_type: AceType::Deny,
            access,
        });
    }
    list
}

fn caching(rng: &mut ChaCha8Rng, os: OsGeneration) -> CachingMode {
    let roll: f64 = rng.random();
    match roll {
        r if r < 0.70 => CachingMode::Manual,
        r if r < 0.80 => CachingMode::Documents,
        r if r < 0.85 => CachingMode::Programs,
        r if r < 0.95 => CachingMode::None,
        _ if os >= OsGeneration::Ws2008r2 => CachingMode::BranchCache,
        _ => CachingMode::Manual,
    }
}

/// Shares of one group. The first four are forced so that every group has a deny entry, a
/// hidden share, a Unicode name and a share nested in another share's folder.
fn shares(
    rng: &mut ChaCha8Rng,
    os: OsGeneration,
    letter: &str,
    group_index: usize,
    count: u32,
) -> Vec<ShareSpec> {
    let mut taken = BTreeSet::new();
    let mut specs: Vec<ShareSpec> = Vec::with_capacity(count as usize);
    for i in 0..count as usize {
        let (dept, base) = match i {
            1 => ("Data".to_string(), "Data$".to_string()),
            2 => {
                let name = UNICODE_NAMES[group_index % UNICODE_NAMES.len()];
                (name.to_string(), name.to_string())
            }
            _ => {
                let dept = if rng.random_bool(0.12) {
                    *UNICODE_NAMES.choose(rng).expect("non-empty")
                } else {
                    *DEPARTMENTS.choose(rng).expect("non-empty")
                };
                let qualifier = QUALIFIERS.choose(rng).expect("non-empty");
                let hidden = if rng.random_bool(0.08) { "$" } else { "" };
                (dept.to_string(), format!("{dept}{qualifier}{hidden}"))
            }
        };
        let name = unique_name(&mut taken, &base);
        let folder_name = name.trim_end_matches('$').to_string();
        let top_level: Vec<usize> = specs
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.nested)
            .map(|(k, _)| k)
            .collect();
        let nest = i == 3 || (i > 3 && rng.random_bool(0.2));
        let (folder, nested) = match top_level.choose(rng) {
            Some(&parent) if nest => {
                let parent = if i == 3 { 0 } else { parent };
                let mut folder = specs[parent].folder.clone();
                folder.push(folder_name);
                (folder, true)
            }
            _ => (vec!["Shares".to_string(), folder_name], false),
        };
        let path = format!("{letter}\\{}", folder.join("\\"));
        let description = if rng.random_bool(0.25) {
            String::new()
        } else {
            DESCRIPTIONS
                .choose(rng)
                .expect("non-empty")
                .replace("{}", &dept)
        };
        let share = Share {
            name,
            path,
            description,
            permissions: permissions(rng, &dept, i == 0),
            caching: caching(rng, os),
            access_based_enumeration: rng.random_bool(0.3),
            continuous_availability: os >= OsGeneration::Ws2012 && rng.random_bool(0.2),
            encrypt_data: os >= OsGeneration::Ws2012 && rng.random_bool(0.1),
            user_limit: rng.random_bool(0.2).then(|| rng.random_range(10..=200)),
        };
        specs.push(ShareSpec {
            share,
            folder,
            nested,
        });
    }
    specs
}

/// Folder tree of a group disk: every share's folder, a few levels below each, some files and
/// two symlinks (a directory link to a sibling share, which a skeleton copy must skip, and a file
/// link).
fn tree(rng: &mut ChaCha8Rng, disk: &str, specs: &[ShareSpec]) -> DiskTree {
    let mut tree = DiskTree {
        disk: disk.to_string(),
        ..Default::default()
    };
    tree.dirs.insert(PathBuf::from("Shares"));
    for spec in specs {
        let folder: PathBuf = spec.folder.iter().collect();
        for depth in 1..=spec.folder.len() {
            tree.dirs
                .insert(spec.folder[..depth].iter().collect::<PathBuf>());
        }
        tree.files.insert(
            folder.join("readme.txt"),
            format!("{}\n{}\n", spec.share.name, spec.share.description),
        );
        for _ in 0..rng.random_range(1..=3) {
            let level1 = folder.join(SUBFOLDERS.choose(rng).expect("non-empty"));
            tree.dirs.insert(level1.clone());
            if rng.random_bool(0.3) {
                tree.files
                    .insert(level1.join("notes.txt"), "quarterly notes\n".into());
            }
            for _ in 0..rng.random_range(0..=2) {
                tree.dirs
                    .insert(level1.join(SUBFOLDERS.choose(rng).expect("non-empty")));
            }
        }
    }
    let top: Vec<&ShareSpec> = specs.iter().filter(|s| !s.nested).collect();
    if let [first, second, ..] = top.as_slice() {
        let first: PathBuf = first.folder.iter().collect();
        tree.symlinks.push((
            first.join("Shortcut to sibling"),
            PathBuf::from("..").join(&second.folder[second.folder.len() - 1]),
        ));
        tree.symlinks
            .push((first.join("latest.txt"), PathBuf::from("readme.txt")));
    }
    tree
}

/// The cluster `opts` describes, without writing anything. Same options, same result.
pub fn generate(opts: &SimCreateOptions) -> anyhow::Result<GeneratedCluster> {
    opts.validate()?;
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    // Folder trees draw from their own stream so that changing them never changes the state.
    let mut tree_rng = ChaCha8Rng::seed_from_u64(opts.seed ^ 0x7472_6565_7472_6565);
    let c = opts.cluster.as_str();
    let os = opts.os;
    let octet = seed_from_name(c) % 200 + 20;

    let nodes: Vec<SimNode> = (1..=opts.nodes)
        .map(|i| SimNode {
            name: format!("{c}-n{i}"),
            address: client_address(octet, 9 + u64::from(i)),
            processor: processor(os),
            virtual_switches: if os >= OsGeneration::Ws2008r2 {
                vec!["External-Client".into(), "Internal-Cluster".into()]
            } else {
                Vec::new()
            },
            ntlm_enabled: true,
            hbas: vec![hba(os)],
            processor_compatibility: false,
        })
        .collect();
    let client_network = if os >= OsGeneration::Ws2008r2 {
        "Client"
    } else {
        "Public"
    };

    // Signatures identify LUNs across clusters, so they depend on the cluster name as well: two
    // clusters generated from one seed must not appear to share storage. The seed is rotated
    // first because the default seed is itself derived from the name and would cancel it out.
    let mut signature_rng =
        ChaCha8Rng::seed_from_u64(opts.seed.rotate_left(29) ^ seed_from_name(c));
    let mut signatures = BTreeSet::new();
    let mut signature = || loop {
        let s = format!("{:08X}", signature_rng.random::<u32>());
        if signatures.insert(s.clone()) {
            return s;
        }
    };

    let width = (opts.groups.max(1).ilog10() as usize + 1).max(2);
    let mut disks = Vec::new();
    let mut groups = Vec::new();
    let mut trees = Vec::new();
    let mut workloads = Vec::new();
    let mut volumes = Vec::new();
    for g in 0..opts.groups as usize {
        let name = format!("FS{:0width$}", g + 1);
        // A real cluster runs out of letters after Z and uses mount points; the simulation lets
        // letters repeat past the 21st group, since it resolves share paths within the group.
        let letter = format!("{}:", DRIVE_LETTERS[g % DRIVE_LETTERS.len()]);
        let disk_name = format!("Cluster Disk {}", g + 1);
        let sig = signature();
        let size = rng.random_range(100..=2000) * GIB;
        let free = size * rng.random_range(20..=60) / 100;
        disks.push(SimDisk {
            name: disk_name.clone(),
            signature: sig.clone(),
            drive_letter: Some(letter.clone()),
            size_bytes: size,
            free_bytes: free,
            csv: false,
            backing: None,
        });
        let owner = nodes[g % nodes.len()].name.clone();
        let ip = format!("{name} IP Address");
        let netname = format!("{name} Network Name");
        let file_server = format!("{name} File Server");
        let mut resources = vec![
            resource(
                ip.clone(),
                ResourceKind::IpAddress,
                props(&[
                    ("address", json!(client_address(octet, 100 + g as u64))),
                    ("subnet_mask", json!("255.255.255.0")),
                    ("network", json!(client_network)),
                ]),
                &[],
            ),
            resource(
                netname.clone(),
                ResourceKind::NetworkName,
                props(&[
                    ("dns_name", json!(name)),
                    ("require_kerberos", json!(opts.kerberos)),
                ]),
                &[&ip],
            ),
            resource(
                disk_name.clone(),
                ResourceKind::PhysicalDisk,
                props(&[
                    ("disk", json!(disk_name)),
                    ("signature", json!(sig)),
                    ("drive_letter", json!(letter)),
                    ("cluster", json!(c)),
                ]),
                &[],
            ),
            resource(
                file_server.clone(),
                ResourceKind::FileServer,
                props(&[("network_name", json!(name))]),
                &[&netname, &disk_name],
            ),
        ];
        let specs = shares(&mut rng, os, &letter, g, opts.shares);
        for spec in &specs {
            resources.push(resource(
                format!("{name} Share {}", spec.share.name),
                ResourceKind::FileShare,
                props(&[
                    ("share_name", json!(spec.share.name)),
                    ("path", json!(spec.share.path)),
                ]),
                &[&file_server],
            ));
        }
        trees.push(tree(&mut tree_rng, &disk_name, &specs));
        if os < OsGeneration::Ws2008r2 {
            volumes.push(PerfVolume {
                name: disk_name.clone(),
                csv: false,
                coordinator: owner.clone(),
                redirected: false,
                base_latency_ms: 4.0,
            });
            workloads.push(Workload {
                name: format!("{name} clients"),
                node: owner.clone(),
                volume: disk_name.clone(),
                iops: f64::from(rng.random_range(50..=600)),
                read_fraction: 0.8,
                io_bytes: 16384.0,
                start_secs: f64::from(rng.random_range(0..=60)),
                ramp_secs: 15.0,
                stop_secs: Some(570.0),
            });
        }
        groups.push(Group {
            name,
            owner_node: Some(owner),
            state: ResourceState::Online,
            resources,
            shares: specs.into_iter().map(|s| s.share).collect(),
        });
    }
    let mut next_disk = opts.groups as usize + 1;
    for _ in 0..opts.spare_disks {
        // Small, like the 50 MB iSCSI disk of the field note: it only holds folders.
        disks.push(SimDisk {
            name: format!("Cluster Disk {next_disk}"),
            signature: signature(),
            drive_letter: None,
            size_bytes: GIB,
            free_bytes: GIB - (16 << 20),
            csv: false,
            backing: None,
        });
        next_disk += 1;
    }
    if os >= OsGeneration::Ws2008r2 {
        let size = 2048 * GIB;
        let csv_path = "C:\\ClusterStorage\\Volume1".to_string();
        disks.push(SimDisk {
            name: format!("Cluster Disk {next_disk}"),
            signature: signature(),
            drive_letter: None,
            size_bytes: size,
            free_bytes: size * 2 / 5,
            csv: true,
            backing: None,
        });
        volumes.push(PerfVolume {
            name: csv_path.clone(),
            csv: true,
            coordinator: nodes[0].name.clone(),
            redirected: false,
            base_latency_ms: 2.0,
        });
        // The second field note: VM1 near 867 IOPS on node 1, VM2 near 715 on node 2.
        for (i, node) in nodes.iter().enumerate() {
            let iops = match i {
                0 => 867.0,
                1 => 715.0,
                _ => f64::from(rng.random_range(300..=900)),
            };
            workloads.push(Workload {
                name: format!("VM{}", i + 1),
                node: node.name.clone(),
                volume: csv_path.clone(),
                iops,
                read_fraction: 0.6,
                io_bytes: 8192.0,
                start_secs: 10.0 + 30.0 * i as f64,
                ramp_secs: 10.0,
                stop_secs: Some(570.0),
            });
        }
    }

    let mut latency = LatencyConfig {
        default_ms: opts.latency_ms,
        per_op: BTreeMap::new(),
    };
    if opts.latency_ms > 0 {
        latency
            .per_op
            .insert(SimOp::MigrateGroup, opts.latency_ms * 10);
        latency
            .per_op
            .insert(SimOp::OnlineGroup, opts.latency_ms * 4);
        latency
            .per_op
            .insert(SimOp::OfflineGroup, opts.latency_ms * 2);
    }

    let state = SimState {
        format: STATE_FORMAT,
        cluster: c.to_string(),
        os,
        seed: opts.seed,
        kerberos: opts.kerberos,
        letters_repeat: opts.letters_repeat || opts.groups as usize > DRIVE_LETTERS.len(),
        quorum: quorum(os, opts.nodes),
        networks: networks(os, octet),
        nodes,
        disks,
        groups,
        perf: PerfModel {
            storage_server: format!("{c}-stor"),
            cycle_secs: opts.perf_cycle_secs,
            noise: 0.01,
            // The second field note: the storage server counted 1505 of the nodes' 1582.
            storage_share: 1505.0 / 1582.0,
            volumes,
            workloads,
        },
        latency,
        faults: BTreeMap::new(),
        kerberos_pending: BTreeSet::new(),
        never_online: BTreeSet::new(),
        live_migration_qos: false,
    };
    Ok(GeneratedCluster { state, trees })
}
