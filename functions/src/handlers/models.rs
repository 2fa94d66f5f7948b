//! The model catalogue: listed for anyone, managed by admins.
//!
//! - `GET /v1/models`: the active models with their input and output prices
//!   (no sign-in needed).
//! - `PUT /v1/admin/models/{name}` `{"provider", "context_size",
//!   "input_cost_per_1k_tokens", "output_cost_per_1k_tokens", "repo_url"?,
//!   "metadata"?, "is_active"?}`: an admin creates (201) or changes (200) a
//!   model. Usage already recorded keeps the cost it was recorded with.
//! - `DELETE /v1/admin/models/{name}`: an admin deactivates a model (200);
//!   new usage against it is refused, its row and ledger stay.
//!
//! Whether the caller is an admin is decided by the RPCs, from the forwarded
//! access token.

use crate::caller::authenticate_user;
use crate::incoming::json_body;
use crate::incoming::Request;
use crate::respond::Response;
use crate::{respond, rpc};
use serde_json::json;
use shared::models::{model_name_from_segment, put_answer, ModelPut};
use shared::postgrest::Auth;
use shared::rpc::catalogue::{DeactivateModel, ListModels};
use shared::{ApiError, Config};

pub async fn list(config: &Config) -> Result<Response, ApiError> {
    let models = rpc::call(config, &ListModels {}, Auth::Anon).await?;
    Ok(respond::json(200, &json!({ "models": models })))
}

pub async fn put(
    req: &Request,
    name: &str,
    body: &[u8],
    config: &Config,
) -> Result<Response, ApiError> {
    let caller = authenticate_user(req, config).await?;
    let model = ModelPut::parse(name, &json_body(req, body)?)?;
    let (status, body) = put_answer(rpc::call(config, &model.rpc(), caller.rest_auth()).await?);
    Ok(respond::json(status, &body))
}

pub async fn deactivate(req: &Request, name: &str, config: &Config) -> Result<Response, ApiError> {
    let caller = authenticate_user(req, config).await?;
    let name = model_name_from_segment(name)?;
    let rpc = DeactivateModel { name: &name };
    let result = rpc::call(config, &rpc, caller.rest_auth()).await?;
    Ok(respond::json(200, &result))
}
