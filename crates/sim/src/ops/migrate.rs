//! Copying a group from another cluster, as the Cluster Migration Wizard does, with the wizards'
//! limits on which generations may meet.

use std::collections::{BTreeSet, HashMap};

use ferry_core::model::{Group, OsGeneration, Resource, ResourceKind, ResourceState};
use ferry_protocol::report::driver::{
    DriverError, MigrationReport, MigrationStatus, ResourceMigration,
};

use super::share_name;
use crate::state::{SimState, prop_bool, same_name};

/// What a migration needs of its source, copied out so the source's lock is not held while the
/// target's is taken (two migrations in opposite directions would otherwise deadlock).
#[derive(Debug, Clone)]
pub struct SourceGroup {
    cluster: String,
    os: OsGeneration,
    group: Option<Group>,
    never_online: BTreeSet<String>,
}

impl SourceGroup {
    /// The group `group` of the cluster in `state` and which of its resources never came online
    /// there. A group the source lacks is not an error yet: a retried migration finds it on the
    /// target.
    pub fn extract(state: &SimState, group: &str) -> SourceGroup {
        let found = state.group(group).cloned();
        let never_online = found
            .iter()
            .flat_map(|g| g.resources.iter())
            .filter(|r| state.never_online.contains(&r.name))
            .map(|r| r.name.clone())
            .collect();
        SourceGroup {
            cluster: state.cluster.clone(),
            os: state.os,
            group: found,
            never_online,
        }
    }
}

/// Whether the Cluster Migration Wizard of `target` accepts a `source` cluster, with the reason
/// when it does not.
pub fn check_migration_path(source: OsGeneration, target: OsGeneration) -> Result<(), DriverError> {
    use OsGeneration::*;
    if target == Ws2003 {
        return Err(DriverError::Unsupported(
            "Windows Server 2003 has no Cluster Migration Wizard: a ws2003 cluster cannot be a \
             migration target"
                .into(),
        ));
    }
    if target < source {
        return Err(DriverError::Unsupported(format!(
            "cannot migrate from {source} to the older {target}: the Migration Wizard only \
             moves groups to the same or a newer Windows Server"
        )));
    }
    if target >= Ws2012 && source < Ws2008 {
        return Err(DriverError::Unsupported(format!(
            "the Copy Cluster Roles wizard of {target} accepts source clusters running Windows \
             Server 2008 (SP2), 2008 R2 (SP1) or 2012 and later, not {source}: route the group \
             through an interim ws2008 cluster"
        )));
    }
    Ok(())
}

/// KB 983840: the 2008 R2 Migration Wizard drops File Share resources of a 2003 cluster.
pub fn loses_file_shares(source: OsGeneration, target: OsGeneration) -> bool {
    source == OsGeneration::Ws2003 && target == OsGeneration::Ws2008r2
}

fn kb983840_reason() -> String {
    "KB 983840: the Migration Wizard of Windows Server 2008 R2 does not migrate File Share \
     resources from a Windows Server 2003 cluster; migrate through an interim ws2008 cluster"
        .into()
}

/// `base`, else `base (1)`, `base (2)`... the first name `taken` refuses.
fn unique_resource_name(taken: impl Fn(&str) -> bool, base: &str) -> String {
    if !taken(base) {
        return base.to_string();
    }
    let mut n = 1u64;
    loop {
        let candidate = format!("{base} ({n})");
        if !taken(&candidate) {
            return candidate;
        }
        n += 1;
    }
}

