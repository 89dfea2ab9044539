//! Configuration facts the validation rules judge (third field note), as agents gather them from
//! a cluster. `None` means the driver could not tell, which the rules report as "unknown" rather
//! than pass or fail.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{FieldError, MAX_NAME_LEN, NetworkRole, OsGeneration, Processor, check_text};

/// Configuration facts the validation rules judge (third field note). `None` means the driver could
/// not tell, which the rules report as "unknown" rather than pass or fail.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct ConfigFacts {
    pub cluster: Option<String>,
    pub os: Option<OsGeneration>,
    pub networks: Vec<NetworkFacts>,
    pub nodes: Vec<NodeFacts>,
    pub csv_volumes: Vec<CsvVolumeFacts>,
    pub quorum: Option<QuorumFacts>,
    /// An SMB bandwidth limit (QoS policy) caps live migration traffic, which the field note asks
    /// for when no network is dedicated to live migration.
    #[serde(default)]
    pub live_migration_qos: Option<bool>,
}

impl ConfigFacts {
    /// What posted facts must respect beyond their types: a node's processor vendor and model
    /// are at most [`MAX_NAME_LEN`] characters, as in an inventory. Field names are under
    /// `facts.`, as in the request body.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let at = format!("facts.nodes[{i}].processor");
            check_text(
                &mut errors,
                &format!("{at}.vendor"),
                &node.processor.vendor,
                MAX_NAME_LEN,
            );
            check_text(
                &mut errors,
                &format!("{at}.model"),
                &node.processor.model,
                MAX_NAME_LEN,
            );
        }
        errors
    }

    /// The network carrying CSV traffic: the one with the CSV role, else the cluster-only network
    /// with the lowest metric (CSV uses the highest-priority network).
    pub fn csv_network(&self) -> Option<&NetworkFacts> {
        self.networks
            .iter()
            .find(|n| n.role == NetworkRole::Csv)
            .or_else(|| {
                self.networks
                    .iter()
                    .filter(|n| n.role == NetworkRole::Cluster)
                    .min_by_key(|n| n.metric)
            })
    }

    pub fn live_migration_network(&self) -> Option<&NetworkFacts> {
        self.networks
            .iter()
            .find(|n| n.role == NetworkRole::LiveMigration)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NetworkFacts {
    pub name: String,
    pub role: NetworkRole,
    /// Lower is higher priority.
    pub metric: i64,
    pub auto_metric: Option<bool>,
    pub subnet: String,
    pub ipsec_enabled: Option<bool>,
    pub client_for_microsoft_networks: Option<bool>,
    pub file_and_printer_sharing: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NodeFacts {
    pub name: String,
    #[serde(deserialize_with = "super::object")]
    pub processor: Processor,
    pub virtual_switches: Vec<String>,
    pub ntlm_enabled: Option<bool>,
    pub hbas: Vec<HbaFacts>,
    /// Hyper-V processor compatibility ("migrate to a physical computer with a different processor
    /// version") is on for the node's virtual machines, which lets them live-migrate between
    /// different processor models of one manufacturer.
    #[serde(default)]
    pub processor_compatibility: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HbaFacts {
    pub model: String,
    pub driver_version: String,
    pub firmware_version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CsvVolumeFacts {
    pub name: String,
    /// e.g. `C:\ClusterStorage\Volume1`.
    pub path: String,
    pub size_bytes: i64,
    pub free_bytes: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuorumType {
    NodeMajority,
    NodeAndDiskMajority,
    NodeAndFileShareMajority,
    DiskOnly,
    /// Dynamic quorum (2012 R2 and later): `Majority` with a witness chosen by the cluster.
    Majority,
    /// A quorum type the agent's driver did not recognise.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct QuorumFacts {
    pub quorum_type: QuorumType,
    #[schema(value_type = u64, maximum = 4_294_967_295_u64)]
    pub node_count: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posted_facts_keep_the_inventory_processor_rule() {
        let mut facts = ConfigFacts::default();
        facts.nodes.push(NodeFacts {
            name: "n1".into(),
            processor: Processor {
                vendor: "x".repeat(MAX_NAME_LEN + 1),
                model: "Xeon".into(),
            },
            virtual_switches: Vec::new(),
            ntlm_enabled: None,
            hbas: Vec::new(),
            processor_compatibility: None,
        });
        let errors = facts.validate();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].field, "facts.nodes[0].processor.vendor");
    }

    #[test]
    fn nested_objects_are_objects_not_arrays_of_their_fields() {
        use crate::model::NewValidation;
        let read = |body: &str| serde_json::from_str::<NewValidation>(body);
        assert!(read(r#"{"facts": [null, null]}"#).is_err());
        assert!(read(r#"{"thresholds": []}"#).is_err());
        let node = r#"{"name": "n1", "processor": [], "virtual_switches": [], "hbas": []}"#;
        assert!(read(&format!(r#"{{"facts": {{"nodes": [{node}]}}}}"#)).is_err());
        let fine = read(r#"{"facts": {"nodes": []}, "thresholds": null}"#).unwrap();
        assert!(fine.facts.is_some() && fine.thresholds.is_none());
        assert!(read(r#"{"facts": null}"#).unwrap().facts.is_none());
    }

    #[test]
    fn posted_facts_name_a_known_quorum_type() {
        let known: QuorumType = serde_json::from_str(r#""node_majority""#).unwrap();
        assert_eq!(known, QuorumType::NodeMajority);
        assert!(serde_json::from_str::<QuorumType>(r#""AAA""#).is_err());
    }
}
