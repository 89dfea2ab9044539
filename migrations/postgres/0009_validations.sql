-- Validation reports: a cluster's configuration facts judged by the rules, numbered per cluster
-- (`version`). JSON columns hold what the API shows. Kept column-for-column equal to
-- migrations/sqlite.
CREATE TABLE validations (
    id           TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    cluster_id   TEXT COLLATE "C" NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    version      BIGINT           NOT NULL,
    state        TEXT             NOT NULL,
    task_id      TEXT COLLATE "C",
    thresholds   TEXT             NOT NULL,
    facts        TEXT,
    findings     TEXT             NOT NULL,
    overall      TEXT,
    error        TEXT,
    created_by   TEXT             NOT NULL,
    created_at   TIMESTAMPTZ      NOT NULL,
    completed_at TIMESTAMPTZ,
    UNIQUE (cluster_id, version)
);
