-- Tasks any agent of a cluster may take wait here until one of them connects.
CREATE INDEX tasks_unassigned ON tasks (cluster_id, id) WHERE agent_id IS NULL AND state = 'pending';
