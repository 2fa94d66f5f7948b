//! The cron trigger (`[triggers] crons` in wrangler.toml): refreshes the daily
//! token summary, returns expired reservations' tokens to their users and
//! prunes telemetry older than its retention, all through RPCs with the
//! service role, and logs one structured line per run. The refresh counts
//! itself in telemetry and skips when another run holds its lock; transient
//! failures are retried a few times. Each run is counted as a call of `cron`,
//! `ok` when every step succeeded.

use crate::{env_config, rest, telemetry};
use serde_json::{json, Value};
use shared::postgrest::{Auth, Client, HttpCall};
use shared::rpc::operations::{
    PruneTelemetry, RefreshDailyTokenSummary, ReleaseExpiredReservations,
};
use shared::rpc::Rpc;
use shared::{retry, Config};
use worker::{Delay, Env, ScheduleContext, ScheduledEvent};

/// Calls one step, as the service role.
async fn step<R: Rpc>(config: &Config, rpc: &R) -> Value {
    match Client::new(config).rpc(rpc, Auth::ServiceRole) {
        Ok(call) => with_retries(config, &call).await,
        Err(e) => {
            json!({"attempts": 0, "status": "error", "code": e.code(), "detail": e.log_detail()})
        }
    }
}

/// Sends `call`, retrying transient failures on `shared::retry`'s
/// schedule: Cloudflare does not re-run a failed cron invocation, and the next
/// tick is minutes away. The answer says how many attempts it took.
async fn with_retries(config: &Config, call: &HttpCall) -> Value {
    let mut attempts = 0;
    loop {
        attempts += 1;
        match rest::rpc(call, config.rest_timeout_ms).await {
            Ok(result) => return json!({"attempts": attempts, "result": result}),
            Err(e) => match retry::delay_before_retry(&retry::CRON_BACKOFF, attempts, &e) {
                Some(wait) => Delay::from(wait).await,
                None => {
                    return json!({
                        "attempts": attempts,
                        "status": "error",
                        "code": e.code(),
                        "detail": e.log_detail(),
                    })
                }
            },
        }
    }
}

pub async fn run(event: ScheduledEvent, env: Env, ctx: ScheduleContext) {
    let started = js_sys::Date::now();
    let config = match env_config::load(&env) {
        Ok(config) => config,
        Err(e) => {
            worker::console_error!(
                "{}",
                json!({"event": "scheduled", "cron": event.cron(), "error": e.to_string()})
            );
            return;
        }
    };
    let refresh = step(&config, &RefreshDailyTokenSummary {}).await;
    let released = step(&config, &ReleaseExpiredReservations {}).await;
    let pruned = step(&config, &PruneTelemetry {}).await;
    let ok = [&refresh, &released, &pruned]
        .iter()
        .all(|step| step.get("result").is_some());
    let elapsed = js_sys::Date::now() - started;
    let status = if ok { "ok" } else { "error" };
    if let Some(flush) = telemetry::record(&config, "cron", status, None, elapsed) {
        ctx.wait_until(flush);
    }
    worker::console_log!(
        "{}",
        json!({
            "event": "scheduled",
            "cron": event.cron(),
            "scheduled_time": event.schedule(),
            "refresh": refresh,
            "released_reservations": released,
            "pruned_telemetry": pruned,
        })
    );
}
