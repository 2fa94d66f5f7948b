//! `GET /v1/me`: who the edge takes the caller to be — a quick way for a
//! client (and the tests) to check a token or an API key.

use crate::caller::{authenticate, Caller};
use crate::incoming::Request;
use crate::respond;
use crate::respond::Response;
use shared::{ApiError, Config};

pub async fn get(req: &Request, config: &Config) -> Result<Response, ApiError> {
    let body = match authenticate(req, config).await? {
        Caller::User { claims, .. } => serde_json::json!({
            "user_id": claims.sub,
            "via": "access_token",
            "role": claims.role.as_str(),
            "email": claims.email,
            "is_anonymous": claims.is_anonymous,
        }),
        Caller::ApiKey {
            key_id,
            user_id,
            scopes,
        } => serde_json::json!({
            "user_id": user_id,
            "via": "api_key",
            "api_key_id": key_id,
            "scopes": scopes,
        }),
    };
    Ok(respond::json(200, &body))
}
