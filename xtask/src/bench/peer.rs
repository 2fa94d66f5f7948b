//! Figure 7: our Worker against `bench/peers/usage-ts`, a minimal
//! TypeScript Worker doing what `POST /v1/usage` does (the per-user rate
//! limit and telemetry included),
//! each in its own `workerd serve` process against the same REST layer.

use super::cpu::workerd_cpu_ns;
use super::edge::{Served, PEER_PORT_OFFSET};
use super::wrk::{check_ledger, wrk_get, Load, Wrk};
use super::{Plan, Report};
use crate::paths::repo_root;
use crate::proc::run;
use crate::stack::Stack;
use crate::workerd_serve::{self, Module, ModuleKind, RateLimiter, WorkerConfig};
use anyhow::{bail, Context, Result};
use std::process::Command;

/// Bundles the peer with the npm esbuild (what wrangler would do: strip the
/// types; it has no dependencies) and serves it on `workerd serve`.
fn start_peer(stack: &Stack) -> Result<Served> {
    let root = repo_root();
    let peer_dir = root.join("bench/peers/usage-ts");
    let mut profile = stack.profile.clone();
    profile.worker_port += PEER_PORT_OFFSET;
    profile.dir = stack.profile.dir.join("peer");
    std::fs::create_dir_all(&profile.dir)?;
    let bundle = profile.dir.join("index.js");
    run(Command::new(&stack.worker_tools.esbuild)
        .arg(peer_dir.join("src/index.ts"))
        .args(["--bundle", "--format=esm", "--target=es2022"])
        .arg(format!("--outfile={}", bundle.display())))?;
    let toml_path = peer_dir.join("wrangler.toml");
    let settings = workerd_serve::wrangler_settings(
        &std::fs::read_to_string(&toml_path)
            .with_context(|| format!("reading {}", toml_path.display()))?,
    )?;
    let mut bindings = settings.vars;
    for (name, value) in [
        ("SUPABASE_URL", stack.profile.supabase_url()),
        ("JWT_SECRET", stack.keys.jwt_secret.clone()),
        ("SUPABASE_ANON_KEY", stack.keys.anon_key.clone()),
        (
            "SUPABASE_SERVICE_ROLE_KEY",
            stack.keys.service_role_key.clone(),
        ),
        // Ours makes one subrequest per call (the RPC) and counts the call
        // in memory, flushing one RPC per isolate every few seconds. The peer
        // makes the same RPC and skips the counting altogether, so whatever
        // ours wins is not from doing less work.
        ("TELEMETRY", "off".to_string()),
    ] {
        bindings.retain(|(n, _)| n != name);
        bindings.push((name.to_string(), value));
    }
    let config = WorkerConfig {
        port: profile.worker_port,
        compatibility_date: settings.compatibility_date,
        compatibility_flags: settings.compatibility_flags,
        modules: vec![Module {
            name: "index.js".into(),
            kind: ModuleKind::EsModule,
            path: "index.js".into(),
        }],
        bindings,
        // Ours charges a signed-in user's call to USER_LIMITER before the
        // RPC; the peer charges the same binding (same stand-in, same
        // limit), so neither side is measured doing less product work.
        rate_limiters: user_limiter(stack)?,
        assets: None,
    };
    let service = workerd_serve::start(
        "peer workerd serve",
        &stack.worker_tools.workerd,
        &config,
        &profile.dir.join("workerd.capnp"),
        &profile.log("peer"),
    )?;
    Served::once_answering(service, profile.worker_url(), "/__bench/noop")
}

/// Our `USER_LIMITER` binding as `workerd_serve::start_edge` binds it for
/// this profile.
fn user_limiter(stack: &Stack) -> Result<Vec<RateLimiter>> {
    let toml_path = repo_root().join("wrangler.toml");
    let ours = workerd_serve::wrangler_settings(
        &std::fs::read_to_string(&toml_path)
            .with_context(|| format!("reading {}", toml_path.display()))?,
    )?;
    let mut limiters: Vec<RateLimiter> = ours
        .rate_limiters
        .into_iter()
        .filter(|l| l.name == "USER_LIMITER")
        .collect();
    if limiters.is_empty() {
        bail!("wrangler.toml declares no USER_LIMITER for the peer to charge");
    }
    if let Some(limit) = crate::worker::rate_limit_override(stack.profile.name) {
        for limiter in &mut limiters {
            limiter.limit = limit;
        }
    }
    Ok(limiters)
}

/// Latency at one connection, rate at 32, and workerd CPU per request of
/// ours and the peer under the same load, in pairs whose order alternates.
pub(super) fn peer(wrk: &Wrk, ours: &Served, plan: &Plan, report: &mut Report) -> Result<()> {
    let peer = start_peer(wrk.stack)?;
    compare(wrk, ours, &peer, plan, report)
}

