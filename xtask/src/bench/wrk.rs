//! The load side of the benchmark: `wrk` with `bench/wrk/usage.lua`, the
//! bench users whose tokens it sends, and the ledger check after every load
//! run (nothing lost, nothing counted twice).

use super::{Report, BENCH_USERS};
use crate::devkeys::uuid_v4;
use crate::paths::repo_root;
use crate::postgres;
use crate::stack::Stack;
use crate::tools;
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `wrk` from Debian, installed when missing.
pub(super) fn wrk() -> Result<PathBuf> {
    if let Some(path) = tools::which("wrk") {
        return Ok(path);
    }
    tools::apt_install(&["wrk".to_string()])?;
    tools::which("wrk").context("wrk is still missing after installing it")
}

/// Signs up BENCH_USERS users with a large grant and writes their access
/// tokens, one per line, for the wrk script.
pub(super) fn bench_users(stack: &Stack) -> Result<PathBuf> {
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
pub(super) struct WrkResult {
    pub(super) failed: f64,
    pub(super) events: f64,
    pub(super) socket_errors: f64,
    pub(super) seconds: f64,
    pub(super) p50_ms: f64,
    pub(super) p99_ms: f64,
}

/// What every load run of the benchmark shares: the `wrk` binary, the bench
/// users' tokens, and the stack it loads (its anon key, and the ledger each
/// run is checked against).
pub(super) struct Wrk<'a> {
    pub(super) bin: &'a Path,
    pub(super) tokens: &'a Path,
    pub(super) stack: &'a Stack,
}

/// One load run: what `bench/wrk/usage.lua` sends (`edge`, `rest`, `batch`,
/// `batch-async`) and how hard.
#[derive(Clone, Copy)]
pub(super) struct Load {
    mode: &'static str,
    threads: u32,
    connections: u32,
    secs: u32,
    batch: u32,
}

impl Load {
    /// Single events on `connections` (one wrk thread for one connection,
    /// two otherwise: the machine has two cores).
    pub(super) fn single(mode: &'static str, connections: u32, secs: u32) -> Self {
        let threads = if connections == 1 { 1 } else { 2 };
        Load {
            mode,
            threads,
            connections,
            secs,
            batch: 1,
        }
    }

    /// Batches of 1000 events on `connections`, two wrk threads.
    pub(super) fn batches(mode: &'static str, connections: u32, secs: u32) -> Self {
        Load {
            mode,
            threads: 2,
            connections,
            secs,
            batch: 1000,
        }
    }
}

impl Wrk<'_> {
    /// Runs `load` against `base_url`, every idempotency key starting with
    /// `run_id`.
    pub(super) fn run(&self, base_url: &str, run_id: &str, load: Load) -> Result<WrkResult> {
        let Load {
            mode,
            threads,
            connections,
            secs,
            batch,
        } = load;
        let out = Command::new(self.bin)
            .args(["-t", &threads.to_string(), "-c", &connections.to_string()])
            .args(["-d", &format!("{secs}s"), "--timeout", "10s"])
            .arg("-s")
            .arg(repo_root().join("bench/wrk/usage.lua"))
            .arg(base_url)
            .arg("--")
            .arg(mode)
            .arg(self.tokens)
            .arg(run_id)
            .arg(batch.to_string())
            .arg(&self.stack.keys.anon_key)
            .output()
            .context("running wrk")?;
        parse_result(mode, &out)
    }

    /// [`Wrk::run`], then [`check_ledger`] for it.
    pub(super) fn run_checked(
        &self,
        report: &mut Report,
        base_url: &str,
        run_id: &str,
        load: Load,
    ) -> Result<WrkResult> {
        let result = self.run(base_url, run_id, load)?;
        check_ledger(self.stack, report, run_id, &result, load, false)?;
        Ok(result)
    }
}

/// The WRK_RESULT line `bench/wrk/usage.lua` prints.
fn parse_result(mode: &str, out: &std::process::Output) -> Result<WrkResult> {
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
pub(super) fn wrk_get(wrk: &Path, url: &str, secs: u32) -> Result<(f64, f64)> {
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
pub(super) fn ledger_rows(stack: &Stack, run_id: &str) -> Result<f64> {
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
/// per connection, the load's batch of events each) may be there unanswered, and, when
/// `partial_on_failure` (the queue path sends a request's events in several
/// `sendBatch` calls), the events of requests answered with an error.
pub(super) fn check_ledger(
    stack: &Stack,
    report: &mut Report,
    run_id: &str,
    r: &WrkResult,
    load: Load,
    partial_on_failure: bool,
) -> Result<()> {
    let rows = ledger_rows(stack, run_id)?;
    let mut in_flight = f64::from(load.connections * load.batch);
    if partial_on_failure {
        in_flight += r.failed * f64::from(load.batch);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_durations_are_read_in_milliseconds() {
        assert_eq!(duration_ms("812.00us"), Some(0.812));
        assert_eq!(duration_ms("2.04ms"), Some(2.04));
        assert_eq!(duration_ms("1.20s"), Some(1200.0));
        assert_eq!(duration_ms("fast"), None);
    }
}
