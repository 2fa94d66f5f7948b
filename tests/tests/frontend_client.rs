//! The browser frontend's view of the usage API: the real supabase-js client
//! (run by node, `tests/js/frontend_usage.mjs`) records usage and reads the
//! overview through the Worker, and the CORS preflight a browser sends
//! before such a call passes for the frontend's origin only.

mod usage_common;

use usage_common::*;

/// The headers supabase-js sends with a Functions call, plus the idempotency key.
const CLIENT_HEADERS: &[&str] = &[
    "authorization",
    "content-type",
    "idempotency-key",
    "x-client-info",
    "apikey",
];

fn preflight(origin: &str) -> Answer {
    send(
        request("OPTIONS", &worker_url("/v1/usage"))
            .set("origin", origin)
            .set("access-control-request-method", "POST")
            .set("access-control-request-headers", &CLIENT_HEADERS.join(", ")),
        None,
    )
}

#[test]
fn supabase_js_records_usage_and_reads_the_overview_through_the_worker() {
    let user = User::with_tokens(5_000);
    let key = unique("js");
    let seen = e2e_tests::node::run_script(
        // Node 20 has WebSocket (which supabase-js asks for) behind this flag.
        &["--experimental-websocket", "tests/js/frontend_usage.mjs"],
        &[
            ("CDS_WORKER_URL", &env("CDS_WORKER_URL")),
            ("CDS_SUPABASE_URL", &env("CDS_SUPABASE_URL")),
            ("CDS_ANON_KEY", &env("CDS_ANON_KEY")),
            ("USER_TOKEN", &user.token),
            ("IDEMPOTENCY_KEY", &key),
        ],
    );

    let recorded = &seen["recorded"];
    assert_eq!(recorded["status"], 201, "{seen}");
    assert_eq!(recorded["replayed"], "false", "{seen}");
    assert!(recorded["data"]["usage_id"].is_i64(), "{seen}");
    assert_eq!(recorded["data"]["balance"], 5_000 - 20, "{seen}");
    let overview = &seen["overview"];
    assert_eq!(overview["status"], 200, "{seen}");
    assert_eq!(overview["data"]["user_id"], user.id.as_str(), "{seen}");
    assert_eq!(overview["data"]["totals"]["requests"], 1, "{seen}");
    assert_eq!(overview["data"]["totals"]["total_tokens"], 20, "{seen}");

    assert_eq!(user.ledger_rows(), 1);
    let stored_key = text(
        "select idempotency_key from platform.token_usage where user_id = $1::text::uuid",
        &[&user.id],
    );
    assert_eq!(
        stored_key,
        Some(key),
        "the client's Idempotency-Key is kept"
    );
}

#[test]
fn the_frontends_preflight_for_recording_usage_is_allowed() {
    let answer = preflight(ALLOWED_ORIGIN);

    assert_eq!(answer.status, 204, "{}", answer.body);
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some(ALLOWED_ORIGIN)
    );
    let methods = answer
        .header("access-control-allow-methods")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(methods.contains("post"), "{methods}");
    let allowed: Vec<String> = answer
        .header("access-control-allow-headers")
        .unwrap_or_default()
        .split(',')
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    for header in CLIENT_HEADERS {
        assert!(
            allowed.iter().any(|a| a == header),
            "{header} not in {allowed:?}"
        );
    }
}

#[test]
fn a_preflight_from_another_origin_is_refused() {
    let answer = preflight("https://evil.example");

    assert_refused(&answer, 403, "origin_not_allowed");
    assert_eq!(answer.header("access-control-allow-origin"), None);
    assert_eq!(answer.header("access-control-allow-headers"), None);
}
