-- Replicas refresh only what changed. Keep in step with
-- migrations/postgres/0070_ring_revisions.sql (which documents the columns).
ALTER TABLE rings ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;
ALTER TABLE rings ADD COLUMN combined_jwks BIGINT NOT NULL DEFAULT 1; -- 0 or 1
CREATE INDEX rings_by_revision ON rings (revision);

-- A ring's keys, and the keys the lifecycle tick may have to move, without reading every key.
CREATE INDEX keys_by_ring ON keys (ring, created_at);
DROP INDEX keys_by_state;
CREATE INDEX keys_by_state ON keys (state, destroy_after);
