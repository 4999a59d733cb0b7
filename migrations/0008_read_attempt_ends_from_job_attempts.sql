-- Each attempt's end is an event of its job (GET /api/v1/jobs/{id}/events), read from the
-- attempt's job_attempts row instead of being written again as a job_events row: a
-- completion writes one row per job, not two.
--
-- event_id is the end event's id, drawn from job_events' own sequence when the row is
-- inserted, so a job's events keep one order whichever table holds them. job_state is the
-- state the attempt left its job in (queued, succeeded, failed or cancelled). Attempts
-- recorded before this migration have both NULL: their ends are job_events rows already.
ALTER TABLE job_attempts
    ADD COLUMN event_id  bigint,
    ADD COLUMN job_state text CHECK (job_state IN ('queued', 'succeeded', 'failed', 'cancelled'));

-- Set apart from ADD COLUMN, so existing rows keep NULL and the table is not rewritten.
DO $$
BEGIN
    EXECUTE format('ALTER TABLE job_attempts ALTER COLUMN event_id SET DEFAULT nextval(%L::regclass)',
                   pg_get_serial_sequence('job_events', 'id'));
END
$$;
