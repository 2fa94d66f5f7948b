//! The usage API end to end, through workerd, the REST layer and PostgreSQL:
//! recording usage (one event and batches), reservations, the overview,
//! grants, the account endpoints and the telemetry every call leaves.
//! Each test signs up its own users, so the tests run in parallel.

mod usage_common;

use serde_json::{json, Value};
use std::time::Duration;
use usage_common::*;

fn number(value: &Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("not a number: {value}"))
}

// ---------------------------------------------------------------- POST /v1/usage

#[test]
fn a_users_event_is_recorded_with_its_cost_and_the_balance_after() {
    let user = User::with_tokens(10_000);
    let answer = record(&user.token, &unique("evt"), &event(MODEL, 100, 50));

    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(answer.header("idempotent-replayed"), Some("false"));
    let body = answer.json();
    assert!(body["usage_id"].as_i64().is_some(), "{body}");
    assert_eq!(body["model"], MODEL);
    assert_eq!(body["total_tokens"], 150);
    let expected_cost =
        (100.0 * MODEL_INPUT_COST_PER_1K + 50.0 * MODEL_OUTPUT_COST_PER_1K) / 1000.0;
    assert!(
        (number(&body["cost"]) - expected_cost).abs() < 1e-9,
        "{body}"
    );
    assert_eq!(body["balance"], 9_850);
    assert_eq!(body["exhausted"], false);
    assert!(
        body.get("replayed").is_none(),
        "replayed moves to a header: {body}"
    );

    assert_eq!(user.ledger_rows(), 1);
    assert_eq!(
        user.balance(),
        Balance {
            granted: 10_000,
            used: 150,
            reserved: 0
        }
    );
}

#[test]
fn an_api_key_records_for_its_owner_with_the_key_in_the_body() {
    let user = User::with_tokens(1_000);
    let key = user.api_key(&["usage:write"]);
    let mut body = event(MODEL, 10, 5);
    body["idempotency_key"] = json!(unique("evt"));

    let answer = call("POST", "/v1/usage", Some(&key), &[], Some(&body));

    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(answer.json()["balance"], 985);
    assert_eq!(user.ledger_rows(), 1);
    let recorded_by_key = scalar(
        "select count(*) from platform.token_usage \
         where user_id = $1::text::uuid and api_key_id is not null",
        &[&user.id],
    );
    assert_eq!(recorded_by_key, 1, "the ledger names the API key");
}

#[test]
fn the_same_key_in_the_header_and_the_body_is_accepted() {
    let user = User::with_tokens(1_000);
    let key = unique("evt");
    let mut body = event(MODEL, 1, 1);
    body["idempotency_key"] = json!(key);

    let answer = record(&user.token, &key, &body);

    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(user.ledger_rows(), 1);
}

#[test]
fn a_retry_answers_exactly_the_first_answer_and_is_counted_once() {
    let user = User::with_tokens(1_000);
    let key = unique("evt");
    let first = record(&user.token, &key, &event(MODEL, 30, 20));
    let retry = record(&user.token, &key, &event(MODEL, 30, 20));

    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(retry.status, first.status);
    assert_eq!(retry.body, first.body, "byte for byte the first body");
    assert_eq!(first.header("idempotent-replayed"), Some("false"));
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(user.ledger_rows(), 1);
    assert_eq!(user.balance().used, 50);
}

#[test]
fn reusing_a_key_for_a_different_event_is_a_conflict() {
    let user = User::with_tokens(1_000);
    let key = unique("evt");
    assert_eq!(record(&user.token, &key, &event(MODEL, 30, 20)).status, 201);

    let answer = record(&user.token, &key, &event(MODEL, 31, 20));

    assert_refused(&answer, 409, "idempotency_key_reused");
    assert_eq!(user.ledger_rows(), 1);
    assert_eq!(user.balance().used, 50);
}

