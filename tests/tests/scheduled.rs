//! The cron trigger through workerd's `/__scheduled` (wrangler dev
//! --test-scheduled): it folds the usage recorded since the last run into the
//! daily summary, records the run in telemetry, and skips when another
//! refresh holds the lock.

mod usage_common;

use e2e_tests::db::summary_mismatches;
use std::sync::Mutex;
use usage_common::*;

/// The two tests share the one refresh lock; one at a time.
static REFRESH: Mutex<()> = Mutex::new(());

fn run_cron() {
    let answer = send(
        request("POST", &worker_url("/__scheduled?cron=*/5+*+*+*+*")),
        None,
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
}

fn pending_deltas(user: &User) -> i64 {
    scalar(
        "select count(*) from analytics.daily_token_deltas where user_id = $1::text::uuid",
        &[&user.id],
    )
}

/// Rows where the user's rollup and a from-scratch aggregate of their ledger
/// differ (0 when the rollup is exact).
fn rollup_mismatches(user: &User) -> i64 {
    summary_mismatches(
        &mut db(),
        std::slice::from_ref(&user.id),
        "analytics.daily_token_rollup",
    )
}

/// Refresh runs counted in telemetry's lifetime totals (the refresh counts
/// itself, in its own transaction).
fn refresh_runs(status: &str) -> i64 {
    scalar(
        "select coalesce(sum(calls), 0)::bigint from telemetry.execution_totals \
         where function_name = 'refresh_daily_token_summary' and status = $1",
        &[&status],
    )
}

fn record_some(user: &User, n: u64) {
    for i in 0..n {
        let answer = record(&user.token, &unique("cron"), &event(MODEL, 10 + i, 1));
        assert_eq!(answer.status, 201, "{}", answer.body);
    }
}

#[test]
fn the_cron_folds_new_usage_into_the_summary_and_records_the_run() {
    let _one_at_a_time = REFRESH.lock().unwrap_or_else(|e| e.into_inner());
    let user = User::with_tokens(10_000);
    record_some(&user, 3);
    assert_eq!(pending_deltas(&user), 3, "each recording appends a delta");
    let runs_before = refresh_runs("ok");

    run_cron();

    assert_eq!(pending_deltas(&user), 0, "the cron folded the deltas");
    assert_eq!(rollup_mismatches(&user), 0, "the rollup equals the ledger");
    assert_eq!(refresh_runs("ok"), runs_before + 1, "the run is recorded");
    let overview = call("GET", "/v1/usage/overview", Some(&user.token), &[], None);
    assert_eq!(overview.status, 200, "{}", overview.body);
    assert_eq!(overview.json()["totals"]["requests"], 3);
}

#[test]
fn a_cron_run_while_another_refresh_holds_the_lock_skips_and_the_next_catches_up() {
    let _one_at_a_time = REFRESH.lock().unwrap_or_else(|e| e.into_inner());
    let user = User::with_tokens(10_000);
    record_some(&user, 2);
    let skipped_before = refresh_runs("skipped");

    // Another refresh, as far as the lock knows, is still running.
    let mut holder = db();
    let mut running = holder.transaction().expect("begin");
    running
        .execute(
            "select pg_advisory_xact_lock(hashtext('analytics.daily_token_summary'))",
            &[],
        )
        .expect("take the refresh lock");
    run_cron();
    assert_eq!(
        refresh_runs("skipped"),
        skipped_before + 1,
        "the run skipped"
    );
    assert_eq!(pending_deltas(&user), 2, "a skipped run folds nothing");
    running.rollback().expect("release the lock");

    run_cron();
    assert_eq!(
        pending_deltas(&user),
        0,
        "the next run folds what was pending"
    );
    assert_eq!(rollup_mismatches(&user), 0, "exactly once");
}

#[test]
fn the_cron_prunes_telemetry_past_its_retention_and_counts_its_run() {
    let function = unique("pruned").replace('-', "_");
    let cells = |age: &str| {
        scalar(
            &format!(
                "select count(*) from telemetry.execution_metrics \
                 where function_name = $1 and minute < now() - interval '{age}'"
            ),
            &[&function],
        )
    };
    // An old cell and a recent one, as flushes of long ago and of now left them.
    db().execute(
        "insert into telemetry.execution_metrics \
           (minute, function_name, status, http_status, calls, sum_ms, max_ms, buckets) \
         select date_trunc('minute', now()) - age, $1, 'ok', 200, 1, 1, 1, '{1,1,1,1,1,1,1,1,1,1}' \
           from (values (interval '8 days'), (interval '1 day')) a(age)",
        &[&function],
    )
    .expect("old telemetry");
    let cron_runs = || {
        scalar(
            "select coalesce(sum(calls), 0)::bigint from telemetry.execution_totals \
             where function_name = 'cron' and status = 'ok'",
            &[],
        )
    };
    let runs_before = cron_runs();
    {
        let _one_at_a_time = REFRESH.lock().unwrap_or_else(|e| e.into_inner());
        run_cron();
    }
    assert_eq!(cells("7 days"), 0, "the cell past the retention is pruned");
    assert_eq!(cells("0 days"), 1, "the recent one stays");
    let counted = eventually(std::time::Duration::from_secs(10), || {
        (cron_runs() > runs_before).then_some(())
    });
    assert!(
        counted.is_some(),
        "the cron run is counted as a call of cron"
    );
}
