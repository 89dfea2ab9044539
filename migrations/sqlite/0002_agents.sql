-- Agents, their join tokens, and tasks. Kept column-for-column equal to migrations/postgres.
-- Timestamps are RFC 3339 TEXT in UTC written by sqlx, whose fixed-width prefix and `+00:00`
-- suffix make text comparison (`lease_deadline < $1`) order them correctly.

CREATE TABLE join_tokens (
    id          TEXT    NOT NULL PRIMARY KEY,
    cluster_id  TEXT    NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    secret_hash TEXT    NOT NULL UNIQUE,
    expires_at  TEXT    NOT NULL,
    uses_left   INTEGER NOT NULL,
    created_at  TEXT    NOT NULL,
    created_by  TEXT    NOT NULL
);

-- `state` is connected, disconnected, down or revoked; `session_id` names the session that
-- marked it connected, so the end of an older session cannot mark a newer one disconnected.
CREATE TABLE agents (
    id               TEXT NOT NULL PRIMARY KEY,
    cluster_id       TEXT NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    node             TEXT NOT NULL,
    secret_hash      TEXT NOT NULL UNIQUE,
    software_version TEXT NOT NULL,
    capabilities     TEXT NOT NULL,
    state            TEXT NOT NULL,
    session_id       TEXT,
    connected_at     TEXT,
    last_seen_at     TEXT,
    revoked_at       TEXT,
    created_at       TEXT NOT NULL
);
-- One live agent per node; re-enrolling a node revokes the agent it had.
CREATE UNIQUE INDEX agents_live_node ON agents (cluster_id, node) WHERE revoked_at IS NULL;
-- The reaper's sweep for agents not heard from.
CREATE INDEX agents_by_last_seen ON agents (last_seen_at) WHERE state IN ('connected', 'disconnected');

-- `action`, `result`, `error` and `progress` are JSON. `generation` is bumped whenever the task
-- is handed to an agent; with `attempt` it fences results.
CREATE TABLE tasks (
    id             TEXT    NOT NULL PRIMARY KEY,
    cluster_id     TEXT    NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    node           TEXT    NOT NULL,
    agent_id       TEXT    REFERENCES agents (id) ON DELETE CASCADE,
    action         TEXT    NOT NULL,
    state          TEXT    NOT NULL,
    attempt        INTEGER NOT NULL,
    generation     INTEGER NOT NULL,
    lease_deadline TEXT,
    result         TEXT,
    error          TEXT,
    progress       TEXT,
    created_at     TEXT    NOT NULL,
    updated_at     TEXT    NOT NULL,
    created_by     TEXT    NOT NULL
);
-- Delivery on connect: the agent's unfinished tasks.
CREATE INDEX tasks_by_agent ON tasks (agent_id, id) WHERE state IN ('pending', 'assigned', 'running');
-- The reaper's sweep for expired leases.
CREATE INDEX tasks_by_lease ON tasks (lease_deadline) WHERE state IN ('assigned', 'running');
