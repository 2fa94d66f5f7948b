//! One module per edge function.

pub mod account;
pub mod api_keys;
pub mod deep_health;
pub mod health;
pub mod hooks;
pub mod me;
pub mod metrics;
pub mod models;
pub mod openapi;
pub mod page;
pub mod usage;
