//! Figure 3: JWT verification inside workerd, the runtime the edge ships on.
//!
//! `bench/jwt-wasm` is a small Worker running the edge's own verification
//! (`shared::auth::Verifier` and `functions/src/webcrypto.rs`: HS256 in Rust,
//! ES256/RS256 through WebCrypto), built with worker-build like the Worker
//! and served by the Worker's `workerd` on a config `workerd_serve` renders
//! (the edge's compatibility date and flags, no bindings); node signs the
//! tokens (`bench/jwt-wasm/tokens.mjs`).
//!
//! Inside workerd the clocks do not advance during computation (a Spectre
//! mitigation), so the harness is timed from outside: `GET /run?alg=..&n=N`
//! verifies one token N times in one request, and the figure is the CPU time
//! workerd spent on that request minus what a request with `n=0` costs,
//! divided by N. CPU time (`cpu::workerd_cpu_ns`) rather than wall time,
//! since the load generator and other work share this machine's cores.

use super::cpu::workerd_cpu_ns;
use super::{number, Report, Row, Stat};
use crate::paths::repo_root;
use crate::proc::{wait_until, Service};
use crate::stack::Stack;
use crate::tools::WorkerTools;
use crate::workerd_serve::{self, WorkerConfig};
use anyhow::{bail, Context, Result};
use std::process::Command;
use std::time::Duration;

const REPEATS: usize = 7;
/// Each timed request runs about this much CPU, so the per-request cost and
/// the 10 ms tick of other accounting vanish in the figure.
const TARGET_REQUEST_NS: u64 = 200_000_000;
/// (algorithm, row label, target in µs)
const ALGORITHMS: [(&str, &str, Option<f64>); 3] = [
    (
        "HS256",
        "HS256 verification in workerd (Rust), warm, per call",
        Some(15.0),
    ),
    (
        "ES256",
        "ES256 verification in workerd (WebCrypto), warm, per call",
        Some(150.0),
    ),
    (
        "RS256",
        "RS256 verification in workerd (WebCrypto), warm, per call",
        None,
    ),
];

pub(super) fn figure(stack: &Stack, report: &mut Report) -> Result<()> {
    let dir = repo_root().join("bench/jwt-wasm");
    build(&stack.worker_tools, &dir)?;
    let issuer = format!("{}/auth/v1", stack.profile.supabase_url());
    let tokens = Command::new("node")
        .arg(dir.join("tokens.mjs"))
        .arg(&issuer)
        .output()
        .context("running node bench/jwt-wasm/tokens.mjs")?;
    if !tokens.status.success() {
        bail!(
            "tokens.mjs failed:\n{}",
            String::from_utf8_lossy(&tokens.stderr)
        );
    }

    // Beside ours (+300), which stays up for the figures that use it.
    let port = stack.profile.worker_port + 400;
    let mut server = start_harness(stack, &dir, port)?;
    let base = format!("http://127.0.0.1:{port}");
    let measured = (|| -> Result<Vec<Vec<f64>>> {
        // Any answer means it serves (before setup, /run answers 500).
        wait_until(&mut server, Duration::from_secs(60), || {
            match ureq::get(&format!("{base}/run?alg=HS256&n=0")).call() {
                Ok(_) | Err(ureq::Error::Status(..)) => true,
                Err(_) => false,
            }
        })?;
        let answer = ureq::post(&format!("{base}/setup"))
            .send_bytes(&tokens.stdout)
            .map_err(describe)?
            .into_string()?;
        if answer != "ready" {
            bail!("the harness's setup answered {answer:?}");
        }
        let pid = server.pid();
        let run = |alg: &str, n: u64| -> Result<u64> {
            let before = workerd_cpu_ns(pid)?;
            ureq::get(&format!("{base}/run?alg={alg}&n={n}"))
                .call()
                .map_err(describe)?;
            Ok(workerd_cpu_ns(pid)?.saturating_sub(before))
        };
        ALGORITHMS
            .iter()
            .map(|(alg, _, _)| {
                // Warm up (tiering the hot code up, importing the key), and
                // size N from the warm speed.
                let mut n = 16u64;
                loop {
                    let ns = run(alg, n)?;
                    if ns >= TARGET_REQUEST_NS / 4 || n >= 1 << 20 {
                        n = (n * TARGET_REQUEST_NS / ns.max(1)).clamp(16, 1 << 20);
                        break;
                    }
                    n *= 4;
                }
                run(alg, n)?;
                let mut samples = Vec::with_capacity(REPEATS);
                for _ in 0..REPEATS {
                    let empty = run(alg, 0)?;
                    let full = run(alg, n)?;
                    samples.push(full.saturating_sub(empty) as f64 / n as f64 / 1000.0);
                }
                eprintln!(
                    "    {alg}: median {} µs per verification ({REPEATS} × {n})",
                    number(Stat::of(&samples).median)
                );
                Ok(samples)
            })
            .collect()
    })();
    server.stop(Duration::from_secs(5));
    for ((_, label, target), samples) in ALGORITHMS.iter().zip(measured?) {
        let stat = Stat::of(&samples);
        report.rows.push(Row {
            figure: "3",
            what: (*label).into(),
            unit: "µs",
            stat,
            target: target.map(|t| (format!("≤ {}", number(t)), stat.median <= t)),
        });
    }
    Ok(())
}

/// worker-build --release in `bench/jwt-wasm`, with the tools the Worker is
/// built with; its cargo output stays under `target/`.
fn build(tools: &WorkerTools, dir: &std::path::Path) -> Result<()> {
    let ok = crate::proc::run_visible(
        Command::new(&tools.worker_build)
            .arg("--release")
            .current_dir(dir)
            .env(
                "CARGO_TARGET_DIR",
                repo_root().join("target/bench/jwt-wasm/cargo"),
            )
            .env("WASM_BINDGEN_BIN", &tools.wasm_bindgen)
            .env("ESBUILD_BIN", &tools.esbuild)
            .env("WASM_OPT_BIN", &tools.wasm_opt),
    )?;
    if !ok {
        bail!("building bench/jwt-wasm failed");
    }
    Ok(())
}

/// `workerd serve` of the harness's build on `port`, with the edge's
/// compatibility date and flags (`wrangler.toml`); the config is written
/// under the bench profile's folder.
fn start_harness(stack: &Stack, dir: &std::path::Path, port: u16) -> Result<Service> {
    let toml_path = repo_root().join("wrangler.toml");
    let settings = workerd_serve::wrangler_settings(
        &std::fs::read_to_string(&toml_path)
            .with_context(|| format!("reading {}", toml_path.display()))?,
    )?;
    let config_dir = stack.profile.dir.join("jwt-harness");
    std::fs::create_dir_all(&config_dir)?;
    let config = WorkerConfig {
        port,
        compatibility_date: settings.compatibility_date,
        compatibility_flags: settings.compatibility_flags,
        modules: workerd_serve::modules_in(&dir.join("build"), "index.js", &config_dir)?,
        bindings: Vec::new(),
        // The harness only verifies tokens; it has no limiter to charge.
        rate_limiters: Vec::new(),
        assets: None,
    };
    workerd_serve::start(
        "workerd (JWT harness)",
        &stack.worker_tools.workerd,
        &config,
        &config_dir.join("workerd.capnp"),
        &stack.profile.log("jwt-harness"),
    )
}

/// A refused request with the harness's reason (its body).
fn describe(e: ureq::Error) -> anyhow::Error {
    match e {
        ureq::Error::Status(status, answer) => anyhow::anyhow!(
            "the harness answered {status}: {}",
            answer.into_string().unwrap_or_default()
        ),
        other => other.into(),
    }
}
