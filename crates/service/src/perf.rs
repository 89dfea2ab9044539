//! Perf samples: ingest from the three paths (agent stream, REST, gRPC), the background
//! compactor, and the questions: per-node series, the cluster-wide view of a volume, top N,
//! redirected I/O and load balance. Ingest needs an operator (agents are trusted for their own
//! cluster); reading needs a viewer.
//!
//! A query first merges whatever batches of its cluster still wait for the compactor, so an
//! answer always includes every sample accepted before it was asked.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::Service;
use crate::auth::Caller;
use crate::periodic::Duty;
use ferry_core::error::{Error, Result};
use ferry_core::model::{FieldError, InventoryDocument, ResourceKind, Role};
use ferry_core::perf::analysis::{
    self, GroupDemand, NodeCapacity, NodeSteps, Placement, PlacementRequest, RedirectThresholds,
    RedirectedInterval, VolumeSteps,
};
use ferry_core::perf::query::{MAX_STEPS, MeanSteps, StepPoint, Steps, choose_resolution};
use ferry_core::perf::{
    Batch, Counter, RawChunk, Resolution, RollupChunk, SeriesKey, SeriesPoints, Source,
};
use ferry_store::perf::{CompactStats, LandedBatch, SeriesFilter, StoredChunk, StoredSeries};

/// Samples one compaction round merges at most, so a backlog is worked off in bounded
/// transactions that let ingest in between.
const COMPACT_ROUND_SAMPLES: usize = 500_000;

/// 9999-12-31T23:59:59.999Z: with times bounded by it, range arithmetic cannot overflow.
const MAX_TIME_MS: i64 = 253_402_300_799_999;

/// Points a series query may fold (series x steps), each with its full summary: the bound
/// keeps one request from asking the server for gigabytes.
pub const MAX_QUERY_POINTS: usize = 1_000_000;

/// Points a sum over series may fold (series x steps; a mean each): the day-long view of a
/// volume on 100 nodes is 144,000, top N of 1,000 series over a day 1.4 million.
pub const MAX_SUM_POINTS: usize = 5_000_000;

/// How often the background task applies retention.
const EXPIRE_EVERY: Duration = Duration::from_secs(60);

/// What one ingest call stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct IngestSummary {
    pub batches: u64,
    pub samples: u64,
}

/// A query's time range, in milliseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerfRange {
    pub from_ms: i64,
    pub to_ms: i64,
    pub step_ms: i64,
}

impl PerfRange {
    /// Defaults: `to` now, `from` an hour earlier, one-minute steps.
    pub fn new(from_ms: Option<i64>, to_ms: Option<i64>, step_ms: Option<i64>) -> Result<Self> {
        let to_ms = to_ms.unwrap_or_else(|| Utc::now().timestamp_millis());
        let from_ms = from_ms.unwrap_or(to_ms.saturating_sub(3_600_000));
        let step_ms = step_ms.unwrap_or(60_000);
        let mut errors = Vec::new();
        if step_ms < 1_000 {
            errors.push(FieldError::new("step", "must be at least one second"));
        } else if step_ms > MAX_TIME_MS {
            errors.push(FieldError::new("step", "is longer than any range"));
        }
        for (field, at) in [("from", from_ms), ("to", to_ms)] {
            if !(0..=MAX_TIME_MS).contains(&at) {
                errors.push(FieldError::new(
                    field,
                    "must be between 1970-01-01 and 9999-12-31",
                ));
            }
        }
        // Only with every value in bounds is the arithmetic below safe.
        if errors.is_empty() {
            if from_ms >= to_ms {
                errors.push(FieldError::new("from", "must be before `to`"));
            } else if (to_ms - from_ms) / step_ms > MAX_STEPS {
                errors.push(FieldError::new(
                    "step",
                    format!(
                        "gives more than {MAX_STEPS} steps over the range; choose a wider step"
                    ),
                ));
            }
        }
        if errors.is_empty() {
            Ok(Self {
                from_ms,
                to_ms,
                step_ms,
            })
        } else {
            Err(Error::validation(errors))
        }
    }

    fn steps(&self) -> usize {
        ((self.to_ms - self.from_ms) / self.step_ms + 1) as usize
    }

    /// Refuses a query of `series` series whose steps would exceed `max_points`.
    fn check_points(&self, series: usize, max_points: usize) -> Result<()> {
        let points = series.saturating_mul(self.steps());
        if points > max_points {
            return Err(Error::invalid_field(
                "step",
                format!(
                    "{series} series x {} steps is more than {max_points} points; \
                     choose a wider step, a shorter range or fewer series",
                    self.steps()
                ),
            ));
        }
        Ok(())
    }
}

/// One series over the range.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SeriesSteps {
    pub node: String,
    pub volume: String,
    pub counter: Counter,
    pub source: Source,
    /// Steps with no sample are left out.
    pub points: Vec<StepPoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SeriesResult {
    /// The stored resolution the steps were computed from: `raw`, `1m` or `1h`.
    pub resolution: String,
    pub step_ms: i64,
    pub series: Vec<SeriesSteps>,
}

/// Which series to read; names compare case-insensitively.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeriesQuery {
    pub node: Option<String>,
    pub volume: Option<String>,
    pub counter: Option<Counter>,
    pub source: Option<Source>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct NodeShare {
    pub node: String,
    /// Mean over the range.
    pub mean: f64,
    /// Percent of the node sum's mean.
    pub share_pct: f64,
}

