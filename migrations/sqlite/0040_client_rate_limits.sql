-- A client's own limit on sign requests (README, Limits); NULL: the server's default.
ALTER TABLE clients ADD COLUMN rate_per_second BIGINT;
ALTER TABLE clients ADD COLUMN rate_burst BIGINT;
