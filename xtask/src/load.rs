//! `cargo xtask load [--clients N] [--seconds S] [--users U]`: the load run
//! with an invariant at full size (default 50 clients for 30 s over 100
//! users), on its own stack and ports. It runs the same test that
//! `cargo xtask test` runs at smoke size (`tests/tests/load_invariant.rs`)
//! and prints its table of invariants.
//!
//! `cargo xtask e2e [cargo test args]` starts the test stack and runs only
//! the end-to-end tests, filtered as asked: for working on one of them.

use crate::paths::{repo_root, Profile};
use crate::proc::run_visible;
use crate::stack::{self, RestBuild, Stack};
use crate::tools::cargo;
use anyhow::{bail, Context, Result};
use std::process::{Command, ExitCode};

pub fn run_command(args: &[String]) -> Result<ExitCode> {
    let mut settings = [
        ("--clients", "CDS_LOAD_CLIENTS", "50".to_string()),
        ("--seconds", "CDS_LOAD_SECONDS", "30".to_string()),
        ("--users", "CDS_LOAD_USERS", "100".to_string()),
    ];
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let Some(setting) = settings.iter_mut().find(|(f, _, _)| f == flag) else {
            bail!("unknown option {flag}; options: --clients N, --seconds S, --users U");
        };
        let value = rest
            .next()
            .with_context(|| format!("{flag} needs a number"))?;
        value
            .parse::<u32>()
            .with_context(|| format!("{flag} {value} is not a whole number"))?;
        setting.2 = value.clone();
    }
    let envs: Vec<(&str, &str)> = settings
        .iter()
        .map(|(_, name, value)| (*name, value.as_str()))
        .collect();
    let test_args = ["--release", "--test", "load_invariant", "--", "--nocapture"];
    e2e_on_own_stack(Profile::load()?, RestBuild::Release, &test_args, &envs)
}

pub fn e2e_command(args: &[String]) -> Result<ExitCode> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    e2e_on_own_stack(Profile::test()?, RestBuild::Debug, &args, &[])
}

/// Starts a stack on `profile`, runs `cargo test -p e2e-tests <args>` against
/// it with `envs` added, and stops it.
fn e2e_on_own_stack(
    profile: Profile,
    rest_build: RestBuild,
    args: &[&str],
    envs: &[(&str, &str)],
) -> Result<ExitCode> {
    let _stop = stack::stop_requested()?;
    let prepared = stack::prepare(rest_build)?;
    let mut stack = Stack::start(profile, prepared)?;
    stack.complete_deploy_steps()?;
    let passed = run_visible(
        Command::new(cargo())
            .args(["test", "-p", "e2e-tests"])
            .args(args)
            .envs(stack.test_env())
            .envs(envs.iter().copied())
            .current_dir(repo_root()),
    )?;
    stack.ensure_running()?;
    stack.stop();
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
