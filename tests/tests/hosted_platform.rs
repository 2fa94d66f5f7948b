//! What a hosted Supabase project does that a plain PostgreSQL does not, end
//! to end through the local REST layer and the Worker: the rule that refuses
//! UPDATE/DELETE without WHERE in every REST session (pg-safeupdate), the
//! gateway's handling of the 2025 opaque API keys, user tokens signed ES256
//! through the project's JWKS, and the deployment doctor behind
//! `GET /health?deep=1`. Each of these passed locally before and failed on a
//! hosted project.

use e2e_tests::reference::KeyPair;
use e2e_tests::tokens::{demo_claims, jwks_refetch_floor, publish_jwks};
use e2e_tests::{db, env, eventually, request, send, worker_secret, worker_url, Answer};
use serde_json::{json, Value};
use std::time::Duration;

fn rest_rpc(schema: &str, function: &str, headers: &[(&str, String)], body: &Value) -> Answer {
    let mut req = request(
        "POST",
        &format!("{}/rest/v1/rpc/{function}", env("CDS_SUPABASE_URL")),
    )
    .set("content-type", "application/json")
    .set("content-profile", schema);
    for (name, value) in headers {
        req = req.set(name, value);
    }
    send(req, Some(body.to_string().as_bytes()))
}

/// The service role as a project on the new keys reaches it: the secret key
/// in `apikey`, nothing else.
fn secret_key() -> Vec<(&'static str, String)> {
    vec![("apikey", env("CDS_SECRET_KEY"))]
}

#[test]
fn an_unqualified_delete_inside_an_rpc_is_refused_as_hosted_supabase_does() {
    let mut db = db::connect();
    db.batch_execute(
        "create or replace function public.cds_e2e_clear_scratch() returns void
         language plpgsql as $$
         begin
           create temporary table if not exists cds_e2e_scratch (x integer) on commit drop;
           delete from pg_temp.cds_e2e_scratch;
         end $$;
         revoke execute on function public.cds_e2e_clear_scratch() from public, anon, authenticated;
         grant execute on function public.cds_e2e_clear_scratch() to service_role;",
    )
    .expect("creating the probe function");
    // The REST layer reads new functions on a lookup miss.
    let answer = eventually(Duration::from_secs(10), || {
        let answer = rest_rpc("public", "cds_e2e_clear_scratch", &secret_key(), &json!({}));
        if answer.status == 404 {
            Err(format!("not visible yet: {}", answer.body))
        } else {
            Ok(answer)
        }
    });
    let _ = db.batch_execute("drop function public.cds_e2e_clear_scratch()");
    // PostgREST answers safeupdate's 21000 with 400 (other 21000s are 500).
    assert_eq!(answer.status, 400, "{}", answer.body);
    let body = answer.json();
    assert_eq!(body["code"], "21000", "{body}");
    assert_eq!(body["message"], "DELETE requires a WHERE clause", "{body}");
}

#[test]
fn the_summary_refresh_passes_through_the_rest_layer() {
    let answer = rest_rpc(
        "platform",
        "refresh_daily_token_summary",
        &secret_key(),
        &json!({}),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(
        ["refreshed", "skipped"].contains(&answer.json()["status"].as_str().unwrap_or("")),
        "{}",
        answer.body
    );
}

#[test]
fn an_opaque_key_sent_as_a_bearer_token_is_refused() {
    let secret = env("CDS_SECRET_KEY");
    let answer = rest_rpc(
        "platform",
        "list_models",
        &[
            ("apikey", secret.clone()),
            ("authorization", format!("Bearer {secret}")),
        ],
        &json!({}),
    );
    assert_eq!(answer.status, 401, "{}", answer.body);
    assert_eq!(answer.json()["code"], "PGRST301", "{}", answer.body);
}

#[test]
fn the_worker_runs_with_the_new_keys_and_says_so() {
    let answer = send(request("GET", &worker_url("/health")), None);
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.json()["api_keys"],
        "publishable_secret",
        "{}",
        answer.body
    );
    assert_eq!(answer.json()["status"], "ok", "{}", answer.body);
}

#[test]
fn an_es256_user_token_records_usage_through_the_rest_layer() {
    // The Worker verifies the token, then forwards it: the REST layer must
    // verify it against the same JWKS (what `supabase start` issues).
    let key = KeyPair::generate("ES256", &format!("hosted-{}", e2e_tests::random_uuid()));
    publish_jwks(&[&key.public_jwk]);
    let token = key.sign(&demo_claims());
    let answer = eventually(jwks_refetch_floor() + Duration::from_secs(5), || {
        let req = request("POST", &worker_url("/v1/usage"))
            .set("authorization", &format!("Bearer {token}"))
            .set("content-type", "application/json")
            .set("idempotency-key", &e2e_tests::random_uuid());
        let body = json!({"model": "gpt-4o-mini", "prompt_tokens": 3, "completion_tokens": 2});
        let answer = send(req, Some(body.to_string().as_bytes()));
        if answer.status == 201 {
            Ok(answer)
        } else {
            Err(format!("{} {}", answer.status, answer.body))
        }
    });
    assert!(answer.json()["usage_id"].is_number(), "{}", answer.body);
}

#[test]
fn the_deep_health_check_needs_the_operators_token_and_passes_on_this_stack() {
    let refused = send(request("GET", &worker_url("/health?deep=1")), None);
    assert_eq!(refused.status, 401, "{}", refused.body);

    let answer = send(
        request("GET", &worker_url("/health?deep=1")).set(
            "authorization",
            &format!("Bearer {}", worker_secret("METRICS_TOKEN")),
        ),
        None,
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    let body = answer.json();
    let failed: Vec<&Value> = body["checks"]
        .as_array()
        .expect("a checklist")
        .iter()
        .filter(|c| c["outcome"] != "pass")
        .collect();
    assert!(failed.is_empty(), "failed checks: {failed:?}");
    assert_eq!(body["status"], "ok", "{body}");
}
