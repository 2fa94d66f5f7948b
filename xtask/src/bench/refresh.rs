//! Figure 8: the incremental daily summary against the guide's
//! `REFRESH MATERIALIZED VIEW CONCURRENTLY`, with `bench/sql/refresh.sql`.

use super::{Plan, Report};
use crate::paths::repo_root;
use crate::postgres;
use crate::stack::Stack;
use anyhow::Result;

pub(super) fn refresh(stack: &Stack, plan: &Plan, report: &mut Report) -> Result<()> {
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
