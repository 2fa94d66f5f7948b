//! High-volume usage through Cloudflare Queues, run by `wrangler dev`'s local
//! queue simulator: `Prefer: respond-async` answers 202 after validation, the
//! Worker's own consumer records each delivered batch with one RPC, and every
//! event counts exactly once, through duplicates, consumer retries and an
//! outage of the database behind the REST layer.
//!
//! The outage tests break the shared database for a while, so they run alone:
//! every test here takes `STACK` (read for ordinary tests, write for outages).

mod usage_common;

use serde_json::{json, Value};
use std::sync::RwLock;
use std::time::Duration;
use usage_common::*;

static STACK: RwLock<()> = RwLock::new(());

/// The consumer's batch timeout is 1 s; a retry after a failure waits a few
/// seconds more. Generous, so a slow machine does not fail the test.
const RECORDED_WITHIN: Duration = Duration::from_secs(40);

fn record_async(bearer: &str, key: &str, body: &Value) -> Answer {
    call(
        "POST",
        "/v1/usage",
        Some(bearer),
        &[("idempotency-key", key), ("prefer", "respond-async")],
        Some(body),
    )
}

fn ledger_rows(user: &User, key: &str) -> i64 {
    scalar(
        "select count(*) from platform.token_usage \
         where user_id = $1::text::uuid and idempotency_key = $2",
        &[&user.id, &key],
    )
}

/// Waits until the user's ledger holds `n` rows, then a little longer to see
/// that no late duplicate follows; returns the final count.
fn settled_rows(user: &User, n: i64) -> i64 {
    let reached = eventually(RECORDED_WITHIN, || (user.ledger_rows() >= n).then_some(()));
    assert!(
        reached.is_some(),
        "only {} of {n} events recorded within {RECORDED_WITHIN:?}",
        user.ledger_rows()
    );
    std::thread::sleep(Duration::from_secs(3));
    user.ledger_rows()
}

