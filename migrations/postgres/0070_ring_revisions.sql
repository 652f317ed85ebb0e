-- Replicas refresh only what changed (docs/design.md, The view). Keep in step with
-- migrations/sqlite/0070_ring_revisions.sql.
--
-- rings.revision: the audit chain's seq of the latest change to the ring, its keys or its
-- schedule, set in the transaction that commits the change's records. Appends are serialised on
-- the chain head, so revisions commit in order: a replica that has read every ring up to
-- revision r reads only the rings above r to catch up.
-- rings.combined_jwks: whether the ring's keys are listed in /.well-known/jwks.json. Rings made
-- before this migration stay listed; new rings opt in.
ALTER TABLE rings ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;
ALTER TABLE rings ADD COLUMN combined_jwks BIGINT NOT NULL DEFAULT 1; -- 0 or 1
CREATE INDEX rings_by_revision ON rings (revision);

-- A ring's keys, and the keys the lifecycle tick may have to move, without reading every key.
CREATE INDEX keys_by_ring ON keys (ring, created_at);
DROP INDEX keys_by_state;
CREATE INDEX keys_by_state ON keys (state, destroy_after);
