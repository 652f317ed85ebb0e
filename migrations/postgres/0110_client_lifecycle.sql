-- Client lifecycle (README, Clients). Keep in step with
-- migrations/sqlite/0110_client_lifecycle.sql.
--
-- expires_at (milliseconds): the client's tokens are refused from then on; NULL: never.
-- metadata, bound_claims: JSON objects (bound_claims: claim name -> the value every token the
-- client signs carries); NULL: none.
-- previous_token_hash: the SHA-256 of the token the last rotation replaced, still accepted
-- until previous_token_expires_at (milliseconds). Looked up like token_hash, so indexed; a
-- token's hash is never another's.
ALTER TABLE clients ADD COLUMN expires_at BIGINT;
ALTER TABLE clients ADD COLUMN metadata TEXT;
ALTER TABLE clients ADD COLUMN bound_claims TEXT;
ALTER TABLE clients ADD COLUMN previous_token_hash TEXT;
ALTER TABLE clients ADD COLUMN previous_token_expires_at BIGINT;
CREATE UNIQUE INDEX clients_previous_token_hash ON clients (previous_token_hash);
