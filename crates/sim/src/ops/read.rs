//! What reads a cluster without changing it: groups, the inventory, configuration facts and
//! disk counters.

use chrono::{DateTime, Utc};
use ferry_core::model::facts::{ConfigFacts, CsvVolumeFacts, NetworkFacts, NodeFacts, QuorumFacts};
use ferry_core::model::{Group, InventoryDocument, Network, Node};
use ferry_protocol::report::driver::DriverError;
use ferry_protocol::report::perf::PerfSnapshot;
use serde_json::json;

use super::{group_index, model_disk};
use crate::state::SimState;

/// Every role group of the cluster.
pub fn list_groups(s: &SimState) -> Vec<Group> {
    s.groups.clone()
}

/// One group, `NotFound` when absent; copies only that group.
pub fn group(s: &SimState, name: &str) -> Result<Group, DriverError> {
    Ok(s.groups[group_index(s, name)?].clone())
}

/// The whole inventory: nodes, networks, disks, groups.
pub fn inventory(s: &SimState) -> InventoryDocument {
    InventoryDocument {
        nodes: s
            .nodes
            .iter()
            .map(|n| Node {
                name: n.name.clone(),
                address: n.address.clone(),
                processor: n.processor.clone(),
                facts: [
                    ("virtual_switches".to_string(), json!(n.virtual_switches)),
                    ("ntlm_enabled".to_string(), json!(n.ntlm_enabled)),
                    ("hbas".to_string(), json!(n.hbas)),
                ]
                .into_iter()
                .collect(),
            })
            .collect(),
        networks: s
            .networks
            .iter()
            .map(|n| Network {
                name: n.name.clone(),
                role: n.role,
                metric: n.metric,
                subnet: n.subnet.clone(),
            })
            .collect(),
        disks: s
            .disks
            .iter()
            .map(|d| {
                let mut disk = model_disk(d);
                // Where letters repeat, a group's letter is private to it (like a mount point):
                // only disks in available storage show theirs.
                if s.letters_repeat && s.disk_owner(&d.signature).is_some() {
                    disk.drive_letter = None;
                }
                disk
            })
            .collect(),
        groups: s.groups.clone(),
    }
}

/// The configuration facts the validation rules read.
pub fn config_facts(s: &SimState) -> ConfigFacts {
    ConfigFacts {
        cluster: Some(s.cluster.clone()),
        os: Some(s.os),
        networks: s
            .networks
            .iter()
            .map(|n| NetworkFacts {
                name: n.name.clone(),
                role: n.role,
                metric: n.metric,
                auto_metric: Some(n.auto_metric),
                subnet: n.subnet.clone(),
                ipsec_enabled: Some(n.ipsec_enabled),
                client_for_microsoft_networks: Some(n.client_for_microsoft_networks),
                file_and_printer_sharing: Some(n.file_and_printer_sharing),
            })
            .collect(),
        nodes: s
            .nodes
            .iter()
            .map(|n| NodeFacts {
                name: n.name.clone(),
                processor: n.processor.clone(),
                virtual_switches: n.virtual_switches.clone(),
                ntlm_enabled: Some(n.ntlm_enabled),
                hbas: n.hbas.clone(),
                processor_compatibility: Some(n.processor_compatibility),
            })
            .collect(),
        csv_volumes: s
            .disks
            .iter()
            .filter(|d| d.csv)
            .enumerate()
            .map(|(k, d)| CsvVolumeFacts {
                name: d.name.clone(),
                path: format!("C:\\ClusterStorage\\Volume{}", k + 1),
                size_bytes: d.size_bytes,
                free_bytes: d.free_bytes,
            })
            .collect(),
        quorum: Some(QuorumFacts {
            quorum_type: s.quorum,
            node_count: s.nodes.len() as u32,
        }),
        live_migration_qos: Some(s.live_migration_qos),
    }
}

/// Disk counters at `at`, from the cluster's workload model.
pub fn perf_counters(s: &SimState, at: DateTime<Utc>) -> PerfSnapshot {
    let nodes: Vec<String> = s.nodes.iter().map(|n| n.name.clone()).collect();
    s.perf.sample(s.seed, &s.cluster, &nodes, at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::model::OsGeneration;

    #[test]
    fn config_facts_carry_processor_compatibility_and_live_migration_qos() {
        let options = crate::SimCreateOptions::new("unused", "HV", OsGeneration::Ws2012r2);
        let mut state = crate::generate(&options).unwrap().state;
        let facts = config_facts(&state);
        assert!(
            facts
                .nodes
                .iter()
                .all(|n| n.processor_compatibility == Some(false))
        );
        assert_eq!(facts.live_migration_qos, Some(false));

        state.nodes[0].processor_compatibility = true;
        state.live_migration_qos = true;
        let facts = config_facts(&state);
        assert_eq!(facts.nodes[0].processor_compatibility, Some(true));
        assert_eq!(facts.live_migration_qos, Some(true));

        // A state file written before these settings existed still loads, with both off.
        let mut old = serde_json::to_value(&state).unwrap();
        old.as_object_mut().unwrap().remove("live_migration_qos");
        old["nodes"][0]
            .as_object_mut()
            .unwrap()
            .remove("processor_compatibility");
        let old: SimState = serde_json::from_value(old).unwrap();
        assert!(!old.live_migration_qos);
        assert!(!old.nodes[0].processor_compatibility);
    }
}
