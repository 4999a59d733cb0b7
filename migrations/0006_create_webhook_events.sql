-- Webhooks: each integration's signing secret, and the deliveries the service accepted.

-- The secret a sender signs deliveries with (HMAC-SHA256). It is kept as is: checking a
-- signature needs it. NULL: the integration takes no webhooks. While a rotation overlaps, the
-- previous secret is accepted too until webhook_previous_expires_at. The API checks the
-- values; a constraint here would quote the row, secrets included, in its error message.
ALTER TABLE integrations
    ADD COLUMN webhook_secret              text,
    ADD COLUMN webhook_previous_secret     text,
    ADD COLUMN webhook_previous_expires_at timestamptz;

-- One row per accepted delivery, written in a transaction of its own before the sender is
-- answered, so nothing accepted is lost. job_id is the partial job it became; NULL while it is
-- pending (the integration was disabled, or the job could not be inserted): the next delivery
-- for the integration and the singleton's rescue pass turn pending events into a job.
-- No foreign key to jobs: cleanup deletes old jobs, and the event keeps saying which it was.
CREATE TABLE webhook_events (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    integration_id bigint      NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    -- The sender's id of the event ("id" in the body, covered by the signature); NULL if none.
    event_id       text,
    -- SHA-256 of what was signed (timestamp "." body): the same delivery sent again is
    -- recognised by it, whatever secret signed it.
    content_sha256 text        NOT NULL,
    signed_at      timestamptz NOT NULL,
    received_at    timestamptz NOT NULL DEFAULT now(),
    keys           jsonb       NOT NULL DEFAULT '[]'::jsonb,
    incremental    boolean     NOT NULL DEFAULT false,
    body_bytes     integer     NOT NULL,
    job_id         bigint,
    enqueued_at    timestamptz
);

-- Replays: a delivery is stored once per integration, by its content and by the sender's id.
CREATE UNIQUE INDEX webhook_events_content_idx ON webhook_events (integration_id, content_sha256);
CREATE UNIQUE INDEX webhook_events_event_id_idx ON webhook_events (integration_id, event_id)
    WHERE event_id IS NOT NULL;
-- The pending events, for the next delivery of their integration and for the rescue pass.
CREATE INDEX webhook_events_pending_idx ON webhook_events (integration_id, id) WHERE job_id IS NULL;
-- Cleanup deletes events that became jobs, oldest first.
CREATE INDEX webhook_events_received_idx ON webhook_events (received_at) WHERE job_id IS NOT NULL;
