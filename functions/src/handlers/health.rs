//! `GET /health`: the version, the kind of API keys, and whether the REST
//! layer answers.

use crate::rest;
use shared::health::{HealthReport, RestStatus};
use shared::postgrest::Client;
use shared::Config;
use worker::Response;

pub async fn get(config: &Config) -> Response {
    let probe = Client::new(config).probe();
    // Health must answer quickly even when REST hangs: cap the probe at 2 s.
    let answer = rest::send(&probe, config.rest_timeout_ms.min(2_000)).await;
    let rest = RestStatus::from_answer(answer.ok().map(|a| a.status));
    crate::respond::json(200, &HealthReport::new(config.api_key_scheme(), rest))
}
