//! The two Supabase Auth webhooks the edge receives: the Database Webhook on
//! `auth.users` (a shared-secret header) and the "before user created" Auth
//! hook (Standard Webhooks signatures, computed here with `hmac` and `sha2`,
//! independently of `shared/`).

use crate::{request, send, worker_secret, worker_url, Answer};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

pub const DB_USER_INSERT: &str = "/auth/hooks/db-user-insert";
pub const BEFORE_USER_CREATED: &str = "/auth/hooks/before-user-created";

/// The Database Webhook's body for an insert into `auth.users`.
pub fn db_insert_event(record: Value) -> Value {
    json!({
        "type": "INSERT",
        "table": "users",
        "schema": "auth",
        "record": record,
        "old_record": null,
    })
}

/// `POST /auth/hooks/db-user-insert` with `x-webhook-secret` (or none).
pub fn deliver_db_event(secret: Option<&str>, body: &[u8]) -> Answer {
    let req = request("POST", &worker_url(DB_USER_INSERT)).set("content-type", "application/json");
    let req = match secret {
        Some(secret) => req.set("x-webhook-secret", secret),
        None => req,
    };
    send(req, Some(body))
}

/// The Database Webhook's shared secret, as the Worker holds it.
pub fn db_webhook_secret() -> String {
    worker_secret("DB_WEBHOOK_SECRET")
}

/// The Auth hook's secret, `v1,whsec_<base64>`.
pub fn auth_hook_secret() -> String {
    worker_secret("AUTH_HOOK_SECRET")
}

/// The HMAC key of a `v1,whsec_<base64>` secret.
pub fn hmac_key(secret: &str) -> Vec<u8> {
    let encoded = secret
        .trim_start_matches("v1,")
        .strip_prefix("whsec_")
        .expect("a whsec_ secret");
    STANDARD.decode(encoded).expect("base64 after whsec_")
}

/// `v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`.
pub fn sign_v1(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The hook's payload for a would-be user with this email.
pub fn before_user_created_payload(user_id: &str, email: &str) -> Value {
    json!({
        "metadata": {
            "uuid": crate::random_uuid(),
            "time": "2026-11-25T17:00:00Z",
            "name": "before-user-created",
            "ip_address": "203.0.113.7",
        },
        "user": {
            "id": user_id,
            "aud": "authenticated",
            "role": "",
            "email": email,
            "phone": "",
            "app_metadata": {"provider": "email", "providers": ["email"]},
            "user_metadata": {},
            "identities": [],
            "created_at": "2026-11-25T17:00:00Z",
            "updated_at": "2026-11-25T17:00:00Z",
            "is_anonymous": false,
        },
    })
}

/// `POST /auth/hooks/before-user-created` with exactly these headers.
pub fn deliver_auth_hook(headers: &[(&str, &str)], body: &[u8]) -> Answer {
    let mut req =
        request("POST", &worker_url(BEFORE_USER_CREATED)).set("content-type", "application/json");
    for (name, value) in headers {
        req = req.set(name, value);
    }
    send(req, Some(body))
}
