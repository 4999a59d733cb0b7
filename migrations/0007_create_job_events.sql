-- What a job did, in order, for watching it and reading its history: each attempt's start and
-- end, the progress totals its sync published, and its plugins' log lines (info and above).
-- Runners buffer their events and write them in batches; the cap on log lines per attempt is
-- theirs (setting job_event_log_lines), the lines past it are counted in one last event.
--
-- `id` is the cursor of GET /api/v1/jobs/{id}/events. One job's events are written by one
-- writer at a time, each batch committed before the next, and the attempt's end by the
-- completion that follows them, so a job's ids grow in the order its events became visible.
-- No foreign key to jobs, as for job_attempts: checking it would lock the job row for every
-- batch; cleanup and integration deletion remove a job's events with the job.
CREATE TABLE job_events (
    id      bigint      GENERATED ALWAYS AS IDENTITY,
    job_id  bigint      NOT NULL,
    attempt integer     NOT NULL,
    -- When it happened, which for a buffered event is before it was written.
    at      timestamptz NOT NULL DEFAULT now(),
    -- state: an attempt started or ended; progress: the totals (data: fetched, diffed,
    -- applied, failed); log: a log line of the job's plugins or of the sync engine.
    kind    text        NOT NULL CHECK (kind IN ('state', 'progress', 'log')),
    level   text        NOT NULL CHECK (level IN ('info', 'warn', 'error')),
    message text        NOT NULL,
    data    jsonb,
    -- The only index: a job's events in order, for the API's pages and for deleting them.
    PRIMARY KEY (job_id, id)
);
