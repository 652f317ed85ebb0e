//! signet: a key management service that signs JWTs with keys that never leave their backend.
//! See docs/design.md for the architecture, the layers and the key lifecycle.

pub(crate) mod api;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub(crate) mod http;
pub mod jose;
pub(crate) mod json;
pub mod jwe;
pub mod metrics;
#[cfg(test)]
mod proptests;
pub(crate) mod providers;
pub mod random;
pub mod rings;
pub(crate) mod schedule;
pub mod services;
pub mod startup;
pub mod store;
pub(crate) mod tasks;
pub mod tokens;
