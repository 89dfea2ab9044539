-- The scheduler remembers a job's groups between passes. It must know whether anyone else wrote
-- them since: every write of a job's groups counts itself here, in the same transaction.
ALTER TABLE jobs ADD COLUMN groups_written BIGINT NOT NULL DEFAULT 0;

-- When someone did, the scheduler reads every group's version. This index answers that query
-- alone, in order, without touching the group documents: in SQLite a column stored after a large
-- document costs reading the document's overflow pages.
CREATE INDEX job_groups_versions ON job_groups (job_id, position, name, version);