/// The steps of a volume view as columns, each holding one entry per step: the shape a chart
/// plots without reshaping, and a fraction of the bytes of one object per step (a day at
/// 1-minute steps over 100 nodes is 144,000 values).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct VolumeColumns {
    /// Each step's start, in milliseconds since the epoch.
    pub at_ms: Vec<i64>,
    /// One column per node, aligned with `VolumeView.nodes`: the node's value in each step,
    /// null where it sent no sample. A node's share of a step is its value over `node_sum`.
    #[serde(serialize_with = "significant::columns")]
    #[schema(value_type = Vec<Vec<Option<f64>>>)]
    pub values: Vec<Vec<Option<f64>>>,
    /// The sum over the nodes that sent a sample in the step.
    #[serde(serialize_with = "significant::column")]
    pub node_sum: Vec<Option<f64>>,
    /// What the storage server saw of the volume.
    #[serde(serialize_with = "significant::column")]
    pub storage: Vec<Option<f64>>,
    /// `(storage - node_sum) / storage`, in percent: I/O the nodes' counters do not show.
    #[serde(serialize_with = "significant::column")]
    pub gap_pct: Vec<Option<f64>>,
}

impl VolumeView {
    /// The view as JSON, the same as `serde_json` writes it but faster: its rounded step values
    /// are written from their digits (see [`significant::Decimals`]).
    pub fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        let mut body = Vec::with_capacity(self.json_capacity());
        let mut serializer =
            serde_json::Serializer::with_formatter(&mut body, significant::Decimals);
        self.serialize(&mut serializer)?;
        Ok(body)
    }

    /// About the bytes of this view as JSON: a day of 1-minute steps over 100 nodes is a
    /// megabyte, better written into a buffer of that size than one doubled twenty times.
    fn json_capacity(&self) -> usize {
        let values = self.steps.len() * (self.nodes.len() + 3);
        1024 + values * 9 + self.steps.len() * 14 + self.nodes.len() * 128
    }
}

impl VolumeColumns {
    pub fn len(&self) -> usize {
        self.at_ms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.at_ms.is_empty()
    }
}

/// Step values go out with six significant digits: a counter's mean of several samples prints
/// sixteen or seventeen, which no chart or table shows and which made up most of the bytes.
mod significant {
    use serde::ser::{SerializeSeq, Serializer};

