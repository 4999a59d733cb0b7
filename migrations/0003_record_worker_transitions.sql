-- Every lifecycle transition of a worker, oldest first, so the path a worker took can be read
-- back after it ended: [{"state": "INACTIVE", "at": "2026-11-26T10:00:00.123456+00:00"}, …].
-- A worker passes through five states at most, so the array stays small.
ALTER TABLE worker_lifecycle ADD COLUMN transitions jsonb NOT NULL DEFAULT '[]'::jsonb;

-- Rows written before this column existed get their current state as their only transition.
UPDATE worker_lifecycle
SET transitions = jsonb_build_array(jsonb_build_object('state', state, 'at', state_changed_at));
