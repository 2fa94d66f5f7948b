//! What Supabase tells the edge about users, and the rows the edge makes of it.
//!
//! - [`signup`]: the "before user created" Auth hook and the sign-up policy.
//! - [`user_mirror`]: the Database Webhook on `auth.users` inserts, turned
//!   into the row the edge mirrors into our own schema ([`MirrorUser`]).
//! - [`jit_mirror`]: the same row from a verified access token, for a user
//!   the webhook has not mirrored: when to mirror, and what to do with the
//!   answer.
//!
//! Callers verify the sender first ([`crate::auth::webhook`],
//! [`crate::auth::shared_secret`], [`crate::auth::jwt`]); these modules only
//! read what was verified.

pub mod jit_mirror;
pub mod signup;
pub mod user_mirror;

pub use jit_mirror::MirroredUsers;
pub use signup::{BeforeUserCreated, HookDecision, SignupPolicy};
pub use user_mirror::{MirrorSource, MirrorUser};
