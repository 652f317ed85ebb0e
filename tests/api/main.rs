//! Integration tests: the real server on a real socket (port 0), against SQLite and a real
//! Postgres (started by `scripts/test`, or `SIGNET_TEST_DATABASE_URL`).

mod certs;
mod helpers;
mod private_postgres;

mod access;
mod audit;
mod aws_kms;
mod cli;
mod clients;
mod contract;
mod decryption;
mod durability;
mod encryption;
mod hostile;
mod interop;
mod jwks;
mod lifecycle;
mod migrations;
mod operability;
mod pkcs11;
mod postgres_tls;
mod profiles;
mod readme;
mod restart;
mod scale;
mod schedule;
mod signing;
mod startup;
mod store;
mod tls;
mod tokens;
mod windows;
