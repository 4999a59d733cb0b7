-- Bearer tokens for the REST API. Only a SHA-256 hash of each token is kept: the token itself
-- is shown once, when it is created. Tokens are 256 random bits, so a fast hash is enough; a
-- leaked table gives no usable token.
CREATE TABLE api_tokens (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text        NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$'),
    -- read: GET everything; write: also create and change; admin: also tokens and workers.
    scope        text        NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
    token_sha256 bytea       NOT NULL UNIQUE,
    -- The first characters of the token, so a person can tell which token a log line means.
    prefix       text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