fn status(user: &User, key: &str) -> Value {
    let answer = call(
        "GET",
        &format!("/v1/usage/events/{key}"),
        Some(&user.token),
        &[],
        None,
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()
}

#[test]
fn an_async_event_is_accepted_with_202_and_then_recorded_once() {
    let _shared = STACK.read().unwrap_or_else(|e| e.into_inner());
    let user = User::with_tokens(10_000);
    let key = unique("async");

    let answer = record_async(&user.token, &key, &event(MODEL, 100, 20));

    assert_eq!(answer.status, 202, "{}", answer.body);
    assert_eq!(answer.header("preference-applied"), Some("respond-async"));
    let status_url = format!("/v1/usage/events/{key}");
    assert_eq!(answer.header("location"), Some(status_url.as_str()));
    assert_eq!(
        answer.json(),
        json!({"status": "queued", "idempotency_key": key, "status_url": status_url})
    );
    assert_eq!(settled_rows(&user, 1), 1);
    let recorded = status(&user, &key);
    assert_eq!(recorded["status"], "recorded", "{recorded}");
    assert_eq!(recorded["total_tokens"], 120);
    let ledger_id = scalar(
        "select id from platform.token_usage where user_id = $1::text::uuid and idempotency_key = $2",
        &[&user.id, &key],
    );
    assert_eq!(recorded["usage_id"], ledger_id);
    assert_eq!(user.balance().used, 120);
}

#[test]
fn without_the_preference_recording_stays_synchronous() {
    let _shared = STACK.read().unwrap_or_else(|e| e.into_inner());
    let user = User::with_tokens(10_000);
    let key = unique("sync");
    let answer = call(
        "POST",
        "/v1/usage",
        Some(&user.token),
        &[("idempotency-key", &key), ("prefer", "return=minimal")],
        Some(&event(MODEL, 1, 1)),
    );
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(answer.header("preference-applied"), None);
    assert_eq!(ledger_rows(&user, &key), 1, "recorded before the answer");
}

#[test]
fn bad_input_is_refused_at_once_and_never_queued() {
    let _shared = STACK.read().unwrap_or_else(|e| e.into_inner());
    let user = User::with_tokens(10_000);
    let cases = [
        (
            record_async(
                &user.token,
                &unique("neg"),
                &json!({"model": MODEL, "prompt_tokens": -1, "completion_tokens": 0}),
            ),
            422,
            "invalid_field",
        ),
        (
            call(
                "POST",
                "/v1/usage",
                Some(&user.token),
                &[("prefer", "respond-async")],
                Some(&event(MODEL, 1, 1)),
            ),
            400,
            "idempotency_key_required",
        ),
        (
            record_async("not-a-token", &unique("anon"), &event(MODEL, 1, 1)),
            401,
            "malformed_token",
        ),
    ];
    for (answer, status, code) in &cases {
        assert_refused(answer, *status, code);
    }
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(user.ledger_rows(), 0);
}

#[test]
fn the_same_event_enqueued_twice_counts_once() {
    let _shared = STACK.read().unwrap_or_else(|e| e.into_inner());
    let user = User::with_tokens(10_000);
    let key = unique("twice");
    for _ in 0..2 {
        let answer = record_async(&user.token, &key, &event(MODEL, 50, 0));
        assert_eq!(answer.status, 202, "{}", answer.body);
    }
    assert_eq!(settled_rows(&user, 1), 1);
    assert_eq!(user.balance().used, 50, "debited once");
}

#[test]
fn a_bad_event_is_rejected_with_its_reason_and_does_not_block_its_batch() {
    let _shared = STACK.read().unwrap_or_else(|e| e.into_inner());
    let user = User::with_tokens(10_000);
    let keys = [unique("ok"), unique("bad-model"), unique("ok")];
    let body = json!({"events": [
        {"idempotency_key": keys[0], "model": MODEL, "prompt_tokens": 1, "completion_tokens": 1},
        {"idempotency_key": keys[1], "model": "no-such-model", "prompt_tokens": 1, "completion_tokens": 1},
        {"idempotency_key": keys[2], "model": OTHER_MODEL, "prompt_tokens": 2, "completion_tokens": 2},
        {"model": MODEL, "prompt_tokens": 1, "completion_tokens": 1},
    ]});
    let answer = call(
        "POST",
        "/v1/usage/batch",
        Some(&user.token),
        &[("prefer", "respond-async")],
        Some(&body),
    );

    assert_eq!(answer.status, 202, "{}", answer.body);
    let accepted = answer.json();
    assert_eq!(
        (accepted["queued"].clone(), accepted["rejected"].clone()),
        (json!(3), json!(1))
    );
    assert_eq!(
        accepted["results"][3]["status"], "rejected",
        "no key: refused now"
    );
    assert_eq!(settled_rows(&user, 2), 2);
    let rejected = eventually(RECORDED_WITHIN, || {
        let s = status(&user, &keys[1]);
        (s["status"] == "rejected").then_some(s)
    })
    .expect("the bad event is rejected");
    assert_eq!(rejected["error"]["code"], "unknown_model", "{rejected}");
    assert_eq!(status(&user, &keys[2])["status"], "recorded");
}

/// Makes Postgres refuse the REST layer's login role and drops its pooled
/// connections, so every RPC fails as when the database is down; undone on
/// drop, even when the test fails.
struct DatabaseOutage;

impl DatabaseOutage {
    fn start() -> Self {
        db().batch_execute(
            "alter role authenticator nologin; \
             select pg_terminate_backend(pid) from pg_stat_activity where usename = 'authenticator';",
        )
        .expect("refuse the REST layer's role");
        DatabaseOutage
    }
}

impl Drop for DatabaseOutage {
    fn drop(&mut self) {
        let _ = db().batch_execute("alter role authenticator login");
    }
}

#[test]
fn events_accepted_while_the_database_is_down_are_all_recorded_once_after_it_returns() {
    let _alone = STACK.write().unwrap_or_else(|e| e.into_inner());
    let user = User::with_tokens(10_000);
    let keys: Vec<String> = (0..5).map(|_| unique("outage")).collect();
    {
        let _outage = DatabaseOutage::start();
        let down = record(
            &user.token,
            &unique("sync-during-outage"),
            &event(MODEL, 1, 1),
        );
        assert_eq!(
            down.status, 503,
            "the synchronous path reports the outage: {}",
            down.body
        );
        for key in &keys {
            let answer = record_async(&user.token, key, &event(MODEL, 10, 0));
            assert_eq!(
                answer.status, 202,
                "accepted during the outage: {}",
                answer.body
            );
        }
        std::thread::sleep(Duration::from_secs(4));
        assert_eq!(
            user.ledger_rows(),
            0,
            "nothing can be recorded while it is down"
        );
    }
    assert_eq!(
        settled_rows(&user, 5),
        5,
        "each accepted event exactly once"
    );
    for key in &keys {
        assert_eq!(ledger_rows(&user, key), 1, "{key}");
    }
    assert_eq!(user.balance().used, 50);
}

/// The REST layer's process (found by the port in `CDS_SUPABASE_URL`),
/// stopped with SIGSTOP: it accepts nothing and answers nothing, as a hung or
/// stopped PostgREST would. SIGCONT on drop, even when the test fails.
struct RestLayerStopped(i32);

impl RestLayerStopped {
    fn start() -> Self {
        let url = env("CDS_SUPABASE_URL");
        let port = url.rsplit(':').next().expect("a port in CDS_SUPABASE_URL");
        let listen = format!("127.0.0.1:{port}");
        let pid = std::fs::read_dir("/proc")
            .expect("/proc")
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
                let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
                let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
                let is_standin = args.first()?.ends_with(b"rest-standin");
                let listens_here = args.contains(&listen.as_bytes());
                (is_standin && listens_here).then_some(pid)
            })
            .next()
            .expect("the REST stand-in's process (this test needs the local stack)");
        // SAFETY: kill has no memory-safety preconditions.
        assert_eq!(
            unsafe { libc::kill(pid, libc::SIGSTOP) },
            0,
            "SIGSTOP {pid}"
        );
        RestLayerStopped(pid)
    }
}

