//! The simulated cluster: generator, state sharing between agents, and the behaviour the runbook
//! depends on (KB 983840, the Kerberos first online, faults, latency, the CSV perf puzzle).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ferry::agent::driver::sim::{SimDriver, SimDriverOptions};
use ferry::agent::driver::{ClusterDriver, DriverError, ErrorKind, PerfSnapshot, PerfSource};
use ferry::model::{AceType, OsGeneration, ResourceKind, ResourceState};
use ferry::sim::{
    FaultSpec, LatencyConfig, SimCreateOptions, SimOp, SimWorld, create_sim_cluster, disk_dir,
    generate, inject_fault, load_state, present_disk, set_csv_redirected, set_latency,
};
use tempfile::TempDir;

fn opts(
    root: &Path,
    cluster: &str,
    os: OsGeneration,
    groups: u32,
    shares: u32,
) -> SimCreateOptions {
    let mut o = SimCreateOptions::new(root.join(cluster), cluster, os);
    o.groups = groups;
    o.shares = shares;
    o.seed = 7;
    o.latency_ms = 0;
    o
}

fn create(root: &Path, cluster: &str, os: OsGeneration, groups: u32, shares: u32) -> PathBuf {
    let o = opts(root, cluster, os, groups, shares);
    create_sim_cluster(&o).expect("create simulated cluster");
    o.dir
}

fn fast() -> SimDriverOptions {
    SimDriverOptions {
        latency: Some(Duration::ZERO),
        op_timeout: None,
    }
}

fn driver(dir: &Path) -> SimDriver {
    SimDriver::open_with(dir, fast()).expect("open driver")
}

/// Copies the folders of every share of `group` from the source's disk to `target_disk`, the
/// way the skeleton copy of the runbook would (directories only).
fn copy_share_folders(source_dir: &Path, target_disk_dir: &Path, group: &str) {
    let state = load_state(source_dir).unwrap();
    let g = state.group(group).unwrap();
    for share in &g.shares {
        let rest = share.path.split_once(":\\").unwrap().1;
        let folder: PathBuf = rest.split('\\').collect();
        std::fs::create_dir_all(target_disk_dir.join(folder)).unwrap();
    }
}

// ---- generator ----------------------------------------------------------------------------------

#[test]
fn generation_is_deterministic_for_a_seed() {
    let tmp = TempDir::new().unwrap();
    let a = generate(&opts(tmp.path(), "OLD", OsGeneration::Ws2003, 3, 50)).unwrap();
    let b = generate(&opts(tmp.path(), "OLD", OsGeneration::Ws2003, 3, 50)).unwrap();
    assert_eq!(a, b);
    let mut other = opts(tmp.path(), "OLD", OsGeneration::Ws2003, 3, 50);
    other.seed = 8;
    let c = generate(&other).unwrap();
    assert_ne!(a.state.groups, c.state.groups);

    // The written state is the generated one.
    let dir = create(tmp.path(), "OLD", OsGeneration::Ws2003, 3, 50);
    assert_eq!(load_state(&dir).unwrap(), a.state);
}