    const DIGITS: i32 = 6;
    const POW10: [f64; 23] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
        1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ];

    /// `value` rounded to [`DIGITS`] significant digits: the double nearest that decimal, which
    /// prints with at most that many. Outside 1e-6..1e15 (never a perf counter) it is left as
    /// is. Per value this runs 144,000 times for a day's view, so the decimal exponent comes
    /// from the binary one and the rounding from an integer conversion: `log10`, `powi` and
    /// `round` made rounding cost more than printing.
    pub(crate) fn round(value: f64) -> f64 {
        let magnitude = value.abs();
        if !(1e-6..1e15).contains(&magnitude) {
            return value;
        }
        // Scaling by an exact power of ten and back keeps the result the double nearest the
        // rounded decimal; the scaled value is under 10^DIGITS, so it fits an integer.
        let shift = DIGITS - 1 - decimal_exponent(magnitude);
        let half = 0.5f64.copysign(value);
        if shift >= 0 {
            let scale = POW10[shift as usize];
            ((value * scale + half) as i64) as f64 / scale
        } else {
            let scale = POW10[(-shift) as usize];
            ((value / scale + half) as i64) as f64 * scale
        }
    }

    /// floor(log10(magnitude)) for a magnitude in 1e-6..1e15, from the binary exponent: it is
    /// floor(binary * log10(2)) or one more; 78913 / 2^18 is log10(2) to within 1e-7.
    fn decimal_exponent(magnitude: f64) -> i32 {
        let binary = ((magnitude.to_bits() >> 52) & 0x7ff) as i32 - 1023;
        let exponent = (binary * 78_913) >> 18;
        let next = exponent + 1;
        let reaches_next = if next >= 0 {
            magnitude >= POW10[next as usize]
        } else {
            magnitude * POW10[(-next) as usize] >= 1.0
        };
        if reaches_next { next } else { exponent }
    }

    /// A JSON formatter that writes a double which is exactly a decimal of at most
    /// [`DIGITS`] significant digits (what [`round`] returns) from those digits, through integer
    /// printing. `serde_json` asks for the shortest digits of every double, a search that takes
    /// longest for short numbers: writing a day's rounded view cost twice as much as writing
    /// its full-precision values. Any other double is written as `serde_json` writes it.
    pub(crate) struct Decimals;

    impl serde_json::ser::Formatter for Decimals {
        fn write_f64<W: ?Sized + std::io::Write>(
            &mut self,
            writer: &mut W,
            value: f64,
        ) -> std::io::Result<()> {
            let mut text = [0u8; 32];
            match decimal(value, &mut text) {
                Some(start) => writer.write_all(&text[start..]),
                None => serde_json::ser::CompactFormatter.write_f64(writer, value),
            }
        }
    }

    /// Writes `value` at the end of `out` as the decimal of at most [`DIGITS`] digits it is the
    /// nearest double of, and returns where it starts; `None` when it is not one.
    fn decimal(value: f64, out: &mut [u8; 32]) -> Option<usize> {
        let magnitude = value.abs();
        if !(1e-6..1e15).contains(&magnitude) {
            return None;
        }
        let mut shift = DIGITS - 1 - decimal_exponent(magnitude);
        // The digits as an integer, accepted only when they give back this very double: the
        // decimal `mantissa * 10^-shift` then reads back as `value`, as the nearest double of
        // an exact quotient or product of exact operands.
        let mut mantissa = if shift >= 0 {
            let scale = POW10[shift as usize];
            let mantissa = (magnitude * scale + 0.5) as u64;
            (mantissa as f64 / scale == magnitude).then_some(mantissa)?
        } else {
            let scale = POW10[(-shift) as usize];
            let mantissa = (magnitude / scale + 0.5) as u64;
            (mantissa as f64 * scale == magnitude).then_some(mantissa)?
        };
        // Not zero: the magnitude is at least 1e-6.
        while mantissa % 10 == 0 {
            mantissa /= 10;
            shift -= 1;
        }
        // Written from the last byte back: the zeros a negative shift stands for, the digits
        // with the point `shift` digits from the right, then what goes before them.
        let mut at = out.len();
        let mut put = |byte: u8| {
            at -= 1;
            out[at] = byte;
        };
        for _ in shift..0 {
            put(b'0');
        }
        let mut written = 0;
        loop {
            if shift > 0 && written == shift {
                put(b'.');
            }
            put(b'0' + (mantissa % 10) as u8);
            mantissa /= 10;
            written += 1;
            if mantissa == 0 {
                break;
            }
        }
        if written <= shift {
            for _ in written..shift {
                put(b'0');
            }
            put(b'.');
            put(b'0');
        }
        if value < 0.0 {
            put(b'-');
        }
        Some(at)
    }

    pub(crate) fn column<S: Serializer>(values: &[Option<f64>], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(values.len()))?;
        for value in values {
            seq.serialize_element(&value.map(round))?;
        }
        seq.end()
    }

    pub(crate) fn columns<S: Serializer>(
        columns: &[Vec<Option<f64>>],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        struct Column<'a>(&'a [Option<f64>]);
        impl serde::Serialize for Column<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                column(self.0, s)
            }
        }
        let mut seq = s.serialize_seq(Some(columns.len()))?;
        for values in columns {
            seq.serialize_element(&Column(values))?;
        }
        seq.end()
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn text(value: f64) -> String {
            serde_json::to_string(&round(value)).unwrap()
        }

        #[test]
        fn six_significant_digits() {
            for (value, expected) in [
                (1000.0 / 3.0, "333.333"),
                (2e6 / 3.0, "666667.0"),
                (867.0, "867.0"),
                (1505.25, "1505.25"),
                (99.966_666_666, "99.9667"),
                (999_999.7, "1000000.0"),
                (0.000_123_456_78, "0.000123457"),
                (0.5, "0.5"),
                (-5.116_279, "-5.11628"),
                (12_345_678_901.0, "12345700000.0"),
                (0.0, "0.0"),
                (1000.0, "1000.0"),
                (0.001, "0.001"),
                (9.999_995, "10.0"),
                (123_456.5, "123457.0"),
                (-0.099_999_96, "-0.1"),
            ] {
                assert_eq!(text(value), expected, "{value}");
            }
        }

        fn written(value: f64) -> String {
            let mut out = Vec::new();
            let mut serializer = serde_json::Serializer::with_formatter(&mut out, Decimals);
            serde::Serialize::serialize(&value, &mut serializer).unwrap();
            String::from_utf8(out).unwrap()
        }

        #[test]
        fn rounded_values_are_written_from_their_digits() {
            for (value, expected) in [
                (1000.0 / 3.0, "333.333"),
                (2e6 / 3.0, "666667"),
                (867.0, "867"),
                (1505.25, "1505.25"),
                (0.000_123_456_78, "0.000123457"),
                (0.5, "0.5"),
                (-5.116_279, "-5.11628"),
                (12_345_678_901.0, "12345700000"),
                (1000.0, "1000"),
                (0.001, "0.001"),
                (-0.099_999_96, "-0.1"),
                (1.5e-6, "0.0000015"),
            ] {
                assert_eq!(written(round(value)), expected, "{value}");
            }
        }

        #[test]
        fn every_double_is_written_as_the_same_double() {
            let mut x: f64 = 1.234_567_890_123e-8;
            while x < 1e17 {
                for value in [x, -x, x * 9.999_99, x * std::f64::consts::PI, x.floor()] {
                    for value in [value, round(value)] {
                        let text = written(value);
                        assert_eq!(text.parse::<f64>().unwrap(), value, "{value} as {text}");
                        if round(value) != value {
                            // Not a short decimal: written as serde_json writes it.
                            assert_eq!(text, serde_json::to_string(&value).unwrap());
                        }
                    }
                }
                x *= 1.37;
            }
            for value in [0.0, -0.0, f64::MIN_POSITIVE, 1e300] {
                assert_eq!(written(value), serde_json::to_string(&value).unwrap());
            }
        }

        #[test]
        fn every_rounded_value_is_within_half_a_unit_of_the_sixth_digit() {
            let mut x: f64 = 1.234_567_890_123e-6;
            while x < 1e15 {
                for value in [x, -x, x * 9.999_99, x * std::f64::consts::PI] {
                    if !(1e-6..1e15).contains(&value.abs()) {
                        continue;
                    }
                    let written = text(value);
                    let read: f64 = written.parse().unwrap();
                    let unit = 10f64.powi(value.abs().log10().floor() as i32 - (DIGITS - 1));
                    assert!(
                        (read - value).abs() <= unit * 0.5000001,
                        "{value} written as {written}"
                    );
                    // Small and large numbers print with an exponent; its mantissa counts.
                    let mantissa = written.split(['e', 'E']).next().unwrap();
                    let significant = mantissa
                        .trim_end_matches(".0")
                        .trim_start_matches(['-', '0', '.'])
                        .replace('.', "");
                    assert!(
                        significant.trim_end_matches('0').len() <= DIGITS as usize,
                        "{value} written as {written}"
                    );
                }
                x *= 1.37;
            }
        }
    }
}

