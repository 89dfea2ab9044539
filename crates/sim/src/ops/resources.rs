//! Resources of a group: deleting one and rewriting what one depends on.

use std::collections::HashMap;

use ferry_core::model::{Resource, ResourceKind, ResourceState};
use ferry_protocol::report::driver::DriverError;

use super::{aggregate, group_index, share_name};
use crate::state::{SimState, same_name};

/// Deletes an offline resource of the group and every dependency on it; deleting a file share
/// resource deletes its share. `Ok(false)` when it was already gone.
pub fn remove_resource(
    s: &mut SimState,
    group: &str,
    resource: &str,
    dirty: &mut bool,
) -> Result<bool, DriverError> {
    let gi = group_index(s, group)?;
    let Some(ri) = s.groups[gi]
        .resources
        .iter()
        .position(|r| same_name(&r.name, resource))
    else {
        let elsewhere = s
            .groups
            .iter()
            .find(|g| g.resources.iter().any(|r| same_name(&r.name, resource)));
        return match elsewhere {
            Some(other) => Err(DriverError::Conflict(format!(
                "resource {resource} belongs to group {}, not {group}",
                other.name
            ))),
            None => Ok(false),
        };
    };
    let r = &s.groups[gi].resources[ri];
    if !matches!(r.state, ResourceState::Offline | ResourceState::Failed) {
        return Err(DriverError::Conflict(format!(
            "resource {} is {}: take it offline before deleting it",
            r.name,
            r.state.as_str()
        )));
    }
    let g = &mut s.groups[gi];
    let removed = g.resources.remove(ri);
    for other in &mut g.resources {
        other.depends_on.retain(|d| !same_name(d, &removed.name));
    }
    // Deleting a File Share resource deletes its share.
    if removed.kind == ResourceKind::FileShare
        && let Some(share) = share_name(&removed)
    {
        g.shares.retain(|sh| !same_name(&sh.name, share));
    }
    g.state = aggregate(&g.resources, ResourceState::Offline);
    s.kerberos_pending.remove(&removed.name);
    s.never_online.remove(&removed.name);
    *dirty = true;
    Ok(true)
}

/// Replaces the resource's dependencies with `depends_on`, refusing names outside the group and
/// cycles.
pub fn set_dependencies(
    s: &mut SimState,
    group: &str,
    resource: &str,
    depends_on: &[String],
    dirty: &mut bool,
) -> Result<Resource, DriverError> {
    let gi = group_index(s, group)?;
    let g = &s.groups[gi];
    let Some(ri) = g
        .resources
        .iter()
        .position(|r| same_name(&r.name, resource))
    else {
        return Err(DriverError::NotFound(format!(
            "group {} has no resource named {resource}",
            g.name
        )));
    };
    let mut deps: Vec<String> = Vec::with_capacity(depends_on.len());
    for dep in depends_on {
        let Some(found) = g.resources.iter().find(|r| same_name(&r.name, dep)) else {
            return Err(DriverError::NotFound(format!(
                "group {} has no resource named {dep} for {} to depend on",
                g.name, g.resources[ri].name
            )));
        };
        if found.name == g.resources[ri].name {
            return Err(DriverError::Conflict(format!(
                "resource {} cannot depend on itself",
                found.name
            )));
        }
        if !deps.contains(&found.name) {
            deps.push(found.name.clone());
        }
    }
    // A dependency on something that (transitively) depends on this resource would be a cycle.
    let index: HashMap<String, usize> = g
        .resources
        .iter()
        .enumerate()
        .map(|(i, r)| (r.name.to_lowercase(), i))
        .collect();
    let mut stack: Vec<usize> = deps.iter().map(|d| index[&d.to_lowercase()]).collect();
    let mut seen = vec![false; g.resources.len()];
    while let Some(j) = stack.pop() {
        if j == ri {
            return Err(DriverError::Conflict(format!(
                "making {} depend on {} would create a dependency cycle",
                g.resources[ri].name,
                deps.join(", ")
            )));
        }
        if std::mem::replace(&mut seen[j], true) {
            continue;
        }
        stack.extend(
            g.resources[j]
                .depends_on
                .iter()
                .filter_map(|d| index.get(&d.to_lowercase()).copied()),
        );
    }
    let r = &mut s.groups[gi].resources[ri];
    if r.depends_on != deps {
        r.depends_on = deps;
        *dirty = true;
    }
    Ok(r.clone())
}
