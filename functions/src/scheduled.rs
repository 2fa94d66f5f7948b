//! The cron trigger (`[triggers] crons` in wrangler.toml): refreshes the daily
//! token summary and returns expired reservations' tokens to their users, both
//! through RPCs with the service role, and logs one structured line per run.
//! The refresh records itself in `telemetry.execution_metrics` and skips when
//! another run holds its lock; transient failures are retried a few times.

use crate::{env_config, rest};
use serde_json::{json, Value};
use shared::postgrest::{Auth, Client};
use shared::{retry, Config};
use worker::{Delay, Env, ScheduledEvent};

/// Calls `function`, retrying transient failures on `shared::retry`'s
/// schedule: Cloudflare does not re-run a failed cron invocation, and the next
/// tick is minutes away. The answer says how many attempts it took.
async fn call(config: &Config, function: &str) -> Value {
    let call = Client::new(config).rpc("platform", function, &json!({}), Auth::ServiceRole);
    let mut attempts = 0;
    loop {
        attempts += 1;
        match rest::rpc(&call, config).await {
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

pub async fn run(event: ScheduledEvent, env: Env) {
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
    let refresh = call(&config, "refresh_daily_token_summary").await;
    let released = call(&config, "release_expired_reservations").await;
    worker::console_log!(
        "{}",
        json!({
            "event": "scheduled",
            "cron": event.cron(),
            "scheduled_time": event.schedule(),
            "refresh": refresh,
            "released_reservations": released,
        })
    );
}
