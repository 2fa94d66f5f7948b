//! Everything the edge decides, as plain functions over plain data.
//!
//! Nothing here depends on `worker` or does I/O: the Worker crate (`functions/`)
//! reads the request, asks this crate what to do, performs the `fetch`, and hands
//! the answer back here to be interpreted. That keeps every rule testable with a
//! native `cargo test`.

// Nothing here needs it, and the fuzz targets run without AddressSanitizer.
#![forbid(unsafe_code)]

pub mod auth;
pub mod config;
pub mod cors;
pub mod doctor;
pub mod error;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod health;
pub mod hooks;
pub mod http;
pub mod metrics;
pub mod models;
pub mod openapi;
pub mod page;
pub mod postgrest;
pub mod queue;
pub mod rate_limit;
pub mod retry;
pub mod routes;
pub mod rpc;
pub mod supabase_keys;
pub mod telemetry;
pub mod usage;

pub use config::Config;
pub use error::ApiError;

/// The version reported by `GET /health`, from the workspace manifest.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