/// Copies the group from the source into `t`, offline. A group already on `t` is reported as it
/// is (a retry); resources and shares the wizard drops are reported as lost, not refused.
pub fn migrate_group(
    t: &mut SimState,
    src: SourceGroup,
    group: &str,
    dirty: &mut bool,
) -> Result<MigrationReport, DriverError> {
    check_migration_path(src.os, t.os)?;
    let kb = loses_file_shares(src.os, t.os);
    let lost_reason = |r: &Resource| -> Option<String> {
        if r.kind != ResourceKind::FileShare {
            None
        } else if kb {
            Some(kb983840_reason())
        } else if src.os >= OsGeneration::Ws2008 && src.never_online.contains(&r.name) {
            Some(format!(
                "file share {} was never online on {}: the Migration Wizard reads shares from \
                 the running file server, so bring the group online there first",
                share_name(r).unwrap_or(&r.name),
                src.cluster
            ))
        } else {
            None
        }
    };
    let mut report = MigrationReport {
        group: group.to_string(),
        source_cluster: src.cluster.clone(),
        source_os: Some(src.os),
        target_os: Some(t.os),
        already_present: false,
        resources: Vec::new(),
        shares_migrated: Vec::new(),
        shares_lost: Vec::new(),
    };

    if let Some(existing) = t.group(group) {
        report.already_present = true;
        report.group = existing.name.clone();
        let Some(sg) = &src.group else {
            report.resources = existing
                .resources
                .iter()
                .map(|r| ResourceMigration {
                    resource: r.name.clone(),
                    kind: r.kind,
                    status: MigrationStatus::Migrated,
                    target_name: Some(r.name.clone()),
                    reason: None,
                })
                .collect();
            report.shares_migrated = existing.shares.iter().map(|s| s.name.clone()).collect();
            return Ok(report);
        };
        for r in &sg.resources {
            let renamed_prefix = format!("{} (", r.name.to_lowercase());
            let found = existing
                .resources
                .iter()
                .find(|e| {
                    let lower = e.name.to_lowercase();
                    lower == r.name.to_lowercase() || lower.starts_with(&renamed_prefix)
                })
                // The runbook swaps the migrated disk resource for one of this cluster's disks;
                // a retried migration still counts the source's disk as arrived.
                .or_else(|| {
                    (r.kind == ResourceKind::PhysicalDisk)
                        .then(|| {
                            existing
                                .resources
                                .iter()
                                .find(|e| e.kind == ResourceKind::PhysicalDisk)
                        })
                        .flatten()
                });
            report.resources.push(match found {
                Some(e) => ResourceMigration {
                    resource: r.name.clone(),
                    kind: r.kind,
                    status: MigrationStatus::Migrated,
                    target_name: Some(e.name.clone()),
                    reason: None,
                },
                None => ResourceMigration {
                    resource: r.name.clone(),
                    kind: r.kind,
                    status: MigrationStatus::Lost,
                    target_name: None,
                    reason: Some(lost_reason(r).unwrap_or_else(|| {
                        format!(
                            "not in the group {} that already exists on {}",
                            existing.name, t.cluster
                        )
                    })),
                },
            });
        }
        for share in &sg.shares {
            let present = existing
                .shares
                .iter()
                .any(|s| same_name(&s.name, &share.name));
            if present {
                report.shares_migrated.push(share.name.clone());
            } else {
                report.shares_lost.push(share.name.clone());
            }
        }
        return Ok(report);
    }

    let Some(sg) = src.group.clone() else {
        return Err(DriverError::NotFound(format!(
            "cluster {} has no group named {group}",
            src.cluster
        )));
    };
    report.group = sg.name.clone();
    // Names given in this migration, not yet in the state.
    let mut assigned: BTreeSet<String> = BTreeSet::new();
    let mut renames: HashMap<String, String> = HashMap::new();
    let mut lost_shares: BTreeSet<String> = BTreeSet::new();
    let mut resources = Vec::with_capacity(sg.resources.len());
    for r in &sg.resources {
        if let Some(reason) = lost_reason(r) {
            if let Some(share) = share_name(r) {
                lost_shares.insert(share.to_lowercase());
            }
            report.resources.push(ResourceMigration {
                resource: r.name.clone(),
                kind: r.kind,
                status: MigrationStatus::Lost,
                target_name: None,
                reason: Some(reason),
            });
            continue;
        }
        // Resource names are unique cluster-wide; the target often has its own `Cluster Disk 1`.
        let name = unique_resource_name(
            |n| t.name_taken(n) || assigned.contains(&n.to_lowercase()),
            &r.name,
        );
        assigned.insert(name.to_lowercase());
        renames.insert(r.name.to_lowercase(), name.clone());
        let mut migrated = r.clone();
        migrated.name = name.clone();
        migrated.state = ResourceState::Offline;
        resources.push(migrated);
        report.resources.push(ResourceMigration {
            resource: r.name.clone(),
            kind: r.kind,
            status: MigrationStatus::Migrated,
            target_name: Some(name),
            reason: None,
        });
    }
    for r in &mut resources {
        r.depends_on = r
            .depends_on
            .iter()
            .filter_map(|d| renames.get(&d.to_lowercase()).cloned())
            .collect();
        match r.kind {
            ResourceKind::NetworkName if t.kerberos || prop_bool(r, "require_kerberos") => {
                t.kerberos_pending.insert(r.name.clone());
            }
            ResourceKind::FileShare => {
                t.never_online.insert(r.name.clone());
            }
            _ => {}
        }
    }
    let mut shares = Vec::with_capacity(sg.shares.len());
    for share in sg.shares {
        if lost_shares.contains(&share.name.to_lowercase()) {
            report.shares_lost.push(share.name);
        } else {
            report.shares_migrated.push(share.name.clone());
            shares.push(share);
        }
    }
    t.groups.push(Group {
        name: sg.name,
        owner_node: t.nodes.first().map(|n| n.name.clone()),
        state: ResourceState::Offline,
        resources,
        shares,
    });
    *dirty = true;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_protocol::report::driver::ErrorKind;

    #[test]
    fn migration_paths_follow_the_wizards() {
        use OsGeneration::*;
        assert!(check_migration_path(Ws2003, Ws2008).is_ok());
        assert!(check_migration_path(Ws2003, Ws2008r2).is_ok());
        assert!(check_migration_path(Ws2008, Ws2008r2).is_ok());
        for target in [Ws2012, Ws2012r2, Ws2016, Ws2022, Ws2025] {
            let err = check_migration_path(Ws2003, target).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Unsupported);
            assert!(err.message().contains("interim"), "{err}");
            assert!(check_migration_path(Ws2008, target).is_ok());
            assert!(check_migration_path(Ws2008r2, target).is_ok());
            assert!(check_migration_path(Ws2012, target).is_ok());
        }
        assert!(check_migration_path(Ws2012, Ws2008r2).is_err());
        assert!(check_migration_path(Ws2003, Ws2003).is_err());
        assert!(loses_file_shares(Ws2003, Ws2008r2));
        assert!(!loses_file_shares(Ws2003, Ws2008));
        assert!(!loses_file_shares(Ws2008, Ws2008r2));
    }

    #[test]
    fn unique_names_get_suffixes() {
        let taken: BTreeSet<String> = ["cluster disk 1", "cluster disk 1 (1)"]
            .into_iter()
            .map(String::from)
            .collect();
        let taken = |n: &str| taken.contains(&n.to_lowercase());
        assert_eq!(
            unique_resource_name(taken, "cluster DISK 1"),
            "cluster DISK 1 (2)"
        );
        assert_eq!(unique_resource_name(taken, "Other"), "Other");
    }
}
