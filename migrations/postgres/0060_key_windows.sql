-- How long a key stays in the JWKS follows what it actually signed (docs/design.md, Timing
-- invariants). Keep in step with migrations/sqlite/0060_key_windows.sql.
--
-- keys.last_token_exp: the latest exp (Unix ms) of any token the key signed, raised in the
-- transaction that commits the signatures' audit records.
-- keys.jwks_grace_ms: what the key keeps in the JWKS after that exp (leeway + JWKS max-age),
-- the longest its ring gave it while the key was published.
-- rings.jwks_cached_until: until when a JWKS served under a longer max-age than today's may
-- still be cached; no key of the ring activates before then.
ALTER TABLE keys ADD COLUMN last_token_exp BIGINT;
ALTER TABLE keys ADD COLUMN jwks_grace_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE rings ADD COLUMN jwks_cached_until BIGINT;

-- Keys that may still have valid tokens learn their latest exp from the audit log.
UPDATE keys SET last_token_exp = 1000 * (
    SELECT max((a.detail::jsonb ->> 'exp')::numeric)::bigint
    FROM audit_log a
    WHERE a.kid = keys.kid AND a.action IN ('sign', 'sign_raw')
      AND jsonb_typeof(a.detail::jsonb -> 'exp') = 'number'
)
WHERE state IN ('active', 'retiring');
UPDATE keys SET jwks_grace_ms = 1000 * (
    SELECT (r.timing::jsonb ->> 'jwks_max_age_seconds')::bigint
         + (r.timing::jsonb ->> 'leeway_seconds')::bigint
    FROM rings r WHERE r.name = keys.ring
);
