-- What the sync engine keeps between and during jobs.

-- The cursor an incremental fetch of one stream of one side of an integration reached. It is
-- written only after every change it covers was applied.
CREATE TABLE sync_cursors (
    integration_id bigint      NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    stream         text        NOT NULL,
    side           text        NOT NULL CHECK (side IN ('source', 'target')),
    cursor         text        NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (integration_id, stream, side)
);

-- Records an integration created on a side and has not deleted since: the conservative
-- deletion policy deletes only these. record_key is the key's field texts joined by U+001F.
CREATE TABLE sync_created_records (
    integration_id bigint      NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    stream         text        NOT NULL,
    side           text        NOT NULL CHECK (side IN ('source', 'target')),
    record_key     text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (integration_id, stream, side, record_key)
);

-- Totals of a running (or finished) job, rewritten while it runs: records fetched from either
-- side, records compared, changes applied (noop included) and changes a plugin did not apply.
CREATE TABLE job_progress (
    job_id     bigint      PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    fetched    bigint      NOT NULL DEFAULT 0,
    diffed     bigint      NOT NULL DEFAULT 0,
    applied    bigint      NOT NULL DEFAULT 0,
    failed     bigint      NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 50);
