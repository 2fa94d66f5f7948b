//! Just-in-time mirroring of signed-in users (the rules are in
//! `shared::hooks::jit_mirror`): this module holds the isolate's set of users
//! known to be mirrored, and sends `mirror_auth_user` when the rules say so:
//! before a request is served (`ensure_mirrored`), or in the queue consumer
//! before queued usage is recorded (`mirror_queued`).

use crate::rpc;
use shared::auth::VerifiedClaims;
use shared::hooks::jit_mirror::{self, MirroredUsers, Next};
use shared::hooks::{MirrorSource, MirrorUser};
use shared::postgrest::Auth;
use shared::{ApiError, Config};
use std::cell::RefCell;

thread_local! {
    // One set per isolate: a user costs one mirror call per isolate.
    static MIRRORED: RefCell<MirroredUsers> = RefCell::new(MirroredUsers::default());
}

/// The row to mirror for this caller, unless this isolate knows them.
pub fn planned(claims: &VerifiedClaims, config: &Config) -> Option<MirrorUser> {
    MIRRORED.with(|known| jit_mirror::plan(claims, config.default_user_role, &known.borrow()))
}

/// Makes sure the caller has a `platform.users` row before their request is
/// served: nothing to do for a user this isolate already knows, else one
/// idempotent `mirror_auth_user` as the service role (two when the email is
/// refused and the user is mirrored without it).
pub async fn ensure_mirrored(claims: &VerifiedClaims, config: &Config) -> Result<(), ApiError> {
    let Some(user) = planned(claims, config) else {
        return Ok(());
    };
    match mirror(&user, config).await {
        Next::Refuse(err) => Err(err),
        Next::Done | Next::Retry(_) => Ok(()),
    }
}

/// Mirrors a user that queued usage carries, before the consumer records
/// it. `Err` when the batch must be delivered again later
/// (`jit_mirror::holds_back_batch`); a refusal for good is logged, and the
/// user's events are then rejected with their reason.
pub async fn mirror_queued(user: &MirrorUser, config: &Config) -> Result<(), ApiError> {
    if MIRRORED.with(|known| known.borrow().contains(&user.id)) {
        return Ok(());
    }
    let next = mirror(user, config).await;
    if jit_mirror::holds_back_batch(&next) {
        return Err(match next {
            Next::Refuse(err) => err,
            other => ApiError::Internal {
                detail: format!("jit mirror of a queued user ended as {other:?}"),
            },
        });
    }
    if let Next::Refuse(err) = next {
        worker::console_warn!(
            "queued usage of user {} will be rejected: mirroring refused ({})",
            user.id,
            err.code()
        );
    }
    Ok(())
}

/// `mirror_auth_user` for `user`, and once more without the email when the
/// database refuses it; the rules' verdict on the last answer. A user found
/// or made is remembered.
async fn mirror(user: &MirrorUser, config: &Config) -> Next {
    let mut user = user.clone();
    // At most twice: a retried row has no email, and a row without one is
    // never retried.
    loop {
        let answer = rpc::call(config, &user.rpc(MirrorSource::Jit), Auth::ServiceRole).await;
        match jit_mirror::after_mirror(&user, answer.as_ref()) {
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
            Next::Done => {
                MIRRORED.with(|known| known.borrow_mut().remember(&user.id));
                return Next::Done;
            }
            refused => return refused,
        }
    }
}
