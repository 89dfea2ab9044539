//! Perf persistence: landed batches, series and chunks, and the compactor that turns the first
//! into the last. [`PerfStore`] is part of every [`Store`](crate::Store); [`impl_perf_store!`]
//! expands it for each backend. The merging itself is the pure [`Compaction`].
//!
//! Ingest writes one row per batch and nothing else, so it costs one insert whatever the batch
//! holds. The compactor then, in one transaction that holds a lock no other replica's compactor
//! can take at the same time: reads landed rows, merges their points into each series' raw chunk
//! of the hour (the newest value of a timestamp wins), recomputes that hour's 1-minute and
//! 1-hour rollups from the whole merged raw chunk, writes the chunks, and deletes the rows it
//! merged. A crash anywhere leaves the landed rows to merge again.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use uuid::Uuid;

use ferry_core::error::Result;
use ferry_core::perf::{
    Batch, Counter, RawChunk, Resolution, Retention, RollupChunk, SeriesKey, Source,
};

/// Landed rows one compaction round reads at most.
pub const COMPACT_ROUND_ROWS: i64 = 1000;

/// One accepted batch, encoded.
#[derive(Debug, Clone, Copy)]
pub struct LandedBatch<'a> {
    pub cluster_id: Uuid,
    pub first_ms: i64,
    pub last_ms: i64,
    pub samples: usize,
    pub data: &'a [u8],
}

