//! Folding stored points into the steps a query asks for.

use serde::Serialize;
use utoipa::ToSchema;

use super::Retention;
use super::chunk::{BucketMeans, RawChunk, Resolution, RollupPoint, p95_of_sorted};

/// Most steps one query may ask for: a day at 10-second steps is 8,640.
pub const MAX_STEPS: i64 = 20_000;

/// One step of a series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct StepPoint {
    /// Start of the step, milliseconds since the epoch.
    pub at_ms: i64,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    /// Samples behind the step.
    pub count: u64,
    /// Exact when the step is one rollup bucket or reads raw samples; absent when it spans
    /// several buckets, whose percentiles do not combine.
    pub p95: Option<f64>,
}

/// The resolution a query of `[from_ms, ..)` at `step_ms` reads: the coarsest whose buckets
/// divide the step and whose retention still covers `from_ms`; failing that, the longest kept.
pub fn choose_resolution(
    from_ms: i64,
    step_ms: i64,
    now_ms: i64,
    retention: &Retention,
) -> Resolution {
    let dividing: Vec<Resolution> = [Resolution::Hour, Resolution::Minute, Resolution::Raw]
        .into_iter()
        .filter(|r| step_ms % r.bucket_ms() == 0)
        .collect();
    dividing
        .iter()
        .copied()
        .find(|&r| now_ms - retention.of(r) <= from_ms)
        .or_else(|| dividing.iter().copied().max_by_key(|&r| retention.of(r)))
        .unwrap_or(Resolution::Raw)
}

#[derive(Debug, Clone)]
struct Acc {
    sum: f64,
    count: u64,
    min: f64,
    max: f64,
    buckets: u32,
    p95: f64,
    raw: Vec<f64>,
}

impl Default for Acc {
    fn default() -> Self {
        Acc {
            sum: 0.0,
            count: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            buckets: 0,
            p95: 0.0,
            raw: Vec::new(),
        }
    }
}

/// Accumulates one series' points into fixed steps starting at `from_ms` (aligned down to the
/// step); points outside `[from, to)` are ignored.
#[derive(Debug, Clone)]
pub struct Steps {
    from_ms: i64,
    step_ms: i64,
    acc: Vec<Acc>,
}

/// The steps of `[from_ms, to_ms)`: the first one's start (aligned down to the step) and how many.
fn grid(from_ms: i64, to_ms: i64, step_ms: i64) -> (i64, usize) {
    let from_ms = from_ms.div_euclid(step_ms) * step_ms;
    let n = ((to_ms - from_ms + step_ms - 1) / step_ms).max(0) as usize;
    (from_ms, n)
}

impl Steps {
    pub fn new(from_ms: i64, to_ms: i64, step_ms: i64) -> Steps {
        let (from_ms, n) = grid(from_ms, to_ms, step_ms);
        Steps {
            from_ms,
            step_ms,
            acc: vec![Acc::default(); n],
        }
    }

    /// The start of every step.
    pub fn times(&self) -> Vec<i64> {
        (0..self.acc.len() as i64)
            .map(|i| self.from_ms + i * self.step_ms)
            .collect()
    }

    fn slot(&mut self, at_ms: i64) -> Option<&mut Acc> {
        if at_ms < self.from_ms {
            return None;
        }
        let i = ((at_ms - self.from_ms) / self.step_ms) as usize;
        self.acc.get_mut(i)
    }

    pub fn add_raw(&mut self, chunk: &RawChunk) {
        for (&at, &value) in chunk.at_ms.iter().zip(&chunk.values) {
            if let Some(acc) = self.slot(at) {
                acc.sum += value;
                acc.count += 1;
                acc.min = acc.min.min(value);
                acc.max = acc.max.max(value);
                acc.raw.push(value);
            }
        }
    }

    pub fn add_rollup(&mut self, points: &[RollupPoint]) {
        for p in points {
            if let Some(acc) = self.slot(p.at_ms) {
                acc.sum += p.mean * f64::from(p.count);
                acc.count += u64::from(p.count);
                acc.min = acc.min.min(p.min);
                acc.max = acc.max.max(p.max);
                acc.buckets += 1;
                acc.p95 = p.p95;
            }
        }
    }

    /// One entry per step; `None` where no sample fell.
    pub fn finish(self) -> Vec<Option<StepPoint>> {
        let (from_ms, step_ms) = (self.from_ms, self.step_ms);
        self.acc
            .into_iter()
            .enumerate()
            .map(|(i, mut acc)| {
                (acc.count > 0).then(|| {
                    let p95 = if !acc.raw.is_empty() {
                        acc.raw.sort_by(f64::total_cmp);
                        Some(p95_of_sorted(&acc.raw))
                    } else {
                        (acc.buckets == 1).then_some(acc.p95)
                    };
                    StepPoint {
                        at_ms: from_ms + i as i64 * step_ms,
                        mean: acc.sum / acc.count as f64,
                        min: acc.min,
                        max: acc.max,
                        count: acc.count,
                        p95,
                    }
                })
            })
            .collect()
    }
}

