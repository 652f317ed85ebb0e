-- Refresh-token families (README, Refresh tokens). Keep in step with
-- migrations/sqlite/0100_refresh_families.sql.
--
-- refresh_families: a family of refresh tokens (their `sid`), made by the first exchange of one
-- of its tokens; `revoked_at` (milliseconds) once a spent token of it was presented again.
-- refresh_uses: each spent refresh token (ring, jti), claimed in the transaction of its
-- refresh_token_used audit record: a second claim of the same token fails on the key, so one
-- exchange of a token succeeds, however many replicas race. `expires` (seconds since the
-- epoch): no token the row concerns can verify after it; the lifecycle tick purges the row then.
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
