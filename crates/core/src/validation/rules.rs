//! One function per rule. Each reads only the facts it needs, names in its evidence the nodes,
//! networks and values it judged, and gives a remedy whenever the verdict is not a pass.

use std::collections::{BTreeMap, BTreeSet};

use super::{Finding, Thresholds, Verdict};
use crate::model::facts::{ConfigFacts, CsvVolumeFacts, NetworkFacts, NodeFacts, QuorumType};
use crate::model::{NetworkRole, OsGeneration};

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

const NTLM_KEY: &str = r"HKLM:\SYSTEM\CurrentControlSet\Control\Lsa\MSV1_0";

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

/// Node names grouped by a value of theirs; nodes whose value is empty were not reported.
fn group_nodes<'a>(
    nodes: &'a [NodeFacts],
    value: impl Fn(&'a NodeFacts) -> &'a str,
) -> (BTreeMap<&'a str, Vec<&'a str>>, Vec<&'a str>) {
    let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut unreported = Vec::new();
    for node in nodes {
        let v = value(node);
        if v.is_empty() {
            unreported.push(node.name.as_str());
        } else {
            groups.entry(v).or_default().push(node.name.as_str());
        }
    }
    (groups, unreported)
}

fn group_evidence(what: &str, groups: &BTreeMap<&str, Vec<&str>>) -> Vec<String> {
    groups
        .iter()
        .map(|(value, nodes)| format!("{what} {value} on {}", nodes.join(", ")))
        .collect()
}

fn list_processors(nodes: &[&str]) -> String {
    format!(
        "Get-WmiObject -Class Win32_Processor -ComputerName {} | ft PSComputerName, \
         Manufacturer, Name",
        ps_list(nodes.iter().copied())
    )
}

// ---- networks -----------------------------------------------------------------------------------

pub(super) fn network_count(facts: &ConfigFacts) -> Finding {
    let rule = NETWORK_COUNT;
    if facts.networks.is_empty() {
        return no_networks(rule);
    }
    // iSCSI networks are closed to cluster traffic (role none), so nodes cannot talk over them.
    let (cluster, storage): (Vec<&NetworkFacts>, Vec<&NetworkFacts>) = facts
        .networks
        .iter()
        .partition(|n| n.role != NetworkRole::Iscsi);
    let mut evidence = vec![format!(
        "cluster networks ({}): {}",
        cluster.len(),
        describe_networks(cluster.iter().copied())
    )];
    if !storage.is_empty() {
        evidence.push(format!(
            "not counted, closed to cluster traffic: {}",
            describe_networks(storage.iter().copied())
        ));
    }
    if cluster.len() >= 2 {
        return finding(rule, Verdict::Pass, evidence, None);
    }
    finding(
        rule,
        Verdict::Warn,
        evidence,
        Some(format!(
            "Microsoft supports a cluster only when its nodes can reach each other over at least \
             two networks. Add a network (the field note recommends one each for virtual machine \
             access, management, cluster and CSV traffic, and live migration) and open it to the \
             cluster (Role 1 is cluster only, 3 cluster and client):\n{LIST_NETWORKS}\n\
             ( Get-ClusterNetwork \"<network>\" ).Role=1"
        )),
    )
}

pub(super) fn csv_network_metric(facts: &ConfigFacts) -> Finding {
    let rule = CSV_NETWORK_METRIC;
    if let Some(older) = predates(rule, facts, "CSV") {
        return older;
    }
    if facts.networks.is_empty() {
        return no_networks(rule);
    }
    let Some(csv) = facts.csv_network() else {
        return no_csv_network(rule, facts);
    };
    let mut evidence = vec![format!(
        "{}, metric {}",
        csv_network_identified(csv),
        csv.metric
    )];
    // Networks closed to cluster traffic never carry CSV, whatever their metric.
    let others: Vec<&NetworkFacts> = facts
        .networks
        .iter()
        .filter(|n| !std::ptr::eq(*n, csv) && n.role != NetworkRole::Iscsi)
        .collect();
    let rivals: Vec<&NetworkFacts> = others
        .iter()
        .copied()
        .filter(|n| n.metric <= csv.metric)
        .collect();
    let Some(lowest) = rivals.iter().map(|n| n.metric).min() else {
        evidence.push(match others.iter().min_by_key(|n| n.metric) {
            Some(next) => format!(
                "{} is the lowest metric; the next is {} ({})",
                csv.metric, next.name, next.metric
            ),
            None => format!("{} is the only network open to cluster traffic", csv.name),
        });
        return finding(rule, Verdict::Pass, evidence, None);
    };
    for n in &rivals {
        let relation = if n.metric < csv.metric {
            "lower than"
        } else {
            "equal to"
        };
        evidence.push(format!(
            "{} ({}) has metric {}, {relation} {}'s {}",
            n.name,
            role_label(n.role),
            n.metric,
            csv.name,
            csv.metric
        ));
    }
    // The note's 900 sits below the metrics the cluster assigns itself (1000 and up).
    let metric = if lowest > 900 {
        900
    } else {
        lowest.saturating_sub(1).max(0)
    };
    finding(
        rule,
        Verdict::Warn,
        evidence,
        Some(format!(
            "CSV traffic takes the network with the highest priority, which is the one with the \
             lowest metric. See the current metrics:\n{LIST_NETWORKS}\nthen give {} a metric below \
             every other network's (setting it turns AutoMetric off):\n\
             ( Get-ClusterNetwork {} ).Metric={metric}",
            csv.name,
            ps(&csv.name)
        )),
    )
}

const LIVE_MIGRATION_QOS_REMEDY: &str = "Dedicate a network to live migration (the field note's \
fourth network), then choose it, with a second network as backup, in the live migration settings \
of the virtual machines in Failover Cluster Manager. Without one, cap the bandwidth live \
migration may take so it cannot starve the other traffic (Windows Server 2012 R2 and later; pick \
a limit that leaves room for the rest):\nInstall-WindowsFeature FS-SMBBW\nSet-SmbBandwidthLimit \
-Category LiveMigration -BytesPerSecond 500MB";

pub(super) fn live_migration_network(facts: &ConfigFacts) -> Finding {
    let rule = LIVE_MIGRATION_NETWORK;
    if let Some(older) = predates(rule, facts, "live migration") {
        return older;
    }
    if facts.networks.is_empty() {
        return no_networks(rule);
    }
    if let Some(lm) = facts.live_migration_network() {
        return finding(
            rule,
            Verdict::Pass,
            vec![format!(
                "{} is dedicated to live migration",
                describe_network(lm)
            )],
            None,
        );
    }
    let mut evidence = vec![format!(
        "no network is dedicated to live migration; networks: {}",
        describe_networks(&facts.networks)
    )];
    let verdict = match facts.live_migration_qos {
        Some(true) => {
            evidence.push("an SMB bandwidth limit caps live migration traffic".into());
            Verdict::Pass
        }
        Some(false) => {
            evidence.push("no SMB bandwidth limit (QoS policy) caps live migration traffic".into());
            Verdict::Warn
        }
        None => {
            evidence
                .push("whether a QoS policy caps live migration traffic was not reported".into());
            Verdict::Warn
        }
    };
    let remedy = if verdict == Verdict::Warn {
        Some(LIVE_MIGRATION_QOS_REMEDY.to_string())
    } else {
        None
    };
    finding(rule, verdict, evidence, remedy)
}