#[test]
fn generated_cluster_has_the_promised_shape() {
    let tmp = TempDir::new().unwrap();
    let o = opts(tmp.path(), "FS-OLD", OsGeneration::Ws2003, 3, 300);
    let started = Instant::now();
    let summary = create_sim_cluster(&o).unwrap();
    let elapsed = started.elapsed();
    // The demo generates this size on start; a debug build on two cores must still be quick.
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    assert_eq!(summary.groups, 3);
    assert_eq!(summary.shares, 900);
    assert_eq!(summary.nodes, 2);
    assert!(summary.directories > 900, "{summary:?}");
    assert!(summary.files >= 900);
    #[cfg(unix)]
    assert_eq!(summary.symlinks, 6);

    let state = load_state(&o.dir).unwrap();
    assert_eq!(
        state
            .nodes
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>(),
        ["FS-OLD-n1", "FS-OLD-n2"]
    );
    let doc = driver_inventory(&o.dir);
    assert!(doc.validate().is_empty(), "{:?}", doc.validate());
    let letters: Vec<_> = state
        .groups
        .iter()
        .map(|g| {
            let disk = g
                .resources
                .iter()
                .find(|r| r.kind == ResourceKind::PhysicalDisk)
                .unwrap();
            disk.properties["drive_letter"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(letters, ["F:", "G:", "H:"]);

    for g in &state.groups {
        let kinds = |k| g.resources.iter().filter(|r| r.kind == k).count();
        assert_eq!(kinds(ResourceKind::NetworkName), 1);
        assert_eq!(kinds(ResourceKind::IpAddress), 1);
        assert_eq!(kinds(ResourceKind::PhysicalDisk), 1);
        assert_eq!(kinds(ResourceKind::FileServer), 1);
        assert_eq!(kinds(ResourceKind::FileShare), 300);
        let fs = g
            .resources
            .iter()
            .find(|r| r.kind == ResourceKind::FileServer)
            .unwrap();
        assert_eq!(
            fs.depends_on.len(),
            2,
            "file server depends on name and disk"
        );
        assert_eq!(g.shares.len(), 300);
        assert!(g.shares.iter().any(|s| s.name == "Data$"), "hidden share");
        assert!(
            g.shares.iter().any(|s| !s.name.is_ascii()),
            "Unicode share name"
        );
        let nested = g.shares.iter().any(|s| {
            g.shares
                .iter()
                .any(|p| p.name != s.name && s.path.starts_with(&format!("{}\\", p.path)))
        });
        assert!(nested, "a share inside another share's folder");
        let perms: Vec<_> = g.shares.iter().flat_map(|s| &s.permissions).collect();
        assert!(perms.iter().any(|p| p.ace_type == AceType::Deny));
        assert!(perms.iter().any(|p| p.principal == "Everyone"));
        assert!(
            perms
                .iter()
                .any(|p| p.principal == "BUILTIN\\Administrators")
        );
        assert!(perms.iter().any(|p| p.principal.starts_with("CONTOSO\\")));
        assert!(g.shares.iter().any(|s| !s.description.is_empty()));
    }
    let names: Vec<&str> = state
        .groups
        .iter()
        .flat_map(|g| g.shares.iter().map(|s| s.name.as_str()))
        .collect();
    assert!(names.contains(&"Финансы") || names.contains(&"共有"));

    // Every share's folder exists on its disk.
    for g in &state.groups {
        let disk_res = g
            .resources
            .iter()
            .find(|r| r.kind == ResourceKind::PhysicalDisk)
            .unwrap();
        let disk = state.disk(&disk_res.name).unwrap();
        let root = disk_dir(&o.dir, disk);
        for share in &g.shares {
            let rest = share.path.split_once(":\\").unwrap().1;
            let folder: PathBuf = rest.split('\\').collect();
            assert!(root.join(&folder).is_dir(), "{} missing", share.path);
        }
    }
}

fn driver_inventory(dir: &Path) -> ferry::model::InventoryDocument {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(driver(dir).inventory()).unwrap()
}

#[test]
fn create_refuses_an_existing_cluster_unless_forced() {
    let tmp = TempDir::new().unwrap();
    let mut o = opts(tmp.path(), "C1", OsGeneration::Ws2008, 1, 5);
    create_sim_cluster(&o).unwrap();
    let err = create_sim_cluster(&o).unwrap_err().to_string();
    assert!(err.contains("already holds simulated cluster C1"), "{err}");
    assert!(err.contains("--force"), "{err}");
    o.force = true;
    o.groups = 2;
    let summary = create_sim_cluster(&o).unwrap();
    assert_eq!(summary.groups, 2);
    assert_eq!(load_state(&o.dir).unwrap().groups.len(), 2);
}

// ---- sharing and locking ------------------------------------------------------------------------

#[tokio::test]
async fn two_drivers_over_one_directory_see_each_others_changes() {
    let tmp = TempDir::new().unwrap();
    let dir = create(tmp.path(), "C", OsGeneration::Ws2008r2, 2, 5);
    let a = driver(&dir);
    let b = driver(&dir);
    assert_eq!(b.group("FS01").await.unwrap().state, ResourceState::Online);
    a.offline_group("FS01").await.unwrap();
    assert_eq!(b.group("FS01").await.unwrap().state, ResourceState::Offline);
    b.online_group("FS01").await.unwrap().into_result().unwrap();
    assert_eq!(a.group("FS01").await.unwrap().state, ResourceState::Online);
    // A change made from outside (as a test or the demo does) reaches both.
    inject_fault(
        &dir,
        SimOp::ListGroups,
        FaultSpec::fail(1, ErrorKind::Failed),
    )
    .unwrap();
    assert_eq!(a.list_groups().await.unwrap_err().kind(), ErrorKind::Failed);
    assert!(b.list_groups().await.is_ok());
}

#[test]
fn concurrent_agents_do_not_lose_updates() {
    let tmp = TempDir::new().unwrap();
    let dir = create(tmp.path(), "C", OsGeneration::Ws2008r2, 8, 2);
    // Threads with their own runtime and driver, as separate agent processes would be.
    let threads: Vec<_> = (1..=8)
        .map(|i| {
            let dir = dir.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let d = driver(&dir);
                    let group = format!("FS{i:02}");
                    for _ in 0..5 {
                        d.offline_group(&group).await.unwrap();
                        d.online_group(&group).await.unwrap();
                    }
                    d.offline_group(&group).await.unwrap();
                })
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let state = load_state(&dir).unwrap();
    for g in &state.groups {
        assert_eq!(g.state, ResourceState::Offline, "{}", g.name);
        assert!(
            g.resources
                .iter()
                .all(|r| r.state == ResourceState::Offline)
        );
    }
}

#[tokio::test]
async fn concurrent_tasks_on_one_driver_do_not_lose_updates() {
    let tmp = TempDir::new().unwrap();
    let dir = create(tmp.path(), "C", OsGeneration::Ws2008, 1, 2);
    let d = driver(&dir);
    // Each task arms a fault on a different operation: a lost update would drop some of them.
    let ops = SimOp::ALL;
    let mut tasks = Vec::new();
    for op in ops {
        let dir = dir.clone();
        tasks.push(tokio::task::spawn_blocking(move || {
            inject_fault(&dir, op, FaultSpec::fail(1, ErrorKind::Transient)).unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(d.state().await.unwrap().faults.len(), ops.len());
}

// ---- offline / online ---------------------------------------------------------------------------

#[tokio::test]
async fn offline_and_online_report_each_resource_and_are_idempotent() {
    let tmp = TempDir::new().unwrap();
    let dir = create(tmp.path(), "C", OsGeneration::Ws2008r2, 1, 3);
    let d = driver(&dir);
    let off = d.offline_group("fs01").await.unwrap();
    assert_eq!(off.state, ResourceState::Offline);
    assert_eq!(off.resources.len(), 7);
    assert!(off.resources.iter().all(|r| r.changed && r.error.is_none()));
    // Dependents go first.
    let pos = |name: &str| {
        off.resources
            .iter()
            .position(|r| r.resource == name)
            .unwrap()
    };
    assert!(pos("FS01 File Server") < pos("FS01 Network Name"));
    assert!(pos("FS01 Network Name") < pos("FS01 IP Address"));

    let again = d.offline_group("FS01").await.unwrap();
    assert!(!again.changed());

    let on = d.online_group("FS01").await.unwrap().into_result().unwrap();
    assert_eq!(on.state, ResourceState::Online);
    assert!(
        on.resources
            .iter()
            .all(|r| r.state == ResourceState::Online)
    );
    let pos = |name: &str| {
        on.resources
            .iter()
            .position(|r| r.resource == name)
            .unwrap()
    };
    assert!(pos("FS01 IP Address") < pos("FS01 Network Name"));
    assert!(pos("FS01 Network Name") < pos("FS01 File Server"));
    let again = d.online_group("FS01").await.unwrap();
    assert!(!again.changed());
    assert_eq!(again.state, ResourceState::Online);

    let missing = d.online_group("nope").await.unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn a_share_whose_folder_is_missing_fails_to_come_online() {
    let tmp = TempDir::new().unwrap();
    let dir = create(tmp.path(), "C", OsGeneration::Ws2008r2, 1, 4);
    let d = driver(&dir);
    d.offline_group("FS01").await.unwrap();
    let state = d.state().await.unwrap();
    let share = &state.groups[0].shares[2];
    let disk = state.disk("Cluster Disk 1").unwrap();
    let folder: PathBuf = share
        .path
        .split_once(":\\")
        .unwrap()
        .1
        .split('\\')
        .collect();
    std::fs::remove_dir_all(disk_dir(&dir, disk).join(folder)).unwrap();
    let out = d.online_group("FS01").await.unwrap();
    assert_eq!(out.state, ResourceState::PartialOnline);
    let failed: Vec<_> = out.failures().collect();
    assert!(!failed.is_empty());
    assert!(failed.iter().all(|f| f.kind == ResourceKind::FileShare));
    let err = out.into_result().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Failed);
    assert!(err.message().contains("does not exist"), "{err}");
}

// ---- disks and dependencies ---------------------------------------------------------------------

#[tokio::test]
async fn disk_and_dependency_operations_are_idempotent() {
    let tmp = TempDir::new().unwrap();
    let dir = create(tmp.path(), "C", OsGeneration::Ws2008, 2, 2);
    let d = driver(&dir);
    // The spare disk is Cluster Disk 3.
    let letter = d.assign_drive_letter("Cluster Disk 3", "k").await.unwrap();
    assert_eq!(letter.drive_letter.as_deref(), Some("K:"));
    assert_eq!(
        d.assign_drive_letter("Cluster Disk 3", "K:").await.unwrap(),
        letter
    );
    let taken = d
        .assign_drive_letter("Cluster Disk 3", "F:")
        .await
        .unwrap_err();
    assert_eq!(taken.kind(), ErrorKind::Conflict);
    assert_eq!(
        d.assign_drive_letter("Cluster Disk 9", "L:")
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );

    let added = d.add_disk_resource("FS01", "Cluster Disk 3").await.unwrap();
    assert_eq!(added.kind, ResourceKind::PhysicalDisk);
    assert_eq!(added.properties["drive_letter"], "K:");
    assert_eq!(
        d.add_disk_resource("FS01", "Cluster Disk 3").await.unwrap(),
        added
    );
    let elsewhere = d
        .add_disk_resource("FS02", "Cluster Disk 3")
        .await
        .unwrap_err();
    assert_eq!(elsewhere.kind(), ErrorKind::Conflict);

    let fs = "FS01 File Server";
    let deps = vec![
        "FS01 Network Name".to_string(),
        "cluster disk 3".to_string(),
    ];
    let r = d.set_dependencies("FS01", fs, &deps).await.unwrap();
    assert_eq!(r.depends_on, ["FS01 Network Name", "Cluster Disk 3"]);
    assert_eq!(d.set_dependencies("FS01", fs, &deps).await.unwrap(), r);
    let cycle = d
        .set_dependencies("FS01", "FS01 Network Name", &[fs.to_string()])
        .await
        .unwrap_err();
    assert_eq!(cycle.kind(), ErrorKind::Conflict);
    let unknown = d
        .set_dependencies("FS01", fs, &["nope".to_string()])
        .await
        .unwrap_err();
    assert_eq!(unknown.kind(), ErrorKind::NotFound);

    // Cluster Disk 1 is online: removing it is refused until it is offline.
    let online = d
        .remove_resource("FS01", "Cluster Disk 1")
        .await
        .unwrap_err();
    assert_eq!(online.kind(), ErrorKind::Conflict);
    d.offline_group("FS01").await.unwrap();
    assert!(d.remove_resource("FS01", "Cluster Disk 1").await.unwrap());
    assert!(!d.remove_resource("FS01", "Cluster Disk 1").await.unwrap());
    let g = d.group("FS01").await.unwrap();
    assert!(g.resources.iter().all(|r| r.name != "Cluster Disk 1"));
    // The removed disk went back to available storage and may be added again.
    d.add_disk_resource("FS01", "Cluster Disk 1").await.unwrap();
}

// ---- migrations ---------------------------------------------------------------------------------

struct Route {
    _tmp: TempDir,
    old: PathBuf,
    interim: PathBuf,
    new: PathBuf,
}

fn route(shares: u32) -> Route {
    let tmp = TempDir::new().unwrap();
    let old = create(tmp.path(), "OLD", OsGeneration::Ws2003, 2, shares);
    let mut o = opts(tmp.path(), "INTERIM", OsGeneration::Ws2008, 0, 0);
    o.nodes = 1;
    create_sim_cluster(&o).unwrap();
    let new = create(tmp.path(), "NEW", OsGeneration::Ws2008r2, 0, 0);
    Route {
        interim: o.dir,
        old,
        new,
        _tmp: tmp,
    }
}

#[tokio::test]
async fn direct_ws2003_to_ws2008r2_loses_every_file_share() {
    let r = route(20);
    let new = driver(&r.new);
    let report = new.migrate_group("OLD", "FS01").await.unwrap();
    assert!(!report.already_present);
    let lost: Vec<_> = report.lost().collect();
    assert_eq!(lost.len(), 20);
    assert!(lost.iter().all(|l| l.kind == ResourceKind::FileShare));
    assert!(
        lost.iter()
            .all(|l| l.reason.as_deref().unwrap().contains("KB 983840"))
    );
    assert_eq!(report.shares_lost.len(), 20);
    assert!(report.shares_migrated.is_empty());
    assert!(!report.complete());
    let g = new.group("FS01").await.unwrap();
    assert!(g.shares.is_empty());
    assert!(
        g.resources
            .iter()
            .all(|r| r.kind != ResourceKind::FileShare)
    );
    assert_eq!(g.state, ResourceState::Offline);
    assert!(
        g.resources
            .iter()
            .all(|r| r.state == ResourceState::Offline)
    );

    // Migrating again reports what is there, losses included, and changes nothing.
    let again = new.migrate_group("OLD", "FS01").await.unwrap();
    assert!(again.already_present);
    assert_eq!(again.lost().count(), 20);
    assert_eq!(new.list_groups().await.unwrap().len(), 1);
}

#[tokio::test]
async fn two_hop_route_keeps_every_share_and_permission() {
    let r = route(20);
    let old = driver(&r.old);
    let interim = driver(&r.interim);
    let new = driver(&r.new);
    let source = old.group("FS01").await.unwrap();

    // 2-3: the interim's spare disk gets the source's letter and the share folders.
    let spare = "Cluster Disk 1";
    interim.assign_drive_letter(spare, "F:").await.unwrap();
    let spare_dir = disk_dir(
        &r.interim,
        load_state(&r.interim).unwrap().disk(spare).unwrap(),
    );
    copy_share_folders(&r.old, &spare_dir, "FS01");

    // 4: migrate OLD -> INTERIM, every share arrives.
    let first = interim.migrate_group("OLD", "FS01").await.unwrap();
    assert!(first.complete(), "{:?}", first.lost().collect::<Vec<_>>());
    let migrated_disk = first
        .migrated()
        .find(|m| m.kind == ResourceKind::PhysicalDisk)
        .unwrap()
        .target_name
        .clone()
        .unwrap();
    // The interim has its own Cluster Disk 1, so the migrated one was renamed.
    assert_eq!(migrated_disk, "Cluster Disk 1 (1)");

    // The migrated disk still names OLD's storage and cannot come online.
    let blocked = interim.online_group("FS01").await.unwrap();
    let disk_failure = blocked
        .resources
        .iter()
        .find(|o| o.resource == migrated_disk)
        .unwrap();
    assert_eq!(disk_failure.state, ResourceState::Failed);
    assert!(disk_failure.error.as_ref().unwrap().message.contains("OLD"));
    // That first online also spent the network name's Kerberos failure.
    let name = blocked
        .resources
        .iter()
        .find(|o| o.kind == ResourceKind::NetworkName)
        .unwrap();
    assert_eq!(name.error.as_ref().unwrap().kind, ErrorKind::Transient);
    interim.offline_group("FS01").await.unwrap();

    // 5: swap the disk resource.
    interim
        .remove_resource("FS01", &migrated_disk)
        .await
        .unwrap();
    interim.add_disk_resource("FS01", spare).await.unwrap();
    interim
        .set_dependencies(
            "FS01",
            "FS01 File Server",
            &["FS01 Network Name".into(), spare.into()],
        )
        .await
        .unwrap();

    // 6-8: offline on the source, online on the interim, every share comes online on the
    // copied folders.
    old.offline_group("FS01").await.unwrap();
    let online = interim
        .online_group("FS01")
        .await
        .unwrap()
        .into_result()
        .unwrap();
    assert_eq!(online.state, ResourceState::Online);

    // 9-10: migrate INTERIM -> NEW, then offline the interim.
    let second = new.migrate_group("INTERIM", "FS01").await.unwrap();
    assert!(second.complete(), "{:?}", second.lost().collect::<Vec<_>>());
    interim.offline_group("FS01").await.unwrap();

    // 11: the real data disk is presented to NEW and swapped in.
    let data = present_disk(&r.new, &r.old, "Cluster Disk 1").unwrap();
    new.assign_drive_letter(&data, "F:").await.unwrap();
    let migrated = second
        .migrated()
        .find(|m| m.kind == ResourceKind::PhysicalDisk)
        .unwrap()
        .target_name
        .clone()
        .unwrap();
    new.remove_resource("FS01", &migrated).await.unwrap();
    new.add_disk_resource("FS01", &data).await.unwrap();
    new.set_dependencies(
        "FS01",
        "FS01 File Server",
        &["FS01 Network Name".into(), data.clone()],
    )
    .await
    .unwrap();

    // 12: online on NEW (Kerberos again), shares identical to the source, permissions intact.
    let first_online = new.online_group("FS01").await.unwrap();
    assert_eq!(
        first_online.into_result().unwrap_err().kind(),
        ErrorKind::Transient
    );
    new.online_group("FS01")
        .await
        .unwrap()
        .into_result()
        .unwrap();
    let target = new.group("FS01").await.unwrap();
    assert_eq!(target.shares, source.shares);
    assert_eq!(
        target
            .resources
            .iter()
            .filter(|r| r.kind == ResourceKind::FileShare)
            .count(),
        20
    );
}

/// The runbook's own steps: `prepare_disk`, `replace_disk_resource` and `remove_group` do what
/// the hand-made swap above does, and each can run twice.
#[tokio::test]
async fn two_hop_route_with_the_runbook_operations() {
    let r = route(20);
    let old = driver(&r.old);
    let interim = driver(&r.interim);
    let new = driver(&r.new);
    let source = old.group("FS01").await.unwrap();

    // The interim's spare disk takes the source's letter; a retry answers the same disk.
    let prepared = interim.prepare_disk("f").await.unwrap();
    assert_eq!(prepared.drive_letter.as_deref(), Some("F:"));
    assert_eq!(interim.prepare_disk("F:").await.unwrap(), prepared);
    let spare_dir = disk_dir(
        &r.interim,
        load_state(&r.interim)
            .unwrap()
            .disk(&prepared.resource)
            .unwrap(),
    );
    copy_share_folders(&r.old, &spare_dir, "FS01");

    let first = interim.migrate_group("OLD", "FS01").await.unwrap();
    assert!(first.complete());
    let migrated_disk = first
        .migrated()
        .find(|m| m.kind == ResourceKind::PhysicalDisk)
        .and_then(|m| m.target_name.clone())
        .unwrap();
    let swap = interim
        .replace_disk_resource("FS01", &prepared.resource, "F:")
        .await
        .unwrap();
    assert_eq!(swap.resource, prepared.resource);
    assert_eq!(swap.removed, std::slice::from_ref(&migrated_disk));
    assert!(
        swap.repointed.contains(&"FS01 File Server".to_string()),
        "{swap:?}"
    );
    let g = interim.group("FS01").await.unwrap();
    let disks: Vec<&str> = g
        .resources
        .iter()
        .filter(|r| r.kind == ResourceKind::PhysicalDisk)
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(disks, [prepared.resource.as_str()]);
    assert!(
        g.resources
            .iter()
            .all(|r| !r.depends_on.contains(&migrated_disk))
    );
    // Again: nothing left to swap, nothing changes.
    let again = interim
        .replace_disk_resource("FS01", &prepared.resource, "F:")
        .await
        .unwrap();
    assert_eq!(again.resource, prepared.resource);
    assert!(again.removed.is_empty() && again.repointed.is_empty());
    assert_eq!(interim.group("FS01").await.unwrap(), g);
    // A retried migration still finds everything, the swapped disk included.
    let retried = interim.migrate_group("OLD", "FS01").await.unwrap();
    assert!(retried.already_present);
    assert!(
        retried.complete(),
        "{:?}",
        retried.lost().collect::<Vec<_>>()
    );

    old.offline_group("FS01").await.unwrap();
    let first_online = interim.online_group("FS01").await.unwrap();
    assert_eq!(
        first_online.into_result().unwrap_err().kind(),
        ErrorKind::Transient
    );
    interim
        .online_group("FS01")
        .await
        .unwrap()
        .into_result()
        .unwrap();
    // Prepared disk now belongs to the group: its letter is no longer free.
    let taken = interim.prepare_disk("F:").await.unwrap_err();
    assert_eq!(taken.kind(), ErrorKind::Conflict);
    assert!(taken.message().contains("FS01"), "{taken}");

    let second = new.migrate_group("INTERIM", "FS01").await.unwrap();
    assert!(second.complete());
    // An online group is not deleted.
    let busy = interim.remove_group("FS01").await.unwrap_err();
    assert_eq!(busy.kind(), ErrorKind::Conflict);
    assert!(busy.message().contains("offline first"), "{busy}");
    interim.offline_group("FS01").await.unwrap();

    let data = present_disk(&r.new, &r.old, "Cluster Disk 1").unwrap();
    let swap = new
        .replace_disk_resource("FS01", &data, "F:")
        .await
        .unwrap();
    assert_eq!(swap.resource, data);
    assert_eq!(swap.removed.len(), 1);
    let first_online = new.online_group("FS01").await.unwrap();
    assert_eq!(
        first_online.into_result().unwrap_err().kind(),
        ErrorKind::Transient
    );
    new.online_group("FS01")
        .await
        .unwrap()
        .into_result()
        .unwrap();
    assert_eq!(new.group("FS01").await.unwrap().shares, source.shares);

    // Cleanup of the interim releases its disk; a second cleanup finds nothing to do.
    assert!(interim.remove_group("FS01").await.unwrap());
    assert!(!interim.remove_group("FS01").await.unwrap());
    assert!(interim.list_groups().await.unwrap().is_empty());
    assert_eq!(interim.prepare_disk("F:").await.unwrap(), prepared);
}

#[tokio::test]
async fn prepare_disk_refuses_a_taken_letter_and_a_cluster_without_free_disks() {
    let tmp = TempDir::new().unwrap();
    let mut o = opts(tmp.path(), "FULL", OsGeneration::Ws2008, 1, 2);
    o.spare_disks = 0;
    create_sim_cluster(&o).unwrap();
    let d = driver(&o.dir);
    let state = load_state(&o.dir).unwrap();
    let letter = state.disks[0].drive_letter.clone().unwrap();
    let err = d.prepare_disk(&letter).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(err.message().contains("FS01"), "{err}");
    let err = d.prepare_disk("Y:").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(
        err.message().contains("no disk in available storage"),
        "{err}"
    );
    // A disk of another group cannot be swapped in.
    let err = d
        .replace_disk_resource("NOPE", &state.disks[0].name, "Y:")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    // An online group's disk resource is not swapped out.
    let tmp2 = TempDir::new().unwrap();
    let mut o2 = opts(tmp2.path(), "TWO", OsGeneration::Ws2008, 2, 2);
    o2.spare_disks = 1;
    create_sim_cluster(&o2).unwrap();
    let two = driver(&o2.dir);
    let spare = load_state(&o2.dir)
        .unwrap()
        .disks
        .last()
        .unwrap()
        .name
        .clone();
    let err = two
        .replace_disk_resource("FS01", &spare, "Y:")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(err.message().contains("offline first"), "{err}");
    // A letter another group's disk holds is refused before anything changes.
    two.offline_group("FS01").await.unwrap();
    let held = load_state(&o2.dir).unwrap().disks[1]
        .drive_letter
        .clone()
        .unwrap();
    let err = two
        .replace_disk_resource("FS01", &spare, &held)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(err.message().contains("FS02"), "{err}");
    // ...and the refusals changed nothing, not even the spare's letter.
    assert_eq!(
        load_state(&o2.dir)
            .unwrap()
            .disks
            .last()
            .unwrap()
            .drive_letter,
        None
    );
}

#[tokio::test]
async fn the_interim_must_have_onlined_the_shares_before_they_move_on() {
    let r = route(5);
    let interim = driver(&r.interim);
    let new = driver(&r.new);
    interim.migrate_group("OLD", "FS01").await.unwrap();
    let report = new.migrate_group("INTERIM", "FS01").await.unwrap();
    assert_eq!(report.lost().count(), 5);
    assert!(
        report
            .lost()
            .all(|l| l.reason.as_deref().unwrap().contains("never online"))
    );
}

#[tokio::test]
async fn the_2012_wizard_refuses_a_ws2003_source() {
    let tmp = TempDir::new().unwrap();
    create(tmp.path(), "OLD", OsGeneration::Ws2003, 1, 2);
    let new = create(tmp.path(), "NEW", OsGeneration::Ws2012, 0, 0);
    let err = driver(&new).migrate_group("OLD", "FS01").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(err.message().contains("2008"), "{err}");
    assert!(err.message().contains("ws2003"), "{err}");
    assert!(driver(&new).list_groups().await.unwrap().is_empty());

    let missing = driver(&new)
        .migrate_group("NOPE", "FS01")
        .await
        .unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn kerberos_first_online_fails_then_succeeds() {
    let r = route(2);
    let interim = driver(&r.interim);
    let report = interim.migrate_group("OLD", "FS02").await.unwrap();
    assert!(report.complete());
    // Remove the disk so the rest can come online: only the Kerberos failure matters here.
    let disk = report
        .migrated()
        .find(|m| m.kind == ResourceKind::PhysicalDisk)
        .unwrap()
        .target_name
        .clone()
        .unwrap();
    interim.remove_resource("FS02", &disk).await.unwrap();
    for share in report
        .migrated()
        .filter(|m| m.kind == ResourceKind::FileShare)
    {
        interim
            .remove_resource("FS02", share.target_name.as_ref().unwrap())
            .await
            .unwrap();
    }
    interim
        .set_dependencies("FS02", "FS02 File Server", &["FS02 Network Name".into()])
        .await
        .unwrap();

    let first = interim.online_group("FS02").await.unwrap();
    let name = first
        .resources
        .iter()
        .find(|o| o.kind == ResourceKind::NetworkName)
        .unwrap();
    assert_eq!(name.state, ResourceState::Failed);
    assert_eq!(name.error.as_ref().unwrap().kind, ErrorKind::Transient);
    assert!(name.error.as_ref().unwrap().message.contains("Kerberos"));
    let server = first
        .resources
        .iter()
        .find(|o| o.kind == ResourceKind::FileServer)
        .unwrap();
    assert_eq!(server.error.as_ref().unwrap().kind, ErrorKind::Transient);
    let err = first.into_result().unwrap_err();
    assert!(err.is_retryable());

    let second = interim
        .online_group("FS02")
        .await
        .unwrap()
        .into_result()
        .unwrap();
    assert_eq!(second.state, ResourceState::Online);
}

// ---- faults and latency -------------------------------------------------------------------------

#[tokio::test]
async fn injected_failures_hit_the_next_k_calls_then_stop() {
    let tmp = TempDir::new().unwrap();
    let dir = create(tmp.path(), "C", OsGeneration::Ws2008r2, 1, 2);
    let d = driver(&dir);
    inject_fault(
        &dir,
        SimOp::OnlineGroup,
        FaultSpec::Fail {
            times: 2,
            kind: ErrorKind::Transient,
            message: Some("cluster service restarting".into()),
        },
    )
    .unwrap();
    d.offline_group("FS01").await.unwrap();
    for _ in 0..2 {
        let err = d.online_group("FS01").await.unwrap_err();
        assert_eq!(
            err,
            DriverError::Transient("cluster service restarting".into())
        );
    }
    // The failed calls did nothing; the third one works.
    assert_eq!(d.group("FS01").await.unwrap().state, ResourceState::Offline);
    d.online_group("FS01").await.unwrap().into_result().unwrap();
    assert!(d.state().await.unwrap().faults.is_empty());
}

#[tokio::test]
async fn a_hung_operation_times_out() {
    let tmp = TempDir::new().unwrap();
    let dir = create(tmp.path(), "C", OsGeneration::Ws2008r2, 1, 2);
    inject_fault(&dir, SimOp::OfflineGroup, FaultSpec::hang()).unwrap();
    let d = SimDriver::open_with(
        &dir,
        SimDriverOptions {
            latency: Some(Duration::ZERO),
            op_timeout: Some(Duration::from_millis(150)),
        },
    )
    .unwrap();
    let started = Instant::now();
    let err = d.offline_group("FS01").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(started.elapsed() >= Duration::from_millis(150));
    // Other operations still answer, and the group was not touched.
    assert_eq!(d.group("FS01").await.unwrap().state, ResourceState::Online);

    // Without a driver timeout the caller's own timeout cancels the call.
    let patient = driver(&dir);
    let cancelled =
        tokio::time::timeout(Duration::from_millis(100), patient.offline_group("FS01")).await;
    assert!(cancelled.is_err());
    ferry::sim::clear_faults(&dir).unwrap();
    patient.offline_group("FS01").await.unwrap();
}

#[tokio::test]
async fn latency_is_applied_per_operation() {
    let tmp = TempDir::new().unwrap();
    let dir = create(tmp.path(), "C", OsGeneration::Ws2008r2, 1, 2);
    let mut latency = LatencyConfig::zero();
    latency.per_op.insert(SimOp::OnlineGroup, 120);
    set_latency(&dir, latency).unwrap();
    let d = SimDriver::open(&dir).unwrap();
    let started = Instant::now();
    d.list_groups().await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(100));
    let started = Instant::now();
    d.online_group("FS01").await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(120));
    // A driver override wins over the file.
    let quick = driver(&dir);
    let started = Instant::now();
    quick.online_group("FS01").await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(100));
}

// ---- perf model ---------------------------------------------------------------------------------

fn steady_time() -> DateTime<Utc> {
    // 300 s into the 600 s cycle (1 800 000 000 is a multiple of 600): both VMs at full load.
    DateTime::from_timestamp(1_800_000_000 + 300, 0).unwrap()
}

fn transfers(s: &PerfSnapshot, node: &str) -> f64 {
    s.counters
        .iter()
        .filter(|c| c.node == node)
        .map(|c| c.transfers_per_sec)
        .sum()
}

#[tokio::test]
async fn perf_model_reproduces_the_csv_experiment() {
    let tmp = TempDir::new().unwrap();
    let dir = create(tmp.path(), "HV", OsGeneration::Ws2008r2, 0, 0);
    let d = driver(&dir);
    for offset in 0..20 {
        let at = steady_time() + chrono::Duration::seconds(offset);
        let s = d.perf_counters(at).await.unwrap().unwrap();
        let n1 = transfers(&s, "HV-n1");
        let n2 = transfers(&s, "HV-n2");
        let storage = s
            .counters
            .iter()
            .find(|c| c.source == PerfSource::StorageServer)
            .unwrap()
            .transfers_per_sec;
        assert!((n1 - 867.0).abs() / 867.0 < 0.02, "VM1 {n1}");
        assert!((n2 - 715.0).abs() / 715.0 < 0.02, "VM2 {n2}");
        // The note's storage server counted 1505 of the nodes' 1582: about 5 % less.
        assert!(
            (storage - 1505.0).abs() / 1505.0 < 0.02,
            "storage {storage}"
        );
        let gap = ((n1 + n2) - storage) / storage;
        assert!((0.02..0.08).contains(&gap), "gap {gap}");
        assert!(s.counters.iter().all(|c| c.redirected_reads_per_sec == 0.0));
    }

    set_csv_redirected(&dir, None, true).unwrap();
    for offset in 0..20 {
        let at = steady_time() + chrono::Duration::seconds(offset);
        let s = d.perf_counters(at).await.unwrap().unwrap();
        let n1 = transfers(&s, "HV-n1");
        let n2 = transfers(&s, "HV-n2");
        let storage = transfers(&s, "HV-stor");
        assert!(n2 < 1.0, "node 2 reads near zero: {n2}");
        assert!(
            (storage - 1505.0).abs() / 1505.0 < 0.02,
            "storage {storage}"
        );
        assert!((n1 - 1582.0).abs() / 1582.0 < 0.02);
        let redirected: f64 = s
            .counters
            .iter()
            .map(|c| c.redirected_reads_per_sec + c.redirected_writes_per_sec)
            .sum();
        assert!(redirected > 600.0, "redirected {redirected}");
    }
}

#[tokio::test]
async fn perf_values_repeat_for_a_seed() {
    let tmp = TempDir::new().unwrap();
    let a = create(tmp.path(), "A", OsGeneration::Ws2012r2, 0, 0);
    let mut o = opts(tmp.path(), "B", OsGeneration::Ws2012r2, 0, 0);
    o.seed = 99;
    create_sim_cluster(&o).unwrap();
    let at = steady_time();
    let first = driver(&a).perf_counters(at).await.unwrap().unwrap();
    let again = driver(&a).perf_counters(at).await.unwrap().unwrap();
    assert_eq!(first, again);
    let other = driver(&o.dir).perf_counters(at).await.unwrap().unwrap();
    assert_ne!(transfers(&first, "A-n1"), transfers(&other, "B-n1"));
}

// ---- facts and in-memory use --------------------------------------------------------------------

#[tokio::test]
async fn config_facts_describe_the_cluster() {
    let tmp = TempDir::new().unwrap();
    let dir = create(tmp.path(), "HV", OsGeneration::Ws2008r2, 1, 1);
    let facts = driver(&dir).config_facts().await.unwrap();
    assert_eq!(facts.nodes.len(), 2);
    let csv = facts.csv_network().unwrap();
    assert_eq!(csv.client_for_microsoft_networks, Some(true));
    assert_eq!(csv.file_and_printer_sharing, Some(true));
    assert!(facts.networks.iter().all(|n| n.metric >= csv.metric));
    assert_eq!(
        facts.live_migration_network().unwrap().ipsec_enabled,
        Some(false)
    );
    assert_eq!(facts.csv_volumes.len(), 1);
    assert!(facts.csv_volumes[0].free_bytes > 0);
    assert_eq!(facts.quorum.unwrap().node_count, 2);
    assert!(facts.nodes.iter().all(|n| n.ntlm_enabled == Some(true)));
    assert_eq!(facts.nodes[0].processor, facts.nodes[1].processor);
    assert_eq!(
        facts.nodes[0].virtual_switches,
        facts.nodes[1].virtual_switches
    );
}

#[tokio::test]
async fn in_memory_world_runs_a_thousand_groups_quickly() {
    let world = SimWorld::new();
    let mut o = SimCreateOptions::new("unused", "BIG", OsGeneration::Ws2008r2);
    o.groups = 1000;
    o.shares = 3;
    world.insert(generate(&o).unwrap().state);
    let mut target = SimCreateOptions::new("unused", "NEXT", OsGeneration::Ws2012r2);
    target.groups = 0;
    world.insert(generate(&target).unwrap().state);
    let big = Arc::new(SimDriver::in_memory(world.clone(), "BIG", fast()).unwrap());
    let next = SimDriver::in_memory(world.clone(), "NEXT", fast()).unwrap();

    let started = Instant::now();
    let groups = big.list_groups().await.unwrap();
    assert_eq!(groups.len(), 1000);
    for g in &groups {
        big.offline_group(&g.name).await.unwrap();
        big.online_group(&g.name)
            .await
            .unwrap()
            .into_result()
            .unwrap();
        let report = next.migrate_group("BIG", &g.name).await.unwrap();
        assert!(report.complete());
    }
    assert_eq!(next.list_groups().await.unwrap().len(), 1000);
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");

    assert!(world.inject_fault(
        "NEXT",
        SimOp::ListGroups,
        FaultSpec::fail(1, ErrorKind::Failed)
    ));
    assert!(next.list_groups().await.is_err());
    assert!(next.list_groups().await.is_ok());
}
