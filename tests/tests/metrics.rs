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

/// Minute cells and lifetime calls of `me` answered 401.
fn me_refusals() -> (i64, i64) {
    let row = usage_common::db()
        .query_one(
            "select (select count(*) from telemetry.execution_metrics \
                      where function_name = 'me' and http_status = 401), \
                    (select coalesce(sum(calls), 0)::bigint from telemetry.execution_totals \
                      where function_name = 'me' and http_status = 401)",
            &[],
        )
        .expect("reading telemetry");
    (row.get(0), row.get(1))
}

#[test]
fn a_flood_without_credentials_costs_no_write_per_request() {
    // Refused before authentication, each of these used to write its own
    // telemetry row through a service-role RPC. Now the isolate counts them
    // and flushes the counts every TELEMETRY_FLUSH_MS: one cell per minute,
    // however many requests.
    const FLOOD: i64 = 300;
    let (cells_before, calls_before) = me_refusals();
    for _ in 0..FLOOD {
        assert_refused(
            &call("GET", "/v1/me", None, &[], None),
            401,
            "missing_token",
        );
    }
    let calls = eventually(Duration::from_secs(10), || {
        let (_, calls) = me_refusals();
        (calls >= calls_before + FLOOD).then_some(calls)
    })
    .expect("the refusals are counted once flushed");
    let (cells_after, _) = me_refusals();
    assert!(
        cells_after - cells_before <= 3,
        "{FLOOD} refusals added {} telemetry rows (one per minute they spanned is expected)",
        cells_after - cells_before
    );
    assert!(calls - calls_before >= FLOOD);

    // And Prometheus still sees every one of them.
    let token = env("CDS_METRICS_TOKEN");
    let text = call("GET", "/v1/metrics", Some(&token), &[], None).body;
    let line = text
        .lines()
        .find(|l| {
            l.starts_with(
                "cds_edge_calls_total{function=\"me\",status=\"error\",http_status=\"401\"}",
            )
        })
        .unwrap_or_else(|| panic!("no counter for me/401 in\n{text}"));
    let counted: i64 = line
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unreadable counter line {line}"));
    assert!(counted >= calls_before + FLOOD, "{line}");
}
