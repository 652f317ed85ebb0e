-- The jti of every token signed through /sign-raw, until it has expired: a jti is signed once
-- (README, API). Rows are written with the signature's audit record and purged by the
-- lifecycle tick an hour (the longest leeway) after their exp.
CREATE TABLE raw_jtis (
    ring TEXT NOT NULL,
    jti  TEXT NOT NULL,
    exp  BIGINT NOT NULL,
    PRIMARY KEY (ring, jti)
);
CREATE INDEX raw_jtis_exp ON raw_jtis (exp);
