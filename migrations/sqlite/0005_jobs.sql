-- Migration jobs. A group's progress is one JSON document (`doc`), rewritten by the scheduler
-- only over the `version` it read, in the same transaction as the task it starts and the events
-- it records. Kept column-for-column equal to migrations/postgres.

CREATE TABLE jobs (
    id         TEXT    NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL,
    state      TEXT    NOT NULL,
    request    TEXT    NOT NULL,
    approval   TEXT,
    created_by TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    updated_at TEXT    NOT NULL,
    version    INTEGER NOT NULL
);
CREATE INDEX jobs_active ON jobs (id) WHERE state IN ('running', 'paused', 'cancelling');

CREATE TABLE job_groups (
    job_id   TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    name     TEXT    NOT NULL,
    position INTEGER NOT NULL,
    state    TEXT    NOT NULL,
    doc      TEXT    NOT NULL,
    version  INTEGER NOT NULL,
    PRIMARY KEY (job_id, name)
);

-- The source's shares of a group as taken at preparation: what every verification compares with.
CREATE TABLE job_baselines (
    job_id TEXT NOT NULL,
    name   TEXT NOT NULL,
    shares TEXT NOT NULL,
    PRIMARY KEY (job_id, name),
    FOREIGN KEY (job_id, name) REFERENCES job_groups (job_id, name) ON DELETE CASCADE
);

-- A group or disk belongs to one active job: `key` is `group:<cluster id>:<name folded>` or
-- `disk:<cluster id>:<name folded>`. Rows go when the job finishes.
CREATE TABLE job_holds (
    key    TEXT NOT NULL PRIMARY KEY,
    job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE
);
CREATE INDEX job_holds_by_job ON job_holds (job_id);

-- Every state change of a job, group or step, numbered in commit order (SQLite has one writer).
CREATE TABLE job_events (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    at      TEXT    NOT NULL,
    job_id  TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    kind    TEXT    NOT NULL,
    grp     TEXT,
    step    INTEGER,
    state   TEXT    NOT NULL,
    message TEXT
);
CREATE INDEX job_events_by_job ON job_events (job_id, seq);

-- The scheduler runs on one replica at a time: the holder of this lease.
CREATE TABLE scheduler_lease (
    id     INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    holder TEXT    NOT NULL,
    until  TEXT    NOT NULL
);

CREATE TABLE webhooks (
    id           TEXT    NOT NULL PRIMARY KEY,
    url          TEXT    NOT NULL,
    secret       TEXT    NOT NULL,
    job_id       TEXT,
    delivered    INTEGER NOT NULL,
    failures     INTEGER NOT NULL,
    next_attempt TEXT,
    last_error   TEXT,
    created_by   TEXT    NOT NULL,
    created_at   TEXT    NOT NULL
);
