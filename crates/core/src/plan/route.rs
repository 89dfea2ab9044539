//! The route planner: which clusters a group passes through on its way from source to target.
//!
//! A route is the shortest chain of registered clusters whose every hop the hop table accepts and
//! loses nothing. Losing resources is never chosen silently: a lossy direct hop is taken only when
//! the operator allows it and no lossless route exists, and the route then says what is lost.

use std::collections::{BTreeSet, HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::model::{OsGeneration, ResourceKind};

use super::hops::HopTable;

/// A registered cluster, as the planner needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterRef {
    pub name: String,
    pub os: OsGeneration,
}

/// What an operator asks for: move from `source` to `target`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteRequest {
    pub source: String,
    pub target: String,
    /// Forces the route `source -> interim -> target`; both hops must be accepted and lossless.
    #[serde(default)]
    pub interim: Option<String>,
    /// Accept a direct hop that loses resources when no lossless route exists.
    #[serde(default)]
    pub allow_lossy: bool,
}

/// One wizard run: the group moves from one cluster to the next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Hop {
    pub from_cluster: String,
    pub to_cluster: String,
    pub from_os: OsGeneration,
    pub to_os: OsGeneration,
    pub loses: Vec<ResourceKind>,
    /// Service pack the `from` cluster must run; preflight checks it, since registrations do not
    /// record service packs.
    pub min_source_service_pack: Option<String>,
    /// The hop table row's citation, so every hop can be traced to its documentation.
    pub rule_source: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Route {
    pub hops: Vec<Hop>,
    /// True only for a direct hop the operator allowed to lose resources.
    pub lossy: bool,
    /// Every resource kind some hop loses, sorted, without repeats.
    pub losses: Vec<ResourceKind>,
    /// Why the route does not go straight from source to target, when it does not.
    pub refused_direct: Option<String>,
}

impl Route {
    /// Clusters the group passes through between source and target, in order.
    pub fn interims(&self) -> impl Iterator<Item = &str> {
        let last = self.hops.len().saturating_sub(1);
        self.hops[..last].iter().map(|hop| hop.to_cluster.as_str())
    }
}

/// The part a cluster plays in a route: named in a request, and deciding whose agent runs a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterRole {
    Source,
    Interim,
    Target,
}

impl std::fmt::Display for ClusterRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ClusterRole::Source => "source",
            ClusterRole::Interim => "interim",
            ClusterRole::Target => "target",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RouteError {
    #[error("source and target are the same cluster `{name}`; a migration needs two clusters")]
    SameCluster { name: String },
    #[error("unknown {role} cluster `{name}`: no registered cluster has that name")]
    UnknownCluster { role: ClusterRole, name: String },
    #[error("cluster name `{name}` is registered more than once; cluster names must be unique")]
    DuplicateCluster { name: String },
    #[error("interim cluster `{name}` is also the {role}; an interim must be a third cluster")]
    InterimIsEndpoint { name: String, role: ClusterRole },
    #[error(
        "the migration wizard does not take {from_os} -> {to_os} (`{from_cluster}` -> `{to_cluster}`): {reason}"
    )]
    HopNotAccepted {
        from_cluster: String,
        to_cluster: String,
        from_os: OsGeneration,
        to_os: OsGeneration,
        reason: String,
    },
    #[error(
        "{from_os} -> {to_os} (`{from_cluster}` -> `{to_cluster}`) loses {} resources ({reference}); every hop of a route through an interim must lose nothing",
        kinds(.loses)
    )]
    LossyInterimHop {
        from_cluster: String,
        to_cluster: String,
        from_os: OsGeneration,
        to_os: OsGeneration,
        loses: Vec<ResourceKind>,
        reference: String,
    },
    #[error("{}", no_interim_message(*.from_os, *.to_os, .missing, .see.as_deref()))]
    NoInterimRegistered {
        from_os: OsGeneration,
        to_os: OsGeneration,
        /// Generations a lossless route needs and no registered cluster provides.
        missing: Vec<OsGeneration>,
        /// Short reference of the direct hop's row, when the table has one.
        see: Option<String>,
    },
    #[error(
        "{from_os} -> {to_os} loses {} resources ({reference}) and no lossless route exists; allow a lossy migration to accept the loss",
        kinds(.loses)
    )]
    LossyRefused {
        from_os: OsGeneration,
        to_os: OsGeneration,
        loses: Vec<ResourceKind>,
        reference: String,
    },
    #[error(
        "no route from `{source_cluster}` ({from_os}) to `{target_cluster}` ({to_os}): the hop table accepts no chain of hops between these generations"
    )]
    NoRoute {
        source_cluster: String,
        target_cluster: String,
        from_os: OsGeneration,
        to_os: OsGeneration,
    },
}