/// The cluster-wide view of one volume: the sum of every node's I/O against it, each node's
/// share, and the storage server's view against the sum.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct VolumeView {
    pub volume: String,
    pub counter: Counter,
    pub resolution: String,
    pub step_ms: i64,
    pub nodes: Vec<String>,
    pub steps: VolumeColumns,
    /// Each node's mean over the range and its share of the node sum.
    pub shares: Vec<NodeShare>,
    /// Means over the steps that have them.
    pub node_sum: Option<f64>,
    pub storage: Option<f64>,
    pub gap_pct: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum TopBy {
    #[default]
    Volume,
    Node,
}

/// Totals over the perf compactions of this server, for the benchmarks: merging landed batches
/// re-encodes every open chunk of each series they touch, work that grows with the series and
/// the time, not with anything else the server does.
#[derive(Debug, Default)]
pub struct CompactionTotals {
    /// Time spent compacting, the database's statements included.
    pub busy_nanos: std::sync::atomic::AtomicU64,
}

impl CompactionTotals {
    fn add(&self, busy: std::time::Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        self.busy_nanos
            .fetch_add(u64::try_from(busy.as_nanos()).unwrap_or(u64::MAX), Relaxed);
    }
}

/// One volume (summed over its nodes) or one node (summed over its volumes).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TopEntry {
    pub name: String,
    /// Mean of the summed rate over the range.
    pub mean: f64,
    /// Nearest-rank 95th percentile of the summed rate over the steps.
    pub p95: f64,
    /// The highest step.
    pub peak: f64,
}

/// A placement question: where the source cluster's groups would go on the target's nodes.
#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlacementQuery {
    /// Cluster (id or name) whose groups move; their load is measured there.
    pub source_cluster: String,
    /// Cluster (id or name) whose nodes receive them; their own load is measured there.
    pub target_cluster: String,
    /// Range the p95 baselines are taken over (default: the last 24 hours), milliseconds since
    /// the epoch.
    #[serde(default)]
    pub from_ms: Option<i64>,
    #[serde(default)]
    pub to_ms: Option<i64>,
    /// Transfers per second a target node can carry, unless `capacities` names it.
    #[schema(exclusive_minimum = 0)]
    pub capacity: f64,
    /// Per-node capacity, by node name.
    #[serde(default)]
    pub capacities: BTreeMap<String, f64>,
    /// Percent of capacity every node must keep free (default 20).
    #[serde(default = "default_headroom")]
    #[schema(minimum = 0, maximum = 100)]
    pub headroom_pct: f64,
    /// The groups to place (default: every group of the source's latest inventory).
    #[serde(default)]
    pub groups: Vec<String>,
}

/// Percent of capacity a placement keeps free on every node unless told otherwise.
pub const DEFAULT_HEADROOM_PCT: f64 = 20.0;

fn default_headroom() -> f64 {
    DEFAULT_HEADROOM_PCT
}

