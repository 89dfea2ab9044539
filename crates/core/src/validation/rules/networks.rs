//! The networks' rules: at least two cluster networks, the CSV network with the lowest metric,
//! a dedicated network (or a QoS policy) for live migration, and no IPsec on that network.

use super::{
    CSV_NETWORK_METRIC, LIST_NETWORKS, LIVE_MIGRATION_IPSEC, LIVE_MIGRATION_NETWORK, NETWORK_COUNT,
    csv_network_identified, describe_network, describe_networks, finding, no_csv_network,
    no_networks, predates, ps, role_label,
};
use crate::model::NetworkRole;
use crate::model::facts::{ConfigFacts, NetworkFacts};
use crate::validation::{Finding, Verdict};

pub(in crate::validation) fn network_count(facts: &ConfigFacts) -> Finding {
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

pub(in crate::validation) fn csv_network_metric(facts: &ConfigFacts) -> Finding {
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

pub(in crate::validation) fn live_migration_network(facts: &ConfigFacts) -> Finding {
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

pub(in crate::validation) fn live_migration_ipsec(facts: &ConfigFacts) -> Finding {
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
