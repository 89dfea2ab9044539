//! Disks: putting one into a group, lettering one, preparing a free one for a migrated group,
//! and swapping a migrated group's disk resource for one of this cluster's disks.

use ferry_core::model::{Disk, Properties, Resource, ResourceKind, ResourceState};
use ferry_protocol::report::driver::{DiskReplacement, DriverError, normalize_drive_letter};
use serde_json::json;

use super::{aggregate, group_index, model_disk};
use crate::state::{SimDisk, SimState, prop_str, same_name};

/// Puts a disk of available storage into the group as an offline physical disk resource; a disk
/// the group already holds is the answer (a retry).
pub fn add_disk_resource(
    s: &mut SimState,
    group: &str,
    disk: &str,
    dirty: &mut bool,
) -> Result<Resource, DriverError> {
    let gi = group_index(s, group)?;
    let Some(d) = s.disk(disk) else {
        let available: Vec<&str> = s
            .disks
            .iter()
            .filter(|d| !d.csv && s.disk_owner(&d.signature).is_none())
            .map(|d| d.name.as_str())
            .collect();
        return Err(DriverError::NotFound(format!(
            "cluster {} has no disk named {disk} (available storage: {})",
            s.cluster,
            if available.is_empty() {
                "none".to_string()
            } else {
                available.join(", ")
            }
        )));
    };
    if d.csv {
        return Err(DriverError::Conflict(format!(
            "disk {} is a Cluster Shared Volume and cannot be added to a group",
            d.name
        )));
    }
    if let Some((owner, r)) = s.disk_owner(&d.signature) {
        return if owner.name == s.groups[gi].name {
            Ok(r.clone())
        } else {
            Err(DriverError::Conflict(format!(
                "disk {} already belongs to group {}",
                d.name, owner.name
            )))
        };
    }
    let mut properties = Properties::new();
    properties.insert("disk".into(), json!(d.name));
    properties.insert("signature".into(), json!(d.signature));
    if let Some(letter) = &d.drive_letter {
        properties.insert("drive_letter".into(), json!(letter));
    }
    properties.insert("cluster".into(), json!(s.cluster));
    let resource = Resource {
        name: d.name.clone(),
        kind: ResourceKind::PhysicalDisk,
        state: ResourceState::Offline,
        properties,
        depends_on: Vec::new(),
    };
    let g = &mut s.groups[gi];
    g.resources.push(resource.clone());
    g.state = aggregate(&g.resources, g.state);
    *dirty = true;
    Ok(resource)
}

/// Gives a disk a drive letter, and every physical disk resource holding it the letter too.
pub fn assign_drive_letter(
    s: &mut SimState,
    disk: &str,
    letter: &str,
    dirty: &mut bool,
) -> Result<Disk, DriverError> {
    let letter = normalize_drive_letter(letter)?;
    let Some(di) = s.disks.iter().position(|d| same_name(&d.name, disk)) else {
        return Err(DriverError::NotFound(format!(
            "cluster {} has no disk named {disk}",
            s.cluster
        )));
    };
    let d = &s.disks[di];
    if d.drive_letter.as_deref() == Some(letter.as_str()) {
        return Ok(model_disk(d));
    }
    if d.csv {
        return Err(DriverError::Conflict(format!(
            "disk {} is a Cluster Shared Volume, reached under C:\\ClusterStorage, not by letter",
            d.name
        )));
    }
    if letter == "C:" {
        return Err(DriverError::Conflict(
            "C: is the system drive of every node".into(),
        ));
    }
    if let Some(other) = s
        .disks
        .iter()
        .find(|o| o.drive_letter.as_deref() == Some(letter.as_str()))
        .filter(|_| !s.letters_repeat)
    {
        return Err(DriverError::Conflict(format!(
            "drive letter {letter} is already used by disk {}",
            other.name
        )));
    }
    let signature = d.signature.clone();
    s.disks[di].drive_letter = Some(letter.clone());
    for g in &mut s.groups {
        for r in g.resources.iter_mut().filter(|r| {
            r.kind == ResourceKind::PhysicalDisk
                && prop_str(r, "signature").is_some_and(|x| x.eq_ignore_ascii_case(&signature))
        }) {
            r.properties.insert("drive_letter".into(), json!(letter));
        }
    }
    *dirty = true;
    Ok(model_disk(&s.disks[di]))
}

/// A disk some group could take: not a CSV, held by no group's physical disk resource (the sim
/// knows a disk by its signature, which a resource keeps across a rename).
fn is_free(s: &SimState, d: &SimDisk) -> bool {
    !d.csv && s.disk_owner(&d.signature).is_none()
}

/// Finds a disk no group holds and gives it `letter` (an unlettered one first).
pub fn prepare_disk(s: &mut SimState, letter: &str, dirty: &mut bool) -> Result<Disk, DriverError> {
    let letter = normalize_drive_letter(letter)?;
    if let Some(d) = s.disks.iter().find(|d| {
        d.drive_letter.as_deref() == Some(letter.as_str())
            && !(s.letters_repeat && s.disk_owner(&d.signature).is_some())
    }) {
        if let Some((owner, _)) = s.disk_owner(&d.signature) {
            return Err(DriverError::Conflict(format!(
                "drive letter {letter} is taken on cluster {} by disk {} of group {}",
                s.cluster, d.name, owner.name
            )));
        }
        // A retry after the letter was given, or a disk an operator prepared by hand.
        return Ok(model_disk(d));
    }
    if letter == "C:" {
        return Err(DriverError::Conflict(
            "C: is the system drive of every node".into(),
        ));
    }
    // An unlettered disk first: a lettered one may be in use outside the cluster's groups.
    let pick = s
        .disks
        .iter()
        .position(|d| is_free(s, d) && d.drive_letter.is_none())
        .or_else(|| s.disks.iter().position(|d| is_free(s, d)));
    let Some(di) = pick else {
        return Err(DriverError::NotFound(format!(
            "cluster {} has no disk in available storage (every disk belongs to a group or is a \
             Cluster Shared Volume): present a spare LUN to it",
            s.cluster
        )));
    };
    let name = s.disks[di].name.clone();
    assign_drive_letter(s, &name, &letter, dirty)
}

