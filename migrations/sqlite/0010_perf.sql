-- Perf samples as time series. Kept column-for-column equal to migrations/postgres.
--
-- perf_landed: each accepted ingest batch, as one compressed row, until the compactor merges it.
-- perf_series: what a series measures within its cluster.
-- perf_chunks: one series' points over one window at one resolution ('raw': an hour of samples;
-- '1m': 6 hours of minute rollups; '1h': 30 days of hour rollups), compressed. Times are
-- milliseconds since the epoch; first_ms / last_ms bound the points inside, for retention.
CREATE TABLE perf_landed (
    id         INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    cluster_id TEXT    NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    first_ms   INTEGER NOT NULL,
    last_ms    INTEGER NOT NULL,
    samples    INTEGER NOT NULL,
    data       BLOB    NOT NULL
);
CREATE INDEX perf_landed_cluster ON perf_landed (cluster_id);

CREATE TABLE perf_series (
    id         INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    cluster_id TEXT    NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    node       TEXT    NOT NULL,
    volume     TEXT    NOT NULL,
    counter    TEXT    NOT NULL,
    source     TEXT    NOT NULL,
    UNIQUE (cluster_id, node, volume, counter, source)
);

CREATE TABLE perf_chunks (
    series_id  INTEGER NOT NULL REFERENCES perf_series (id) ON DELETE CASCADE,
    resolution TEXT    NOT NULL,
    start_ms   INTEGER NOT NULL,
    first_ms   INTEGER NOT NULL,
    last_ms    INTEGER NOT NULL,
    points     INTEGER NOT NULL,
    data       BLOB    NOT NULL,
    PRIMARY KEY (series_id, resolution, start_ms)
);
CREATE INDEX perf_chunks_expiry ON perf_chunks (resolution, last_ms);
CREATE INDEX perf_chunks_trim ON perf_chunks (resolution, first_ms);
