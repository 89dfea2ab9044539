//! The nodes' rules: what every node must have, and have alike, for a group to fail over to
//! any of them (processor manufacturer and model, virtual switch names, NTLM, HBA model,
//! driver and firmware).

use std::collections::{BTreeMap, BTreeSet};

use super::{
    HBA_CONSISTENCY, NTLM_ENABLED, PROCESSOR_MODEL, PROCESSOR_VENDOR, VIRTUAL_SWITCH_NAMES,
    finding, join, no_nodes, node_names, ps_list,
};
use crate::model::facts::{ConfigFacts, NodeFacts};
use crate::validation::{Finding, Verdict};

const NTLM_KEY: &str = r"HKLM:\SYSTEM\CurrentControlSet\Control\Lsa\MSV1_0";

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

pub(in crate::validation) fn processor_vendor(facts: &ConfigFacts) -> Finding {
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

pub(in crate::validation) fn processor_model(facts: &ConfigFacts) -> Finding {
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

pub(in crate::validation) fn virtual_switch_names(facts: &ConfigFacts) -> Finding {
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

pub(in crate::validation) fn ntlm_enabled(facts: &ConfigFacts) -> Finding {
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

pub(in crate::validation) fn hba_consistency(facts: &ConfigFacts) -> Finding {
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
