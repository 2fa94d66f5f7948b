//! The two Supabase Auth webhooks, end to end.
//!
//! - `POST /auth/hooks/db-user-insert`: the Database Webhook on `auth.users`,
//!   authenticated by a shared-secret header; mirrors the new user into
//!   `platform.users`, idempotently.
//! - `POST /auth/hooks/before-user-created`: Supabase Auth's HTTP hook,
//!   signed per Standard Webhooks; decides a sign-up and writes nothing.
//!
//! Signatures are computed here with `hmac`/`sha2` and, in one case, by the
//! reference npm package `standardwebhooks`, never with `shared/`.

use e2e_tests::db;
use e2e_tests::reference::standard_webhooks_signature;
use e2e_tests::webhooks::{
    auth_hook_secret, before_user_created_payload, db_insert_event, db_webhook_secret,
    deliver_auth_hook, deliver_db_event, hmac_key, sign_v1,
};
use e2e_tests::{assert_unauthorized, now, random_uuid, Answer};
use serde_json::{json, Value};
use std::sync::{Arc, Barrier};

// The database webhook.

/// A user Supabase Auth has just written to `auth.users`, not yet mirrored;
/// returns `(id, email, the webhook's record)`.
fn new_auth_user(username: Option<&str>) -> (String, String, Value) {
    let id = random_uuid();
    let email = format!("hook-{id}@example.com");
    let mut db = db::connect();
    let record = db::insert_auth_user(&mut db, &id, &email, username);
    (id, email, serde_json::from_str(&record).unwrap())
}

fn deliver(body: &Value) -> Answer {
    deliver_db_event(Some(&db_webhook_secret()), body.to_string().as_bytes())
}

#[test]
fn a_new_user_is_mirrored_once() {
    // The username chosen at sign-up, sanitized; unique so no earlier run's
    // user holds it.
    let tag = &random_uuid()[..8];
    let (id, email, record) = new_auth_user(Some(&format!("Ada.Lovelace.{tag}")));
    let answer = deliver(&db_insert_event(record));
    assert_eq!(answer.status, 200, "{}", answer.body);
    let body = answer.json();
    assert_eq!(body["id"], id.as_str(), "{body}");
    assert_eq!(body["email"], email.as_str(), "{body}");
    assert_eq!(body["username"], format!("ada_lovelace_{tag}"), "{body}");
    assert_eq!(body["role"], "developer", "{body}");
    assert_eq!(body["created"], true, "{body}");
    let mut db = db::connect();
    assert_eq!(db::platform_users_with_id(&mut db, &id), 1);
}

#[test]
fn a_redelivered_insert_changes_nothing() {
    let (id, _, record) = new_auth_user(None);
    let event = db_insert_event(record);
    let first = deliver(&event);
    assert_eq!(first.status, 200, "{}", first.body);
    let mut db = db::connect();
    let before = db::platform_user_snapshot(&mut db, &id);

    let again = deliver(&event);
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()["created"], false, "{}", again.body);
    assert_eq!(again.json()["username"], first.json()["username"]);
    assert_eq!(db::platform_users_with_id(&mut db, &id), 1);
    assert_eq!(db::platform_user_snapshot(&mut db, &id), before);
}

#[test]
fn concurrent_duplicate_deliveries_create_one_row() {
    let (id, _, record) = new_auth_user(None);
    let body = db_insert_event(record).to_string();
    let secret = db_webhook_secret();
    let start = Arc::new(Barrier::new(5));
    let deliveries: Vec<_> = (0..5)
        .map(|_| {
            let (body, secret, start) = (body.clone(), secret.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                deliver_db_event(Some(&secret), body.as_bytes())
            })
        })
        .collect();
    let answers: Vec<Answer> = deliveries.into_iter().map(|t| t.join().unwrap()).collect();
    for answer in &answers {
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    let created = answers
        .iter()
        .filter(|a| a.json()["created"] == true)
        .count();
    assert_eq!(created, 1, "exactly one delivery creates the row");
    let mut db = db::connect();
    assert_eq!(db::platform_users_with_id(&mut db, &id), 1);
}

