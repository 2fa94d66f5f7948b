//! `cargo xtask fuzz <target> [seconds]`: runs one cargo-fuzz target of
//! `fuzz/` (libFuzzer over `shared::fuzzing`) for a bounded time and prints
//! libFuzzer's final count of executions. Not part of `cargo xtask test`,
//! which runs the same entry points briefly as unit tests on stable.
//!
//! libFuzzer needs a nightly toolchain (sanitizer flags); cargo-fuzz comes
//! from crates.io into the tool cache. The targets run without
//! AddressSanitizer: `shared` forbids `unsafe`, so ASan would only find bugs in
//! dependencies' unsafe code, at about a quarter of the executions per second.

use crate::paths::repo_root;
use crate::tools;
use anyhow::{bail, Context, Result};
use std::process::{Command, ExitCode};

pub const TARGETS: [&str; 4] = [
    "jwt",
    "standard_webhook",
    "usage_request",
    "webhook_payload",
];
const CARGO_FUZZ_VERSION: &str = "0.13.1";

/// Which target, for how long.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// The cargo-fuzz target
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(TARGETS))]
    target: String,
    /// How long libFuzzer runs, in seconds
    #[arg(default_value_t = 60)]
    seconds: u32,
}

pub fn run_command(options: &Options) -> Result<ExitCode> {
    let (target, seconds) = (&options.target, options.seconds);
    let nightly = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !nightly {
        bail!(
            "cargo-fuzz needs a nightly toolchain and none is installed \
             (rustup toolchain install nightly --profile minimal, where the \
             machine can fetch one); the smoke run in `cargo test -p shared fuzzing` \
             needs none"
        );
    }
    let cargo_fuzz = tools::cargo_install("cargo-fuzz", CARGO_FUZZ_VERSION, "cargo-fuzz")?;
    let corpus = repo_root().join("target/fuzz-corpus").join(target);
    std::fs::create_dir_all(&corpus)?;
    let status = Command::new(cargo_fuzz)
        .args(["run", "--sanitizer", "none", "--fuzz-dir", "fuzz", target])
        .arg(&corpus)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg("-print_final_stats=1")
        .env("RUSTUP_TOOLCHAIN", "nightly")
        .current_dir(repo_root())
        .status()
        .context("running cargo-fuzz")?;
    // libFuzzer prints `stat::number_of_executed_units: N` at the end.
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
