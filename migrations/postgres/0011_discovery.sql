-- Discovery: agents' inventories become snapshots, on demand and on a schedule; a snapshot that
-- differs from the one before it is announced as an event. Kept column-for-column equal to
-- migrations/sqlite.

-- Events not of a job (an inventory that changed) have no job; any event may name its cluster
-- and carry structured data for clients.
ALTER TABLE job_events ALTER COLUMN job_id DROP NOT NULL;
ALTER TABLE job_events ADD COLUMN cluster_id TEXT COLLATE "C";
ALTER TABLE job_events ADD COLUMN data TEXT;

-- A cluster's own discovery interval (NULL: the server's `discovery_interval`), and when the
-- next periodic discovery is due: replicas claim it with a conditional update, so one runs.
ALTER TABLE clusters ADD COLUMN discovery_interval_seconds BIGINT;
ALTER TABLE clusters ADD COLUMN next_discovery_at TIMESTAMPTZ;

-- Findings a running job learns (its source drifted after a baseline was taken), as JSON.
ALTER TABLE jobs ADD COLUMN findings TEXT NOT NULL DEFAULT '[]';

-- One discovery: a `read_inventory` task on an agent of the cluster, and what its import made.
CREATE TABLE discoveries (
    id                TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    cluster_id        TEXT COLLATE "C" NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    task_id           TEXT COLLATE "C" UNIQUE,
    state             TEXT             NOT NULL,
    trigger_kind      TEXT             NOT NULL,
    snapshot          BIGINT,
    created           BOOLEAN,
    previous_snapshot BIGINT,
    summary           TEXT,
    error             TEXT,
    created_by        TEXT             NOT NULL,
    created_at        TIMESTAMPTZ      NOT NULL,
    completed_at      TIMESTAMPTZ
);
CREATE INDEX discoveries_by_cluster ON discoveries (cluster_id, created_at);
