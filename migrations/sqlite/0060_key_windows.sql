-- How long a key stays in the JWKS follows what it actually signed. Keep in step with
-- migrations/postgres/0060_key_windows.sql (which documents the columns).
ALTER TABLE keys ADD COLUMN last_token_exp BIGINT;
ALTER TABLE keys ADD COLUMN jwks_grace_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE rings ADD COLUMN jwks_cached_until BIGINT;

UPDATE keys SET last_token_exp = 1000 * (
    SELECT max(json_extract(a.detail, '$.exp'))
    FROM audit_log a
    WHERE a.kid = keys.kid AND a.action IN ('sign', 'sign_raw')
      AND json_type(a.detail, '$.exp') = 'integer'
)
WHERE state IN ('active', 'retiring');
UPDATE keys SET jwks_grace_ms = 1000 * (
    SELECT json_extract(r.timing, '$.jwks_max_age_seconds') + json_extract(r.timing, '$.leeway_seconds')
    FROM rings r WHERE r.name = keys.ring
);