#[test]
fn refused_deliveries_mirror_nothing() {
    let secret = db_webhook_secret();
    // Each case builds its request around a fresh auth.users row.
    type Case = (&'static str, fn(Value, &str) -> Answer, u16, &'static str);
    let cases: [Case; 9] = [
        (
            "wrong secret",
            |record, _| {
                deliver_db_event(
                    Some("not-the-secret"),
                    db_insert_event(record).to_string().as_bytes(),
                )
            },
            401,
            "invalid_webhook_secret",
        ),
        (
            "secret missing",
            |record, _| deliver_db_event(None, db_insert_event(record).to_string().as_bytes()),
            401,
            "missing_webhook_secret",
        ),
        (
            "the right secret with a character more",
            |record, secret| {
                deliver_db_event(
                    Some(&format!("{secret}0")),
                    db_insert_event(record).to_string().as_bytes(),
                )
            },
            401,
            "invalid_webhook_secret",
        ),
        (
            "an UPDATE",
            |record, secret| {
                let mut event = db_insert_event(record.clone());
                event["type"] = json!("UPDATE");
                event["old_record"] = record;
                deliver_db_event(Some(secret), event.to_string().as_bytes())
            },
            422,
            "unsupported_webhook_event",
        ),
        (
            "a DELETE",
            |record, secret| {
                let mut event = db_insert_event(Value::Null);
                event["type"] = json!("DELETE");
                event["old_record"] = record;
                deliver_db_event(Some(secret), event.to_string().as_bytes())
            },
            422,
            "unsupported_webhook_event",
        ),
        (
            "another table",
            |record, secret| {
                let mut event = db_insert_event(record);
                event["table"] = json!("identities");
                deliver_db_event(Some(secret), event.to_string().as_bytes())
            },
            422,
            "unsupported_webhook_event",
        ),
        (
            "another schema",
            |record, secret| {
                let mut event = db_insert_event(record);
                event["schema"] = json!("public");
                deliver_db_event(Some(secret), event.to_string().as_bytes())
            },
            422,
            "unsupported_webhook_event",
        ),
        (
            "malformed JSON",
            |record, secret| {
                let text = db_insert_event(record).to_string();
                deliver_db_event(Some(secret), &text.as_bytes()[..text.len() - 1])
            },
            400,
            "invalid_json",
        ),
        (
            "a record without an id",
            |mut record, secret| {
                record.as_object_mut().unwrap().remove("id");
                deliver_db_event(Some(secret), db_insert_event(record).to_string().as_bytes())
            },
            422,
            "invalid_webhook_record",
        ),
    ];
    let mut db = db::connect();
    for (case, send, status, code) in cases {
        let (id, _, record) = new_auth_user(None);
        let answer = send(record, &secret);
        assert_eq!(
            answer.refusal(),
            (status, code.to_string()),
            "{case}: {}",
            answer.body
        );
        assert_eq!(db::platform_users_with_id(&mut db, &id), 0, "{case}");
    }
}

#[test]
fn an_insert_for_a_user_supabase_auth_does_not_know_is_refused() {
    // platform.users references auth.users: no mirror without the real user.
    let id = random_uuid();
    let record = json!({"id": id, "email": format!("ghost-{id}@example.com")});
    let answer = deliver(&db_insert_event(record));
    assert_eq!(
        answer.refusal(),
        (422, "unknown_auth_user".into()),
        "{}",
        answer.body
    );
    let mut db = db::connect();
    assert_eq!(db::platform_users_with_id(&mut db, &id), 0);
}

// The "before user created" Auth hook.

struct Signed {
    id: String,
    timestamp: String,
    body: String,
}

