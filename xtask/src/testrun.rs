//! `cargo xtask test`: every layer of tests, in order of cost, with one
//! summary at the end. Exits non-zero when any layer fails.

use crate::paths::{repo_root, Profile};
use crate::postgres;
use crate::proc::run_visible;
use crate::stack::{self, Stack};
use crate::tools::cargo;
use anyhow::Result;
use std::process::{Command, ExitCode};
use std::sync::atomic::Ordering;
use std::time::Instant;

struct Layer {
    name: &'static str,
    passed: bool,
    seconds: f64,
}

pub fn run() -> Result<ExitCode> {
    let stop = stack::stop_requested()?;
    let root = repo_root();
    let mut layers = Vec::new();
    let mut layer = |name: &'static str, f: &mut dyn FnMut() -> Result<bool>| -> Result<bool> {
        eprintln!("\n==> test layer: {name}");
        let started = Instant::now();
        let passed = f()?;
        layers.push(Layer {
            name,
            passed,
            seconds: started.elapsed().as_secs_f64(),
        });
        Ok(passed)
    };

    layer("format (cargo fmt --check)", &mut || {
        run_visible(
            Command::new(cargo())
                .args(["fmt", "--all", "--check"])
                .current_dir(&root),
        )
    })?;
    layer("lint (cargo clippy -D warnings)", &mut || {
        let workspace = run_visible(
            Command::new(cargo())
                .args([
                    "clippy",
                    "--quiet",
                    "--workspace",
                    "--all-targets",
                    "--",
                    "-D",
                    "warnings",
                ])
                .current_dir(&root),
        )?;
        // Figure 3's harness compiles Worker modules by path, outside the
        // workspace: linted here so a change to them cannot break the
        // benchmark unseen.
        crate::tools::ensure_wasm_target()?;
        let harness = run_visible(
            Command::new(cargo())
                .args(["clippy", "--quiet", "--manifest-path"])
                .arg(root.join("bench/jwt-wasm/Cargo.toml"))
                // The bench builds it there too.
                .arg("--target-dir")
                .arg(root.join("target/bench/jwt-wasm/cargo"))
                .args(["--target", "wasm32-unknown-unknown", "--", "-D", "warnings"])
                .current_dir(&root),
        )?;
        Ok(workspace && harness)
    })?;
    layer("unit (cargo test, native)", &mut || {
        run_visible(Command::new(cargo()).arg("test").current_dir(&root))
    })?;

    let prepared = stack::prepare(stack::RestBuild::Debug)?;
    layer("usage page types (tsc --noEmit)", &mut || {
        crate::web::typecheck(&prepared.worker_tools)
    })?;
    // The browser test (tests/tests/usage_page.rs) drives Debian's Chromium.
    crate::web::ensure_chromium()?;
    let mut stack = Stack::start(Profile::test()?, prepared)?;

    layer("database (pgTAP via pg_prove)", &mut || pg_prove(&stack))?;
    stack.complete_deploy_steps()?;
    if !stop.load(Ordering::SeqCst) {
        layer(
            "REST stand-in conformance + end-to-end (cargo test)",
            &mut || {
                run_visible(
                    Command::new(cargo())
                        // Every test binary runs, so one failure does not
                        // hide the others.
                        .args([
                            "test",
                            "--no-fail-fast",
                            "-p",
                            "rest-standin",
                            "-p",
                            "e2e-tests",
                        ])
                        .envs(stack.test_env())
                        .current_dir(&root),
                )
            },
        )?;
    }
    if !stop.load(Ordering::SeqCst) {
        layer(
            "API contract (schemathesis against /v1/openapi.json)",
            // After the end-to-end tests: its requests add rows to the demo
            // user, which no test counts on.
            &mut || crate::schemathesis::layer(&stack),
        )?;
    }
    if !stop.load(Ordering::SeqCst) {
        layer(
            "deploy rehearsal (bare hosted-like project, doctor)",
            // A step that cannot run fails this layer, not the whole run.
            &mut || {
                crate::rehearsal::run(&stack).or_else(|e| {
                    eprintln!("    the rehearsal stopped: {e:#}");
                    Ok(false)
                })
            },
        )?;
    }
    if !stop.load(Ordering::SeqCst) {
        layer(
            "migrations and seed re-run on the populated database",
            &mut || rerun_changes_nothing(&stack),
        )?;
    }
    stack.ensure_running()?;
    stack.stop();

    eprintln!("\n==> summary");
    for l in &layers {
        eprintln!(
            "    {:<6} {:<55} {:>6.1}s",
            if l.passed { "ok" } else { "FAILED" },
            l.name,
            l.seconds
        );
    }
    let failed = layers.iter().filter(|l| !l.passed).count();
    println!(
        "layers: {} passed, {} failed",
        layers.len() - failed,
        failed
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The pgTAP tests under `supabase/tests`, as `supabase test db` runs them:
/// in name order, so `001_test_helpers.sql` installs the helpers first.
fn pg_prove(stack: &Stack) -> Result<bool> {
    // pgTAP and dblink (the concurrency test's second session) are not
    // trusted extensions: the superuser installs them, as Supabase does on a
    // project's behalf; the tests then run as `postgres`, not a superuser.
    postgres::execute(
        &stack.pg,
        &stack.profile.superuser_db_url(),
        "create extension if not exists pgtap with schema extensions; \
         create extension if not exists dblink with schema extensions",
    )?;
    let mut files: Vec<_> = std::fs::read_dir(repo_root().join("supabase/tests"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    run_visible(
        Command::new(&stack.pg.pg_prove)
            .args([
                "--failures",
                "-h",
                "127.0.0.1",
                "-p",
                &stack.profile.pg_port.to_string(),
            ])
            .args(["-U", "postgres", "-d", "postgres"])
            .args(&files)
            .env("PGPASSWORD", postgres::LOCAL_PASSWORD),
    )
}

/// The guide promises its SQL is safe to re-run: applying every migration and
/// the seed again to the database the tests just populated must succeed and
/// change no row.
fn rerun_changes_nothing(stack: &Stack) -> Result<bool> {
    let url = stack.profile.admin_db_url();
    // The summary is derived data the last migration refreshes; bring it up
    // to date first so only a real change shows.
    postgres::as_service_role(
        &stack.pg,
        &url,
        "select platform.refresh_daily_token_summary();",
    )?;
    let before = postgres::data_fingerprint(&stack.pg, &url)?;
    if let Err(e) = postgres::apply_migrations_and_seed(&stack.pg, &url) {
        eprintln!("re-applying failed: {e:#}");
        return Ok(false);
    }
    let after = postgres::data_fingerprint(&stack.pg, &url)?;
    let changed: Vec<_> = before
        .lines()
        .zip(after.lines())
        .filter(|(b, a)| b != a)
        .map(|(b, a)| format!("    before: {b}\n    after:  {a}"))
        .collect();
    if changed.is_empty() && before.lines().count() == after.lines().count() {
        eprintln!(
            "    {} tables unchanged after re-applying migrations and seed",
            before.lines().count()
        );
        Ok(true)
    } else {
        eprintln!("re-applying changed data:\n{}", changed.join("\n"));
        Ok(false)
    }
}
