-- Client lifecycle (README, Clients). Keep in step with
-- migrations/postgres/0110_client_lifecycle.sql (which documents the columns).
ALTER TABLE clients ADD COLUMN expires_at BIGINT;
ALTER TABLE clients ADD COLUMN metadata TEXT;
ALTER TABLE clients ADD COLUMN bound_claims TEXT;
ALTER TABLE clients ADD COLUMN previous_token_hash TEXT;
ALTER TABLE clients ADD COLUMN previous_token_expires_at BIGINT;
CREATE UNIQUE INDEX clients_previous_token_hash ON clients (previous_token_hash);
