//! Security checks of the adversarial suite.
//!
//! - A signed-in user (the attacker) uses their own valid JWT, and their own
//!   API key, against another user (the victim): through the edge, and
//!   straight at the REST layer's RPCs as PostgREST exposes them. Every
//!   attempt is refused with its status and code, and nothing of the victim's
//!   changes (a fingerprint of every row of theirs). The same attempts as the
//!   user's role directly in SQL are the pgTAP files `1xx_rls_*` and the RPC
//!   tests' privilege checks.
//! - API key secrets, JWTs and the Worker's own secrets never appear in the
//!   captured logs of the stack (Worker, REST layer, Postgres) or in the
//!   telemetry rows.

mod usage_common;

use e2e_tests::db::users_fingerprint;
use e2e_tests::{env, request, send, worker_secret, Answer};
use serde_json::{json, Value};
use std::time::Duration;
use usage_common::*;

/// The victim: tokens, an API key, a hold, a recorded event and a grant.
struct Victim {
    user: User,
    key_id: String,
    hold_id: String,
    recorded_key: String,
}

impl Victim {
    fn new() -> Victim {
        let user = User::with_tokens(50_000);
        user.api_key(&["usage:write"]);
        let key_id = text(
            "select id::text from platform.api_keys where user_id = $1::text::uuid",
            &[&user.id],
        )
        .expect("the victim's key id");
        let hold = reserve(&user.token, 1_000, Some(900));
        assert_eq!(hold.status, 201, "{}", hold.body);
        let hold_id = hold.json()["reservation_id"]
            .as_str()
            .expect("reservation_id")
            .to_string();
        let recorded_key = unique("victim");
        let recorded = record(&user.token, &recorded_key, &event(MODEL, 10, 10));
        assert_eq!(recorded.status, 201, "{}", recorded.body);
        Victim {
            user,
            key_id,
            hold_id,
            recorded_key,
        }
    }

    fn fingerprint(&self) -> Vec<(String, String)> {
        users_fingerprint(&mut db(), &[&self.user.id])
    }
}

/// What the attacker tries through the edge: a description, method, path,
/// body, which of their credentials they present (`"jwt"` or `"key"`), and
/// the status and code it must be refused with.
type EdgeAttempt = (
    &'static str,
    &'static str,
    String,
    Option<Value>,
    &'static str,
    u16,
    &'static str,
);