fn kinds(loses: &[ResourceKind]) -> String {
    let names: Vec<&str> = loses.iter().map(|kind| kind.as_str()).collect();
    names.join(", ")
}

fn no_interim_message(
    from_os: OsGeneration,
    to_os: OsGeneration,
    missing: &[OsGeneration],
    see: Option<&str>,
) -> String {
    let mut message = match missing {
        [one] => {
            format!("no {one} cluster is registered to act as interim for {from_os} -> {to_os}")
        }
        many => {
            let clusters: Vec<String> = many.iter().map(|os| format!("no {os} cluster")).collect();
            format!(
                "{} are registered to act as interims for {from_os} -> {to_os}",
                clusters.join(" and ")
            )
        }
    };
    if let Some(see) = see {
        message.push_str("; see ");
        message.push_str(see);
    }
    message
}

/// Plans the route of one group. Pure: the same request, clusters and table give the same route.
///
/// Ties between routes of the same length go to the cluster names that sort first, so a plan
/// does not change with the order clusters were registered in.
pub fn plan_route(
    req: &RouteRequest,
    clusters: &[ClusterRef],
    table: &HopTable,
) -> Result<Route, RouteError> {
    let mut by_name: HashMap<&str, &ClusterRef> = HashMap::with_capacity(clusters.len());
    for cluster in clusters {
        if by_name.insert(cluster.name.as_str(), cluster).is_some() {
            return Err(RouteError::DuplicateCluster {
                name: cluster.name.clone(),
            });
        }
    }
    let find = |role: ClusterRole, name: &str| {
        by_name
            .get(name)
            .copied()
            .ok_or_else(|| RouteError::UnknownCluster {
                role,
                name: name.to_owned(),
            })
    };
    let source = find(ClusterRole::Source, &req.source)?;
    let target = find(ClusterRole::Target, &req.target)?;
    if source.name == target.name {
        return Err(RouteError::SameCluster {
            name: source.name.clone(),
        });
    }

    if let Some(interim_name) = &req.interim {
        let interim = find(ClusterRole::Interim, interim_name)?;
        for (endpoint, role) in [(source, ClusterRole::Source), (target, ClusterRole::Target)] {
            if interim.name == endpoint.name {
                return Err(RouteError::InterimIsEndpoint {
                    name: interim.name.clone(),
                    role,
                });
            }
        }
        let hops = vec![
            forced_hop(source, interim, table)?,
            forced_hop(interim, target, table)?,
        ];
        let refused_direct = Some(
            direct_refusal(source, target, table)
                .unwrap_or_else(|| format!("interim `{}` was requested", interim.name)),
        );
        return Ok(Route {
            hops,
            lossy: false,
            losses: Vec::new(),
            refused_direct,
        });
    }

    if let Some(path) = shortest_lossless_path(source, target, clusters, table) {
        let hops = path
            .windows(2)
            .map(|pair| hop(pair[0], pair[1], table))
            .collect::<Vec<_>>();
        let refused_direct = if hops.len() > 1 {
            direct_refusal(source, target, table)
        } else {
            None
        };
        return Ok(Route {
            hops,
            lossy: false,
            losses: Vec::new(),
            refused_direct,
        });
    }

    let direct = table.accepted(source.os, target.os);
    if req.allow_lossy
        && let Some(rule) = direct
    {
        let mut losses = rule.loses.clone();
        losses.sort();
        losses.dedup();
        return Ok(Route {
            hops: vec![hop(source, target, table)],
            lossy: true,
            losses,
            refused_direct: None,
        });
    }

    let missing = missing_interims(source, target, clusters, table);
    if !missing.is_empty() {
        return Err(RouteError::NoInterimRegistered {
            from_os: source.os,
            to_os: target.os,
            missing,
            see: table
                .rule(source.os, target.os)
                .map(|rule| rule.reference().to_owned()),
        });
    }
    match direct {
        Some(rule) => Err(RouteError::LossyRefused {
            from_os: source.os,
            to_os: target.os,
            loses: rule.loses.clone(),
            reference: rule.reference().to_owned(),
        }),
        None => Err(RouteError::NoRoute {
            source_cluster: source.name.clone(),
            target_cluster: target.name.clone(),
            from_os: source.os,
            to_os: target.os,
        }),
    }
}

/// A hop the table accepts; callers have checked that it does.
fn hop(from: &ClusterRef, to: &ClusterRef, table: &HopTable) -> Hop {
    let rule = table
        .accepted(from.os, to.os)
        .expect("the planner only builds hops the table accepts");
    Hop {
        from_cluster: from.name.clone(),
        to_cluster: to.name.clone(),
        from_os: from.os,
        to_os: to.os,
        loses: rule.loses.clone(),
        min_source_service_pack: rule.min_source_service_pack.clone(),
        rule_source: rule.source.clone(),
    }
}

