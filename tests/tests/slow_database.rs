//! A slow database behind the synchronous path: the user's balance row is
//! held by another transaction for longer than the Worker's REST timeout
//! (`REST_TIMEOUT_MS`, 5 s locally). The Worker answers 503 with
//! `Retry-After` within its timeout instead of hanging; the call it gave up
//! on finishes whole or not at all once the lock goes; and the client's retry
//! with the same idempotency key leaves exactly one row, for a single event
//! and for a batch alike.

mod usage_common;

use serde_json::json;
use std::time::{Duration, Instant};
use usage_common::*;

/// The Worker's REST timeout in the test stack (`wrangler.toml`'s
/// `REST_TIMEOUT_MS`), and how much later than it a 503 may come.
const REST_TIMEOUT: Duration = Duration::from_secs(5);
const SLACK: Duration = Duration::from_secs(3);

/// Holds `user`'s balance row, as a long transaction of another writer would.
fn hold_balance_row(user: &User) -> (postgres::Client, Instant) {
    let mut holder = db();
    holder
        .batch_execute("begin")
        .expect("begin the holding transaction");
    holder
        .execute(
            "select 1 from platform.token_balances where user_id = $1::text::uuid for update",
            &[&user.id],
        )
        .expect("lock the balance row");
    (holder, Instant::now())
}

fn assert_timed_out_politely(answer: &Answer, started: Instant) {
    let took = started.elapsed();
    assert_refused(answer, 503, "database_unavailable");
    assert!(
        answer.header("retry-after").is_some(),
        "503 without Retry-After"
    );
    assert!(
        took >= REST_TIMEOUT - Duration::from_millis(500) && took <= REST_TIMEOUT + SLACK,
        "answered after {took:?}, expected about the REST timeout ({REST_TIMEOUT:?})"
    );
}

#[test]
fn a_single_event_behind_a_held_lock_gets_503_in_time_and_its_retry_counts_once() {
    let user = User::with_tokens(10_000);
    let key = unique("slow");
    let body = event(MODEL, 60, 40);

    let (mut holder, started) = hold_balance_row(&user);
    let answer = record(&user.token, &key, &body);
    assert_timed_out_politely(&answer, started);
    assert_eq!(
        user.ledger_rows(),
        0,
        "nothing is recorded while the lock is held"
    );
    holder.batch_execute("commit").expect("release the lock");

    // The abandoned call may still commit now; the retry then replays it.
    let retry = eventually(Duration::from_secs(20), || {
        let retry = record(&user.token, &key, &body);
        (retry.status != 503).then_some(retry)
    })
    .expect("the retry is answered once the lock is gone");
    assert_eq!(retry.status, 201, "{}", retry.body);
    assert_eq!(user.ledger_rows(), 1, "one row, whichever call wrote it");
    assert_eq!(user.balance().used, 100);
}

#[test]
fn a_batch_behind_a_held_lock_gets_503_in_time_and_its_retry_counts_each_event_once() {
    let user = User::with_tokens(10_000);
    let events: Vec<_> = (0..5)
        .map(|i| {
            let mut e = event(MODEL, 10 + i, 0);
            e["idempotency_key"] = json!(unique("slow-batch"));
            e
        })
        .collect();
    let body = json!({ "events": events });
    let send_batch = || {
        call(
            "POST",
            "/v1/usage/batch",
            Some(&user.token),
            &[],
            Some(&body),
        )
    };

    let (mut holder, started) = hold_balance_row(&user);
    let answer = send_batch();
    assert_timed_out_politely(&answer, started);
    assert_eq!(user.ledger_rows(), 0);
    holder.batch_execute("commit").expect("release the lock");

    let retry = eventually(Duration::from_secs(20), || {
        let retry = send_batch();
        (retry.status != 503).then_some(retry)
    })
    .expect("the retry is answered once the lock is gone");
    assert_eq!(retry.status, 200, "{}", retry.body);
    let results = retry.json()["results"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(results.len(), 5, "{}", retry.body);
    assert!(
        results
            .iter()
            .all(|r| r["status"] == "recorded" || r["status"] == "replayed"),
        "{}",
        retry.body
    );
    assert_eq!(user.ledger_rows(), 5, "each event once");
    assert_eq!(user.balance().used, 10 + 11 + 12 + 13 + 14);
}
