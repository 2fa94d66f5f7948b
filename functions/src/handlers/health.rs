//! `GET /health`: the version, the kind of API keys, whether the REST layer
//! answers, and whether the `platform` schema behind it is served and
//! migrated.

use crate::respond::Response;
use crate::rest;
use futures_util::future::join;
use shared::health::{HealthReport, PlatformStatus, RestStatus};
use shared::postgrest::{interpret_rpc, Client};
use shared::Config;

pub async fn get(config: &Config) -> Response {
    let client = Client::new(config);
    let (probe, check) = (client.probe(), client.platform_check());
    // Health must answer quickly even when REST hangs: cap both calls at 2 s,
    // made side by side.
    let timeout_ms = config.rest_timeout_ms.min(2_000);
    let (root, platform) = join(
        rest::send(&probe, timeout_ms),
        rest::send(&check, timeout_ms),
    )
    .await;
    let rest = RestStatus::from_answer(root.ok().map(|a| a.status));
    let platform_status = platform.as_ref().ok().map(|a| a.status);
    let platform = platform.and_then(|a| interpret_rpc(a.status, &a.body));
    // The body says only the code; the fix is in the detail, for the log.
    if let Err(err) = &platform {
        if let Some(detail) = err.log_detail() {
            worker::console_error!("/health: {} {}: {}", err.status(), err.code(), detail);
        }
    }
    let platform = PlatformStatus::from_result(platform_status, &platform);
    crate::respond::json(
        200,
        &HealthReport::new(config.api_key_scheme(), rest, platform),
    )
}
