-- Token revocation and introspection. Keep in step with
-- migrations/postgres/0080_token_revocation.sql (which documents the table).
CREATE TABLE revoked_tokens (
    seq           BIGINT PRIMARY KEY,
    ring          TEXT NOT NULL,
    jti           TEXT,
    sub           TEXT,
    issued_before BIGINT,
    expires       BIGINT NOT NULL,
    CHECK ((jti IS NULL) <> (sub IS NULL AND issued_before IS NULL))
);
CREATE INDEX revoked_tokens_expires ON revoked_tokens (expires);

-- A client may be an introspector. SQLite cannot change a CHECK constraint: the table is
-- rebuilt with every column it has by now.
CREATE TABLE clients_new (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    role            TEXT NOT NULL CHECK (role IN ('admin', 'issuer', 'auditor', 'introspector')),
    rings           TEXT NOT NULL,      -- JSON array of ring names (issuers and introspectors)
    token_hash      TEXT NOT NULL UNIQUE,
    created_at      BIGINT NOT NULL,
    created_by      TEXT NOT NULL,
    revoked_at      BIGINT,
    rate_per_second BIGINT,
    rate_burst      BIGINT
);
INSERT INTO clients_new (id, name, role, rings, token_hash, created_at, created_by, revoked_at,
                         rate_per_second, rate_burst)
    SELECT id, name, role, rings, token_hash, created_at, created_by, revoked_at,
           rate_per_second, rate_burst
    FROM clients;
DROP TABLE clients;
ALTER TABLE clients_new RENAME TO clients;
