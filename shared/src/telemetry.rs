//! What the edge records about each call in `telemetry.execution_metrics`,
//! through the `record_execution_metric` RPC.

use serde_json::{json, Value};

/// `ok` when the call was served, `error` for any 4xx or 5xx answer; the
/// HTTP status is recorded alongside, so metrics split the two kinds.
pub fn outcome(http_status: u16) -> &'static str {
    if http_status < 400 {
        "ok"
    } else {
        "error"
    }
}

/// Arguments of `record_execution_metric` for one served call.
pub fn metric_args(function: &str, http_status: u16, duration_ms: f64, request_id: &str) -> Value {
    json!({
        "p_function": function,
        "p_status": outcome(http_status),
        "p_duration_ms": (duration_ms.max(0.0) * 1000.0).round() / 1000.0,
        "p_http_status": http_status,
        "p_request_id": request_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_and_server_errors_are_errors() {
        assert_eq!(outcome(201), "ok");
        assert_eq!(outcome(304), "ok");
        assert_eq!(outcome(402), "error");
        assert_eq!(outcome(503), "error");
    }

    #[test]
    fn durations_are_never_negative_and_keep_microseconds() {
        let args = metric_args("usage_record", 201, -3.0, "abc");
        assert_eq!(args["p_duration_ms"], 0.0);
        assert_eq!(metric_args("x", 200, 1.23456, "r")["p_duration_ms"], 1.235);
        assert_eq!(args["p_http_status"], 201);
    }
}
