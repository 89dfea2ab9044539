-- The scheduler reads failed jobs too (their groups still hold clusters' cutover slots and can be
-- retried), so the partial index covers them.
DROP INDEX jobs_active;
CREATE INDEX jobs_active ON jobs (id) WHERE state IN ('running', 'paused', 'cancelling', 'failed');
