//! creditphone: the pre-authorization engine behind carrier credit phone purchase (信用购机).
//!
//! `domain` is pure arithmetic and types; `db` the SQL, one module per aggregate; `service` owns
//! transactions; `http` is thin handlers; `jobs` the background work.

pub mod app;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod db;
pub mod domain;
pub mod error;
pub mod http;
pub mod idempotency;
pub mod jobs;
pub mod metrics;
pub mod pg;
pub mod pii;
pub mod service;
pub mod testkit;
