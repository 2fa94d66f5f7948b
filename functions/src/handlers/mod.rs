//! One module per edge function.

pub mod health;
