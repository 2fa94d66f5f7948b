//! The batch RPC alone: `record_token_usage_batch` with 1000-event batches,
//! called as the service role straight in Postgres and timed inside the
//! server (`clock_timestamp()` around the call), so the figure is the
//! database's share of `POST /v1/usage/batch` without HTTP, the REST layer
//! or the Worker. Each call is its own transaction, as PostgREST runs it; the
//! batches go to the bench users in turn.

use super::{Plan, Report};
use crate::postgres;
use crate::stack::Stack;
use anyhow::{Context, Result};
use std::fmt::Write as _;

/// Events per call: the batch RPC's maximum, which the edge sends.
const EVENTS: u32 = 1000;
/// Timed calls per repeat, after one untimed call that warms the session's
/// plans.
const CALLS: u32 = 10;
/// The events/s the issue asks of the batch RPC on this machine.
const TARGET: f64 = 30_000.0;

pub(super) fn measure(stack: &Stack, plan: &Plan, report: &mut Report) -> Result<()> {
    let url = stack.profile.admin_db_url();
    let (mut rates, mut per_call) = (vec![], vec![]);
    for repeat in 0..plan.repeats {
        let run_id = format!("batch-rpc-{repeat}");
        let secs = timed_calls(stack, &url, &run_id)?;
        let total: f64 = secs.iter().sum();
        rates.push(f64::from(EVENTS) * secs.len() as f64 / total);
        per_call.extend(secs.iter().map(|s| s * 1000.0));
        // Every call answered 1000 recorded (the SQL raises otherwise);
        // the ledger must hold each event once, the warm-up's included.
        let expected = f64::from(EVENTS * (CALLS + 1));
        let rows = super::wrk::ledger_rows(stack, &run_id)?;
        if rows != expected {
            report.problems.push(format!(
                "{run_id}: {rows} ledger rows for {expected} recorded events"
            ));
        }
    }
    report.add_target(
        "10",
        "record_token_usage_batch alone, 1000-event batches (in-server)",
        "events/s",
        &rates,
        TARGET,
        false,
    );
    report.add(
        "10",
        "one 1000-event record_token_usage_batch call, in-server",
        "ms",
        &per_call,
    );
    Ok(())
}

/// Runs the warm-up and CALLS timed calls in one session, each in its own
/// transaction as the service role; returns the timed calls' seconds. The
/// answer is kept as the `json` the RPC returns, as PostgREST sends it on:
/// a `jsonb` variable would parse the 1000 answers inside the timed call
/// (about a tenth of it), work no caller of the RPC does.
fn timed_calls(stack: &Stack, url: &str, run_id: &str) -> Result<Vec<f64>> {
    let mut sql = String::from("select set_config('bench.batch_rpc_secs', '', false);");
    for call in 0..=CALLS {
        let _ = write!(
            sql,
            "begin; set local role service_role; \
             select set_config('request.jwt.claims', '{{\"role\": \"service_role\"}}', true); \
             do $$ \
             declare \
               v_user uuid := (select u.id from bench.users u where u.n = 1 + {call} % 64); \
               v_events jsonb := (select jsonb_agg(jsonb_build_object('idempotency_key', '{run_id}-{call}-' || g, \
                 'model', 'gpt-4o-mini', 'prompt_tokens', 12, 'completion_tokens', 3)) \
                 from generate_series(1, {EVENTS}) g); \
               v_started timestamptz; \
               v_answer json; \
             begin \
               v_started := clock_timestamp(); \
               v_answer := platform.record_token_usage_batch(v_events, v_user); \
               if {call} > 0 then \
                 perform set_config('bench.batch_rpc_secs', concat_ws(',', \
                   nullif(current_setting('bench.batch_rpc_secs'), ''), \
                   extract(epoch from clock_timestamp() - v_started)::text), false); \
               end if; \
               if (v_answer ->> 'recorded')::int <> {EVENTS} then \
                 raise exception 'call {call} did not record every event: %', v_answer::jsonb - 'results'; \
               end if; \
             end $$; \
             commit;"
        );
    }
    sql.push_str("select current_setting('bench.batch_rpc_secs');");
    let out = postgres::execute(&stack.pg, url, &sql)?;
    let last = out
        .lines()
        .last()
        .context("no timings from the batch RPC run")?;
    last.split(',')
        .map(|s| s.trim().parse::<f64>().context("a call's seconds"))
        .collect()
}
