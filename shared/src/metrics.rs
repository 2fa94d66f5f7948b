//! `GET /v1/metrics`: the `metrics_snapshot` RPC's answer in the Prometheus
//! text exposition format (version 0.0.4), for the guide's "forward metrics to
//! Prometheus".

use crate::error::ApiError;
use serde_json::Value;
use std::fmt::Write as _;

/// The `Content-Type` Prometheus expects for this format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A label value escaped as the format requires: backslash, quote, newline.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(value: &Value) -> Option<f64> {
    value.as_f64()
}

fn malformed(what: &str) -> ApiError {
    ApiError::Upstream {
        detail: format!("metrics_snapshot answered without {what}"),
    }
}

/// Renders a `platform.metrics_snapshot()` document.
pub fn render(snapshot: &Value) -> Result<String, ApiError> {
    let mut out = String::new();
    let calls = snapshot["calls"]
        .as_array()
        .ok_or_else(|| malformed("calls"))?;
    let durations = snapshot["durations"]
        .as_array()
        .ok_or_else(|| malformed("durations"))?;
    let bounds: Vec<f64> = snapshot["bounds_ms"]
        .as_array()
        .ok_or_else(|| malformed("bounds_ms"))?
        .iter()
        .filter_map(number)
        .collect();

    out.push_str(
        "# HELP cds_edge_calls_total Calls to each edge function, by outcome and HTTP status.\n",
    );
    out.push_str("# TYPE cds_edge_calls_total counter\n");
    for call in calls {
        let http = call["http_status"]
            .as_u64()
            .map(|s| s.to_string())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "cds_edge_calls_total{{function=\"{}\",status=\"{}\",http_status=\"{}\"}} {}",
            label(call["function"].as_str().unwrap_or_default()),
            label(call["status"].as_str().unwrap_or_default()),
            http,
            call["count"].as_u64().unwrap_or(0)
        );
    }

    out.push_str("# HELP cds_edge_call_duration_seconds How long edge function calls took.\n");
    out.push_str("# TYPE cds_edge_call_duration_seconds histogram\n");
    for duration in durations {
        let function = label(duration["function"].as_str().unwrap_or_default());
        let buckets = duration["buckets"]
            .as_array()
            .ok_or_else(|| malformed("buckets"))?;
        for (bound, count) in bounds.iter().zip(buckets) {
            let _ = writeln!(
                out,
                "cds_edge_call_duration_seconds_bucket{{function=\"{function}\",le=\"{}\"}} {}",
                bound / 1000.0,
                count.as_u64().unwrap_or(0)
            );
        }
        let count = duration["count"].as_u64().unwrap_or(0);
        let _ = writeln!(
            out,
            "cds_edge_call_duration_seconds_bucket{{function=\"{function}\",le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "cds_edge_call_duration_seconds_sum{{function=\"{function}\"}} {}",
            number(&duration["sum_ms"]).unwrap_or(0.0) / 1000.0
        );
        let _ = writeln!(
            out,
            "cds_edge_call_duration_seconds_count{{function=\"{function}\"}} {count}"
        );
    }

    let now = number(&snapshot["now"]).ok_or_else(|| malformed("now"))?;
    if let Some(refreshed) = number(&snapshot["summary_refreshed_at"]) {
        out.push_str("# HELP cds_summary_last_refresh_timestamp_seconds When the daily token summary was last refreshed.\n");
        out.push_str("# TYPE cds_summary_last_refresh_timestamp_seconds gauge\n");
        let _ = writeln!(
            out,
            "cds_summary_last_refresh_timestamp_seconds {refreshed}"
        );
        out.push_str("# HELP cds_summary_refresh_lag_seconds Seconds since the daily token summary was last refreshed.\n");
        out.push_str("# TYPE cds_summary_refresh_lag_seconds gauge\n");
        let _ = writeln!(
            out,
            "cds_summary_refresh_lag_seconds {}",
            (now - refreshed).max(0.0)
        );
    }
    if let Some(lag_ms) = number(&snapshot["queue_lag_ms"]) {
        out.push_str("# HELP cds_usage_queue_lag_seconds How long the oldest event of the usage queue's latest consumed batch waited after the edge accepted it.\n");
        out.push_str("# TYPE cds_usage_queue_lag_seconds gauge\n");
        let _ = writeln!(out, "cds_usage_queue_lag_seconds {}", lag_ms / 1000.0);
    }
    if let Some(at) = number(&snapshot["queue_last_batch_at"]) {
        out.push_str("# HELP cds_usage_queue_last_batch_timestamp_seconds When the usage queue's consumer last recorded a batch.\n");
        out.push_str("# TYPE cds_usage_queue_last_batch_timestamp_seconds gauge\n");
        let _ = writeln!(out, "cds_usage_queue_last_batch_timestamp_seconds {at}");
    }
    if let Some(rejections) = snapshot["usage_rejections"].as_array() {
        out.push_str("# HELP cds_usage_rejections_total Queued usage events not recorded, by source (queue: refused; dead_letter: retries exhausted) and reason.\n");
        out.push_str("# TYPE cds_usage_rejections_total counter\n");
        let mut dead_letters = 0.0;
        for r in rejections {
            let source = r["source"].as_str().unwrap_or_default();
            let count = number(&r["count"]).unwrap_or(0.0);
            if source == "dead_letter" {
                dead_letters += count;
            }
            let _ = writeln!(
                out,
                "cds_usage_rejections_total{{source=\"{}\",code=\"{}\"}} {count}",
                label(source),
                label(r["code"].as_str().unwrap_or_default())
            );
        }
        out.push_str("# HELP cds_usage_dead_letters_total Usage events the queue gave up on after its retries.\n");
        out.push_str("# TYPE cds_usage_dead_letters_total counter\n");
        let _ = writeln!(out, "cds_usage_dead_letters_total {dead_letters}");
    }
    if let Some(pending) = number(&snapshot["summary_pending_deltas"]) {
        out.push_str("# HELP cds_summary_pending_deltas Usage changes recorded but not yet folded into the daily summary.\n");
        out.push_str("# TYPE cds_summary_pending_deltas gauge\n");
        let _ = writeln!(out, "cds_summary_pending_deltas {pending}");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn snapshot() -> Value {
        json!({
            "now": 1000.5,
            "summary_refreshed_at": 940.5,
            "summary_pending_deltas": 12,
            "queue_lag_ms": 1500,
            "queue_last_batch_at": 990.5,
            "usage_rejections": [
                {"source": "dead_letter", "code": "dead_lettered", "count": 2},
                {"source": "queue", "code": "unknown_model", "count": 3}
            ],
            "bounds_ms": [5, 10, 25],
            "calls": [
                {"function": "usage_record", "status": "ok", "http_status": 201, "count": 2},
                {"function": "refresh_daily_token_summary", "status": "ok", "http_status": null, "count": 1}
            ],
            "durations": [
                {"function": "usage_record", "count": 3, "sum_ms": 743, "buckets": [1, 1, 2]}
            ]
        })
    }

    #[test]
    fn renders_counters_histograms_and_freshness() {
        let text = render(&snapshot()).unwrap();
        for line in [
            "# TYPE cds_edge_calls_total counter",
            "cds_edge_calls_total{function=\"usage_record\",status=\"ok\",http_status=\"201\"} 2",
            "cds_edge_calls_total{function=\"refresh_daily_token_summary\",status=\"ok\",http_status=\"\"} 1",
            "cds_edge_call_duration_seconds_bucket{function=\"usage_record\",le=\"0.005\"} 1",
            "cds_edge_call_duration_seconds_bucket{function=\"usage_record\",le=\"0.025\"} 2",
            "cds_edge_call_duration_seconds_bucket{function=\"usage_record\",le=\"+Inf\"} 3",
            "cds_edge_call_duration_seconds_sum{function=\"usage_record\"} 0.743",
            "cds_edge_call_duration_seconds_count{function=\"usage_record\"} 3",
            "cds_summary_refresh_lag_seconds 60",
            "cds_summary_pending_deltas 12",
            "cds_usage_queue_lag_seconds 1.5",
            "cds_usage_queue_last_batch_timestamp_seconds 990.5",
            "cds_usage_rejections_total{source=\"queue\",code=\"unknown_model\"} 3",
            "cds_usage_dead_letters_total 2",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        let mut s = snapshot();
        s["calls"][0]["function"] = json!("a\"b\\c\nd");
        let text = render(&s).unwrap();
        assert!(text.contains("function=\"a\\\"b\\\\c\\nd\""), "{text}");
    }

    #[test]
    fn a_never_refreshed_summary_reports_no_lag() {
        let mut s = snapshot();
        s["summary_refreshed_at"] = Value::Null;
        assert!(!render(&s)
            .unwrap()
            .contains("cds_summary_refresh_lag_seconds"));
    }

    #[test]
    fn a_malformed_snapshot_is_an_upstream_error() {
        assert_eq!(render(&json!({"now": 1})).unwrap_err().status(), 502);
    }
}
