//! Configuration facts the validation rules judge (third field note), as agents gather them from
//! a cluster. `None` means the driver could not tell, which the rules report as "unknown" rather
//! than pass or fail.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{NetworkRole, OsGeneration, Processor};

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
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct QuorumFacts {
    pub quorum_type: QuorumType,
    pub node_count: u32,
}
