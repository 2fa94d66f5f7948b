//! Helpers shared by the usage API's end-to-end tests: users of their own
//! (tests run in parallel, so each test signs up fresh users), requests with
//! a caller's credentials, and the database state a test checks afterwards,
//! read as the superuser through `CDS_PG_ADMIN_URL`.
//!
//! Included with `mod usage_common;`; each test binary uses a different part.
#![allow(dead_code)]

use e2e_tests::tokens;
pub use e2e_tests::{env, request, send, worker_url, Answer};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The frontend origin `wrangler.toml` allows (`ALLOWED_ORIGINS`).
pub const ALLOWED_ORIGIN: &str = "http://localhost:3000";

/// A model of the catalogue (the migration 20261201001900_model_catalogue.sql)
/// and its prices per 1000 input (prompt) and output (completion) tokens.
pub const MODEL: &str = "gpt-4o-mini";
pub const MODEL_INPUT_COST_PER_1K: f64 = 0.0006;
pub const MODEL_OUTPUT_COST_PER_1K: f64 = 0.0006;
pub const OTHER_MODEL: &str = "claude-3-5-haiku";

/// A superuser connection to the stack's database.
pub fn db() -> postgres::Client {
    postgres::Client::connect(&env("CDS_PG_ADMIN_URL"), postgres::NoTls)
        .unwrap_or_else(|e| panic!("connecting to CDS_PG_ADMIN_URL: {e}"))
}

/// One integer from a query, e.g. a count.
pub fn scalar(sql: &str, params: &[&(dyn postgres::types::ToSql + Sync)]) -> i64 {
    db().query_one(sql, params)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

/// One text value from a query (null as `None`).
pub fn text(sql: &str, params: &[&(dyn postgres::types::ToSql + Sync)]) -> Option<String> {
    db().query_one(sql, params)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

/// A catalogue model's whole row as text (`None` when there is no such
/// model), to show that a refused call changed nothing.
pub fn model_row(name: &str) -> Option<String> {
    db().query_opt(
        "select m::text from platform.models m where m.name = $1",
        &[&name],
    )
    .unwrap_or_else(|e| panic!("reading model {name}: {e}"))
    .map(|row| row.get(0))
}

/// A string no other test (or earlier run) uses: idempotency keys, emails.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{nanos:x}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn new_uuid() -> String {
    text("select gen_random_uuid()::text", &[]).expect("a uuid")
}

/// `granted`, `used`, `reserved` of `platform.token_balances`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Balance {
    pub granted: i64,
    pub used: i64,
    pub reserved: i64,
}

/// A platform user as Supabase Auth and the signup webhook would leave it:
/// a row in `auth.users`, its mirror in `platform.users`, optionally a grant,
/// and an access token shaped like Supabase's.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub email: String,
    pub token: String,
}

impl User {
    /// A new developer with `granted` tokens (none when 0).
    pub fn with_tokens(granted: i64) -> User {
        let id = new_uuid();
        let email = format!("{}@e2e.example", unique("u").replace('-', "."));
        let mut db = db();
        db.execute(
            "insert into auth.users (id, aud, role, email, email_confirmed_at, raw_app_meta_data, \
             raw_user_meta_data, created_at, updated_at) values ($1::text::uuid, 'authenticated', \
             'authenticated', $2, now(), '{\"provider\":\"email\",\"providers\":[\"email\"]}', '{}', \
             now(), now())",
            &[&id, &email],
        )
        .expect("insert into auth.users");
        let grant = if granted > 0 {
            format!("select platform.grant_user_tokens('{id}', {granted}, 'e2e test');")
        } else {
            String::new()
        };
        db.batch_execute(&format!(
            "begin; set local role service_role; \
             select set_config('request.jwt.claims', '{{\"role\":\"service_role\"}}', true); \
             select platform.mirror_auth_user('{id}', '{email}'); {grant} commit;"
        ))
        .expect("mirror the user and grant tokens as the service role");
        let token = tokens::hs256(&tokens::user_claims(&id, &email));
        User { id, email, token }
    }

    /// A new admin (an admin is a `platform.users` row with role `admin`).
    pub fn admin() -> User {
        let user = User::with_tokens(0);
        db().execute(
            "update platform.users set role = 'admin' where id = $1::text::uuid",
            &[&user.id],
        )
        .expect("promote to admin");
        user
    }

