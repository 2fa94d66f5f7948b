//! The Worker's skeleton, end to end through workerd: health, errors, CORS,
//! body limit, request ids and the cron handler.

use e2e_tests::{request, send, worker_url};

const ALLOWED_ORIGIN: &str = "http://localhost:3000";

#[test]
fn health_reports_version_and_a_reachable_rest_layer() {
    let answer = send(request("GET", &worker_url("/health")), None);
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let body = answer.json();
    assert_eq!(body["status"], "ok", "{body}");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["rest"]["reachable"], true, "{body}");
    assert_eq!(body["rest"]["status"], 200, "{body}");
}

#[test]
fn every_response_carries_a_request_id() {
    let answer = send(request("GET", &worker_url("/health")), None);
    let id = answer.header("x-request-id").expect("x-request-id");
    assert_eq!(id.len(), 32, "{id}");
    let answer = send(request("GET", &worker_url("/nope")), None);
    assert!(answer.header("x-request-id").is_some());
}

#[test]
fn a_plain_client_request_id_is_echoed_and_a_hostile_one_replaced() {
    let answer = send(
        request("GET", &worker_url("/health")).set("x-request-id", "client-42"),
        None,
    );
    assert_eq!(answer.header("x-request-id"), Some("client-42"));
    let answer = send(
        request("GET", &worker_url("/health")).set("x-request-id", "<script>"),
        None,
    );
    assert_ne!(answer.header("x-request-id"), Some("<script>"));
}

#[test]
fn unknown_route_is_a_json_404() {
    let answer = send(request("GET", &worker_url("/no/such/route")), None);
    assert_eq!(answer.status, 404);
    assert_eq!(answer.error_code(), "not_found");
}

#[test]
fn wrong_method_is_a_405_with_allow() {
    let answer = send(request("DELETE", &worker_url("/health")), None);
    assert_eq!(answer.status, 405);
    assert_eq!(answer.error_code(), "method_not_allowed");
    assert_eq!(answer.header("allow"), Some("GET, HEAD"));
}

#[test]
fn preflight_from_the_frontend_origin_is_allowed() {
    let answer = send(
        request("OPTIONS", &worker_url("/v1/usage"))
            .set("origin", ALLOWED_ORIGIN)
            .set("access-control-request-method", "POST")
            .set(
                "access-control-request-headers",
                "authorization, content-type",
            ),
        None,
    );
    assert_eq!(answer.status, 204, "{}", answer.body);
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some(ALLOWED_ORIGIN)
    );
    let methods = answer
        .header("access-control-allow-methods")
        .unwrap_or_default();
    assert!(methods.contains("POST"), "{methods}");
    let headers = answer
        .header("access-control-allow-headers")
        .unwrap_or_default();
    assert!(headers.contains("authorization") && headers.contains("content-type"));
}

#[test]
fn preflight_from_another_origin_is_refused() {
    let answer = send(
        request("OPTIONS", &worker_url("/health"))
            .set("origin", "https://evil.example")
            .set("access-control-request-method", "GET"),
        None,
    );
    assert_eq!(answer.status, 403);
    assert_eq!(answer.error_code(), "origin_not_allowed");
    assert_eq!(answer.header("access-control-allow-origin"), None);
}

#[test]
fn responses_to_the_allowed_origin_carry_cors_headers_and_others_do_not() {
    let answer = send(
        request("GET", &worker_url("/health")).set("origin", ALLOWED_ORIGIN),
        None,
    );
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some(ALLOWED_ORIGIN)
    );
    assert!(answer
        .header("access-control-expose-headers")
        .unwrap_or_default()
        .contains("x-request-id"));
    let answer = send(
        request("GET", &worker_url("/health")).set("origin", "https://evil.example"),
        None,
    );
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("access-control-allow-origin"), None);
}

#[test]
fn errors_also_carry_cors_headers_for_the_allowed_origin() {
    let answer = send(
        request("GET", &worker_url("/missing")).set("origin", ALLOWED_ORIGIN),
        None,
    );
    assert_eq!(answer.status, 404);
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some(ALLOWED_ORIGIN)
    );
}

#[test]
fn a_body_over_the_limit_is_a_413() {
    // wrangler.toml sets MAX_BODY_BYTES = 262144.
    let body = vec![b'x'; 262_145];
    let answer = send(
        request("POST", &worker_url("/health")).set("content-type", "application/json"),
        Some(&body),
    );
    assert_eq!(answer.status, 413, "{}", answer.body);
    assert_eq!(answer.error_code(), "payload_too_large");
}

#[test]
fn the_cron_handler_runs() {
    // `wrangler dev --test-scheduled` runs the scheduled handler at /__scheduled.
    let answer = send(
        request("GET", &worker_url("/__scheduled?cron=*/5+*+*+*+*")),
        None,
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
}