/// A hook call for a would-be user with `email`, timestamped `at`.
fn hook_call(email: &str, at: i64) -> (String, Signed) {
    let user_id = random_uuid();
    let body = before_user_created_payload(&user_id, email).to_string();
    let signed = Signed {
        id: format!("msg_{}", random_uuid().replace('-', "")),
        timestamp: at.to_string(),
        body,
    };
    (user_id, signed)
}

fn our_signature(signed: &Signed) -> String {
    sign_v1(
        &hmac_key(&auth_hook_secret()),
        &signed.id,
        &signed.timestamp,
        signed.body.as_bytes(),
    )
}

fn deliver_signed(signed: &Signed, signature: &str) -> Answer {
    deliver_auth_hook(
        &[
            ("webhook-id", &signed.id),
            ("webhook-timestamp", &signed.timestamp),
            ("webhook-signature", signature),
        ],
        signed.body.as_bytes(),
    )
}

/// Neither the would-be user's id nor their email is in `auth.users` or
/// `platform.users`: the hook decides, it never writes.
fn assert_nothing_written(user_id: &str, email: &str, case: &str) {
    let mut db = db::connect();
    assert_eq!(db::platform_users_with_id(&mut db, user_id), 0, "{case}");
    assert_eq!(db::auth_users_with_id(&mut db, user_id), 0, "{case}");
    assert_eq!(db::users_with_email(&mut db, email), 0, "{case}");
}

fn assert_allowed(answer: &Answer, case: &str) {
    assert_eq!(answer.status, 200, "{case}: {}", answer.body);
    assert_eq!(answer.json(), json!({}), "{case}");
}

#[test]
fn a_signup_signed_by_the_reference_library_is_allowed() {
    let email = format!("x-{}@example.com", random_uuid());
    let (user_id, signed) = hook_call(&email, now());
    let signature = standard_webhooks_signature(
        &auth_hook_secret(),
        &signed.id,
        now_from(&signed),
        &signed.body,
    );
    // Both implementations agree on the bytes, not just on the verdict.
    assert_eq!(signature, our_signature(&signed));
    assert_allowed(&deliver_signed(&signed, &signature), "standardwebhooks");
    assert_nothing_written(&user_id, &email, "allowed");
}

fn now_from(signed: &Signed) -> i64 {
    signed.timestamp.parse().unwrap()
}

#[test]
fn a_signup_from_a_blocked_domain_is_refused_in_a_200_body() {
    // 200 on purpose: Supabase Auth reads a hook's body only on 200/202
    // (supabase/auth#2235), so the refusal travels in the body.
    for email in [
        format!("x-{}@mailinator.com", random_uuid()),
        format!("x-{}@mail.MAILINATOR.com", random_uuid()),
    ] {
        let (user_id, signed) = hook_call(&email, now());
        let answer = deliver_signed(&signed, &our_signature(&signed));
        assert_eq!(answer.status, 200, "{email}: {}", answer.body);
        let body = answer.json();
        assert_eq!(body["error"]["http_code"], 403, "{body}");
        assert!(body["error"]["message"].is_string(), "{body}");
        assert_nothing_written(&user_id, &email, &email);
    }
}

#[test]
fn a_signature_list_with_one_valid_entry_is_accepted() {
    let email = format!("x-{}@example.com", random_uuid());
    let (user_id, signed) = hook_call(&email, now());
    let valid = our_signature(&signed);
    let bogus = sign_v1(
        b"some-other-key-of-32-bytes-long!",
        &signed.id,
        &signed.timestamp,
        signed.body.as_bytes(),
    );
    let cases = [
        ("bogus then valid", format!("{bogus} {valid}")),
        ("valid then bogus", format!("{valid} {bogus}")),
        ("a v2 entry then valid", format!("v2,abc {valid}")),
        // Extra spaces: the verifier trims the header and skips empty
        // entries, so these still match.
        ("two spaces between entries", format!("{bogus}  {valid}")),
        ("leading and trailing spaces", format!("  {valid}  ")),
    ];
    for (case, header) in cases {
        assert_allowed(&deliver_signed(&signed, &header), case);
    }
    assert_nothing_written(&user_id, &email, "accepted lists");
}

