-- Refresh-token families (README, Refresh tokens). Keep in step with
-- migrations/postgres/0100_refresh_families.sql (which documents the tables).
CREATE TABLE refresh_families (
    ring       TEXT NOT NULL,
    family     TEXT NOT NULL,
    sub        TEXT NOT NULL,
    expires    BIGINT NOT NULL,
    revoked_at BIGINT,
    PRIMARY KEY (ring, family)
);
CREATE INDEX refresh_families_expires ON refresh_families (expires);

CREATE TABLE refresh_uses (
    ring    TEXT NOT NULL,
    jti     TEXT NOT NULL,
    family  TEXT NOT NULL,
    expires BIGINT NOT NULL,
    PRIMARY KEY (ring, jti)
);
CREATE INDEX refresh_uses_expires ON refresh_uses (expires);
