//! Just-in-time mirroring of signed-in users (the rules are in
//! `shared::hooks::jit_mirror`): this module holds the isolate's set of users
//! known to be mirrored and sends `mirror_auth_user` when the rules say so.

use crate::rest;
use shared::auth::VerifiedClaims;
use shared::hooks::jit_mirror::{self, MirroredUsers, Next};
use shared::hooks::{MirrorSource, MirrorUser};
use shared::postgrest::{Auth, Client};
use shared::{ApiError, Config};
use std::cell::RefCell;

thread_local! {
    // One set per isolate: a user costs one mirror call per isolate.
    static MIRRORED: RefCell<MirroredUsers> = RefCell::new(MirroredUsers::default());
}

/// Makes sure the caller has a `platform.users` row before their request is
/// served: nothing to do for a user this isolate already knows, else one
/// idempotent `mirror_auth_user` as the service role (two when the email is
/// refused and the user is mirrored without it).
pub async fn ensure_mirrored(claims: &VerifiedClaims, config: &Config) -> Result<(), ApiError> {
    let planned =
        MIRRORED.with(|known| jit_mirror::plan(claims, config.default_user_role, &known.borrow()));
    let Some(mut user) = planned else {
        return Ok(());
    };
    loop {
        let answer = mirror(&user, config).await;
        match jit_mirror::after_mirror(&user, answer.as_ref()) {
            Next::Done => {
                MIRRORED.with(|known| known.borrow_mut().remember(&user.id));
                return Ok(());
            }
            // At most once: the retried row has no email, and a row without
            // one is never retried.
            Next::Retry(without_email) => {
                let code = answer
                    .err()
                    .map(|e| e.code().to_string())
                    .unwrap_or_default();
                worker::console_warn!(
                    "user {} mirrored without their email: the database refused it ({code})",
                    user.id
                );
                user = without_email;
            }
            Next::Refuse(err) => return Err(err),
        }
    }
}

async fn mirror(user: &MirrorUser, config: &Config) -> Result<serde_json::Value, ApiError> {
    let call = Client::new(config).rpc(
        "platform",
        "mirror_auth_user",
        &user.rpc_args(MirrorSource::Jit),
        Auth::ServiceRole,
    );
    rest::rpc(&call, config).await
}
