//! Chunks: one series' points over one window, stored compressed as columns (pco, built for
//! numeric sequences: timestamps delta-encode to a few bits, values keep full precision).
//!
//! | resolution | one point per      | a chunk spans |
//! |------------|--------------------|---------------|
//! | raw        | sample             | 1 hour        |
//! | 1m         | minute: min, max, mean, p95, count | 6 hours |
//! | 1h         | hour: the same     | 30 days       |
//!
//! Rollups are always computed from the raw chunk of their hour, whole, so a rollup equals what
//! the raw samples give and p95 is exact, however late or out of order the samples came.

use super::batch::sorted_last_wins;

/// Skips a column written by [`encode_column`]; returns the bytes it used.
fn skip_column(data: &[u8]) -> Result<usize, String> {
    let head = data.get(..8).ok_or("perf column is truncated")?;
    let size = u32::from_le_bytes(head[4..].try_into().expect("4 bytes")) as usize;
    if data.len() < 8 + size {
        return Err("perf column is truncated".into());
    }
    Ok(8 + size)
}

/// pco's level: 4 of 12 compresses timestamps and counters nearly as well as the default at
/// about half the CPU, which the compactor spends on every merge.
const LEVEL: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resolution {
    Raw,
    Minute,
    Hour,
}

impl Resolution {
    pub const ALL: [Resolution; 3] = [Resolution::Raw, Resolution::Minute, Resolution::Hour];

    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Raw => "raw",
            Resolution::Minute => "1m",
            Resolution::Hour => "1h",
        }
    }

    pub fn parse(name: &str) -> Option<Resolution> {
        Resolution::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// The width of one rollup bucket; raw points have none (1 ms for arithmetic).
    pub fn bucket_ms(self) -> i64 {
        match self {
            Resolution::Raw => 1,
            Resolution::Minute => 60_000,
            Resolution::Hour => 3_600_000,
        }
    }

    /// How much time one chunk covers.
    pub fn window_ms(self) -> i64 {
        match self {
            Resolution::Raw => 3_600_000,
            Resolution::Minute => 6 * 3_600_000,
            Resolution::Hour => 30 * 86_400_000,
        }
    }

    /// The start of the window (and so the chunk) holding `at_ms`.
    pub fn window_start(self, at_ms: i64) -> i64 {
        at_ms.div_euclid(self.window_ms()) * self.window_ms()
    }
}

/// Appends a column: its length, its compressed size, then the pco bytes.
pub(crate) fn encode_column<T: pco::data_types::Number>(out: &mut Vec<u8>, values: &[T]) {
    out.extend_from_slice(&(values.len() as u32).to_le_bytes());
    if values.is_empty() {
        out.extend_from_slice(&0u32.to_le_bytes());
        return;
    }
    let config = pco::ChunkConfig::default().with_compression_level(LEVEL);
    let bytes =
        pco::standalone::simple_compress(values, &config).expect("pco compresses any numbers");
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(&bytes);
}

/// Reads a column written by [`encode_column`]; returns it and the bytes it used.
pub(crate) fn decode_column<T: pco::data_types::Number>(
    data: &[u8],
) -> Result<(Vec<T>, usize), String> {
    let head = data.get(..8).ok_or("perf column is truncated")?;
    let n = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
    let size = u32::from_le_bytes(head[4..].try_into().expect("4 bytes")) as usize;
    if n == 0 {
        return Ok((Vec::new(), 8));
    }
    let body = data.get(8..8 + size).ok_or("perf column is truncated")?;
    let values: Vec<T> =
        pco::standalone::simple_decompress(body).map_err(|e| format!("perf column: {e}"))?;
    if values.len() != n {
        return Err(format!(
            "perf column holds {} numbers, its header says {n}",
            values.len()
        ));
    }
    Ok((values, 8 + size))
}

/// The raw samples of one series in one window, sorted, one per timestamp.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawChunk {
    pub at_ms: Vec<i64>,
    pub values: Vec<f64>,
}

