-- The job queue, the worker registry and the autoscaling output.
-- Runs with search_path set to the installation's schema: no name here is schema-qualified.

CREATE TABLE integrations (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text        NOT NULL UNIQUE CHECK (name <> ''),
    enabled    boolean     NOT NULL DEFAULT true,
    config     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One narrow row per integration that says which job holds it. Claiming a job sets
-- running_job_id under a row lock, so two claimers can never both start a job of the
-- same integration; kept apart from `integrations` so claims rewrite a small row. The
-- running jobs are the lanes' running_job_id: heartbeats and rescue start here.
-- Every claim and completion rewrites a lane row: the free space of a low fillfactor lets
-- each new version stay on its page (a HOT update, pruned on access), so the table stays a
-- few pages long however many jobs pass through it.
CREATE TABLE job_lanes (
    integration_id bigint PRIMARY KEY REFERENCES integrations (id) ON DELETE CASCADE,
    running_job_id bigint
) WITH (fillfactor = 30, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);

-- SET search_path FROM CURRENT pins the installation schema: an insert from a session with
-- another search_path still finds job_lanes.
CREATE FUNCTION open_job_lane() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO job_lanes (integration_id) VALUES (NEW.id);
    RETURN NEW;
END
$$;

CREATE TRIGGER integrations_open_job_lane
    AFTER INSERT ON integrations
    FOR EACH ROW EXECUTE FUNCTION open_job_lane();

CREATE TABLE jobs (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    integration_id      bigint      NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    kind                text        NOT NULL CHECK (kind IN ('full', 'partial')),
    state               text        NOT NULL DEFAULT 'queued'
                        CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    -- Lower runs first.
    priority            smallint    NOT NULL DEFAULT 0,
    run_at              timestamptz NOT NULL DEFAULT now(),
    attempt             integer     NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts        integer     NOT NULL DEFAULT 5 CHECK (max_attempts >= 1),
    -- A queued job that may absorb later requests for the same integration and kind.
    mergeable           boolean     NOT NULL DEFAULT true,
    -- Attempts handed back unfinished (a worker draining); they do not count against
    -- max_attempts, but `attempt` still rises so it stays a fencing token.
    releases            integer     NOT NULL DEFAULT 0 CHECK (releases >= 0),
    max_runtime_s       integer     NOT NULL DEFAULT 28800 CHECK (max_runtime_s > 0),
    worker_id           uuid,
    claimed_at          timestamptz,
    deadline_at         timestamptz,
    finished_at         timestamptz,
    payload             jsonb       NOT NULL DEFAULT '{}'::jsonb,
    result              jsonb,
    last_error          text,
    cancel_requested_at timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    -- worker_id stays on finished jobs (who ran it last); a re-queued job has none.
    CHECK (state <> 'running' OR worker_id IS NOT NULL)
)
-- Claims and completions rewrite every job twice. No index of this table names a column that
-- changes (queued jobs are found through job_queue, running ones through job_lanes), and the
-- low fillfactor leaves room on each page for both new versions, so those rewrites are HOT
-- updates that touch no index. Vacuum runs early (after 2 % of the table changed), unthrottled.
WITH (fillfactor = 30, autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_cost_delay = 0);

-- The jobs of one integration, newest first.
CREATE INDEX jobs_integration_idx ON jobs (integration_id, id DESC);

-- The queued jobs, one narrow row each, with the columns the claim orders by. A claim deletes
-- the row and marks the job running in the same statement; a job going back to the queue gets
-- a new row. Kept in step with jobs.state, jobs.priority and jobs.run_at by the queue's
-- statements alone (no foreign key: its check would lock the job row on every insert).
CREATE TABLE job_queue (
    job_id         bigint      PRIMARY KEY,
    integration_id bigint      NOT NULL,
    kind           text        NOT NULL,
    priority       smallint    NOT NULL,
    run_at         timestamptz NOT NULL,
    -- A job that may absorb later requests for the same integration and kind.
    mergeable      boolean     NOT NULL
) WITH (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_cost_delay = 0);

-- The claim scan: due queued jobs in priority, run_at, id order.
CREATE INDEX job_queue_claim_idx ON job_queue (priority, run_at, job_id);
-- At most one mergeable queued job per integration and kind.
CREATE UNIQUE INDEX job_queue_merge_idx ON job_queue (integration_id, kind) WHERE mergeable;
-- Queued jobs of one integration: a completion that frees an integration's lane wakes workers
-- only when another job of it is waiting.
CREATE INDEX job_queue_integration_idx ON job_queue (integration_id);

-- One row per finished attempt (succeeded, failed, retried, rescued, cancelled, handed back).
-- No foreign key to jobs: checking it would lock each job row once more on the completion
-- path; cleanup deletes a job's attempts together with the job.
CREATE TABLE job_attempts (
    job_id      bigint      NOT NULL,
    attempt     integer     NOT NULL,
    worker_id   uuid,
    started_at  timestamptz,
    finished_at timestamptz NOT NULL DEFAULT now(),
    outcome     text        NOT NULL
                CHECK (outcome IN ('succeeded', 'failed', 'retry', 'rescued', 'cancelled', 'released')),
    error       text,
    PRIMARY KEY (job_id, attempt)
);

CREATE TABLE worker_lifecycle (
    id                uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    state             text        NOT NULL DEFAULT 'INACTIVE'
                      CHECK (state IN ('INACTIVE', 'ACTIVE', 'RETIRED', 'TERMINATING', 'TERMINATED')),
    started_at        timestamptz NOT NULL DEFAULT now(),
    state_changed_at  timestamptz NOT NULL DEFAULT now(),
    last_heartbeat_at timestamptz NOT NULL DEFAULT now(),
    capacity          integer     NOT NULL DEFAULT 1 CHECK (capacity >= 1),
    running_jobs      integer     NOT NULL DEFAULT 0,
    version           text        NOT NULL DEFAULT '',
    host              text        NOT NULL DEFAULT '',
    pid               integer
);

CREATE INDEX worker_lifecycle_state_idx ON worker_lifecycle (state);

-- Read by KEDA: `SELECT count FROM desired_pod_count` must always return exactly one
-- non-NULL integer. The inputs of the computation that produced it sit beside it.
CREATE TABLE desired_pod_count (
    singleton               boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    count                   integer     NOT NULL DEFAULT 0 CHECK (count >= 0),
    ongoing_jobs            integer     NOT NULL DEFAULT 0,
    runs_in_retired_workers integer     NOT NULL DEFAULT 0,
    retired_workers         integer     NOT NULL DEFAULT 0,
    queued_jobs             integer     NOT NULL DEFAULT 0,
    policy                  text        NOT NULL DEFAULT 'initial',
    computed_at             timestamptz NOT NULL DEFAULT now()
);

INSERT INTO desired_pod_count DEFAULT VALUES;

CREATE FUNCTION keep_desired_pod_count_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'desired_pod_count must keep exactly one row; update it instead';
END
$$;

CREATE TRIGGER desired_pod_count_keep_row
    BEFORE DELETE OR TRUNCATE ON desired_pod_count
    FOR EACH STATEMENT EXECUTE FUNCTION keep_desired_pod_count_row();
