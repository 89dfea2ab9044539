//! Taking groups offline and online, and deleting them.

use std::collections::HashMap;
use std::path::PathBuf;

use ferry_core::model::{ResourceKind, ResourceState};
use ferry_protocol::report::driver::{
    DriverError, ErrorKind, GroupOutcome, ResourceError, ResourceOutcome, normalize_drive_letter,
};

use super::{DiskFolders, aggregate, group_index, topo_order};
use crate::state::{SimState, prop_str};

/// Takes every resource of the group offline, dependents first.
pub fn offline_group(
    s: &mut SimState,
    group: &str,
    dirty: &mut bool,
) -> Result<GroupOutcome, DriverError> {
    let gi = group_index(s, group)?;
    let g = &mut s.groups[gi];
    let mut outcomes = Vec::with_capacity(g.resources.len());
    for i in topo_order(&g.resources).into_iter().rev() {
        let r = &mut g.resources[i];
        let changed = r.state != ResourceState::Offline;
        r.state = ResourceState::Offline;
        outcomes.push(ResourceOutcome {
            resource: r.name.clone(),
            kind: r.kind,
            state: r.state,
            changed,
            error: None,
        });
    }
    if outcomes.iter().any(|o| o.changed) || g.state != ResourceState::Offline {
        *dirty = true;
    }
    g.state = ResourceState::Offline;
    Ok(GroupOutcome {
        group: g.name.clone(),
        owner_node: g.owner_node.clone(),
        state: g.state,
        resources: outcomes,
    })
}

fn failed(message: String) -> ResourceError {
    ResourceError {
        kind: ErrorKind::Failed,
        message,
    }
}

/// Splits `F:\Shares\Finance` into `F:` and its folder components.
fn split_drive_path(path: &str) -> Option<(String, Vec<&str>)> {
    let (drive, rest) = path.split_once(':')?;
    let letter = normalize_drive_letter(drive).ok()?;
    let parts = rest
        .split(['\\', '/'])
        .filter(|p| !p.is_empty() && *p != ".")
        .collect::<Vec<_>>();
    if parts.contains(&"..") {
        return None;
    }
    Some((letter, parts))
}

