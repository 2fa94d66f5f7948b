//! Figure 2: how long a fresh Worker process takes to answer, served by
//! `workerd serve` alone and by `wrangler dev`, with the same build.

use super::edge::COLD_START_PORT_OFFSET;
use super::{Plan, Report};
use crate::devkeys::KeyScheme;
use crate::proc::{wait_until, Service};
use crate::stack::Stack;
use crate::{worker, workerd_serve};
use anyhow::Result;
use std::time::{Duration, Instant};

/// Times spawn → first answer from /health, and that first answer alone,
/// for a fresh `workerd serve`, then for a fresh `wrangler dev`.
pub(super) fn cold_start(stack: &Stack, plan: &Plan, report: &mut Report) -> Result<()> {
    workerd(stack, plan, report)?;
    wrangler_dev(stack, plan, report)
}

/// Polls `url` quickly (the port opens before the Worker answers) and
/// returns how long the first successful request took, in ms.
fn first_answer(service: &mut Service, url: &str, timeout: Duration) -> Result<f64> {
    let mut first = f64::NAN;
    wait_until(service, timeout, || {
        let t = Instant::now();
        let ok = ureq::get(url)
            .timeout(Duration::from_secs(10))
            .call()
            .is_ok();
        if ok {
            first = t.elapsed().as_secs_f64() * 1000.0;
        }
        ok
    })?;
    Ok(first)
}

/// Another `workerd serve` of our build on a spare port.
fn workerd(stack: &Stack, plan: &Plan, report: &mut Report) -> Result<()> {
    let (mut to_first, mut first_request) = (vec![], vec![]);
    for i in 0..plan.repeats {
        let mut profile = stack.profile.clone();
        profile.worker_port += COLD_START_PORT_OFFSET;
        profile.dir = stack.profile.dir.join(format!("cold-workerd-{i}"));
        std::fs::create_dir_all(&profile.dir)?;
        let health = format!("{}/health", profile.worker_url());
        let started = Instant::now();
        let mut workerd = workerd_serve::start_edge(
            &profile,
            &stack.keys,
            KeyScheme::Opaque,
            &stack.worker_tools,
        )?;
        let first = first_answer(&mut workerd, &health, Duration::from_secs(60));
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        workerd.stop(Duration::from_secs(5));
        to_first.push(elapsed);
        first_request.push(first?);
    }
    report.add(
        "2",
        "fresh workerd serve: spawn → first /health answer",
        "ms",
        &to_first,
    );
    report.add(
        "2",
        "  that first /health request alone (workerd serve)",
        "ms",
        &first_request,
    );
    Ok(())
}

/// Another `wrangler dev` on spare ports with the same build.
fn wrangler_dev(stack: &Stack, plan: &Plan, report: &mut Report) -> Result<()> {
    let tools = &stack.worker_tools;
    let vars = worker::write_vars(&stack.profile, &stack.keys, KeyScheme::Opaque)?;
    let (mut to_first, mut first_request) = (vec![], vec![]);
    for i in 0..plan.repeats {
        let mut profile = stack.profile.clone();
        profile.worker_port += COLD_START_PORT_OFFSET;
        profile.inspector_port += COLD_START_PORT_OFFSET;
        profile.dir = stack.profile.dir.join(format!("cold-{i}"));
        std::fs::create_dir_all(&profile.dir)?;
        let health = format!("{}/health", profile.worker_url());
        let started = Instant::now();
        let mut wrangler = worker::start_wrangler(&profile, tools, &vars)?;
        // The port opens before the Worker answers; poll quickly.
        let first = first_answer(&mut wrangler, &health, Duration::from_secs(120));
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        wrangler.stop(Duration::from_secs(5));
        to_first.push(elapsed);
        first_request.push(first?);
    }
    report.add(
        "2",
        "fresh wrangler dev: spawn → first /health answer (wrangler dev)",
        "ms",
        &to_first,
    );
    report.add(
        "2",
        "  that first /health request alone (wrangler dev)",
        "ms",
        &first_request,
    );
    Ok(())
}