impl Drop for RestLayerStopped {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { libc::kill(self.0, libc::SIGCONT) };
    }
}

#[test]
fn events_accepted_while_the_rest_layer_is_stopped_are_all_recorded_once_after_it_resumes() {
    let _alone = STACK.write().unwrap_or_else(|e| e.into_inner());
    let user = User::with_tokens(10_000);
    let keys: Vec<String> = (0..4).map(|_| unique("rest-stopped")).collect();
    let sync_key = unique("sync-while-stopped");
    {
        let _stopped = RestLayerStopped::start();
        // The synchronous path cannot record now: it must say so within its
        // own REST timeout (5 s), with Retry-After, instead of hanging.
        let started = std::time::Instant::now();
        let down = record(&user.token, &sync_key, &event(MODEL, 1, 1));
        assert_refused(&down, 503, "database_unavailable");
        assert!(
            down.header("retry-after").is_some(),
            "503 carries Retry-After"
        );
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "answered within the edge's timeout, not hung: {:?}",
            started.elapsed()
        );
        for key in &keys {
            let answer = record_async(&user.token, key, &event(MODEL, 3, 0));
            assert_eq!(
                answer.status, 202,
                "accepted while REST is stopped: {}",
                answer.body
            );
        }
        // Long enough for the consumer's first delivery to time out (5 s).
        std::thread::sleep(Duration::from_secs(8));
        assert_eq!(
            user.ledger_rows(),
            0,
            "nothing recorded while REST is stopped"
        );
    }
    for key in &keys {
        let recorded = eventually(RECORDED_WITHIN, || {
            (ledger_rows(&user, key) == 1).then_some(())
        });
        assert!(recorded.is_some(), "{key} recorded after REST resumed");
    }
    // The 503'd request sat in the stopped process's backlog and may have been
    // recorded when it resumed; the client's retry with the same key is
    // answered either way, and the event counts once.
    let retry = record(&user.token, &sync_key, &event(MODEL, 1, 1));
    assert_eq!(retry.status, 201, "{}", retry.body);
    std::thread::sleep(Duration::from_secs(3));
    for key in keys.iter().chain([&sync_key]) {
        assert_eq!(ledger_rows(&user, key), 1, "{key} exactly once");
    }
    assert_eq!(user.ledger_rows(), 5);
    assert_eq!(user.balance().used, 4 * 3 + 2);
}

#[test]
fn a_batch_whose_first_delivery_times_out_is_delivered_again_and_counts_once() {
    let _alone = STACK.write().unwrap_or_else(|e| e.into_inner());
    let user = User::with_tokens(10_000);
    let keys: Vec<String> = (0..3).map(|_| unique("slow")).collect();
    let mut holder = db();
    let mut blocking = holder.transaction().expect("begin");
    // Every recording waits behind this lock past the consumer's timeout
    // (QUEUE_REST_TIMEOUT_MS, 5 s in the test stack), so it sees its first delivery fail
    // and retries it while that call may still commit once the lock goes.
    blocking
        .batch_execute("lock table platform.token_usage in exclusive mode")
        .expect("lock the ledger");
    for key in &keys {
        let answer = record_async(&user.token, key, &event(MODEL, 7, 0));
        assert_eq!(answer.status, 202, "{}", answer.body);
    }
    std::thread::sleep(Duration::from_secs(8));
    blocking.rollback().expect("release the ledger");

    assert_eq!(
        settled_rows(&user, 3),
        3,
        "each event once, whichever delivery recorded it"
    );
    assert_eq!(user.balance().used, 21);
}
