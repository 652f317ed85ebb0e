-- Encryption rings (README, Encrypted tokens): a ring whose keys receive JWEs instead of signing.
-- Its `algorithm` is a JWE key-management alg (ECDH-ES, ECDH-ES+A256KW, RSA-OAEP,
-- RSA-OAEP-256) and `encryption` its content encryption (A256GCM or A128GCM); a signing ring's
-- `encryption` is NULL.
ALTER TABLE rings ADD COLUMN encryption TEXT;

-- A client may be a decryptor: it decrypts tokens sent to its rings.
ALTER TABLE clients DROP CONSTRAINT clients_role_check;
ALTER TABLE clients ADD CONSTRAINT clients_role_check
    CHECK (role IN ('admin', 'issuer', 'auditor', 'introspector', 'decryptor'));

-- A decryption is a request, like a signature: it is not among the admin actions.
CREATE OR REPLACE VIEW admin_actions AS
SELECT seq, to_timestamp(time / 1000.0) AS time, action, principal, ring, kid,
       detail::jsonb AS detail
FROM audit_log
WHERE action NOT IN ('sign', 'sign_raw', 'decrypt', 'request_denied', 'requests_denied',
                     'audit_checkpoint')
  AND principal <> 'scheduler';
