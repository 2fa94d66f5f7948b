//! Figure 9: usage ingestion through the queue (`Prefer: respond-async`).
//! Bare workerd has no queues, so this figure alone runs on the stack's
//! `wrangler dev`.

use super::wrk::{check_ledger, ledger_rows, Load, Wrk};
use super::{Plan, Report};
use crate::postgres;
use anyhow::Result;
use std::time::{Duration, Instant};

/// Batches of 1000 events with `Prefer: respond-async` for a bounded time:
/// events accepted per second at the edge; then the time until the queue
/// consumer has recorded them all (the drain rate, from the first request to
/// the last row), and the lag the consumer reports per batch (its oldest
/// event's wait from 202 to recording).
pub(super) fn queue_ingestion(wrk: &Wrk, plan: &Plan, report: &mut Report) -> Result<()> {
    let stack = wrk.stack;
    let worker = stack.profile.worker_url();
    let url = stack.profile.admin_db_url();
    let (mut accepted, mut drained, mut lag50, mut lag99) = (vec![], vec![], vec![], vec![]);
    for i in 0..plan.repeats {
        let run_id = format!("queue-{i}");
        let since = postgres::execute(&stack.pg, &url, "select clock_timestamp()")?;
        let started = Instant::now();
        let load = Load::batches("batch-async", 4, plan.queue_secs);
        let r = wrk.run(&worker, &run_id, load)?;
        accepted.push(r.events / r.seconds);
        // Events still in flight when wrk stopped may be queued unanswered,
        // so the drain ends at the answered count and the ledger check below
        // allows for them.
        let deadline = Instant::now() + Duration::from_secs(600);
        while ledger_rows(stack, &run_id)? < r.events && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
        drained.push(ledger_rows(stack, &run_id)? / started.elapsed().as_secs_f64());
        std::thread::sleep(Duration::from_secs(3));
        check_ledger(stack, report, &run_id, &r, load, true)?;
        let lags = postgres::execute(
            &stack.pg,
            &url,
            &format!(
                "select percentile_cont(0.5) within group (order by lag_ms) \
                        || ' ' || percentile_cont(0.99) within group (order by lag_ms) \
                   from telemetry.queue_batches \
                  where recorded_at >= '{since}'"
            ),
        )?;
        let mut parts = lags
            .split_whitespace()
            .map(|v| v.parse::<f64>().unwrap_or(f64::NAN));
        lag50.push(parts.next().unwrap_or(f64::NAN));
        lag99.push(parts.next().unwrap_or(f64::NAN));
    }
    report.add_target(
        "9",
        "events/s accepted at the edge, async batches of 1000 (4 conns)",
        "events/s",
        &accepted,
        20_000.0,
        false,
    );
    report.add_target(
        "9",
        "events/s drained into the ledger by the consumer",
        "events/s",
        &drained,
        15_000.0,
        false,
    );
    report.add(
        "9",
        "queue lag per consumed batch, p50 (202 → recorded)",
        "ms",
        &lag50,
    );
    report.add(
        "9",
        "queue lag per consumed batch, p99 (a 5 s burst)",
        "ms",
        &lag99,
    );
    Ok(())
}
