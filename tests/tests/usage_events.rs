//! `GET /v1/usage/events?limit=&before=` end to end: a caller's own recorded
//! events, newest first, paged by an opaque keyset cursor, through workerd,
//! the REST layer and PostgreSQL.

mod usage_common;

use serde_json::{json, Value};
use usage_common::*;

/// Records `count` events for `bearer` in one batch (their rows share one
/// created_at, so only the id orders them) and `singles` more one by one.
fn record_events(bearer: &str, count: usize, singles: usize) {
    let events: Vec<Value> = (0..count)
        .map(|i| {
            let mut e = event(MODEL, 10 + i as u64, 5);
            e["idempotency_key"] = json!(unique("list"));
            e
        })
        .collect();
    let batch = call(
        "POST",
        "/v1/usage/batch",
        Some(bearer),
        &[],
        Some(&json!({ "events": events })),
    );
    assert_eq!(batch.status, 200, "{}", batch.body);
    for _ in 0..singles {
        let answer = record(bearer, &unique("list"), &event(OTHER_MODEL, 7, 3));
        assert_eq!(answer.status, 201, "{}", answer.body);
    }
}

/// The user's keys as the ledger orders them: created_at, then id, descending.
fn ledger_order(user: &User) -> Vec<String> {
    db().query(
        "select idempotency_key from platform.token_usage where user_id = $1::text::uuid \
         order by created_at desc, id desc",
        &[&user.id],
    )
    .expect("reading the ledger")
    .iter()
    .map(|row| row.get(0))
    .collect()
}

/// Every page at `limit`, following `next_before` to the end: the events
/// read, in order, and the number of pages.
fn walk(bearer: &str, limit: usize) -> (Vec<Value>, usize) {
    let mut events = Vec::new();
    let mut pages = 0;
    let mut before: Option<String> = None;
    loop {
        let path = match &before {
            Some(cursor) => format!("/v1/usage/events?limit={limit}&before={cursor}"),
            None => format!("/v1/usage/events?limit={limit}"),
        };
        let answer = call("GET", &path, Some(bearer), &[], None);
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        let body = answer.json();
        let page = body["events"].as_array().expect("events").clone();
        assert!(page.len() <= limit, "{body}");
        pages += 1;
        events.extend(page);
        match body["next_before"].as_str() {
            Some(cursor) => before = Some(cursor.to_string()),
            None => {
                assert_eq!(body["next_before"], Value::Null, "{body}");
                return (events, pages);
            }
        }
        assert!(pages < 100, "the pages never end");
    }
}

fn keys(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["idempotency_key"].as_str().expect("a key").to_string())
        .collect()
}

#[test]
fn pages_read_every_own_event_once_newest_first() {
    let user = User::with_tokens(100_000);
    let other = User::with_tokens(100_000);
    record_events(&user.token, 8, 3);
    record_events(&other.token, 4, 1);
    let expected = ledger_order(&user);
    assert_eq!(expected.len(), 11);

    for limit in [4, 1, 11, 100] {
        let (events, pages) = walk(&user.token, limit);
        assert_eq!(
            keys(&events),
            expected,
            "pages of {limit}: no gap, no duplicate"
        );
        assert_eq!(pages, expected.len().div_ceil(limit), "pages of {limit}");
    }

    let (events, _) = walk(&user.token, 50);
    let theirs = ledger_order(&other);
    assert!(keys(&events).iter().all(|k| !theirs.contains(k)));
    let ids: Vec<String> = events
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_string())
        .collect();
    let mut distinct = ids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), ids.len(), "ids are distinct");
}

#[test]
fn an_event_reads_as_the_ledger_holds_it() {
    let user = User::with_tokens(10_000);
    let key = unique("list");
    assert_eq!(
        record(&user.token, &key, &event(MODEL, 100, 50)).status,
        201
    );

    let answer = call("GET", "/v1/usage/events", Some(&user.token), &[], None);

    assert_eq!(answer.status, 200, "{}", answer.body);
    let body = answer.json();
    assert_eq!(body["next_before"], Value::Null);
    let row = text(
        "select json_build_object('id', id::text, 'cost', cost::text, \
                'created_at', to_char(created_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US'))::text \
           from platform.token_usage where user_id = $1::text::uuid",
        &[&user.id],
    )
    .expect("the ledger row");
    let row: Value = serde_json::from_str(&row).expect("json");
    let event = &body["events"][0];
    assert_eq!(event["id"], row["id"]);
    assert_eq!(event["cost"], row["cost"], "the exact numeric, as text");
    let created_at = event["created_at"].as_str().expect("created_at");
    assert_eq!(
        created_at.trim_end_matches("+00:00"),
        row["created_at"]
            .as_str()
            .expect("text")
            .trim_end_matches('0')
            .trim_end_matches('.'),
        "RFC 3339 with its offset: {created_at}"
    );
    assert!(created_at.ends_with("+00:00"), "{created_at}");
    assert_eq!(
        event,
        &json!({
            "id": row["id"],
            "created_at": created_at,
            "model": MODEL,
            "prompt_tokens": 100,
            "completion_tokens": 50,
            "total_tokens": 150,
            "cost": row["cost"],
            "idempotency_key": key,
            "api_key_id": null,
            "project_id": null,
            "session_id": null,
        })
    );
}

