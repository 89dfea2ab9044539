-- Discovery: agents' inventories become snapshots, on demand and on a schedule; a snapshot that
-- differs from the one before it is announced as an event. Kept column-for-column equal to
-- migrations/postgres.

-- Events not of a job (an inventory that changed) have no job; any event may name its cluster
-- and carry structured data for clients. SQLite cannot drop a NOT NULL, so the table is rebuilt,
-- keeping every sequence number and the counter behind them (numbers are never reused).
CREATE TABLE job_events_next (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    at         TEXT    NOT NULL,
    job_id     TEXT    REFERENCES jobs (id) ON DELETE CASCADE,
    kind       TEXT    NOT NULL,
    grp        TEXT,
    step       INTEGER,
    state      TEXT    NOT NULL,
    message    TEXT,
    output     TEXT,
    cluster_id TEXT,
    data       TEXT
);
INSERT INTO job_events_next (seq, at, job_id, kind, grp, step, state, message, output)
    SELECT seq, at, job_id, kind, grp, step, state, message, output FROM job_events;
DELETE FROM sqlite_sequence WHERE name = 'job_events_next';
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'job_events_next', seq FROM sqlite_sequence WHERE name = 'job_events';
DROP TABLE job_events;
ALTER TABLE job_events_next RENAME TO job_events;
CREATE INDEX job_events_by_job ON job_events (job_id, seq);

-- A cluster's own discovery interval (NULL: the server's `discovery_interval`), and when the
-- next periodic discovery is due: replicas claim it with a conditional update, so one runs.
ALTER TABLE clusters ADD COLUMN discovery_interval_seconds INTEGER;
ALTER TABLE clusters ADD COLUMN next_discovery_at TEXT;

-- Findings a running job learns (its source drifted after a baseline was taken), as JSON.
ALTER TABLE jobs ADD COLUMN findings TEXT NOT NULL DEFAULT '[]';

-- One discovery: a `read_inventory` task on an agent of the cluster, and what its import made.
CREATE TABLE discoveries (
    id                TEXT    NOT NULL PRIMARY KEY,
    cluster_id        TEXT    NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    task_id           TEXT    UNIQUE,
    state             TEXT    NOT NULL,
    trigger_kind      TEXT    NOT NULL,
    snapshot          INTEGER,
    created           INTEGER,
    previous_snapshot INTEGER,
    summary           TEXT,
    error             TEXT,
    created_by        TEXT    NOT NULL,
    created_at        TEXT    NOT NULL,
    completed_at      TEXT
);
CREATE INDEX discoveries_by_cluster ON discoveries (cluster_id, created_at);
