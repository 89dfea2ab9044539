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

use crate::driver::{ClusterDriver, PerfSnapshot, PerfSource};
use crate::perf::{Counter, DiskstatsSampler, PerfSample};
use ferry_core::model::InventoryDocument;
use ferry_protocol::convert::perf::counter_to_pb;
use ferry_protocol::pb;
use ferry_protocol::pb::agent_message::Body as AgentBody;

/// How often `ferry agent` samples perf counters unless told otherwise.
pub const DEFAULT_PERF_INTERVAL: Duration = Duration::from_secs(10);

/// Appends one sample to its series in `out`, starting the series when new. Each sampling
/// round adds one point per series, so series stay few and their columns long.
fn push(
    out: &mut Vec<pb::PerfSeries>,
    node: &str,
    volume: &str,
    counter: pb::PerfCounter,
    source: pb::PerfSource,
    at: DateTime<Utc>,
    value: f64,
) {
    let found = out.iter_mut().find(|s| {
        s.counter == counter as i32
            && s.source == source as i32
            && s.volume == volume
            && s.node == node
    });
    let series = match found {
        Some(series) => series,
        None => {
            out.push(pb::PerfSeries {
                node: node.to_owned(),
                volume: volume.to_owned(),
                counter: counter as i32,
                source: source as i32,
                at_ms: Vec::new(),
                values: Vec::new(),
            });
            out.last_mut().expect("just pushed")
        }
    };
    series.at_ms.push(at.timestamp_millis());
    series.values.push(value);
}

/// The node's own devices. The node is left empty: the server fills in the agent's node, which
/// it knows better than the machine's host name.
pub fn diskstats_to_pb(samples: &[PerfSample]) -> Vec<pb::PerfSeries> {
    let mut out = Vec::new();
    for s in samples {
        push(
            &mut out,
            "",
            &s.device,
            counter_to_pb(s.counter),
            pb::PerfSource::Node,
            s.at,
            s.value,
        );
    }
    out
}

/// The driver's counters: each node's disk counters for every volume, its CSV redirected
/// counters, and the storage server's view.
pub fn snapshot_to_pb(snapshot: &PerfSnapshot) -> Vec<pb::PerfSeries> {
    let mut out = Vec::new();
    for c in &snapshot.counters {
        let source = match c.source {
            PerfSource::ClusterNode => pb::PerfSource::Node,
            PerfSource::StorageServer => pb::PerfSource::Storage,
        };
        for (counter, value) in [
            (Counter::ReadsPerSec, c.reads_per_sec),
            (Counter::WritesPerSec, c.writes_per_sec),
            (Counter::TransfersPerSec, c.transfers_per_sec),
            (Counter::ReadBytesPerSec, c.read_bytes_per_sec),
            (Counter::WriteBytesPerSec, c.write_bytes_per_sec),
            (Counter::AvgLatencyMs, c.avg_latency_ms),
            (Counter::QueueDepth, c.queue_depth),
        ] {
            push(
                &mut out,
                &c.node,
                &c.volume,
                counter_to_pb(counter),
                source,
                snapshot.at,
                value,
            );
        }
        if c.source == PerfSource::ClusterNode && c.csv {
            for (counter, value) in [
                (Counter::RedirectedReadsPerSec, c.redirected_reads_per_sec),
                (Counter::RedirectedWritesPerSec, c.redirected_writes_per_sec),
            ] {
                push(
                    &mut out,
                    &c.node,
                    &c.volume,
                    counter_to_pb(counter),
                    pb::PerfSource::Csv,
                    snapshot.at,
                    value,
                );
            }
        }
    }
    out
}

/// What this node's agent reports of a cluster-wide snapshot: its own node's counters, and the
/// storage server's when it is the first node of the snapshot. A driver like the simulator
/// sees the whole cluster from every node; sending all of it from every agent would report each
/// reading once per node. An agent whose node the snapshot does not name (a storage server's
/// own agent) reports everything.
pub fn own_counters(mut snapshot: PerfSnapshot, node: &str) -> PerfSnapshot {
    let mut nodes = snapshot
        .counters
        .iter()
        .filter(|c| c.source == PerfSource::ClusterNode)
        .map(|c| c.node.as_str());
    let reports_storage = nodes
        .next()
        .is_some_and(|first| first.eq_ignore_ascii_case(node));
    let named = reports_storage || nodes.any(|n| n.eq_ignore_ascii_case(node));
    if !named {
        return snapshot;
    }
    snapshot.counters.retain(|c| match c.source {
        PerfSource::ClusterNode => c.node.eq_ignore_ascii_case(node),
        PerfSource::StorageServer => reports_storage,
    });
    snapshot
}

/// Samples every `interval` until the agent's event queue closes (the agent stopped).
pub async fn perf_loop(
    interval: Duration,
    driver: Option<Arc<dyn ClusterDriver>>,
    events: mpsc::Sender<pb::AgentMessage>,
    node: String,
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
        let mut series = match diskstats.sample() {
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
                Ok(Some(snapshot)) => series.extend(snapshot_to_pb(&own_counters(snapshot, &node))),
                Ok(None) => {}
                Err(e) => tracing::debug!("driver perf counters unavailable: {e}"),
            }
        }
        if series.is_empty() {
            continue;
        }
        let batch = pb::AgentMessage {
            body: Some(AgentBody::Perf(pb::PerfBatch {
                samples: Vec::new(),
                series,
            })),
        };
        if let Err(TrySendError::Closed(_)) = events.try_send(batch) {
            return;
        }
    }
}

/// Queues an inventory report; dropped when the queue is full, like perf.
pub fn send_inventory(
    events: &mpsc::Sender<pb::AgentMessage>,
    inventory: InventoryDocument,
    cluster: Option<String>,
) {
    let _ = events.try_send(pb::AgentMessage {
        body: Some(AgentBody::Inventory(pb::InventoryReport {
            inventory: Some(inventory.into()),
            cluster: cluster.unwrap_or_default(),
        })),
    });
}