fn forced_hop(from: &ClusterRef, to: &ClusterRef, table: &HopTable) -> Result<Hop, RouteError> {
    let Some(rule) = table.accepted(from.os, to.os) else {
        let reason = match table.rule(from.os, to.os) {
            Some(rule) => format!("refused by {}", rule.reference()),
            None => "the hop table has no row for it".to_owned(),
        };
        return Err(RouteError::HopNotAccepted {
            from_cluster: from.name.clone(),
            to_cluster: to.name.clone(),
            from_os: from.os,
            to_os: to.os,
            reason,
        });
    };
    if !rule.loses.is_empty() {
        return Err(RouteError::LossyInterimHop {
            from_cluster: from.name.clone(),
            to_cluster: to.name.clone(),
            from_os: from.os,
            to_os: to.os,
            loses: rule.loses.clone(),
            reference: rule.reference().to_owned(),
        });
    }
    Ok(hop(from, to, table))
}

/// Why the direct hop cannot be taken losslessly, or `None` when it can.
fn direct_refusal(source: &ClusterRef, target: &ClusterRef, table: &HopTable) -> Option<String> {
    let (from, to) = (source.os, target.os);
    match table.rule(from, to) {
        None => Some(format!("the hop table has no {from} -> {to} row")),
        Some(rule) if !rule.accepted => Some(format!(
            "the migration wizard does not take {from} -> {to} ({})",
            rule.reference()
        )),
        Some(rule) if !rule.loses.is_empty() => Some(format!(
            "{from} -> {to} loses {} resources ({})",
            kinds(&rule.loses),
            rule.reference()
        )),
        Some(_) => None,
    }
}

/// Breadth-first search over registered clusters along lossless hops, neighbours in name order.
fn shortest_lossless_path<'a>(
    source: &'a ClusterRef,
    target: &'a ClusterRef,
    clusters: &'a [ClusterRef],
    table: &HopTable,
) -> Option<Vec<&'a ClusterRef>> {
    let mut ordered: Vec<&ClusterRef> = clusters.iter().collect();
    ordered.sort_by(|a, b| a.name.cmp(&b.name));
    let mut parent: HashMap<&str, &ClusterRef> = HashMap::new();
    let mut queue = VecDeque::from([source]);
    while let Some(current) = queue.pop_front() {
        if current.name == target.name {
            let mut path = vec![current];
            while let Some(previous) = parent.get(path[path.len() - 1].name.as_str()) {
                path.push(previous);
            }
            path.reverse();
            return Some(path);
        }
        for &next in &ordered {
            let unseen = next.name != source.name && !parent.contains_key(next.name.as_str());
            if unseen
                && table
                    .accepted(current.os, next.os)
                    .is_some_and(|rule| rule.loses.is_empty())
            {
                parent.insert(next.name.as_str(), current);
                queue.push_back(next);
            }
        }
    }
    None
}

/// The generations a lossless route would pass through that no registered cluster provides,
/// along the generation chain that needs the fewest of them (then the fewest hops). Empty when no
/// lossless chain of generations exists at all.
fn missing_interims(
    source: &ClusterRef,
    target: &ClusterRef,
    clusters: &[ClusterRef],
    table: &HopTable,
) -> Vec<OsGeneration> {
    let available: BTreeSet<OsGeneration> = clusters
        .iter()
        .filter(|c| c.name != source.name && c.name != target.name)
        .map(|c| c.os)
        .collect();
    let mut best: Option<(usize, usize, Vec<OsGeneration>)> = None;
    let mut interims = Vec::new();
    search_generations(
        source.os,
        target.os,
        table,
        &available,
        &mut interims,
        &mut best,
    );
    best.map(|(_, _, missing)| missing).unwrap_or_default()
}

fn search_generations(
    at: OsGeneration,
    target: OsGeneration,
    table: &HopTable,
    available: &BTreeSet<OsGeneration>,
    interims: &mut Vec<OsGeneration>,
    best: &mut Option<(usize, usize, Vec<OsGeneration>)>,
) {
    let lossless = |from, to| table.accepted(from, to).is_some_and(|r| r.loses.is_empty());
    if lossless(at, target) {
        let missing: Vec<OsGeneration> = interims
            .iter()
            .copied()
            .filter(|os| !available.contains(os))
            .collect();
        let key = (missing.len(), interims.len() + 1);
        if best
            .as_ref()
            .is_none_or(|(count, hops, _)| key < (*count, *hops))
        {
            *best = Some((key.0, key.1, missing));
        }
    }
    for next in OsGeneration::ALL {
        if !interims.contains(&next) && lossless(at, next) {
            interims.push(next);
            search_generations(next, target, table, available, interims, best);
            interims.pop();
        }
    }
}

#[cfg(test)]
mod tests;