fn compare(
    wrk: &Wrk,
    ours: &Served,
    peer: &Served,
    plan: &Plan,
    report: &mut Report,
) -> Result<()> {
    let targets = [("ours", ours), ("peer", peer)];
    for (name, served) in &targets {
        wrk.run(
            &served.url,
            &format!("warm-{name}"),
            Load::single("edge", 1, 2),
        )?;
    }
    let (mut lat, mut cpu) = ([vec![], vec![]], [vec![], vec![]]);
    let (mut rate32, mut cpu32) = ([vec![], vec![]], [vec![], vec![]]);
    let (mut lat_ratio, mut cpu_ratio, mut cpu32_ratio) = (vec![], vec![], vec![]);
    let (mut noop, mut sub, mut noop_cpu, mut sub_cpu) = (vec![], vec![], vec![], vec![]);
    // One run of `conns` connections on target `k`, its ledger checked: the
    // result, and the target's workerd CPU per event recorded, in µs.
    let measure = |report: &mut Report, k: usize, run: &str, conns, secs, i| {
        let (name, served) = targets[k];
        let run_id = format!("{run}-{name}-{i}");
        let load = Load::single("edge", conns, secs);
        let before = workerd_cpu_ns(served.service.pid())?;
        let r = wrk.run(&served.url, &run_id, load)?;
        let after = workerd_cpu_ns(served.service.pid())?;
        check_ledger(wrk.stack, report, &run_id, &r, load, false)?;
        let cpu_us = micros(before, after) / r.events.max(1.0);
        Ok::<_, anyhow::Error>((r, cpu_us))
    };
    for i in 0..plan.alternating_pairs() {
        let mut this = [(0.0, 0.0, 0.0); 2];
        // Each load runs on both Workers back to back, and which goes first
        // alternates: a run pays for the database's state after the one
        // before it (autovacuum of the rows it wrote, checkpoints), so a
        // fixed order would charge that to the same side every time.
        let order = if i % 2 == 0 { [0, 1] } else { [1, 0] };
        // One connection: latency is service time.
        for &k in &order {
            let (r, cpu_us) = measure(report, k, "peer", 1, plan.latency_secs, i)?;
            lat[k].push(r.p50_ms);
            cpu[k].push(cpu_us);
            this[k].0 = r.p50_ms;
            this[k].1 = cpu_us;
        }
        // 32 connections: what each costs when the machine is busy.
        for &k in &order {
            let (r, cpu32_us) = measure(report, k, "peer32", 32, plan.throughput_secs, i)?;
            rate32[k].push(r.events / r.seconds);
            cpu32[k].push(cpu32_us);
            this[k].2 = cpu32_us;
        }
        lat_ratio.push(this[0].0 / this[1].0);
        cpu_ratio.push(this[0].1 / this[1].1);
        cpu32_ratio.push(this[0].2 / this[1].2);
        // The runtime's own floor, on the peer's calibration routes: no
        // work, and one cheap subrequest.
        for (path, p50, cpu_us) in [
            ("/__bench/noop", &mut noop, &mut noop_cpu),
            ("/__bench/subrequest", &mut sub, &mut sub_cpu),
        ] {
            let before = workerd_cpu_ns(peer.service.pid())?;
            let (median, requests) =
                wrk_get(wrk.bin, &format!("{}{path}", peer.url), plan.latency_secs)?;
            let after = workerd_cpu_ns(peer.service.pid())?;
            p50.push(median);
            cpu_us.push(micros(before, after) / requests.max(1.0));
        }
    }
    report.add(
        "7",
        "runtime floor: empty request on workerd serve, p50",
        "ms",
        &noop,
    );
    report.add("7", "  workerd CPU per empty request", "µs", &noop_cpu);
    report.add("7", "runtime floor: one cheap subrequest, p50", "ms", &sub);
    report.add(
        "7",
        "  workerd CPU per one-subrequest request",
        "µs",
        &sub_cpu,
    );
    report.add(
        "7",
        "ours: POST /v1/usage p50 (1 connection)",
        "ms",
        &lat[0],
    );
    report.add("7", "peer (TypeScript): POST /v1/usage p50", "ms", &lat[1]);
    report.add_target("7", "latency ours / peer", "×", &lat_ratio, 1.0, true);
    report.add("7", "ours: workerd CPU per request (1 conn)", "µs", &cpu[0]);
    report.add(
        "7",
        "peer (TypeScript): workerd CPU per request (1 conn)",
        "µs",
        &cpu[1],
    );
    report.add_target("7", "CPU ours / peer (1 conn)", "×", &cpu_ratio, 1.0, true);
    report.add(
        "7",
        "ours: events/s at 32 connections",
        "events/s",
        &rate32[0],
    );
    report.add(
        "7",
        "peer (TypeScript): events/s at 32 connections",
        "events/s",
        &rate32[1],
    );
    report.add(
        "7",
        "ours: workerd CPU per request (32 conns)",
        "µs",
        &cpu32[0],
    );
    report.add(
        "7",
        "peer (TypeScript): workerd CPU per request (32 conns)",
        "µs",
        &cpu32[1],
    );
    report.add_target(
        "7",
        "CPU ours / peer (32 conns)",
        "×",
        &cpu32_ratio,
        1.0,
        true,
    );
    Ok(())
}

/// The CPU time between two [`workerd_cpu_ns`] readings, in microseconds
/// (none when a thread that ended took its time with it).
fn micros(before: u64, after: u64) -> f64 {
    after.saturating_sub(before) as f64 / 1e3
}
