//! `cargo xtask doctor`: the deployment checklist of a Supabase project (and,
//! given its URL, a deployed Worker), each failed line naming the exact fix.
//! The judging is `shared::doctor`; this module only makes the calls.

use anyhow::Result;
use shared::doctor::{self, Check, ProjectAnswers};
use shared::rpc::catalogue::ListModels;
use shared::rpc::operations::DeploymentReport;
use shared::rpc::Rpc;
use shared::supabase_keys::SupabaseKey;
use std::process::ExitCode;
use std::time::Duration;

/// Runs against any project: the URL and keys come from flags or from the
/// same variables the Worker reads.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The project's URL, e.g. https://<ref>.supabase.co
    #[arg(long, env = "SUPABASE_URL")]
    pub supabase_url: String,
    /// The anon (legacy JWT) or publishable (sb_publishable_…) key.
    #[arg(long, env = "SUPABASE_ANON_KEY", hide_env_values = true)]
    pub anon_key: String,
    /// The service_role (legacy JWT) or secret (sb_secret_…) key.
    #[arg(long, env = "SUPABASE_SERVICE_ROLE_KEY", hide_env_values = true)]
    pub service_role_key: String,
    /// A deployed Worker to ask for its own checks (`GET /health?deep=1`).
    #[arg(long, env = "CDS_WORKER_URL")]
    pub worker_url: Option<String>,
    /// What the Worker's deep health check accepts: its METRICS_TOKEN.
    #[arg(long, env = "METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
}

pub fn run_command(args: &Args) -> Result<ExitCode> {
    let checks = run(args);
    print!("{}", doctor::render_text(&checks));
    let failed = checks
        .iter()
        .filter(|c| c.outcome == doctor::Outcome::Fail)
        .count();
    println!("doctor: {} checks, {} failed", checks.len(), failed);
    Ok(if doctor::all_pass(&checks) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Every check, in the order an operator would fix them.
pub fn run(args: &Args) -> Vec<Check> {
    let keys = SupabaseKey::anon(&args.anon_key)
        .and_then(|anon| Ok((anon, SupabaseKey::service_role(&args.service_role_key)?)));
    let (anon, service_role) = match keys {
        Ok(keys) => keys,
        Err(refusal) => {
            return vec![Check::fail(
                "keys",
                refusal,
                "Dashboard → Project Settings → API Keys: the anon or publishable key, and \
                 the service_role or secret key",
            )]
        }
    };
    let base = args.supabase_url.trim_end_matches('/');
    let mut checks = doctor::project_checks(&ProjectAnswers {
        rest_root: get(&format!("{base}/rest/v1/"), &key_headers(&anon)),
        platform: post_rpc::<ListModels>(base, &anon),
        report: post_rpc::<DeploymentReport>(base, &service_role),
        jwks: get(&format!("{base}/auth/v1/.well-known/jwks.json"), &[]),
    });
    if let Some(worker) = &args.worker_url {
        checks.extend(worker_checks(worker, args.metrics_token.as_deref()));
    }
    checks
}

/// Hosted Supabase's gateway takes the new `sb_` keys in `apikey` only
/// (PostgREST refuses them as a bearer token); legacy JWT keys go in both.
fn key_headers(key: &SupabaseKey) -> Vec<(&'static str, String)> {
    let mut headers = vec![("apikey", key.value().to_string())];
    if key.is_jwt() {
        headers.push(("authorization", format!("Bearer {}", key.value())));
    }
    headers
}

/// A call without arguments, as `shared::rpc` names it.
fn post_rpc<R: Rpc>(base: &str, key: &SupabaseKey) -> Option<(u16, Vec<u8>)> {
    let mut request = agent()
        .post(&format!("{base}/rest/v1/rpc/{}", R::NAME))
        .set("content-profile", R::SCHEMA)
        .set("content-type", "application/json");
    for (name, value) in key_headers(key) {
        request = request.set(name, &value);
    }
    answer(request.send_string("{}"))
}

fn get(url: &str, headers: &[(&'static str, String)]) -> Option<(u16, Vec<u8>)> {
    let mut request = agent().get(url);
    for (name, value) in headers {
        request = request.set(name, value);
    }
    answer(request.call())
}

/// The Worker's own checks (what only it can see: its bindings and its
/// configuration), as `GET /health?deep=1` reports them.
fn worker_checks(worker: &str, token: Option<&str>) -> Vec<Check> {
    let url = format!("{}/health?deep=1", worker.trim_end_matches('/'));
    let headers: Vec<(&'static str, String)> = token
        .map(|t| vec![("authorization", format!("Bearer {t}"))])
        .unwrap_or_default();
    let answer = get(&url, &headers);
    doctor::checks_from_worker(answer.as_ref().map(|(s, b)| (*s, b.as_slice())))
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build()
}

/// Status and body of an answer, whatever its status; `None` when nothing
/// answered.
fn answer(result: Result<ureq::Response, ureq::Error>) -> Option<(u16, Vec<u8>)> {
    let response = match result {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(ureq::Error::Transport(_)) => return None,
    };
    let status = response.status();
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut response.into_reader(), &mut body).ok()?;
    Some((status, body))
}
