-- A step's report rides on the event of its success instead of the group's document, which
-- every later step of the group rewrites; the job's detail reads the newest one per step.
ALTER TABLE job_events ADD COLUMN output TEXT;
