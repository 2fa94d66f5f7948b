//! What Supabase sends the edge about users, and what the edge answers.
//!
//! - [`signup`]: the "before user created" Auth hook and the sign-up policy.
//! - [`user_mirror`]: the Database Webhook on `auth.users` inserts, turned
//!   into the row the edge mirrors into our own schema.
//!
//! Callers verify the sender first ([`crate::auth::webhook`],
//! [`crate::auth::shared_secret`]); these modules only read the payloads.

pub mod signup;
pub mod user_mirror;

pub use signup::{BeforeUserCreated, HookDecision, SignupPolicy};
pub use user_mirror::MirrorUser;
