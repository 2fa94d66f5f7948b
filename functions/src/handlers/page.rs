//! `GET /` and `GET /config.json`: the usage page's HTML (a static asset,
//! `crate::assets`), with a Content-Security-Policy naming this deployment's
//! Supabase project, and what the page needs to sign in (`shared::page`).
//! Its script and styles are static assets too, served before the Worker
//! runs.

use crate::assets;
use crate::respond::{self, Response};
use shared::page::{self, PageRoute};
use shared::{ApiError, Config};
use worker::Env;

pub async fn get(route: PageRoute, config: &Config, env: &Env) -> Result<Response, ApiError> {
    let response = match route {
        PageRoute::Index => respond::bytes(
            200,
            "text/html; charset=utf-8",
            assets::get(env, page::INDEX_ASSET).await?.to_vec(),
        ),
        PageRoute::Config => respond::json(200, &page::client_config(config)),
    };
    Ok(respond::add_headers(
        response,
        page::security_headers(&config.supabase_url),
    ))
}
