//! The cron trigger. The daily-summary refresh arrives with its own issue; for
//! now the handler is wired and logs one structured line per run, so the
//! schedule can be exercised end to end through `/__scheduled`.

use worker::{Env, ScheduledEvent};

pub async fn run(event: ScheduledEvent, env: Env) {
    let configured = crate::env_config::load(&env).is_ok();
    worker::console_log!(
        "{}",
        serde_json::json!({
            "event": "scheduled",
            "cron": event.cron(),
            "scheduled_time": event.schedule(),
            "configured": configured,
        })
    );
}
