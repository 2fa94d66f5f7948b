//! The deployment doctor, sans I/O: what a Supabase project and the Worker
//! need before the edge can serve, judged from the answers of a few calls,
//! as a checklist whose failed lines name the exact fix.
//!
//! `cargo xtask doctor` and the Worker's `GET /health?deep=1` make the same
//! calls (the REST root, `list_models` in `platform` as anon,
//! `public.cds_deployment_report` as the service role, the project's JWKS)
//! and hand the answers to these functions.

use crate::postgrest::PostgrestError;
use crate::rpc::Signature;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub enum Outcome {
    Pass,
    Fail,
}

/// One line of the checklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct Check {
    /// A stable identifier (`platform_exposed`, `rpcs`, ...).
    pub id: String,
    pub outcome: Outcome,
    /// What was found.
    pub detail: String,
    /// The exact step that fixes a failure (dashboard path or SQL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    pub fn pass(id: &'static str, detail: impl Into<String>) -> Self {
        Check {
            id: id.to_string(),
            outcome: Outcome::Pass,
            detail: detail.into(),
            fix: None,
        }
    }

    pub fn fail(id: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Check {
            id: id.to_string(),
            outcome: Outcome::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Every RPC the edge calls, with its argument names (PostgREST chooses a
/// function by the names of the arguments sent): the typed calls' own
/// declarations, so what is checked is what is sent.
pub const EXPECTED_RPCS: &[Signature] = crate::rpc::ALL;

/// The per-role settings a hosted project gives PostgREST's roles; the
/// local platform (devtools/supabase_base.sql) sets the same.
pub const EXPECTED_ROLE_SETTINGS: &[(&str, &str, &str)] = &[
    ("anon", "statement_timeout", "3s"),
    ("authenticated", "statement_timeout", "8s"),
    ("authenticator", "statement_timeout", "8s"),
    ("authenticator", "lock_timeout", "8s"),
];

const EXPOSE_FIX: &str = "expose the `platform` schema: Dashboard → Project Settings → API → \
     Exposed schemas → add `platform` (or `[api] schemas` in supabase/config.toml, then \
     `supabase config push`)";
const PUSH_FIX: &str =
    "apply the migrations: `supabase link --project-ref <ref>` then `supabase db push`";

/// An HTTP answer as the checks read it: status and body, `None` when
/// nothing answered.
pub type Answer = Option<(u16, Vec<u8>)>;

/// What a project answered to the doctor's four calls.
#[derive(Debug, Clone, Default)]
pub struct ProjectAnswers {
    /// `GET <SUPABASE_URL>/rest/v1/` with the anon (or publishable) key.
    pub rest_root: Answer,
    /// `Client::platform_check`: `list_models` in `platform`, as anon.
    pub platform: Answer,
    /// `public.cds_deployment_report()` as the service role.
    pub report: Answer,
    /// `<SUPABASE_URL>/auth/v1/.well-known/jwks.json`.
    pub jwks: Answer,
}

fn read(answer: &Answer) -> Option<(u16, &[u8])> {
    answer
        .as_ref()
        .map(|(status, body)| (*status, body.as_slice()))
}

/// The project's checklist, in the order an operator would fix it: the same
/// for `cargo xtask doctor` and the Worker's `GET /health?deep=1`.
pub fn project_checks(answers: &ProjectAnswers) -> Vec<Check> {
    let mut checks = vec![
        check_rest_root(answers.rest_root.as_ref().map(|(status, _)| *status)),
        check_platform_exposed(read(&answers.platform)),
    ];
    checks.extend(check_report(read(&answers.report)));
    checks.push(check_jwks(read(&answers.jwks)));
    checks
}

/// `GET <SUPABASE_URL>/rest/v1/` with the anon (or publishable) key.
pub fn check_rest_root(status: Option<u16>) -> Check {
    match status {
        Some(s) if s < 400 => Check::pass("rest_reachable", format!("REST answered {s}")),
        Some(s @ (401 | 403)) => Check::fail(
            "rest_reachable",
            format!("REST refused the anon key ({s})"),
            "set SUPABASE_ANON_KEY to the project's anon or publishable key: \
             Dashboard → Project Settings → API Keys",
        ),
        Some(s) => Check::fail(
            "rest_reachable",
            format!("REST answered {s}"),
            "check SUPABASE_URL (https://<ref>.supabase.co) and the project's status in the dashboard",
        ),
        None => Check::fail(
            "rest_reachable",
            "no answer from the REST layer",
            "check SUPABASE_URL (https://<ref>.supabase.co) and that the project is not paused",
        ),
    }
}

/// Whether PostgREST serves the `platform` schema, from the answer to
/// `Client::platform_check` (`list_models` in `platform`, as anon).
pub fn check_platform_exposed(answer: Option<(u16, &[u8])>) -> Check {
    const ID: &str = "platform_exposed";
    match answer {
        None => Check::fail(
            ID,
            "no answer",
            "check SUPABASE_URL and that the project is up",
        ),
        Some((status, _)) if (200..300).contains(&status) => {
            Check::pass(ID, "PostgREST serves the `platform` schema")
        }
        Some((status, body)) => match postgrest_code(body).as_deref() {
            Some("PGRST106") => Check::fail(
                ID,
                "PostgREST does not expose the `platform` schema (PGRST106): every API call fails",
                EXPOSE_FIX,
            ),
            Some("PGRST202") => Check::fail(
                ID,
                "`platform` is exposed but its functions are missing (PGRST202)",
                PUSH_FIX,
            ),
            code => Check::fail(
                ID,
                format!("HTTP {status} {}", code.unwrap_or("(no PostgREST code)")),
                "check the REST layer's logs in the dashboard (Logs → API)",
            ),
        },
    }
}

fn postgrest_code(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<PostgrestError>(body)
        .ok()
        .map(|e| e.code)
}

/// The ids of the checks judged from the deployment report, in order: all
/// fail together when the report cannot be read.
pub const REPORT_CHECKS: [&str; 6] = [
    "rpcs",
    "model_catalogue",
    "role_timeouts",
    "safeupdate",
    "user_mirroring",
    "maintenance_job",
];

/// The checks read from the answer to `public.cds_deployment_report` (status
/// and body; `None` when the call got no answer at all). The report lives in
/// `public`, which every project exposes, so it can describe a project whose
/// `platform` schema is not exposed yet.
pub fn check_report(answer: Option<(u16, &[u8])>) -> Vec<Check> {
    let fail_all = |detail: String, fix: &str| -> Vec<Check> {
        REPORT_CHECKS
            .iter()
            .map(|id| Check::fail(id, detail.clone(), fix))
            .collect()
    };
    let Some((status, body)) = answer else {
        return fail_all(
            "the deployment report got no answer".into(),
            "check SUPABASE_URL and that the project is up",
        );
    };
    if !(200..300).contains(&status) {
        return match postgrest_code(body).as_deref() {
            Some("PGRST202") => fail_all(
                "the deployment report is missing (PGRST202): the migrations are not applied"
                    .into(),
                PUSH_FIX,
            ),
            Some(code @ ("PGRST301" | "PGRST302" | "42501" | "PT403")) => fail_all(
                format!("the service-role key was refused ({code}, HTTP {status})"),
                "set SUPABASE_SERVICE_ROLE_KEY to the project's service_role or sb_secret_ key",
            ),
            _ => fail_all(
                format!(
                    "the deployment report failed: HTTP {status} {}",
                    String::from_utf8_lossy(body)
                        .chars()
                        .take(200)
                        .collect::<String>()
                ),
                "check the REST layer's logs in the dashboard (Logs → API)",
            ),
        };
    }
    let Ok(report) = serde_json::from_slice::<Value>(body) else {
        return fail_all(
            "the deployment report is not JSON".into(),
            "check the REST layer's logs in the dashboard (Logs → API)",
        );
    };
    vec![
        check_rpcs(&report),
        check_models(&report),
        check_role_timeouts(&report),
        check_safeupdate(&report),
        check_user_mirroring(&report),
        check_maintenance_job(&report),
    ]
}

fn check_rpcs(report: &Value) -> Check {
    let found: Vec<(&str, Vec<&str>)> = report["functions"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|f| {
            let name = f["name"].as_str()?;
            let args = f["args"].as_array()?.iter().filter_map(Value::as_str);
            Some((name, args.collect()))
        })
        .collect();
    let mut problems = Vec::new();
    for rpc in EXPECTED_RPCS {
        let overloads: Vec<&[&str]> = found
            .iter()
            .filter(|(name, _)| *name == rpc.name)
            .map(|(_, args)| args.as_slice())
            .collect();
        // The same names in any order (a function's argument names are
        // distinct): compared without sorting, as the Worker links one sort
        // fewer that way.
        let same_names = |args: &&[&str]| {
            args.len() == rpc.args.len() && rpc.args.iter().all(|arg| args.contains(arg))
        };
        if overloads.is_empty() {
            problems.push(format!("{} is missing", rpc.name));
        } else if !overloads.iter().any(same_names) {
            problems.push(format!(
                "{} has arguments ({}), the edge sends ({})",
                rpc.name,
                overloads[0].join(", "),
                rpc.args.join(", ")
            ));
        }
    }
    if problems.is_empty() {
        Check::pass(
            "rpcs",
            format!(
                "all {} RPCs the edge calls exist with their arguments",
                EXPECTED_RPCS.len()
            ),
        )
    } else {
        Check::fail("rpcs", problems.join("; "), PUSH_FIX)
    }
}

fn check_models(report: &Value) -> Check {
    match report["active_models"].as_i64() {
        Some(n) if n > 0 => Check::pass("model_catalogue", format!("{n} active models")),
        _ => Check::fail(
            "model_catalogue",
            "no active model: every usage call would be refused with unknown_model",
            "apply the migrations (`supabase db push`; the catalogue ships in one), or add a model \
             with PUT /v1/admin/models/{name}",
        ),
    }
}

fn check_role_timeouts(report: &Value) -> Check {
    let settings = &report["role_settings"];
    let missing: Vec<String> = EXPECTED_ROLE_SETTINGS
        .iter()
        .filter(|(role, name, _)| settings[role][name].as_str().is_none())
        .map(|(role, name, value)| format!("alter role {role} set {name} = '{value}';"))
        .collect();
    if missing.is_empty() {
        let shown: Vec<String> = EXPECTED_ROLE_SETTINGS
            .iter()
            .map(|(role, name, _)| {
                format!(
                    "{role} {name}={}",
                    settings[role][name].as_str().unwrap_or("?")
                )
            })
            .collect();
        Check::pass("role_timeouts", shown.join(", "))
    } else {
        Check::fail(
            "role_timeouts",
            "the REST roles run without the timeouts a hosted project sets",
            format!("as the postgres role: {}", missing.join(" ")),
        )
    }
}

fn check_safeupdate(report: &Value) -> Check {
    if report["safeupdate"].as_bool() == Some(true) {
        Check::pass(
            "safeupdate",
            "UPDATE/DELETE without WHERE is refused in REST sessions",
        )
    } else {
        Check::fail(
            "safeupdate",
            "UPDATE/DELETE without WHERE is NOT refused in REST sessions: this is not the \
             platform the migrations were tested on",
            "hosted Supabase preloads pg-safeupdate for `authenticator`; elsewhere, as a \
             superuser: alter role authenticator set session_preload_libraries = 'safeupdate';",
        )
    }
}

/// How new users reach `platform.users`. The edge always mirrors a user just
/// in time from their verified token, so this never fails; it says whether
/// the webhook (the fast path) is installed, and what it still needs.
fn check_user_mirroring(report: &Value) -> Check {
    let webhook = &report["integrations"]["user_mirror_webhook"];
    if webhook["installed"].as_bool() == Some(true) {
        Check::pass(
            "user_mirroring",
            "the auth.users webhook mirrors new users; the edge mirrors just in time otherwise",
        )
    } else {
        Check::pass(
            "user_mirroring",
            format!(
                "just in time from verified tokens (the webhook is not installed; it needs: {}; \
                 then `select platform.install_user_mirror_webhook();`)",
                missing_list(&webhook["missing"])
            ),
        )
    }
}

/// The nightly VACUUM ANALYZE of the ledger, a pg_cron job.
fn check_maintenance_job(report: &Value) -> Check {
    let jobs = &report["integrations"]["maintenance_jobs"];
    match jobs["installed"].as_bool() {
        Some(true) => Check::pass(
            "maintenance_job",
            "the pg_cron maintenance jobs are scheduled",
        ),
        Some(false) => Check::fail(
            "maintenance_job",
            format!(
                "the nightly VACUUM ANALYZE of the ledger is not scheduled (missing: {})",
                missing_list(&jobs["missing"])
            ),
            "Dashboard → Database → Extensions → enable pg_cron; then, as postgres: \
             select platform.install_maintenance_jobs();",
        ),
        None => Check::fail(
            "maintenance_job",
            "the report does not describe the maintenance jobs",
            PUSH_FIX,
        ),
    }
}

fn missing_list(missing: &Value) -> String {
    let names: Vec<&str> = missing
        .as_array()
        .map(|m| m.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if names.is_empty() {
        "nothing".into()
    } else {
        names.join(", ")
    }
}

/// `GET <SUPABASE_URL>/auth/v1/.well-known/jwks.json`.
pub fn check_jwks(answer: Option<(u16, &[u8])>) -> Check {
    const FIX: &str = "check SUPABASE_URL: Supabase Auth publishes the keys at \
                       <SUPABASE_URL>/auth/v1/.well-known/jwks.json";
    let Some((status, body)) = answer else {
        return Check::fail("jwks", "the JWKS endpoint did not answer", FIX);
    };
    if status != 200 {
        return Check::fail("jwks", format!("the JWKS endpoint answered {status}"), FIX);
    }
    let Some(keys) = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["keys"].as_array().cloned())
    else {
        return Check::fail(
            "jwks",
            "the JWKS endpoint answered something else than a key set",
            FIX,
        );
    };
    // Each algorithm once, in the set's order (the Worker links no sort for
    // this report).
    let mut algorithms: Vec<String> = Vec::new();
    for key in &keys {
        let algorithm = key["alg"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("{}?", key["kty"].as_str().unwrap_or("unknown")));
        if !algorithms.contains(&algorithm) {
            algorithms.push(algorithm);
        }
    }
    if algorithms.is_empty() {
        Check::pass(
            "jwks",
            "reachable, no asymmetric signing keys (tokens are HS256 with the JWT secret)",
        )
    } else {
        Check::pass(
            "jwks",
            format!("reachable, {} keys: {}", keys.len(), algorithms.join(", ")),
        )
    }
}

/// Whether the Worker has its usage queue producer binding.
pub fn check_queue_binding(bound: bool) -> Check {
    if bound {
        Check::pass("queue_binding", "USAGE_QUEUE is bound")
    } else {
        Check::fail(
            "queue_binding",
            "USAGE_QUEUE is not bound: `Prefer: respond-async` would fail",
            "`npx wrangler queues create cds-usage-events` and `cds-usage-events-dlq`, then \
             `npx wrangler deploy` (wrangler.toml declares the bindings)",
        )
    }
}

/// The static assets the Worker answers with (the usage page's HTML and the
/// OpenAPI document, `functions/src/assets.rs`): `problem` is why one could
/// not be read, in which case its route answers 500 `misconfigured`.
pub fn check_static_assets(problem: Option<&str>) -> Check {
    match problem {
        None => Check::pass(
            "static_assets",
            "the ASSETS binding serves the usage page and the OpenAPI document",
        ),
        Some(problem) => Check::fail(
            "static_assets",
            format!(
                "{problem}: `/`, `/index.html` and `/v1/openapi.json` answer 500 misconfigured"
            ),
            "deploy with `cargo xtask build-worker` as the build command and wrangler.toml's \
             `[assets]` (directory `web/dist`, binding `ASSETS`)",
        ),
    }
}

/// The Worker's rate limiting bindings (`crate::rate_limit`): `missing`
/// names those not bound, in which case every request charged to one answers
/// 500 `misconfigured`.
pub fn check_rate_limit_bindings(missing: &[&str]) -> Check {
    if missing.is_empty() {
        Check::pass(
            "rate_limit_bindings",
            "API_KEY_LIMITER, USER_LIMITER and CLIENT_IP_LIMITER are bound",
        )
    } else {
        Check::fail(
            "rate_limit_bindings",
            format!(
                "{} not bound: requests charged to them answer 500 misconfigured",
                missing.join(", ")
            ),
            "`npx wrangler deploy` with the `[[ratelimits]]` bindings of wrangler.toml",
        )
    }
}

/// The body of the Worker's `GET /health?deep=1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct DeepHealth {
    /// `ok` when every check passes, `failing` otherwise.
    pub status: String,
    pub version: String,
    pub checks: Vec<Check>,
}

impl DeepHealth {
    pub fn new(checks: Vec<Check>) -> Self {
        DeepHealth {
            status: if all_pass(&checks) { "ok" } else { "failing" }.to_string(),
            version: crate::VERSION.to_string(),
            checks,
        }
    }
}

/// The Worker's own checklist, read from its answer to `GET /health?deep=1`
/// (prefixed `worker.` so it reads apart from the project's).
pub fn checks_from_worker(answer: Option<(u16, &[u8])>) -> Vec<Check> {
    const FIX: &str = "pass the Worker's METRICS_TOKEN (--metrics-token or METRICS_TOKEN)";
    let parsed = match answer {
        None => {
            return vec![Check::fail(
                "worker",
                "the Worker did not answer",
                "check --worker-url and `npx wrangler deploy`",
            )]
        }
        Some((401 | 403, _)) => {
            return vec![Check::fail(
                "worker",
                "the Worker refused the deep health check",
                FIX,
            )]
        }
        Some((_, body)) => serde_json::from_slice::<DeepHealth>(body),
    };
    match parsed {
        Ok(deep) => deep
            .checks
            .into_iter()
            .map(|c| Check {
                id: format!("worker.{}", c.id),
                ..c
            })
            .collect(),
        Err(e) => vec![Check::fail(
            "worker",
            format!("the Worker's deep health is not what this doctor reads: {e}"),
            "deploy the Worker built from this repository",
        )],
    }
}

/// True when nothing failed.
pub fn all_pass(checks: &[Check]) -> bool {
    checks.iter().all(|c| c.outcome == Outcome::Pass)
}

/// The checklist as text, one line per check, with the fix under a failure.
pub fn render_text(checks: &[Check]) -> String {
    let mut out = String::new();
    for check in checks {
        let mark = match check.outcome {
            Outcome::Pass => "ok  ",
            Outcome::Fail => "FAIL",
        };
        out.push_str(&format!("[{mark}] {:<17} {}\n", check.id, check.detail));
        if let Some(fix) = &check.fix {
            out.push_str(&format!("       fix: {fix}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A report from a database where everything is in place.
    fn healthy_report() -> Value {
        let functions: Vec<Value> = EXPECTED_RPCS
            .iter()
            .map(|rpc| json!({"name": rpc.name, "args": rpc.args}))
            .collect();
        json!({
            "functions": functions,
            "active_models": 5,
            "role_settings": {
                "anon": {"statement_timeout": "3s"},
                "authenticated": {"statement_timeout": "8s"},
                "authenticator": {"statement_timeout": "8s", "lock_timeout": "8s"},
            },
            "safeupdate": true,
            "integrations": {
                "user_mirror_webhook": {"installed": false, "missing": ["pg_net"]},
                "maintenance_jobs": {"installed": true, "missing": [], "jobs": []},
            },
        })
    }

    fn outcome_of(checks: &[Check], id: &str) -> Outcome {
        checks
            .iter()
            .find(|c| c.id == id)
            .unwrap_or_else(|| panic!("no check {id}"))
            .outcome
    }

    fn run(report: &Value) -> Vec<Check> {
        let body = serde_json::to_vec(report).unwrap();
        check_report(Some((200, &body)))
    }

    #[test]
    fn the_project_checklist_reads_each_answer_in_order() {
        let report = serde_json::to_vec(&healthy_report()).unwrap();
        let answers = ProjectAnswers {
            rest_root: Some((200, Vec::new())),
            platform: Some((200, b"[]".to_vec())),
            report: Some((200, report)),
            jwks: Some((200, br#"{"keys": []}"#.to_vec())),
        };
        let checks = project_checks(&answers);
        let ids: Vec<&str> = checks.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "rest_reachable",
                "platform_exposed",
                "rpcs",
                "model_catalogue",
                "role_timeouts",
                "safeupdate",
                "user_mirroring",
                "maintenance_job",
                "jwks"
            ]
        );
        assert!(all_pass(&checks), "{}", render_text(&checks));
        let nothing = project_checks(&ProjectAnswers::default());
        assert_eq!(nothing.len(), ids.len());
        assert!(nothing.iter().all(|c| c.outcome == Outcome::Fail));
    }

    #[test]
    fn a_healthy_report_passes_every_check() {
        let checks = run(&healthy_report());
        assert!(all_pass(&checks), "{}", render_text(&checks));
    }

    #[test]
    fn postgrest_refusals_name_their_fix() {
        let error = |code: &str| {
            json!({"code": code, "message": "m", "details": null, "hint": null}).to_string()
        };
        // (status, PostgREST code, the fix must mention): the platform probe
        let cases = [
            (406, "PGRST106", "Exposed schemas"),
            (404, "PGRST202", "supabase db push"),
        ];
        for (status, code, fix) in cases {
            let check = check_platform_exposed(Some((status, error(code).as_bytes())));
            assert_eq!(check.outcome, Outcome::Fail, "{code}");
            assert!(check.fix.as_deref().unwrap().contains(fix), "{code}");
        }
        assert_eq!(check_platform_exposed(None).outcome, Outcome::Fail);
        assert_eq!(
            check_platform_exposed(Some((200, b"[]"))).outcome,
            Outcome::Pass
        );
        // ... and the report: every check it feeds fails with the same fix.
        let cases = [
            (404, "PGRST202", "supabase db push"),
            (401, "PGRST301", "SUPABASE_SERVICE_ROLE_KEY"),
        ];
        for (status, code, fix) in cases {
            let checks = check_report(Some((status, error(code).as_bytes())));
            assert_eq!(checks.len(), 6);
            for check in &checks {
                assert_eq!(check.outcome, Outcome::Fail, "{code}");
                assert!(check.fix.as_deref().unwrap().contains(fix), "{code}");
            }
        }
        assert!(!all_pass(&check_report(None)));
    }

    #[test]
    fn a_missing_or_changed_rpc_fails() {
        let mut report = healthy_report();
        report["functions"]
            .as_array_mut()
            .unwrap()
            .retain(|f| f["name"] != "reserve_tokens");
        let checks = run(&report);
        assert_eq!(outcome_of(&checks, "rpcs"), Outcome::Fail);
        assert!(checks[0].detail.contains("reserve_tokens is missing"));

        let mut report = healthy_report();
        for f in report["functions"].as_array_mut().unwrap() {
            if f["name"] == "set_default_model" {
                f["args"] = json!(["p_model_name"]);
            }
        }
        let checks = run(&report);
        assert!(checks[0].detail.contains("set_default_model has arguments"));
    }

    #[test]
    fn argument_order_does_not_matter_and_overloads_are_searched() {
        let mut report = healthy_report();
        let functions = report["functions"].as_array_mut().unwrap();
        for f in functions.iter_mut() {
            if f["name"] == "reserve_tokens" {
                f["args"] = json!(["p_user_id", "p_api_key_id", "p_ttl_seconds", "p_tokens"]);
            }
        }
        functions.push(json!({"name": "set_default_model", "args": ["p_other"]}));
        assert_eq!(outcome_of(&run(&report), "rpcs"), Outcome::Pass);
    }

    #[test]
    fn each_report_field_has_its_own_failure() {
        // (what is broken, the check that fails)
        type BreakIt = fn(&mut Value);
        let cases: [(BreakIt, &str); 5] = [
            (
                |r| {
                    r["integrations"]["maintenance_jobs"] =
                        json!({"installed": false, "missing": ["pg_cron"]})
                },
                "maintenance_job",
            ),
            (|r| r["active_models"] = json!(0), "model_catalogue"),
            (
                |r| r["role_settings"]["authenticated"] = json!({}),
                "role_timeouts",
            ),
            (|r| r["safeupdate"] = json!(false), "safeupdate"),
            (|r| r["role_settings"] = json!(null), "role_timeouts"),
        ];
        for (break_it, id) in cases {
            let mut report = healthy_report();
            break_it(&mut report);
            let checks = run(&report);
            assert_eq!(outcome_of(&checks, id), Outcome::Fail, "{id}");
            let failed: Vec<_> = checks
                .iter()
                .filter(|c| c.outcome != Outcome::Pass)
                .collect();
            assert_eq!(failed.len(), 1, "only {id} fails");
        }
    }

    #[test]
    fn role_timeout_fix_is_the_sql_to_run() {
        let mut report = healthy_report();
        report["role_settings"]["anon"] = json!({});
        let check = check_role_timeouts(&report);
        assert_eq!(
            check.fix.as_deref(),
            Some("as the postgres role: alter role anon set statement_timeout = '3s';")
        );
    }

    #[test]
    fn jwks_and_rest_root_and_queue() {
        let keys = json!({"keys": [{"kty": "EC", "alg": "ES256"}, {"kty": "RSA"}]}).to_string();
        let check = check_jwks(Some((200, keys.as_bytes())));
        assert_eq!(check.outcome, Outcome::Pass);
        assert!(check.detail.contains("ES256"), "{}", check.detail);
        assert_eq!(check_jwks(Some((404, b""))).outcome, Outcome::Fail);
        assert_eq!(check_jwks(Some((200, b"[]"))).outcome, Outcome::Fail);
        assert_eq!(check_jwks(None).outcome, Outcome::Fail);
        assert_eq!(check_rest_root(Some(200)).outcome, Outcome::Pass);
        assert_eq!(check_rest_root(Some(401)).outcome, Outcome::Fail);
        assert_eq!(check_rest_root(None).outcome, Outcome::Fail);
        assert_eq!(check_queue_binding(false).outcome, Outcome::Fail);
        assert_eq!(check_queue_binding(true).outcome, Outcome::Pass);
    }

    #[test]
    fn unreadable_static_assets_fail_the_deep_check_with_the_reason() {
        assert_eq!(check_static_assets(None).outcome, Outcome::Pass);
        let missing = check_static_assets(Some("the ASSETS binding is not bound"));
        assert_eq!(missing.outcome, Outcome::Fail);
        assert!(missing.detail.contains("not bound"), "{}", missing.detail);
        assert!(missing.fix.is_some());
    }

    #[test]
    fn unbound_rate_limiters_fail_the_deep_check_by_name() {
        let ok = check_rate_limit_bindings(&[]);
        assert_eq!(ok.outcome, Outcome::Pass);
        let missing = check_rate_limit_bindings(&["USER_LIMITER"]);
        assert_eq!(missing.outcome, Outcome::Fail);
        assert!(
            missing.detail.contains("USER_LIMITER"),
            "{}",
            missing.detail
        );
    }
}
