//! `cargo xtask bench`: brings up the local stack on its own ports, measures
//! the figures of the benchmark issue, prints one table and writes it as JSON
//! to `target/bench/results.json`. Every comparison is two things measured in
//! the same run; every figure is a median over repeats, with min and max.
//!
//! The Worker is measured as Cloudflare runs it: the release build served by
//! `workerd serve` alone (`crate::workerd_serve`), without wrangler's Node
//! proxy in front of it and behind its subrequests. Bare workerd has no
//! queue broker: the queue figure runs it with a stand-in broker
//! (`xtask/src/queue_standin.js`) and, alternating, on the stack's `wrangler
//! dev`; its rows say which.
//!
//! Load comes from `wrk` (Debian) with `bench/wrk/usage.lua`, database load
//! from `pgbench` with `bench/pgbench/record_usage.sql`, the refresh figure
//! from `bench/sql/refresh.sql`. Everything talks to loopback only. One file
//! per figure (or pair of figures) under `bench/`; this one holds the plan,
//! the table and the order of the figures.
//!
//! `--quick` shortens every run and loads 100k/1M ledger rows instead of
//! 1M/10M for the refresh figure.

mod cold_start;
mod cpu;
mod edge;
mod jwt;
mod peer;
mod pgbench;
mod queue;
mod refresh;
mod size;
mod wrk;

use crate::paths::{repo_root, Profile};
use crate::stack::{self, Stack};
use anyhow::Result;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::process::ExitCode;
use wrk::bench_users;

mod batch_rpc;

/// How big and how long the runs are.
struct Plan {
    repeats: usize,
    latency_secs: u32,
    throughput_secs: u32,
    pgbench_secs: u32,
    queue_secs: u32,
    ledger_sizes: [u64; 2],
    new_rows: u32,
}

impl Plan {
    fn full() -> Self {
        Plan {
            repeats: 3,
            latency_secs: 8,
            throughput_secs: 10,
            pgbench_secs: 8,
            queue_secs: 5,
            ledger_sizes: [1_000_000, 10_000_000],
            new_rows: 10_000,
        }
    }

    fn quick() -> Self {
        Plan {
            repeats: 3,
            latency_secs: 3,
            throughput_secs: 4,
            pgbench_secs: 3,
            queue_secs: 5,
            ledger_sizes: [100_000, 1_000_000],
            new_rows: 10_000,
        }
    }

    /// Pairs for a figure whose two sides take turns at going first: the
    /// repeats rounded up to an even number, so each side goes first as
    /// often as the other.
    fn alternating_pairs(&self) -> usize {
        self.repeats + self.repeats % 2
    }
}

/// Users the load spreads over (each with its own balance row).
const BENCH_USERS: usize = 64;

/// Median, min and max of repeated measurements.
#[derive(Clone, Copy)]
struct Stat {
    median: f64,
    min: f64,
    max: f64,
}

impl Stat {
    fn of(values: &[f64]) -> Stat {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return Stat {
                median: f64::NAN,
                min: f64::NAN,
                max: f64::NAN,
            };
        }
        let mid = v.len() / 2;
        let median = if v.len().is_multiple_of(2) {
            (v[mid - 1] + v[mid]) / 2.0
        } else {
            v[mid]
        };
        Stat {
            median,
            min: v[0],
            max: v[v.len() - 1],
        }
    }
}

/// One line of the table.
struct Row {
    figure: &'static str,
    what: String,
    unit: &'static str,
    stat: Stat,
    /// The target, and whether the median meets it.
    target: Option<(String, bool)>,
}

#[derive(Default)]
struct Report {
    rows: Vec<Row>,
    problems: Vec<String>,
}

impl Report {
    fn add(
        &mut self,
        figure: &'static str,
        what: impl Into<String>,
        unit: &'static str,
        values: &[f64],
    ) {
        self.rows.push(Row {
            figure,
            what: what.into(),
            unit,
            stat: Stat::of(values),
            target: None,
        });
    }

    /// Adds a row with a target: `at_most` (lower is better) or at least.
    fn add_target(
        &mut self,
        figure: &'static str,
        what: impl Into<String>,
        unit: &'static str,
        values: &[f64],
        bound: f64,
        at_most: bool,
    ) {
        let stat = Stat::of(values);
        let met = if at_most {
            stat.median <= bound
        } else {
            stat.median >= bound
        };
        let target = format!("{} {}", if at_most { "≤" } else { "≥" }, number(bound));
        self.rows.push(Row {
            figure,
            what: what.into(),
            unit,
            stat,
            target: Some((target, met)),
        });
    }

    fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<4} {:<74} {:>11} {:>11} {:>11} {:<9} {:<12}",
            "fig", "measurement", "median", "min", "max", "unit", "target"
        );
        let _ = writeln!(out, "{}", "-".repeat(138));
        for r in &self.rows {
            let target = match &r.target {
                Some((t, true)) => format!("{t} met"),
                Some((t, false)) => format!("{t} MISSED"),
                None => String::new(),
            };
            let _ = writeln!(
                out,
                "{:<4} {:<74} {:>11} {:>11} {:>11} {:<9} {}",
                r.figure,
                r.what,
                number(r.stat.median),
                number(r.stat.min),
                number(r.stat.max),
                r.unit,
                target
            );
        }
        for p in &self.problems {
            let _ = writeln!(out, "PROBLEM: {p}");
        }
        out
    }

    fn json(&self) -> Value {
        json!({
            "rows": self.rows.iter().map(|r| json!({
                "figure": r.figure, "measurement": r.what, "unit": r.unit,
                "median": finite(r.stat.median), "min": finite(r.stat.min), "max": finite(r.stat.max),
                "target": r.target.as_ref().map(|(t, _)| t.clone()),
                "met": r.target.as_ref().map(|(_, m)| *m),
            })).collect::<Vec<_>>(),
            "problems": self.problems,
        })
    }
}