pub(super) fn live_migration_ipsec(facts: &ConfigFacts) -> Finding {
    let rule = LIVE_MIGRATION_IPSEC;
    if let Some(older) = predates(rule, facts, "live migration") {
        return older;
    }
    if facts.networks.is_empty() {
        return no_networks(rule);
    }
    let Some(lm) = facts.live_migration_network() else {
        return finding(
            rule,
            Verdict::Unknown,
            vec![format!(
                "no network is dedicated to live migration, so the network it uses is unknown; \
                 networks: {}",
                describe_networks(&facts.networks)
            )],
            None,
        );
    };
    let network = if lm.subnet.is_empty() {
        lm.name.clone()
    } else {
        format!("{} ({})", lm.name, lm.subnet)
    };
    let list_rules = "Get-NetIPsecRule -PolicyStore ActiveStore | ft DisplayName, Enabled";
    match lm.ipsec_enabled {
        Some(false) => finding(
            rule,
            Verdict::Pass,
            vec![format!(
                "IPsec is off on the live migration network {network}"
            )],
            None,
        ),
        Some(true) => finding(
            rule,
            Verdict::Warn,
            vec![format!(
                "IPsec is on for the live migration network {network}"
            )],
            Some(format!(
                "IPsec is fine on the other cluster networks, but it slows live migration. Unless \
                 security requires it, exempt {network} from the IPsec connection security rules \
                 (Windows Firewall with Advanced Security, or the Group Policy that sets them). \
                 List the rules in force with:\n{list_rules}"
            )),
        ),
        None => finding(
            rule,
            Verdict::Unknown,
            vec![format!(
                "whether IPsec protects the live migration network {network} was not reported"
            )],
            Some(format!(
                "Check whether a connection security rule covers {network}:\n{list_rules}"
            )),
        ),
    }
}

// ---- nodes --------------------------------------------------------------------------------------

pub(super) fn processor_vendor(facts: &ConfigFacts) -> Finding {
    let rule = PROCESSOR_VENDOR;
    if facts.nodes.is_empty() {
        return no_nodes(rule);
    }
    let (groups, unreported) = group_nodes(&facts.nodes, |n| n.processor.vendor.trim());
    let mut evidence = group_evidence("manufacturer", &groups);
    if !unreported.is_empty() {
        evidence.push(format!(
            "processor manufacturer not reported for {}",
            unreported.join(", ")
        ));
    }
    if groups.len() > 1 {
        let nodes: Vec<&str> = node_names(&facts.nodes).collect();
        return finding(
            rule,
            Verdict::Fail,
            evidence,
            Some(format!(
                "Live migration between processor manufacturers is not supported, not even with \
                 processor compatibility on. Keep nodes of one manufacturer in this cluster and \
                 evict the others, moving their virtual machines first:\n\
                 Remove-ClusterNode -Name \"<node>\"\nSee the processors with:\n{}",
                list_processors(&nodes)
            )),
        );
    }
    if !unreported.is_empty() {
        return finding(
            rule,
            Verdict::Unknown,
            evidence,
            Some(format!(
                "See the processors with:\n{}",
                list_processors(&unreported)
            )),
        );
    }
    finding(rule, Verdict::Pass, evidence, None)
}

pub(super) fn processor_model(facts: &ConfigFacts) -> Finding {
    let rule = PROCESSOR_MODEL;
    if facts.nodes.is_empty() {
        return no_nodes(rule);
    }
    let (groups, unreported) = group_nodes(&facts.nodes, |n| n.processor.model.trim());
    let mut evidence = group_evidence("model", &groups);
    if !unreported.is_empty() {
        evidence.push(format!(
            "processor model not reported for {}",
            unreported.join(", ")
        ));
    }
    if groups.len() > 1 {
        let off: Vec<&str> = facts
            .nodes
            .iter()
            .filter(|n| n.processor_compatibility == Some(false))
            .map(|n| n.name.as_str())
            .collect();
        let not_reported: Vec<&str> = facts
            .nodes
            .iter()
            .filter(|n| n.processor_compatibility.is_none())
            .map(|n| n.name.as_str())
            .collect();
        if off.is_empty() && not_reported.is_empty() {
            evidence.push("processor compatibility is on for every node's virtual machines".into());
            return finding(rule, Verdict::Pass, evidence, None);
        }
        if !off.is_empty() {
            evidence.push(format!(
                "processor compatibility is off on {}",
                off.join(", ")
            ));
        }
        if !not_reported.is_empty() {
            evidence.push(format!(
                "processor compatibility was not reported for {}",
                not_reported.join(", ")
            ));
        }
        return finding(
            rule,
            Verdict::Warn,
            evidence,
            Some(
                "A virtual machine live-migrates between processor models only when it uses no \
                 more than the features every node has. Turn processor compatibility on for each \
                 virtual machine while it is off (Windows Server 2012 and later):\n\
                 Set-VMProcessor -VMName \"<vm>\" -CompatibilityForMigrationEnabled $true\n\
                 On Windows Server 2008 R2, tick \"Migrate to a physical computer with a \
                 different processor version\" in the virtual machine's processor settings."
                    .into(),
            ),
        );
    }
    if !unreported.is_empty() {
        return finding(
            rule,
            Verdict::Unknown,
            evidence,
            Some(format!(
                "See the processors with:\n{}",
                list_processors(&unreported)
            )),
        );
    }
    finding(rule, Verdict::Pass, evidence, None)
}

pub(super) fn virtual_switch_names(facts: &ConfigFacts) -> Finding {
    let rule = VIRTUAL_SWITCH_NAMES;
    if facts.nodes.is_empty() {
        return no_nodes(rule);
    }
    let list_switches = format!(
        "Get-VMSwitch -ComputerName {} | ft ComputerName, Name, SwitchType",
        ps_list(node_names(&facts.nodes))
    );
    let per_node: Vec<(&str, BTreeSet<&str>)> = facts
        .nodes
        .iter()
        .map(|n| {
            let switches: BTreeSet<&str> = n.virtual_switches.iter().map(String::as_str).collect();
            (n.name.as_str(), switches)
        })
        .collect();
    let all: BTreeSet<&str> = per_node
        .iter()
        .flat_map(|(_, switches)| switches.iter().copied())
        .collect();
    if all.is_empty() {
        return finding(
            rule,
            Verdict::Unknown,
            vec![format!(
                "no virtual switch was reported on any node ({}); Hyper-V may not be installed",
                join(node_names(&facts.nodes))
            )],
            Some(format!(
                "List them (Windows Server 2012 and later):\n{list_switches}"
            )),
        );
    }
    if per_node.iter().all(|(_, switches)| *switches == all) {
        return finding(
            rule,
            Verdict::Pass,
            vec![format!(
                "every node ({}) has the virtual switches {}",
                join(node_names(&facts.nodes)),
                join(all.iter().copied())
            )],
            None,
        );
    }
    let evidence = per_node
        .iter()
        .map(|(node, switches)| {
            let has = if switches.is_empty() {
                "no virtual switch".to_string()
            } else {
                join(switches.iter().copied())
            };
            let missing: Vec<&str> = all.difference(switches).copied().collect();
            if missing.is_empty() {
                format!("{node} has {has}")
            } else {
                format!("{node} has {has}; lacks {}", missing.join(", "))
            }
        })
        .collect();
    finding(
        rule,
        Verdict::Fail,
        evidence,
        Some(format!(
            "A virtual machine finds its network by the name of the virtual switch, so a live \
             migration to a node without a switch of that name fails. Name every switch the same \
             on every node, e.g. (Windows Server 2012 and later):\n\
             Rename-VMSwitch -ComputerName \"<node>\" -Name \"<its name>\" -NewName \"<the name \
             the other nodes use>\"\nand compare them with:\n{list_switches}"
        )),
    )
}

