//! The usage API under concurrent callers: retries racing each other count
//! once, and reservations racing for one balance never hold more than it.
//! Every request of a test is released at the same moment by a barrier.

mod usage_common;

use std::sync::{Arc, Barrier};
use std::thread;
use usage_common::*;

const CALLERS: usize = 20;

/// Runs `f` on `CALLERS` threads started together and returns their answers.
fn all_at_once(f: impl Fn() -> Answer + Send + Sync + 'static) -> Vec<Answer> {
    let barrier = Arc::new(Barrier::new(CALLERS));
    let f = Arc::new(f);
    let threads: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (barrier, f) = (barrier.clone(), f.clone());
            thread::spawn(move || {
                barrier.wait();
                f()
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("a caller thread"))
        .collect()
}

#[test]
fn one_idempotency_key_sent_twenty_times_at_once_is_recorded_once() {
    let user = User::with_tokens(10_000);
    let key = unique("race");
    let token = user.token.clone();

    let answers = all_at_once(move || record(&token, &key, &event(MODEL, 70, 30)));

    let first = &answers[0];
    assert_eq!(first.status, 201, "{}", first.body);
    for answer in &answers {
        assert_eq!(answer.status, first.status, "{}", answer.body);
        assert_eq!(answer.body, first.body, "every answer is the first answer");
    }
    let originals = answers
        .iter()
        .filter(|a| a.header("idempotent-replayed") == Some("false"))
        .count();
    assert_eq!(originals, 1, "one call recorded, the others replayed it");
    assert_eq!(user.ledger_rows(), 1);
    assert_eq!(
        user.balance(),
        Balance {
            granted: 10_000,
            used: 100,
            reserved: 0
        }
    );
}

#[test]
fn twenty_reservations_racing_for_one_balance_never_hold_more_than_it() {
    const GRANTED: u64 = 1_000;
    let user = User::with_tokens(GRANTED as i64);
    let token = user.token.clone();

    let answers = all_at_once(move || reserve(&token, GRANTED / 4, None));

    let held = answers.iter().filter(|a| a.status == 201).count();
    assert_eq!(held, 4, "exactly four quarters fit");
    for refused in answers.iter().filter(|a| a.status != 201) {
        assert_refused(refused, 402, "insufficient_balance");
    }
    assert_eq!(user.balance().reserved, GRANTED as i64);
    let active = scalar(
        "select count(*) from platform.token_reservations \
         where user_id = $1::text::uuid and status = 'active'",
        &[&user.id],
    );
    assert_eq!(active, 4);
}
