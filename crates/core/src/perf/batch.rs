//! The one validated shape every ingest path (agent stream, REST, gRPC) turns its input into,
//! and its compact encoding as a landed row. A batch is all or nothing: the first bad sample
//! refuses it whole, naming where it is, and nothing of it is stored.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::chunk::{decode_column, encode_column};
use super::{Counter, Source};
use crate::error::{Error, Result};

/// Longest node or volume name accepted (Windows volume GUID paths are about 50 characters).
pub const MAX_NAME_LEN: usize = 256;
/// Most samples one batch may carry; pipelines split larger uploads.
pub const MAX_BATCH_SAMPLES: usize = 1_000_000;
/// Samples may be timestamped at most this far ahead of the server's clock (clock skew).
pub const MAX_FUTURE_MS: i64 = 24 * 3_600_000;
/// 2000-01-01T00:00:00Z: anything earlier is a unit mistake (seconds sent as milliseconds...).
pub const MIN_AT_MS: i64 = 946_684_800_000;

/// What a series measures within its cluster.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeriesKey {
    pub node: String,
    pub volume: String,
    pub counter: Counter,
    pub source: Source,
}

/// One series' points: `at_ms[i]` is the time of `values[i]`, milliseconds since the epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesPoints {
    pub key: SeriesKey,
    pub at_ms: Vec<i64>,
    pub values: Vec<f64>,
}

/// A validated batch: every series named, every point in time and finite, each series sorted by
/// time with one value per timestamp (the last one given wins, as it does against stored data).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Batch {
    series: Vec<SeriesPoints>,
}

