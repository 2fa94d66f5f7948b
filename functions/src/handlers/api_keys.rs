//! API keys for LLM servers, managed by their signed-in owner.
//!
//! - `POST /v1/api-keys` `{"name", "scopes"?, "expires_at"?}` → 201 with the
//!   full key, shown this once; the database keeps only its hash. The edge
//!   generates the key and stores it as the service role naming the user:
//!   nobody else may choose key material.
//! - `GET /v1/api-keys` → the caller's keys, without secrets.
//! - `DELETE /v1/api-keys/{id}` → revokes one.

use crate::caller::authenticate_user;
use crate::incoming::json_body;
use crate::incoming::Request;
use crate::respond::Response;
use crate::{respond, rpc};
use shared::auth::api_key::NewApiKey;
use shared::auth::ApiKey;
use shared::postgrest::Auth;
use shared::rpc::account::{ListApiKeys, RevokeApiKey};
use shared::{ApiError, Config};

pub async fn create(req: &Request, body: &[u8], config: &Config) -> Result<Response, ApiError> {
    let caller = authenticate_user(req, config).await?;
    let input = NewApiKey::parse(json_body(req, body)?)?;
    let mut random = [0u8; shared::auth::api_key::RANDOM_BYTES];
    getrandom::getrandom(&mut random).map_err(|e| ApiError::Internal {
        detail: format!("no randomness for an API key: {e}"),
    })?;
    let key = ApiKey::generate(random);
    // The service role's call, naming the user whose token the edge verified.
    let (user_id, _) = caller.identity();
    let rpc = input.rpc(&key, user_id);
    let mut created = rpc::call(config, &rpc, Auth::ServiceRole).await?;
    created["key"] = serde_json::Value::String(key.full_key.clone());
    Ok(respond::json(201, &created))
}

pub async fn list(req: &Request, config: &Config) -> Result<Response, ApiError> {
    let caller = authenticate_user(req, config).await?;
    let keys = rpc::call(config, &ListApiKeys {}, caller.rest_auth()).await?;
    Ok(respond::json(200, &serde_json::json!({ "api_keys": keys })))
}

pub async fn revoke(req: &Request, id: &str, config: &Config) -> Result<Response, ApiError> {
    let caller = authenticate_user(req, config).await?;
    if !shared::auth::is_uuid(id) {
        return Err(ApiError::NotFound);
    }
    let revoked = rpc::call(config, &RevokeApiKey { key_id: id }, caller.rest_auth()).await?;
    Ok(respond::json(200, &revoked))
}
