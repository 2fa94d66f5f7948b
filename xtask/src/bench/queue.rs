//! Figure 9: usage ingestion through the queue (`Prefer: respond-async`),
//! on several runtimes in the same run, alternating: our release build on
//! `workerd serve` with the queue stand-in (`xtask/src/queue_standin.js`)
//! delivering like Cloudflare's consumers, several batches at once (the
//! figure, judged against the targets) and one at a time; and the stack's
//! `wrangler dev`, whose local broker delivers one batch at a time (kept,
//! labelled, as the only local runtime with real queue plumbing).

use super::cpu::workerd_cpu_ns;
use super::edge::Served;
use super::wrk::{check_ledger, ledger_rows, Load, Wrk};
use super::{Plan, Report};
use crate::devkeys::KeyScheme;
use crate::postgres;
use crate::stack::Stack;
use crate::workerd_serve;
use anyhow::Result;
use std::time::{Duration, Instant};

/// Where our Workers with the queue stand-in listen, above the stack's
/// Worker port (the other offsets are in `edge`; the JWT harness has +400):
/// the first at the first concurrency, the next 100 higher, and so on.
const QUEUE_PORT_OFFSET: u16 = 600;

/// How many batches the stand-in hands the consumer at once, one Worker
/// each. 1 is how `wrangler dev`'s broker delivers, so that row against the
/// wrangler one is what wrangler's plumbing costs; the next is the figure.
/// Cloudflare scales a consumer's concurrent invocations with the backlog
/// (up to 250 unless `max_concurrency` says less); here the limit is
/// Postgres on two shared cores. Every delivered batch touches the balance
/// rows of all the bench users, which overlapping calls lock in the same
/// order, so a call waits for the one before it to commit; but the rest of a
/// delivery (transfer, the consumer, parsing the argument, writing the
/// ledger rows) overlaps. Measured on a loaded machine, 1, 2 and 3 at once
/// drained 2,423, 5,077 and 6,712 events/s while the RPC's own time grew
/// from 718 to 952 and 1,183 ms (the lock waits): three keeps one call
/// committing, one being parsed and one in transit, and more would only add
/// waits on the same locks and CPUs, and calls past the REST timeout.
const CONCURRENCY: [u32; 2] = [1, 3];

/// One runtime's measurements over the repeats.
#[derive(Default)]
struct Runs {
    accepted: Vec<f64>,
    drained: Vec<f64>,
    lag50: Vec<f64>,
    lag99: Vec<f64>,
    rpc_ms: Vec<f64>,
    cycle_ms: Vec<f64>,
    /// workerd only: its CPU while draining, per 1000 events.
    cpu_ms_per_1000: Vec<f64>,
}

/// Batches of 1000 events with `Prefer: respond-async` for a bounded time:
/// events accepted per second at the edge; then the time until the queue
/// consumer has recorded them all (the drain rate, from the first request to
/// the last row), and the lag the consumer reports per batch (its oldest
/// event's wait from 202 to recording); and per delivered batch, the RPC's
/// time in Postgres against the time between recorded batches (what the
/// rest of a delivery costs, when deliveries follow each other).
pub(super) fn queue_ingestion(wrk: &Wrk, plan: &Plan, report: &mut Report) -> Result<()> {
    let stack = wrk.stack;
    let mut runtimes = Vec::new();
    for (n, concurrency) in (0u16..).zip(CONCURRENCY) {
        let served = start_with_queues(stack, QUEUE_PORT_OFFSET + 100 * n, concurrency)?;
        let label = format!("workerd + stand-in, {concurrency} at once");
        runtimes.push((Some(served), label, Runs::default()));
    }
    runtimes.push((None, "wrangler dev, 1 at once".to_string(), Runs::default()));
    // The figure is the last stand-in's concurrency; the other rows say why.
    let figure = format!(
        "workerd + stand-in, {} at once",
        CONCURRENCY[CONCURRENCY.len() - 1]
    );
    // Alternating, so the machine's other load hits every runtime alike.
    for i in 0..plan.repeats {
        for (n, (served, _, runs)) in runtimes.iter_mut().enumerate() {
            let (url, group) = match served {
                Some(served) => (served.url.clone(), Some(served.service.pid())),
                None => (stack.profile.worker_url(), None),
            };
            burst(
                wrk,
                plan,
                &url,
                &format!("queue-{n}-{i}"),
                group,
                runs,
                report,
            )?;
        }
    }
    for (served, label, runs) in runtimes {
        drop(served);
        let accepted = format!("accepted at the edge, 1000-event async batches ({label})");
        let drained = format!("drained into the ledger by the consumer ({label})");
        if label == figure {
            report.add_target("9", accepted, "events/s", &runs.accepted, 20_000.0, false);
            report.add_target("9", drained, "events/s", &runs.drained, 15_000.0, false);
        } else {
            report.add("9", accepted, "events/s", &runs.accepted);
            report.add("9", drained, "events/s", &runs.drained);
        }
        report.add(
            "9",
            format!("lag per batch p50, 202 → recorded ({label})"),
            "ms",
            &runs.lag50,
        );
        report.add(
            "9",
            format!("lag per batch p99, a 5 s burst ({label})"),
            "ms",
            &runs.lag99,
        );
        report.add(
            "9",
            format!("per batch: the RPC in Postgres, mean ({label})"),
            "ms",
            &runs.rpc_ms,
        );
        report.add(
            "9",
            format!("per batch: between recorded batches, mean ({label})"),
            "ms",
            &runs.cycle_ms,
        );
        if !runs.cpu_ms_per_1000.is_empty() {
            report.add(
                "9",
                format!("workerd CPU draining, per 1000 events ({label})"),
                "ms",
                &runs.cpu_ms_per_1000,
            );
        }
    }
    Ok(())
}