/// Why resource `i` of group `gi` cannot come online now, if it cannot. The flag says the
/// failure consumed the pending Kerberos failure.
fn check_resource(
    s: &SimState,
    folders: &DiskFolders,
    gi: usize,
    i: usize,
) -> Result<(), (ResourceError, bool)> {
    let g = &s.groups[gi];
    let r = &g.resources[i];
    match r.kind {
        ResourceKind::PhysicalDisk => {
            let signature = prop_str(r, "signature").unwrap_or_default();
            let Some(disk) = s.disk_by_signature(signature) else {
                let origin = prop_str(r, "cluster")
                    .filter(|c| !c.eq_ignore_ascii_case(&s.cluster))
                    .map(|c| format!(": it is storage of cluster {c}"))
                    .unwrap_or_default();
                return Err((
                    failed(format!(
                        "disk {} (signature {signature}) is not visible to cluster {}{origin}",
                        prop_str(r, "disk").unwrap_or(&r.name),
                        s.cluster
                    )),
                    false,
                ));
            };
            if disk.csv {
                return Err((
                    failed(format!(
                        "disk {} is a Cluster Shared Volume and cannot belong to a group",
                        disk.name
                    )),
                    false,
                ));
            }
            if let Some(dir) = folders.disk_dir(disk)
                && !dir.is_dir()
            {
                return Err((
                    failed(format!(
                        "disk {} has no volume (folder {} is missing)",
                        disk.name,
                        dir.display()
                    )),
                    false,
                ));
            }
            Ok(())
        }
        ResourceKind::NetworkName if s.kerberos_pending.contains(&r.name) => Err((
            ResourceError {
                kind: ErrorKind::Transient,
                message: format!(
                    "network name {} failed to come online: its Kerberos computer object is \
                     still being updated after the migration; bring it online again",
                    prop_str(r, "dns_name").unwrap_or(&r.name)
                ),
            },
            true,
        )),
        ResourceKind::FileShare => {
            let path = prop_str(r, "path").unwrap_or_default();
            let Some((letter, parts)) = split_drive_path(path) else {
                return Err((
                    failed(format!("share path `{path}` is not a drive path")),
                    false,
                ));
            };
            let disk = g
                .resources
                .iter()
                .filter(|d| {
                    d.kind == ResourceKind::PhysicalDisk && d.state == ResourceState::Online
                })
                .filter_map(|d| s.disk_by_signature(prop_str(d, "signature")?))
                .find(|d| d.drive_letter.as_deref() == Some(letter.as_str()));
            let Some(disk) = disk else {
                return Err((
                    failed(format!(
                        "no online disk with drive letter {letter} in group {}",
                        g.name
                    )),
                    false,
                ));
            };
            if let Some(dir) = folders.disk_dir(disk) {
                let folder: PathBuf = parts.iter().fold(dir, |p, c| p.join(c));
                if !folder.is_dir() {
                    return Err((
                        failed(format!("folder {path} does not exist on {}", disk.name)),
                        false,
                    ));
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// What the online pass decided for one resource.
enum Verdict {
    Online,
    Blocked(ResourceError),
    Failed(ResourceError, bool),
}

/// Brings the group online, dependencies first, checking each resource as Windows would; a
/// resource that fails is reported in the outcome, its dependents left as they were.
pub fn online_group(
    s: &mut SimState,
    folders: &DiskFolders,
    group: &str,
    dirty: &mut bool,
) -> Result<GroupOutcome, DriverError> {
    let gi = group_index(s, group)?;
    let count = s.groups[gi].resources.len();
    let index: HashMap<String, usize> = s.groups[gi]
        .resources
        .iter()
        .enumerate()
        .map(|(i, r)| (r.name.to_lowercase(), i))
        .collect();
    let mut errors: Vec<Option<ResourceError>> = vec![None; count];
    let mut outcomes = Vec::with_capacity(count);
    for i in topo_order(&s.groups[gi].resources) {
        let r = &s.groups[gi].resources[i];
        let before = r.state;
        if before == ResourceState::Online {
            outcomes.push(ResourceOutcome {
                resource: r.name.clone(),
                kind: r.kind,
                state: before,
                changed: false,
                error: None,
            });
            continue;
        }
        let mut blocked = None;
        for dep in &r.depends_on {
            match index.get(&dep.to_lowercase()) {
                None => {
                    blocked = Some(failed(format!("depends on {dep}, which does not exist")));
                    break;
                }
                Some(&j) if s.groups[gi].resources[j].state != ResourceState::Online => {
                    let d = &s.groups[gi].resources[j];
                    // A dependent of a transiently failed resource is as transient as its cause.
                    let kind = errors[j].as_ref().map_or(ErrorKind::Failed, |e| e.kind);
                    blocked = Some(ResourceError {
                        kind,
                        message: format!(
                            "not brought online: depends on {}, which is {}",
                            d.name,
                            d.state.as_str()
                        ),
                    });
                    break;
                }
                Some(_) => {}
            }
        }
        let verdict = match blocked {
            Some(e) => Verdict::Blocked(e),
            None => match check_resource(s, folders, gi, i) {
                Ok(()) => Verdict::Online,
                Err((e, consumed_kerberos)) => Verdict::Failed(e, consumed_kerberos),
            },
        };
        let r = &mut s.groups[gi].resources[i];
        let name = r.name.clone();
        let (after, error, consumed_kerberos) = match verdict {
            Verdict::Online => (ResourceState::Online, None, false),
            // A resource waiting on a failed dependency is not itself failed.
            Verdict::Blocked(e) => (before, Some(e), false),
            Verdict::Failed(e, consumed) => (ResourceState::Failed, Some(e), consumed),
        };
        r.state = after;
        let outcome = ResourceOutcome {
            resource: name.clone(),
            kind: r.kind,
            state: after,
            changed: after != before,
            error: error.clone(),
        };
        if after != before || consumed_kerberos {
            *dirty = true;
        }
        if after == ResourceState::Online {
            s.never_online.remove(&name);
        }
        if consumed_kerberos {
            s.kerberos_pending.remove(&name);
        }
        errors[i] = error;
        outcomes.push(outcome);
    }
    let first_node = s.nodes.first().map(|n| n.name.clone());
    let g = &mut s.groups[gi];
    let state = aggregate(&g.resources, ResourceState::Online);
    if g.state != state {
        g.state = state;
        *dirty = true;
    }
    if g.owner_node.is_none() && first_node.is_some() {
        g.owner_node = first_node;
        *dirty = true;
    }
    Ok(GroupOutcome {
        group: g.name.clone(),
        owner_node: g.owner_node.clone(),
        state: g.state,
        resources: outcomes,
    })
}

/// Deletes the group with its resources; `Ok(false)` when it does not exist, a `Conflict` while
/// any resource is online.
pub fn remove_group(s: &mut SimState, group: &str, dirty: &mut bool) -> Result<bool, DriverError> {
    let Some(gi) = s.group_index(group) else {
        return Ok(false);
    };
    let g = &s.groups[gi];
    if let Some(r) = g.resources.iter().find(|r| {
        matches!(
            r.state,
            ResourceState::Online | ResourceState::Pending | ResourceState::PartialOnline
        )
    }) {
        return Err(DriverError::Conflict(format!(
            "group {} is online (resource {} is {}): take it offline first",
            g.name,
            r.name,
            r.state.as_str()
        )));
    }
    // The group's disks stay in the cluster's storage: deleting a disk resource makes its disk
    // available again, which is what releases the data disk for the source. The letter goes with
    // the resource, so a later group asking for that letter gets a fresh disk, not this one with
    // the removed group's folders on it.
    let removed = s.groups.remove(gi);
    for r in &removed.resources {
        s.kerberos_pending.remove(&r.name);
        s.never_online.remove(&r.name);
        if r.kind == ResourceKind::PhysicalDisk
            && let Some(signature) = prop_str(r, "signature")
            && let Some(disk) = s
                .disks
                .iter_mut()
                .find(|d| d.signature.eq_ignore_ascii_case(signature))
        {
            disk.drive_letter = None;
        }
    }
    *dirty = true;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drive_paths_split() {
        let (letter, parts) = split_drive_path("f:\\Shares\\Финансы\\").unwrap();
        assert_eq!(letter, "F:");
        assert_eq!(parts, vec!["Shares", "Финансы"]);
        assert!(split_drive_path("\\\\server\\share").is_none());
        assert!(split_drive_path("F:\\..\\etc").is_none());
    }
}
