//! The API contract, tested from the outside: schemathesis (PyPI) generates
//! requests from the served `GET /v1/openapi.json` and checks every answer
//! of the running Worker against the same document.
//!
//! A layer of `cargo xtask test`, and `cargo xtask schemathesis` alone (its
//! own test stack). It fails on any finding:
//! - `not_a_server_error`: no 5xx at all (a 503 `database_unavailable` is
//!   documented, but the test stack's database is up, so one here is a
//!   finding too);
//! - `status_code_conformance`: every status is one the operation lists;
//! - `content_type_conformance`, `response_schema_conformance`: the body is
//!   what the document says for that status.
//!
//! The run is bounded and repeatable: schemathesis's deterministic
//! generation (examples derived from the document alone, no random seed, no
//! example database kept between runs), one worker, and a fixed number of
//! examples per operation (no time budget, which would make the number of
//! requests depend on the machine's speed). A finding therefore shows again
//! on the next run with the same code and document.

use crate::paths::{repo_root, Profile};
use crate::proc::{run, run_visible};
use crate::stack::{self, RestBuild, Stack};
use crate::tools::which;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::{Command, ExitCode};

/// Pinned so a run on another machine generates the same requests.
const VERSION: &str = "4.32.5";
/// Examples per operation and phase; with about 20 operations and two
/// callers this stays well under 90 seconds on the test stack.
const MAX_EXAMPLES: &str = "25";
const CHECKS: &str = "not_a_server_error,status_code_conformance,\
                      content_type_conformance,response_schema_conformance";

/// `cargo xtask schemathesis`: the test stack, then only this layer.
pub fn run_command() -> Result<ExitCode> {
    let _stop = stack::stop_requested()?;
    let st = install()?;
    let prepared = stack::prepare(RestBuild::Debug)?;
    let mut stack = Stack::start(Profile::test()?, prepared)?;
    stack.complete_deploy_steps()?;
    let passed = run_against(&st, &stack)?;
    stack.ensure_running()?;
    stack.stop();
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The layer of `cargo xtask test`, on its running stack.
pub fn layer(stack: &Stack) -> Result<bool> {
    let st = install()?;
    run_against(&st, stack)
}

/// Two callers, as the API has them: the demo user's access token over
/// every operation (admin-only ones answer its 403), then the demo user's
/// API key over the operations that take one.
fn run_against(st: &PathBuf, stack: &Stack) -> Result<bool> {
    let callers: [(&str, &str, Option<&str>); 2] = [
        ("user access token", &stack.demo.access_token, None),
        ("API key", &stack.demo.api_key, Some("^/v1/(usage|me$)")),
    ];
    let mut passed = true;
    for (caller, bearer, only_paths) in callers {
        eprintln!("    schemathesis {VERSION} as the demo user's {caller}");
        passed &= run_once(st, stack, bearer, only_paths)?;
    }
    Ok(passed)
}

fn run_once(st: &PathBuf, stack: &Stack, bearer: &str, only_paths: Option<&str>) -> Result<bool> {
    let worker = stack.profile.worker_url();
    let work_dir = work_dir();
    std::fs::create_dir_all(&work_dir)?;
    let mut command = Command::new(st);
    command
        .arg("run")
        .arg(format!("{worker}/v1/openapi.json"))
        .args(["--url", &worker])
        .args(["--header", &format!("Authorization: Bearer {bearer}")])
        .args(["--checks", CHECKS])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", MAX_EXAMPLES])
        .arg("--generation-deterministic")
        .args(["--workers", "1"])
        .args(["--request-timeout", "20"])
        .args(["--wait-for-schema", "30"])
        .arg("--no-color")
        // Its cache (`.hypothesis`) and reports stay under target/.
        .current_dir(&work_dir);
    if let Some(pattern) = only_paths {
        command.args(["--include-path-regex", pattern]);
    }
    run_visible(&mut command)
}

fn work_dir() -> PathBuf {
    repo_root().join("target/schemathesis")
}

/// schemathesis `VERSION` in a virtualenv under `target/`, from PyPI, made
/// once and reused while the version matches.
fn install() -> Result<PathBuf> {
    let venv = work_dir().join("venv");
    let st = venv.join("bin/st");
    let installed = Command::new(&st)
        .arg("--version")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains(VERSION));
    if installed {
        return Ok(st);
    }
    let Some(python) = which("python3") else {
        bail!(
            "schemathesis needs Python 3.9 or later with venv and pip: \
             apt-get install python3 python3-venv"
        );
    };
    eprintln!(
        "==> installing schemathesis {VERSION} from PyPI into {}",
        venv.display()
    );
    std::fs::create_dir_all(work_dir())?;
    run(Command::new(&python)
        .args(["-m", "venv", "--clear"])
        .arg(&venv))
    .context("creating the virtualenv (on Debian: apt-get install python3-venv)")?;
    run(Command::new(venv.join("bin/pip")).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        &format!("schemathesis=={VERSION}"),
    ]))
    .context("installing schemathesis from PyPI")?;
    Ok(st)
}
