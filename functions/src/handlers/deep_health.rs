//! `GET /health?deep=1`: the deployment checklist as the Worker sees it (the
//! same checks as `cargo xtask doctor`, plus what only the Worker knows: its
//! queue, rate limiting and static assets bindings). Only for the operator's `METRICS_TOKEN`: the report names
//! the project's configuration.

use crate::incoming::Request;
use crate::respond::Response;
use crate::rest;
use shared::auth::shared_secret::check_shared_secret;
use shared::doctor::{self, DeepHealth, ProjectAnswers};
use shared::postgrest::{Auth, Client, HttpCall};
use shared::rate_limit::Limiter;
use shared::rpc::operations::DeploymentReport;
use shared::{queue, ApiError, Config};
use worker::Env;

/// Each call is capped so the whole report answers within a few seconds even
/// when the project hangs.
const CALL_TIMEOUT_MS: u32 = 3_000;

pub async fn get(req: &Request, env: &Env, config: &Config) -> Result<Response, ApiError> {
    let authorization = crate::incoming::header(req, "authorization");
    let presented = shared::auth::bearer_token(authorization.as_deref()).ok();
    let allowed = matches!(
        (&config.metrics_token, presented),
        (Some(expected), Some(token)) if check_shared_secret(Some(token), expected).is_ok()
    );
    if !allowed {
        return Err(ApiError::Unauthorized {
            code: "invalid_token",
            message: "the deep health check needs the operator's METRICS_TOKEN",
        });
    }
    let client = Client::new(config);
    let timeout = config.rest_timeout_ms.min(CALL_TIMEOUT_MS);
    let answer = |call: HttpCall| async move {
        rest::send(&call, timeout)
            .await
            .ok()
            .map(|a| (a.status, a.body))
    };
    let answers = ProjectAnswers {
        rest_root: answer(client.probe()).await,
        platform: answer(client.platform_check()).await,
        report: answer(client.rpc(&DeploymentReport {}, Auth::ServiceRole)?).await,
        jwks: answer(HttpCall {
            method: "GET",
            url: config.jwks_url(),
            headers: vec![("accept", "application/json".into())],
            body: None,
        })
        .await,
    };
    let mut checks = doctor::project_checks(&answers);
    checks.push(doctor::check_queue_binding(
        env.queue(queue::PRODUCER_BINDING).is_ok(),
    ));
    let unbound: Vec<&str> = Limiter::ALL
        .into_iter()
        .filter(|l| !crate::rate_limit::is_bound(env, *l))
        .map(Limiter::binding)
        .collect();
    checks.push(doctor::check_rate_limit_bindings(&unbound));
    let mut asset_problem = None;
    for path in [shared::page::INDEX_ASSET, shared::openapi::ASSET] {
        if let Err(e) = crate::assets::get(env, path).await {
            asset_problem = Some(e.log_detail().unwrap_or(e.code()).to_string());
            break;
        }
    }
    checks.push(doctor::check_static_assets(asset_problem.as_deref()));
    Ok(crate::respond::json(200, &DeepHealth::new(checks)))
}
