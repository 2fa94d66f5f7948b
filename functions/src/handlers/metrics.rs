//! `GET /v1/metrics`: Prometheus text built from telemetry's lifetime totals
//! (`telemetry.execution_totals`, which isolates' flushes add to) and the
//! summary's freshness. A scraper presents `METRICS_TOKEN`; a person
//! presents an admin's access token (the RPC refuses anyone else).

use crate::caller::authenticate_user;
use crate::incoming::Request;
use crate::respond::Response;
use crate::{respond, rpc};
use shared::auth::shared_secret::check_shared_secret;
use shared::postgrest::Auth;
use shared::rpc::operations::MetricsSnapshot;
use shared::{ApiError, Config};

pub async fn get(req: &Request, config: &Config) -> Result<Response, ApiError> {
    let authorization = crate::incoming::header(req, "authorization");
    let presented = shared::auth::bearer_token(authorization.as_deref()).ok();
    let scraper = match (&config.metrics_token, presented) {
        (Some(expected), Some(token)) => check_shared_secret(Some(token), expected).is_ok(),
        _ => false,
    };
    let snapshot = if scraper {
        rpc::call(config, &MetricsSnapshot {}, Auth::ServiceRole).await?
    } else {
        let caller = authenticate_user(req, config).await?;
        rpc::call(config, &MetricsSnapshot {}, caller.rest_auth()).await?
    };
    let text = shared::metrics::render(&snapshot)?;
    Ok(respond::text(200, shared::metrics::CONTENT_TYPE, text))
}