fn eq_name(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// A group's volumes as perf names them: its disks' drive letters (`F:`) and CSV volumes are
/// reported by their mount path, which starts with the same letter.
fn volume_of_letter(volume: &str, letter: &str) -> bool {
    // Bytes, not a str slice: the cut may fall inside a character of another volume's name.
    volume
        .as_bytes()
        .get(..letter.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(letter.as_bytes()))
}

fn mean(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values
        .into_iter()
        .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

fn gap_pct(storage: Option<f64>, node_sum: Option<f64>) -> Option<f64> {
    match (storage, node_sum) {
        (Some(s), Some(n)) if s > 0.0 => Some((s - n) / s * 100.0),
        _ => None,
    }
}

impl Service {
    /// Ingest for a caller (REST, gRPC): an operator's act, not audited per batch (perf is
    /// telemetry; the metrics count it).
    pub async fn ingest_perf(
        &self,
        caller: &Caller,
        cluster: &str,
        series: Vec<SeriesPoints>,
    ) -> Result<IngestSummary> {
        let cluster_id = self.perf_ingest_cluster(caller, cluster).await?;
        self.ingest_perf_for(cluster_id, series).await
    }

    /// The cluster a caller may ingest for: checks the role and finds it by id or name.
    pub async fn perf_ingest_cluster(&self, caller: &Caller, cluster: &str) -> Result<Uuid> {
        Self::require(caller, Role::Operator)?;
        Ok(self.store.get_cluster(cluster).await?.id)
    }

    /// Validates the batch whole and lands it as one row.
    pub async fn ingest_perf_for(
        &self,
        cluster_id: Uuid,
        series: Vec<SeriesPoints>,
    ) -> Result<IngestSummary> {
        let batch = Batch::new(series, Utc::now())?;
        let (first_ms, last_ms) = batch.span_ms();
        let samples = batch.samples();
        let data = batch.encode();
        self.store
            .land_perf(LandedBatch {
                cluster_id,
                first_ms,
                last_ms,
                samples,
                data: &data,
            })
            .await?;
        Ok(IngestSummary {
            batches: 1,
            samples: samples as u64,
        })
    }

    /// Merges every landed batch into chunks, in bounded rounds.
    pub async fn compact_perf(&self) -> Result<CompactStats> {
        self.compact(None).await
    }

    /// Merges the landed batches of `cluster_id` (`None`: of every cluster) into chunks.
    async fn compact(&self, cluster_id: Option<Uuid>) -> Result<CompactStats> {
        let _one_at_a_time = self.perf_compacting.lock().await;
        let started = std::time::Instant::now();
        let result = self.compact_rounds(cluster_id).await;
        self.compaction_totals.add(started.elapsed());
        result
    }

    async fn compact_rounds(&self, cluster_id: Option<Uuid>) -> Result<CompactStats> {
        let mut total = CompactStats::default();
        loop {
            let now = Utc::now().timestamp_millis();
            let round = self
                .store
                .compact_perf(cluster_id, now, &self.perf.retention, COMPACT_ROUND_SAMPLES)
                .await?;
            total.batches += round.batches;
            total.samples += round.samples;
            total.expired += round.expired;
            total.chunks_written += round.chunks_written;
            if !round.more {
                return Ok(total);
            }
        }
    }

    /// Brings the cluster's chunks up to every batch accepted so far, so an answer includes
    /// them; the other clusters' batches wait for the compactor.
    async fn settle_perf(&self, cluster_id: Uuid) -> Result<()> {
        if self.store.perf_pending(Some(cluster_id)).await? {
            self.compact(Some(cluster_id)).await?;
        }
        Ok(())
    }

    /// Reads `series` over `range` into steps, from the resolution the range and step allow.
    /// The chunks of `series` over `range`, at the resolution the range and step allow.
    /// Refused when the series times the steps exceed `max_points`.
    async fn read_chunks(
        &self,
        series: &[StoredSeries],
        range: PerfRange,
        max_points: usize,
    ) -> Result<(Resolution, Vec<StoredChunk>)> {
        range.check_points(series.len(), max_points)?;
        let now = Utc::now().timestamp_millis();
        let resolution = choose_resolution(range.from_ms, range.step_ms, now, &self.perf.retention);
        let ids: Vec<i64> = series.iter().map(|s| s.id).collect();
        let chunks = self
            .store
            .perf_chunks(&ids, resolution, range.from_ms, range.to_ms)
            .await?;
        Ok((resolution, chunks))
    }

    /// Reads `series` over `range` into steps, from the resolution the range and step allow.
    /// Series without data in the range are absent from the answer.
    async fn read_steps(
        &self,
        series: &[StoredSeries],
        range: PerfRange,
    ) -> Result<(Resolution, HashMap<i64, Vec<Option<StepPoint>>>)> {
        let (resolution, chunks) = self.read_chunks(series, range, MAX_QUERY_POINTS).await?;
        let mut steps: HashMap<i64, Steps> = HashMap::new();
        for chunk in chunks {
            let acc = steps
                .entry(chunk.series_id)
                .or_insert_with(|| Steps::new(range.from_ms, range.to_ms, range.step_ms));
            match resolution {
                Resolution::Raw => acc.add_raw(&RawChunk::decode(&chunk.data).map_err(damaged)?),
                _ => acc.add_rollup(&RollupChunk::decode(&chunk.data).map_err(damaged)?.points),
            }
        }
        Ok((
            resolution,
            steps.into_iter().map(|(id, s)| (id, s.finish())).collect(),
        ))
    }

    /// Each series' mean per step over `range`: what the sums over nodes and volumes need.
    /// Series without data in the range are absent from the answer.
    async fn read_means(
        &self,
        series: &[StoredSeries],
        range: PerfRange,
    ) -> Result<(Resolution, HashMap<i64, Vec<Option<f64>>>)> {
        let (resolution, chunks) = self.read_chunks(series, range, MAX_SUM_POINTS).await?;
        let mut steps: HashMap<i64, MeanSteps> = HashMap::new();
        for chunk in chunks {
            let acc = steps
                .entry(chunk.series_id)
                .or_insert_with(|| MeanSteps::new(range.from_ms, range.to_ms, range.step_ms));
            if resolution == Resolution::Raw {
                acc.add_raw(&RawChunk::decode(&chunk.data).map_err(damaged)?);
            } else {
                acc.add_means(&RollupChunk::decode_means(&chunk.data).map_err(damaged)?);
            }
        }
        Ok((
            resolution,
            steps.into_iter().map(|(id, s)| (id, s.finish())).collect(),
        ))
    }

    async fn perf_cluster(&self, caller: &Caller, cluster: &str) -> Result<Uuid> {
        Self::require(caller, Role::Viewer)?;
        let cluster = self.store.get_cluster(cluster).await?;
        self.settle_perf(cluster.id).await?;
        Ok(cluster.id)
    }

    /// Per-node series of a cluster.
    pub async fn perf_series(
        &self,
        caller: &Caller,
        cluster: &str,
        query: &SeriesQuery,
        range: PerfRange,
    ) -> Result<SeriesResult> {
        let cluster_id = self.perf_cluster(caller, cluster).await?;
        let filter = SeriesFilter {
            counter: query.counter,
            source: query.source,
            volume: query.volume.clone(),
        };
        let mut series = self.store.perf_series(cluster_id, &filter).await?;
        series.retain(|s| {
            query
                .node
                .as_deref()
                .is_none_or(|n| eq_name(n, &s.key.node))
                && query
                    .volume
                    .as_deref()
                    .is_none_or(|v| eq_name(v, &s.key.volume))
        });
        let (resolution, mut steps) = self.read_steps(&series, range).await?;
        Ok(SeriesResult {
            resolution: resolution.as_str().to_string(),
            step_ms: range.step_ms,
            series: series
                .into_iter()
                .map(|s| SeriesSteps {
                    points: steps
                        .remove(&s.id)
                        .unwrap_or_default()
                        .into_iter()
                        .flatten()
                        .collect(),
                    node: s.key.node,
                    volume: s.key.volume,
                    counter: s.key.counter,
                    source: s.key.source,
                })
                .collect(),
        })
    }

    /// The cluster-wide view of one volume.
    pub async fn perf_volume(
        &self,
        caller: &Caller,
        cluster: &str,
        volume: &str,
        counter: Counter,
        range: PerfRange,
    ) -> Result<VolumeView> {
        let cluster_id = self.perf_cluster(caller, cluster).await?;
        let filter = SeriesFilter {
            counter: Some(counter),
            source: None,
            volume: Some(volume.to_string()),
        };
        let mut series = self.store.perf_series(cluster_id, &filter).await?;
        series.retain(|s| eq_name(&s.key.volume, volume) && s.key.source != Source::Csv);
        if series.is_empty() {
            return Err(Error::not_found(format!(
                "no {counter} samples for volume `{volume}` on cluster `{cluster}`"
            )));
        }
        let (resolution, mut steps) = self.read_means(&series, range).await?;
        let times = Steps::new(range.from_ms, range.to_ms, range.step_ms).times();
        let mut nodes: Vec<(String, Vec<Option<f64>>)> = Vec::new();
        let mut storage: Vec<Option<f64>> = vec![None; times.len()];
        for s in &series {
            let mut means = means(&mut steps, s.id);
            // A series without data in the range still gets its full column, of gaps.
            means.resize(times.len(), None);
            match s.key.source {
                // Several storage servers behind one volume name add up.
                Source::Storage => add_into(&mut storage, &means),
                _ => nodes.push((s.key.node.clone(), means)),
            }
        }
        let node_sum: Vec<Option<f64>> = (0..times.len())
            .map(|i| nodes.iter().filter_map(|(_, v)| v[i]).reduce(|a, b| a + b))
            .collect();
        let gap: Vec<Option<f64>> = storage
            .iter()
            .zip(&node_sum)
            .map(|(&storage, &sum)| gap_pct(storage, sum))
            .collect();
        let node_means: Vec<f64> = nodes
            .iter()
            .map(|(_, v)| mean(v.iter().flatten().copied()).unwrap_or(0.0))
            .collect();
        let total: f64 = node_means.iter().sum();
        let shares = nodes
            .iter()
            .zip(&node_means)
            .map(|((node, _), &m)| NodeShare {
                node: node.clone(),
                mean: m,
                share_pct: if total > 0.0 { m / total * 100.0 } else { 0.0 },
            })
            .collect();
        let node_sum_mean = mean(node_sum.iter().flatten().copied());
        let storage_mean = mean(storage.iter().flatten().copied());
        let (nodes, values): (Vec<String>, Vec<Vec<Option<f64>>>) = nodes.into_iter().unzip();
        Ok(VolumeView {
            volume: series[0].key.volume.clone(),
            counter,
            resolution: resolution.as_str().to_string(),
            step_ms: range.step_ms,
            nodes,
            steps: VolumeColumns {
                at_ms: times,
                values,
                node_sum,
                storage,
                gap_pct: gap,
            },
            shares,
            node_sum: node_sum_mean,
            storage: storage_mean,
            gap_pct: gap_pct(storage_mean, node_sum_mean),
        })
    }

    /// The busiest volumes (summed over nodes) or nodes (summed over volumes), by mean.
    pub async fn perf_top(
        &self,
        caller: &Caller,
        cluster: &str,
        by: TopBy,
        counter: Counter,
        limit: usize,
        range: PerfRange,
    ) -> Result<Vec<TopEntry>> {
        let cluster_id = self.perf_cluster(caller, cluster).await?;
        let filter = SeriesFilter {
            counter: Some(counter),
            source: Some(Source::Node),
            volume: None,
        };
        let series = self.store.perf_series(cluster_id, &filter).await?;
        let (_, mut steps) = self.read_means(&series, range).await?;
        let mut sums: BTreeMap<String, (String, Vec<Option<f64>>)> = BTreeMap::new();
        for s in &series {
            let name = match by {
                TopBy::Volume => &s.key.volume,
                TopBy::Node => &s.key.node,
            };
            let entry = sums
                .entry(name.to_lowercase())
                .or_insert_with(|| (name.clone(), Vec::new()));
            let values = means(&mut steps, s.id);
            if entry.1.len() < values.len() {
                entry.1.resize(values.len(), None);
            }
            add_into(&mut entry.1, &values);
        }
        let mut entries: Vec<TopEntry> = sums
            .into_values()
            .filter_map(|(name, values)| {
                let values: Vec<f64> = values.into_iter().flatten().collect();
                Some(TopEntry {
                    name,
                    mean: mean(values.iter().copied())?,
                    p95: analysis::p95(&values)?,
                    peak: values.iter().copied().fold(f64::MIN, f64::max),
                })
            })
            .collect();
        entries.sort_by(|a, b| b.mean.total_cmp(&a.mean).then_with(|| a.name.cmp(&b.name)));
        entries.truncate(limit);
        Ok(entries)
    }

    /// Intervals in which a volume's I/O was funnelled through one node.
    pub async fn perf_redirected(
        &self,
        caller: &Caller,
        cluster: &str,
        volume: Option<&str>,
        range: PerfRange,
    ) -> Result<Vec<RedirectedInterval>> {
        let cluster_id = self.perf_cluster(caller, cluster).await?;
        let mut series = self
            .store
            .perf_series(
                cluster_id,
                &SeriesFilter {
                    volume: volume.map(str::to_string),
                    ..Default::default()
                },
            )
            .await?;
        series.retain(|s| {
            matches!(
                (s.key.source, s.key.counter),
                (Source::Node | Source::Storage, Counter::TransfersPerSec)
                    | (
                        Source::Csv | Source::Node,
                        Counter::RedirectedReadsPerSec | Counter::RedirectedWritesPerSec
                    )
            ) && volume.is_none_or(|v| eq_name(v, &s.key.volume))
        });
        let (_, mut steps) = self.read_means(&series, range).await?;
        let times = Steps::new(range.from_ms, range.to_ms, range.step_ms).times();
        let n = times.len();
        let mut volumes: BTreeMap<String, VolumeSteps> = BTreeMap::new();
        for s in &series {
            let values = means(&mut steps, s.id);
            let v = volumes
                .entry(s.key.volume.to_lowercase())
                .or_insert_with(|| VolumeSteps {
                    volume: s.key.volume.clone(),
                    step_ms: range.step_ms,
                    times: times.clone(),
                    nodes: Vec::new(),
                    storage: None,
                });
            if s.key.source == Source::Storage {
                let storage = v.storage.get_or_insert_with(|| vec![None; n]);
                add_into(storage, &values);
                continue;
            }
            let node = match v.nodes.iter().position(|x| eq_name(&x.node, &s.key.node)) {
                Some(i) => &mut v.nodes[i],
                None => {
                    v.nodes.push(NodeSteps {
                        node: s.key.node.clone(),
                        transfers: vec![None; n],
                        redirected: vec![None; n],
                    });
                    v.nodes.last_mut().expect("just pushed")
                }
            };
            if s.key.counter == Counter::TransfersPerSec {
                add_into(&mut node.transfers, &values);
            } else {
                add_into(&mut node.redirected, &values);
            }
        }
        let thresholds = RedirectThresholds::default();
        Ok(volumes
            .values()
            .flat_map(|v| analysis::find_redirected(v, &thresholds))
            .collect())
    }

    /// Where the source cluster's groups would go on the target's nodes, each node kept under
    /// its headroom, from p95 baselines over the range.
    pub async fn perf_placement(
        &self,
        caller: &Caller,
        query: &PlacementQuery,
    ) -> Result<Placement> {
        Self::require(caller, Role::Viewer)?;
        let mut errors = Vec::new();
        if !(query.capacity.is_finite() && query.capacity > 0.0) {
            errors.push(FieldError::new("capacity", "must be a positive number"));
        }
        for (node, c) in &query.capacities {
            if !(c.is_finite() && *c >= 0.0) {
                errors.push(FieldError::new(
                    format!("capacities.{node}"),
                    "must be a non-negative number",
                ));
            }
        }
        if !(0.0..=100.0).contains(&query.headroom_pct) {
            errors.push(FieldError::new(
                "headroom_pct",
                "must be a percentage, 0 to 100",
            ));
        }
        if !errors.is_empty() {
            return Err(Error::validation(errors));
        }
        let to_ms = query.to_ms.unwrap_or_else(|| Utc::now().timestamp_millis());
        let range = PerfRange::new(
            Some(query.from_ms.unwrap_or(to_ms.saturating_sub(86_400_000))),
            Some(to_ms),
            Some(60_000),
        )?;
        let source = self.store.get_cluster(&query.source_cluster).await?;
        let target = self.store.get_cluster(&query.target_cluster).await?;
        self.settle_perf(source.id).await?;
        self.settle_perf(target.id).await?;

        let source_inventory = self.latest_inventory(&source).await?;
        let target_inventory = self.latest_inventory(&target).await?;
        let Some(target_inventory) = target_inventory else {
            return Err(Error::precondition_failed(format!(
                "cluster `{}` has no inventory yet: its nodes are unknown",
                target.name
            )));
        };
        let transfers = SeriesFilter {
            counter: Some(Counter::TransfersPerSec),
            source: Some(Source::Node),
            volume: None,
        };

        // The target's nodes: what each already carries, summed over its volumes, per step.
        let target_series = self.store.perf_series(target.id, &transfers).await?;
        let (_, mut target_steps) = self.read_means(&target_series, range).await?;
        let nodes = target_inventory
            .nodes
            .iter()
            .map(|node| {
                let values = summed(
                    target_series
                        .iter()
                        .filter(|s| eq_name(&s.key.node, &node.name)),
                    &mut target_steps,
                );
                NodeCapacity {
                    node: node.name.clone(),
                    baseline_p95: analysis::p95(&values).unwrap_or(0.0),
                    capacity: query
                        .capacities
                        .iter()
                        .find(|(n, _)| eq_name(n, &node.name))
                        .map_or(query.capacity, |(_, c)| *c),
                }
            })
            .collect();

        // The groups: each one's load is the I/O on its disks' volumes on the source, all nodes.
        let source_series = self.store.perf_series(source.id, &transfers).await?;
        let (_, mut source_steps) = self.read_means(&source_series, range).await?;
        let mut groups = Vec::new();
        let inventory = source_inventory.unwrap_or_default();
        for name in &query.groups {
            if !inventory.groups.iter().any(|g| eq_name(&g.name, name)) {
                return Err(Error::invalid_field(
                    "groups",
                    format!("cluster `{}` has no group `{name}`", source.name),
                ));
            }
        }
        for group in inventory
            .groups
            .iter()
            .filter(|g| query.groups.is_empty() || query.groups.iter().any(|n| eq_name(n, &g.name)))
        {
            let letters: Vec<&str> = group
                .resources
                .iter()
                .filter(|r| r.kind == ResourceKind::PhysicalDisk)
                .filter_map(|r| {
                    inventory
                        .disks
                        .iter()
                        .find(|d| eq_name(&d.resource, &r.name))
                })
                .filter_map(|d| d.drive_letter.as_deref())
                .collect();
            let values = summed(
                source_series
                    .iter()
                    .filter(|s| letters.iter().any(|l| volume_of_letter(&s.key.volume, l))),
                &mut source_steps,
            );
            groups.push(GroupDemand {
                group: group.name.clone(),
                p95: analysis::p95(&values).unwrap_or(0.0),
            });
        }
        Ok(analysis::place(&PlacementRequest {
            nodes,
            groups,
            headroom_pct: query.headroom_pct,
        }))
    }

    async fn latest_inventory(
        &self,
        cluster: &ferry_core::model::Cluster,
    ) -> Result<Option<InventoryDocument>> {
        let Some(number) = cluster.latest_snapshot else {
            return Ok(None);
        };
        let (_, json) = self.store.get_snapshot(cluster.id, number).await?;
        serde_json::from_str(&json)
            .map(Some)
            .map_err(|e| Error::internal(format!("stored snapshot does not parse: {e}")))
    }
}

/// A series' step means, taken out of `steps`.
fn means(steps: &mut HashMap<i64, Vec<Option<f64>>>, id: i64) -> Vec<Option<f64>> {
    steps.remove(&id).unwrap_or_default()
}

/// The sum of `series` per step, over the steps where any has a sample.
fn summed<'a>(
    series: impl Iterator<Item = &'a StoredSeries>,
    steps: &mut HashMap<i64, Vec<Option<f64>>>,
) -> Vec<f64> {
    let mut per_step: Vec<Option<f64>> = Vec::new();
    for s in series {
        let values = means(steps, s.id);
        if per_step.len() < values.len() {
            per_step.resize(values.len(), None);
        }
        add_into(&mut per_step, &values);
    }
    per_step.into_iter().flatten().collect()
}

fn damaged(e: String) -> Error {
    Error::internal(format!("damaged perf chunk: {e}"))
}

/// Adds `values` into `into` step by step; a step stays empty only where both are.
fn add_into(into: &mut [Option<f64>], values: &[Option<f64>]) {
    for (slot, v) in into.iter_mut().zip(values) {
        if let Some(v) = v {
            *slot = Some(slot.unwrap_or(0.0) + v);
        }
    }
}

/// Flat samples (the REST shape) grouped into series, in first-seen order, with where each
/// series' samples stood among the flat ones (so an error can name the sender's position).
pub fn group_samples(samples: Vec<FlatSample>) -> (Vec<SeriesPoints>, Vec<Vec<usize>>) {
    let mut index: HashMap<SeriesKey, usize> = HashMap::new();
    let mut out: Vec<SeriesPoints> = Vec::new();
    let mut origins: Vec<Vec<usize>> = Vec::new();
    for (position, s) in samples.into_iter().enumerate() {
        let key = SeriesKey {
            node: s.node,
            volume: s.volume,
            counter: s.counter,
            source: s.source,
        };
        let i = *index.entry(key.clone()).or_insert_with(|| {
            out.push(SeriesPoints {
                key,
                at_ms: Vec::new(),
                values: Vec::new(),
            });
            origins.push(Vec::new());
            out.len() - 1
        });
        out[i].at_ms.push(s.at.timestamp_millis());
        out[i].values.push(s.value);
        origins[i].push(position);
    }
    (out, origins)
}

/// One sample as a pipeline posts it.
#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlatSample {
    pub node: String,
    /// A volume (`C:\ClusterStorage\Volume1`, `F:`) or a device (`sda`).
    pub volume: String,
    pub counter: Counter,
    #[serde(default = "default_source")]
    pub source: Source,
    pub at: chrono::DateTime<Utc>,
    pub value: f64,
}

