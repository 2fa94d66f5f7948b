//! API keys for LLM servers, managed by their signed-in owner.
//!
//! - `POST /v1/api-keys` `{"name", "scopes"?, "expires_at"?}` → 201 with the
//!   full key, shown this once; the database keeps only its hash. The edge
//!   generates the key and stores it as the service role naming the user:
//!   nobody else may choose key material.
//! - `GET /v1/api-keys` → the caller's keys, without secrets.
//! - `DELETE /v1/api-keys/{id}` → revokes one.

use crate::caller::{authenticate_user, Caller};
use crate::incoming::json_body;
use crate::incoming::Request;
use crate::respond::Response;
use crate::{respond, rest};
use shared::auth::api_key::NewApiKey;
use shared::auth::ApiKey;
use shared::{ApiError, Config};

fn rpc_call(
    config: &Config,
    caller: &Caller,
    function: &str,
    args: serde_json::Value,
) -> shared::postgrest::HttpCall {
    shared::postgrest::Client::new(config).rpc("platform", function, &args, caller.rest_auth())
}

pub async fn create(req: &Request, body: &[u8], config: &Config) -> Result<Response, ApiError> {
    let caller = authenticate_user(req, config).await?;
    let input = NewApiKey::parse(json_body(req, body)?)?;
    let mut random = [0u8; shared::auth::api_key::RANDOM_BYTES];
    getrandom::getrandom(&mut random).map_err(|e| ApiError::Internal {
        detail: format!("no randomness for an API key: {e}"),
    })?;
    let key = ApiKey::generate(random);
    let mut args = serde_json::json!({
        "p_name": input.name,
        "p_prefix": key.prefix,
        "p_secret_hash": key.secret_hash_hex,
        "p_expires_at": input.expires_at,
    });
    if let Some(scopes) = input.scopes {
        args["p_scopes"] = serde_json::json!(scopes);
    }
    // create_api_key is the service role's only: a user calling it straight
    // through the REST layer could choose their own key material. The edge,
    // having verified the user's token, names them.
    let (user_id, _) = caller.identity();
    args["p_user_id"] = serde_json::json!(user_id);
    let call = shared::postgrest::Client::new(config).rpc(
        "platform",
        "create_api_key",
        &args,
        shared::postgrest::Auth::ServiceRole,
    );
    let mut created = rest::rpc(&call, config).await?;
    created["key"] = serde_json::Value::String(key.full_key.clone());
    Ok(respond::json(201, &created))
}

pub async fn list(req: &Request, config: &Config) -> Result<Response, ApiError> {
    let caller = authenticate_user(req, config).await?;
    let keys = rest::rpc(
        &rpc_call(config, &caller, "list_api_keys", serde_json::json!({})),
        config,
    )
    .await?;
    Ok(respond::json(200, &serde_json::json!({ "api_keys": keys })))
}

pub async fn revoke(req: &Request, id: &str, config: &Config) -> Result<Response, ApiError> {
    let caller = authenticate_user(req, config).await?;
    if !shared::auth::is_uuid(id) {
        return Err(ApiError::NotFound);
    }
    let revoked = rest::rpc(
        &rpc_call(
            config,
            &caller,
            "revoke_api_key",
            serde_json::json!({ "p_key_id": id }),
        ),
        config,
    )
    .await?;
    Ok(respond::json(200, &revoked))
}
