-- The audit log becomes a tamper-evident hash chain, append-only. Keep in step with
-- migrations/postgres/0020_audit_chain.sql (which documents the chain; the roles and views for
-- auditors are Postgres only).

ALTER TABLE audit_log ADD COLUMN hash TEXT;
CREATE INDEX audit_log_by_kid ON audit_log (kid, seq);
CREATE INDEX audit_log_by_action ON audit_log (action, seq);

CREATE TABLE audit_chain (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    seq        BIGINT NOT NULL,
    hash       TEXT NOT NULL,
    start_seq  BIGINT NOT NULL
);
INSERT INTO audit_chain (id, seq, hash, start_seq)
SELECT 1, COALESCE(MAX(seq), 0), '0000000000000000000000000000000000000000000000000000000000000000',
       COALESCE(MAX(seq), 0) + 1
FROM audit_log;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE refused');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: DELETE refused');
END;
CREATE TRIGGER audit_chain_forward_only BEFORE UPDATE ON audit_chain
WHEN NEW.seq < OLD.seq OR NEW.start_seq <> OLD.start_seq
BEGIN
    SELECT RAISE(ABORT, 'the audit chain head only moves forward');
END;
CREATE TRIGGER audit_chain_no_delete BEFORE DELETE ON audit_chain
BEGIN
    SELECT RAISE(ABORT, 'the audit chain head only moves forward');
END;