/// One series' mean per step, and nothing else: the sum over nodes and volumes the cluster-wide
/// questions add up needs no more, and skips half the decoding and most of the memory of
/// [`Steps`].
#[derive(Debug, Clone)]
pub struct MeanSteps {
    from_ms: i64,
    step_ms: i64,
    sum: Vec<f64>,
    count: Vec<u64>,
}

impl MeanSteps {
    pub fn new(from_ms: i64, to_ms: i64, step_ms: i64) -> MeanSteps {
        let (from_ms, n) = grid(from_ms, to_ms, step_ms);
        MeanSteps {
            from_ms,
            step_ms,
            sum: vec![0.0; n],
            count: vec![0; n],
        }
    }

    fn add(&mut self, at_ms: i64, sum: f64, count: u64) {
        if at_ms < self.from_ms {
            return;
        }
        let i = ((at_ms - self.from_ms) / self.step_ms) as usize;
        if let (Some(s), Some(c)) = (self.sum.get_mut(i), self.count.get_mut(i)) {
            *s += sum;
            *c += count;
        }
    }

    pub fn add_raw(&mut self, chunk: &RawChunk) {
        for (&at, &value) in chunk.at_ms.iter().zip(&chunk.values) {
            self.add(at, value, 1);
        }
    }

    /// Rollup buckets as `decode_means` gives them.
    pub fn add_means(&mut self, buckets: &BucketMeans) {
        let BucketMeans { at_ms, mean, count } = buckets;
        for ((&at, &m), &n) in at_ms.iter().zip(mean).zip(count) {
            self.add(at, m * f64::from(n), u64::from(n));
        }
    }

    /// One entry per step; `None` where no sample fell.
    pub fn finish(self) -> Vec<Option<f64>> {
        self.sum
            .into_iter()
            .zip(self.count)
            .map(|(s, n)| (n > 0).then(|| s / n as f64))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_coarsest_dividing_resolution_still_kept() {
        let r = Retention::default();
        let now = 100 * Retention::DAY_MS;
        assert_eq!(
            choose_resolution(now - Retention::DAY_MS, 60_000, now, &r),
            Resolution::Minute
        );
        assert_eq!(
            choose_resolution(now - Retention::DAY_MS, 10_000, now, &r),
            Resolution::Raw
        );
        assert_eq!(
            choose_resolution(now - 60 * Retention::DAY_MS, 60_000, now, &r),
            Resolution::Minute
        );
        assert_eq!(
            choose_resolution(now - Retention::DAY_MS, 3_600_000, now, &r),
            Resolution::Hour
        );
        assert_eq!(
            choose_resolution(now - 3 * Retention::DAY_MS, 15_000, now, &r),
            Resolution::Raw
        );
    }

    #[test]
    fn rollups_combine_into_wider_steps() {
        let mut steps = Steps::new(0, 180_000, 120_000);
        steps.add_rollup(&[
            RollupPoint::of(0, &[1.0, 3.0]),
            RollupPoint::of(60_000, &[5.0]),
            RollupPoint::of(120_000, &[8.0]),
        ]);
        let out = steps.finish();
        let first = out[0].unwrap();
        assert_eq!(
            (first.mean, first.min, first.max, first.count),
            (3.0, 1.0, 5.0, 3)
        );
        assert_eq!(first.p95, None);
        assert_eq!(out[1].unwrap().p95, Some(8.0));
    }

    #[test]
    fn mean_steps_agree_with_full_steps() {
        let points = [
            RollupPoint::of(0, &[1.0, 3.0]),
            RollupPoint::of(60_000, &[5.0]),
            RollupPoint::of(120_000, &[8.0, 9.0, 10.0]),
        ];
        let mut full = Steps::new(0, 240_000, 120_000);
        full.add_rollup(&points);
        let mut means = MeanSteps::new(0, 240_000, 120_000);
        means.add_means(&BucketMeans {
            at_ms: points.iter().map(|p| p.at_ms).collect(),
            mean: points.iter().map(|p| p.mean).collect(),
            count: points.iter().map(|p| p.count).collect(),
        });
        let full: Vec<Option<f64>> = full
            .finish()
            .into_iter()
            .map(|p| p.map(|p| p.mean))
            .collect();
        assert_eq!(means.finish(), full);
    }

    #[test]
    fn raw_points_fold_with_exact_percentiles() {
        let mut steps = Steps::new(5, 40, 10);
        steps.add_raw(&RawChunk {
            at_ms: vec![0, 12, 15, 38, 40],
            values: vec![100.0, 1.0, 2.0, 4.0, 100.0],
        });
        assert_eq!(steps.times(), vec![0, 10, 20, 30]);
        let out = steps.finish();
        // The first step starts at 0, aligned down from 5, and so holds the sample at 0.
        assert_eq!(out[0].unwrap().mean, 100.0);
        assert_eq!(out[1].unwrap().mean, 1.5);
        assert_eq!(out[1].unwrap().p95, Some(2.0));
        assert_eq!(out[2], None);
        assert_eq!(out[3].unwrap().count, 1);
    }
}