pub(super) fn ntlm_enabled(facts: &ConfigFacts) -> Finding {
    let rule = NTLM_ENABLED;
    if facts.nodes.is_empty() {
        return no_nodes(rule);
    }
    let nodes_where = |state: Option<bool>| {
        facts
            .nodes
            .iter()
            .filter(|n| n.ntlm_enabled == state)
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>()
    };
    let enabled = nodes_where(Some(true));
    let restricted = nodes_where(Some(false));
    let unreported = nodes_where(None);
    let mut evidence = Vec::new();
    if !enabled.is_empty() {
        evidence.push(format!("NTLM is enabled on {}", enabled.join(", ")));
    }
    if !restricted.is_empty() {
        evidence.push(format!("NTLM is restricted on {}", restricted.join(", ")));
    }
    if !unreported.is_empty() {
        evidence.push(format!(
            "whether NTLM is enabled was not reported for {}",
            unreported.join(", ")
        ));
    }
    if !restricted.is_empty() {
        return finding(
            rule,
            Verdict::Fail,
            evidence,
            Some(format!(
                "Failover clustering needs NTLM on every node. The Group Policy settings \"Network \
                 security: Restrict NTLM: Outgoing NTLM traffic to remote servers\" and \"Network \
                 security: Restrict NTLM: Incoming NTLM traffic\" set the values below, so change \
                 the policy if one applies; otherwise run on {}:\n\
                 Set-ItemProperty -Path '{NTLM_KEY}' -Name RestrictSendingNTLMTraffic -Value 0\n\
                 Set-ItemProperty -Path '{NTLM_KEY}' -Name RestrictReceivingNTLMTraffic -Value 0",
                restricted.join(", ")
            )),
        );
    }
    if !unreported.is_empty() {
        return finding(
            rule,
            Verdict::Unknown,
            evidence,
            Some(format!(
                "Read the NTLM restrictions on {} (2 denies NTLM):\n\
                 Get-ItemProperty -Path '{NTLM_KEY}' | fl RestrictSendingNTLMTraffic, \
                 RestrictReceivingNTLMTraffic",
                unreported.join(", ")
            )),
        );
    }
    finding(rule, Verdict::Pass, evidence, None)
}

/// A node's HBAs as comparable `(model, driver, firmware)`, in a fixed order.
type HbaSignature<'a> = Vec<(&'a str, &'a str, &'a str)>;

fn hba_signature(node: &NodeFacts) -> HbaSignature<'_> {
    let mut hbas: HbaSignature<'_> = node
        .hbas
        .iter()
        .map(|h| {
            (
                h.model.as_str(),
                h.driver_version.as_str(),
                h.firmware_version.as_str(),
            )
        })
        .collect();
    hbas.sort_unstable();
    hbas
}

fn describe_hbas(hbas: &[(&str, &str, &str)]) -> String {
    if hbas.is_empty() {
        return "no HBA".into();
    }
    hbas.iter()
        .map(|(model, driver, firmware)| format!("{model} driver {driver} firmware {firmware}"))
        .collect::<Vec<_>>()
        .join("; ")
}

pub(super) fn hba_consistency(facts: &ConfigFacts) -> Finding {
    let rule = HBA_CONSISTENCY;
    if facts.nodes.is_empty() {
        return no_nodes(rule);
    }
    let list_hbas = format!(
        "Get-WmiObject -Namespace 'root\\WMI' -Class MSFC_FCAdapterHBAAttributes -ComputerName {} \
         | ft PSComputerName, Model, DriverVersion, FirmwareVersion",
        ps_list(node_names(&facts.nodes))
    );
    if facts.nodes.iter().all(|n| n.hbas.is_empty()) {
        return finding(
            rule,
            Verdict::Unknown,
            vec![format!(
                "no HBA was reported on any node ({}); storage reached over iSCSI has none",
                join(node_names(&facts.nodes))
            )],
            Some(format!("List the Fibre Channel HBAs:\n{list_hbas}")),
        );
    }
    let mut groups: BTreeMap<HbaSignature<'_>, Vec<&str>> = BTreeMap::new();
    for node in &facts.nodes {
        groups
            .entry(hba_signature(node))
            .or_default()
            .push(node.name.as_str());
    }
    let evidence: Vec<String> = groups
        .iter()
        .map(|(hbas, nodes)| format!("{} on {}", describe_hbas(hbas), nodes.join(", ")))
        .collect();
    if groups.len() == 1 {
        return finding(rule, Verdict::Pass, evidence, None);
    }
    finding(
        rule,
        Verdict::Warn,
        evidence,
        Some(format!(
            "Storage behaves the same from every node only with identical HBAs, drivers and \
             firmware. Bring every node to one HBA model, driver and firmware with the vendor's \
             tools, then compare again:\n{list_hbas}\nTest-Cluster -Node {} -Include Inventory",
            ps_list(node_names(&facts.nodes))
        )),
    )
}

// ---- CSV ----------------------------------------------------------------------------------------

pub(super) fn csv_network_bindings(facts: &ConfigFacts) -> Finding {
    let rule = CSV_NETWORK_BINDINGS;
    // Older clusters had no CSV, and turning both off on the heartbeat network was the advice.
    if let Some(older) = predates(rule, facts, "CSV") {
        return older;
    }
    if facts.networks.is_empty() {
        return no_networks(rule);
    }
    let Some(csv) = facts.csv_network() else {
        return no_csv_network(rule, facts);
    };
    let components = [
        (
            "Client for Microsoft Networks",
            csv.client_for_microsoft_networks,
        ),
        ("File and Printer Sharing", csv.file_and_printer_sharing),
    ];
    let mut evidence = vec![csv_network_identified(csv)];
    for (component, on) in components {
        evidence.push(match on {
            Some(true) => format!("{component} is on for {} on every node", csv.name),
            Some(false) => format!("{component} is off for {} on at least one node", csv.name),
            None => format!(
                "whether {component} is on for {} was not reported",
                csv.name
            ),
        });
    }
    let interfaces = format!("Get-ClusterNetworkInterface -Network {}", ps(&csv.name));
    if components.iter().any(|(_, on)| *on == Some(false)) {
        return finding(
            rule,
            Verdict::Fail,
            evidence,
            Some(format!(
                "CSV reaches its volumes over SMB, so Client for Microsoft Networks and File and \
                 Printer Sharing must be on for the CSV network's adapter on every node, unlike \
                 the heartbeat networks of older clusters, where they were often turned off. On \
                 Windows Server 2012 and later:\n{interfaces} | ForEach-Object {{ \
                 Enable-NetAdapterBinding -CimSession ([string]$_.Node) -Name ([string]$_.Adapter) \
                 -ComponentID ms_msclient, ms_server }}\nOn Windows Server 2008 R2, tick both in \
                 the properties of that adapter on each node."
            )),
        );
    }
    if components.iter().any(|(_, on)| on.is_none()) {
        return finding(
            rule,
            Verdict::Unknown,
            evidence,
            Some(format!(
                "See the bindings (Windows Server 2012 and later):\n{interfaces} | ForEach-Object \
                 {{ Get-NetAdapterBinding -CimSession ([string]$_.Node) -Name \
                 ([string]$_.Adapter) -ComponentID ms_msclient, ms_server }}"
            )),
        );
    }
    finding(rule, Verdict::Pass, evidence, None)
}

pub(super) fn csv_free_space(facts: &ConfigFacts, thresholds: &Thresholds) -> Vec<Finding> {
    let rule = CSV_FREE_SPACE;
    if let Some(older) = predates(rule, facts, "CSV") {
        return vec![older];
    }
    if facts.csv_volumes.is_empty() {
        return vec![finding(
            rule,
            Verdict::Unknown,
            vec!["no CSV volume was reported; the cluster may have none".into()],
            Some(
                "List the CSV volumes:\nGet-ClusterSharedVolume | ft Name, State, OwnerNode".into(),
            ),
        )];
    }
    facts
        .csv_volumes
        .iter()
        .map(|v| volume_free_space(v, thresholds))
        .collect()
}

