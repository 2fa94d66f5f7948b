//! One `telemetry.execution_metrics` row per routed call, written after the
//! response has gone (`ctx.wait_until`), so recording never delays a caller.

use crate::rest;
use shared::postgrest::{Auth, Client};
use shared::Config;
use std::rc::Rc;

pub async fn record(
    config: Rc<Config>,
    function: &'static str,
    http_status: u16,
    duration_ms: f64,
    request_id: String,
) {
    let args = shared::telemetry::metric_args(function, http_status, duration_ms, &request_id);
    let call = Client::new(&config).rpc(
        "platform",
        "record_execution_metric",
        &args,
        Auth::ServiceRole,
    );
    if let Err(e) = rest::rpc(&call, &config).await {
        // Losing a metric must never fail a call; say so in the logs.
        worker::console_warn!(
            "metric for {function} not recorded: {} ({})",
            e.code(),
            e.log_detail().unwrap_or("-")
        );
    }
}
