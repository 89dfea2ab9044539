-- Work on a timer (reaping leases, compacting and expiring perf data, the discovery schedule)
-- is done once per period by whichever replica claims the period first. SQLite has no such
-- table: one server owns a SQLite database, so every period is its own.
CREATE TABLE periods (
    duty    TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    holder  TEXT             NOT NULL,
    next_at TIMESTAMPTZ      NOT NULL
);