impl RawChunk {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.values.len() * 3);
        encode_column(&mut out, &self.at_ms);
        encode_column(&mut out, &self.values);
        out
    }

    pub fn decode(data: &[u8]) -> Result<RawChunk, String> {
        let (at_ms, used) = decode_column::<i64>(data)?;
        let (values, _) = decode_column::<f64>(&data[used..])?;
        if at_ms.len() != values.len() {
            return Err("raw perf chunk columns differ in length".into());
        }
        Ok(RawChunk { at_ms, values })
    }

    /// Adds newer samples: where a timestamp is already present, the newer value wins.
    pub fn merge(&mut self, at_ms: &[i64], values: &[f64]) {
        let mut all_at = std::mem::take(&mut self.at_ms);
        let mut all_values = std::mem::take(&mut self.values);
        all_at.extend_from_slice(at_ms);
        all_values.extend_from_slice(values);
        (self.at_ms, self.values) = sorted_last_wins(&all_at, &all_values);
    }

    /// Keeps the samples at or after `from_ms`.
    pub fn retain_from(&mut self, from_ms: i64) {
        let cut = self.at_ms.partition_point(|&t| t < from_ms);
        self.at_ms.drain(..cut);
        self.values.drain(..cut);
    }

    /// One rollup point per bucket of `bucket_ms` that holds samples.
    pub fn rollup(&self, bucket_ms: i64) -> Vec<RollupPoint> {
        let mut out = Vec::new();
        let mut start = 0;
        while start < self.at_ms.len() {
            let bucket = self.at_ms[start].div_euclid(bucket_ms) * bucket_ms;
            let end = start + self.at_ms[start..].partition_point(|&t| t < bucket + bucket_ms);
            out.push(RollupPoint::of(bucket, &self.values[start..end]));
            start = end;
        }
        out
    }
}

/// The summary of one bucket's samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RollupPoint {
    /// Start of the bucket.
    pub at_ms: i64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    /// Nearest-rank 95th percentile: the ⌈0.95·n⌉-th smallest sample.
    pub p95: f64,
    pub count: u32,
}

impl RollupPoint {
    /// `values` must not be empty.
    pub fn of(at_ms: i64, values: &[f64]) -> RollupPoint {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        RollupPoint {
            at_ms,
            min: sorted[0],
            max: sorted[sorted.len() - 1],
            mean: values.iter().sum::<f64>() / values.len() as f64,
            p95: p95_of_sorted(&sorted),
            count: values.len() as u32,
        }
    }
}

/// The nearest-rank 95th percentile of sorted, non-empty values: the ⌈0.95·n⌉-th smallest. The
/// rank is computed in integers: 0.95·n in floating point can land just above a whole number and
/// skip a rank.
pub fn p95_of_sorted(sorted: &[f64]) -> f64 {
    let rank = (sorted.len() * 95).div_ceil(100);
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The bucket times, means and counts of a rollup chunk, column by column.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BucketMeans {
    pub at_ms: Vec<i64>,
    pub mean: Vec<f64>,
    pub count: Vec<u32>,
}

/// Rollup points of one series in one window, sorted by bucket.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RollupChunk {
    pub points: Vec<RollupPoint>,
}

