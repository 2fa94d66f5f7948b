//! Project automation, in Rust so it runs the same on every machine.
//!
//! `cargo xtask dev` starts the whole stack locally; `cargo xtask test` runs
//! every layer of tests against it. Both install what is missing first.

mod bench;
mod devkeys;
mod doctor;
mod error_table;
mod fuzz;
mod init_sql;
mod load;
mod paths;
mod postgres;
mod proc;
mod rehearsal;
mod safeupdate;
mod stack;
mod testrun;
mod tools;
mod web;
mod worker;
mod workerd_serve;

use std::process::ExitCode;

const HELP: &str = "\
usage: cargo xtask <command>

commands:
  dev            install what is missing, start Postgres, the REST layer and the
                 Worker (wrangler dev), print URLs and keys; Ctrl-C stops all
  test           the same set-up, then every test layer; non-zero on any failure
  bench          start the stack on its own ports, measure the benchmark figures,
                 print a table (also target/bench/results.json); --quick: shorter
  load           the load run with an invariant at full size (--clients 50
                 --seconds 30 --users 100): mixed traffic, then the ledgers
                 checked; prints a table; non-zero when an invariant fails
  e2e [ARGS]     the test stack, then only `cargo test -p e2e-tests ARGS`
  doctor         check a Supabase project (SUPABASE_URL, SUPABASE_ANON_KEY,
                 SUPABASE_SERVICE_ROLE_KEY; --help) and optionally a Worker
                 (CDS_WORKER_URL, METRICS_TOKEN): a checklist, each failure
                 with its fix; non-zero when anything fails
  fuzz T [SECS]  run cargo-fuzz target T (jwt, standard_webhook, usage_request,
                 webhook_payload) for SECS seconds (default 60); needs nightly
  build-worker   build the usage page (web/ -> web/dist) and the Worker to wasm
                 with worker-build --release
  init-sql       write database/init.sql from supabase/migrations and the seed
  error-table    rewrite README's error table from shared::error::CATALOGUE

environment:
  CDS_PG_PORT, CDS_REST_PORT, CDS_WORKER_PORT, CDS_INSPECTOR_PORT
                 override the ports (dev: 54322, 54321, 8787, 9229;
                 test: 54332, 54331, 8797, 9239; bench: 54342, 54341, 8807, 9249;
                 load: 54352, 54351, 8817, 9259)
";

fn main() -> ExitCode {
    let command = std::env::args().nth(1);
    let result = match command.as_deref() {
        Some("dev") => stack::dev(),
        Some("test") => testrun::run(),
        Some("bench") => bench::run_command(&std::env::args().skip(2).collect::<Vec<_>>()),
        Some("load") => load::run_command(&std::env::args().skip(2).collect::<Vec<_>>()),
        Some("e2e") => load::e2e_command(&std::env::args().skip(2).collect::<Vec<_>>()),
        Some("doctor") => doctor::run_command(&std::env::args().skip(2).collect::<Vec<_>>()),
        Some("fuzz") => fuzz::run_command(&std::env::args().skip(2).collect::<Vec<_>>()),
        Some("build-worker") => worker::build_command(),
        Some("init-sql") => init_sql::write_command(),
        Some("error-table") => error_table::write_command(),
        Some("help" | "-h" | "--help") => {
            print!("{HELP}");
            Ok(ExitCode::SUCCESS)
        }
        _ => {
            eprint!("{HELP}");
            Ok(ExitCode::from(2))
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
