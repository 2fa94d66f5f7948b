//! `cargo xtask bench`: brings up the local stack on its own ports, measures
//! the figures of the benchmark issue, prints one table and writes it as JSON
//! to `target/bench/results.json`. Every comparison is two things measured in
//! the same run; every figure is a median over repeats, with min and max.
//!
//! Load comes from `wrk` (Debian) with `bench/wrk/usage.lua`, database load
//! from `pgbench` with `bench/pgbench/record_usage.sql`, the refresh figure
//! from `bench/sql/refresh.sql`. Everything talks to loopback only.
//!
//! `--quick` shortens every run and loads 100k/1M ledger rows instead of
//! 1M/10M for the refresh figure.

mod jwt;

use crate::devkeys::{uuid_v4, KeyScheme};
use crate::paths::{repo_root, Profile};
use crate::postgres;
use crate::proc::wait_until;
use crate::stack::{self, Stack};
use crate::tools::{self, PgTools};
use crate::worker;
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

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
            queue_secs: 2,
            ledger_sizes: [100_000, 1_000_000],
            new_rows: 10_000,
        }
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
            "{:<4} {:<58} {:>11} {:>11} {:>11} {:<9} {:<12}",
            "fig", "measurement", "median", "min", "max", "unit", "target"
        );
        let _ = writeln!(out, "{}", "-".repeat(122));
        for r in &self.rows {
            let target = match &r.target {
                Some((t, true)) => format!("{t} met"),
                Some((t, false)) => format!("{t} MISSED"),
                None => String::new(),
            };
            let _ = writeln!(
                out,
                "{:<4} {:<58} {:>11} {:>11} {:>11} {:<9} {}",
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

pub fn run_command(args: &[String]) -> Result<ExitCode> {
    let plan = if args.iter().any(|a| a == "--quick") {
        Plan::quick()
    } else {
        Plan::full()
    };
    // `--only 4,9`: just those figures (the stack still starts).
    let only: Option<Vec<String>> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|list| list.split(',').map(|f| f.trim().to_string()).collect());
    let _stop = stack::stop_requested()?;
    let wrk = wrk()?;
    let prepared = stack::prepare(stack::RestBuild::Release)?;
    let stack = Stack::start(Profile::bench()?, prepared)?;
    let mut report = Report::default();

    figure(&mut report, &only, "1", "Worker size", |report| {
        let (raw, gz) = worker::wasm_size(&worker::wasm_path())?;
        report.add("1", "Worker wasm, raw", "KiB", &[raw as f64 / 1024.0]);
        report.add_target(
            "1",
            "Worker wasm, gzipped",
            "KiB",
            &[gz as f64 / 1024.0],
            180.0,
            true,
        );
        for (item, bytes) in worker::top_contributors(&stack.worker_tools, 8)? {
            report.add("1", format!("  {item}"), "KiB", &[bytes as f64 / 1024.0]);
        }
        Ok(())
    });

    let tokens = bench_users(&stack)?;

    figure(
        &mut report,
        &only,
        "4",
        "edge overhead (POST /v1/usage vs the same RPC on REST)",
        |report| edge_overhead(&stack, &wrk, &tokens, &plan, report),
    );
    figure(
        &mut report,
        &only,
        "5",
        "throughput, full stack",
        |report| throughput(&stack, &wrk, &tokens, &plan, report),
    );
    figure(
        &mut report,
        &only,
        "9",
        "ingestion through the usage queue (Prefer: respond-async)",
        |report| queue_ingestion(&stack, &wrk, &tokens, &plan, report),
    );
    figure(
        &mut report,
        &only,
        "6",
        "record_token_usage with pgbench",
        |report| pgbench(&stack, &plan, report),
    );
    figure(
        &mut report,
        &only,
        "7",
        "the TypeScript peer on the same workerd",
        |report| peer(&stack, &wrk, &tokens, &plan, report),
    );
    figure(
        &mut report,
        &only,
        "3",
        "JWT verification inside workerd",
        |report| jwt::figure(&stack, report),
    );
    figure(
        &mut report,
        &only,
        "2",
        "time to first response of a fresh workerd",
        |report| cold_start(&stack, &plan, report),
    );
    figure(
        &mut report,
        &only,
        "8",
        "incremental refresh vs REFRESH MATERIALIZED VIEW CONCURRENTLY",
        |report| refresh(&stack, &plan, report),
    );

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

/// `wrk` from Debian, installed when missing.
fn wrk() -> Result<PathBuf> {
    if let Some(path) = tools::which("wrk") {
        return Ok(path);
    }
    tools::apt_install(&["wrk".to_string()])?;
    tools::which("wrk").context("wrk is still missing after installing it")
}

/// Signs up BENCH_USERS users with a large grant and writes their access
/// tokens, one per line, for the wrk script.
fn bench_users(stack: &Stack) -> Result<PathBuf> {
    let url = stack.profile.admin_db_url();
    postgres::execute(
        &stack.pg,
        &url,
        "create schema if not exists bench; \
         create table if not exists bench.users (n int primary key, id uuid not null); \
         grant usage on schema bench to service_role; \
         grant select on bench.users to service_role",
    )?;
    let mut tokens = String::new();
    let mut sql = String::from("begin;");
    let mut mirror = String::new();
    for n in 1..=BENCH_USERS {
        let id = uuid_v4()?;
        let email = format!("bench-{n}@example.test");
        let _ = write!(
            sql,
            "insert into auth.users (id, aud, role, email, email_confirmed_at, created_at, updated_at) \
             values ('{id}', 'authenticated', 'authenticated', '{email}', now(), now(), now()); \
             insert into bench.users values ({n}, '{id}');"
        );
        let _ = write!(
            mirror,
            "select platform.mirror_auth_user('{id}', '{email}', 'bench{n}'); \
             select platform.grant_user_tokens('{id}', 1000000000000, 'benchmark', 'bench-grant');"
        );
        tokens.push_str(&stack.keys.user_token(&stack.profile, &id, &email)?);
        tokens.push('\n');
    }
    sql.push_str("commit;");
    postgres::execute(&stack.pg, &url, &sql)?;
    postgres::as_service_role(&stack.pg, &url, &mirror)?;
    let path = stack.profile.dir.join("bench-tokens.txt");
    std::fs::write(&path, tokens)?;
    Ok(path)
}

/// What one wrk run printed in its WRK_RESULT line.
struct WrkResult {
    failed: f64,
    events: f64,
    socket_errors: f64,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
}

#[allow(clippy::too_many_arguments)]
fn run_wrk(
    wrk: &Path,
    base_url: &str,
    mode: &str,
    tokens: &Path,
    run_id: &str,
    threads: u32,
    connections: u32,
    secs: u32,
    batch: u32,
    anon_key: &str,
) -> Result<WrkResult> {
    let out = Command::new(wrk)
        .args(["-t", &threads.to_string(), "-c", &connections.to_string()])
        .args(["-d", &format!("{secs}s"), "--timeout", "10s"])
        .arg("-s")
        .arg(repo_root().join("bench/wrk/usage.lua"))
        .arg(base_url)
        .arg("--")
        .arg(mode)
        .arg(tokens)
        .arg(run_id)
        .arg(batch.to_string())
        .arg(anon_key)
        .output()
        .context("running wrk")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("WRK_RESULT "))
        .with_context(|| {
            format!(
                "wrk printed no result:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
    let v: Value = serde_json::from_str(line)?;
    let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !stderr.trim().is_empty() {
        eprintln!("    wrk ({mode}): {}", stderr.trim());
    }
    Ok(WrkResult {
        failed: f("failed"),
        events: f("events"),
        socket_errors: f("socket_errors"),
        seconds: f("duration_us") / 1e6,
        p50_ms: f("p50_us") / 1000.0,
        p99_ms: f("p99_us") / 1000.0,
    })
}

/// p50 latency (ms) and request count of plain GETs with one connection.
fn wrk_get(wrk: &Path, url: &str, secs: u32) -> Result<(f64, f64)> {
    let out = Command::new(wrk)
        .args([
            "-t",
            "1",
            "-c",
            "1",
            "-d",
            &format!("{secs}s"),
            "--latency",
            url,
        ])
        .output()
        .context("running wrk")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let p50 = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("50%"))
        .and_then(|v| duration_ms(v.trim()));
    let requests = stdout
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.trim().parse::<f64>().ok());
    match (p50, requests) {
        (Some(p50), Some(n)) if !stdout.contains("Non-2xx") => Ok((p50, n)),
        _ => bail!("unexpected wrk output for {url}:\n{stdout}"),
    }
}

/// wrk's durations: `812.00us`, `2.04ms`, `1.20s`.
fn duration_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = text.split_at(split);
    let n: f64 = n.parse().ok()?;
    match unit {
        "us" => Some(n / 1000.0),
        "ms" => Some(n),
        "s" => Some(n * 1000.0),
        "m" => Some(n * 60_000.0),
        _ => None,
    }
}

/// Ledger rows whose idempotency key starts with `run_id`.
fn ledger_rows(stack: &Stack, run_id: &str) -> Result<f64> {
    let n = postgres::execute(
        &stack.pg,
        &stack.profile.admin_db_url(),
        &format!(
            "select count(*) from platform.token_usage where idempotency_key like '{run_id}-%'"
        ),
    )?;
    n.parse::<f64>().context("a count")
}

/// Checks a load run lost and doubled nothing: every answered event is in the
/// ledger once; at most the requests still in flight when wrk stopped (one
/// per connection, `batch` events each) may be there unanswered, and, when
/// `partial_on_failure` (the queue path sends a request's events in several
/// `sendBatch` calls), the events of requests answered with an error.
fn check_ledger(
    stack: &Stack,
    report: &mut Report,
    run_id: &str,
    r: &WrkResult,
    connections: u32,
    batch: u32,
    partial_on_failure: bool,
) -> Result<()> {
    let rows = ledger_rows(stack, run_id)?;
    let mut in_flight = f64::from(connections * batch);
    if partial_on_failure {
        in_flight += r.failed * f64::from(batch);
    }
    if rows < r.events || rows > r.events + in_flight {
        report.problems.push(format!(
            "{run_id}: {rows} ledger rows for {} recorded events (up to {in_flight} in flight)",
            r.events
        ));
    }
    if r.failed > 0.0 || r.socket_errors > 0.0 {
        report.problems.push(format!(
            "{run_id}: {} error answers, {} socket errors",
            r.failed, r.socket_errors
        ));
    }
    Ok(())
}

fn edge_overhead(
    stack: &Stack,
    wrk: &Path,
    tokens: &Path,
    plan: &Plan,
    report: &mut Report,
) -> Result<()> {
    let worker = stack.profile.worker_url();
    let rest = stack.profile.supabase_url();
    let anon = &stack.keys.anon_key;
    // Warm both paths (isolate, JWKS-free HS256 path, connections).
    run_wrk(wrk, &worker, "edge", tokens, "warm-edge", 1, 1, 2, 1, anon)?;
    run_wrk(wrk, &rest, "rest", tokens, "warm-rest", 1, 1, 2, 1, anon)?;
    let (mut e50, mut e99, mut r50, mut r99, mut d50, mut d99) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for i in 0..plan.repeats {
        // One connection, so latency is service time, not queueing.
        let e = run_wrk(
            wrk,
            &worker,
            "edge",
            tokens,
            &format!("lat-edge-{i}"),
            1,
            1,
            plan.latency_secs,
            1,
            anon,
        )?;
        let r = run_wrk(
            wrk,
            &rest,
            "rest",
            tokens,
            &format!("lat-rest-{i}"),
            1,
            1,
            plan.latency_secs,
            1,
            anon,
        )?;
        for (run_id, res) in [(format!("lat-edge-{i}"), &e), (format!("lat-rest-{i}"), &r)] {
            check_ledger(stack, report, &run_id, res, 1, 1, false)?;
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
        "POST /v1/usage via the Worker, p50 (1 connection)",
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

fn throughput(
    stack: &Stack,
    wrk: &Path,
    tokens: &Path,
    plan: &Plan,
    report: &mut Report,
) -> Result<()> {
    let worker = stack.profile.worker_url();
    let anon = &stack.keys.anon_key;
    let (mut single, mut batched) = (vec![], vec![]);
    for i in 0..plan.repeats {
        let id = format!("tput-single-{i}");
        let r = run_wrk(
            wrk,
            &worker,
            "edge",
            tokens,
            &id,
            2,
            32,
            plan.throughput_secs,
            1,
            anon,
        )?;
        check_ledger(stack, report, &id, &r, 32, 1, false)?;
        single.push(r.events / r.seconds);

        let id = format!("tput-batch-{i}");
        let r = run_wrk(
            wrk,
            &worker,
            "batch",
            tokens,
            &id,
            2,
            4,
            plan.throughput_secs,
            1000,
            anon,
        )?;
        check_ledger(stack, report, &id, &r, 4, 1000, false)?;
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
    report.add_target(
        "5",
        "events/s, POST /v1/usage/batch of 1000 (4 conns)",
        "events/s",
        &batched,
        20_000.0,
        false,
    );
    Ok(())
}

/// Batches of 1000 events with `Prefer: respond-async` for a bounded time:
/// events accepted per second at the edge; then the time until the queue
/// consumer has recorded them all (the drain rate, from the first request to
/// the last row), and the lag the consumer reports per batch (its oldest
/// event's wait from 202 to recording).
fn queue_ingestion(
    stack: &Stack,
    wrk: &Path,
    tokens: &Path,
    plan: &Plan,
    report: &mut Report,
) -> Result<()> {
    let worker = stack.profile.worker_url();
    let url = stack.profile.admin_db_url();
    let (mut accepted, mut drained, mut lag50, mut lag99) = (vec![], vec![], vec![], vec![]);
    for i in 0..plan.repeats {
        let run_id = format!("queue-{i}");
        let since = postgres::execute(&stack.pg, &url, "select clock_timestamp()")?;
        let started = Instant::now();
        let r = run_wrk(
            wrk,
            &worker,
            "batch-async",
            tokens,
            &run_id,
            2,
            4,
            plan.queue_secs,
            1000,
            &stack.keys.anon_key,
        )?;
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
        check_ledger(stack, report, &run_id, &r, 4, 1000, true)?;
        let lags = postgres::execute(
            &stack.pg,
            &url,
            &format!(
                "select percentile_cont(0.5) within group (order by (details ->> 'lag_ms')::numeric)                         || ' ' || percentile_cont(0.99) within group (order by (details ->> 'lag_ms')::numeric)                    from telemetry.execution_metrics                   where function_name = 'usage_queue_consumer' and recorded_at >= '{since}'"
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
    report.add(
        "9",
        "events/s drained into the ledger by the consumer",
        "events/s",
        &drained,
    );
    report.add(
        "9",
        "queue lag per consumed batch, p50 (202 → recorded)",
        "ms",
        &lag50,
    );
    report.add("9", "queue lag per consumed batch, p99", "ms", &lag99);
    Ok(())
}

fn pgbench(stack: &Stack, plan: &Plan, report: &mut Report) -> Result<()> {
    let script = repo_root().join("bench/pgbench/record_usage.sql");
    for (users, label) in [(BENCH_USERS, "64 users"), (1, "1 user (hot row)")] {
        for clients in [1u32, 8, 32] {
            let mut tps = vec![];
            for _ in 0..plan.repeats {
                tps.push(pgbench_tps(
                    &stack.pg,
                    stack,
                    &script,
                    users,
                    clients,
                    plan.pgbench_secs,
                )?);
            }
            report.add(
                "6",
                format!("record_token_usage tx/s, {clients} clients, {label}"),
                "tx/s",
                &tps,
            );
        }
    }
    Ok(())
}

fn pgbench_tps(
    pg: &PgTools,
    stack: &Stack,
    script: &Path,
    users: usize,
    clients: u32,
    secs: u32,
) -> Result<f64> {
    let out = Command::new(pg.bin.join("pgbench"))
        .args(["-n", "-M", "prepared", "-f"])
        .arg(script)
        .args(["-D", &format!("users={users}")])
        .args([
            "-c",
            &clients.to_string(),
            "-j",
            &clients.min(2).to_string(),
        ])
        .args(["-T", &secs.to_string()])
        .arg(stack.profile.admin_db_url())
        .output()
        .context("running pgbench")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "pgbench failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no tps in pgbench output:\n{stdout}"))
}

/// Starts another `wrangler dev` on spare ports with the same build and
/// times spawn → first answer from /health, and that first answer alone.
fn cold_start(stack: &Stack, plan: &Plan, report: &mut Report) -> Result<()> {
    let tools = &stack.worker_tools;
    let vars = worker::write_vars(&stack.profile, &stack.keys, KeyScheme::Opaque)?;
    let (mut to_first, mut first_request) = (vec![], vec![]);
    for i in 0..plan.repeats {
        let mut profile = stack.profile.clone();
        profile.worker_port += 100;
        profile.inspector_port += 100;
        profile.dir = stack.profile.dir.join(format!("cold-{i}"));
        std::fs::create_dir_all(&profile.dir)?;
        let health = format!("{}/health", profile.worker_url());
        let started = Instant::now();
        let mut wrangler = worker::start_wrangler(&profile, tools, &vars)?;
        // The port opens before the Worker answers; poll quickly.
        let mut first = f64::NAN;
        wait_until(&mut wrangler, Duration::from_secs(120), || {
            let t = Instant::now();
            let ok = ureq::get(&health)
                .timeout(Duration::from_secs(10))
                .call()
                .is_ok();
            if ok {
                first = t.elapsed().as_secs_f64() * 1000.0;
            }
            ok
        })?;
        to_first.push(started.elapsed().as_secs_f64() * 1000.0);
        first_request.push(first);
        wrangler.stop(Duration::from_secs(5));
    }
    report.add(
        "2",
        "fresh wrangler dev + workerd: spawn → first /health answer",
        "ms",
        &to_first,
    );
    report.add(
        "2",
        "that first /health request alone (isolate, wasm load)",
        "ms",
        &first_request,
    );
    Ok(())
}

/// CPU seconds (user + system) used so far by process group `group` (a
/// `wrangler dev` and everything it started): its `workerd` processes, and
/// the rest (wrangler's Node process, which local dev puts in the path).
#[derive(Clone, Copy, Default)]
struct GroupCpu {
    workerd: f64,
    other: f64,
}

fn group_cpu_secs(group: u32) -> Result<GroupCpu> {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let mut total = GroupCpu::default();
    for entry in std::fs::read_dir("/proc")? {
        let Ok(text) = std::fs::read_to_string(entry?.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid pgrp ...`: comm may hold spaces, so split
        // after its closing parenthesis.
        let (Some(open), Some(close)) = (text.find('('), text.rfind(')')) else {
            continue;
        };
        let comm = &text[open + 1..close];
        let fields: Vec<&str> = text[close + 2..].split_whitespace().collect();
        let field = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
        // After comm: state(0) ppid(1) pgrp(2) ... utime(11) stime(12).
        if field(2) == Some(f64::from(group)) {
            let secs = (field(11).unwrap_or(0.0) + field(12).unwrap_or(0.0)) / ticks;
            if comm == "workerd" {
                total.workerd += secs;
            } else {
                total.other += secs;
            }
        }
    }
    Ok(total)
}

/// Serves `bench/peers/usage-ts` (a minimal TypeScript Worker doing what
/// POST /v1/usage does, telemetry included) with the same wrangler and
/// workerd, against the same REST layer, and compares latency and workerd
/// CPU per request with ours under the same load, alternating.
fn peer(stack: &Stack, wrk: &Path, tokens: &Path, plan: &Plan, report: &mut Report) -> Result<()> {
    let tools = &stack.worker_tools;
    let mut profile = stack.profile.clone();
    profile.worker_port += 200;
    profile.inspector_port += 200;
    profile.dir = stack.profile.dir.join("peer");
    std::fs::create_dir_all(&profile.dir)?;
    crate::proc::ensure_port_free(profile.worker_port, "the peer Worker", "CDS_WORKER_PORT")?;
    let mut command = Command::new(&tools.wrangler);
    command
        .arg("dev")
        .arg("--config")
        .arg(repo_root().join("bench/peers/usage-ts/wrangler.toml"))
        .args([
            "--ip",
            "127.0.0.1",
            "--port",
            &profile.worker_port.to_string(),
        ])
        .args(["--inspector-port", &profile.inspector_port.to_string()])
        .arg("--show-interactive-dev-session=false")
        .arg("--persist-to")
        .arg(profile.dir.join("wrangler-state"))
        .args([
            "--var",
            &format!("SUPABASE_URL:{}", stack.profile.supabase_url()),
        ])
        .args(["--var", &format!("JWT_SECRET:{}", stack.keys.jwt_secret)])
        .args([
            "--var",
            &format!("SUPABASE_ANON_KEY:{}", stack.keys.anon_key),
        ])
        .args([
            "--var",
            &format!("SUPABASE_SERVICE_ROLE_KEY:{}", stack.keys.service_role_key),
        ])
        .args(["--var", "TELEMETRY:on"])
        .current_dir(repo_root())
        .env("WRANGLER_SEND_METRICS", "false")
        .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
        .env("CI", "true");
    let mut peer = crate::proc::Service::spawn(
        "peer wrangler dev",
        command,
        &profile.log("peer"),
        libc::SIGTERM,
    )?;
    let probe = format!("{}/health", profile.worker_url());
    // Any answer (the peer has no /health: 404) means it is serving.
    wait_until(&mut peer, Duration::from_secs(120), || {
        match ureq::get(&probe).timeout(Duration::from_secs(2)).call() {
            Ok(_) | Err(ureq::Error::Status(..)) => true,
            Err(_) => false,
        }
    })?;
    let ours_pid = stack
        .service_pid("wrangler dev")
        .context("our wrangler is not running")?;
    let anon = &stack.keys.anon_key;
    let targets = [
        ("ours", stack.profile.worker_url(), ours_pid),
        ("peer", profile.worker_url(), peer.pid()),
    ];
    for (name, url, _) in &targets {
        run_wrk(
            wrk,
            url,
            "edge",
            tokens,
            &format!("warm-{name}"),
            1,
            1,
            2,
            1,
            anon,
        )?;
    }
    let (mut lat, mut cpu, mut node) = ([vec![], vec![]], [vec![], vec![]], [vec![], vec![]]);
    let (mut lat_ratio, mut cpu_ratio) = (vec![], vec![]);
    let (mut noop, mut sub, mut noop_node, mut sub_node) = (vec![], vec![], vec![], vec![]);
    for i in 0..plan.repeats {
        let mut this = [(0.0, 0.0); 2];
        for (k, (name, url, pid)) in targets.iter().enumerate() {
            let run_id = format!("peer-{name}-{i}");
            let before = group_cpu_secs(*pid)?;
            let r = run_wrk(
                wrk,
                url,
                "edge",
                tokens,
                &run_id,
                1,
                1,
                plan.latency_secs,
                1,
                anon,
            )?;
            let after = group_cpu_secs(*pid)?;
            check_ledger(stack, report, &run_id, &r, 1, 1, false)?;
            let per_request = |secs: f64| secs * 1e6 / r.events.max(1.0);
            let cpu_us = per_request(after.workerd - before.workerd);
            lat[k].push(r.p50_ms);
            cpu[k].push(cpu_us);
            node[k].push(per_request(after.other - before.other));
            this[k] = (r.p50_ms, cpu_us);
        }
        lat_ratio.push(this[0].0 / this[1].0);
        cpu_ratio.push(this[0].1 / this[1].1);
        // The runtime's own floor under wrangler dev, on the peer's
        // calibration routes: no work, and one cheap subrequest.
        for (path, p50, node_us) in [
            ("/__bench/noop", &mut noop, &mut noop_node),
            ("/__bench/subrequest", &mut sub, &mut sub_node),
        ] {
            let before = group_cpu_secs(peer.pid())?;
            let (median, requests) = wrk_get(
                wrk,
                &format!("{}{path}", profile.worker_url()),
                plan.latency_secs,
            )?;
            let after = group_cpu_secs(peer.pid())?;
            p50.push(median);
            node_us.push((after.other - before.other) * 1e6 / requests.max(1.0));
        }
    }
    peer.stop(Duration::from_secs(5));
    report.add(
        "7",
        "runtime floor: empty request under wrangler dev, p50",
        "ms",
        &noop,
    );
    report.add(
        "7",
        "  wrangler's Node CPU per empty request",
        "µs",
        &noop_node,
    );
    report.add("7", "runtime floor: one cheap subrequest, p50", "ms", &sub);
    report.add(
        "7",
        "  wrangler's Node CPU per one-subrequest request",
        "µs",
        &sub_node,
    );
    report.add(
        "7",
        "ours: wrangler's Node CPU per POST /v1/usage",
        "µs",
        &node[0],
    );
    report.add(
        "7",
        "peer: wrangler's Node CPU per POST /v1/usage",
        "µs",
        &node[1],
    );
    report.add(
        "7",
        "ours: POST /v1/usage p50 (1 connection)",
        "ms",
        &lat[0],
    );
    report.add("7", "peer (TypeScript): POST /v1/usage p50", "ms", &lat[1]);
    report.add_target("7", "latency ours / peer", "×", &lat_ratio, 1.0, true);
    report.add("7", "ours: workerd CPU per request", "µs", &cpu[0]);
    report.add(
        "7",
        "peer (TypeScript): workerd CPU per request",
        "µs",
        &cpu[1],
    );
    report.add_target("7", "CPU ours / peer", "×", &cpu_ratio, 1.0, true);
    Ok(())
}

fn refresh(stack: &Stack, plan: &Plan, report: &mut Report) -> Result<()> {
    let url = stack.profile.admin_db_url();
    postgres::apply_file(&stack.pg, &url, &repo_root().join("bench/sql/refresh.sql"))?;
    let q = |sql: &str| postgres::execute(&stack.pg, &url, sql);
    let mut loaded = 0u64;
    for size in plan.ledger_sizes {
        let existing: u64 = q("select count(*) from platform.token_usage")?.parse()?;
        let wanted = size.saturating_sub(existing.max(loaded));
        eprintln!("    loading {wanted} ledger rows (to {size})");
        let chunk = 1_000_000;
        let mut done = 0;
        while done < wanted {
            let n = chunk.min(wanted - done);
            q(&format!(
                "select bench.load_history({n}, 'hist-{size}-{done}')"
            ))?;
            done += n;
        }
        loaded = size;
        // Setup, untimed: fold the history, populate the guide's view, and
        // let the planner see the new table sizes.
        q("select bench.time_incremental_refresh()")?;
        q("refresh materialized view bench.guide_daily_token_summary")?;
        q("vacuum analyze platform.token_usage")?;
        q("vacuum analyze analytics.daily_token_rollup")?;
        let (mut inc, mut full, mut ratio) = (vec![], vec![], vec![]);
        for i in 0..plan.repeats {
            q(&format!(
                "select bench.add_todays_rows({}, 'new-{size}-{i}')",
                plan.new_rows
            ))?;
            let ms_inc: f64 = q("select bench.time_incremental_refresh()")?.parse()?;
            let ms_full: f64 = q("select bench.time_full_refresh()")?.parse()?;
            inc.push(ms_inc);
            full.push(ms_full);
            ratio.push(ms_full / ms_inc);
        }
        // Both must agree with each other after the last run.
        let off = q(
            "select count(*) from ((select day, user_id, model_id, requests, total_tokens, cost \
               from analytics.daily_token_summary except all \
             select day, user_id, model_id, requests, total_tokens, cost from bench.guide_daily_token_summary) \
             union all (select day, user_id, model_id, requests, total_tokens, cost \
               from bench.guide_daily_token_summary except all \
             select day, user_id, model_id, requests, total_tokens, cost from analytics.daily_token_summary)) x",
        )?;
        if off != "0" {
            report.problems.push(format!(
                "at {size} rows the two summaries differ in {off} rows"
            ));
        }
        let rows = human(size);
        report.add(
            "8",
            format!(
                "incremental refresh, {rows} ledger rows + {} new",
                plan.new_rows
            ),
            "ms",
            &inc,
        );
        report.add(
            "8",
            format!("REFRESH MATERIALIZED VIEW CONCURRENTLY, {rows} rows"),
            "ms",
            &full,
        );
        if size >= 10_000_000 {
            report.add_target(
                "8",
                format!("full / incremental at {rows} rows"),
                "×",
                &ratio,
                100.0,
                false,
            );
        } else {
            report.add(
                "8",
                format!("full / incremental at {rows} rows"),
                "×",
                &ratio,
            );
        }
    }
    Ok(())
}

fn human(n: u64) -> String {
    if n >= 1_000_000 {
        format!("{}M", n / 1_000_000)
    } else {
        format!("{}k", n / 1000)
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
    fn wrk_durations_are_read_in_milliseconds() {
        assert_eq!(duration_ms("812.00us"), Some(0.812));
        assert_eq!(duration_ms("2.04ms"), Some(2.04));
        assert_eq!(duration_ms("1.20s"), Some(1200.0));
        assert_eq!(duration_ms("fast"), None);
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
