//! Figures 4 and 5: our Worker served by `workerd serve` alone (release
//! build, no Node in the path), against the same RPC sent straight to the
//! REST layer, in the same run.

use super::cpu::{ended_children_cpu_ns, tree_cpu_ns};
use super::wrk::{check_ledger, Load, Wrk};
use super::{Plan, Report};
use crate::devkeys::KeyScheme;
use crate::proc::{wait_until, Service};
use crate::stack::Stack;
use crate::workerd_serve;
use anyhow::{Context, Result};
use std::time::Duration;

/// Where the extra Workers of the benchmark listen, above the stack's own
/// Worker port (its inspector port is shifted the same way for `wrangler
/// dev`): fresh ones for figure 2, the peer, ours on `workerd serve`.
pub(super) const COLD_START_PORT_OFFSET: u16 = 100;
pub(super) const PEER_PORT_OFFSET: u16 = 200;
pub(super) const OURS_PORT_OFFSET: u16 = 300;

/// A Worker served by `workerd serve` for the benchmark, stopped when
/// dropped (also when a figure fails half-way).
pub(super) struct Served {
    pub(super) service: Service,
    pub(super) url: String,
}

impl Served {
    /// `service`, once a GET of `probe` (a path on `url`) answers, within a
    /// minute; the service is stopped if it never does.
    pub(super) fn once_answering(mut service: Service, url: String, probe: &str) -> Result<Self> {
        let probe = format!("{url}{probe}");
        wait_until(&mut service, Duration::from_secs(60), || {
            ureq::get(&probe)
                .timeout(Duration::from_secs(2))
                .call()
                .is_ok()
        })?;
        Ok(Served { service, url })
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.service.stop(Duration::from_secs(5));
    }
}

/// Our Worker, the build the stack made, on `workerd serve`, answering
/// `/health`.
pub(super) fn start_ours(stack: &Stack) -> Result<Served> {
    let mut profile = stack.profile.clone();
    profile.worker_port += OURS_PORT_OFFSET;
    profile.dir = stack.profile.dir.join("workerd");
    std::fs::create_dir_all(&profile.dir)?;
    let service = workerd_serve::start_edge(
        &profile,
        &stack.keys,
        KeyScheme::Opaque,
        &stack.worker_tools,
    )?;
    Served::once_answering(service, profile.worker_url(), "/health")
}

pub(super) fn edge_overhead(
    wrk: &Wrk,
    worker: &str,
    plan: &Plan,
    report: &mut Report,
) -> Result<()> {
    let rest = wrk.stack.profile.supabase_url();
    // Warm both paths (isolate, JWKS-free HS256 path, connections).
    wrk.run(worker, "warm-edge", Load::single("edge", 1, 2))?;
    wrk.run(&rest, "warm-rest", Load::single("rest", 1, 2))?;
    let (mut e50, mut e99, mut r50, mut r99, mut d50, mut d99) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for i in 0..plan.repeats {
        // One connection, so latency is service time, not queueing.
        let (edge, rest_direct) = (
            Load::single("edge", 1, plan.latency_secs),
            Load::single("rest", 1, plan.latency_secs),
        );
        let e = wrk.run(worker, &format!("lat-edge-{i}"), edge)?;
        let r = wrk.run(&rest, &format!("lat-rest-{i}"), rest_direct)?;
        for (run_id, res, load) in [
            (format!("lat-edge-{i}"), &e, edge),
            (format!("lat-rest-{i}"), &r, rest_direct),
        ] {
            check_ledger(wrk.stack, report, &run_id, res, load, false)?;
        }
        e50.push(e.p50_ms);
        e99.push(e.p99_ms);
        r50.push(r.p50_ms);
        r99.push(r.p99_ms);
        d50.push(e.p50_ms - r.p50_ms);
        d99.push(e.p99_ms - r.p99_ms);
    }
    report.add(
        "4",
        "POST /v1/usage via the Worker (workerd serve), p50, 1 conn",
        "ms",
        &e50,
    );
    report.add("4", "POST /v1/usage via the Worker, p99", "ms", &e99);
    report.add(
        "4",
        "record_token_usage RPC on REST directly, p50",
        "ms",
        &r50,
    );
    report.add(
        "4",
        "record_token_usage RPC on REST directly, p99",
        "ms",
        &r99,
    );
    report.add_target(
        "4",
        "edge overhead p50 (Worker − REST, same run)",
        "ms",
        &d50,
        1.0,
        true,
    );
    report.add(
        "4",
        "edge overhead p99 (Worker − REST, same run)",
        "ms",
        &d99,
    );
    Ok(())
}

