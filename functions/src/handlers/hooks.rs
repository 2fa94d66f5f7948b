//! The Supabase Auth webhooks.
//!
//! - `POST /auth/hooks/db-user-insert`: the Database Webhook fired after an
//!   insert into `auth.users`; mirrors the user into `platform.users`.
//! - `POST /auth/hooks/before-user-created`: Supabase Auth's HTTP hook, signed
//!   per Standard Webhooks; applies the signup policy and writes nothing.

use crate::incoming::header;
use crate::incoming::Request;
use crate::respond::Response;
use crate::{respond, rpc};
use shared::auth::shared_secret::check_shared_secret;
use shared::auth::webhook::{self, WebhookHeaders};
use shared::hooks::signup::BeforeUserCreated;
use shared::hooks::user_mirror::{MirrorSource, MirrorUser};
use shared::postgrest::Auth;
use shared::{ApiError, Config};

/// The header a Database Webhook carries its shared secret in (set on the
/// webhook in Supabase, from Vault; see the README).
pub const DB_WEBHOOK_SECRET_HEADER: &str = "x-webhook-secret";

fn not_configured(name: &str) -> ApiError {
    ApiError::Misconfigured {
        detail: format!("{name} is not set, so this hook refuses every call"),
    }
}

pub async fn db_user_insert(
    req: &Request,
    body: &[u8],
    config: &Config,
) -> Result<Response, ApiError> {
    let expected = config
        .db_webhook_secret
        .as_deref()
        .ok_or_else(|| not_configured("DB_WEBHOOK_SECRET"))?;
    check_shared_secret(header(req, DB_WEBHOOK_SECRET_HEADER).as_deref(), expected)?;
    let user = MirrorUser::from_webhook(body, config.default_user_role)?;
    let rpc = user.rpc(MirrorSource::Webhook);
    let mirrored = rpc::call(config, &rpc, Auth::ServiceRole).await?;
    Ok(respond::json(200, &mirrored))
}

pub async fn before_user_created(
    req: &Request,
    body: &[u8],
    config: &Config,
) -> Result<Response, ApiError> {
    let secret = config
        .auth_hook_secret
        .as_ref()
        .ok_or_else(|| not_configured("AUTH_HOOK_SECRET"))?;
    let (id, timestamp, signature) = (
        header(req, "webhook-id"),
        header(req, "webhook-timestamp"),
        header(req, "webhook-signature"),
    );
    let headers = WebhookHeaders {
        id: id.as_deref(),
        timestamp: timestamp.as_deref(),
        signature: signature.as_deref(),
    };
    let now = (js_sys::Date::now() / 1000.0) as i64;
    webhook::verify(secret, headers, body, now)?;
    let payload = BeforeUserCreated::parse(body)?;
    let decision = config.signup_policy.decide(&payload);
    // Supabase Auth reads a hook's body only on 200/202, so a refusal is a 200
    // whose body carries the error (supabase/auth#2235).
    Ok(respond::json_text(200, decision.body()))
}