fn volume_free_space(volume: &CsvVolumeFacts, thresholds: &Thresholds) -> Finding {
    let at = if volume.path.is_empty() {
        volume.name.clone()
    } else {
        format!("{} ({})", volume.name, volume.path)
    };
    let show = format!(
        "Get-ClusterSharedVolume {} | ForEach-Object {{ $_.SharedVolumeInfo }} | ft \
         FriendlyVolumeName, @{{ n = 'FreeGB'; e = {{ [int64]($_.Partition.FreeSpace / 1GB) }} }}, \
         @{{ n = 'SizeGB'; e = {{ [int64]($_.Partition.Size / 1GB) }} }}",
        ps(&volume.name)
    );
    let (verdict, evidence, remedy) = if volume.size_bytes <= 0
        || volume.free_bytes < 0
        || volume.free_bytes > volume.size_bytes
    {
        (
            Verdict::Unknown,
            vec![format!(
                "{at}: a size of {} bytes with {} bytes free was reported, which cannot be judged",
                volume.size_bytes, volume.free_bytes
            )],
            Some(format!("See the space with:\n{show}")),
        )
    } else {
        let percent = volume.free_bytes as f64 * 100.0 / volume.size_bytes as f64;
        let verdict = if percent < thresholds.csv_free_fail_percent {
            Verdict::Fail
        } else if percent < thresholds.csv_free_warn_percent {
            Verdict::Warn
        } else {
            Verdict::Pass
        };
        // Tenths rounded down in integers, so a volume just under a threshold never reads as at it.
        let tenths = i128::from(volume.free_bytes) * 1000 / i128::from(volume.size_bytes);
        let evidence = vec![
            format!(
                "{at}: {} free of {} ({}.{}%)",
                bytes(volume.free_bytes),
                bytes(volume.size_bytes),
                tenths / 10,
                tenths % 10
            ),
            format!(
                "warns under {}% free, fails under {}%",
                thresholds.csv_free_warn_percent, thresholds.csv_free_fail_percent
            ),
        ];
        let remedy = (verdict != Verdict::Pass).then(|| {
            format!(
                "Virtual machines stop, or cannot start, when their CSV volume runs out of space. \
                 Free space on {at}, e.g. by moving virtual machines or their snapshots to another \
                 volume, or extend the volume. Dynamically expanding virtual disks grow into the \
                 free space; fixed-size ones do not. See the space with:\n{show}"
            )
        });
        (verdict, evidence, remedy)
    };
    Finding {
        rule: CSV_FREE_SPACE.id.to_string(),
        title: format!("Free space on CSV volume {}", volume.name),
        verdict,
        evidence,
        remedy,
    }
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

// ---- quorum -------------------------------------------------------------------------------------

const SHOW_QUORUM: &str = "Get-ClusterQuorum | fl *";
const ADD_WITNESS: &str = "Set-ClusterQuorum -NodeAndDiskMajority \"<witness disk>\"\nor, with a \
file share on a server outside the cluster:\nSet-ClusterQuorum -NodeAndFileShareMajority \
\"\\\\<server>\\<share>\"";

pub(super) fn quorum_configuration(facts: &ConfigFacts) -> Finding {
    let rule = QUORUM_CONFIGURATION;
    let unknown = |why: String| {
        finding(
            rule,
            Verdict::Unknown,
            vec![why],
            Some(format!("See the quorum configuration:\n{SHOW_QUORUM}")),
        )
    };
    let Some(quorum) = &facts.quorum else {
        return unknown("the quorum configuration was not reported".into());
    };
    let nodes = quorum.node_count;
    if nodes == 0 {
        return unknown("the quorum was reported without any node".into());
    }
    let odd = nodes % 2 == 1;
    let single = if nodes == 1 {
        Some("a single-node cluster has no node to fail over to, whatever its quorum".to_string())
    } else {
        None
    };
    let (label, witness) = match quorum.quorum_type {
        QuorumType::Unknown => {
            return unknown("the driver read a quorum type it does not know".into());
        }
        QuorumType::Majority => {
            let mut evidence = vec![format!(
                "dynamic quorum (majority) with {}: the cluster adjusts the votes as nodes come \
                 and go, which suits any node count",
                plural(nodes, "node")
            )];
            evidence.extend(single);
            return finding(rule, Verdict::Pass, evidence, None);
        }
        QuorumType::DiskOnly => {
            let mut evidence = vec![format!(
                "disk only with {}: the quorum disk holds the only vote, so the cluster stops \
                 when that disk fails, however many nodes run",
                plural(nodes, "node")
            )];
            evidence.extend(single);
            let remedy = if odd {
                "With an odd node count, node majority is the recommended quorum:\n\
                 Set-ClusterQuorum -NodeMajority"
                    .to_string()
            } else {
                format!(
                    "With an even node count, node majority with a witness is the recommended \
                     quorum:\n{ADD_WITNESS}"
                )
            };
            return finding(rule, Verdict::Warn, evidence, Some(remedy));
        }
        QuorumType::NodeMajority => ("node majority", false),
        QuorumType::NodeAndDiskMajority => ("node and disk majority", true),
        QuorumType::NodeAndFileShareMajority => ("node and file share majority", true),
    };
    let votes = nodes + u32::from(witness);
    let needed = votes / 2 + 1;
    let mut evidence = vec![format!(
        "{label} with {}: {}, quorum needs {needed}, so the cluster survives the loss of {}",
        plural(nodes, "node"),
        plural(votes, "vote"),
        plural(votes - needed, "vote")
    )];
    evidence.extend(single);
    match (witness, odd) {
        (false, true) | (true, false) => finding(rule, Verdict::Pass, evidence, None),
        (false, false) => {
            evidence.push(
                "an even node count without a witness: with half the nodes down, neither half \
                 keeps quorum"
                    .into(),
            );
            finding(
                rule,
                Verdict::Warn,
                evidence,
                Some(format!(
                    "An even number of votes can split in half. Give the cluster a witness to \
                     break the tie, a small disk in its storage:\n{ADD_WITNESS}"
                )),
            )
        }
        (true, true) => {
            let alone = nodes - (nodes / 2 + 1);
            evidence.push(format!(
                "an odd node count with a witness: the witness adds a vote but no tolerance ({} \
                 alone would survive the loss of {}) and is one more thing that can fail",
                plural(nodes, "node"),
                plural(alone, "vote")
            ));
            finding(
                rule,
                Verdict::Warn,
                evidence,
                Some(
                    "With an odd node count, node majority is the recommended quorum:\n\
                     Set-ClusterQuorum -NodeMajority"
                        .into(),
                ),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::facts::{HbaFacts, QuorumFacts};
    use crate::validation::fixture::{GIB, healthy, network, node, volume};

    fn with(change: impl FnOnce(&mut ConfigFacts)) -> ConfigFacts {
        let mut facts = healthy();
        change(&mut facts);
        facts
    }

    fn network_mut<'a>(facts: &'a mut ConfigFacts, name: &str) -> &'a mut NetworkFacts {
        facts
            .networks
            .iter_mut()
            .find(|n| n.name == name)
            .expect("fixture network")
    }

    #[track_caller]
    fn assert_verdict(f: &Finding, rule: Rule, verdict: Verdict) {
        assert_eq!(f.rule, rule.id, "{f:#?}");
        assert_eq!(f.verdict, verdict, "{f:#?}");
        assert!(!f.evidence.is_empty(), "{f:#?}");
        match verdict {
            Verdict::Pass => assert_eq!(f.remedy, None, "{f:#?}"),
            Verdict::Warn | Verdict::Fail => assert!(f.remedy.is_some(), "{f:#?}"),
            Verdict::Unknown => {}
        }
    }

    #[track_caller]
    fn assert_evidence(f: &Finding, text: &str) {
        assert!(
            f.evidence.iter().any(|e| e.contains(text)),
            "no evidence contains {text:?}: {f:#?}"
        );
    }

    #[track_caller]
    fn assert_remedy(f: &Finding, text: &str) {
        let remedy = f.remedy.as_deref().unwrap_or_default();
        assert!(remedy.contains(text), "remedy lacks {text:?}: {f:#?}");
    }

    fn quorum(quorum_type: QuorumType, node_count: u32) -> Finding {
        quorum_configuration(&with(|f| {
            f.quorum = Some(QuorumFacts {
                quorum_type,
                node_count,
            })
        }))
    }

    // ---- helpers --------------------------------------------------------------------------------

    #[test]
    fn powershell_strings_escape_what_would_end_or_expand_them() {
        assert_eq!(ps("Cluster Network"), "\"Cluster Network\"");
        assert_eq!(ps("a\"b$c`d"), "\"a`\"b`$c``d\"");
        assert_eq!(ps("\u{201C}x\u{201D}"), "\"`\u{201C}x`\u{201D}\"");
    }

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(20 << 20), "20.0 MiB");
        assert_eq!(bytes(1536 * GIB), "1.5 TiB");
    }

    // ---- network_count --------------------------------------------------------------------------

    #[test]
    fn two_or_more_cluster_networks_pass() {
        let f = network_count(&healthy());
        assert_verdict(&f, NETWORK_COUNT, Verdict::Pass);
        assert_evidence(&f, "cluster networks (4): Client (client, metric 10100)");
        assert_evidence(&f, "not counted, closed to cluster traffic: iSCSI");
    }

    #[test]
    fn one_cluster_network_warns_and_iscsi_does_not_count() {
        let facts = with(|f| {
            f.networks
                .retain(|n| n.name == "Client" || n.name == "iSCSI")
        });
        let f = network_count(&facts);
        assert_verdict(&f, NETWORK_COUNT, Verdict::Warn);
        assert_evidence(&f, "cluster networks (1): Client");
        assert_remedy(&f, LIST_NETWORKS);

        let facts = with(|f| f.networks.retain(|n| n.name == "iSCSI"));
        let f = network_count(&facts);
        assert_verdict(&f, NETWORK_COUNT, Verdict::Warn);
        assert_evidence(&f, "cluster networks (0): none");
    }

    #[test]
    fn no_networks_reported_is_unknown() {
        let f = network_count(&with(|f| f.networks.clear()));
        assert_verdict(&f, NETWORK_COUNT, Verdict::Unknown);
        assert_evidence(&f, "no cluster networks were reported");
    }

    // ---- csv_network_metric ---------------------------------------------------------------------

    #[test]
    fn csv_network_with_the_lowest_metric_passes() {
        let f = csv_network_metric(&healthy());
        assert_verdict(&f, CSV_NETWORK_METRIC, Verdict::Pass);
        assert_evidence(
            &f,
            "Cluster-CSV carries CSV traffic (CSV role), metric 1000",
        );
        assert_evidence(&f, "the next is LiveMigration (1100)");
    }

    #[test]
    fn a_storage_network_with_a_lower_metric_does_not_matter() {
        let facts = with(|f| network_mut(f, "iSCSI").metric = 10);
        assert_verdict(
            &csv_network_metric(&facts),
            CSV_NETWORK_METRIC,
            Verdict::Pass,
        );
    }

    #[test]
    fn a_network_with_a_lower_metric_warns_with_the_notes_commands() {
        let facts = with(|f| network_mut(f, "LiveMigration").metric = 1000);
        let f = csv_network_metric(&facts);
        assert_verdict(&f, CSV_NETWORK_METRIC, Verdict::Warn);
        assert_evidence(
            &f,
            "LiveMigration (live migration) has metric 1000, equal to Cluster-CSV's 1000",
        );
        assert_remedy(&f, "Get-ClusterNetwork | ft Name, Metric, AutoMetric, Role");
        assert_remedy(&f, "( Get-ClusterNetwork \"Cluster-CSV\" ).Metric=900");

        // Below the note's 900 already: the metric suggested goes lower still.
        let facts = with(|f| network_mut(f, "Management").metric = 500);
        let f = csv_network_metric(&facts);
        assert_verdict(&f, CSV_NETWORK_METRIC, Verdict::Warn);
        assert_evidence(&f, "Management (management) has metric 500, lower than");
        assert_remedy(&f, "( Get-ClusterNetwork \"Cluster-CSV\" ).Metric=499");
    }

    #[test]
    fn without_a_csv_role_the_lowest_cluster_network_is_judged() {
        let facts = with(|f| {
            f.networks = vec![
                network("Public", NetworkRole::Client, 900, "10.0.1.0/24"),
                network("Private", NetworkRole::Cluster, 1000, "10.0.3.0/24"),
                network("Backup", NetworkRole::Cluster, 1200, "10.0.6.0/24"),
            ]
        });
        let f = csv_network_metric(&facts);
        assert_verdict(&f, CSV_NETWORK_METRIC, Verdict::Warn);
        assert_evidence(&f, "no network has the CSV role; Private");
        assert_evidence(
            &f,
            "Public (client) has metric 900, lower than Private's 1000",
        );
        assert_remedy(&f, "( Get-ClusterNetwork \"Private\" ).Metric=899");
    }

    #[test]
    fn no_csv_network_to_judge_is_unknown() {
        let facts = with(|f| {
            f.networks
                .retain(|n| matches!(n.role, NetworkRole::Client | NetworkRole::Management))
        });
        let f = csv_network_metric(&facts);
        assert_verdict(&f, CSV_NETWORK_METRIC, Verdict::Unknown);
        assert_evidence(&f, "the CSV network is unknown");
        let f = csv_network_metric(&with(|f| f.networks.clear()));
        assert_verdict(&f, CSV_NETWORK_METRIC, Verdict::Unknown);
    }

    #[test]
    fn csv_rules_have_nothing_to_check_before_2008_r2() {
        let facts = with(|f| {
            f.os = Some(OsGeneration::Ws2008);
            network_mut(f, "Client").metric = 1;
            network_mut(f, "Cluster-CSV").file_and_printer_sharing = Some(false);
            f.csv_volumes.clear();
        });
        for f in [
            csv_network_metric(&facts),
            csv_network_bindings(&facts),
            live_migration_network(&facts),
            live_migration_ipsec(&facts),
        ]
        .into_iter()
        .chain(csv_free_space(&facts, &Thresholds::default()))
        {
            assert_eq!(f.verdict, Verdict::Pass, "{f:#?}");
            assert_evidence(&f, "came with Windows Server 2008 R2");
        }
    }

    // ---- live_migration_network -----------------------------------------------------------------

    #[test]
    fn a_dedicated_live_migration_network_passes() {
        let f = live_migration_network(&healthy());
        assert_verdict(&f, LIVE_MIGRATION_NETWORK, Verdict::Pass);
        assert_evidence(
            &f,
            "LiveMigration (live migration, metric 1100) is dedicated",
        );
    }

    #[test]
    fn without_a_dedicated_network_a_qos_policy_passes() {
        let facts = with(|f| {
            f.networks.retain(|n| n.role != NetworkRole::LiveMigration);
            f.live_migration_qos = Some(true);
        });
        let f = live_migration_network(&facts);
        assert_verdict(&f, LIVE_MIGRATION_NETWORK, Verdict::Pass);
        assert_evidence(&f, "no network is dedicated to live migration");
        assert_evidence(&f, "an SMB bandwidth limit caps live migration traffic");
    }

    #[test]
    fn neither_a_dedicated_network_nor_a_qos_policy_warns() {
        let facts = with(|f| {
            f.networks.retain(|n| n.role != NetworkRole::LiveMigration);
            f.live_migration_qos = Some(false);
        });
        let f = live_migration_network(&facts);
        assert_verdict(&f, LIVE_MIGRATION_NETWORK, Verdict::Warn);
        assert_evidence(&f, "no SMB bandwidth limit");
        assert_remedy(&f, "Set-SmbBandwidthLimit -Category LiveMigration");

        // An unconfirmed QoS policy does not excuse the missing network.
        let facts = with(|f| {
            f.networks.retain(|n| n.role != NetworkRole::LiveMigration);
            f.live_migration_qos = None;
        });
        let f = live_migration_network(&facts);
        assert_verdict(&f, LIVE_MIGRATION_NETWORK, Verdict::Warn);
        assert_evidence(&f, "was not reported");
    }

    #[test]
    fn no_networks_leave_the_live_migration_network_unknown() {
        let f = live_migration_network(&with(|f| f.networks.clear()));
        assert_verdict(&f, LIVE_MIGRATION_NETWORK, Verdict::Unknown);
    }

    // ---- live_migration_ipsec -------------------------------------------------------------------

    #[test]
    fn no_ipsec_on_the_live_migration_network_passes() {
        let f = live_migration_ipsec(&healthy());
        assert_verdict(&f, LIVE_MIGRATION_IPSEC, Verdict::Pass);
        assert_evidence(
            &f,
            "IPsec is off on the live migration network LiveMigration (10.0.4.0/24)",
        );
    }

    #[test]
    fn ipsec_on_the_live_migration_network_warns() {
        let facts = with(|f| network_mut(f, "LiveMigration").ipsec_enabled = Some(true));
        let f = live_migration_ipsec(&facts);
        assert_verdict(&f, LIVE_MIGRATION_IPSEC, Verdict::Warn);
        assert_evidence(
            &f,
            "IPsec is on for the live migration network LiveMigration",
        );
        assert_remedy(&f, "exempt LiveMigration (10.0.4.0/24)");
    }

    #[test]
    fn ipsec_not_reported_or_no_live_migration_network_is_unknown() {
        let facts = with(|f| network_mut(f, "LiveMigration").ipsec_enabled = None);
        let f = live_migration_ipsec(&facts);
        assert_verdict(&f, LIVE_MIGRATION_IPSEC, Verdict::Unknown);
        assert_evidence(&f, "was not reported");

        let facts = with(|f| f.networks.retain(|n| n.role != NetworkRole::LiveMigration));
        let f = live_migration_ipsec(&facts);
        assert_verdict(&f, LIVE_MIGRATION_IPSEC, Verdict::Unknown);
        assert_evidence(&f, "no network is dedicated to live migration");

        let f = live_migration_ipsec(&with(|f| f.networks.clear()));
        assert_verdict(&f, LIVE_MIGRATION_IPSEC, Verdict::Unknown);
    }

    // ---- processor_vendor -----------------------------------------------------------------------

    #[test]
    fn one_processor_manufacturer_passes() {
        let f = processor_vendor(&healthy());
        assert_verdict(&f, PROCESSOR_VENDOR, Verdict::Pass);
        assert_evidence(&f, "manufacturer GenuineIntel on HV-n1, HV-n2");
    }

    #[test]
    fn different_processor_manufacturers_fail() {
        let facts = with(|f| {
            f.nodes[1].processor.vendor = "AuthenticAMD".into();
            f.nodes[1].processor_compatibility = Some(true);
        });
        let f = processor_vendor(&facts);
        assert_verdict(&f, PROCESSOR_VENDOR, Verdict::Fail);
        assert_evidence(&f, "manufacturer AuthenticAMD on HV-n2");
        assert_evidence(&f, "manufacturer GenuineIntel on HV-n1");
        assert_remedy(&f, "Remove-ClusterNode");

        // A known difference fails even when a third node could not tell.
        let facts = with(|f| {
            f.nodes[1].processor.vendor = "AuthenticAMD".into();
            let mut third = node("HV-n3");
            third.processor.vendor = String::new();
            f.nodes.push(third);
        });
        let f = processor_vendor(&facts);
        assert_verdict(&f, PROCESSOR_VENDOR, Verdict::Fail);
        assert_evidence(&f, "processor manufacturer not reported for HV-n3");
    }

    #[test]
    fn an_unreported_processor_manufacturer_is_unknown() {
        let facts = with(|f| f.nodes[1].processor.vendor = " ".into());
        let f = processor_vendor(&facts);
        assert_verdict(&f, PROCESSOR_VENDOR, Verdict::Unknown);
        assert_evidence(&f, "processor manufacturer not reported for HV-n2");
        assert_remedy(&f, "Win32_Processor -ComputerName \"HV-n2\"");

        let f = processor_vendor(&with(|f| f.nodes.clear()));
        assert_verdict(&f, PROCESSOR_VENDOR, Verdict::Unknown);
        assert_evidence(&f, "no nodes were reported");
    }

    // ---- processor_model ------------------------------------------------------------------------

    #[test]
    fn one_processor_model_passes_without_compatibility() {
        let f = processor_model(&healthy());
        assert_verdict(&f, PROCESSOR_MODEL, Verdict::Pass);
        assert_evidence(
            &f,
            "model Intel(R) Xeon(R) CPU E5-2670 0 @ 2.60GHz on HV-n1, HV-n2",
        );
    }

    #[test]
    fn different_models_with_compatibility_on_everywhere_pass() {
        let facts = with(|f| {
            f.nodes[1].processor.model = "Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz".into();
            for n in &mut f.nodes {
                n.processor_compatibility = Some(true);
            }
        });
        let f = processor_model(&facts);
        assert_verdict(&f, PROCESSOR_MODEL, Verdict::Pass);
        assert_evidence(
            &f,
            "model Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz on HV-n2",
        );
        assert_evidence(&f, "processor compatibility is on for every node");
    }

    #[test]
    fn different_models_without_compatibility_warn() {
        let facts = with(|f| {
            f.nodes[1].processor.model = "Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz".into();
            f.nodes[0].processor_compatibility = Some(false);
            f.nodes[1].processor_compatibility = None;
        });
        let f = processor_model(&facts);
        assert_verdict(&f, PROCESSOR_MODEL, Verdict::Warn);
        assert_evidence(&f, "processor compatibility is off on HV-n1");
        assert_evidence(&f, "processor compatibility was not reported for HV-n2");
        assert_remedy(
            &f,
            "Set-VMProcessor -VMName \"<vm>\" -CompatibilityForMigrationEnabled $true",
        );
    }

    #[test]
    fn an_unreported_processor_model_is_unknown() {
        let facts = with(|f| f.nodes[0].processor.model = String::new());
        let f = processor_model(&facts);
        assert_verdict(&f, PROCESSOR_MODEL, Verdict::Unknown);
        assert_evidence(&f, "processor model not reported for HV-n1");
        let f = processor_model(&with(|f| f.nodes.clear()));
        assert_verdict(&f, PROCESSOR_MODEL, Verdict::Unknown);
    }

    // ---- virtual_switch_names -------------------------------------------------------------------

    #[test]
    fn identical_switch_names_pass_in_any_order() {
        let f = virtual_switch_names(&healthy());
        assert_verdict(&f, VIRTUAL_SWITCH_NAMES, Verdict::Pass);
        assert_evidence(
            &f,
            "every node (HV-n1, HV-n2) has the virtual switches External-Client, Internal-Cluster",
        );
        let facts = with(|f| f.nodes[1].virtual_switches.reverse());
        assert_verdict(
            &virtual_switch_names(&facts),
            VIRTUAL_SWITCH_NAMES,
            Verdict::Pass,
        );
    }

    #[test]
    fn different_switch_names_fail() {
        let facts = with(|f| {
            f.nodes[1].virtual_switches = vec!["External-Client".into(), "Internal".into()]
        });
        let f = virtual_switch_names(&facts);
        assert_verdict(&f, VIRTUAL_SWITCH_NAMES, Verdict::Fail);
        assert_evidence(
            &f,
            "HV-n1 has External-Client, Internal-Cluster; lacks Internal",
        );
        assert_evidence(
            &f,
            "HV-n2 has External-Client, Internal; lacks Internal-Cluster",
        );
        assert_remedy(&f, "Rename-VMSwitch");
        assert_remedy(&f, "Get-VMSwitch -ComputerName \"HV-n1\", \"HV-n2\"");

        let facts = with(|f| f.nodes[1].virtual_switches.clear());
        let f = virtual_switch_names(&facts);
        assert_verdict(&f, VIRTUAL_SWITCH_NAMES, Verdict::Fail);
        assert_evidence(
            &f,
            "HV-n2 has no virtual switch; lacks External-Client, Internal-Cluster",
        );
    }

    #[test]
    fn no_switches_anywhere_is_unknown() {
        let facts = with(|f| {
            for n in &mut f.nodes {
                n.virtual_switches.clear();
            }
        });
        let f = virtual_switch_names(&facts);
        assert_verdict(&f, VIRTUAL_SWITCH_NAMES, Verdict::Unknown);
        assert_evidence(
            &f,
            "no virtual switch was reported on any node (HV-n1, HV-n2)",
        );
        let f = virtual_switch_names(&with(|f| f.nodes.clear()));
        assert_verdict(&f, VIRTUAL_SWITCH_NAMES, Verdict::Unknown);
    }

    // ---- ntlm_enabled ---------------------------------------------------------------------------

    #[test]
    fn ntlm_everywhere_passes() {
        let f = ntlm_enabled(&healthy());
        assert_verdict(&f, NTLM_ENABLED, Verdict::Pass);
        assert_evidence(&f, "NTLM is enabled on HV-n1, HV-n2");
    }

    #[test]
    fn ntlm_restricted_on_a_node_fails() {
        let facts = with(|f| f.nodes[1].ntlm_enabled = Some(false));
        let f = ntlm_enabled(&facts);
        assert_verdict(&f, NTLM_ENABLED, Verdict::Fail);
        assert_evidence(&f, "NTLM is restricted on HV-n2");
        assert_remedy(&f, "-Name RestrictSendingNTLMTraffic -Value 0");
        assert_remedy(&f, r"HKLM:\SYSTEM\CurrentControlSet\Control\Lsa\MSV1_0");

        let facts = with(|f| {
            f.nodes[0].ntlm_enabled = None;
            f.nodes[1].ntlm_enabled = Some(false);
        });
        let f = ntlm_enabled(&facts);
        assert_verdict(&f, NTLM_ENABLED, Verdict::Fail);
        assert_evidence(&f, "was not reported for HV-n1");
    }

    #[test]
    fn ntlm_not_reported_is_unknown() {
        let facts = with(|f| f.nodes[0].ntlm_enabled = None);
        let f = ntlm_enabled(&facts);
        assert_verdict(&f, NTLM_ENABLED, Verdict::Unknown);
        assert_evidence(&f, "whether NTLM is enabled was not reported for HV-n1");
        assert_remedy(&f, "RestrictReceivingNTLMTraffic");
        let f = ntlm_enabled(&with(|f| f.nodes.clear()));
        assert_verdict(&f, NTLM_ENABLED, Verdict::Unknown);
    }

    // ---- hba_consistency ------------------------------------------------------------------------

    fn hba(model: &str, driver: &str, firmware: &str) -> HbaFacts {
        HbaFacts {
            model: model.into(),
            driver_version: driver.into(),
            firmware_version: firmware.into(),
        }
    }

    #[test]
    fn identical_hbas_pass_in_any_order() {
        let f = hba_consistency(&healthy());
        assert_verdict(&f, HBA_CONSISTENCY, Verdict::Pass);
        assert_evidence(
            &f,
            "Emulex LPe16002B driver 11.2.139.0 firmware 11.2.156.27 on HV-n1, HV-n2",
        );
        let facts = with(|f| {
            let second = hba("QLogic QLE2562", "9.1.9.25", "5.06.03");
            f.nodes[0].hbas.push(second.clone());
            f.nodes[1].hbas.insert(0, second);
        });
        assert_verdict(&hba_consistency(&facts), HBA_CONSISTENCY, Verdict::Pass);
    }

    #[test]
    fn different_hbas_warn() {
        let facts =
            with(|f| f.nodes[1].hbas = vec![hba("Emulex LPe16002B", "11.2.139.0", "11.4.204.20")]);
        let f = hba_consistency(&facts);
        assert_verdict(&f, HBA_CONSISTENCY, Verdict::Warn);
        assert_evidence(&f, "firmware 11.2.156.27 on HV-n1");
        assert_evidence(&f, "firmware 11.4.204.20 on HV-n2");
        assert_remedy(&f, "MSFC_FCAdapterHBAAttributes");

        let facts = with(|f| f.nodes[1].hbas.clear());
        let f = hba_consistency(&facts);
        assert_verdict(&f, HBA_CONSISTENCY, Verdict::Warn);
        assert_evidence(&f, "no HBA on HV-n2");
    }

    #[test]
    fn no_hbas_anywhere_is_unknown() {
        let facts = with(|f| {
            for n in &mut f.nodes {
                n.hbas.clear();
            }
        });
        let f = hba_consistency(&facts);
        assert_verdict(&f, HBA_CONSISTENCY, Verdict::Unknown);
        assert_evidence(&f, "no HBA was reported on any node (HV-n1, HV-n2)");
        let f = hba_consistency(&with(|f| f.nodes.clear()));
        assert_verdict(&f, HBA_CONSISTENCY, Verdict::Unknown);
    }

    // ---- csv_network_bindings -------------------------------------------------------------------

    #[test]
    fn smb_bindings_on_the_csv_network_pass() {
        let f = csv_network_bindings(&healthy());
        assert_verdict(&f, CSV_NETWORK_BINDINGS, Verdict::Pass);
        assert_evidence(&f, "Client for Microsoft Networks is on for Cluster-CSV");
        assert_evidence(&f, "File and Printer Sharing is on for Cluster-CSV");
    }

    #[test]
    fn smb_bindings_off_on_the_csv_network_fail() {
        let facts = with(|f| network_mut(f, "Cluster-CSV").file_and_printer_sharing = Some(false));
        let f = csv_network_bindings(&facts);
        assert_verdict(&f, CSV_NETWORK_BINDINGS, Verdict::Fail);
        assert_evidence(&f, "File and Printer Sharing is off for Cluster-CSV");
        assert_remedy(&f, "Get-ClusterNetworkInterface -Network \"Cluster-CSV\"");
        assert_remedy(&f, "Enable-NetAdapterBinding");
        assert_remedy(&f, "-ComponentID ms_msclient, ms_server");

        let facts = with(|f| {
            let csv = network_mut(f, "Cluster-CSV");
            csv.client_for_microsoft_networks = Some(false);
            csv.file_and_printer_sharing = None;
        });
        let f = csv_network_bindings(&facts);
        assert_verdict(&f, CSV_NETWORK_BINDINGS, Verdict::Fail);
        assert_evidence(&f, "Client for Microsoft Networks is off for Cluster-CSV");
        assert_evidence(
            &f,
            "whether File and Printer Sharing is on for Cluster-CSV was not",
        );
    }

    #[test]
    fn smb_bindings_not_reported_are_unknown() {
        let facts = with(|f| network_mut(f, "Cluster-CSV").client_for_microsoft_networks = None);
        let f = csv_network_bindings(&facts);
        assert_verdict(&f, CSV_NETWORK_BINDINGS, Verdict::Unknown);
        assert_remedy(&f, "Get-NetAdapterBinding");

        let facts = with(|f| {
            f.networks
                .retain(|n| !matches!(n.role, NetworkRole::Csv | NetworkRole::Cluster))
        });
        let f = csv_network_bindings(&facts);
        assert_verdict(&f, CSV_NETWORK_BINDINGS, Verdict::Unknown);
        assert_evidence(&f, "the CSV network is unknown");

        let f = csv_network_bindings(&with(|f| f.networks.clear()));
        assert_verdict(&f, CSV_NETWORK_BINDINGS, Verdict::Unknown);
    }

    // ---- csv_free_space -------------------------------------------------------------------------

    fn free_space(free_gib: i64, thresholds: &Thresholds) -> Finding {
        let facts = with(|f| f.csv_volumes = vec![volume("Volume1", 1000 * GIB, free_gib * GIB)]);
        let mut findings = csv_free_space(&facts, thresholds);
        assert_eq!(findings.len(), 1);
        findings.remove(0)
    }

    #[test]
    fn enough_free_space_passes() {
        let f = free_space(400, &Thresholds::default());
        assert_verdict(&f, CSV_FREE_SPACE, Verdict::Pass);
        assert_eq!(f.title, "Free space on CSV volume Volume1");
        assert_evidence(
            &f,
            r"Volume1 (C:\ClusterStorage\Volume1): 400.0 GiB free of 1000.0 GiB (40.0%)",
        );
        assert_evidence(&f, "warns under 20% free, fails under 10%");
        // Exactly at the threshold is not under it.
        assert_verdict(
            &free_space(200, &Thresholds::default()),
            CSV_FREE_SPACE,
            Verdict::Pass,
        );
    }

    #[test]
    fn free_space_under_the_warning_threshold_warns() {
        let f = free_space(199, &Thresholds::default());
        assert_verdict(&f, CSV_FREE_SPACE, Verdict::Warn);
        assert_evidence(&f, "(19.9%)");
        assert_remedy(&f, "Get-ClusterSharedVolume \"Volume1\"");
        assert_verdict(
            &free_space(100, &Thresholds::default()),
            CSV_FREE_SPACE,
            Verdict::Warn,
        );
    }

    #[test]
    fn free_space_under_the_failure_threshold_fails() {
        let f = free_space(99, &Thresholds::default());
        assert_verdict(&f, CSV_FREE_SPACE, Verdict::Fail);
        assert_evidence(&f, "(9.9%)");
        assert_verdict(
            &free_space(0, &Thresholds::default()),
            CSV_FREE_SPACE,
            Verdict::Fail,
        );
    }

    #[test]
    fn thresholds_are_configurable() {
        let strict = Thresholds {
            csv_free_warn_percent: 50.0,
            csv_free_fail_percent: 30.0,
        };
        assert_verdict(&free_space(400, &strict), CSV_FREE_SPACE, Verdict::Warn);
        assert_verdict(&free_space(299, &strict), CSV_FREE_SPACE, Verdict::Fail);
        let f = free_space(400, &strict);
        assert_evidence(&f, "warns under 50% free, fails under 30%");
    }

    #[test]
    fn every_volume_is_judged_on_its_own() {
        let facts = with(|f| {
            f.csv_volumes = vec![
                volume("Volume1", 1000 * GIB, 500 * GIB),
                volume("Volume2", 100 * GIB, 15 * GIB),
                volume("Volume3", 100 * GIB, 5 * GIB),
            ]
        });
        let findings = csv_free_space(&facts, &Thresholds::default());
        let judged: Vec<(&str, Verdict)> = findings
            .iter()
            .map(|f| (f.title.as_str(), f.verdict))
            .collect();
        assert_eq!(
            judged,
            [
                ("Free space on CSV volume Volume1", Verdict::Pass),
                ("Free space on CSV volume Volume2", Verdict::Warn),
                ("Free space on CSV volume Volume3", Verdict::Fail),
            ]
        );
        assert!(findings.iter().all(|f| f.rule == "csv_free_space"));
    }

    #[test]
    fn unreported_or_impossible_space_is_unknown() {
        let findings = csv_free_space(&with(|f| f.csv_volumes.clear()), &Thresholds::default());
        assert_eq!(findings.len(), 1);
        assert_verdict(&findings[0], CSV_FREE_SPACE, Verdict::Unknown);
        assert_evidence(&findings[0], "no CSV volume was reported");

        for (size, free) in [(0, 0), (100 * GIB, 101 * GIB), (100 * GIB, -1)] {
            let facts = with(|f| f.csv_volumes = vec![volume("Volume1", size, free)]);
            let findings = csv_free_space(&facts, &Thresholds::default());
            assert_verdict(&findings[0], CSV_FREE_SPACE, Verdict::Unknown);
            assert_evidence(&findings[0], "cannot be judged");
        }
    }

    // ---- quorum_configuration -------------------------------------------------------------------

    #[test]
    fn dynamic_quorum_passes_any_node_count() {
        for nodes in 1..=6 {
            let f = quorum(QuorumType::Majority, nodes);
            assert_verdict(&f, QUORUM_CONFIGURATION, Verdict::Pass);
        }
        assert_evidence(
            &quorum(QuorumType::Majority, 1),
            "a single-node cluster has no node to fail over to",
        );
    }

    #[test]
    fn node_majority_passes_odd_and_warns_even_node_counts() {
        let f = quorum(QuorumType::NodeMajority, 3);
        assert_verdict(&f, QUORUM_CONFIGURATION, Verdict::Pass);
        assert_evidence(
            &f,
            "node majority with 3 nodes: 3 votes, quorum needs 2, so the cluster survives the \
             loss of 1 vote",
        );
        let single = quorum(QuorumType::NodeMajority, 1);
        assert_verdict(&single, QUORUM_CONFIGURATION, Verdict::Pass);
        assert_evidence(&single, "survives the loss of 0 votes");

        for nodes in [2, 4] {
            let f = quorum(QuorumType::NodeMajority, nodes);
            assert_verdict(&f, QUORUM_CONFIGURATION, Verdict::Warn);
            assert_evidence(&f, "an even node count without a witness");
            assert_remedy(&f, "Set-ClusterQuorum -NodeAndDiskMajority");
            assert_remedy(&f, "Set-ClusterQuorum -NodeAndFileShareMajority");
        }
    }

    #[test]
    fn a_witness_passes_even_and_warns_odd_node_counts() {
        for kind in [
            QuorumType::NodeAndDiskMajority,
            QuorumType::NodeAndFileShareMajority,
        ] {
            let f = quorum(kind, 2);
            assert_verdict(&f, QUORUM_CONFIGURATION, Verdict::Pass);
            assert_evidence(&f, "with 2 nodes: 3 votes, quorum needs 2");
            assert_verdict(&quorum(kind, 4), QUORUM_CONFIGURATION, Verdict::Pass);

            let f = quorum(kind, 3);
            assert_verdict(&f, QUORUM_CONFIGURATION, Verdict::Warn);
            assert_evidence(&f, "3 nodes alone would survive the loss of 1 vote");
            assert_remedy(&f, "Set-ClusterQuorum -NodeMajority");

            // One node and a witness: losing the witness stops the only node.
            let f = quorum(kind, 1);
            assert_verdict(&f, QUORUM_CONFIGURATION, Verdict::Warn);
            assert_evidence(&f, "with 1 node: 2 votes, quorum needs 2");
        }
    }

    #[test]
    fn disk_only_quorum_always_warns() {
        let f = quorum(QuorumType::DiskOnly, 3);
        assert_verdict(&f, QUORUM_CONFIGURATION, Verdict::Warn);
        assert_evidence(&f, "the quorum disk holds the only vote");
        assert_remedy(&f, "Set-ClusterQuorum -NodeMajority");
        let f = quorum(QuorumType::DiskOnly, 2);
        assert_verdict(&f, QUORUM_CONFIGURATION, Verdict::Warn);
        assert_remedy(&f, "Set-ClusterQuorum -NodeAndDiskMajority");
        assert_verdict(
            &quorum(QuorumType::DiskOnly, 1),
            QUORUM_CONFIGURATION,
            Verdict::Warn,
        );
    }

    #[test]
    fn an_unreported_or_unknown_quorum_is_unknown() {
        let f = quorum_configuration(&with(|f| f.quorum = None));
        assert_verdict(&f, QUORUM_CONFIGURATION, Verdict::Unknown);
        assert_remedy(&f, SHOW_QUORUM);
        assert_verdict(
            &quorum(QuorumType::Unknown, 3),
            QUORUM_CONFIGURATION,
            Verdict::Unknown,
        );
        assert_verdict(
            &quorum(QuorumType::NodeMajority, 0),
            QUORUM_CONFIGURATION,
            Verdict::Unknown,
        );
    }
}