/// Which series of a cluster to read; `None` matches any.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeriesFilter {
    pub counter: Option<Counter>,
    pub source: Option<Source>,
    /// Compared without ASCII case, as Windows names compare.
    pub volume: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredSeries {
    pub id: i64,
    pub key: SeriesKey,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredChunk {
    pub series_id: i64,
    pub start_ms: i64,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactStats {
    pub batches: usize,
    pub samples: usize,
    /// Samples for an hour whose start is already past raw retention: not stored, since that
    /// hour's rollups were computed from samples retention has since removed.
    pub expired: usize,
    pub chunks_written: usize,
    /// Landed rows remain beyond this round's limit.
    pub more: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpireStats {
    pub chunks_deleted: u64,
    pub chunks_trimmed: u64,
    /// Series left without any point.
    pub series_deleted: u64,
}

#[async_trait]
pub trait PerfStore: Send + Sync {
    /// Stores an accepted batch as one row (one insert, whatever its size).
    async fn land_perf(&self, batch: LandedBatch<'_>) -> Result<()>;

    /// Whether landed rows wait for the compactor (for one cluster, or any).
    async fn perf_pending(&self, cluster_id: Option<Uuid>) -> Result<bool>;

    /// Merges landed rows (of one cluster, or of every cluster), oldest first, up to about
    /// `max_samples`, into chunks and rollups.
    async fn compact_perf(
        &self,
        cluster_id: Option<Uuid>,
        now_ms: i64,
        retention: &Retention,
        max_samples: usize,
    ) -> Result<CompactStats>;

    /// Removes every point older than its resolution's retention, and nothing newer.
    async fn expire_perf(&self, now_ms: i64, retention: &Retention) -> Result<ExpireStats>;

    async fn perf_series(
        &self,
        cluster_id: Uuid,
        filter: &SeriesFilter,
    ) -> Result<Vec<StoredSeries>>;

    /// The chunks of `series` at `resolution` whose window overlaps `[from_ms, to_ms)`.
    async fn perf_chunks(
        &self,
        series: &[i64],
        resolution: Resolution,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<StoredChunk>>;
}

/// A chunk to upsert.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkWrite {
    pub series_id: i64,
    pub resolution: Resolution,
    pub start_ms: i64,
    pub first_ms: i64,
    pub last_ms: i64,
    pub points: i64,
    pub data: Vec<u8>,
}

/// New points of one series by the start of their raw window (hour): times and values.
pub type WindowPoints = BTreeMap<i64, (Vec<i64>, Vec<f64>)>;

/// New points by series id.
pub type Resolved = BTreeMap<i64, WindowPoints>;

/// The points of one compaction round, grouped by series and raw window.
#[derive(Debug, Default)]
pub struct Compaction {
    horizon_ms: i64,
    points: HashMap<(Uuid, SeriesKey), WindowPoints>,
    pub samples: usize,
    pub expired: usize,
}

impl Compaction {
    pub fn new(now_ms: i64, retention: &Retention) -> Compaction {
        Compaction {
            horizon_ms: now_ms - retention.raw_ms,
            ..Default::default()
        }
    }

    /// Adds one landed batch; call in landing order, so later batches win on equal timestamps.
    pub fn add(&mut self, cluster_id: Uuid, batch: Batch) {
        for s in batch.series() {
            let windows = self.points.entry((cluster_id, s.key.clone())).or_default();
            for (&at, &value) in s.at_ms.iter().zip(&s.values) {
                self.samples += 1;
                let window = Resolution::Raw.window_start(at);
                if window < self.horizon_ms {
                    self.expired += 1;
                    continue;
                }
                let (ats, values) = windows.entry(window).or_default();
                ats.push(at);
                values.push(value);
            }
        }
    }

    /// The series keys per cluster, for resolving their ids.
    pub fn keys(&self) -> BTreeMap<Uuid, Vec<&SeriesKey>> {
        let mut out: BTreeMap<Uuid, Vec<&SeriesKey>> = BTreeMap::new();
        for ((cluster, key), windows) in &self.points {
            if !windows.is_empty() {
                out.entry(*cluster).or_default().push(key);
            }
        }
        out
    }

    /// Points per series id and raw window; keys without an id are dropped (their cluster was
    /// deleted meanwhile).
    pub fn resolve(self, ids: &HashMap<(Uuid, SeriesKey), i64>) -> Resolved {
        self.points
            .into_iter()
            .filter(|(_, windows)| !windows.is_empty())
            .filter_map(|(k, windows)| ids.get(&k).map(|&id| (id, windows)))
            .collect()
    }
}

/// The chunks a resolved compaction touches, per resolution: series ids and the window range.
pub fn chunks_touched(resolved: &Resolved, resolution: Resolution) -> (Vec<i64>, Vec<i64>) {
    let ids: Vec<i64> = resolved.keys().copied().collect();
    let windows: std::collections::BTreeSet<i64> = resolved
        .values()
        .flat_map(|w| w.keys().map(|&start| resolution.window_start(start)))
        .collect();
    (ids, windows.into_iter().collect())
}

/// Merges the new points into the stored chunks (`stored` keyed by series, resolution, window
/// start) and returns every chunk to write.
pub fn merge_chunks(
    resolved: Resolved,
    stored: &HashMap<(i64, Resolution, i64), Vec<u8>>,
) -> std::result::Result<Vec<ChunkWrite>, String> {
    let mut out = Vec::new();
    for (series_id, windows) in resolved {
        let mut rollups: BTreeMap<(Resolution, i64), RollupChunk> = BTreeMap::new();
        for (window, (at, values)) in windows {
            let mut raw = match stored.get(&(series_id, Resolution::Raw, window)) {
                Some(data) => RawChunk::decode(data)?,
                None => RawChunk::default(),
            };
            raw.merge(&at, &values);
            let hour_end = window + Resolution::Raw.window_ms();
            for resolution in [Resolution::Minute, Resolution::Hour] {
                let start = resolution.window_start(window);
                let chunk = match rollups.entry((resolution, start)) {
                    std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::btree_map::Entry::Vacant(e) => {
                        e.insert(match stored.get(&(series_id, resolution, start)) {
                            Some(data) => RollupChunk::decode(data)?,
                            None => RollupChunk::default(),
                        })
                    }
                };
                chunk.replace_range(window, hour_end, &raw.rollup(resolution.bucket_ms()));
            }
            out.push(ChunkWrite {
                series_id,
                resolution: Resolution::Raw,
                start_ms: window,
                first_ms: raw.at_ms[0],
                last_ms: raw.at_ms[raw.at_ms.len() - 1],
                points: raw.at_ms.len() as i64,
                data: raw.encode(),
            });
        }
        for ((resolution, start), chunk) in rollups {
            out.extend(rollup_write(series_id, resolution, start, &chunk));
        }
    }
    Ok(out)
}

/// The write of a rollup chunk; `None` when it holds no point (delete it instead).
pub fn rollup_write(
    series_id: i64,
    resolution: Resolution,
    start_ms: i64,
    chunk: &RollupChunk,
) -> Option<ChunkWrite> {
    let (first, last) = (chunk.points.first()?, chunk.points.last()?);
    Some(ChunkWrite {
        series_id,
        resolution,
        start_ms,
        first_ms: first.at_ms,
        last_ms: last.at_ms,
        points: chunk.points.len() as i64,
        data: chunk.encode(),
    })
}

/// Drops the points before `horizon_ms` from a stored chunk; `None` when none remain.
pub fn trim_chunk(
    series_id: i64,
    resolution: Resolution,
    start_ms: i64,
    data: &[u8],
    horizon_ms: i64,
) -> std::result::Result<Option<ChunkWrite>, String> {
    if resolution == Resolution::Raw {
        let mut raw = RawChunk::decode(data)?;
        raw.retain_from(horizon_ms);
        let (Some(&first), Some(&last)) = (raw.at_ms.first(), raw.at_ms.last()) else {
            return Ok(None);
        };
        return Ok(Some(ChunkWrite {
            series_id,
            resolution,
            start_ms,
            first_ms: first,
            last_ms: last,
            points: raw.at_ms.len() as i64,
            data: raw.encode(),
        }));
    }
    let mut chunk = RollupChunk::decode(data)?;
    chunk.retain_from(horizon_ms);
    Ok(rollup_write(series_id, resolution, start_ms, &chunk))
}

/// A stored series row: id, node, volume, counter, source.
pub type SeriesRow = (i64, String, String, String, String);

pub fn series_from_row((id, node, volume, counter, source): SeriesRow) -> Result<StoredSeries> {
    use crate::db::corrupt;
    Ok(StoredSeries {
        id,
        key: SeriesKey {
            node,
            volume,
            counter: Counter::parse(&counter).ok_or_else(|| corrupt("perf counter", &counter))?,
            source: Source::parse(&source).ok_or_else(|| corrupt("perf source", &source))?,
        },
    })
}

macro_rules! impl_perf_store {
    ($ty:ty, $db:ty, compact_lock = $compact_lock:expr $(,)?) => {
        #[async_trait::async_trait]
        impl $crate::perf::PerfStore for $ty {
            async fn land_perf(
                &self,
                batch: $crate::perf::LandedBatch<'_>,
            ) -> ::ferry_core::error::Result<()> {
                use $crate::db::db_error;
                sqlx::query(
                    "INSERT INTO perf_landed (cluster_id, first_ms, last_ms, samples, data) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(batch.cluster_id.to_string())
                .bind(batch.first_ms)
                .bind(batch.last_ms)
                .bind(batch.samples as i64)
                .bind(batch.data)
                .execute(self.writer())
                .await
                .map_err(|e| {
                    if $crate::db::is_foreign_key_violation(&e) {
                        ::ferry_core::error::Error::not_found(format!(
                            "no cluster `{}`",
                            batch.cluster_id
                        ))
                    } else {
                        db_error(e)
                    }
                })?;
                Ok(())
            }

            async fn perf_pending(
                &self,
                cluster_id: Option<uuid::Uuid>,
            ) -> ::ferry_core::error::Result<bool> {
                use $crate::db::db_error;
                let found: Option<i64> = sqlx::query_scalar(
                    "SELECT id FROM perf_landed WHERE $1 IS NULL OR cluster_id = $1 LIMIT 1",
                )
                .bind(cluster_id.map(|c| c.to_string()))
                .fetch_optional(self.reader())
                .await
                .map_err(db_error)?;
                Ok(found.is_some())
            }

            async fn compact_perf(
                &self,
                cluster_id: Option<uuid::Uuid>,
                now_ms: i64,
                retention: &::ferry_core::perf::Retention,
                max_samples: usize,
            ) -> ::ferry_core::error::Result<$crate::perf::CompactStats> {
                use std::collections::HashMap;
                use ::ferry_core::perf::{Batch, Resolution};
                use $crate::db::{corrupt, db_error, parse_uuid};
                use $crate::perf::{
                    chunks_touched, merge_chunks, series_from_row, CompactStats, Compaction,
                    SeriesRow,
                };

                let mut tx = self.writer().begin().await.map_err(db_error)?;
                let lock: Option<&str> = $compact_lock;
                if let Some(lock) = lock {
                    sqlx::query(lock).execute(&mut *tx).await.map_err(db_error)?;
                }
                // A cluster's series are its own: its batches merge in their order whatever
                // the other clusters' wait.
                let landed: Vec<(i64, String, i64)> = sqlx::query_as(
                    "SELECT id, cluster_id, samples FROM perf_landed \
                     WHERE $2 IS NULL OR cluster_id = $2 ORDER BY id LIMIT $1",
                )
                .bind($crate::perf::COMPACT_ROUND_ROWS)
                .bind(cluster_id.map(|c| c.to_string()))
                .fetch_all(&mut *tx)
                .await
                .map_err(db_error)?;
                let mut taken = 0usize;
                let mut ids = Vec::new();
                for (id, _, samples) in &landed {
                    if !ids.is_empty() && taken + *samples as usize > max_samples {
                        break;
                    }
                    taken += *samples as usize;
                    ids.push(*id);
                }
                let mut stats = CompactStats {
                    batches: ids.len(),
                    // A full read may have left rows beyond it.
                    more: ids.len() < landed.len()
                        || landed.len() as i64 == $crate::perf::COMPACT_ROUND_ROWS,
                    ..Default::default()
                };
                if ids.is_empty() {
                    return Ok(stats);
                }
                let mut work = Compaction::new(now_ms, retention);
                for id_chunk in ids.chunks(Self::MAX_BINDS) {
                    // The cluster is read with the data: a row gone meanwhile (its cluster
                    // deleted) must not shift the others onto the wrong cluster.
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "SELECT id, cluster_id, data FROM perf_landed WHERE id IN (",
                    );
                    let mut list = qb.separated(", ");
                    for id in id_chunk {
                        list.push_bind(*id);
                    }
                    qb.push(") ORDER BY id");
                    let rows: Vec<(i64, String, Vec<u8>)> = qb
                        .build_query_as()
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(db_error)?;
                    for (id, cluster, data) in rows {
                        let batch = Batch::decode(&data)
                            .map_err(|e| corrupt("landed perf batch", &format!("{id}: {e}")))?;
                        work.add(parse_uuid(&cluster)?, batch);
                    }
                }
                stats.samples = work.samples;
                stats.expired = work.expired;

                let mut series_ids: HashMap<(uuid::Uuid, ::ferry_core::perf::SeriesKey), i64> =
                    HashMap::new();
                for (cluster, keys) in work.keys() {
                    let cluster_text = cluster.to_string();
                    for chunk in keys.chunks(Self::MAX_BINDS / 5) {
                        let mut qb = sqlx::QueryBuilder::<$db>::new(
                            "INSERT INTO perf_series (cluster_id, node, volume, counter, source) ",
                        );
                        qb.push_values(chunk, |mut b, key| {
                            b.push_bind(cluster_text.as_str())
                                .push_bind(key.node.as_str())
                                .push_bind(key.volume.as_str())
                                .push_bind(key.counter.as_str())
                                .push_bind(key.source.as_str());
                        });
                        qb.push(" ON CONFLICT (cluster_id, node, volume, counter, source) DO NOTHING");
                        // A cluster deleted since its rows were read fails this round; the next
                        // finds its rows gone with it.
                        qb.build().execute(&mut *tx).await.map_err(db_error)?;
                    }
                    let rows: Vec<SeriesRow> = sqlx::query_as(
                        "SELECT id, node, volume, counter, source FROM perf_series \
                         WHERE cluster_id = $1",
                    )
                    .bind(&cluster_text)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db_error)?;
                    for row in rows {
                        let series = series_from_row(row)?;
                        series_ids.insert((cluster, series.key), series.id);
                    }
                }
                let resolved = work.resolve(&series_ids);

                let mut stored: HashMap<(i64, Resolution, i64), Vec<u8>> = HashMap::new();
                for resolution in Resolution::ALL {
                    // Only the windows the new points fall in: one late sample must not make
                    // the round read every hour since.
                    let (series, windows) = chunks_touched(&resolved, resolution);
                    for chunk in series.chunks(Self::MAX_BINDS - 1 - windows.len()) {
                        let mut qb = sqlx::QueryBuilder::<$db>::new(
                            "SELECT series_id, start_ms, data FROM perf_chunks WHERE resolution = ",
                        );
                        qb.push_bind(resolution.as_str());
                        qb.push(" AND start_ms IN (");
                        let mut list = qb.separated(", ");
                        for window in &windows {
                            list.push_bind(*window);
                        }
                        qb.push(") AND series_id IN (");
                        let mut list = qb.separated(", ");
                        for id in chunk {
                            list.push_bind(*id);
                        }
                        qb.push(")");
                        let rows: Vec<(i64, i64, Vec<u8>)> = qb
                            .build_query_as()
                            .fetch_all(&mut *tx)
                            .await
                            .map_err(db_error)?;
                        for (series_id, start, data) in rows {
                            stored.insert((series_id, resolution, start), data);
                        }
                    }
                }
                let writes = merge_chunks(resolved, &stored)
                    .map_err(|e| corrupt("perf chunk", &e))?;
                stats.chunks_written = writes.len();
                Self::write_chunks(&mut tx, &writes).await?;

                for chunk in ids.chunks(Self::MAX_BINDS) {
                    let mut qb =
                        sqlx::QueryBuilder::<$db>::new("DELETE FROM perf_landed WHERE id IN (");
                    let mut list = qb.separated(", ");
                    for id in chunk {
                        list.push_bind(*id);
                    }
                    qb.push(")");
                    qb.build().execute(&mut *tx).await.map_err(db_error)?;
                }
                tx.commit().await.map_err(db_error)?;
                Ok(stats)
            }

            async fn expire_perf(
                &self,
                now_ms: i64,
                retention: &::ferry_core::perf::Retention,
            ) -> ::ferry_core::error::Result<$crate::perf::ExpireStats> {
                use ::ferry_core::perf::Resolution;
                use $crate::db::{corrupt, db_error};
                use $crate::perf::{trim_chunk, ExpireStats};

                let mut stats = ExpireStats::default();
                let mut tx = self.writer().begin().await.map_err(db_error)?;
                // Trimming rewrites chunks a compaction may be merging into.
                let lock: Option<&str> = $compact_lock;
                if let Some(lock) = lock {
                    sqlx::query(lock).execute(&mut *tx).await.map_err(db_error)?;
                }
                for resolution in Resolution::ALL {
                    let horizon = now_ms - retention.of(resolution);
                    stats.chunks_deleted += sqlx::query(
                        "DELETE FROM perf_chunks WHERE resolution = $1 AND last_ms < $2",
                    )
                    .bind(resolution.as_str())
                    .bind(horizon)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?
                    .rows_affected();
                    let straddling: Vec<(i64, i64, Vec<u8>)> = sqlx::query_as(
                        "SELECT series_id, start_ms, data FROM perf_chunks \
                         WHERE resolution = $1 AND first_ms < $2",
                    )
                    .bind(resolution.as_str())
                    .bind(horizon)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db_error)?;
                    let mut writes = Vec::with_capacity(straddling.len());
                    for (series_id, start, data) in straddling {
                        let trimmed = trim_chunk(series_id, resolution, start, &data, horizon)
                            .map_err(|e| corrupt("perf chunk", &e))?;
                        // `last_ms >= horizon` here, so a point always remains.
                        writes.extend(trimmed);
                    }
                    stats.chunks_trimmed += writes.len() as u64;
                    Self::write_chunks(&mut tx, &writes).await?;
                }
                stats.series_deleted = sqlx::query(
                    "DELETE FROM perf_series WHERE NOT EXISTS \
                     (SELECT 1 FROM perf_chunks WHERE perf_chunks.series_id = perf_series.id)",
                )
                .execute(&mut *tx)
                .await
                .map_err(db_error)?
                .rows_affected();
                tx.commit().await.map_err(db_error)?;
                Ok(stats)
            }

            async fn perf_series(
                &self,
                cluster_id: uuid::Uuid,
                filter: &$crate::perf::SeriesFilter,
            ) -> ::ferry_core::error::Result<Vec<$crate::perf::StoredSeries>> {
                use $crate::db::db_error;
                use $crate::perf::{series_from_row, SeriesRow};
                let rows: Vec<SeriesRow> = sqlx::query_as(
                    "SELECT id, node, volume, counter, source FROM perf_series \
                     WHERE cluster_id = $1 AND ($2 IS NULL OR counter = $2) \
                     AND ($3 IS NULL OR source = $3) AND ($4 IS NULL OR lower(volume) = $4) \
                     ORDER BY node, volume, counter, source",
                )
                .bind(cluster_id.to_string())
                .bind(filter.counter.map(|c| c.as_str()))
                .bind(filter.source.map(|s| s.as_str()))
                // ASCII folding on both sides, as names compare in the service: SQLite's lower()
                // folds only ASCII, and so does Postgres's on the `COLLATE "C"` column.
                .bind(filter.volume.as_deref().map(str::to_ascii_lowercase))
                .fetch_all(self.reader())
                .await
                .map_err(db_error)?;
                rows.into_iter().map(series_from_row).collect()
            }

            async fn perf_chunks(
                &self,
                series: &[i64],
                resolution: ::ferry_core::perf::Resolution,
                from_ms: i64,
                to_ms: i64,
            ) -> ::ferry_core::error::Result<Vec<$crate::perf::StoredChunk>> {
                use $crate::db::db_error;
                use $crate::perf::StoredChunk;
                let mut out = Vec::new();
                for chunk in series.chunks(Self::MAX_BINDS - 3) {
                    let after = from_ms - resolution.window_ms();
                    let rows: Vec<(i64, i64, Vec<u8>)> =
                        Self::select_chunks(resolution, after, to_ms, chunk)
                        .build_query_as()
                        .fetch_all(self.reader())
                        .await
                        .map_err(db_error)?;
                    out.extend(rows.into_iter().map(|(series_id, start_ms, data)| StoredChunk {
                        series_id,
                        start_ms,
                        data,
                    }));
                }
                Ok(out)
            }
        }

        impl $ty {
            /// The chunks of `series` at `resolution` whose window starts strictly between
            /// `after` and `before`: series id, window start, data.
            fn select_chunks(
                resolution: ::ferry_core::perf::Resolution,
                after: i64,
                before: i64,
                series: &[i64],
            ) -> sqlx::QueryBuilder<$db> {
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "SELECT series_id, start_ms, data FROM perf_chunks WHERE resolution = ",
                );
                qb.push_bind(resolution.as_str());
                qb.push(" AND start_ms > ");
                qb.push_bind(after);
                qb.push(" AND start_ms < ");
                qb.push_bind(before);
                qb.push(" AND series_id IN (");
                let mut list = qb.separated(", ");
                for id in series {
                    list.push_bind(*id);
                }
                qb.push(")");
                qb
            }

            async fn write_chunks(
                conn: &mut <$db as sqlx::Database>::Connection,
                writes: &[$crate::perf::ChunkWrite],
            ) -> ::ferry_core::error::Result<()> {
                for chunk in writes.chunks(Self::MAX_BINDS / 7) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO perf_chunks (series_id, resolution, start_ms, first_ms, \
                         last_ms, points, data) ",
                    );
                    qb.push_values(chunk, |mut b, w| {
                        b.push_bind(w.series_id)
                            .push_bind(w.resolution.as_str())
                            .push_bind(w.start_ms)
                            .push_bind(w.first_ms)
                            .push_bind(w.last_ms)
                            .push_bind(w.points)
                            .push_bind(w.data.as_slice());
                    });
                    qb.push(
                        " ON CONFLICT (series_id, resolution, start_ms) DO UPDATE SET \
                         first_ms = excluded.first_ms, last_ms = excluded.last_ms, \
                         points = excluded.points, data = excluded.data",
                    );
                    qb.build()
                        .execute(&mut *conn)
                        .await
                        .map_err($crate::db::db_error)?;
                }
                Ok(())
            }
        }
    };
}
pub(crate) use impl_perf_store;

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::perf::SeriesPoints;

    const HOUR: i64 = 3_600_000;
    const T0: i64 = 500_000 * HOUR;

    fn key() -> SeriesKey {
        SeriesKey {
            node: "n1".into(),
            volume: "V1".into(),
            counter: Counter::TransfersPerSec,
            source: Source::Node,
        }
    }

    fn batch(at: &[i64], values: &[f64]) -> Batch {
        let now = chrono::DateTime::from_timestamp_millis(T0 + 10 * HOUR).unwrap();
        Batch::new(
            vec![SeriesPoints {
                key: key(),
                at_ms: at.to_vec(),
                values: values.to_vec(),
            }],
            now,
        )
        .unwrap()
    }

    fn compact(
        batches: Vec<Batch>,
        stored: &HashMap<(i64, Resolution, i64), Vec<u8>>,
    ) -> Vec<ChunkWrite> {
        let cluster = Uuid::nil();
        let mut work = Compaction::new(T0 + 10 * HOUR, &Retention::default());
        for b in batches {
            work.add(cluster, b);
        }
        let ids = HashMap::from([((cluster, key()), 7)]);
        merge_chunks(work.resolve(&ids), stored).unwrap()
    }

    #[test]
    fn late_samples_recompute_the_hour_from_all_its_samples() {
        let first = compact(
            vec![batch(&[T0, T0 + 30_000], &[10.0, 20.0])],
            &HashMap::new(),
        );
        let stored: HashMap<_, _> = first
            .iter()
            .map(|w| ((w.series_id, w.resolution, w.start_ms), w.data.clone()))
            .collect();
        // A late sample in the first minute, a duplicate of T0, and the next hour.
        let second = compact(
            vec![batch(&[T0 + 10_000, T0, T0 + HOUR], &[30.0, 40.0, 1.0])],
            &stored,
        );
        let raw = second
            .iter()
            .find(|w| w.resolution == Resolution::Raw && w.start_ms == T0)
            .unwrap();
        let raw = RawChunk::decode(&raw.data).unwrap();
        assert_eq!(raw.values, vec![40.0, 30.0, 20.0]);
        let minutes = second
            .iter()
            .find(|w| w.resolution == Resolution::Minute)
            .unwrap();
        let minutes = RollupChunk::decode(&minutes.data).unwrap();
        assert_eq!(minutes.points.len(), 2, "T0's minute and the next hour's");
        assert_eq!(minutes.points[0].mean, 30.0);
        assert_eq!(minutes.points[0].count, 3);
        let hours = second
            .iter()
            .find(|w| w.resolution == Resolution::Hour)
            .unwrap();
        let hours = RollupChunk::decode(&hours.data).unwrap();
        assert_eq!(hours.points[0].max, 40.0);
        assert_eq!(hours.points[1].count, 1);
    }

    #[test]
    fn samples_for_hours_past_raw_retention_are_expired() {
        let mut work = Compaction::new(T0 + 50 * HOUR, &Retention::default());
        work.add(
            Uuid::nil(),
            batch(&[T0, T0 + 2 * HOUR, T0 + 3 * HOUR], &[1.0, 2.0, 3.0]),
        );
        // The horizon is T0 + 2h: the hour starting exactly there is kept.
        assert_eq!((work.samples, work.expired), (3, 1));
    }

    #[test]
    fn trimming_keeps_points_at_the_horizon() {
        let raw = RawChunk {
            at_ms: vec![T0, T0 + 1, T0 + 2],
            values: vec![1.0, 2.0, 3.0],
        };
        let trimmed = trim_chunk(1, Resolution::Raw, T0, &raw.encode(), T0 + 1)
            .unwrap()
            .unwrap();
        assert_eq!((trimmed.first_ms, trimmed.points), (T0 + 1, 2));
        assert_eq!(
            trim_chunk(1, Resolution::Raw, T0, &raw.encode(), T0 + 3).unwrap(),
            None
        );
    }
}
