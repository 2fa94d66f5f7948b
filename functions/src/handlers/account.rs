//! The signed-in user's account and the admin's grants.
//!
//! - `PUT /v1/me/default-model` `{"model"}`: the caller's default model.
//! - `POST /v1/admin/grants` `{"user_id", "amount", "reason", "idempotency_key"?}`:
//!   an admin credits a user; audited in the grants ledger.

use crate::caller::authenticate_user;
use crate::incoming::Request;
use crate::incoming::{header, json_body};
use crate::respond::Response;
use crate::{respond, rest};
use serde_json::json;
use shared::postgrest::Client;
use shared::usage::{parse_default_model, Grant};
use shared::{ApiError, Config};

pub async fn set_default_model(
    req: &Request,
    body: &[u8],
    config: &Config,
) -> Result<Response, ApiError> {
    let caller = authenticate_user(req, config).await?;
    let model = parse_default_model(&json_body(req, body)?)?;
    let call = Client::new(config).rpc(
        "platform",
        "set_default_model",
        &json!({ "p_model": model }),
        caller.rest_auth(),
    );
    Ok(respond::json(200, &rest::rpc(&call, config).await?))
}

pub async fn grant(req: &Request, body: &[u8], config: &Config) -> Result<Response, ApiError> {
    let caller = authenticate_user(req, config).await?;
    let idempotency = header(req, "idempotency-key");
    let grant = Grant::parse(&json_body(req, body)?, idempotency.as_deref())?;
    let call = Client::new(config).rpc(
        "platform",
        "grant_user_tokens",
        &json!({
            "p_user_id": grant.user_id,
            "p_amount": grant.amount,
            "p_reason": grant.reason,
            "p_idempotency_key": grant.idempotency_key,
        }),
        caller.rest_auth(),
    );
    Ok(respond::created(rest::rpc(&call, config).await?))
}
