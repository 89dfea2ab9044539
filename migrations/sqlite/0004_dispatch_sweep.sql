-- Every replica's gateway sweeps for tasks nobody has pushed yet (their agent may be connected to
-- another replica) and for agents revoked elsewhere whose streams it holds.
CREATE INDEX tasks_pending ON tasks (id) WHERE state = 'pending';
CREATE INDEX agents_by_revoked_at ON agents (revoked_at) WHERE revoked_at IS NOT NULL;
