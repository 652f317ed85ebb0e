-- Token revocation and introspection (README, Revocation). Keep in step with
-- migrations/sqlite/0080_token_revocation.sql.
--
-- revoked_tokens: a token (ring, jti) or every token of a subject issued before a time (ring,
-- sub, issued_before), written in the transaction of its token_revoked audit record and keyed by
-- that record's seq. Appends are serialised on the chain head, so rows commit in seq order: a
-- replica that holds every row up to seq s reads only the rows above s. `expires` (seconds
-- since the epoch): no token the row covers can verify after it; the lifecycle tick purges the
-- row then.
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

-- A client may be an introspector: it reads the state of its rings' tokens.
ALTER TABLE clients DROP CONSTRAINT clients_role_check;
ALTER TABLE clients ADD CONSTRAINT clients_role_check
    CHECK (role IN ('admin', 'issuer', 'auditor', 'introspector'));
