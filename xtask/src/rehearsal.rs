//! The deploy rehearsal: a second local project set up like a bare hosted
//! Supabase project (demoted `postgres`, safeupdate, role timeouts, pg_cron
//! preloaded but not enabled, no pg_net, no Vault, only `public` and
//! `graphql_public` exposed) and a deployed Worker. The doctor runs before
//! `supabase db push` (it must point at the migrations), after it, as `db
//! push` would apply them (no seed; it must name exactly the exposed schema
//! and the pg_cron job), and after the README's deploy steps that can be
//! done locally (all green); then a brand-new user's first request must
//! record usage.

use crate::devkeys::{uuid_v4, DevKeys, KeyScheme};
use crate::doctor::{self, Args};
use crate::paths::{exposed_schemas, Profile};
use crate::postgres;
use crate::proc::{ensure_port_free, wait_until, Service};
use crate::stack::{start_rest, Stack};
use crate::worker;
use anyhow::{bail, Context, Result};
use shared::doctor::{render_text, Check, Outcome, REPORT_CHECKS};
use std::time::{Duration, Instant};

/// What a new hosted project exposes before anyone touches its API settings.
const HOSTED_DEFAULT_SCHEMAS: [&str; 2] = ["public", "graphql_public"];

/// Runs the rehearsal beside the test stack (whose tools it reuses); true
/// when every expectation held. Prints the doctor's output before and after.
pub fn run(test_stack: &Stack) -> Result<bool> {
    let profile = Profile::rehearsal()?;
    let keys = DevKeys::load_or_create(&profile)?;
    let mut services: Vec<Service> = Vec::new();
    let outcome = rehearse(test_stack, &profile, &keys, &mut services);
    while let Some(mut service) = services.pop() {
        service.stop(Duration::from_secs(10));
    }
    outcome
}

fn rehearse(
    test_stack: &Stack,
    profile: &Profile,
    keys: &DevKeys,
    services: &mut Vec<Service>,
) -> Result<bool> {
    let pg = &test_stack.pg;
    eprintln!(
        "==> rehearsal: a bare hosted-like project on port {}",
        profile.pg_port
    );
    wait_for_ports(profile)?;
    services.push(postgres::start_cluster(profile, pg)?);
    postgres::set_up_platform(profile, pg)?;
    let hosted_defaults: Vec<String> = HOSTED_DEFAULT_SCHEMAS.map(String::from).to_vec();
    services.push(start_rest(
        profile,
        keys,
        &test_stack.rest_binary,
        &hosted_defaults,
    )?);

    // The Worker as deployed with the legacy JWT keys (the test stack runs
    // the new opaque ones, so both kinds are exercised end to end).
    let vars = worker::write_vars(profile, keys, KeyScheme::LegacyJwt)?;
    let mut wrangler = worker::start_wrangler(profile, &test_stack.worker_tools, &vars)?;
    let health = format!("{}/health", profile.worker_url());
    let waited = wait_until(&mut wrangler, Duration::from_secs(180), || {
        ureq::get(&health)
            .timeout(Duration::from_secs(2))
            .call()
            .is_ok()
    });
    services.push(wrangler);
    waited?;

    let args = Args {
        supabase_url: profile.supabase_url(),
        anon_key: keys.anon_key.clone(),
        service_role_key: keys.service_role_key.clone(),
        worker_url: Some(profile.worker_url()),
        metrics_token: Some(keys.metrics_token.clone()),
    };
    let mut passed = true;

    // A new project and a deployed Worker, before `supabase db push`: the
    // doctor must send the operator to the migrations.
    let unpushed = doctor::run(&args);
    println!("\n    doctor on the new project, before `supabase db push`:\n");
    print_indented(&unpushed);
    let expected: Vec<String> = std::iter::once("platform_exposed")
        .chain(REPORT_CHECKS)
        .flat_map(|id| [id.to_string(), format!("worker.{id}")])
        .collect();
    passed &= expect_failed(
        &unpushed,
        &expected.iter().map(String::as_str).collect::<Vec<_>>(),
    );

    // `supabase db push`: the migrations, as `postgres`, and not the seed.
    let applied = postgres::apply_migrations(pg, &profile.admin_db_url())?;
    eprintln!("    {applied} migrations pushed (no seed)");

    let before = doctor::run(&args);
    println!("\n    doctor on the bare project, right after `supabase db push`:\n");
    print_indented(&before);
    passed &= expect_failed(
        &before,
        &[
            "platform_exposed",
            "maintenance_job",
            "worker.platform_exposed",
            "worker.maintenance_job",
        ],
    );

    eprintln!("==> rehearsal: the README's deploy steps");
    // Dashboard → Project Settings → API → Exposed schemas: add `platform`.
    let rest = services
        .iter()
        .position(|s| s.name == "rest-standin")
        .context("the REST layer is not running")?;
    services[rest].stop(Duration::from_secs(10));
    services[rest] = start_rest(profile, keys, &test_stack.rest_binary, &exposed_schemas()?)?;
    // Dashboard → Database → Extensions: enable pg_cron (done by Supabase
    // as the superuser), then the maintenance job, as `postgres`.
    postgres::execute(pg, &profile.superuser_db_url(), postgres::ENABLE_PG_CRON)?;
    postgres::execute(
        pg,
        &profile.admin_db_url(),
        "select platform.install_maintenance_jobs()",
    )?;

    let after = doctor::run(&args);
    println!("\n    doctor after the deploy steps:\n");
    print_indented(&after);
    passed &= expect_failed(&after, &[]);

    passed &= first_request_records_usage(profile, keys, pg)?;
    Ok(passed)
}

