//! What the agent reports unasked: perf batches on an interval (the node's `/proc/diskstats`
//! rates plus the driver's cluster counters when it has them) and inventory reports after a
//! share scan. Both go through the agent's event queue to whatever stream is open; when none is,
//! or the queue is full, a batch is dropped rather than held, because perf is advisory and the
//! next batch is as good.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::driver::{ClusterDriver, PerfSnapshot};
use super::perf::{Counter, DiskstatsSampler, PerfSample};
use crate::grpc::pb;
use crate::grpc::pb::agent_message::Body as AgentBody;
use crate::model::InventoryDocument;

/// How often `ferry agent` samples perf counters unless told otherwise.
pub const DEFAULT_PERF_INTERVAL: Duration = Duration::from_secs(10);

fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: at.timestamp_subsec_nanos() as i32,
    }
}

fn sample(at: DateTime<Utc>, volume: &str, counter: pb::PerfCounter, value: f64) -> pb::PerfSample {
    pb::PerfSample {
        at: Some(timestamp(at)),
        volume: volume.to_owned(),
        counter: counter as i32,
        value,
    }
}

/// The proto's counters are coarser than the sampler's: read and write bytes are summed, latency
/// goes from milliseconds to seconds, and queue depth has no counter yet, so it is left out.
pub fn diskstats_to_pb(samples: &[PerfSample]) -> Vec<pb::PerfSample> {
    let mut out = Vec::new();
    let mut bytes: std::collections::BTreeMap<(DateTime<Utc>, &str), f64> = Default::default();
    for s in samples {
        let counter = match s.counter {
            Counter::ReadsPerSec => pb::PerfCounter::ReadsPerSecond,
            Counter::WritesPerSec => pb::PerfCounter::WritesPerSecond,
            Counter::TransfersPerSec => pb::PerfCounter::TransfersPerSecond,
            Counter::ReadBytesPerSec | Counter::WriteBytesPerSec => {
                *bytes.entry((s.at, s.device.as_str())).or_default() += s.value;
                continue;
            }
            Counter::AvgLatencyMs => {
                out.push(sample(
                    s.at,
                    &s.device,
                    pb::PerfCounter::LatencySeconds,
                    s.value / 1000.0,
                ));
                continue;
            }
            Counter::RedirectedReadsPerSec | Counter::RedirectedWritesPerSec => {
                pb::PerfCounter::RedirectedPerSecond
            }
            Counter::QueueDepth => continue,
        };
        out.push(sample(s.at, &s.device, counter, s.value));
    }
    for ((at, device), value) in bytes {
        out.push(sample(at, device, pb::PerfCounter::BytesPerSecond, value));
    }
    out
}

/// The driver's counters; the volume is named `NODE/VOLUME`, since every node sees every volume
/// (CSV) and the proto has no node field.
pub fn snapshot_to_pb(snapshot: &PerfSnapshot) -> Vec<pb::PerfSample> {
    let mut out = Vec::new();
    for c in &snapshot.counters {
        let volume = format!("{}/{}", c.node, c.volume);
        for (counter, value) in [
            (pb::PerfCounter::ReadsPerSecond, c.reads_per_sec),
            (pb::PerfCounter::WritesPerSecond, c.writes_per_sec),
            (pb::PerfCounter::TransfersPerSecond, c.transfers_per_sec),
            (pb::PerfCounter::BytesPerSecond, c.bytes_per_sec),
            (pb::PerfCounter::LatencySeconds, c.avg_latency_ms / 1000.0),
            (
                pb::PerfCounter::RedirectedPerSecond,
                c.redirected_reads_per_sec + c.redirected_writes_per_sec,
            ),
        ] {
            out.push(sample(snapshot.at, &volume, counter, value));
        }
    }
    out
}

/// Samples every `interval` until the agent's event queue closes (the agent stopped).
pub async fn perf_loop(
    interval: Duration,
    driver: Option<Arc<dyn ClusterDriver>>,
    events: mpsc::Sender<pb::AgentMessage>,
) {
    let mut diskstats = DiskstatsSampler::new();
    let mut tick = tokio::time::interval(interval.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut warned = false;
    loop {
        tick.tick().await;
        if events.is_closed() {
            return;
        }
        // Not every agent runs on Linux; the driver's counters are still worth sending.
        let mut samples = match diskstats.sample() {
            Ok(samples) => diskstats_to_pb(&samples),
            Err(e) => {
                if !warned {
                    tracing::debug!("no disk counters from this machine: {e}");
                    warned = true;
                }
                Vec::new()
            }
        };
        if let Some(driver) = &driver {
            match driver.perf_counters(Utc::now()).await {
                Ok(Some(snapshot)) => samples.extend(snapshot_to_pb(&snapshot)),
                Ok(None) => {}
                Err(e) => tracing::debug!("driver perf counters unavailable: {e}"),
            }
        }
        if samples.is_empty() {
            continue;
        }
        let batch = pb::AgentMessage {
            body: Some(AgentBody::Perf(pb::PerfBatch { samples })),
        };
        if let Err(TrySendError::Closed(_)) = events.try_send(batch) {
            return;
        }
    }
}

/// Queues an inventory report; dropped when the queue is full, like perf.
pub fn send_inventory(events: &mpsc::Sender<pb::AgentMessage>, inventory: InventoryDocument) {
    let _ = events.try_send(pb::AgentMessage {
        body: Some(AgentBody::Inventory(pb::InventoryReport {
            inventory: Some(inventory.into()),
        })),
    });
}
