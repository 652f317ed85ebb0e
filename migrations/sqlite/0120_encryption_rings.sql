-- Encryption rings (README, Encrypted tokens). Keep in step with
-- migrations/postgres/0120_encryption_rings.sql (which documents the column).
ALTER TABLE rings ADD COLUMN encryption TEXT;

-- A client may be a decryptor. SQLite cannot change a CHECK constraint: the table is rebuilt
-- with every column it has by now.
CREATE TABLE clients_new (
    id                        TEXT PRIMARY KEY,
    name                      TEXT NOT NULL UNIQUE,
    role                      TEXT NOT NULL
        CHECK (role IN ('admin', 'issuer', 'auditor', 'introspector', 'decryptor')),
    rings                     TEXT NOT NULL,      -- JSON array of ring names
    token_hash                TEXT NOT NULL UNIQUE,
    created_at                BIGINT NOT NULL,
    created_by                TEXT NOT NULL,
    revoked_at                BIGINT,
    rate_per_second           BIGINT,
    rate_burst                BIGINT,
    expires_at                BIGINT,
    metadata                  TEXT,
    bound_claims              TEXT,
    previous_token_hash       TEXT,
    previous_token_expires_at BIGINT
);
INSERT INTO clients_new (id, name, role, rings, token_hash, created_at, created_by, revoked_at,
                         rate_per_second, rate_burst, expires_at, metadata, bound_claims,
                         previous_token_hash, previous_token_expires_at)
    SELECT id, name, role, rings, token_hash, created_at, created_by, revoked_at,
           rate_per_second, rate_burst, expires_at, metadata, bound_claims,
           previous_token_hash, previous_token_expires_at
    FROM clients;
DROP TABLE clients;
ALTER TABLE clients_new RENAME TO clients;
CREATE UNIQUE INDEX clients_previous_token_hash ON clients (previous_token_hash);
