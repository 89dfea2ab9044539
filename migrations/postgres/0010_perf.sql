-- Perf samples as time series. Kept column-for-column equal to migrations/sqlite.
--
-- perf_landed: each accepted ingest batch, as one compressed row, until the compactor merges it.
-- perf_series: what a series measures within its cluster.
-- perf_chunks: one series' points over one window at one resolution ('raw': an hour of samples;
-- '1m': 6 hours of minute rollups; '1h': 30 days of hour rollups), compressed. Times are
-- milliseconds since the epoch; first_ms / last_ms bound the points inside, for retention.
CREATE TABLE perf_landed (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    cluster_id TEXT COLLATE "C" NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    first_ms   BIGINT NOT NULL,
    last_ms    BIGINT NOT NULL,
    samples    BIGINT NOT NULL,
    data       BYTEA  NOT NULL
);
CREATE INDEX perf_landed_cluster ON perf_landed (cluster_id);

CREATE TABLE perf_series (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    cluster_id TEXT COLLATE "C" NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    node       TEXT COLLATE "C" NOT NULL,
    volume     TEXT COLLATE "C" NOT NULL,
    counter    TEXT NOT NULL,
    source     TEXT NOT NULL,
    UNIQUE (cluster_id, node, volume, counter, source)
);

CREATE TABLE perf_chunks (
    series_id  BIGINT NOT NULL REFERENCES perf_series (id) ON DELETE CASCADE,
    resolution TEXT   NOT NULL,
    start_ms   BIGINT NOT NULL,
    first_ms   BIGINT NOT NULL,
    last_ms    BIGINT NOT NULL,
    points     BIGINT NOT NULL,
    data       BYTEA  NOT NULL,
    PRIMARY KEY (series_id, resolution, start_ms)
);
CREATE INDEX perf_chunks_expiry ON perf_chunks (resolution, last_ms);
CREATE INDEX perf_chunks_trim ON perf_chunks (resolution, first_ms);