#[test]
fn an_api_key_reads_its_owners_events_with_usage_read() {
    let user = User::with_tokens(10_000);
    let writer = user.api_key(&["usage:write"]);
    let reader = user.api_key(&["usage:read"]);
    let mut body = event(MODEL, 10, 5);
    body["idempotency_key"] = json!(unique("list"));
    let recorded = call("POST", "/v1/usage", Some(&writer), &[], Some(&body));
    assert_eq!(recorded.status, 201, "{}", recorded.body);
    record_events(&user.token, 2, 0);

    let refused = call("GET", "/v1/usage/events", Some(&writer), &[], None);
    assert_refused(&refused, 403, "insufficient_scope");

    let (by_key, _) = walk(&reader, 2);
    let (by_token, _) = walk(&user.token, 50);
    assert_eq!(by_key, by_token, "the key reads exactly its owner's events");
    assert_eq!(keys(&by_key), ledger_order(&user));
    let key_id = text(
        "select api_key_id::text from platform.token_usage \
          where user_id = $1::text::uuid and api_key_id is not null",
        &[&user.id],
    );
    assert!(key_id.is_some());
    let named: Vec<&Value> = by_key.iter().map(|e| &e["api_key_id"]).collect();
    assert!(named.contains(&&json!(key_id)), "{named:?}");
}

#[test]
fn an_admin_reads_only_their_own_events_here() {
    let admin = User::admin();
    let user = User::with_tokens(1_000);
    record_events(&user.token, 2, 0);

    let answer = call("GET", "/v1/usage/events", Some(&admin.token), &[], None);
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json(), json!({"events": [], "next_before": null}));

    let naming = format!("/v1/usage/events?user_id={}", user.id);
    let refused = call("GET", &naming, Some(&admin.token), &[], None);
    assert_refused(&refused, 422, "unknown_field");
}

#[test]
fn bad_limits_and_cursors_are_refused_with_400() {
    let user = User::with_tokens(1_000);
    record_events(&user.token, 3, 0);
    let cursor = call(
        "GET",
        "/v1/usage/events?limit=1",
        Some(&user.token),
        &[],
        None,
    )
    .json()["next_before"]
        .as_str()
        .expect("a cursor")
        .to_string();
    // A cursor edited by hand: whatever its length, one more `A` makes an
    // impossible length or decodes to a trailing NUL byte.
    let edited = format!("{cursor}A");

    let cases: &[(&str, u16, &str)] = &[
        ("limit=0", 400, "invalid_limit"),
        ("limit=101", 400, "invalid_limit"),
        ("limit=-1", 400, "invalid_limit"),
        ("limit=ten", 400, "invalid_limit"),
        ("limit=", 400, "invalid_limit"),
        ("before=", 400, "invalid_cursor"),
        ("before=not-a-cursor", 400, "invalid_cursor"),
        ("before=MS4w", 400, "invalid_cursor"),
        (&format!("before={edited}"), 400, "invalid_cursor"),
        ("page=2", 422, "unknown_field"),
    ];
    for (query, status, code) in cases {
        let answer = call(
            "GET",
            &format!("/v1/usage/events?{query}"),
            Some(&user.token),
            &[],
            None,
        );
        assert_refused(&answer, *status, code);
    }

    let unauthenticated = call("GET", "/v1/usage/events", None, &[], None);
    assert_eq!(unauthenticated.status, 401, "{}", unauthenticated.body);
}

#[test]
fn one_events_status_is_still_served_beside_the_list() {
    let user = User::with_tokens(1_000);
    let key = unique("list");
    assert_eq!(record(&user.token, &key, &event(MODEL, 1, 1)).status, 201);

    let answer = call(
        "GET",
        &format!("/v1/usage/events/{key}"),
        Some(&user.token),
        &[],
        None,
    );

    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["status"], "recorded");
}
