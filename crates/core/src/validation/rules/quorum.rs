//! The quorum rule: a quorum suited to the node count, with a witness to break an even count's
//! tie, none to add a point of failure to an odd count, and never the disk alone.

use super::{QUORUM_CONFIGURATION, finding, plural};
use crate::model::facts::{ConfigFacts, QuorumType};
use crate::validation::{Finding, Verdict};

pub(super) const SHOW_QUORUM: &str = "Get-ClusterQuorum | fl *";
const ADD_WITNESS: &str = "Set-ClusterQuorum -NodeAndDiskMajority \"<witness disk>\"\nor, with a \
file share on a server outside the cluster:\nSet-ClusterQuorum -NodeAndFileShareMajority \
\"\\\\<server>\\<share>\"";

pub(in crate::validation) fn quorum_configuration(facts: &ConfigFacts) -> Finding {
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