/// One row per refused request: the raw body, its content type, whether the
/// `Idempotency-Key` header is sent, then the status, the code and a word the
/// message must contain.
#[test]
fn refused_events_say_why_and_write_nothing() {
    const JSON: &str = "application/json";
    let ev = |fields: &str| {
        format!(r#"{{"model":"{MODEL}","prompt_tokens":1,"completion_tokens":1{fields}}}"#)
    };
    let cases: Vec<(String, &str, bool, u16, &str, &str)> = vec![
        (
            ev(""),
            JSON,
            false,
            400,
            "idempotency_key_required",
            "Idempotency-Key",
        ),
        (
            ev(r#","idempotency_key":"other""#),
            JSON,
            true,
            400,
            "idempotency_key_mismatch",
            "differ",
        ),
        (
            r#"{"model":"no-such-model","prompt_tokens":1,"completion_tokens":1}"#.into(),
            JSON,
            true,
            422,
            "unknown_model",
            "no-such-model",
        ),
        (
            format!(r#"{{"model":"{MODEL}","prompt_tokens":-1,"completion_tokens":1}}"#),
            JSON,
            true,
            422,
            "invalid_field",
            "prompt_tokens",
        ),
        (
            format!(r#"{{"model":"{MODEL}","prompt_tokens":1.5,"completion_tokens":1}}"#),
            JSON,
            true,
            422,
            "invalid_field",
            "prompt_tokens",
        ),
        (
            // Past i64 (and u64): must not wrap around into a valid count.
            format!(
                r#"{{"model":"{MODEL}","prompt_tokens":1,"completion_tokens":9223372036854775808}}"#
            ),
            JSON,
            true,
            422,
            "invalid_field",
            "completion_tokens",
        ),
        (
            format!(r#"{{"model":"{MODEL}","prompt_tokens":"1","completion_tokens":1}}"#),
            JSON,
            true,
            422,
            "invalid_field",
            "prompt_tokens",
        ),
        (
            ev(r#","project_id":"not-a-uuid""#),
            JSON,
            true,
            422,
            "invalid_field",
            "project_id",
        ),
        (
            ev(r#","session_id":"1234""#),
            JSON,
            true,
            422,
            "invalid_field",
            "session_id",
        ),
        (
            ev(r#","metadata":[1,2]"#),
            JSON,
            true,
            422,
            "invalid_field",
            "metadata",
        ),
        (
            ev(r#","surprise":true"#),
            JSON,
            true,
            422,
            "unknown_field",
            "surprise",
        ),
        (
            ev(""),
            "text/plain",
            true,
            415,
            "unsupported_media_type",
            "application/json",
        ),
        (
            r#"{"model": "#.into(),
            JSON,
            true,
            400,
            "invalid_json",
            "JSON",
        ),
    ];
    let user = User::with_tokens(1_000);
    for (body, content_type, with_key, status, code, named) in cases {
        let headers: &[(&str, &str)] = if with_key {
            &[("idempotency-key", "k-refused")]
        } else {
            &[]
        };
        let answer = call_raw(
            "POST",
            "/v1/usage",
            Some(&user.token),
            headers,
            Some(&body),
            content_type,
        );
        assert_eq!(
            (answer.status, answer.error_code().as_str()),
            (status, code),
            "{body} → {}",
            answer.body
        );
        let message = answer.json()["error"]["message"].to_string();
        assert!(message.contains(named), "{body} → {message}");
    }
    assert_eq!(user.ledger_rows(), 0, "no refused event reached the ledger");
    assert_eq!(user.balance().used, 0);
}

#[test]
fn usage_past_the_balance_is_still_recorded_and_marked_exhausted() {
    let user = User::with_tokens(100);
    let answer = record(&user.token, &unique("evt"), &event(MODEL, 100, 50));

    assert_eq!(answer.status, 201, "{}", answer.body);
    let body = answer.json();
    assert_eq!(body["balance"], -50, "{body}");
    assert_eq!(body["exhausted"], true, "{body}");
    assert_eq!(user.ledger_rows(), 1);
    assert_eq!(user.balance().used, 150);
}

#[test]
fn an_api_key_without_usage_write_may_not_record() {
    let user = User::with_tokens(1_000);
    let read_only = user.api_key(&["usage:read"]);

    let answer = record(&read_only, &unique("evt"), &event(MODEL, 1, 1));

    assert_refused(&answer, 403, "insufficient_scope");
    assert_eq!(user.ledger_rows(), 0);
}

#[test]
fn another_users_project_is_an_unknown_project() {
    let user = User::with_tokens(1_000);
    let other = User::with_tokens(0);
    let project_id = text(
        "insert into platform.projects (owner_id, name) values ($1::text::uuid, 'theirs') \
         returning id::text",
        &[&other.id],
    )
    .expect("a project id");
    let mut body = event(MODEL, 1, 1);
    body["project_id"] = json!(project_id);

    let answer = record(&user.token, &unique("evt"), &body);

    assert_refused(&answer, 422, "unknown_project");
    assert_eq!(user.ledger_rows(), 0);
    assert_eq!(user.balance().used, 0);
}

// ---------------------------------------------------------- POST /v1/usage/batch

#[test]
fn a_batch_answers_each_event_in_order_and_records_only_the_valid_ones() {
    let user = User::with_tokens(10_000);
    let earlier = unique("evt");
    assert_eq!(
        record(&user.token, &earlier, &event(MODEL, 5, 5)).status,
        201
    );
    let with_key = |mut e: Value, key: &str| {
        e["idempotency_key"] = json!(key);
        e
    };
    let events = json!([
        with_key(event(MODEL, 10, 10), &unique("evt")),
        with_key(event(MODEL, 5, 5), &earlier),
        with_key(
            json!({"model": MODEL, "prompt_tokens": -3, "completion_tokens": 1}),
            &unique("evt")
        ),
        with_key(event("no-such-model", 1, 1), &unique("evt")),
        event(MODEL, 1, 1),
        with_key(event(OTHER_MODEL, 100, 0), &unique("evt")),
        with_key(event(MODEL, 6, 5), &earlier),
    ]);

    let answer = call(
        "POST",
        "/v1/usage/batch",
        Some(&user.token),
        &[],
        Some(&json!({ "events": events })),
    );

    assert_eq!(answer.status, 200, "{}", answer.body);
    let body = answer.json();
    let results = body["results"].as_array().expect("results");
    let outcomes: Vec<(u64, &str, &str)> = results
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().expect("index"),
                r["status"].as_str().expect("status"),
                r["error"]["code"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        vec![
            (0, "recorded", ""),
            (1, "replayed", ""),
            (2, "rejected", "invalid_field"),
            (3, "rejected", "unknown_model"),
            (4, "rejected", "idempotency_key_required"),
            (5, "recorded", ""),
            (6, "rejected", "idempotency_key_reused"),
        ],
        "{body}"
    );
    assert_eq!(
        (&body["recorded"], &body["replayed"], &body["rejected"]),
        (&json!(2), &json!(1), &json!(4)),
        "{body}"
    );
    assert!(results[2]["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("prompt_tokens"));
    assert_eq!(
        user.ledger_rows(),
        3,
        "the earlier event and the two new ones"
    );
    assert_eq!(user.balance().used, 10 + 20 + 100);
}

#[test]
fn a_batch_of_more_than_1000_events_is_refused_whole() {
    let user = User::with_tokens(1_000_000);
    let events: Vec<Value> = (0..1001)
        .map(|i| {
            let mut e = event(MODEL, 1, 1);
            e["idempotency_key"] = json!(format!("big-{i}"));
            e
        })
        .collect();

    let answer = call(
        "POST",
        "/v1/usage/batch",
        Some(&user.token),
        &[],
        Some(&json!({ "events": events })),
    );

    assert_refused(&answer, 413, "batch_too_large");
    assert_eq!(user.ledger_rows(), 0);
}

#[test]
fn an_empty_batch_is_refused() {
    let user = User::with_tokens(1_000);
    let answer = call(
        "POST",
        "/v1/usage/batch",
        Some(&user.token),
        &[],
        Some(&json!({"events": []})),
    );
    assert_refused(&answer, 422, "invalid_field");
    assert!(answer.body.contains("events"), "{}", answer.body);
}

// ------------------------------------------------------------------ reservations

#[test]
fn a_reservation_holds_tokens_until_released() {
    let user = User::with_tokens(1_000);

    let held = reserve(&user.token, 600, None);
    assert_eq!(held.status, 201, "{}", held.body);
    let held = held.json();
    let id = held["reservation_id"].as_str().expect("reservation_id");
    assert_eq!(held["tokens"], 600);
    assert_eq!(held["available"], 400);
    assert_eq!(user.balance().reserved, 600);

    let too_much = reserve(&user.token, 500, None);
    assert_refused(&too_much, 402, "insufficient_balance");
    assert_eq!(user.balance().reserved, 600);

    let path = format!("/v1/usage/reservations/{id}");
    let released = call("DELETE", &path, Some(&user.token), &[], None);
    assert_eq!(released.status, 200, "{}", released.body);
    assert_eq!(
        released.json(),
        json!({"reservation_id": id, "status": "released", "released_tokens": 600})
    );
    assert_eq!(user.balance().reserved, 0);
    assert_eq!(user.reservation_status(id), "released");

    let again = call("DELETE", &path, Some(&user.token), &[], None);
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(
        again.json(),
        json!({"reservation_id": id, "status": "released", "released_tokens": 0})
    );
    assert_eq!(user.balance().reserved, 0, "released once");

    assert_eq!(reserve(&user.token, 500, None).status, 201);
}

/// A hold is released early only by the caller that took it: the same API
/// key, or the user's own token; another caller of the same user gets 403.
#[test]
fn only_the_caller_that_took_a_hold_releases_it_early() {
    let user = User::with_tokens(1_000);
    let key = user.api_key(&["usage:write"]);
    let other_key = user.api_key(&["usage:write"]);
    let hold = |bearer: &str| {
        let held = reserve(bearer, 100, None);
        assert_eq!(held.status, 201, "{}", held.body);
        held.json()["reservation_id"]
            .as_str()
            .expect("reservation_id")
            .to_string()
    };
    let release = |id: &str, bearer: &str| {
        call(
            "DELETE",
            &format!("/v1/usage/reservations/{id}"),
            Some(bearer),
            &[],
            None,
        )
    };

    let key_hold = hold(&key);
    assert_refused(
        &release(&key_hold, &other_key),
        403,
        "not_reservation_holder",
    );
    assert_refused(
        &release(&key_hold, &user.token),
        403,
        "not_reservation_holder",
    );
    assert_eq!(user.reservation_status(&key_hold), "active");
    let released = release(&key_hold, &key);
    assert_eq!(released.status, 200, "{}", released.body);
    assert_eq!(released.json()["released_tokens"], 100);

    let token_hold = hold(&user.token);
    assert_refused(&release(&token_hold, &key), 403, "not_reservation_holder");
    assert_eq!(user.reservation_status(&token_hold), "active");
    let released = release(&token_hold, &user.token);
    assert_eq!(released.status, 200, "{}", released.body);
    assert_eq!(user.balance().reserved, 0);
}

#[test]
fn releasing_a_reservation_that_is_not_the_callers_is_a_404() {
    let owner = User::with_tokens(1_000);
    let stranger = User::with_tokens(1_000);
    let held = reserve(&owner.token, 100, None).json();
    let id = held["reservation_id"].as_str().expect("reservation_id");
    let cases = [
        (
            format!("/v1/usage/reservations/{id}"),
            "unknown_reservation",
        ),
        (
            format!("/v1/usage/reservations/{}", new_uuid()),
            "unknown_reservation",
        ),
        ("/v1/usage/reservations/not-a-uuid".to_string(), "not_found"),
    ];
    for (path, code) in cases {
        let answer = call("DELETE", &path, Some(&stranger.token), &[], None);
        assert_refused(&answer, 404, code);
    }
    assert_eq!(owner.reservation_status(id), "active");
    assert_eq!(owner.balance().reserved, 100);
}

#[test]
fn usage_recorded_against_a_reservation_settles_it_and_debits_the_actual_amount() {
    let user = User::with_tokens(1_000);
    let held = reserve(&user.token, 500, None).json();
    let id = held["reservation_id"].as_str().expect("reservation_id");
    let mut body = event(MODEL, 80, 40);
    body["reservation_id"] = json!(id);
    let key = unique("evt");

    let answer = record(&user.token, &key, &body);

    assert_eq!(answer.status, 201, "{}", answer.body);
    let recorded = answer.json();
    assert_eq!(
        recorded["reservation"],
        json!({"id": id, "outcome": "settled"})
    );
    assert_eq!(recorded["balance"], 880);
    assert_eq!(
        user.balance(),
        Balance {
            granted: 1_000,
            used: 120,
            reserved: 0
        }
    );
    assert_eq!(user.reservation_status(id), "settled");

    // The retry replays the settlement; a second event cannot settle it again.
    let retry = record(&user.token, &key, &body);
    assert_eq!(retry.body, answer.body);
    let again = record(&user.token, &unique("evt"), &body);
    assert_eq!(again.status, 201, "{}", again.body);
    assert_eq!(again.json()["reservation"]["outcome"], "not_active");
    assert_eq!(
        user.balance(),
        Balance {
            granted: 1_000,
            used: 240,
            reserved: 0
        }
    );
}

#[test]
fn an_expired_reservation_gives_its_tokens_to_the_next_one() {
    let user = User::with_tokens(1_000);
    let held = reserve(&user.token, 800, Some(10)).json();
    let id = held["reservation_id"].as_str().expect("reservation_id");
    assert_refused(
        &reserve(&user.token, 800, None),
        402,
        "insufficient_balance",
    );

    user.expire_reservation(id);
    let next = reserve(&user.token, 800, None);

    assert_eq!(next.status, 201, "{}", next.body);
    assert_eq!(next.json()["available"], 200);
    assert_eq!(user.reservation_status(id), "expired");
    assert_eq!(user.balance().reserved, 800);
}

#[test]
fn the_scheduled_sweep_releases_expired_reservations() {
    let user = User::with_tokens(1_000);
    let held = reserve(&user.token, 700, Some(10)).json();
    let id = held["reservation_id"].as_str().expect("reservation_id");
    let available = || {
        let answer = call("GET", "/v1/usage/overview", Some(&user.token), &[], None);
        assert_eq!(answer.status, 200, "{}", answer.body);
        answer.json()["balance"]["available"].clone()
    };
    assert_eq!(available(), 300);
    user.expire_reservation(id);

    // `wrangler dev --test-scheduled` runs the cron handler at /__scheduled.
    let cron = send(
        request("POST", &worker_url("/__scheduled?cron=*/5+*+*+*+*")),
        None,
    );

    assert_eq!(cron.status, 200, "{}", cron.body);
    assert_eq!(user.reservation_status(id), "expired");
    assert_eq!(user.balance().reserved, 0);
    assert_eq!(available(), 1_000);
}

// --------------------------------------------------------- GET /v1/usage/overview

#[test]
fn the_overview_totals_match_the_ledger_per_day_and_per_model() {
    let user = User::with_tokens(100_000);
    for (model, prompt, completion) in [(MODEL, 100, 50), (MODEL, 10, 5), (OTHER_MODEL, 1000, 1)] {
        let answer = record(
            &user.token,
            &unique("evt"),
            &event(model, prompt, completion),
        );
        assert_eq!(answer.status, 201, "{}", answer.body);
    }
    // One event two days ago, written straight into the ledger as if then,
    // and the daily summary refreshed, as the cron would, so that day is
    // read from the folded rollup and today from the pending deltas.
    let mut db = db();
    db.execute(
        "insert into platform.token_usage (user_id, model_id, prompt_tokens, completion_tokens, \
         total_tokens, cost, idempotency_key, balance_after, created_at) \
         select $1::text::uuid, m.id, 7, 3, 10, 0, 'backdated', 0, now() - interval '2 days' \
         from platform.models m where m.name = $2",
        &[&user.id, &MODEL],
    )
    .expect("a backdated ledger row");
    db.batch_execute(
        "begin; set local role service_role; \
         select set_config('request.jwt.claims', '{\"role\": \"service_role\"}', true); \
         select platform.refresh_daily_token_summary(); commit;",
    )
    .expect("refresh the daily summary");

    let answer = call("GET", "/v1/usage/overview", Some(&user.token), &[], None);

    assert_eq!(answer.status, 200, "{}", answer.body);
    let body = answer.json();
    assert_eq!(body["user_id"], json!(user.id));
    assert_eq!(body["totals"]["requests"], 4, "{body}");
    assert_eq!(body["totals"]["total_tokens"], 150 + 15 + 1001 + 10);
    let per_day = |sql_group: &str, field: &str| -> Vec<(String, i64, i64)> {
        let sql = format!(
            "select {sql_group}::text, count(*), sum(u.total_tokens)::bigint \
             from platform.token_usage u join platform.models m on m.id = u.model_id \
             where u.user_id = $1::text::uuid group by 1 order by 1"
        );
        let from_db: Vec<(String, i64, i64)> = usage_common::db()
            .query(&sql, &[&user.id])
            .expect("ledger aggregate")
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        let from_api: Vec<(String, i64, i64)> = body[field]
            .as_array()
            .expect("an array")
            .iter()
            .map(|r| {
                let key = if field == "by_day" { "day" } else { "model" };
                (
                    r[key].as_str().expect("key").to_string(),
                    r["requests"].as_i64().expect("requests"),
                    r["total_tokens"].as_i64().expect("total_tokens"),
                )
            })
            .collect();
        assert_eq!(from_api, from_db, "{field} of {body}");
        from_db
    };
    assert_eq!(
        per_day("(u.created_at at time zone 'UTC')::date", "by_day").len(),
        2
    );
    assert_eq!(per_day("m.name", "by_model").len(), 2);
    assert_eq!(body["balance"]["used"], 150 + 15 + 1001);
}

#[test]
fn the_overview_refuses_bad_ranges() {
    let user = User::with_tokens(1_000);
    let cases = [
        ("?from=2026-02-30", 422, "invalid_field"),
        ("?to=yesterday", 422, "invalid_field"),
        ("?from=2026-03-02&to=2026-03-01", 422, "invalid_range"),
        ("?from=2024-01-01&to=2026-01-01", 422, "invalid_range"),
        ("?user_id=nope", 422, "invalid_field"),
        ("?limit=5", 422, "unknown_field"),
    ];
    for (query, status, code) in cases {
        let answer = call(
            "GET",
            &format!("/v1/usage/overview{query}"),
            Some(&user.token),
            &[],
            None,
        );
        assert_eq!(
            (answer.status, answer.error_code().as_str()),
            (status, code),
            "{query} → {}",
            answer.body
        );
    }
}

#[test]
fn only_an_admin_reads_another_users_overview() {
    let someone = User::with_tokens(1_000);
    let other = User::with_tokens(500);
    let admin = User::admin();
    let path = format!("/v1/usage/overview?user_id={}", other.id);

    let refused = call("GET", &path, Some(&someone.token), &[], None);
    assert_refused(&refused, 403, "forbidden");

    let allowed = call("GET", &path, Some(&admin.token), &[], None);
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    assert_eq!(allowed.json()["user_id"], json!(other.id));
    assert_eq!(allowed.json()["balance"]["granted"], 500);
}

#[test]
fn an_api_key_reads_the_overview_only_with_usage_read() {
    let user = User::with_tokens(1_000);
    let write_only = user.api_key(&["usage:write"]);
    let reader = user.api_key(&["usage:read"]);

    let refused = call("GET", "/v1/usage/overview", Some(&write_only), &[], None);
    assert_refused(&refused, 403, "insufficient_scope");

    let allowed = call("GET", "/v1/usage/overview", Some(&reader), &[], None);
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    assert_eq!(allowed.json()["user_id"], json!(user.id));
}

// ------------------------------------------------------- grants and the account

#[test]
fn an_admin_grant_is_credited_once_per_idempotency_key() {
    let admin = User::admin();
    let user = User::with_tokens(0);
    let key = unique("grant");
    let grant = || {
        call(
            "POST",
            "/v1/admin/grants",
            Some(&admin.token),
            &[("idempotency-key", &key)],
            Some(&json!({"user_id": user.id, "amount": 2_500, "reason": "e2e promo"})),
        )
    };

    let first = grant();
    let retry = grant();

    assert_eq!(first.status, 201, "{}", first.body);
    let body = first.json();
    assert_eq!(body["user_id"], json!(user.id));
    assert_eq!(body["amount"], 2_500);
    assert_eq!(body["balance"], 2_500);
    assert_eq!(first.header("idempotent-replayed"), Some("false"));
    assert_eq!(retry.status, 201, "{}", retry.body);
    assert_eq!(retry.body, first.body);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(user.grant_rows(), 1);
    assert_eq!(user.balance().granted, 2_500);
    let granted_by = text(
        "select granted_by::text from platform.token_grants where user_id = $1::text::uuid",
        &[&user.id],
    );
    assert_eq!(granted_by, Some(admin.id.clone()), "the grant is audited");
}

#[test]
fn grants_by_non_admins_or_to_unknown_users_are_refused() {
    let admin = User::admin();
    let developer = User::with_tokens(0);
    let target = User::with_tokens(0);
    let body = |user_id: &str| json!({"user_id": user_id, "amount": 10, "reason": "r"});
    let cases = [
        (&developer, body(&target.id), 403, "forbidden"),
        (&admin, body(&new_uuid()), 404, "unknown_user"),
        (
            &admin,
            json!({"user_id": target.id, "amount": 0, "reason": "r"}),
            422,
            "invalid_field",
        ),
    ];
    for (caller, body, status, code) in cases {
        let answer = call(
            "POST",
            "/v1/admin/grants",
            Some(&caller.token),
            &[],
            Some(&body),
        );
        assert_eq!(
            (answer.status, answer.error_code().as_str()),
            (status, code),
            "{body} → {}",
            answer.body
        );
    }
    assert_eq!(target.grant_rows(), 0);
}

#[test]
fn an_admin_grants_by_email_whatever_its_case_and_names_the_user_exactly_once() {
    let admin = User::admin();
    let target = User::with_tokens(0);
    let grant = |body: Value| {
        call(
            "POST",
            "/v1/admin/grants",
            Some(&admin.token),
            &[],
            Some(&body),
        )
    };

    let by_email =
        grant(json!({"email": target.email.to_uppercase(), "amount": 40, "reason": "by email"}));
    assert_eq!(by_email.status, 201, "{}", by_email.body);
    assert_eq!(
        by_email.json()["user_id"],
        json!(target.id),
        "{}",
        by_email.body
    );
    assert_eq!(by_email.json()["balance"], 40, "{}", by_email.body);

    let cases = [
        (
            json!({"email": unique("nobody") + "@example.test", "amount": 1, "reason": "r"}),
            404,
            "unknown_user",
        ),
        (
            json!({"user_id": target.id, "email": target.email, "amount": 1, "reason": "r"}),
            422,
            "invalid_grantee",
        ),
        (json!({"amount": 1, "reason": "r"}), 422, "invalid_grantee"),
        (
            json!({"email": "not an email", "amount": 1, "reason": "r"}),
            422,
            "invalid_field",
        ),
    ];
    for (body, status, code) in cases {
        let answer = grant(body.clone());
        assert_eq!(
            (answer.status, answer.error_code().as_str()),
            (status, code),
            "{body} → {}",
            answer.body
        );
    }
    assert_eq!(target.grant_rows(), 1);
    assert_eq!(target.balance().granted, 40);
}

#[test]
fn the_default_model_is_set_to_known_models_only() {
    let user = User::with_tokens(0);
    let default_model = || {
        text(
            "select m.name from platform.users u left join platform.models m \
             on m.id = u.default_model_id where u.id = $1::text::uuid",
            &[&user.id],
        )
    };
    let set = |model: &str| {
        call(
            "PUT",
            "/v1/me/default-model",
            Some(&user.token),
            &[],
            Some(&json!({ "model": model })),
        )
    };

    // The overview, which the usage page loads anyway, says which it is.
    let shown = || {
        let answer = call("GET", "/v1/usage/overview", Some(&user.token), &[], None);
        assert_eq!(answer.status, 200, "{}", answer.body);
        let body = answer.json();
        (body["default_model"].clone(), body["role"].clone())
    };
    assert_eq!(shown(), (Value::Null, json!("developer")));

    let answer = set(OTHER_MODEL);
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(default_model().as_deref(), Some(OTHER_MODEL));
    assert_eq!(shown().0, json!(OTHER_MODEL));

    assert_refused(&set("no-such-model"), 422, "unknown_model");
    assert_eq!(default_model().as_deref(), Some(OTHER_MODEL));
}

#[test]
fn the_model_catalogue_is_public() {
    let answer = call("GET", "/v1/models", None, &[], None);
    assert_eq!(answer.status, 200, "{}", answer.body);
    let body = answer.json();
    let models = body["models"].as_array().expect("models");
    let names: Vec<&str> = models.iter().filter_map(|m| m["name"].as_str()).collect();
    assert!(names.contains(&"bge-small-en-v1.5"), "{names:?}");
    let model = models
        .iter()
        .find(|m| m["name"] == MODEL)
        .unwrap_or_else(|| panic!("{MODEL} is listed: {body}"));
    assert_eq!(
        (
            number(&model["input_cost_per_1k_tokens"]),
            number(&model["output_cost_per_1k_tokens"])
        ),
        (MODEL_INPUT_COST_PER_1K, MODEL_OUTPUT_COST_PER_1K),
        "input and output prices are listed apart: {model}"
    );
    assert!(model.get("cost_per_1k_tokens").is_none(), "{model}");
}

#[test]
fn the_openapi_document_describes_the_usage_api() {
    let answer = call("GET", "/v1/openapi.json", None, &[], None);
    assert_eq!(answer.status, 200, "{}", answer.body);
    let document = answer.json();
    assert_eq!(document["openapi"], "3.1.0");
    assert!(document["paths"]["/v1/usage"].is_object(), "{document}");
    // The Worker answers (its headers), with the checked-in document's
    // bytes from its static assets.
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert!(answer.header("x-request-id").is_some());
    let source =
        std::fs::read_to_string(e2e_tests::node::repo_root().join("shared/src/openapi.json"))
            .expect("reading shared/src/openapi.json");
    let source: Value = serde_json::from_str(&source).expect("openapi.json parses");
    assert_eq!(document, source);
    assert!(
        !answer.body.contains('\n'),
        "served without its indentation"
    );
}

// ------------------------------------------------------------------- telemetry

/// Calls of `function` with this HTTP status counted in the lifetime totals.
fn counted_calls(function: &str, http_status: u16) -> i64 {
    scalar(
        "select coalesce(sum(calls), 0)::bigint from telemetry.execution_totals \
         where function_name = $1 and http_status = $2",
        &[
            &function,
            &i16::try_from(http_status).expect("an HTTP status"),
        ],
    )
}

#[test]
fn each_call_is_counted_with_its_function_and_status() {
    let user = User::with_tokens(1_000);
    let cases = [
        (event(MODEL, 1, 1), 201, "ok"),
        (event("no-such-model", 1, 1), 422, "error"),
    ];
    for (body, http_status, outcome) in cases {
        let before = counted_calls("usage_record", http_status);
        let request_id = unique("rid").replace('-', "");
        let answer = call(
            "POST",
            "/v1/usage",
            Some(&user.token),
            &[
                ("idempotency-key", &unique("evt")),
                ("x-request-id", &request_id),
            ],
            Some(&body),
        );
        assert_eq!(answer.status, http_status, "{}", answer.body);
        assert_eq!(answer.header("x-request-id"), Some(request_id.as_str()));

        // Counted in the isolate, flushed after the response (waitUntil,
        // every TELEMETRY_FLUSH_MS): poll briefly.
        let counted = eventually(Duration::from_secs(10), || {
            (counted_calls("usage_record", http_status) > before).then_some(())
        });
        assert!(
            counted.is_some(),
            "the {http_status} call of usage_record was never counted"
        );
        let status: String = text(
            "select status from telemetry.execution_totals \
             where function_name = 'usage_record' and http_status = $1",
            &[&i16::try_from(http_status).expect("an HTTP status")],
        )
        .expect("a totals row");
        assert_eq!(status, outcome);
    }
}
