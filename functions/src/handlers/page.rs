//! `GET /` and `GET /config.json`: the usage page's HTML, with a
//! Content-Security-Policy naming this deployment's Supabase project, and
//! what the page needs to sign in (`shared::page`). Its script and styles
//! are static assets, served before the Worker runs.

use crate::respond::{self, Response};
use shared::page::{self, PageRoute};
use shared::Config;

pub fn get(route: PageRoute, config: &Config) -> Response {
    let response = match route {
        PageRoute::Index => respond::text(
            200,
            "text/html; charset=utf-8",
            page::INDEX_HTML.to_string(),
        ),
        PageRoute::Config => respond::json(200, &page::client_config(config)),
    };
    respond::add_headers(response, page::security_headers(&config.supabase_url))
}