    /// A new API key of this user with `scopes`, made through `POST /v1/api-keys`.
    pub fn api_key(&self, scopes: &[&str]) -> String {
        let answer = call(
            "POST",
            "/v1/api-keys",
            Some(&self.token),
            &[],
            Some(&json!({"name": unique("key"), "scopes": scopes})),
        );
        assert_eq!(answer.status, 201, "creating an API key: {}", answer.body);
        answer.json()["key"]
            .as_str()
            .expect("the new key")
            .to_string()
    }

    pub fn balance(&self) -> Balance {
        let row = db()
            .query_one(
                "select granted, used, reserved from platform.token_balances \
                 where user_id = $1::text::uuid",
                &[&self.id],
            )
            .expect("a balance row");
        Balance {
            granted: row.get(0),
            used: row.get(1),
            reserved: row.get(2),
        }
    }

    /// How many usage ledger rows this user has.
    pub fn ledger_rows(&self) -> i64 {
        scalar(
            "select count(*) from platform.token_usage where user_id = $1::text::uuid",
            &[&self.id],
        )
    }

    pub fn grant_rows(&self) -> i64 {
        scalar(
            "select count(*) from platform.token_grants where user_id = $1::text::uuid",
            &[&self.id],
        )
    }

    /// A status of one of this user's reservations.
    pub fn reservation_status(&self, reservation_id: &str) -> String {
        text(
            "select status from platform.token_reservations \
             where id = $1::text::uuid and user_id = $2::text::uuid",
            &[&reservation_id, &self.id],
        )
        .expect("a reservation status")
    }

    /// Moves a reservation's expiry into the past, as if its TTL had run out.
    pub fn expire_reservation(&self, reservation_id: &str) {
        let changed = db()
            .execute(
                "update platform.token_reservations \
                 set created_at = now() - interval '1 hour', expires_at = now() - interval '1 second' \
                 where id = $1::text::uuid and user_id = $2::text::uuid and status = 'active'",
                &[&reservation_id, &self.id],
            )
            .expect("expire a reservation");
        assert_eq!(changed, 1, "no active reservation {reservation_id}");
    }
}

/// A request to the Worker with an optional bearer credential, extra headers
/// and a JSON body.
pub fn call(
    method: &str,
    path: &str,
    bearer: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Answer {
    let raw = body.map(Value::to_string);
    call_raw(
        method,
        path,
        bearer,
        headers,
        raw.as_deref(),
        "application/json",
    )
}

/// Like [`call`], with the body as raw text and its content type.
pub fn call_raw(
    method: &str,
    path: &str,
    bearer: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&str>,
    content_type: &str,
) -> Answer {
    let mut req = request(method, &worker_url(path));
    if let Some(bearer) = bearer {
        req = req.set("authorization", &format!("Bearer {bearer}"));
    }
    for (name, value) in headers {
        req = req.set(name, value);
    }
    if body.is_some() {
        req = req.set("content-type", content_type);
    }
    send(req, body.map(str::as_bytes))
}

/// A usage event without an idempotency key.
pub fn event(model: &str, prompt: u64, completion: u64) -> Value {
    json!({"model": model, "prompt_tokens": prompt, "completion_tokens": completion})
}

/// `POST /v1/usage` with the key in the `Idempotency-Key` header.
pub fn record(bearer: &str, key: &str, body: &Value) -> Answer {
    call(
        "POST",
        "/v1/usage",
        Some(bearer),
        &[("idempotency-key", key)],
        Some(body),
    )
}

/// `POST /v1/usage/reservations`.
pub fn reserve(bearer: &str, tokens: u64, ttl_seconds: Option<u32>) -> Answer {
    let mut body = json!({ "tokens": tokens });
    if let Some(ttl) = ttl_seconds {
        body["ttl_seconds"] = json!(ttl);
    }
    call(
        "POST",
        "/v1/usage/reservations",
        Some(bearer),
        &[],
        Some(&body),
    )
}

/// Asserts the edge's error body and status, with the body in the message.
#[track_caller]
pub fn assert_refused(answer: &Answer, status: u16, code: &str) {
    assert_eq!(
        (answer.status, answer.error_code().as_str()),
        (status, code),
        "{}",
        answer.body
    );
}

/// Polls `check` until it returns `Some`, for effects written after the
/// response (telemetry); `None` after `timeout`.
pub fn eventually<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