/// Makes `disk` the group's only physical disk resource, lettered `letter`, moving every
/// dependency on the resources it replaces to it.
pub fn replace_disk_resource(
    s: &mut SimState,
    group: &str,
    disk: &str,
    letter: &str,
    dirty: &mut bool,
) -> Result<DiskReplacement, DriverError> {
    let letter = normalize_drive_letter(letter)?;
    let gi = group_index(s, group)?;
    let group_name = s.groups[gi].name.clone();
    let Some(d) = s.disk(disk) else {
        return Err(DriverError::NotFound(format!(
            "cluster {} has no disk named {disk}",
            s.cluster
        )));
    };
    if d.csv {
        return Err(DriverError::Conflict(format!(
            "disk {} is a Cluster Shared Volume and cannot belong to a group",
            d.name
        )));
    }
    let (disk_name, signature) = (d.name.clone(), d.signature.clone());
    let current = match s.disk_owner(&signature) {
        Some((owner, r)) if same_name(&owner.name, &group_name) => Some(r.name.clone()),
        Some((owner, _)) => {
            return Err(DriverError::Conflict(format!(
                "disk {disk_name} belongs to group {}, not {group_name}",
                owner.name
            )));
        }
        None => None,
    };
    let others: Vec<String> = s.groups[gi]
        .resources
        .iter()
        .filter(|r| {
            r.kind == ResourceKind::PhysicalDisk
                && current.as_deref().is_none_or(|c| !same_name(c, &r.name))
        })
        .map(|r| r.name.clone())
        .collect();
    // Every refusal comes before the first change, so a refused call leaves the group as it was.
    if let Some(r) = s.groups[gi].resources.iter().find(|r| {
        others.contains(&r.name)
            && !matches!(r.state, ResourceState::Offline | ResourceState::Failed)
    }) {
        return Err(DriverError::Conflict(format!(
            "disk resource {} of group {group_name} is {}: take the group offline first",
            r.name,
            r.state.as_str()
        )));
    }
    // The letter may still sit on a disk of this cluster that one of the replaced resources
    // holds; it moves with the replacement. On any other disk it is a conflict.
    let replaced_signatures: Vec<String> = s.groups[gi]
        .resources
        .iter()
        .filter(|r| others.contains(&r.name))
        .filter_map(|r| prop_str(r, "signature").map(str::to_owned))
        .collect();
    if letter == "C:" {
        return Err(DriverError::Conflict(
            "C: is the system drive of every node".into(),
        ));
    }
    if let Some(other) = s.disks.iter().find(|o| {
        !s.letters_repeat
            && o.drive_letter.as_deref() == Some(letter.as_str())
            && o.signature != signature
            && !replaced_signatures
                .iter()
                .any(|sig| sig.eq_ignore_ascii_case(&o.signature))
    }) {
        let holder = s
            .disk_owner(&other.signature)
            .map(|(g, _)| format!(" of group {}", g.name))
            .unwrap_or_default();
        return Err(DriverError::Conflict(format!(
            "drive letter {letter} is already used by disk {}{holder}",
            other.name
        )));
    }
    for other in s.disks.iter_mut().filter(|o| {
        o.drive_letter.as_deref() == Some(letter.as_str())
            && o.signature != signature
            && replaced_signatures
                .iter()
                .any(|sig| sig.eq_ignore_ascii_case(&o.signature))
    }) {
        other.drive_letter = None;
        *dirty = true;
    }
    assign_drive_letter(s, &disk_name, &letter, dirty)?;
    let resource = match current {
        Some(name) => name,
        None => add_disk_resource(s, &group_name, &disk_name, dirty)?.name,
    };
    let mut report = DiskReplacement {
        resource: resource.clone(),
        ..DiskReplacement::default()
    };
    let replaced = |name: &str| others.iter().any(|o| same_name(o, name));
    let g = &mut s.groups[gi];
    for r in g.resources.iter_mut() {
        if same_name(&r.name, &resource) || !r.depends_on.iter().any(|d| replaced(d)) {
            continue;
        }
        let mut deps: Vec<String> = Vec::with_capacity(r.depends_on.len());
        for dep in &r.depends_on {
            let dep = if replaced(dep) { &resource } else { dep };
            if !deps.iter().any(|d| same_name(d, dep)) {
                deps.push(dep.clone());
            }
        }
        r.depends_on = deps;
        report.repointed.push(r.name.clone());
    }
    g.resources.retain(|r| !replaced(&r.name));
    g.state = aggregate(&g.resources, ResourceState::Offline);
    for name in &others {
        s.kerberos_pending.remove(name);
        s.never_online.remove(name);
    }
    if !others.is_empty() {
        *dirty = true;
    }
    report.removed = others;
    Ok(report)
}
