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
use anyhow::Result;
use std::process::{Command, ExitCode};

/// The size of the load run.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// Clients sending at once
    #[arg(long, default_value_t = 50)]
    clients: u32,
    /// How long the traffic runs
    #[arg(long, default_value_t = 30)]
    seconds: u32,
    /// Users the traffic spreads over (each with a tight balance)
    #[arg(long, default_value_t = 100)]
    users: u32,
}

pub fn run_command(options: &Options) -> Result<ExitCode> {
    let (clients, seconds, users) = (
        options.clients.to_string(),
        options.seconds.to_string(),
        options.users.to_string(),
    );
    let envs = [
        ("CDS_LOAD_CLIENTS", clients.as_str()),
        ("CDS_LOAD_SECONDS", seconds.as_str()),
        ("CDS_LOAD_USERS", users.as_str()),
    ];
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