impl RollupChunk {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.points.len() * 12);
        let column = |f: fn(&RollupPoint) -> f64| self.points.iter().map(f).collect::<Vec<_>>();
        encode_column(
            &mut out,
            &self.points.iter().map(|p| p.at_ms).collect::<Vec<_>>(),
        );
        for values in [
            column(|p| p.min),
            column(|p| p.max),
            column(|p| p.mean),
            column(|p| p.p95),
        ] {
            encode_column(&mut out, &values);
        }
        encode_column(
            &mut out,
            &self.points.iter().map(|p| p.count).collect::<Vec<_>>(),
        );
        out
    }

    pub fn decode(data: &[u8]) -> Result<RollupChunk, String> {
        let mut pos = 0;
        let (at_ms, used) = decode_column::<i64>(data)?;
        pos += used;
        let mut floats: [Vec<f64>; 4] = Default::default();
        for column in &mut floats {
            let (values, used) = decode_column::<f64>(&data[pos..])?;
            pos += used;
            *column = values;
        }
        let (count, _) = decode_column::<u32>(&data[pos..])?;
        let n = at_ms.len();
        if floats.iter().any(|c| c.len() != n) || count.len() != n {
            return Err("rollup perf chunk columns differ in length".into());
        }
        let [min, max, mean, p95] = floats;
        let points = (0..n)
            .map(|i| RollupPoint {
                at_ms: at_ms[i],
                min: min[i],
                max: max[i],
                mean: mean[i],
                p95: p95[i],
                count: count[i],
            })
            .collect();
        Ok(RollupChunk { points })
    }

    /// Only the bucket times, means and counts: what a sum over series needs, at half the
    /// decoding.
    pub fn decode_means(data: &[u8]) -> Result<BucketMeans, String> {
        let (at_ms, mut pos) = decode_column::<i64>(data)?;
        pos += skip_column(&data[pos..])?;
        pos += skip_column(&data[pos..])?;
        let (mean, used) = decode_column::<f64>(&data[pos..])?;
        pos += used;
        pos += skip_column(&data[pos..])?;
        let (count, _) = decode_column::<u32>(&data[pos..])?;
        if mean.len() != at_ms.len() || count.len() != at_ms.len() {
            return Err("rollup perf chunk columns differ in length".into());
        }
        Ok(BucketMeans { at_ms, mean, count })
    }

    /// Replaces every point in `[from_ms, to_ms)` with `fresh` (which lies in that range).
    pub fn replace_range(&mut self, from_ms: i64, to_ms: i64, fresh: &[RollupPoint]) {
        self.points
            .retain(|p| p.at_ms < from_ms || p.at_ms >= to_ms);
        let at = self.points.partition_point(|p| p.at_ms < from_ms);
        self.points.splice(at..at, fresh.iter().copied());
    }

    /// Keeps the points at or after `from_ms`.
    pub fn retain_from(&mut self, from_ms: i64) {
        self.points.retain(|p| p.at_ms >= from_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000_000;

    #[test]
    fn raw_chunks_round_trip_and_merge_newest_wins() {
        let mut chunk = RawChunk {
            at_ms: vec![T0, T0 + 10_000, T0 + 20_000],
            values: vec![1.0, 2.0, 3.0],
        };
        chunk.merge(&[T0 + 5_000, T0 + 10_000], &[1.5, 20.0]);
        assert_eq!(chunk.at_ms, vec![T0, T0 + 5_000, T0 + 10_000, T0 + 20_000]);
        assert_eq!(chunk.values, vec![1.0, 1.5, 20.0, 3.0]);
        assert_eq!(RawChunk::decode(&chunk.encode()).unwrap(), chunk);
        assert_eq!(
            RawChunk::decode(&RawChunk::default().encode()).unwrap(),
            RawChunk::default()
        );
        chunk.retain_from(T0 + 10_000);
        assert_eq!(chunk.at_ms, vec![T0 + 10_000, T0 + 20_000]);
    }

    #[test]
    fn rollups_summarise_each_bucket() {
        // 100 samples in the first minute (1..=100), one in the third.
        let mut chunk = RawChunk::default();
        let at: Vec<i64> = (0..100).map(|i| T0 + i * 500).collect();
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        chunk.merge(&at, &values);
        chunk.merge(&[T0 + 150_000], &[7.0]);
        let points = chunk.rollup(60_000);
        assert_eq!(points.len(), 2);
        let first = points[0];
        assert_eq!(first.at_ms, T0 / 60_000 * 60_000);
        assert_eq!((first.min, first.max, first.count), (1.0, 100.0, 100));
        assert_eq!(first.mean, 50.5);
        assert_eq!(first.p95, 95.0);
        assert_eq!(points[1].p95, 7.0);
        let rollup = RollupChunk { points };
        assert_eq!(RollupChunk::decode(&rollup.encode()).unwrap(), rollup);
        let means = RollupChunk::decode_means(&rollup.encode()).unwrap();
        let at: Vec<i64> = rollup.points.iter().map(|p| p.at_ms).collect();
        assert_eq!(means.at_ms, at);
        assert_eq!(means.mean, vec![50.5, 7.0]);
        assert_eq!(means.count, vec![100, 1]);
    }

    #[test]
    fn replacing_a_range_keeps_the_rest_in_order() {
        let point = |at: i64, v: f64| RollupPoint::of(at, &[v]);
        let mut chunk = RollupChunk {
            points: vec![point(0, 1.0), point(60, 2.0), point(120, 3.0)],
        };
        chunk.replace_range(60, 120, &[point(60, 5.0), point(90, 6.0)]);
        let at: Vec<i64> = chunk.points.iter().map(|p| p.at_ms).collect();
        assert_eq!(at, vec![0, 60, 90, 120]);
        assert_eq!(chunk.points[1].mean, 5.0);
    }

    #[test]
    fn windows_align_to_the_epoch() {
        assert_eq!(Resolution::Raw.window_start(3_600_000 + 5), 3_600_000);
        assert_eq!(Resolution::Minute.window_start(6 * 3_600_000 - 1), 0);
        assert_eq!(Resolution::Raw.window_start(-1), -3_600_000);
    }
}
