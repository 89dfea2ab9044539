-- Ferry schema, SQLite flavour. Kept column-for-column equal to migrations/postgres so that
-- both stores share their SQL text. Ids are UUID strings, JSON is TEXT, timestamps are
-- RFC 3339 TEXT (what sqlx writes for chrono::DateTime<Utc>).

CREATE TABLE clusters (
    id          TEXT    NOT NULL PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    os          TEXT    NOT NULL,
    description TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    created_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL
);

-- `document` is last: SQLite stores a large value in overflow pages, and columns after it
-- would have to walk that chain whenever snapshot metadata is listed.
CREATE TABLE snapshots (
    cluster_id       TEXT    NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    number           INTEGER NOT NULL,
    content_hash     TEXT    NOT NULL,
    node_count       INTEGER NOT NULL,
    network_count    INTEGER NOT NULL,
    disk_count       INTEGER NOT NULL,
    group_count      INTEGER NOT NULL,
    resource_count   INTEGER NOT NULL,
    share_count      INTEGER NOT NULL,
    permission_count INTEGER NOT NULL,
    created_at       TEXT    NOT NULL,
    created_by       TEXT    NOT NULL,
    document         TEXT    NOT NULL,
    PRIMARY KEY (cluster_id, number)
);

-- Current inventory (from the newest snapshot). Counts are denormalised at import time so that
-- group lists need no aggregation.
CREATE TABLE groups (
    id             TEXT    NOT NULL PRIMARY KEY,
    cluster_id     TEXT    NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    name           TEXT    NOT NULL,
    owner_node     TEXT,
    state          TEXT    NOT NULL,
    resource_count INTEGER NOT NULL,
    share_count    INTEGER NOT NULL,
    -- SHA-256 of the group's JSON: an import leaves the children of unchanged groups alone.
    content_hash   TEXT    NOT NULL,
    UNIQUE (cluster_id, name)
);
-- find_groups by bare group name across clusters.
CREATE INDEX groups_by_name ON groups (name);

CREATE TABLE resources (
    group_id   TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    state      TEXT NOT NULL,
    properties TEXT NOT NULL,
    depends_on TEXT NOT NULL,
    PRIMARY KEY (group_id, name)
) WITHOUT ROWID;

-- Clustered by (group_id, name), so a page of a group's shares is one contiguous range.
-- `name_folded` and `principals` hold Unicode-lowercased copies (computed in Rust) because
-- SQLite's lower() only folds ASCII.
CREATE TABLE shares (
    group_id                 TEXT    NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    name                     TEXT    NOT NULL,
    name_folded              TEXT    NOT NULL,
    path                     TEXT    NOT NULL,
    description              TEXT    NOT NULL,
    permissions              TEXT    NOT NULL,
    principals               TEXT    NOT NULL,
    caching                  TEXT    NOT NULL,
    access_based_enumeration BOOLEAN NOT NULL,
    continuous_availability  BOOLEAN NOT NULL,
    encrypt_data             BOOLEAN NOT NULL,
    user_limit               INTEGER,
    PRIMARY KEY (group_id, name)
) WITHOUT ROWID;

CREATE TABLE tokens (
    id          TEXT NOT NULL PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    role        TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL,
    expires_at  TEXT,
    revoked_at  TEXT
);

CREATE TABLE audit (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      TEXT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    source  TEXT,
    outcome TEXT NOT NULL,
    detail  TEXT
);
CREATE INDEX audit_by_actor ON audit (actor, id);
CREATE INDEX audit_by_action ON audit (action, id);
CREATE INDEX audit_by_target ON audit (target, id);
CREATE INDEX audit_by_outcome ON audit (outcome, id);

CREATE TABLE idempotency (
    scope        TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       INTEGER,
    body         TEXT,
    state        TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (scope, key)
);
-- Expiry sweep on every claim.
CREATE INDEX idempotency_by_created_at ON idempotency (created_at);