fn check_name(field: &str, name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(Error::invalid_field(field, "must not be empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(Error::invalid_field(
            field,
            format!("is longer than {MAX_NAME_LEN} bytes"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::invalid_field(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

impl Batch {
    /// Validates `series` against the server's clock `now`. Field paths in errors are
    /// `series[i].values[j]`; the caller's own shape may rename them.
    pub fn new(series: Vec<SeriesPoints>, now: DateTime<Utc>) -> Result<Batch> {
        let latest = now.timestamp_millis() + MAX_FUTURE_MS;
        let total: usize = series.iter().map(|s| s.values.len()).sum();
        if total > MAX_BATCH_SAMPLES {
            return Err(Error::invalid_field(
                "series",
                format!("{total} samples in one batch; at most {MAX_BATCH_SAMPLES}"),
            ));
        }
        let mut merged: HashMap<SeriesKey, usize> = HashMap::with_capacity(series.len());
        let mut out: Vec<SeriesPoints> = Vec::with_capacity(series.len());
        for (i, s) in series.into_iter().enumerate() {
            check_name(&format!("series[{i}].node"), &s.key.node)?;
            check_name(&format!("series[{i}].volume"), &s.key.volume)?;
            if s.at_ms.len() != s.values.len() {
                return Err(Error::invalid_field(
                    format!("series[{i}]"),
                    format!("{} timestamps for {} values", s.at_ms.len(), s.values.len()),
                ));
            }
            if s.values.is_empty() {
                return Err(Error::invalid_field(
                    format!("series[{i}]"),
                    "holds no samples",
                ));
            }
            for (j, (&at, &value)) in s.at_ms.iter().zip(&s.values).enumerate() {
                if !(MIN_AT_MS..=latest).contains(&at) {
                    return Err(Error::invalid_field(
                        format!("series[{i}].at[{j}]"),
                        format!(
                            "{} is not between 2000-01-01 and a day after the server's clock",
                            DateTime::from_timestamp_millis(at)
                                .map_or_else(|| at.to_string(), |t| t.to_rfc3339())
                        ),
                    ));
                }
                if !value.is_finite() || value < 0.0 {
                    return Err(Error::invalid_field(
                        format!("series[{i}].values[{j}]"),
                        format!("{value} is not a finite, non-negative number"),
                    ));
                }
            }
            match merged.get(&s.key) {
                Some(&k) => {
                    out[k].at_ms.extend(s.at_ms);
                    out[k].values.extend(s.values);
                }
                None => {
                    merged.insert(s.key.clone(), out.len());
                    out.push(s);
                }
            }
        }
        if total == 0 {
            return Err(Error::invalid_field("series", "the batch holds no samples"));
        }
        for s in &mut out {
            let (at, values) = sorted_last_wins(&s.at_ms, &s.values);
            s.at_ms = at;
            s.values = values;
        }
        Ok(Batch { series: out })
    }

    pub fn series(&self) -> &[SeriesPoints] {
        &self.series
    }

    pub fn samples(&self) -> usize {
        self.series.iter().map(|s| s.values.len()).sum()
    }

    /// The earliest and latest sample time.
    pub fn span_ms(&self) -> (i64, i64) {
        self.series
            .iter()
            .fold((i64::MAX, i64::MIN), |(lo, hi), s| {
                (
                    lo.min(s.at_ms.first().copied().unwrap_or(i64::MAX)),
                    hi.max(s.at_ms.last().copied().unwrap_or(i64::MIN)),
                )
            })
    }

    /// The landed-row encoding: a header of series keys and point counts, then every timestamp
    /// and every value as two compressed columns.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.samples() * 4);
        out.extend_from_slice(LANDED_MAGIC);
        out.extend_from_slice(&(self.series.len() as u32).to_le_bytes());
        for s in &self.series {
            for text in [&s.key.node, &s.key.volume] {
                out.extend_from_slice(&(text.len() as u16).to_le_bytes());
                out.extend_from_slice(text.as_bytes());
            }
            out.push(s.key.counter as u8);
            out.push(s.key.source as u8);
            out.extend_from_slice(&(s.values.len() as u32).to_le_bytes());
        }
        let at: Vec<i64> = self
            .series
            .iter()
            .flat_map(|s| s.at_ms.iter().copied())
            .collect();
        let values: Vec<f64> = self
            .series
            .iter()
            .flat_map(|s| s.values.iter().copied())
            .collect();
        encode_column(&mut out, &at);
        encode_column(&mut out, &values);
        out
    }

    /// Reads a landed row back. The data was validated when it landed, so a failure here means
    /// the stored bytes are damaged.
    pub fn decode(data: &[u8]) -> std::result::Result<Batch, String> {
        let mut r = Reader { data, pos: 0 };
        if r.take(LANDED_MAGIC.len())? != LANDED_MAGIC {
            return Err("not a landed perf batch".into());
        }
        let n = r.u32()? as usize;
        let mut heads = Vec::with_capacity(n.min(1 << 20));
        for _ in 0..n {
            let node = r.text()?;
            let volume = r.text()?;
            let counter = *Counter::ALL
                .get(usize::from(r.u8()?))
                .ok_or("unknown counter")?;
            let source = *Source::ALL
                .get(usize::from(r.u8()?))
                .ok_or("unknown source")?;
            let points = r.u32()? as usize;
            heads.push((
                SeriesKey {
                    node,
                    volume,
                    counter,
                    source,
                },
                points,
            ));
        }
        let (at, used) = decode_column::<i64>(&data[r.pos..])?;
        r.pos += used;
        let (values, _) = decode_column::<f64>(&data[r.pos..])?;
        let total: usize = heads.iter().map(|(_, n)| n).sum();
        if at.len() != total || values.len() != total {
            return Err("landed perf batch columns disagree with its header".into());
        }
        let mut offset = 0;
        let series = heads
            .into_iter()
            .map(|(key, n)| {
                let s = SeriesPoints {
                    key,
                    at_ms: at[offset..offset + n].to_vec(),
                    values: values[offset..offset + n].to_vec(),
                };
                offset += n;
                s
            })
            .collect();
        Ok(Batch { series })
    }
}

const LANDED_MAGIC: &[u8] = b"FPB1";

/// Sorts by time; of equal timestamps the one given last wins.
pub(crate) fn sorted_last_wins(at: &[i64], values: &[f64]) -> (Vec<i64>, Vec<f64>) {
    if at.windows(2).all(|w| w[0] < w[1]) {
        return (at.to_vec(), values.to_vec());
    }
    let mut order: Vec<usize> = (0..at.len()).collect();
    // Stable: equal timestamps keep their arrival order, so the last of a run is the newest.
    order.sort_by_key(|&i| at[i]);
    let mut out_at: Vec<i64> = Vec::with_capacity(at.len());
    let mut out_values: Vec<f64> = Vec::with_capacity(at.len());
    for i in order {
        if out_at.last() == Some(&at[i]) {
            *out_values.last_mut().expect("paired with at") = values[i];
        } else {
            out_at.push(at[i]);
            out_values.push(values[i]);
        }
    }
    (out_at, out_values)
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.ok_or("landed perf batch is truncated")?;
        let bytes = &self.data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn u8(&mut self) -> std::result::Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> std::result::Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn text(&mut self) -> std::result::Result<String, String> {
        let len = u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes"));
        String::from_utf8(self.take(usize::from(len))?.to_vec())
            .map_err(|_| "landed perf batch holds a name that is not UTF-8".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(node: &str) -> SeriesKey {
        SeriesKey {
            node: node.into(),
            volume: "C:\\ClusterStorage\\Volume1".into(),
            counter: Counter::TransfersPerSec,
            source: Source::Node,
        }
    }

    const T0: i64 = 1_800_000_000_000;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp_millis(T0 + 3_600_000).unwrap()
    }

    #[test]
    fn sorts_merges_and_keeps_the_last_duplicate() {
        let batch = Batch::new(
            vec![
                SeriesPoints {
                    key: key("n1"),
                    at_ms: vec![T0 + 20, T0, T0 + 10],
                    values: vec![3.0, 1.0, 2.0],
                },
                SeriesPoints {
                    key: key("n1"),
                    at_ms: vec![T0 + 10],
                    values: vec![9.0],
                },
            ],
            now(),
        )
        .unwrap();
        assert_eq!(batch.series().len(), 1);
        assert_eq!(batch.series()[0].at_ms, vec![T0, T0 + 10, T0 + 20]);
        assert_eq!(batch.series()[0].values, vec![1.0, 9.0, 3.0]);
    }

    #[test]
    fn encodes_and_decodes() {
        let batch = Batch::new(
            vec![
                SeriesPoints {
                    key: key("n1"),
                    at_ms: (0..100).map(|i| T0 + i * 10_000).collect(),
                    values: (0..100).map(|i| 867.0 + f64::from(i) / 7.0).collect(),
                },
                SeriesPoints {
                    key: SeriesKey {
                        source: Source::Storage,
                        counter: Counter::AvgLatencyMs,
                        ..key("stor")
                    },
                    at_ms: vec![T0],
                    values: vec![0.25],
                },
            ],
            now(),
        )
        .unwrap();
        let data = batch.encode();
        assert_eq!(Batch::decode(&data).unwrap(), batch);
        assert!(Batch::decode(&data[..data.len() - 3]).is_err());
        assert!(Batch::decode(b"nope").is_err());
    }

    #[test]
    fn refuses_bad_samples_naming_them() {
        let bad = |at: i64, value: f64, node: &str| {
            Batch::new(
                vec![
                    SeriesPoints {
                        key: key("ok"),
                        at_ms: vec![T0],
                        values: vec![1.0],
                    },
                    SeriesPoints {
                        key: key(node),
                        at_ms: vec![T0, at],
                        values: vec![1.0, value],
                    },
                ],
                now(),
            )
            .unwrap_err()
            .fields[0]
                .field
                .clone()
        };
        assert_eq!(bad(T0, f64::NAN, "n"), "series[1].values[1]");
        assert_eq!(bad(T0, -1.0, "n"), "series[1].values[1]");
        assert_eq!(bad(T0 / 1000, 1.0, "n"), "series[1].at[1]");
        assert_eq!(bad(T0 + 2 * MAX_FUTURE_MS, 1.0, "n"), "series[1].at[1]");
        assert_eq!(bad(T0, 1.0, " "), "series[1].node");
        assert_eq!(bad(T0, 1.0, "a\nb"), "series[1].node");
        let mismatched = Batch::new(
            vec![SeriesPoints {
                key: key("n"),
                at_ms: vec![T0],
                values: vec![],
            }],
            now(),
        );
        assert_eq!(mismatched.unwrap_err().fields[0].field, "series[0]");
        let empty_series = Batch::new(
            vec![
                SeriesPoints {
                    key: key("a"),
                    at_ms: vec![T0],
                    values: vec![1.0],
                },
                SeriesPoints {
                    key: key("b"),
                    at_ms: vec![],
                    values: vec![],
                },
            ],
            now(),
        );
        assert_eq!(empty_series.unwrap_err().fields[0].field, "series[1]");
        assert!(Batch::new(vec![], now()).is_err());
    }
}
