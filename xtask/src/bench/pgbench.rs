//! Figure 6: `record_token_usage` in the database alone, driven by pgbench
//! with `bench/pgbench/record_usage.sql`.

use super::{Plan, Report, BENCH_USERS};
use crate::paths::repo_root;
use crate::stack::Stack;
use crate::tools::PgTools;
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::Command;

pub(super) fn pgbench(stack: &Stack, plan: &Plan, report: &mut Report) -> Result<()> {
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