fn finite(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        Value::Null
    }
}

fn number(x: f64) -> String {
    if !x.is_finite() {
        "-".into()
    } else if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.4}")
    }
}

/// How much to measure.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// Shorter runs, and 100k/1M ledger rows instead of 1M/10M for the
    /// refresh figure
    #[arg(long)]
    quick: bool,
    /// Only these figures, e.g. `4,9` (the stack still starts)
    #[arg(long, value_delimiter = ',')]
    only: Option<Vec<String>>,
}

pub fn run_command(options: &Options) -> Result<ExitCode> {
    let plan = if options.quick {
        Plan::quick()
    } else {
        Plan::full()
    };
    let only = &options.only;
    let _stop = stack::stop_requested()?;
    let wrk = wrk::wrk()?;
    let prepared = stack::prepare(stack::RestBuild::Release)?;
    let stack = Stack::start(Profile::bench()?, prepared)?;
    let mut report = Report::default();

    figure(&mut report, only, "1", "Worker size", |report| {
        size::worker_size(&stack, report)
    });

    let tokens = bench_users(&stack)?;
    let wrk = wrk::Wrk {
        bin: &wrk,
        tokens: &tokens,
        stack: &stack,
    };
    let ours = edge::start_ours(&stack)?;
    let edge_url = ours.url.clone();

    figure(
        &mut report,
        only,
        "4",
        "edge overhead (POST /v1/usage on workerd serve vs the same RPC on REST)",
        |report| edge::edge_overhead(&wrk, &edge_url, &plan, report),
    );
    figure(
        &mut report,
        only,
        "5",
        "throughput, full stack (workerd serve), and REST directly",
        |report| edge::throughput(&wrk, &ours, &plan, report),
    );
    figure(
        &mut report,
        only,
        "9",
        "ingestion through the usage queue (Prefer: respond-async), workerd + stand-in and wrangler dev",
        |report| queue::queue_ingestion(&wrk, &plan, report),
    );
    figure(
        &mut report,
        only,
        "10",
        "the batch RPC alone in Postgres",
        |report| batch_rpc::measure(&stack, &plan, report),
    );
    figure(
        &mut report,
        only,
        "6",
        "record_token_usage with pgbench",
        |report| pgbench::pgbench(&stack, &plan, report),
    );
    figure(
        &mut report,
        only,
        "7",
        "the TypeScript peer, each on its own workerd serve",
        |report| peer::peer(&wrk, &ours, &plan, report),
    );
    figure(
        &mut report,
        only,
        "3",
        "JWT verification inside workerd",
        |report| jwt::figure(&stack, report),
    );
    figure(
        &mut report,
        only,
        "2",
        "time to first response of a fresh Worker process",
        |report| cold_start::cold_start(&stack, &plan, report),
    );
    figure(
        &mut report,
        only,
        "8",
        "incremental refresh vs REFRESH MATERIALIZED VIEW CONCURRENTLY",
        |report| refresh::refresh(&stack, &plan, report),
    );
    drop(ours);

    let table = report.table();
    println!("\n{table}");
    let out_dir = repo_root().join("target/bench");
    std::fs::create_dir_all(&out_dir)?;
    let out = out_dir.join("results.json");
    std::fs::write(&out, serde_json::to_string_pretty(&report.json())?)?;
    println!("written to {}", out.display());
    Ok(if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs one figure when `--only` asks for it (or always without `--only`);
/// a failure is reported with the others instead of losing the figures
/// already measured.
fn figure(
    report: &mut Report,
    only: &Option<Vec<String>>,
    id: &str,
    title: &str,
    measure: impl FnOnce(&mut Report) -> Result<()>,
) {
    if only.as_ref().is_some_and(|o| !o.iter().any(|f| f == id)) {
        return;
    }
    eprintln!("\n==> figure {id}: {title}");
    if let Err(e) = measure(report) {
        eprintln!("    failed: {e:#}");
        report.problems.push(format!("{e:#}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_are_median_min_and_max_ignoring_failed_measurements() {
        let s = Stat::of(&[3.0, 1.0, f64::NAN, 2.0]);
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        let s = Stat::of(&[4.0, 1.0, 2.0, 3.0]);
        assert_eq!(s.median, 2.5);
        assert!(Stat::of(&[]).median.is_nan());
    }

    #[test]
    fn alternating_figures_give_each_side_the_first_turn_equally_often() {
        for repeats in 1..=6 {
            let pairs = Plan {
                repeats,
                ..Plan::quick()
            }
            .alternating_pairs();
            let first = (0..pairs).filter(|i| i % 2 == 0).count();
            assert_eq!(first * 2, pairs, "{repeats} repeats");
            assert!(pairs >= repeats);
        }
    }

    #[test]
    fn a_target_is_judged_on_the_median() {
        let mut r = Report::default();
        r.add_target("1", "size", "KiB", &[150.0, 250.0, 190.0], 200.0, true);
        r.add_target(
            "5",
            "rate",
            "events/s",
            &[900.0, 1100.0, 950.0],
            1000.0,
            false,
        );
        let table = r.table();
        assert!(table.contains("≤ 200 met"), "{table}");
        assert!(table.contains("≥ 1000 MISSED"), "{table}");
    }
}
