//! API keys end to end: a signed-in user creates, lists and revokes `cds_…`
//! keys at `/v1/api-keys`; an LLM server presents one on `GET /v1/me`.
//! Every test signs up users of its own (through the database webhook), so
//! none depends on another's keys or on the per-user key limit.

use e2e_tests::users::TestUser;
use e2e_tests::{
    assert_unauthorized, db, eventually, me, request, send, send_json_as, worker_url, Answer,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::time::Duration;

const KEYS: &str = "/v1/api-keys";

fn create(token: &str, body: Value) -> Answer {
    send_json_as("POST", KEYS, token, &body)
}

fn list(token: &str) -> Answer {
    send(
        request("GET", &worker_url(KEYS)).set("authorization", &format!("Bearer {token}")),
        None,
    )
}

fn revoke(token: &str, id: &str) -> Answer {
    send(
        request("DELETE", &worker_url(&format!("{KEYS}/{id}")))
            .set("authorization", &format!("Bearer {token}")),
        None,
    )
}

/// A key of `user`'s; returns `(id, full key)`.
fn new_key(user: &TestUser, body: Value) -> (String, String) {
    let answer = create(&user.token, body);
    assert_eq!(answer.status, 201, "{}", answer.body);
    let created = answer.json();
    (
        created["id"].as_str().expect("id").to_string(),
        created["key"].as_str().expect("key").to_string(),
    )
}

/// `cds_<24 lowercase hex>_<43 base64url>`: a 96-bit id, a 256-bit secret.
fn is_well_formed_key(key: &str) -> bool {
    let Some(rest) = key.strip_prefix("cds_") else {
        return false;
    };
    let (id, secret) = rest.split_at(24.min(rest.len()));
    id.len() == 24
        && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && secret.len() == 44
        && secret.starts_with('_')
        && secret[1..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `cds_` and the 24-character id.
const PREFIX_LEN: usize = 4 + 24;

fn secret_of(key: &str) -> &str {
    &key[PREFIX_LEN + 1..]
}

fn hex_sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn assert_me_is_key(answer: &Answer, user: &TestUser, key_id: &str) {
    assert_eq!(answer.status, 200, "{}", answer.body);
    let body = answer.json();
    assert_eq!(body["via"], "api_key", "{body}");
    assert_eq!(body["user_id"], user.id.as_str(), "{body}");
    assert_eq!(body["api_key_id"], key_id, "{body}");
}

#[test]
fn a_created_key_is_shown_once_and_identifies_its_owner_on_me() {
    let user = TestUser::sign_up();
    let answer = create(&user.token, json!({"name": "llm server"}));
    assert_eq!(answer.status, 201, "{}", answer.body);
    let created = answer.json();
    let key = created["key"].as_str().expect("the key is shown");
    assert!(is_well_formed_key(key), "{key}");
    assert_eq!(created["prefix"], &key[..PREFIX_LEN], "{created}");
    assert_eq!(created["name"], "llm server");
    assert_eq!(created["scopes"], json!(["usage:write"]));
    assert!(created["expires_at"].is_null(), "{created}");
    for field in ["secret_hash", "hash", "secret"] {
        assert!(created.get(field).is_none(), "{field} in {created}");
    }
    let key_id = created["id"].as_str().unwrap();

    let answer = me(key);
    assert_me_is_key(&answer, &user, key_id);
    assert_eq!(answer.json()["scopes"], json!(["usage:write"]));

    // The database holds the SHA-256 of the secret, never the secret.
    let mut db = db::connect();
    let row = db::api_key_row(&mut db, key_id);
    assert_eq!(row["secret_hash"], hex_sha256(secret_of(key)), "{row}");
    assert!(!row.to_string().contains(secret_of(key)), "{row}");
}

#[test]
fn a_key_keeps_the_scopes_it_was_created_with() {
    let user = TestUser::sign_up();
    let (id, key) = new_key(
        &user,
        json!({"name": "reader", "scopes": ["usage:read", "usage:write"]}),
    );
    let answer = me(&key);
    assert_me_is_key(&answer, &user, &id);
    assert_eq!(
        answer.json()["scopes"],
        json!(["usage:read", "usage:write"])
    );
}

#[test]
fn listed_keys_carry_neither_secret_nor_hash() {
    let user = TestUser::sign_up();
    let (first_id, first_key) = new_key(&user, json!({"name": "first"}));
    let (second_id, second_key) = new_key(&user, json!({"name": "second"}));
    let answer = list(&user.token);
    assert_eq!(answer.status, 200, "{}", answer.body);
    let keys = answer.json()["api_keys"]
        .as_array()
        .expect("a list")
        .clone();
    let ids: Vec<&str> = keys.iter().filter_map(|k| k["id"].as_str()).collect();
    assert_eq!(ids.len(), 2, "{keys:?}");
    assert!(ids.contains(&first_id.as_str()) && ids.contains(&second_id.as_str()));
    for key in &keys {
        for field in ["key", "secret_hash", "hash", "secret"] {
            assert!(key.get(field).is_none(), "{field} in {key}");
        }
        assert!(key["prefix"]
            .as_str()
            .is_some_and(|p| p.starts_with("cds_")));
    }
    for secret in [secret_of(&first_key), secret_of(&second_key)] {
        assert!(!answer.body.contains(secret), "a secret in {}", answer.body);
    }
    let mut db = db::connect();
    let hash = db::api_key_row(&mut db, &first_id)["secret_hash"].clone();
    assert!(!answer.body.contains(hash.as_str().unwrap()));
}

#[test]
fn revoked_api_key_is_refused_with_api_key_revoked() {
    let user = TestUser::sign_up();
    let (id, key) = new_key(&user, json!({"name": "to revoke"}));
    assert_me_is_key(&me(&key), &user, &id);

    let answer = revoke(&user.token, &id);
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["id"], id.as_str());
    assert!(answer.json()["revoked_at"].is_string(), "{}", answer.body);
    let mut db = db::connect();
    assert_eq!(db::api_key_rows(&mut db, &id), (1, 1));

    assert_eq!(me(&key).refusal(), (401, "api_key_revoked".into()));
    // Revoking again answers the first revocation.
    let again = revoke(&user.token, &id);
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()["revoked_at"], answer.json()["revoked_at"]);
}

#[test]
fn expired_api_key_is_refused_with_api_key_expired() {
    let user = TestUser::sign_up();
    let mut db = db::connect();
    let expires_at = db::timestamp_in(&mut db, 3.0);
    let (id, key) = new_key(
        &user,
        json!({"name": "short-lived", "expires_at": expires_at}),
    );
    assert_me_is_key(&me(&key), &user, &id);
    let answer = eventually(Duration::from_secs(8), || {
        let answer = me(&key);
        match answer.status {
            200 => Err(format!("still accepted; expires at {expires_at}")),
            _ => Ok(answer),
        }
    });
    assert_eq!(
        answer.refusal(),
        (401, "api_key_expired".into()),
        "{}",
        answer.body
    );
}

#[test]
fn malformed_and_unknown_api_keys_are_refused() {
    let user = TestUser::sign_up();
    let (_, real) = new_key(&user, json!({"name": "real"}));
    let secret = secret_of(&real);
    let mut wrong_secret = real.clone();
    let last = wrong_secret.pop().unwrap();
    wrong_secret.push(if last == 'A' { 'B' } else { 'A' });
    let cases = [
        ("cds_zz", "cds_zz".to_string(), "malformed_api_key"),
        (
            "uppercase id",
            format!("cds_ABCDEF0123456789ABCDEF01_{secret}"),
            "malformed_api_key",
        ),
        (
            "secret too short",
            format!("{}_{}", &real[..PREFIX_LEN], &secret[..20]),
            "malformed_api_key",
        ),
        (
            "secret with a forbidden character",
            format!(
                "{}_{}",
                &real[..PREFIX_LEN],
                secret.replacen(|_| true, "!", 1)
            ),
            "malformed_api_key",
        ),
        (
            "well formed, unknown",
            format!("cds_0123abcd0123abcd0123abcd_{}", "A".repeat(43)),
            "invalid_api_key",
        ),
        ("real prefix, wrong secret", wrong_secret, "invalid_api_key"),
        (
            "real secret, another prefix",
            format!("cds_0123abcd0123abcd0123abcd_{secret}"),
            "invalid_api_key",
        ),
    ];
    let answers: Vec<_> = cases
        .into_iter()
        .map(|(case, key, code)| (case, me(&key), code))
        .collect();
    assert_unauthorized(&answers);
}

#[test]
fn an_api_key_cannot_manage_keys() {
    let user = TestUser::sign_up();
    let (id, key) = new_key(&user, json!({"name": "llm server"}));
    let answers = [
        ("create", create(&key, json!({"name": "minted by a key"}))),
        ("list", list(&key)),
        ("revoke", revoke(&key, &id)),
    ];
    for (case, answer) in answers {
        assert_eq!(
            answer.refusal(),
            (403, "user_token_required".into()),
            "{case}: {}",
            answer.body
        );
    }
    let mut db = db::connect();
    assert_eq!(db::api_keys_of(&mut db, &user.id), 1);
    assert_eq!(db::api_key_rows(&mut db, &id), (1, 0));
}

#[test]
fn another_users_key_cannot_be_revoked() {
    let owner = TestUser::sign_up();
    let stranger = TestUser::sign_up();
    let (id, key) = new_key(&owner, json!({"name": "owner's"}));
    let answer = revoke(&stranger.token, &id);
    assert_eq!(
        answer.refusal(),
        (404, "unknown_api_key".into()),
        "{}",
        answer.body
    );
    let mut db = db::connect();
    assert_eq!(db::api_key_rows(&mut db, &id), (1, 0));
    assert_me_is_key(&me(&key), &owner, &id);
    // Nor does the stranger see it listed.
    let listed = list(&stranger.token);
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(listed.json()["api_keys"], json!([]));
    // An id that is not a UUID names no key at all.
    let answer = revoke(&owner.token, "not-a-uuid");
    assert_eq!(
        answer.refusal(),
        (404, "not_found".into()),
        "{}",
        answer.body
    );
}

#[test]
fn key_management_needs_an_access_token() {
    let answer = send(
        request("POST", &worker_url(KEYS)).set("content-type", "application/json"),
        Some(br#"{"name":"anonymous"}"#),
    );
    assert_eq!(
        answer.refusal(),
        (401, "missing_token".into()),
        "{}",
        answer.body
    );
    let answer = send(request("GET", &worker_url(KEYS)), None);
    assert_eq!(
        answer.refusal(),
        (401, "missing_token".into()),
        "{}",
        answer.body
    );
}

#[test]
fn invalid_create_requests_are_refused_and_store_nothing() {
    let user = TestUser::sign_up();
    let mut db = db::connect();
    let past = db::timestamp_in(&mut db, -60.0);
    let json_body = |body: &[u8]| {
        send(
            request("POST", &worker_url(KEYS))
                .set("authorization", &format!("Bearer {}", user.token))
                .set("content-type", "application/json"),
            Some(body),
        )
    };
    let cases = [
        (
            "invalid JSON",
            json_body(br#"{"name": "#),
            400,
            "invalid_json",
        ),
        (
            "wrong content type",
            send(
                request("POST", &worker_url(KEYS))
                    .set("authorization", &format!("Bearer {}", user.token))
                    .set("content-type", "text/plain"),
                Some(br#"{"name": "plain"}"#),
            ),
            415,
            "unsupported_media_type",
        ),
        (
            "unknown field",
            create(&user.token, json!({"name": "x", "admin": true})),
            400,
            "invalid_json",
        ),
        (
            "name missing",
            create(&user.token, json!({"scopes": ["usage:read"]})),
            400,
            "invalid_json",
        ),
        (
            "unknown scope",
            create(&user.token, json!({"name": "x", "scopes": ["admin"]})),
            422,
            "invalid_scopes",
        ),
        (
            "no scopes",
            create(&user.token, json!({"name": "x", "scopes": []})),
            422,
            "invalid_scopes",
        ),
        (
            "blank name",
            create(&user.token, json!({"name": "  "})),
            422,
            "invalid_name",
        ),
        (
            "expiry in the past",
            create(&user.token, json!({"name": "x", "expires_at": past})),
            422,
            "invalid_expiry",
        ),
    ];
    for (case, answer, status, code) in cases {
        assert_eq!(
            answer.refusal(),
            (status, code.to_string()),
            "{case}: {}",
            answer.body
        );
    }
    assert_eq!(db::api_keys_of(&mut db, &user.id), 0);
}
