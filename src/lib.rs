//! signet: a key management service that signs JWTs with keys that never leave their backend.
//! See docs/design.md for the architecture, the layers and the key lifecycle.

pub mod api;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod http;
pub mod jose;
pub mod providers;
pub mod random;
pub mod rings;
pub mod schedule;
pub mod services;
pub mod startup;
pub mod store;
pub mod tasks;
