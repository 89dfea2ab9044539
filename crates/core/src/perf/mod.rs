//! Perf samples as time series: what a series is, the batch every ingest path validates into,
//! the compressed chunk format, rollups, and the analysis of the cluster-wide questions one node
//! cannot answer (redirected I/O, load balance).
//!
//! Everything here is pure: the store persists batches and chunks, the service asks the
//! questions.

pub mod analysis;
pub mod batch;
pub mod chunk;
pub mod query;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use batch::{Batch, SeriesKey, SeriesPoints};
pub use chunk::{RawChunk, Resolution, RollupChunk, RollupPoint};

/// What a perf sample measures. The redirected-I/O counters come from Windows cluster shared
/// volumes; the Linux sampler never produces them.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Counter {
    ReadsPerSec,
    WritesPerSec,
    TransfersPerSec,
    ReadBytesPerSec,
    WriteBytesPerSec,
    AvgLatencyMs,
    QueueDepth,
    RedirectedReadsPerSec,
    RedirectedWritesPerSec,
}

impl Counter {
    pub const ALL: [Counter; 9] = [
        Counter::ReadsPerSec,
        Counter::WritesPerSec,
        Counter::TransfersPerSec,
        Counter::ReadBytesPerSec,
        Counter::WriteBytesPerSec,
        Counter::AvgLatencyMs,
        Counter::QueueDepth,
        Counter::RedirectedReadsPerSec,
        Counter::RedirectedWritesPerSec,
    ];

    /// The serialized name.
    pub fn as_str(self) -> &'static str {
        match self {
            Counter::ReadsPerSec => "reads_per_sec",
            Counter::WritesPerSec => "writes_per_sec",
            Counter::TransfersPerSec => "transfers_per_sec",
            Counter::ReadBytesPerSec => "read_bytes_per_sec",
            Counter::WriteBytesPerSec => "write_bytes_per_sec",
            Counter::AvgLatencyMs => "avg_latency_ms",
            Counter::QueueDepth => "queue_depth",
            Counter::RedirectedReadsPerSec => "redirected_reads_per_sec",
            Counter::RedirectedWritesPerSec => "redirected_writes_per_sec",
        }
    }

    pub fn parse(name: &str) -> Option<Counter> {
        Counter::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

impl std::fmt::Display for Counter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who measured a series: a cluster node's disk counters, the storage server behind the volume,
/// or a node's cluster shared volume counters (where redirected I/O shows).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Node,
    Storage,
    Csv,
}

impl Source {
    pub const ALL: [Source; 3] = [Source::Node, Source::Storage, Source::Csv];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Node => "node",
            Source::Storage => "storage",
            Source::Csv => "csv",
        }
    }

    pub fn parse(name: &str) -> Option<Source> {
        Source::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How long each resolution is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub raw_ms: i64,
    pub minute_ms: i64,
    pub hour_ms: i64,
}

impl Retention {
    pub const HOUR_MS: i64 = 3_600_000;
    pub const DAY_MS: i64 = 24 * Self::HOUR_MS;

    pub fn of(&self, resolution: Resolution) -> i64 {
        match resolution {
            Resolution::Raw => self.raw_ms,
            Resolution::Minute => self.minute_ms,
            Resolution::Hour => self.hour_ms,
        }
    }
}

impl Default for Retention {
    /// Raw 48 hours, 1-minute rollups 30 days, 1-hour rollups a year.
    fn default() -> Self {
        Self {
            raw_ms: 48 * Self::HOUR_MS,
            minute_ms: 30 * Self::DAY_MS,
            hour_ms: 365 * Self::DAY_MS,
        }
    }
}

/// How perf data is kept.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerfSettings {
    pub retention: Retention,
    /// How often the background compactor merges landed batches and applies retention. Each
    /// merge re-encodes every open chunk of each series it touches, however few samples are new,
    /// so its cost follows how often it runs, not the samples; a query merges its cluster's
    /// waiting batches first, so no answer waits for it.
    pub compact_every: Duration,
}

impl Default for PerfSettings {
    fn default() -> Self {
        Self {
            retention: Retention::default(),
            compact_every: Duration::from_secs(60),
        }
    }
}
