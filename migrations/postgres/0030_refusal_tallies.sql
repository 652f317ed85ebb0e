-- Requests refused without authentication, or over a rate limit, are recorded in aggregate:
-- one `requests_denied` record per principal, source, status, code and minute, with a count
-- (README, Audit log). The auditor views show both kinds; a single denial counts as 1.
CREATE OR REPLACE VIEW admin_actions AS
SELECT seq, to_timestamp(time / 1000.0) AS time, action, principal, ring, kid,
       detail::jsonb AS detail
FROM audit_log
WHERE action NOT IN ('sign', 'sign_raw', 'request_denied', 'requests_denied', 'audit_checkpoint')
  AND principal <> 'scheduler';

CREATE OR REPLACE VIEW denied_requests AS
SELECT seq, to_timestamp(time / 1000.0) AS time, principal,
       detail::jsonb ->> 'method' AS method,
       detail::jsonb ->> 'path' AS path,
       (detail::jsonb ->> 'status')::int AS status,
       detail::jsonb ->> 'code' AS code,
       detail::jsonb ->> 'reason' AS reason,
       COALESCE((detail::jsonb ->> 'count')::bigint, 1) AS count,
       detail::jsonb ->> 'source' AS source
FROM audit_log
WHERE action IN ('request_denied', 'requests_denied');
