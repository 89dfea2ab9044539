//! Perf counters, sources, series and the core's analysis answers <-> protobuf. The answers of
//! the service's own queries are converted beside the gRPC methods that serve them.

use super::{Bad, each};
use crate::pb;
use ferry_core::error::Result;
use ferry_core::perf::analysis::{Placement, RedirectedInterval};
use ferry_core::perf::query::StepPoint;
use ferry_core::perf::{Counter, SeriesKey, SeriesPoints, Source};

fn counter_from_pb(value: i32) -> Result<Counter, Bad> {
    use pb::PerfCounter as P;
    match P::try_from(value) {
        Ok(P::ReadsPerSecond) => Ok(Counter::ReadsPerSec),
        Ok(P::WritesPerSecond) => Ok(Counter::WritesPerSec),
        Ok(P::TransfersPerSecond) => Ok(Counter::TransfersPerSec),
        Ok(P::ReadBytesPerSecond) => Ok(Counter::ReadBytesPerSec),
        Ok(P::WriteBytesPerSecond) => Ok(Counter::WriteBytesPerSec),
        Ok(P::AvgLatencyMs) => Ok(Counter::AvgLatencyMs),
        Ok(P::QueueDepth) => Ok(Counter::QueueDepth),
        Ok(P::RedirectedReadsPerSecond) => Ok(Counter::RedirectedReadsPerSec),
        Ok(P::RedirectedWritesPerSecond) => Ok(Counter::RedirectedWritesPerSec),
        Ok(retired @ (P::BytesPerSecond | P::LatencySeconds | P::RedirectedPerSecond)) => {
            Err(Bad::new(format!(
                "{} belongs to the retired flat samples; series carry read and write bytes, \
                 AVG_LATENCY_MS and redirected reads and writes apart",
                retired.as_str_name()
            )))
        }
        Ok(P::Unspecified) => Err(Bad::new(
            "must be set: PERF_COUNTER_UNSPECIFIED is not a value",
        )),
        Err(_) => Err(Bad::new(format!("{value} is not a known PerfCounter"))),
    }
}

pub fn counter_to_pb(counter: Counter) -> pb::PerfCounter {
    match counter {
        Counter::ReadsPerSec => pb::PerfCounter::ReadsPerSecond,
        Counter::WritesPerSec => pb::PerfCounter::WritesPerSecond,
        Counter::TransfersPerSec => pb::PerfCounter::TransfersPerSecond,
        Counter::ReadBytesPerSec => pb::PerfCounter::ReadBytesPerSecond,
        Counter::WriteBytesPerSec => pb::PerfCounter::WriteBytesPerSecond,
        Counter::AvgLatencyMs => pb::PerfCounter::AvgLatencyMs,
        Counter::QueueDepth => pb::PerfCounter::QueueDepth,
        Counter::RedirectedReadsPerSec => pb::PerfCounter::RedirectedReadsPerSecond,
        Counter::RedirectedWritesPerSec => pb::PerfCounter::RedirectedWritesPerSecond,
    }
}

/// An optional filter: UNSPECIFIED matches any.
pub fn counter_filter(value: i32) -> Result<Option<Counter>> {
    if value == pb::PerfCounter::Unspecified as i32 {
        return Ok(None);
    }
    Ok(Some(
        counter_from_pb(value).map_err(|b| b.field("counter"))?,
    ))
}

fn source_from_pb(value: i32) -> Result<Source, Bad> {
    match pb::PerfSource::try_from(value) {
        Ok(pb::PerfSource::Node) => Ok(Source::Node),
        Ok(pb::PerfSource::Storage) => Ok(Source::Storage),
        Ok(pb::PerfSource::Csv) => Ok(Source::Csv),
        Ok(pb::PerfSource::Unspecified) => Err(Bad::new(
            "must be set: PERF_SOURCE_UNSPECIFIED is not a value",
        )),
        Err(_) => Err(Bad::new(format!("{value} is not a known PerfSource"))),
    }
}

pub fn source_to_pb(source: Source) -> pb::PerfSource {
    match source {
        Source::Node => pb::PerfSource::Node,
        Source::Storage => pb::PerfSource::Storage,
        Source::Csv => pb::PerfSource::Csv,
    }
}

pub fn source_filter(value: i32) -> Result<Option<Source>> {
    if value == pb::PerfSource::Unspecified as i32 {
        return Ok(None);
    }
    Ok(Some(source_from_pb(value).map_err(|b| b.field("source"))?))
}

/// Series off the wire; an empty node becomes `default_node` (an agent's own devices).
pub fn series(series: Vec<pb::PerfSeries>, default_node: &str) -> Result<Vec<SeriesPoints>> {
    Ok(each(series, |s| {
        Ok(SeriesPoints {
            key: SeriesKey {
                node: if s.node.is_empty() {
                    default_node.to_string()
                } else {
                    s.node
                },
                volume: s.volume,
                counter: counter_from_pb(s.counter).map_err(|b| b.field("counter"))?,
                source: source_from_pb(s.source).map_err(|b| b.field("source"))?,
            },
            at_ms: s.at_ms,
            values: s.values,
        })
    })
    .map_err(|b| b.field("series"))?)
}

pub fn step(p: StepPoint) -> pb::StepPoint {
    pb::StepPoint {
        at_ms: p.at_ms,
        mean: p.mean,
        min: p.min,
        max: p.max,
        count: p.count,
        p95: p.p95,
    }
}

pub fn redirected(i: RedirectedInterval) -> pb::RedirectedInterval {
    pb::RedirectedInterval {
        volume: i.volume,
        coordinator: i.coordinator,
        start_ms: i.start_ms,
        end_ms: i.end_ms,
        signal: i.evidence.signal,
        coordinator_share_pct: i.evidence.coordinator_share_pct,
        node_sum: i.evidence.node_sum,
        storage: i.evidence.storage,
        redirected: i.evidence.redirected,
        summary: i.evidence.summary,
    }
}

pub fn placement(p: Placement) -> pb::PlacementResponse {
    pb::PlacementResponse {
        assignments: p
            .assignments
            .into_iter()
            .map(|a| pb::PlacementAssignment {
                group: a.group,
                node: a.node,
                p95: a.p95,
            })
            .collect(),
        nodes: p
            .nodes
            .into_iter()
            .map(|n| pb::PlacementNode {
                node: n.node,
                capacity: n.capacity,
                baseline_p95: n.baseline_p95,
                limit: n.limit,
                placed: n.placed,
                planned: n.planned,
                headroom_pct: n.headroom_pct,
                groups: n.groups,
            })
            .collect(),
        unplaced: p
            .unplaced
            .into_iter()
            .map(|g| pb::GroupLoad {
                group: g.group,
                p95: g.p95,
            })
            .collect(),
        fits: p.fits,
        reasoning: p.reasoning,
    }
}