/// Our Worker, the build the stack made, on `workerd serve` with the queue
/// stand-in delivering `concurrency` batches at once, answering `/health`.
fn start_with_queues(stack: &Stack, port_offset: u16, concurrency: u32) -> Result<Served> {
    let mut profile = stack.profile.clone();
    profile.worker_port += port_offset;
    profile.dir = stack
        .profile
        .dir
        .join(format!("workerd-queues-{concurrency}"));
    std::fs::create_dir_all(&profile.dir)?;
    let service = workerd_serve::start_edge_with_queues(
        &profile,
        &stack.keys,
        KeyScheme::Opaque,
        &stack.worker_tools,
        concurrency,
    )?;
    Served::once_answering(service, profile.worker_url(), "/health")
}

/// One 5 s burst against `worker`, then its drain.
fn burst(
    wrk: &Wrk,
    plan: &Plan,
    worker: &str,
    run_id: &str,
    group: Option<u32>,
    runs: &mut Runs,
    report: &mut Report,
) -> Result<()> {
    let stack = wrk.stack;
    let url = stack.profile.admin_db_url();
    let since = postgres::execute(&stack.pg, &url, "select clock_timestamp()")?;
    let started = Instant::now();
    let load = Load::batches("batch-async", 4, plan.queue_secs);
    let r = wrk.run(worker, run_id, load)?;
    runs.accepted.push(r.events / r.seconds);
    // Once the burst is over, the Worker's only work is the consumer's (and
    // the stand-in's): its CPU from here to the end of the drain, per event
    // recorded meanwhile.
    let burst_end = match group {
        Some(group) => Some((workerd_cpu_ns(group)?, ledger_rows(stack, run_id)?)),
        None => None,
    };
    // Events still in flight when wrk stopped may be queued unanswered,
    // so the drain ends at the answered count and the ledger check below
    // allows for them.
    let deadline = Instant::now() + Duration::from_secs(600);
    while ledger_rows(stack, run_id)? < r.events && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let rows = ledger_rows(stack, run_id)?;
    runs.drained.push(rows / started.elapsed().as_secs_f64());
    if let (Some(group), Some((cpu, recorded))) = (group, burst_end) {
        let ms = (workerd_cpu_ns(group)? - cpu) as f64 / 1e6;
        runs.cpu_ms_per_1000.push(ms / (rows - recorded) * 1000.0);
    }
    std::thread::sleep(Duration::from_secs(3));
    check_ledger(stack, report, run_id, &r, load, true)?;
    let batches = postgres::execute(
        &stack.pg,
        &url,
        &format!(
            "select concat_ws(' ', \
                    coalesce(percentile_cont(0.5) within group (order by lag_ms)::text, 'NaN'), \
                    coalesce(percentile_cont(0.99) within group (order by lag_ms)::text, 'NaN'), \
                    coalesce(avg(duration_ms)::text, 'NaN'), \
                    coalesce((extract(epoch from max(recorded_at) - min(recorded_at)) * 1000 \
                              / nullif(count(*) - 1, 0))::text, 'NaN')) \
               from telemetry.queue_batches \
              where recorded_at >= '{since}'"
        ),
    )?;
    let mut parts = batches
        .split_whitespace()
        .map(|v| v.parse::<f64>().unwrap_or(f64::NAN));
    for into in [
        &mut runs.lag50,
        &mut runs.lag99,
        &mut runs.rpc_ms,
        &mut runs.cycle_ms,
    ] {
        into.push(parts.next().unwrap_or(f64::NAN));
    }
    Ok(())
}