#[test]
fn a_user_cannot_reach_another_users_data_through_the_edge() {
    let victim = Victim::new();
    let attacker = User::with_tokens(1_000);
    let attacker_key = attacker.api_key(&["usage:write", "usage:read"]);
    let before = victim.fingerprint();
    let attacker_before = users_fingerprint(&mut db(), &[&attacker.id]);
    let model_before = model_row(MODEL);
    let v = &victim.user.id;

    #[rustfmt::skip]
    let cases: Vec<EdgeAttempt> = vec![
        ("read the victim's overview", "GET", format!("/v1/usage/overview?user_id={v}"), None, "jwt", 403, "forbidden"),
        ("read it with the attacker's API key", "GET", format!("/v1/usage/overview?user_id={v}"), None, "key", 403, "forbidden"),
        ("grant tokens to oneself", "POST", "/v1/admin/grants".into(),
            Some(json!({"user_id": attacker.id, "amount": 1000, "reason": "self"})), "jwt", 403, "forbidden"),
        ("grant tokens to the victim", "POST", "/v1/admin/grants".into(),
            Some(json!({"user_id": v, "amount": 1000, "reason": "gift"})), "jwt", 403, "forbidden"),
        ("revoke the victim's API key", "DELETE", format!("/v1/api-keys/{}", victim.key_id), None, "jwt", 404, "unknown_api_key"),
        ("release the victim's hold", "DELETE", format!("/v1/usage/reservations/{}", victim.hold_id), None, "jwt", 404, "unknown_reservation"),
        ("release it with the attacker's API key", "DELETE", format!("/v1/usage/reservations/{}", victim.hold_id), None, "key", 404, "unknown_reservation"),
        ("record usage naming the victim", "POST", "/v1/usage".into(),
            Some(json!({"model": MODEL, "prompt_tokens": 1, "completion_tokens": 1, "idempotency_key": "x", "user_id": v})),
            "jwt", 422, "unknown_field"),
        ("record a batch naming the victim", "POST", "/v1/usage/batch".into(),
            Some(json!({"user_id": v, "events": [{"model": MODEL, "prompt_tokens": 1, "completion_tokens": 1, "idempotency_key": "x"}]})),
            "key", 422, "unknown_field"),
        ("hold the victim's tokens", "POST", "/v1/usage/reservations".into(),
            Some(json!({"tokens": 10, "user_id": v})), "jwt", 422, "unknown_field"),
        ("set the victim's default model", "PUT", "/v1/me/default-model".into(),
            Some(json!({"model": MODEL, "user_id": v})), "jwt", 422, "unknown_field"),
        ("make the victim's model free", "PUT", format!("/v1/admin/models/{MODEL}"),
            Some(json!({"provider": "openai", "context_size": 128000, "input_cost_per_1k_tokens": 0,
                "output_cost_per_1k_tokens": 0})), "jwt", 403, "forbidden"),
        ("take the victim's model out of use", "DELETE", format!("/v1/admin/models/{MODEL}"), None, "jwt", 403, "forbidden"),
        ("deactivate it with the attacker's API key", "DELETE", format!("/v1/admin/models/{MODEL}"), None, "key", 403, "user_token_required"),
    ];
    let mut wrong = Vec::new();
    for (what, method, path, body, credential, status, code) in &cases {
        let bearer = match *credential {
            "key" => &attacker_key,
            _ => &attacker.token,
        };
        let idempotency_key = unique("x");
        let headers = [("idempotency-key", idempotency_key.as_str())];
        let answer = call(method, path, Some(bearer), &headers, body.as_ref());
        if answer.refusal() != (*status, code.to_string()) {
            wrong.push(format!(
                "{what}: expected {status} {code}, got {} {}",
                answer.status, answer.body
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // Answers that succeed for the attacker show only the attacker's data.
    let keys = call("GET", "/v1/api-keys", Some(&attacker.token), &[], None);
    assert_eq!(keys.status, 200, "{}", keys.body);
    assert!(!keys.body.contains(&victim.key_id), "{}", keys.body);
    let status = call(
        "GET",
        &format!("/v1/usage/events/{}", victim.recorded_key),
        Some(&attacker_key),
        &[],
        None,
    );
    assert_eq!(status.status, 200, "{}", status.body);
    assert_eq!(
        status.json()["status"],
        "queued",
        "the attacker's own (never sent) key: {}",
        status.body
    );
    assert!(!status.body.contains("usage_id"), "{}", status.body);

    assert_eq!(victim.fingerprint(), before, "the victim's rows changed");
    assert_eq!(
        model_row(MODEL),
        model_before,
        "a refused call changed the model"
    );
    assert_eq!(
        users_fingerprint(&mut db(), &[&attacker.id]),
        attacker_before,
        "a refused attempt changed the attacker's rows"
    );

    // Usage naming the victim's hold is the attacker's own usage: recorded
    // for them, and the victim's hold is untouched.
    let mut spend = event(MODEL, 5, 5);
    spend["reservation_id"] = json!(victim.hold_id);
    let spent = record(&attacker.token, &unique("spend"), &spend);
    assert_eq!(spent.status, 201, "{}", spent.body);
    assert_eq!(
        spent.json()["reservation"]["outcome"],
        "not_found",
        "{}",
        spent.body
    );
    assert_eq!(victim.user.reservation_status(&victim.hold_id), "active");
    assert_eq!(victim.fingerprint(), before, "the victim's rows changed");
}

/// `POST /rest/v1/rpc/<function>` as PostgREST exposes it, with the anon key
/// and the attacker's own access token.
fn rpc(function: &str, token: &str, args: &Value) -> Answer {
    send(
        request(
            "POST",
            &format!("{}/rest/v1/rpc/{function}", env("CDS_SUPABASE_URL")),
        )
        .set("apikey", &env("CDS_ANON_KEY"))
        .set("authorization", &format!("Bearer {token}"))
        .set("content-profile", "platform")
        .set("content-type", "application/json"),
        Some(args.to_string().as_bytes()),
    )
}

#[test]
fn a_user_cannot_reach_another_users_data_through_the_rest_layer() {
    let victim = Victim::new();
    let attacker = User::with_tokens(1_000);
    let before = victim.fingerprint();
    let attacker_before = users_fingerprint(&mut db(), &[&attacker.id]);
    let model_before = model_row(MODEL);
    let (v, a) = (victim.user.id.as_str(), attacker.id.as_str());
    let event = json!({"model": MODEL, "prompt_tokens": 1, "completion_tokens": 1, "idempotency_key": unique("q")});
    let message = json!([{"user_id": v, "events": [event], "accepted_at_ms": 0}]);

    // (function, arguments, HTTP status, PostgREST code, our code in `hint`)
    #[rustfmt::skip]
    let cases: Vec<(&str, Value, u16, &str, &str)> = vec![
        ("record_token_usage", json!({"p_model": MODEL, "p_prompt_tokens": 1, "p_completion_tokens": 1,
            "p_idempotency_key": unique("r"), "p_user_id": v}), 403, "PT403", "forbidden"),
        ("record_token_usage_batch", json!({"p_events": [event], "p_user_id": v}), 403, "PT403", "forbidden"),
        ("reserve_tokens", json!({"p_tokens": 10, "p_user_id": v}), 403, "PT403", "forbidden"),
        ("release_token_reservation", json!({"p_reservation_id": victim.hold_id, "p_user_id": v}), 403, "PT403", "forbidden"),
        ("get_usage_overview", json!({"p_user_id": v}), 403, "PT403", "forbidden"),
        ("usage_event_status", json!({"p_idempotency_key": victim.recorded_key, "p_user_id": v}), 403, "PT403", "forbidden"),
        ("grant_user_tokens", json!({"p_user_id": a, "p_amount": 1000, "p_reason": "self"}), 403, "PT403", "forbidden"),
        ("grant_user_tokens", json!({"p_user_id": v, "p_amount": 1000, "p_reason": "gift"}), 403, "PT403", "forbidden"),
        ("revoke_api_key", json!({"p_key_id": victim.key_id}), 404, "PT404", "unknown_api_key"),
        ("release_token_reservation", json!({"p_reservation_id": victim.hold_id}), 404, "PT404", "unknown_reservation"),
        ("metrics_snapshot", json!({}), 403, "PT403", "forbidden"),
        ("upsert_model", json!({"p_name": MODEL, "p_provider": "openai", "p_context_size": 128000,
            "p_input_cost_per_1k_tokens": 0, "p_output_cost_per_1k_tokens": 0}), 403, "PT403", "forbidden"),
        ("deactivate_model", json!({"p_name": MODEL}), 403, "PT403", "forbidden"),
        // Functions only the service role may execute: PostgreSQL's
        // permission error, which PostgREST answers 403 to a signed-in role.
        ("mirror_auth_user", json!({"p_id": a, "p_role": "admin"}), 403, "42501", ""),
        // Key material of the caller's choosing (a guessable secret).
        ("create_api_key", json!({"p_name": "chosen", "p_prefix": "cds_chosen010000000000000000",
            "p_secret_hash": "a".repeat(64)}), 403, "42501", ""),
        ("create_api_key", json!({"p_name": "chosen", "p_prefix": "cds_chosen020000000000000000",
            "p_secret_hash": "b".repeat(64), "p_user_id": v}), 403, "42501", ""),
        ("resolve_api_key", json!({"p_prefix": "cds_000000000000000000000000", "p_secret_hash": "00"}), 403, "42501", ""),
        ("record_queued_usage", json!({"p_messages": message}), 403, "42501", ""),
        ("record_usage_dead_letters", json!({"p_messages": message, "p_reason": "x"}), 403, "42501", ""),
        ("refresh_daily_token_summary", json!({}), 403, "42501", ""),
        ("release_expired_reservations", json!({}), 403, "42501", ""),
    ];
    let mut wrong = Vec::new();
    for (function, args, status, code, hint) in &cases {
        let answer = rpc(function, &attacker.token, args);
        let body = answer.json();
        let got = (
            answer.status,
            body["code"].as_str().unwrap_or(""),
            body["hint"].as_str().unwrap_or(""),
        );
        if got != (*status, *code, *hint) {
            wrong.push(format!(
                "{function}: expected {status} {code} {hint}, got {} {}",
                answer.status, answer.body
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // Listing keys lists one's own.
    let keys = rpc("list_api_keys", &attacker.token, &json!({}));
    assert_eq!(keys.status, 200, "{}", keys.body);
    assert!(!keys.body.contains(&victim.key_id), "{}", keys.body);

    assert_eq!(victim.user.reservation_status(&victim.hold_id), "active");
    assert_eq!(victim.fingerprint(), before, "the victim's rows changed");
    assert_eq!(
        model_row(MODEL),
        model_before,
        "a refused call changed the model"
    );
    assert_eq!(
        users_fingerprint(&mut db(), &[&attacker.id]),
        attacker_before,
        "a refused call changed the attacker's rows"
    );
}

/// Everything the stack logged so far: the Worker (wrangler and workerd),
/// the REST layer and PostgreSQL, as captured under `CDS_LOG_DIR`.
fn captured_logs() -> String {
    let dir = env("CDS_LOG_DIR");
    let mut all = String::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir}: {e}")) {
        let path = entry.expect("a log entry").path();
        if path.extension().is_some_and(|x| x == "log") {
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            all.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    assert!(
        all.contains("/v1/"),
        "the Worker's log has no request in it"
    );
    all
}

/// Where a credential-shaped string appears in `text`: our API keys
/// (`cds_<24 hex>_<secret>`) and JWTs (`eyJ….eyJ….`).
fn credential_shapes(text: &str) -> Vec<String> {
    const ID: usize = 24;
    let mut found = Vec::new();
    for (at, _) in text.match_indices("cds_") {
        let rest = &text[at + 4..];
        let id: String = rest.chars().take(ID + 1).collect();
        let secret_len = rest
            .get(ID + 1..)
            .map(|s| {
                s.chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                    .count()
            })
            .unwrap_or(0);
        if id.len() == ID + 1
            && id[..ID].chars().all(|c| c.is_ascii_hexdigit())
            && id.ends_with('_')
            && secret_len >= 32
        {
            // The prefix and a few characters of the secret, no more.
            found.push(text[at..(at + 4 + ID + 1 + 8).min(text.len())].to_string() + "…");
        }
    }
    for (at, _) in text.match_indices("eyJ") {
        let token: String = text[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .collect();
        if token.split('.').count() >= 3
            && token
                .split('.')
                .nth(1)
                .is_some_and(|p| p.starts_with("eyJ"))
        {
            found.push(token.chars().take(24).collect::<String>() + "…");
        }
    }
    found
}

#[test]
fn credential_shapes_are_recognised() {
    let key = "cds_0123abcd0123abcd0123abcd_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
    assert_eq!(credential_shapes(&format!("x {key} y")).len(), 1);
    assert_eq!(credential_shapes(&format!("Bearer {jwt}\n")).len(), 1);
    assert!(
        credential_shapes("cds_0123abcd0123abcd0123abcd (the prefix) and eyJ alone").is_empty()
    );
}

#[test]
fn secrets_and_credentials_never_appear_in_logs_or_telemetry() {
    // Traffic that puts credentials in every place a log line could pick
    // them up: accepted and refused API keys, accepted, expired and tampered
    // JWTs, webhooks with their secrets, and requests that fail in the REST
    // layer and in the database.
    let user = User::with_tokens(10_000);
    let key = user.api_key(&["usage:write"]);
    let read_only = user.api_key(&["usage:read"]);
    let revoked = user.api_key(&["usage:write"]);
    let revoked_id = text(
        "select id::text from platform.api_keys where user_id = $1::text::uuid order by created_at desc limit 1",
        &[&user.id],
    )
    .expect("a key id");
    assert_eq!(
        call(
            "DELETE",
            &format!("/v1/api-keys/{revoked_id}"),
            Some(&user.token),
            &[],
            None
        )
        .status,
        200
    );
    let expired = e2e_tests::tokens::hs256(&e2e_tests::tokens::with(
        e2e_tests::tokens::user_claims(&user.id, &user.email),
        json!({"exp": e2e_tests::now() - 600}),
    ));
    let tampered = format!("{}x", &user.token[..user.token.len() - 2]);
    let mut sent = vec![
        user.token.clone(),
        key.clone(),
        read_only.clone(),
        revoked.clone(),
        expired.clone(),
    ];
    for bearer in [&user.token, &key, &read_only, &revoked, &expired, &tampered] {
        record(bearer, &unique("log"), &event(MODEL, 1, 1));
        record(bearer, &unique("log"), &event("no-such-model", 1, 1));
        call(
            "GET",
            "/v1/usage/overview?from=2026-13-01",
            Some(bearer),
            &[],
            None,
        );
        call("GET", "/v1/me", Some(bearer), &[], None);
    }
    // The REST layer directly, with a token it must refuse.
    rpc("get_usage_overview", &expired, &json!({}));
    rpc(
        "grant_user_tokens",
        &user.token,
        &json!({"p_user_id": user.id, "p_amount": 1, "p_reason": "x"}),
    );
    // The Worker's own secrets, presented wrongly and rightly.
    let metrics_token = env("CDS_METRICS_TOKEN");
    call("GET", "/v1/metrics", Some(&metrics_token), &[], None);
    call(
        "GET",
        "/v1/metrics",
        Some(&format!("{metrics_token}x")),
        &[],
        None,
    );
    // Effects written after the response (telemetry) land within a moment.
    std::thread::sleep(Duration::from_millis(1500));

    for name in ["DB_WEBHOOK_SECRET", "AUTH_HOOK_SECRET"] {
        sent.push(worker_secret(name));
    }
    sent.push(metrics_token);
    sent.push(env("CDS_JWT_SECRET"));
    sent.push(env("CDS_SERVICE_ROLE_KEY"));
    // The secret part of each API key, on its own as well.
    for k in [&key, &read_only, &revoked] {
        // After `cds_`, the 24-character id and `_`.
        sent.push(k[4 + 24 + 1..].to_string());
    }

    let logs = captured_logs();
    let telemetry = text(
        "select coalesce(string_agg(t.row, E'\\n'), '') from ( \
           select to_jsonb(m)::text as row from telemetry.execution_metrics m \
           union all select to_jsonb(t)::text from telemetry.execution_totals t \
           union all select to_jsonb(q)::text from telemetry.queue_batches q \
           union all select to_jsonb(u)::text from telemetry.user_mirrors u) t",
        &[],
    )
    .unwrap_or_default();
    for (place, text) in [("the logs", &logs), ("telemetry", &telemetry)] {
        let leaked: Vec<&String> = sent.iter().filter(|s| text.contains(s.as_str())).collect();
        assert!(
            leaked.is_empty(),
            "{} secrets appear in {place}",
            leaked.len()
        );
        // Any credential from any test run so far, not only these.
        assert_eq!(
            credential_shapes(text),
            Vec::<String>::new(),
            "credentials in {place}"
        );
    }
}