/// Events per second at 32 connections through the Worker and straight to
/// the REST layer, and batches of 1000 through the Worker; and what each
/// single event cost each part of the machine, to show where the edge's
/// extra CPU goes.
///
/// The single-event pairs run first, each pair in alternating order (edge
/// first, then REST first; an even number of pairs), and the batches only
/// after all of them: a batch run leaves Postgres with a burst of
/// background work (autovacuum and analyze of the rows it wrote, the WAL it
/// flushes) that would otherwise land on whichever side runs next, every
/// time the same side.
pub(super) fn throughput(wrk: &Wrk, ours: &Served, plan: &Plan, report: &mut Report) -> Result<()> {
    let stack = wrk.stack;
    let rest = stack.profile.supabase_url();
    let parts = Parts {
        workerd: ours.service.pid(),
        rest: stack
            .service_pid("rest-standin")
            .context("the stack runs no REST layer")?,
        postgres: stack
            .service_pid("postgres")
            .context("the stack runs no Postgres")?,
    };
    let (mut single, mut direct, mut ratio, mut batched) = (vec![], vec![], vec![], vec![]);
    let (mut edge_cost, mut rest_cost) = (Vec::new(), Vec::new());
    for i in 0..plan.alternating_pairs() {
        let mut run = |base: &str, mode: &'static str| -> Result<(f64, Cost)> {
            let load = Load::single(mode, 32, plan.throughput_secs);
            let before = parts.cpu_ns()?;
            let r = wrk.run_checked(report, base, &format!("tput-{mode}-{i}"), load)?;
            let after = parts.cpu_ns()?;
            Ok((
                r.events / r.seconds,
                Cost::per_event(before, after, r.events),
            ))
        };
        let ((edge_rate, edge), (rest_rate, direct_cost)) = if i % 2 == 0 {
            let edge = run(&ours.url, "edge")?;
            (edge, run(&rest, "rest")?)
        } else {
            let direct = run(&rest, "rest")?;
            (run(&ours.url, "edge")?, direct)
        };
        single.push(edge_rate);
        direct.push(rest_rate);
        ratio.push(edge_rate / rest_rate);
        edge_cost.push(edge);
        rest_cost.push(direct_cost);
    }
    for i in 0..plan.repeats {
        let batches = Load::batches("batch", 4, plan.throughput_secs);
        let r = wrk.run_checked(report, &ours.url, &format!("tput-batch-{i}"), batches)?;
        batched.push(r.events / r.seconds);
    }
    report.add_target(
        "5",
        "events/s, single-event POST /v1/usage (32 conns, 64 users)",
        "events/s",
        &single,
        1000.0,
        false,
    );
    report.add(
        "5",
        "events/s, the same RPC on REST directly (32 conns)",
        "events/s",
        &direct,
    );
    report.add_target(
        "5",
        "single-event edge / REST-direct at 32 conns",
        "×",
        &ratio,
        0.8,
        false,
    );
    // The direct side passes through no workerd: its row would be zeros.
    let parts: [CostRow; 5] = [
        ("workerd CPU", |c| c.workerd),
        ("REST layer CPU", |c| c.rest),
        ("Postgres CPU", |c| c.postgres),
        ("wrk CPU", |c| c.wrk),
        ("all of these", Cost::total),
    ];
    for (side, costs) in [("edge", &edge_cost), ("REST directly", &rest_cost)] {
        for (part, cpu) in parts {
            if side != "edge" && part == "workerd CPU" {
                continue;
            }
            let per_event: Vec<f64> = costs.iter().map(cpu).collect();
            report.add("5", format!("  {side}: {part} per event"), "µs", &per_event);
        }
    }
    report.add_target(
        "5",
        "events/s, POST /v1/usage/batch of 1000 (4 conns)",
        "events/s",
        &batched,
        15_000.0,
        false,
    );
    Ok(())
}

/// The processes a single event passes through.
struct Parts {
    workerd: u32,
    rest: u32,
    postgres: u32,
}

/// CPU time used so far by each part, and by the load generators that ended.
struct PartsCpu {
    workerd: u64,
    rest: u64,
    postgres: u64,
    wrk: u64,
}

impl Parts {
    fn cpu_ns(&self) -> Result<PartsCpu> {
        Ok(PartsCpu {
            workerd: tree_cpu_ns(self.workerd)?,
            rest: tree_cpu_ns(self.rest)?,
            postgres: tree_cpu_ns(self.postgres)?,
            wrk: ended_children_cpu_ns()?,
        })
    }
}

/// A row of figure 5's costs: its label and the part of a [`Cost`] it shows.
type CostRow = (&'static str, fn(&Cost) -> f64);

/// What one event cost each part during a run, in µs.
struct Cost {
    workerd: f64,
    rest: f64,
    postgres: f64,
    wrk: f64,
}

impl Cost {
    fn per_event(before: PartsCpu, after: PartsCpu, events: f64) -> Self {
        let each = |b: u64, a: u64| a.saturating_sub(b) as f64 / 1000.0 / events.max(1.0);
        Cost {
            workerd: each(before.workerd, after.workerd),
            rest: each(before.rest, after.rest),
            postgres: each(before.postgres, after.postgres),
            wrk: each(before.wrk, after.wrk),
        }
    }

    fn total(&self) -> f64 {
        self.workerd + self.rest + self.postgres + self.wrk
    }
}
