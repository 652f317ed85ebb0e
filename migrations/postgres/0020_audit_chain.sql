-- The audit log becomes a tamper-evident hash chain, append-only for the application, with views
-- and a read-only role for auditors (Postgres only; migrations/sqlite/0020 has the chain and the
-- append-only triggers but no roles or views).
--
-- Every record appended from now on carries a gap-free `seq` and
--   hash = hex(SHA-256(prev_hash || canonical record))
-- where prev_hash is the previous record's hash as 32 bytes (32 zero bytes before the first) and
-- the canonical record is, for seq, time, action, principal, ring, kid, detail in that order, each
-- field as `<UTF-8 byte length>:<text>` (decimal numbers as text) or `-` for NULL, concatenated.
-- Records written before this migration (seq < audit_chain.start_seq) are not chained.

ALTER TABLE audit_log ADD COLUMN hash TEXT;
-- seq is assigned under the chain head's lock, never by a sequence: an INSERT that bypasses the
-- chain fails instead of taking a number.
ALTER TABLE audit_log ALTER COLUMN seq DROP DEFAULT;
CREATE INDEX audit_log_by_kid ON audit_log (kid, seq);
CREATE INDEX audit_log_by_action ON audit_log (action, seq);

-- The chain head: every transaction that appends records locks this row first (UPDATE), so
-- appends from every replica are serialised, and a rolled-back append leaves no gap.
CREATE TABLE audit_chain (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    seq        BIGINT NOT NULL,      -- the newest record's seq
    hash       TEXT NOT NULL,        -- the newest record's hash
    start_seq  BIGINT NOT NULL       -- the first chained record
);
INSERT INTO audit_chain (id, seq, hash, start_seq)
SELECT 1, COALESCE(MAX(seq), 0), repeat('0', 64), COALESCE(MAX(seq), 0) + 1 FROM audit_log;

-- Append-only, whoever asks: UPDATE, DELETE and TRUNCATE of audit records raise, and the chain
-- head can only move forward.
CREATE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();

CREATE FUNCTION audit_chain_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' OR NEW.seq < OLD.seq OR NEW.start_seq <> OLD.start_seq THEN
        RAISE EXCEPTION 'the audit chain head only moves forward: % refused', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER audit_chain_forward_only BEFORE UPDATE OR DELETE ON audit_chain
    FOR EACH ROW EXECUTE FUNCTION audit_chain_forward_only();
CREATE TRIGGER audit_chain_no_truncate BEFORE TRUNCATE ON audit_chain
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();

-- Views for auditors. audit_records is the log exactly as stored (to archive it, or to recompute
-- the chain); the others give times as timestamptz and detail as jsonb.
CREATE VIEW audit_records AS
SELECT seq, time, action, principal, ring, kid, detail, hash
FROM audit_log;

CREATE VIEW audit_events AS
SELECT seq, to_timestamp(time / 1000.0) AS time, action, principal, ring, kid,
       detail::jsonb AS detail, hash
FROM audit_log;

-- Every key event: created (rotation requested), published, activated, retiring, retired,
-- destroyed, revoked, with who (a client, `cli` or `scheduler`) and when.
CREATE VIEW key_history AS
SELECT seq, to_timestamp(time / 1000.0) AS time, ring, kid, action AS event, principal,
       detail::jsonb AS detail
FROM audit_log
WHERE action LIKE 'key\_%' OR action IN ('ring_created', 'rotation_requested');

-- Every key with its transition times.
CREATE VIEW key_states AS
SELECT ring, kid, state, algorithm, backend, reference,
       to_timestamp(created_at / 1000.0) AS created_at,
       to_timestamp(published_at / 1000.0) AS published_at,
       to_timestamp(activated_at / 1000.0) AS activated_at,
       to_timestamp(deactivated_at / 1000.0) AS deactivated_at,
       to_timestamp(retired_at / 1000.0) AS retired_at,
       to_timestamp(destroyed_at / 1000.0) AS destroyed_at,
       to_timestamp(revoked_at / 1000.0) AS revoked_at,
       revoked_reason
FROM keys;

-- Every signature: which principal got what signed, with which key. No claim values beyond
-- these were ever stored.
CREATE VIEW signatures_by_key AS
SELECT seq, to_timestamp(time / 1000.0) AS time, ring, kid, principal, action,
       detail::jsonb ->> 'jti' AS jti,
       detail::jsonb ->> 'sub' AS sub,
       detail::jsonb -> 'aud' AS aud,
       to_timestamp((detail::jsonb ->> 'iat')::bigint) AS issued_at,
       to_timestamp((detail::jsonb ->> 'exp')::bigint) AS expires_at,
       detail::jsonb -> 'claims' AS claim_names,
       detail::jsonb ->> 'payload_sha256' AS payload_sha256
FROM audit_log
WHERE action IN ('sign', 'sign_raw');

-- Changes made by people and tools: rings, rotations, revocations, clients.
CREATE VIEW admin_actions AS
SELECT seq, to_timestamp(time / 1000.0) AS time, action, principal, ring, kid,
       detail::jsonb AS detail
FROM audit_log
WHERE action NOT IN ('sign', 'sign_raw', 'request_denied', 'audit_checkpoint')
  AND principal <> 'scheduler';

CREATE VIEW denied_requests AS
SELECT seq, to_timestamp(time / 1000.0) AS time, principal,
       detail::jsonb ->> 'method' AS method,
       detail::jsonb ->> 'path' AS path,
       (detail::jsonb ->> 'status')::int AS status,
       detail::jsonb ->> 'code' AS code,
       detail::jsonb ->> 'reason' AS reason
FROM audit_log
WHERE action = 'request_denied';

CREATE VIEW audit_checkpoints AS
SELECT seq, to_timestamp(time / 1000.0) AS time, kid,
       (detail::jsonb ->> 'upto_seq')::bigint AS upto_seq,
       detail::jsonb ->> 'upto_hash' AS upto_hash,
       detail::jsonb ->> 'jws' AS jws
FROM audit_log
WHERE action = 'audit_checkpoint';

-- Roles. Creating them needs CREATEROLE; without it the migration still succeeds and the grants
-- below are made for whichever of the roles an administrator created beforehand.
--   signet_auditor: SELECT on the views above, nothing else.
--   signet_app:     what `signet serve` needs; audit records may be inserted, never changed.
DO $$
BEGIN
    CREATE ROLE signet_auditor NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation OR insufficient_privilege THEN NULL;
END
$$;
DO $$
BEGIN
    CREATE ROLE signet_app NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation OR insufficient_privilege THEN NULL;
END
$$;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'signet_auditor') THEN
        GRANT SELECT ON audit_records, audit_events, key_history, key_states, signatures_by_key, admin_actions,
            denied_requests, audit_checkpoints TO signet_auditor;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'signet_app') THEN
        -- Every table, and those later migrations create, but never a change to the audit log.
        GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO signet_app;
        ALTER DEFAULT PRIVILEGES IN SCHEMA public
            GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO signet_app;
        REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM signet_app;
        REVOKE INSERT, DELETE, TRUNCATE ON audit_chain FROM signet_app;
        REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON _sqlx_migrations FROM signet_app;
        -- Simple views are updatable with their owner's rights: none for the application.
        REVOKE ALL ON audit_records, audit_events, key_history, key_states, signatures_by_key,
            admin_actions, denied_requests, audit_checkpoints FROM signet_app;
    END IF;
END
$$;
