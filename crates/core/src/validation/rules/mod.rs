//! One function per rule, one file per area of the field note: `networks.rs` (how many, their
//! metrics, live migration's network and IPsec), `nodes.rs` (what every node must have alike:
//! processors, virtual switches, NTLM, HBAs), `csv.rs` (the CSV network's bindings, free space
//! on CSV volumes) and `quorum.rs`. Each rule reads only the facts it needs, names in its
//! evidence the nodes, networks and values it judged, and gives a remedy whenever the verdict is
//! not a pass. What several areas share stays here: the rules' ids and titles, how a finding
//! is built, and how names, lists and sizes are written into evidence and remedies.

use super::{Finding, Verdict};
use crate::model::facts::{ConfigFacts, NetworkFacts, NodeFacts};
use crate::model::{NetworkRole, OsGeneration};

mod csv;
mod networks;
mod nodes;
mod quorum;

pub(super) use csv::{csv_free_space, csv_network_bindings};
pub(super) use networks::{
    csv_network_metric, live_migration_ipsec, live_migration_network, network_count,
};
pub(super) use nodes::{
    hba_consistency, ntlm_enabled, processor_model, processor_vendor, virtual_switch_names,
};
pub(super) use quorum::quorum_configuration;

/// A rule's stable id and title, as listed in [`super::RULES`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Rule {
    pub(super) id: &'static str,
    pub(super) title: &'static str,
}

pub(super) const NETWORK_COUNT: Rule = Rule {
    id: "network_count",
    title: "At least two cluster networks",
};
pub(super) const CSV_NETWORK_METRIC: Rule = Rule {
    id: "csv_network_metric",
    title: "The CSV network has the lowest metric",
};
pub(super) const LIVE_MIGRATION_NETWORK: Rule = Rule {
    id: "live_migration_network",
    title: "A dedicated live migration network, or a QoS policy for live migration",
};
pub(super) const PROCESSOR_VENDOR: Rule = Rule {
    id: "processor_vendor",
    title: "One processor manufacturer on every node",
};
pub(super) const PROCESSOR_MODEL: Rule = Rule {
    id: "processor_model",
    title: "One processor model on every node, or processor compatibility on",
};
pub(super) const VIRTUAL_SWITCH_NAMES: Rule = Rule {
    id: "virtual_switch_names",
    title: "Identical virtual switch names on every node",
};
pub(super) const NTLM_ENABLED: Rule = Rule {
    id: "ntlm_enabled",
    title: "NTLM enabled on every node",
};
pub(super) const HBA_CONSISTENCY: Rule = Rule {
    id: "hba_consistency",
    title: "Identical HBA model, driver and firmware on every node",
};
pub(super) const CSV_NETWORK_BINDINGS: Rule = Rule {
    id: "csv_network_bindings",
    title: "Client for Microsoft Networks and File and Printer Sharing on the CSV network",
};
pub(super) const CSV_FREE_SPACE: Rule = Rule {
    id: "csv_free_space",
    title: "Free space on every CSV volume",
};
pub(super) const QUORUM_CONFIGURATION: Rule = Rule {
    id: "quorum_configuration",
    title: "Quorum suited to the node count",
};
pub(super) const LIVE_MIGRATION_IPSEC: Rule = Rule {
    id: "live_migration_ipsec",
    title: "No IPsec on the live migration network",
};

/// The field note's command to see the cluster networks.
const LIST_NETWORKS: &str = "Get-ClusterNetwork | ft Name, Metric, AutoMetric, Role";

fn finding(rule: Rule, verdict: Verdict, evidence: Vec<String>, remedy: Option<String>) -> Finding {
    Finding {
        rule: rule.id.to_string(),
        title: rule.title.to_string(),
        verdict,
        evidence,
        remedy,
    }
}

fn no_networks(rule: Rule) -> Finding {
    finding(
        rule,
        Verdict::Unknown,
        vec!["no cluster networks were reported".into()],
        Some(format!(
            "List the cluster networks on a node:\n{LIST_NETWORKS}"
        )),
    )
}

fn no_nodes(rule: Rule) -> Finding {
    finding(
        rule,
        Verdict::Unknown,
        vec!["no nodes were reported".into()],
        Some("List the nodes on a node of the cluster:\nGet-ClusterNode | ft Name, State".into()),
    )
}

/// CSV and live migration came with Windows Server 2008 R2, so their rules have nothing to judge
/// on an older cluster; on one whose version is unknown they judge what was reported.
fn predates(rule: Rule, facts: &ConfigFacts, feature: &str) -> Option<Finding> {
    let os = facts.os.filter(|os| *os < OsGeneration::Ws2008r2)?;
    Some(finding(
        rule,
        Verdict::Pass,
        vec![format!(
            "the cluster runs {os}; {feature} came with Windows Server 2008 R2, so there is \
             nothing to check"
        )],
        None,
    ))
}

/// `s` as a PowerShell double-quoted string, the form the field note's commands use.
fn ps(s: &str) -> String {
    let mut quoted = String::with_capacity(s.len() + 2);
    quoted.push('"');
    for c in s.chars() {
        // PowerShell ends a double-quoted string at typographic quotes too, and expands `$`.
        if matches!(c, '"' | '`' | '$' | '\u{201C}' | '\u{201D}' | '\u{201E}') {
            quoted.push('`');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

fn ps_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    items.into_iter().map(ps).collect::<Vec<_>>().join(", ")
}

fn join<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    items.into_iter().collect::<Vec<_>>().join(", ")
}

fn node_names(nodes: &[NodeFacts]) -> impl Iterator<Item = &str> {
    nodes.iter().map(|n| n.name.as_str())
}

fn plural(count: u32, word: &str) -> String {
    if count == 1 {
        format!("1 {word}")
    } else {
        format!("{count} {word}s")
    }
}

fn role_label(role: NetworkRole) -> &'static str {
    match role {
        NetworkRole::Client => "client",
        NetworkRole::Management => "management",
        NetworkRole::Cluster => "cluster",
        NetworkRole::Csv => "CSV",
        NetworkRole::LiveMigration => "live migration",
        NetworkRole::Iscsi => "iSCSI",
    }
}

fn describe_network(n: &NetworkFacts) -> String {
    format!("{} ({}, metric {})", n.name, role_label(n.role), n.metric)
}

fn describe_networks<'a>(networks: impl IntoIterator<Item = &'a NetworkFacts>) -> String {
    let described: Vec<String> = networks.into_iter().map(describe_network).collect();
    if described.is_empty() {
        "none".into()
    } else {
        described.join(", ")
    }
}

/// Which network [`ConfigFacts::csv_network`] chose, and why.
fn csv_network_identified(csv: &NetworkFacts) -> String {
    if csv.role == NetworkRole::Csv {
        format!("{} carries CSV traffic (CSV role)", csv.name)
    } else {
        format!(
            "no network has the CSV role; {}, the cluster-only network with the lowest metric, \
             carries CSV traffic",
            csv.name
        )
    }
}

fn no_csv_network(rule: Rule, facts: &ConfigFacts) -> Finding {
    finding(
        rule,
        Verdict::Unknown,
        vec![format!(
            "no network has the CSV role and none is cluster-only, so the CSV network is \
             unknown; networks: {}",
            describe_networks(&facts.networks)
        )],
        Some(format!(
            "Find the network meant for CSV traffic:\n{LIST_NETWORKS}"
        )),
    )
}

fn bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests;
