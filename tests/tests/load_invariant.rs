//! The load run with an invariant (see `e2e_tests::load::mixed`): mixed
//! traffic from concurrent clients over users with tight balances while the
//! cron folds the summary, then every invariant of the ledgers checked.
//!
//! `cargo xtask test` runs a seconds-scale smoke version; `cargo xtask load`
//! runs the full one (50 clients, 30 s, 100 users) through the variables
//! below and prints the same table.

use e2e_tests::load::env_number;
use e2e_tests::load::mixed::{run, Plan};
use std::time::Duration;

#[test]
fn mixed_traffic_loses_nothing_counts_nothing_twice_and_never_overdraws_a_hold() {
    let plan = Plan {
        clients: env_number("CDS_LOAD_CLIENTS", 8) as usize,
        duration: Duration::from_secs(env_number("CDS_LOAD_SECONDS", 4)),
        users: env_number("CDS_LOAD_USERS", 20) as usize,
        initial_grant: env_number("CDS_LOAD_INITIAL_GRANT", 1_500) as i64,
        cron_every: Duration::from_millis(env_number("CDS_LOAD_CRON_MS", 500)),
    };

    let report = run(plan);

    println!("{}", report.table);
    assert!(
        report.failures.is_empty(),
        "{}\n{}",
        report.table,
        report.failures.join("\n")
    );
}
