//! The signed-in user's account and the admin's grants.
//!
//! - `PUT /v1/me/default-model` `{"model"}`: the caller's default model.
//! - `POST /v1/admin/grants` `{"user_id" or "email", "amount", "reason", "idempotency_key"?}`:
//!   an admin credits a user; audited in the grants ledger.

use crate::caller::authenticate_user;
use crate::incoming::Request;
use crate::incoming::{header, json_body};
use crate::respond::Response;
use crate::{respond, rpc};
use shared::rpc::account::SetDefaultModel;
use shared::usage::{parse_default_model, Grant};
use shared::{ApiError, Config};

pub async fn set_default_model(
    req: &Request,
    body: &[u8],
    config: &Config,
) -> Result<Response, ApiError> {
    let caller = authenticate_user(req, config).await?;
    let model = parse_default_model(&json_body(req, body)?)?;
    let rpc = SetDefaultModel { model: &model };
    let result = rpc::call(config, &rpc, caller.rest_auth()).await?;
    Ok(respond::json(200, &result))
}

pub async fn grant(req: &Request, body: &[u8], config: &Config) -> Result<Response, ApiError> {
    let caller = authenticate_user(req, config).await?;
    let idempotency = header(req, "idempotency-key");
    let grant = Grant::parse(&json_body(req, body)?, idempotency.as_deref())?;
    let result = rpc::call(config, &grant.rpc(), caller.rest_auth()).await?;
    Ok(respond::created(result))
}