fn default_source() -> Source {
    Source::Node
}

/// Runs the compactor and retention every `compact_every` until shutdown.
pub fn start_maintenance(
    service: Service,
    mut stopped: watch::Receiver<bool>,
) -> JoinHandle<anyhow::Result<()>> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(service.perf.compact_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut expired_at: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stopped.wait_for(|s| *s) => return Ok(()),
            }
            if service
                .claim_period(Duty::PerfCompaction, service.perf.compact_every)
                .await
            {
                match service.compact_perf().await {
                    Ok(stats) if stats.batches > 0 => tracing::debug!(
                        batches = stats.batches,
                        samples = stats.samples,
                        expired = stats.expired,
                        chunks = stats.chunks_written,
                        "perf batches compacted"
                    ),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "perf compaction failed; retrying next tick")
                    }
                }
            }
            // Retention moves with the clock, a minute at a time is exact enough to be worth
            // its scan; compaction has to keep up with ingest. This replica asks for the period
            // only when it has not run retention for one itself.
            if expired_at.is_some_and(|at| at.elapsed() < EXPIRE_EVERY) {
                continue;
            }
            if !service
                .claim_period(Duty::PerfRetention, EXPIRE_EVERY)
                .await
            {
                continue;
            }
            let now = Utc::now().timestamp_millis();
            match service
                .store
                .expire_perf(now, &service.perf.retention)
                .await
            {
                Ok(_) => expired_at = Some(tokio::time::Instant::now()),
                Err(e) => tracing::warn!(error = %e, "perf retention failed; retrying next tick"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(result: Result<PerfRange>) -> String {
        result.unwrap_err().fields[0].field.clone()
    }

    #[test]
    fn ranges_are_bounded_before_any_arithmetic() {
        assert_eq!(field(PerfRange::new(Some(i64::MIN), Some(0), None)), "from");
        assert_eq!(field(PerfRange::new(Some(0), Some(i64::MAX), None)), "to");
        assert_eq!(
            field(PerfRange::new(Some(0), Some(1), Some(i64::MAX))),
            "step"
        );
        assert_eq!(field(PerfRange::new(Some(5), Some(5), None)), "from");
        assert_eq!(
            field(PerfRange::new(Some(0), Some(86_400_000), Some(1_000))),
            "step",
            "86,400 steps"
        );
        let day = PerfRange::new(Some(0), Some(86_400_000), Some(60_000)).unwrap();
        assert_eq!(day.steps(), 1441);
        assert!(day.check_points(100, MAX_QUERY_POINTS).is_ok());
        assert_eq!(
            day.check_points(MAX_QUERY_POINTS / 1441 + 1, MAX_QUERY_POINTS)
                .unwrap_err()
                .fields[0]
                .field,
            "step"
        );
    }

    #[test]
    fn letters_match_their_volume_paths_only() {
        assert!(volume_of_letter("F:\\Shares", "f:"));
        assert!(volume_of_letter("F:", "F:"));
        assert!(!volume_of_letter("G:", "F:"));
        assert!(!volume_of_letter("é", "F:"));
        assert!(!volume_of_letter("aé", "F:"));
    }
}
