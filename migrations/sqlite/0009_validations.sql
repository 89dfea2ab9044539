-- Validation reports: a cluster's configuration facts judged by the rules, numbered per cluster
-- (`version`). JSON columns hold what the API shows. Kept column-for-column equal to
-- migrations/postgres.
CREATE TABLE validations (
    id           TEXT    NOT NULL PRIMARY KEY,
    cluster_id   TEXT    NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    version      INTEGER NOT NULL,
    state        TEXT    NOT NULL,
    task_id      TEXT,
    thresholds   TEXT    NOT NULL,
    facts        TEXT,
    findings     TEXT    NOT NULL,
    overall      TEXT,
    error        TEXT,
    created_by   TEXT    NOT NULL,
    created_at   TEXT    NOT NULL,
    completed_at TEXT,
    UNIQUE (cluster_id, version)
);
