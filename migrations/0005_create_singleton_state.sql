-- What the singleton role keeps: its leader lease, the cron fires it made, and the settings
-- behind desired_pod_count.

-- One row per lease. The singleton that holds `term` until `expires_at` leads; every write it
-- makes first locks this row FOR SHARE and checks its term in the same transaction, so a
-- leader that paused past its lease changes nothing (a new holder's UPDATE waits for those
-- transactions, and theirs for it). `holder` stays after a release for operators to read.
CREATE TABLE leader_lease (
    name        text        PRIMARY KEY,
    holder      text        NOT NULL DEFAULT '',
    term        bigint      NOT NULL DEFAULT 0 CHECK (term >= 0),
    acquired_at timestamptz,
    expires_at  timestamptz NOT NULL DEFAULT '-infinity'
);

INSERT INTO leader_lease (name) VALUES ('singleton');

-- One row per cron fire: the unique key (integration, fire time) is what keeps a slot from
-- firing twice, also across a failover. The latest fire of an integration is where its
-- schedule resumes; cleanup keeps it whatever its age.
CREATE TABLE cron_fires (
    integration_id bigint      NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    fire_time      timestamptz NOT NULL,
    job_id         bigint,
    fired_at       timestamptz NOT NULL DEFAULT now(),
    term           bigint      NOT NULL,
    PRIMARY KEY (integration_id, fire_time)
);

-- The rest of the inputs of the last computation, and who computed it.
ALTER TABLE desired_pod_count
    ADD COLUMN worker_capacity        integer NOT NULL DEFAULT 1,
    ADD COLUMN minimum_active_workers integer NOT NULL DEFAULT 0,
    ADD COLUMN active_workers         integer NOT NULL DEFAULT 0,
    ADD COLUMN leader                 text    NOT NULL DEFAULT '',
    ADD COLUMN term                   bigint  NOT NULL DEFAULT 0;

-- Cleanup finds old jobs and ended workers without reading every row. created_at never
-- changes, so claims and completions stay HOT updates (an index on finished_at would not).
CREATE INDEX jobs_created_at_idx ON jobs (created_at);
CREATE INDEX worker_lifecycle_ended_idx ON worker_lifecycle (state_changed_at) WHERE state = 'TERMINATED';