#[test]
fn badly_signed_or_stale_hook_calls_are_refused() {
    let key = hmac_key(&auth_hook_secret());
    let mut other_key = key.clone();
    other_key[0] ^= 1;
    let email = format!("x-{}@example.com", random_uuid());
    let call = |at: i64| hook_call(&email, at).1;
    let without = |signed: &Signed, missing: &str| {
        let signature = our_signature(signed);
        let headers: Vec<(&str, &str)> = [
            ("webhook-id", signed.id.as_str()),
            ("webhook-timestamp", signed.timestamp.as_str()),
            ("webhook-signature", signature.as_str()),
        ]
        .into_iter()
        .filter(|(name, _)| *name != missing)
        .collect();
        deliver_auth_hook(&headers, signed.body.as_bytes())
    };
    let cases = [
        (
            "body tampered after signing",
            {
                let signed = call(now());
                let signature = our_signature(&signed);
                let tampered = Signed {
                    body: signed.body.replace("example.com", "exampl3.com"),
                    ..signed
                };
                deliver_signed(&tampered, &signature)
            },
            "invalid_webhook_signature",
        ),
        (
            "signed with another secret",
            {
                let signed = call(now());
                let signature = sign_v1(
                    &other_key,
                    &signed.id,
                    &signed.timestamp,
                    signed.body.as_bytes(),
                );
                deliver_signed(&signed, &signature)
            },
            "invalid_webhook_signature",
        ),
        (
            "signature of another message id",
            {
                let signed = call(now());
                let signature =
                    sign_v1(&key, "msg_other", &signed.timestamp, signed.body.as_bytes());
                deliver_signed(&signed, &signature)
            },
            "invalid_webhook_signature",
        ),
        (
            "only a v2 entry",
            {
                let signed = call(now());
                deliver_signed(&signed, &our_signature(&signed).replacen("v1,", "v2,", 1))
            },
            "invalid_webhook_signature",
        ),
        (
            "timestamp 600 s old, correctly signed",
            {
                let signed = call(now() - 600);
                deliver_signed(&signed, &our_signature(&signed))
            },
            "webhook_timestamp_too_old",
        ),
        (
            "timestamp 600 s ahead, correctly signed",
            {
                let signed = call(now() + 600);
                deliver_signed(&signed, &our_signature(&signed))
            },
            "webhook_timestamp_too_new",
        ),
        (
            "timestamp not a number",
            {
                let mut signed = call(now());
                signed.timestamp = "yesterday".into();
                deliver_signed(&signed, &our_signature(&signed))
            },
            "invalid_webhook_timestamp",
        ),
        (
            "no headers",
            deliver_auth_hook(&[], call(now()).body.as_bytes()),
            "missing_webhook_headers",
        ),
        (
            "no webhook-id",
            without(&call(now()), "webhook-id"),
            "missing_webhook_headers",
        ),
        (
            "no webhook-timestamp",
            without(&call(now()), "webhook-timestamp"),
            "missing_webhook_headers",
        ),
        (
            "no webhook-signature",
            without(&call(now()), "webhook-signature"),
            "missing_webhook_headers",
        ),
    ];
    assert_unauthorized(&cases);
    let mut db = db::connect();
    assert_eq!(db::users_with_email(&mut db, &email), 0);
}

#[test]
fn a_signed_call_for_another_hook_is_refused() {
    let email = format!("x-{}@example.com", random_uuid());
    let (user_id, mut signed) = hook_call(&email, now());
    let mut payload: Value = serde_json::from_str(&signed.body).unwrap();
    payload["metadata"]["name"] = json!("custom-access-token");
    signed.body = payload.to_string();
    let answer = deliver_signed(&signed, &our_signature(&signed));
    assert_eq!(
        answer.refusal(),
        (422, "unsupported_hook_event".into()),
        "{}",
        answer.body
    );
    assert_nothing_written(&user_id, &email, "another hook");
}
