//! Disk counters as a driver reads them, before the agent turns them into perf series.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PerfSource {
    ClusterNode,
    /// The storage server behind the volumes (the iSCSI target of the second field note).
    StorageServer,
}

/// Disk counters of one volume as seen from one machine, per second unless named otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeCounters {
    pub node: String,
    pub source: PerfSource,
    pub volume: String,
    /// A cluster shared volume, which every node reaches (and where redirected I/O can show).
    #[serde(default)]
    pub csv: bool,
    pub reads_per_sec: f64,
    pub writes_per_sec: f64,
    pub transfers_per_sec: f64,
    pub read_bytes_per_sec: f64,
    pub write_bytes_per_sec: f64,
    pub avg_latency_ms: f64,
    pub queue_depth: f64,
    /// CSV I/O this node sends through the coordinator instead of to the disk.
    pub redirected_reads_per_sec: f64,
    pub redirected_writes_per_sec: f64,
}

/// All counters of a cluster at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerfSnapshot {
    pub at: DateTime<Utc>,
    pub cluster: String,
    pub counters: Vec<VolumeCounters>,
}
