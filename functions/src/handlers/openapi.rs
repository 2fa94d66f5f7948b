//! `GET /v1/openapi.json`: the OpenAPI document, read from the static assets
//! (`crate::assets`), where `cargo xtask build-worker` writes
//! `shared/src/openapi.json` without its indentation.

use crate::assets;
use crate::respond::{self, Response};
use shared::ApiError;
use worker::Env;

pub async fn get(env: &Env) -> Result<Response, ApiError> {
    let document = assets::get(env, shared::openapi::ASSET).await?;
    Ok(respond::json_bytes(200, document.to_vec()))
}
