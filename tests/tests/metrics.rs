//! `GET /v1/metrics` through workerd: Prometheus text for a scraper's token or
//! an admin, refused for everyone else.

mod usage_common;

use e2e_tests::env;
use std::time::Duration;
use usage_common::{assert_refused, call, event, eventually, record, unique, User};

#[test]
fn the_scraper_token_reads_prometheus_text_with_the_recorded_calls() {
    // A call to count, then wait for its telemetry row (written after the response).
    let user = User::with_tokens(1_000);
    let key = unique("metrics");
    assert_eq!(
        record(&user.token, &key, &event("gpt-4o-mini", 1, 1)).status,
        201
    );
    let token = env("CDS_METRICS_TOKEN");
    let text = eventually(Duration::from_secs(10), || {
        let answer = call("GET", "/v1/metrics", Some(&token), &[], None);
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(
            answer.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        answer
            .body
            .contains(
                "cds_edge_calls_total{function=\"usage_record\",status=\"ok\",http_status=\"201\"}",
            )
            .then_some(answer.body)
    })
    .expect("the usage_record call shows in the metrics");
    assert!(text.contains("# TYPE cds_edge_call_duration_seconds histogram"));
    assert!(text
        .contains("cds_edge_call_duration_seconds_bucket{function=\"usage_record\",le=\"+Inf\"}"));
}

#[test]
fn an_admin_reads_the_metrics_and_a_developer_does_not() {
    let admin = User::admin();
    let answer = call("GET", "/v1/metrics", Some(&admin.token), &[], None);
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.body.contains("# TYPE cds_edge_calls_total counter"));

    let developer = User::with_tokens(0);
    assert_refused(
        &call("GET", "/v1/metrics", Some(&developer.token), &[], None),
        403,
        "forbidden",
    );
}

#[test]
fn metrics_need_a_credential() {
    assert_refused(
        &call("GET", "/v1/metrics", None, &[], None),
        401,
        "missing_token",
    );
    // A wrong scraper token is taken for a (malformed) access token and refused.
    assert_refused(
        &call("GET", "/v1/metrics", Some(&"0".repeat(64)), &[], None),
        401,
        "malformed_token",
    );
}