/// The rehearsal's ports, given a little time: a process of an earlier run
/// (a backend still exiting after its postmaster) may hold one briefly.
fn wait_for_ports(profile: &Profile) -> Result<()> {
    let ports = [
        (
            profile.pg_port,
            "the rehearsal's PostgreSQL",
            "CDS_REHEARSAL_PG_PORT",
        ),
        (
            profile.rest_port,
            "the rehearsal's REST layer",
            "CDS_REHEARSAL_REST_PORT",
        ),
        (
            profile.worker_port,
            "the rehearsal's Worker",
            "CDS_REHEARSAL_WORKER_PORT",
        ),
        (
            profile.inspector_port,
            "the rehearsal's inspector",
            "CDS_REHEARSAL_INSPECTOR_PORT",
        ),
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    for (port, what, variable) in ports {
        while ensure_port_free(port, what, variable).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(250));
        }
        ensure_port_free(port, what, variable)?;
    }
    Ok(())
}

fn print_indented(checks: &[Check]) {
    for line in render_text(checks).lines() {
        println!("    {line}");
    }
}

/// True when exactly the checks named in `expected` failed.
fn expect_failed(checks: &[Check], expected: &[&str]) -> bool {
    let mut failed: Vec<&str> = checks
        .iter()
        .filter(|c| c.outcome == Outcome::Fail)
        .map(|c| c.id.as_str())
        .collect();
    failed.sort_unstable();
    let mut wanted = expected.to_vec();
    wanted.sort_unstable();
    if failed == wanted {
        eprintln!("    as expected, failed: {failed:?}");
        true
    } else {
        eprintln!("    UNEXPECTED: failed {failed:?}, expected {wanted:?}");
        false
    }
}

/// Someone signs up (Supabase Auth writes `auth.users`; no webhook exists
/// here, so nobody is mirrored) and records usage with their first token.
fn first_request_records_usage(
    profile: &Profile,
    keys: &DevKeys,
    pg: &crate::tools::PgTools,
) -> Result<bool> {
    let id = uuid_v4()?;
    let email = format!("first-{}@example.com", &id[..8]);
    postgres::execute(
        pg,
        &profile.admin_db_url(),
        &format!(
            "insert into auth.users (id, aud, role, email, email_confirmed_at, created_at, updated_at) \
             values ('{id}', 'authenticated', 'authenticated', '{email}', now(), now(), now())"
        ),
    )?;
    let token = keys.user_token(profile, &id, &email)?;
    let model = postgres::execute(
        pg,
        &profile.admin_db_url(),
        "select name from platform.models where is_active order by name limit 1",
    )?;
    if model.is_empty() {
        bail!("the pushed catalogue has no active model");
    }
    let answer = ureq::post(&format!("{}/v1/usage", profile.worker_url()))
        .set("authorization", &format!("Bearer {token}"))
        .set("idempotency-key", "rehearsal-first-request")
        .timeout(Duration::from_secs(15))
        .send_json(serde_json::json!({
            "model": model, "prompt_tokens": 10, "completion_tokens": 5
        }));
    let (status, body) = match answer {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(s, r)) => (s, r.into_string().unwrap_or_default()),
        Err(e) => bail!("the Worker did not answer: {e}"),
    };
    let rows = postgres::execute(
        pg,
        &profile.admin_db_url(),
        &format!("select count(*) from platform.token_usage where user_id = '{id}'"),
    )?;
    let ok = status == 201 && rows == "1";
    eprintln!(
        "    a brand-new user's first POST /v1/usage: {status}, ledger rows {rows}{}",
        if ok { "" } else { &body }
    );
    Ok(ok)
}
