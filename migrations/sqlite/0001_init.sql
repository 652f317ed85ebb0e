-- signet schema for SQLite (the embedded default). Times are Unix milliseconds (UTC).
-- Keep in step with migrations/postgres/0001_init.sql.

CREATE TABLE rings (
    name        TEXT PRIMARY KEY,
    backend     TEXT NOT NULL,
    algorithm   TEXT NOT NULL,
    key_spec    TEXT NOT NULL,
    policy      TEXT NOT NULL,   -- JSON: issuer, audiences, max_ttl_seconds, claims rules, size cap
    timing      TEXT NOT NULL,   -- JSON: jwks_max_age, publish_lead, leeway, retain_retired
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE keys (
    id              TEXT PRIMARY KEY,          -- signet's id; backends tie their objects to it
    ring            TEXT NOT NULL REFERENCES rings (name) ON DELETE CASCADE,
    state           TEXT NOT NULL CHECK (state IN
                        ('pending', 'published', 'active', 'retiring', 'retired', 'destroyed', 'revoked')),
    algorithm       TEXT NOT NULL,
    key_spec        TEXT NOT NULL,
    backend         TEXT NOT NULL,
    reference       TEXT,                      -- backend URI; NULL only while pending
    kid             TEXT UNIQUE,               -- RFC 7638 thumbprint; NULL only while pending
    public_jwk      TEXT,
    created_at      BIGINT NOT NULL,
    published_at    BIGINT,
    activate_after  BIGINT,
    activated_at    BIGINT,
    deactivated_at  BIGINT,
    retire_after    BIGINT,
    retired_at      BIGINT,
    destroy_after   BIGINT,
    destroyed_at    BIGINT,
    revoked_at      BIGINT,
    revoked_reason  TEXT,
    CHECK (state = 'pending' OR (reference IS NOT NULL AND kid IS NOT NULL))
);
-- Exactly one signing key per ring, enforced here and not only in code.
CREATE UNIQUE INDEX keys_one_active_per_ring ON keys (ring) WHERE state = 'active';
-- At most one key on its way in (being generated or published ahead of activation).
CREATE UNIQUE INDEX keys_one_upcoming_per_ring ON keys (ring) WHERE state IN ('pending', 'published');
CREATE INDEX keys_by_state ON keys (state);

CREATE TABLE clients (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'issuer', 'auditor')),
    rings       TEXT NOT NULL,      -- JSON array of ring names (issuers only)
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL,
    revoked_at  BIGINT
);

CREATE TABLE audit_log (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    time       BIGINT NOT NULL,
    action     TEXT NOT NULL,
    principal  TEXT NOT NULL,
    ring       TEXT,
    kid        TEXT,
    detail     TEXT NOT NULL        -- JSON
);
CREATE INDEX audit_log_by_ring ON audit_log (ring, seq);
