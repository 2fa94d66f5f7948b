//! Project automation, in Rust so it runs the same on every machine.
//!
//! `cargo xtask dev` starts the whole stack locally; `cargo xtask test` runs
//! every layer of tests against it. Both install what is missing first.

#![forbid(unsafe_code)]

mod bench;
mod devkeys;
mod doctor;
mod error_table;
mod fuzz;
mod init_sql;
mod load;
mod openapi;
mod paths;
mod postgres;
mod proc;
mod rehearsal;
mod route_index;
mod safeupdate;
mod schemathesis;
mod stack;
mod testrun;
mod tools;
mod web;
mod worker;
mod workerd_serve;

use clap::{Args, Parser, Subcommand};
use std::process::ExitCode;

/// Project automation: the local stack, every test layer, benchmarks and
/// deployment checks. Installs what is missing first.
#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    after_help = "\
Ports: CDS_PG_PORT, CDS_REST_PORT, CDS_WORKER_PORT, CDS_INSPECTOR_PORT override them
(dev: 54322, 54321, 8787, 9229; test: 54332, 54331, 8797, 9239;
bench: 54342, 54341, 8807, 9249; load: 54352, 54351, 8817, 9259), and
CDS_REHEARSAL_PG_PORT, _REST_PORT, _WORKER_PORT, _INSPECTOR_PORT those of the
deploy rehearsal (25432, 25431, 8827, 9269)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start Postgres, the REST layer and the Worker (wrangler dev), print
    /// URLs and keys; Ctrl-C stops all
    Dev,
    /// The same set-up, then every test layer (what CI runs); non-zero on any
    /// failure
    Test,
    /// Start the stack on its own ports, measure the benchmark figures, print
    /// a table (also target/bench/results.json)
    Bench(bench::Options),
    /// The load run with an invariant at full size: mixed traffic, then the
    /// ledgers checked; non-zero when an invariant fails
    Load(load::Options),
    /// The test stack, then only `cargo test -p e2e-tests ARGS`
    E2e(E2eArgs),
    /// Check a Supabase project and optionally a deployed Worker: a checklist,
    /// each failure with its fix; non-zero when anything fails
    Doctor(doctor::Args),
    /// Run a cargo-fuzz target for a bounded time (needs nightly)
    Fuzz(fuzz::Options),
    /// The test stack, then only the schemathesis run against the served
    /// OpenAPI document (also a layer of `test`)
    Schemathesis,
    /// Build the usage page (web/ -> web/dist) and the Worker to wasm
    /// (cargo, wasm-bindgen, wasm-opt, esbuild) into functions/build
    BuildWorker,
    /// Write database/init.sql from supabase/migrations and the seed
    InitSql,
    /// Rewrite README's error table from shared::error::CATALOGUE
    ErrorTable,
    /// Rewrite ARCHITECTURE.md's route index from shared::routes::ROUTES
    RouteIndex,
    /// Write shared/src/openapi.json from shared::openapi::generate
    Openapi,
}

#[derive(Debug, Args)]
struct E2eArgs {
    /// Passed to `cargo test -p e2e-tests` as given, e.g. `--test usage_api
    /// -- --nocapture`
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    cargo_test_args: Vec<String>,
}

/// What follows `e2e` on the command line, verbatim: clap would take a
/// leading `--` as its own separator, and `cargo xtask e2e -- --nocapture`
/// means the `--` for `cargo test`. `e2e` has no option of its own and the
/// top level none before it, so it is always the first argument.
fn e2e_passthrough(argv: impl Iterator<Item = String>) -> Vec<String> {
    argv.skip(2).collect()
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Dev => stack::dev(),
        Command::Test => testrun::run(),
        Command::Bench(options) => bench::run_command(&options),
        Command::Load(options) => load::run_command(&options),
        Command::E2e(_) => load::e2e_command(&e2e_passthrough(std::env::args())),
        Command::Doctor(args) => doctor::run_command(&args),
        Command::Fuzz(options) => fuzz::run_command(&options),
        Command::Schemathesis => schemathesis::run_command(),
        Command::BuildWorker => worker::build_command(),
        Command::InitSql => init_sql::write_command(),
        Command::ErrorTable => error_table::write_command(),
        Command::RouteIndex => route_index::write_command(),
        Command::Openapi => openapi::write_command(),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("cargo xtask").chain(args.iter().copied()))
            .map(|cli| cli.command)
    }

    #[test]
    fn e2e_passes_every_argument_through_untouched() {
        for args in [
            &["--test", "usage_api", "--", "--nocapture"][..],
            &["retried_usage"],
            &["--", "--test-threads", "1"],
        ] {
            let all: Vec<&str> = std::iter::once("e2e").chain(args.iter().copied()).collect();
            assert!(matches!(parse(&all), Ok(Command::E2e(_))), "{all:?}");
            let argv = ["cargo xtask"].iter().chain(&all).map(|a| a.to_string());
            assert_eq!(e2e_passthrough(argv), args, "{all:?}");
        }
    }

    #[test]
    fn every_documented_invocation_parses() {
        for args in [
            &["dev"][..],
            &["test"],
            &["bench", "--quick", "--only", "4,9"],
            &["load", "--clients", "8", "--seconds", "4", "--users", "10"],
            &["e2e"],
            &["fuzz", "jwt", "30"],
            &["build-worker"],
            &["init-sql"],
            &["error-table"],
            &["route-index"],
            &[
                "doctor",
                "--supabase-url",
                "http://x",
                "--anon-key",
                "a",
                "--service-role-key",
                "s",
            ],
        ] {
            assert!(parse(args).is_ok(), "{args:?}: {:?}", parse(args));
        }
    }

    #[test]
    fn bad_options_are_refused() {
        for args in [
            &["load", "--clients", "many"][..],
            &["load", "--threads", "4"],
            &["fuzz", "nothing"],
            &["fuzz", "jwt", "soon"],
            &["bench", "--only"],
            &["deploy"],
        ] {
            assert!(parse(args).is_err(), "{args:?} was accepted");
        }
    }

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
