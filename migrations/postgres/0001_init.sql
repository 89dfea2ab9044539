-- Ferry schema, Postgres flavour. Kept column-for-column equal to migrations/sqlite so that
-- both stores share their SQL text. Ids are UUID strings and JSON is TEXT, as on SQLite.
-- Every text column that is ordered or compared for cursor pagination is COLLATE "C", so that
-- ordering is byte order, exactly as on SQLite, whatever the database's locale.

CREATE TABLE clusters (
    id          TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    name        TEXT COLLATE "C" NOT NULL UNIQUE,
    os          TEXT             NOT NULL,
    description TEXT             NOT NULL,
    version     BIGINT           NOT NULL,
    created_at  TIMESTAMPTZ      NOT NULL,
    updated_at  TIMESTAMPTZ      NOT NULL
);

CREATE TABLE snapshots (
    cluster_id       TEXT COLLATE "C" NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    number           BIGINT           NOT NULL,
    content_hash     TEXT             NOT NULL,
    node_count       BIGINT           NOT NULL,
    network_count    BIGINT           NOT NULL,
    disk_count       BIGINT           NOT NULL,
    group_count      BIGINT           NOT NULL,
    resource_count   BIGINT           NOT NULL,
    share_count      BIGINT           NOT NULL,
    permission_count BIGINT           NOT NULL,
    created_at       TIMESTAMPTZ      NOT NULL,
    created_by       TEXT             NOT NULL,
    document         TEXT             NOT NULL,
    PRIMARY KEY (cluster_id, number)
);
-- A 100k-share document is ~25 MB; pglz takes ~0.5 s to compress it, lz4 a fifth of that for the
-- same size. lz4 needs a server built with it (Postgres 14+); elsewhere the default stays.
DO $$
BEGIN
    ALTER TABLE snapshots ALTER COLUMN document SET COMPRESSION lz4;
EXCEPTION WHEN OTHERS THEN
    NULL;
END
$$;

-- Current inventory (from the newest snapshot). Counts are denormalised at import time so that
-- group lists need no aggregation.
CREATE TABLE groups (
    id             TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    cluster_id     TEXT COLLATE "C" NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    name           TEXT COLLATE "C" NOT NULL,
    owner_node     TEXT,
    state          TEXT             NOT NULL,
    resource_count BIGINT           NOT NULL,
    share_count    BIGINT           NOT NULL,
    -- SHA-256 of the group's JSON: an import leaves the children of unchanged groups alone.
    content_hash   TEXT             NOT NULL,
    UNIQUE (cluster_id, name)
);
-- find_groups by bare group name across clusters.
CREATE INDEX groups_by_name ON groups (name);

CREATE TABLE resources (
    group_id   TEXT COLLATE "C" NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    name       TEXT COLLATE "C" NOT NULL,
    kind       TEXT             NOT NULL,
    state      TEXT             NOT NULL,
    properties TEXT             NOT NULL,
    depends_on TEXT             NOT NULL,
    PRIMARY KEY (group_id, name)
);

-- `name_folded` and `principals` hold Unicode-lowercased copies computed in Rust, so that
-- case-insensitive filters behave the same as on SQLite (whose lower() only folds ASCII) and
-- do not depend on the database's ctype.
CREATE TABLE shares (
    group_id                 TEXT COLLATE "C" NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    name                     TEXT COLLATE "C" NOT NULL,
    name_folded              TEXT COLLATE "C" NOT NULL,
    path                     TEXT             NOT NULL,
    description              TEXT             NOT NULL,
    permissions              TEXT             NOT NULL,
    principals               TEXT             NOT NULL,
    caching                  TEXT             NOT NULL,
    access_based_enumeration BOOLEAN          NOT NULL,
    continuous_availability  BOOLEAN          NOT NULL,
    encrypt_data             BOOLEAN          NOT NULL,
    user_limit               BIGINT,
    PRIMARY KEY (group_id, name)
);

CREATE TABLE tokens (
    id          TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    name        TEXT COLLATE "C" NOT NULL UNIQUE,
    role        TEXT             NOT NULL,
    secret_hash TEXT COLLATE "C" NOT NULL UNIQUE,
    created_at  TIMESTAMPTZ      NOT NULL,
    expires_at  TIMESTAMPTZ,
    revoked_at  TIMESTAMPTZ
);

CREATE TABLE audit (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      TIMESTAMPTZ      NOT NULL,
    actor   TEXT COLLATE "C" NOT NULL,
    action  TEXT COLLATE "C" NOT NULL,
    target  TEXT COLLATE "C" NOT NULL,
    source  TEXT,
    outcome TEXT COLLATE "C" NOT NULL,
    detail  TEXT
);
CREATE INDEX audit_by_actor ON audit (actor, id);
CREATE INDEX audit_by_action ON audit (action, id);
CREATE INDEX audit_by_target ON audit (target, id);
CREATE INDEX audit_by_outcome ON audit (outcome, id);

CREATE TABLE idempotency (
    scope        TEXT COLLATE "C" NOT NULL,
    key          TEXT COLLATE "C" NOT NULL,
    request_hash TEXT             NOT NULL,
    status       BIGINT,
    body         TEXT,
    state        TEXT             NOT NULL,
    created_at   TIMESTAMPTZ      NOT NULL,
    PRIMARY KEY (scope, key)
);
-- Expiry sweep on every claim.
CREATE INDEX idempotency_by_created_at ON idempotency (created_at);
