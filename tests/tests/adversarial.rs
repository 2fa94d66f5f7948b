//! The adversarial suite (first slice): one table of hostile requests sent
//! through the Worker over real HTTP. Each row names the exact status and
//! stable error code the request must get, and no row may change the
//! database: a fingerprint of every table in `platform`, `analytics` and
//! `auth` (row count and an md5 of every row's JSON text) is taken before the
//! table and compared after every case.
//!
//! Not fingerprinted: the `telemetry` schema (the Worker counts every call
//! and flushes the counts every few seconds by design), and `platform.api_keys.last_used_at`,
//! which `resolve_api_key` sets (at most once a minute) whenever a key
//! authenticates, before the edge judges the request: a valid key refused
//! for its scope still counts as used. That column is watched separately:
//! it may change only on a call made with a valid key.
//!
//! The whole table is one `#[test]`, so nothing else in this binary writes
//! while it runs (the other test binaries run one after another), and every
//! fixture is made before the first fingerprint.

mod usage_common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use e2e_tests::db::table_print;
use e2e_tests::reference::KeyPair;
use e2e_tests::tokens::{self, b64, publish_jwks, with};
use e2e_tests::webhooks::{
    auth_hook_secret, before_user_created_payload, db_insert_event, db_webhook_secret, hmac_key,
    sign_v1, BEFORE_USER_CREATED, DB_USER_INSERT,
};
use e2e_tests::{now, random_uuid};
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::panic::AssertUnwindSafe;
use std::time::Duration;
use usage_common::*;

/// `MAX_BODY_BYTES` in wrangler.toml.
const MAX_BODY_BYTES: usize = 262_144;

/// What a case must get back.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// `{"error": {"code", "message"}}` with this status and code.
    Refused(u16, &'static str),
    /// A batch answered 200 with every event rejected with this code (a
    /// batch reports each event's refusal in its results).
    EveryEventRejected(&'static str),
}
use Expect::{EveryEventRejected, Refused};

/// One request, as data.
#[derive(Clone)]
struct Req {
    method: &'static str,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    /// Sent with `Transfer-Encoding: chunked`, declaring no length.
    chunked: bool,
}

fn req(method: &'static str, path: &str) -> Req {
    Req {
        method,
        path: path.to_string(),
        headers: Vec::new(),
        body: None,
        chunked: false,
    }
}

fn post(path: &str) -> Req {
    req("POST", path)
}

impl Req {
    fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    /// A body without a content type.
    fn bytes(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    fn typed(self, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        self.header("content-type", content_type).bytes(body)
    }

    fn raw_json(self, body: impl Into<Vec<u8>>) -> Self {
        self.typed("application/json", body)
    }

    fn json(self, body: &Value) -> Self {
        self.raw_json(body.to_string())
    }

    fn chunked(mut self) -> Self {
        self.chunked = true;
        self
    }

    fn bearer_token(&self) -> Option<&str> {
        self.headers
            .iter()
            .find(|(name, _)| name == "authorization")
            .and_then(|(_, value)| value.strip_prefix("Bearer "))
    }
}

struct Case {
    name: String,
    req: Req,
    expect: Expect,
    /// Sent until it is answered 429 just before the case: the case's key,
    /// user or address is over its rate limit when the case arrives.
    flood: Option<Req>,
}

#[derive(Default)]
struct Table(Vec<Case>);

impl Table {
    fn add(&mut self, name: impl Into<String>, req: Req, expect: Expect) {
        self.0.push(Case {
            name: name.into(),
            req,
            expect,
            flood: None,
        });
    }

    /// A case sent right after `flood` was answered 429.
    fn add_over_limit(&mut self, name: impl Into<String>, flood: Req, req: Req) {
        self.0.push(Case {
            name: name.into(),
            req,
            expect: Refused(429, "rate_limited"),
            flood: Some(flood),
        });
    }
}

// ------------------------------------------------------------------ sending

struct Reply {
    status: u16,
    body: String,
}

/// Sends a case with ureq, or over a bare socket when ureq would refuse it
/// (a header value that is not visible ASCII) or it is chunked.
fn send_case(req: &Req) -> Result<Reply, String> {
    let plain_headers = req.headers.iter().all(|(_, value)| {
        value
            .bytes()
            .all(|b| b == b'\t' || (0x20..=0x7e).contains(&b))
    });
    if req.chunked || !plain_headers {
        return send_over_socket(req);
    }
    let mut http = request(req.method, &worker_url(&req.path));
    for (name, value) in &req.headers {
        http = http.set(name, value);
    }
    // `send` panics when no HTTP answer comes back; that is this case's
    // failure, not the end of the table.
    std::panic::catch_unwind(AssertUnwindSafe(|| send(http, req.body.as_deref())))
        .map(|answer| Reply {
            status: answer.status,
            body: answer.body,
        })
        .map_err(|panic| {
            panic
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "the request panicked".into())
        })
}

/// A case with plain headers and a whole body, as ureq sends it (floods).
fn plain_request(req: &Req) -> ureq::Request {
    let mut http = request(req.method, &worker_url(&req.path));
    for (name, value) in &req.headers {
        http = http.set(name, value);
    }
    http
}

/// HTTP/1.1 written by hand: any header bytes, and chunked bodies.
fn send_over_socket(req: &Req) -> Result<Reply, String> {
    let base = env("CDS_WORKER_URL");
    let authority = base
        .strip_prefix("http://")
        .ok_or_else(|| format!("a raw request needs an http:// worker URL, not {base}"))?
        .trim_end_matches('/')
        .to_string();
    let mut stream = std::net::TcpStream::connect(&authority).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .map_err(|e| e.to_string())?;
    let mut out = format!(
        "{} {} HTTP/1.1\r\nhost: {authority}\r\nconnection: close\r\n",
        req.method, req.path
    )
    .into_bytes();
    for (name, value) in &req.headers {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    let body = req.body.as_deref().unwrap_or_default();
    if req.chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
        for chunk in body.chunks(16 * 1024) {
            out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            out.extend_from_slice(chunk);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
    } else {
        out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
        out.extend_from_slice(body);
    }
    // The Worker may answer, and close, before it has read everything.
    let _ = stream.write_all(&out);
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(_) if !raw.is_empty() => break,
            Err(e) => return Err(format!("no answer: {e}")),
        }
    }
    let reply = parse_http_response(&raw)?;
    // Held to the OpenAPI document as `send` holds ureq's answers.
    let head = String::from_utf8_lossy(&raw[..raw.len().min(8192)]).to_string();
    let content_type = head
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_string())
        });
    e2e_tests::contract::check_url(
        req.method,
        &worker_url(&req.path),
        reply.status,
        content_type.as_deref(),
        &reply.body,
    )?;
    Ok(reply)
}

fn parse_http_response(raw: &[u8]) -> Result<Reply, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no complete response head")?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut body = raw[split + 4..].to_vec();
    let status = head
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    let chunked = head.lines().any(|line| {
        let line = line.to_ascii_lowercase();
        line.starts_with("transfer-encoding:") && line.contains("chunked")
    });
    if chunked {
        let mut decoded = Vec::new();
        let mut rest = body.as_slice();
        while let Some(end) = rest.windows(2).position(|w| w == b"\r\n") {
            let size_text = String::from_utf8_lossy(&rest[..end]).to_string();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| format!("bad chunk size {size_text:?}"))?;
            rest = &rest[end + 2..];
            if size == 0 || rest.len() < size {
                break;
            }
            decoded.extend_from_slice(&rest[..size]);
            rest = rest.get(size + 2..).unwrap_or_default();
        }
        body = decoded;
    }
    Ok(Reply {
        status,
        body: String::from_utf8_lossy(&body).to_string(),
    })
}

// ---------------------------------------------------------------- judging

fn shorten(text: &str) -> String {
    let mut short: String = text.chars().take(300).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    short
}

/// `Ok(what came back)` when the reply is what the case expects.
fn judge(reply: &Reply, expect: Expect) -> Result<String, String> {
    let body: Value = serde_json::from_str(&reply.body).unwrap_or(Value::Null);
    match expect {
        Refused(status, code) => {
            let got = body["error"]["code"].as_str();
            let summary = format!("{} {}", reply.status, got.unwrap_or("(no error code)"));
            if (reply.status, got) == (status, Some(code)) && body["error"]["message"].is_string() {
                Ok(summary)
            } else {
                Err(format!(
                    "expected {status} {code}, got {summary}: {}",
                    shorten(&reply.body)
                ))
            }
        }
        EveryEventRejected(code) => {
            let results = body["results"].as_array().cloned().unwrap_or_default();
            let all_rejected = !results.is_empty()
                && results
                    .iter()
                    .all(|r| r["status"] == "rejected" && r["error"]["code"] == code);
            let summary = format!(
                "{} every event rejected: {}",
                reply.status,
                results
                    .first()
                    .and_then(|r| r["error"]["code"].as_str())
                    .unwrap_or("-")
            );
            if reply.status == 200 && all_rejected && body["recorded"] == 0 && body["replayed"] == 0
            {
                Ok(summary)
            } else {
                Err(format!(
                    "expected 200 with every event rejected as {code}, got {}: {}",
                    reply.status,
                    shorten(&reply.body)
                ))
            }
        }
    }
}

// ------------------------------------------------------------ the database

/// Columns a refused request may change: see the module documentation.
const UNFINGERPRINTED: &[(&str, &str)] = &[("platform.api_keys", "last_used_at")];

/// Row count and md5 of the rows' JSON text (in a stable order), per table
/// of `platform`, `analytics` and `auth`.
fn fingerprint(db: &mut postgres::Client) -> BTreeMap<String, String> {
    let tables: Vec<String> = db
        .query(
            "select format('%I.%I', n.nspname, c.relname) \
               from pg_class c join pg_namespace n on n.oid = c.relnamespace \
              where n.nspname in ('platform', 'analytics', 'auth') and c.relkind in ('r', 'p', 'm') \
              order by 1",
            &[],
        )
        .expect("listing tables")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(
        tables.iter().any(|t| t == "platform.token_usage"),
        "{tables:?}"
    );
    tables
        .into_iter()
        .map(|table| {
            let skipped: Vec<&str> = UNFINGERPRINTED
                .iter()
                .filter(|(t, _)| *t == table)
                .map(|(_, column)| *column)
                .collect();
            let print = table_print(db, &table, &skipped, None);
            (table, print)
        })
        .collect()
}

/// What changed between two fingerprints, one entry per table.
fn changes(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Vec<String> {
    let mut tables: Vec<&String> = before.keys().chain(after.keys()).collect();
    tables.sort();
    tables.dedup();
    tables
        .into_iter()
        .filter(|t| before.get(*t) != after.get(*t))
        .map(|t| {
            format!(
                "{t} ({} → {})",
                before.get(t).map_or("absent", String::as_str),
                after.get(t).map_or("absent", String::as_str)
            )
        })
        .collect()
}

/// `platform.api_keys.last_used_at` per key.
fn key_use(db: &mut postgres::Client) -> BTreeMap<String, Option<String>> {
    db.query(
        "select id::text, last_used_at::text from platform.api_keys",
        &[],
    )
    .expect("reading api_keys.last_used_at")
    .iter()
    .map(|row| (row.get(0), row.get(1)))
    .collect()
}

// ---------------------------------------------------------------- fixtures

/// A usage event that would be recorded if its request were accepted.
fn good_event() -> Value {
    json!({"model": MODEL, "prompt_tokens": 10, "completion_tokens": 5})
}

/// `good_event` with these fields set.
fn event_with(fields: Value) -> Value {
    let mut event = good_event();
    for (name, value) in fields.as_object().expect("fields") {
        event[name] = value.clone();
    }
    event
}

/// `good_event` with its own idempotency key and these fields, for batches.
fn batch_event(fields: Value) -> Value {
    let mut event = event_with(json!({"idempotency_key": unique("adv")}));
    for (name, value) in fields.as_object().expect("fields") {
        event[name] = value.clone();
    }
    event
}

/// `{"metadata": {"a": {"a": ... 1}}}` nested `depth` levels, as raw text.
fn deeply_nested_event(depth: usize) -> String {
    format!(
        r#"{{"model":"{MODEL}","prompt_tokens":1,"completion_tokens":1,"metadata":{}1{}}}"#,
        r#"{"a":"#.repeat(depth),
        "}".repeat(depth)
    )
}

/// A key of `user`'s with these scopes: `(id, key)`.
fn new_key(user: &User, scopes: &[&str]) -> (String, String) {
    let answer = call(
        "POST",
        "/v1/api-keys",
        Some(&user.token),
        &[],
        Some(&json!({"name": unique("adv-key"), "scopes": scopes})),
    );
    assert_eq!(answer.status, 201, "creating a key: {}", answer.body);
    let created = answer.json();
    (
        created["id"].as_str().expect("id").to_string(),
        created["key"].as_str().expect("key").to_string(),
    )
}

/// Free text that must never be taken as anything but text.
fn hostile_strings() -> Vec<(&'static str, String)> {
    vec![
        ("quotes", r#"it's "quoted" \ and \" escaped"#.to_string()),
        ("SQL", "x'; drop table platform.users; --".to_string()),
        ("NUL", "a\u{0}b".to_string()),
        ("300 emoji", "😀".repeat(300)),
    ]
}

fn is_nul(label: &str) -> bool {
    label == "NUL"
}

/// Everything the table needs, made before the first fingerprint.
struct Fixtures {
    user: User,
    victim: User,
    read_key: String,
    write_key: String,
    revoked_key: String,
    expired_key: String,
    /// An active hold of `user` taken with another API key of theirs.
    key_hold: String,
    /// An active hold of `user` taken with their own token.
    token_hold: String,
    ec: KeyPair,
    rsa: KeyPair,
    unpublished: KeyPair,
    /// An `auth.users` row Supabase Auth just wrote, not mirrored yet.
    auth_user_id: String,
    auth_record: Value,
    /// A user Supabase Auth has banned (`banned_until` tomorrow), and a key
    /// of theirs made before the ban.
    banned: User,
    banned_key: String,
    /// A user Supabase Auth has soft-deleted (`deleted_at` set).
    deleted: User,
    /// An anonymous sign-in's access token (`is_anonymous: true`), of a
    /// user mirrored with tokens to spend.
    anonymous_token: String,
    /// A user and a key of theirs used only to go over the rate limits.
    limited: User,
    limited_key: String,
}

fn fixtures() -> Fixtures {
    let user = User::with_tokens(1_000_000);
    let victim = User::with_tokens(1_000);
    let (_, read_key) = new_key(&user, &["usage:read"]);
    let (_, write_key) = new_key(&user, &["usage:write"]);

    let (revoked_id, revoked_key) = new_key(&user, &["usage:write", "usage:read"]);
    let revoked = call(
        "DELETE",
        &format!("/v1/api-keys/{revoked_id}"),
        Some(&user.token),
        &[],
        None,
    );
    assert_eq!(revoked.status, 200, "revoking: {}", revoked.body);

    let (expired_id, expired_key) = new_key(&user, &["usage:write", "usage:read"]);
    let changed = db()
        .execute(
            "update platform.api_keys set created_at = now() - interval '2 hours', \
             expires_at = now() - interval '1 hour' where id = $1::text::uuid",
            &[&expired_id],
        )
        .expect("expiring a key");
    assert_eq!(changed, 1);

    let (_, holder_key) = new_key(&user, &["usage:write"]);
    let hold = |bearer: &str| {
        let held = reserve(bearer, 10, Some(3600));
        assert_eq!(held.status, 201, "holding: {}", held.body);
        held.json()["reservation_id"]
            .as_str()
            .expect("a reservation id")
            .to_string()
    };
    let key_hold = hold(&holder_key);
    let token_hold = hold(&user.token);

    let kid = |label: &str| format!("adv-{label}-{}", &random_uuid()[..8]);
    let ec = KeyPair::generate("ES256", &kid("ec"));
    let rsa = KeyPair::generate("RS256", &kid("rsa"));
    let unpublished = KeyPair::generate("ES256", &kid("unpublished"));
    publish_jwks(&[&ec.public_jwk, &rsa.public_jwk]);
    // Both keys in the Worker's cache before anything is judged.
    for (alg, pair) in [("ES256", &ec), ("RS256", &rsa)] {
        let token = pair.sign(&tokens::user_claims(&user.id, &user.email));
        let picked_up = eventually(Duration::from_secs(10), || {
            (call("GET", "/v1/me", Some(&token), &[], None).status == 200).then_some(())
        });
        assert!(picked_up.is_some(), "the {alg} key was never accepted");
    }

    // Supabase leaves a banned or soft-deleted user's auth.users row in place.
    let banned = User::with_tokens(1_000);
    let (_, banned_key) = new_key(&banned, &["usage:write", "usage:read"]);
    let deleted = User::with_tokens(1_000);
    for (user, change) in [
        (&banned, "banned_until = now() + interval '1 day'"),
        (&deleted, "deleted_at = now()"),
    ] {
        let changed = e2e_tests::db::connect()
            .execute(
                &format!("update auth.users set {change} where id = $1::text::uuid"),
                &[&user.id],
            )
            .expect("banning or deleting a user");
        assert_eq!(changed, 1);
    }

    let anonymous = User::with_tokens(1_000);
    e2e_tests::db::connect()
        .execute(
            "update auth.users set is_anonymous = true where id = $1::text::uuid",
            &[&anonymous.id],
        )
        .expect("making a user anonymous");
    let anonymous_token = tokens::hs256(&with(
        tokens::user_claims(&anonymous.id, ""),
        json!({"is_anonymous": true, "email": null}),
    ));

    let limited = User::with_tokens(1_000_000);
    let (_, limited_key) = new_key(&limited, &["usage:write", "usage:read"]);

    let auth_user_id = random_uuid();
    let email = format!("adv-{auth_user_id}@example.com");
    let record =
        e2e_tests::db::insert_auth_user(&mut e2e_tests::db::connect(), &auth_user_id, &email, None);
    Fixtures {
        user,
        victim,
        read_key,
        write_key,
        revoked_key,
        expired_key,
        key_hold,
        token_hold,
        ec,
        rsa,
        unpublished,
        auth_user_id,
        auth_record: serde_json::from_str(&record).expect("the record as JSON"),
        banned,
        banned_key,
        deleted,
        anonymous_token,
        limited,
        limited_key,
    }
}

// ------------------------------------------------------------------ cases

/// `POST /v1/usage` as the user, with a fresh `Idempotency-Key`: accepted,
/// it would be recorded.
fn usage(f: &Fixtures) -> Req {
    post("/v1/usage")
        .bearer(&f.user.token)
        .header("idempotency-key", &unique("adv"))
}

fn batch(f: &Fixtures) -> Req {
    post("/v1/usage/batch").bearer(&f.user.token)
}

fn usage_input_cases(t: &mut Table, f: &Fixtures) {
    t.add(
        "usage: malformed JSON",
        usage(f).raw_json(r#"{"model": "#),
        Refused(400, "invalid_json"),
    );
    t.add(
        "usage: trailing bytes after the object",
        usage(f).raw_json(format!("{} x", good_event())),
        Refused(400, "invalid_json"),
    );
    t.add(
        "usage: body not UTF-8",
        usage(f).raw_json(
            b"{\"model\":\"\xff\xfe\",\"prompt_tokens\":1,\"completion_tokens\":1}".to_vec(),
        ),
        Refused(400, "invalid_json"),
    );
    t.add(
        "usage: zero tokens",
        usage(f).json(&event_with(
            json!({"prompt_tokens": 0, "completion_tokens": 0}),
        )),
        Refused(422, "invalid_field"),
    );
    t.add(
        "usage: zero tokens, queued",
        usage(f).header("prefer", "respond-async").json(&event_with(
            json!({"prompt_tokens": 0, "completion_tokens": 0}),
        )),
        Refused(422, "invalid_field"),
    );
    t.add(
        "usage: a JSON array instead of an object",
        usage(f).json(&json!([good_event()])),
        Refused(422, "invalid_body"),
    );
    t.add(
        "usage: metadata nested 5000 levels",
        usage(f).raw_json(deeply_nested_event(5000)),
        Refused(400, "invalid_json"),
    );
    t.add(
        "usage: arrays nested 100000 levels",
        usage(f).raw_json(format!("{}{}", "[".repeat(100_000), "]".repeat(100_000))),
        Refused(400, "invalid_json"),
    );
    t.add(
        "usage: text/plain",
        usage(f).typed("text/plain", good_event().to_string()),
        Refused(415, "unsupported_media_type"),
    );
    t.add(
        "usage: no content type",
        usage(f).bytes(good_event().to_string()),
        Refused(415, "unsupported_media_type"),
    );
    t.add(
        "usage: application/jsonp",
        usage(f).typed("application/jsonp", good_event().to_string()),
        Refused(415, "unsupported_media_type"),
    );
    let oversized = event_with(json!({"metadata": {"pad": "x".repeat(MAX_BODY_BYTES)}}));
    t.add(
        "usage: body over 262144 bytes",
        usage(f).json(&oversized),
        Refused(413, "payload_too_large"),
    );
    t.add(
        "usage: chunked body over 262144 bytes",
        usage(f).json(&oversized).chunked(),
        Refused(413, "payload_too_large"),
    );
    let counts: [(&str, &str); 7] = [
        ("negative", "-1"),
        ("past i64::MAX", "9223372036854775808"),
        ("i64::MAX", "9223372036854775807"),
        ("past u64::MAX", "18446744073709551616"),
        ("1e30", "1e30"),
        ("1.5", "1.5"),
        ("a string", r#""10""#),
    ];
    for (label, count) in counts {
        t.add(
            format!("usage: prompt_tokens {label}"),
            usage(f).raw_json(format!(
                r#"{{"model":"{MODEL}","prompt_tokens":{count},"completion_tokens":1}}"#
            )),
            Refused(422, "invalid_field"),
        );
    }
    t.add(
        "usage: completion_tokens null",
        usage(f).json(&event_with(json!({"completion_tokens": null}))),
        Refused(422, "invalid_field"),
    );
    t.add(
        "usage: an unknown field",
        usage(f).json(&event_with(json!({"user_id": f.victim.id}))),
        Refused(422, "unknown_field"),
    );
    t.add(
        "usage: an unknown model",
        usage(f).json(&event_with(json!({"model": "gpt-9-ultra"}))),
        Refused(422, "unknown_model"),
    );
    t.add(
        "usage: no idempotency key",
        post("/v1/usage").bearer(&f.user.token).json(&good_event()),
        Refused(400, "idempotency_key_required"),
    );
    t.add(
        "usage: a blank Idempotency-Key header",
        post("/v1/usage")
            .bearer(&f.user.token)
            .header("idempotency-key", "   ")
            .json(&good_event()),
        Refused(400, "idempotency_key_required"),
    );
    t.add(
        "usage: header and body idempotency keys differ",
        usage(f).json(&event_with(json!({"idempotency_key": unique("other")}))),
        Refused(400, "idempotency_key_mismatch"),
    );

    // Hostile text in every free-text field. Where the edge takes the text
    // as it is, the model is unknown, so the text reaches the database as an
    // argument and the database refuses the event.
    const UNKNOWN_MODEL: &str = "no-such-model";
    for (label, text) in hostile_strings() {
        let refused_at_edge = Refused(422, "invalid_field");
        let model_expect = if is_nul(label) || label == "300 emoji" {
            refused_at_edge
        } else {
            Refused(422, "unknown_model")
        };
        t.add(
            format!("usage: {label} in model"),
            usage(f).json(&event_with(json!({ "model": text }))),
            model_expect,
        );
        let key_expect = if is_nul(label) || label == "300 emoji" {
            refused_at_edge
        } else {
            Refused(422, "unknown_model")
        };
        t.add(
            format!("usage: {label} in the body's idempotency_key"),
            post("/v1/usage").bearer(&f.user.token).json(&event_with(
                json!({"model": UNKNOWN_MODEL, "idempotency_key": text}),
            )),
            key_expect,
        );
        // A NUL byte cannot travel in a header: the HTTP server in front of
        // the Worker answers a plain-text 400 ("The headers sent by your
        // client are not valid"), so no code of ours is there to check.
        if !is_nul(label) {
            t.add(
                format!("usage: {label} in the Idempotency-Key header"),
                post("/v1/usage")
                    .bearer(&f.user.token)
                    .header("idempotency-key", &text)
                    .json(&event_with(json!({ "model": UNKNOWN_MODEL }))),
                key_expect,
            );
        }
        let metadata_expect = if is_nul(label) {
            refused_at_edge
        } else {
            Refused(422, "unknown_model")
        };
        t.add(
            format!("usage: {label} in a metadata value"),
            usage(f).json(&event_with(
                json!({"model": UNKNOWN_MODEL, "metadata": {"note": text}}),
            )),
            metadata_expect,
        );
        let mut metadata = serde_json::Map::new();
        metadata.insert(text.clone(), json!(1));
        t.add(
            format!("usage: {label} in a metadata key"),
            usage(f).json(&event_with(
                json!({"model": UNKNOWN_MODEL, "metadata": metadata}),
            )),
            metadata_expect,
        );
        for field in ["project_id", "session_id", "reservation_id"] {
            let mut fields = serde_json::Map::new();
            fields.insert(field.into(), json!(text));
            t.add(
                format!("usage: {label} in {field}"),
                usage(f).json(&event_with(Value::Object(fields))),
                refused_at_edge,
            );
        }
    }
    t.add(
        "usage: idempotency key of 255 emoji, unknown model",
        post("/v1/usage").bearer(&f.user.token).json(&event_with(
            json!({"model": UNKNOWN_MODEL, "idempotency_key": "😀".repeat(255)}),
        )),
        Refused(422, "unknown_model"),
    );
}

fn batch_cases(t: &mut Table, f: &Fixtures) {
    t.add(
        "batch: malformed JSON",
        batch(f).raw_json(r#"{"events": [ "#),
        Refused(400, "invalid_json"),
    );
    t.add(
        "batch: a JSON array instead of an object",
        batch(f).json(&json!([batch_event(json!({}))])),
        Refused(422, "invalid_body"),
    );
    t.add(
        "batch: an event nested 5000 levels",
        batch(f).raw_json(format!(r#"{{"events":[{}]}}"#, deeply_nested_event(5000))),
        Refused(400, "invalid_json"),
    );
    t.add(
        "batch: text/plain",
        batch(f).typed(
            "text/plain",
            json!({"events": [batch_event(json!({}))]}).to_string(),
        ),
        Refused(415, "unsupported_media_type"),
    );
    t.add(
        "batch: body over 262144 bytes",
        batch(f).json(&json!({"events": [batch_event(
            json!({"metadata": {"pad": "x".repeat(MAX_BODY_BYTES)}})
        )]})),
        Refused(413, "payload_too_large"),
    );
    let events: Vec<Value> = (0..1001).map(|_| batch_event(json!({}))).collect();
    t.add(
        "batch: 1001 events",
        batch(f).json(&json!({ "events": events })),
        Refused(413, "batch_too_large"),
    );
    t.add(
        "batch: events an object",
        batch(f).json(&json!({"events": batch_event(json!({}))})),
        Refused(422, "invalid_field"),
    );
    t.add(
        "batch: events a string",
        batch(f).json(&json!({"events": "[]"})),
        Refused(422, "invalid_field"),
    );
    t.add(
        "batch: no events",
        batch(f).json(&json!({"events": []})),
        Refused(422, "invalid_field"),
    );
    t.add(
        "batch: an unknown top-level field",
        batch(f).json(&json!({"events": [batch_event(json!({}))], "user_id": f.victim.id})),
        Refused(422, "unknown_field"),
    );

    // Refusals of single events come back in the 200's results.
    let per_event: Vec<(&str, Value, &'static str)> = vec![
        (
            "negative tokens",
            json!({"prompt_tokens": -5}),
            "invalid_field",
        ),
        (
            "1e30 tokens",
            json!({"completion_tokens": 1e30}),
            "invalid_field",
        ),
        (
            "string tokens",
            json!({"prompt_tokens": "5"}),
            "invalid_field",
        ),
        ("an unknown field", json!({"cost": 0}), "unknown_field"),
        (
            "an unknown model",
            json!({"model": "gpt-9-ultra"}),
            "unknown_model",
        ),
        (
            "SQL in model",
            json!({"model": "x'; drop table platform.users; --"}),
            "unknown_model",
        ),
        (
            "NUL in model",
            json!({"model": "gpt\u{0}"}),
            "invalid_field",
        ),
        (
            "300 emoji in idempotency_key",
            json!({"idempotency_key": "😀".repeat(300)}),
            "invalid_field",
        ),
        (
            "NUL in idempotency_key",
            json!({"idempotency_key": "k\u{0}"}),
            "invalid_field",
        ),
        (
            "quotes in idempotency_key, unknown model",
            json!({"idempotency_key": "it's \"x\"", "model": "no-such-model"}),
            "unknown_model",
        ),
        (
            "NUL in a metadata key",
            json!({"metadata": {"a\u{0}": 1}}),
            "invalid_field",
        ),
        (
            "SQL in metadata, unknown model",
            json!({"metadata": {"q": "'); delete from platform.token_usage; --"}, "model": "no-such-model"}),
            "unknown_model",
        ),
        (
            "SQL in project_id",
            json!({"project_id": "00000000-0000-0000-0000-000000000000' or '1'='1"}),
            "invalid_field",
        ),
        (
            "zero tokens",
            json!({"prompt_tokens": 0, "completion_tokens": 0}),
            "invalid_field",
        ),
    ];
    for (label, fields, code) in per_event {
        t.add(
            format!("batch event: {label}"),
            batch(f).json(&json!({"events": [batch_event(fields)]})),
            EveryEventRejected(code),
        );
    }
    t.add(
        "batch event: no idempotency key",
        batch(f).json(&json!({"events": [good_event()]})),
        EveryEventRejected("idempotency_key_required"),
    );
    t.add(
        "batch event: not an object",
        batch(f).json(&json!({"events": [[good_event()]]})),
        EveryEventRejected("invalid_body"),
    );
}

fn other_usage_cases(t: &mut Table, f: &Fixtures) {
    t.add(
        "reservation: tokens past i64::MAX",
        post("/v1/usage/reservations")
            .bearer(&f.user.token)
            .raw_json(r#"{"tokens": 9223372036854775808}"#),
        Refused(422, "invalid_field"),
    );
    t.add(
        "reservation: release of an id with SQL in it",
        req("DELETE", "/v1/usage/reservations/1'%20or%20'1'='1").bearer(&f.user.token),
        Refused(404, "not_found"),
    );
    t.add(
        "reservation: another API key releases a hold taken with a key",
        req("DELETE", &format!("/v1/usage/reservations/{}", f.key_hold)).bearer(&f.write_key),
        Refused(403, "not_reservation_holder"),
    );
    t.add(
        "reservation: the user's token releases a hold taken with a key",
        req("DELETE", &format!("/v1/usage/reservations/{}", f.key_hold)).bearer(&f.user.token),
        Refused(403, "not_reservation_holder"),
    );
    t.add(
        "reservation: an API key releases a hold taken with the user's token",
        req(
            "DELETE",
            &format!("/v1/usage/reservations/{}", f.token_hold),
        )
        .bearer(&f.write_key),
        Refused(403, "not_reservation_holder"),
    );
    t.add(
        "reservation: another user releases a hold",
        req(
            "DELETE",
            &format!("/v1/usage/reservations/{}", f.token_hold),
        )
        .bearer(&f.victim.token),
        Refused(404, "unknown_reservation"),
    );
    t.add(
        "event status: NUL in the key",
        req("GET", "/v1/usage/events/a%00b").bearer(&f.user.token),
        Refused(400, "invalid_idempotency_key"),
    );
    t.add(
        "event status: a key of 256 emoji",
        req(
            "GET",
            &format!("/v1/usage/events/{}", "%F0%9F%98%80".repeat(256)),
        )
        .bearer(&f.user.token),
        Refused(400, "invalid_idempotency_key"),
    );
    t.add(
        "overview: a user reads another user's",
        req(
            "GET",
            &format!("/v1/usage/overview?user_id={}", f.victim.id),
        )
        .bearer(&f.user.token),
        Refused(403, "forbidden"),
    );
    t.add(
        "overview: SQL in user_id",
        req(
            "GET",
            "/v1/usage/overview?user_id=x'%3B%20drop%20table%20platform.users%3B%20--",
        )
        .bearer(&f.user.token),
        Refused(422, "invalid_field"),
    );
    t.add(
        "api key create: NUL in the name",
        post("/v1/api-keys")
            .bearer(&f.user.token)
            .json(&json!({"name": "key\u{0}"})),
        Refused(422, "invalid_name"),
    );
    t.add(
        "api key create: 300 emoji in the name",
        post("/v1/api-keys")
            .bearer(&f.user.token)
            .json(&json!({"name": "😀".repeat(300)})),
        Refused(422, "invalid_name"),
    );
    t.add(
        "api key create: NUL in a scope",
        post("/v1/api-keys")
            .bearer(&f.user.token)
            .json(&json!({"name": "k", "scopes": ["usage:read\u{0}"]})),
        Refused(422, "invalid_scopes"),
    );
    t.add(
        "api key create: expires_at not a date",
        post("/v1/api-keys")
            .bearer(&f.user.token)
            .json(&json!({"name": "k", "expires_at": "x'; drop table platform.api_keys; --"})),
        Refused(422, "invalid_expiry"),
    );
    t.add(
        "api key create: a JSON array",
        post("/v1/api-keys")
            .bearer(&f.user.token)
            .json(&json!(["k", ["usage:read"]])),
        Refused(400, "invalid_json"),
    );
}

fn jwt_cases(t: &mut Table, f: &Fixtures) {
    let claims = tokens::user_claims(&f.user.id, &f.user.email);
    let as_user = |token: &str| {
        post("/v1/usage")
            .bearer(token)
            .header("idempotency-key", &unique("adv"))
            .json(&good_event())
    };
    let hs256 = |changes: Value| tokens::hs256(&with(claims.clone(), changes));
    t.add(
        "jwt: expired",
        as_user(&hs256(json!({"exp": now() - 120, "iat": now() - 3720}))),
        Refused(401, "token_expired"),
    );
    t.add(
        "jwt: nbf 10 minutes ahead",
        as_user(&hs256(json!({"nbf": now() + 600}))),
        Refused(401, "token_not_yet_valid"),
    );
    t.add(
        "jwt: another audience",
        as_user(&hs256(json!({"aud": "another-app"}))),
        Refused(401, "wrong_audience"),
    );
    t.add(
        "jwt: another issuer",
        as_user(&hs256(
            json!({"iss": "https://attacker.supabase.co/auth/v1"}),
        )),
        Refused(401, "wrong_issuer"),
    );
    t.add(
        "jwt: alg none",
        as_user(&tokens::assemble(
            &json!({"alg": "none", "typ": "JWT"}),
            &claims,
            "",
        )),
        Refused(401, "unsupported_algorithm"),
    );
    t.add(
        "jwt: role service_role",
        as_user(&hs256(json!({"role": "service_role"}))),
        Refused(401, "user_required"),
    );
    // Key confusion: HMAC keyed with a published public key, naming it.
    let ec_jwk_bytes = f.ec.public_jwk.to_string();
    t.add(
        "jwt: HS256 keyed with the EC public JWK, its kid",
        as_user(&tokens::sign(
            Algorithm::HS256,
            Some(&f.ec.kid),
            ec_jwk_bytes.as_bytes(),
            &claims,
        )),
        Refused(401, "invalid_signature"),
    );
    let rsa_jwk_bytes = f.rsa.public_jwk.to_string();
    t.add(
        "jwt: HS256 keyed with the RSA public JWK, its kid",
        as_user(&tokens::sign(
            Algorithm::HS256,
            Some(&f.rsa.kid),
            rsa_jwk_bytes.as_bytes(),
            &claims,
        )),
        Refused(401, "invalid_signature"),
    );
    let modulus = URL_SAFE_NO_PAD
        .decode(f.rsa.public_jwk["n"].as_str().expect("n"))
        .expect("n is base64url");
    t.add(
        "jwt: HS256 keyed with the RSA modulus, its kid",
        as_user(&tokens::sign(
            Algorithm::HS256,
            Some(&f.rsa.kid),
            &modulus,
            &claims,
        )),
        Refused(401, "invalid_signature"),
    );
    t.add(
        "jwt: ES256 naming an unknown kid",
        as_user(&f.unpublished.sign(&claims)),
        Refused(401, "unknown_key_id"),
    );
    let valid = f.user.token.clone();
    t.add(
        "jwt: truncated to half",
        as_user(&valid[..valid.len() / 2]),
        Refused(401, "malformed_token"),
    );
    let victim_claims = b64(with(claims.clone(), json!({"sub": f.victim.id}))
        .to_string()
        .as_bytes());
    let parts: Vec<&str> = valid.split('.').collect();
    t.add(
        "jwt: HS256 claims re-encoded with another sub",
        as_user(&format!("{}.{victim_claims}.{}", parts[0], parts[2])),
        Refused(401, "invalid_signature"),
    );
    let es = f.ec.sign(&claims);
    let es_parts: Vec<&str> = es.split('.').collect();
    t.add(
        "jwt: ES256 claims re-encoded with another sub",
        as_user(&format!("{}.{victim_claims}.{}", es_parts[0], es_parts[2])),
        Refused(401, "invalid_signature"),
    );
    t.add(
        "jwt: no Authorization header",
        post("/v1/usage")
            .header("idempotency-key", &unique("adv"))
            .json(&good_event()),
        Refused(401, "missing_token"),
    );
    t.add(
        "jwt: Basic instead of Bearer",
        post("/v1/usage")
            .header("authorization", &format!("Basic {valid}"))
            .header("idempotency-key", &unique("adv"))
            .json(&good_event()),
        Refused(401, "missing_token"),
    );
    t.add(
        "jwt: 9 KiB token",
        as_user(&hs256(
            json!({"user_metadata": {"bio": "x".repeat(9 * 1024)}}),
        )),
        Refused(401, "token_too_large"),
    );
    let stranger = random_uuid();
    t.add(
        "jwt: valid, for a user the platform does not know",
        as_user(&tokens::hs256(&tokens::user_claims(
            &stranger,
            "nobody@example.com",
        ))),
        Refused(404, "unknown_user"),
    );
}

fn api_key_cases(t: &mut Table, f: &Fixtures) {
    let as_key = |key: &str| {
        post("/v1/usage")
            .bearer(key)
            .header("idempotency-key", &unique("adv"))
            .json(&good_event())
    };
    t.add(
        "api key: revoked",
        as_key(&f.revoked_key),
        Refused(401, "api_key_revoked"),
    );
    t.add(
        "api key: expired",
        as_key(&f.expired_key),
        Refused(401, "api_key_expired"),
    );
    t.add(
        "api key: revoked, usage queued",
        as_key(&f.revoked_key).header("prefer", "respond-async"),
        Refused(401, "api_key_revoked"),
    );
    t.add(
        "api key: expired, usage queued",
        as_key(&f.expired_key).header("prefer", "respond-async"),
        Refused(401, "api_key_expired"),
    );
    t.add(
        "api key: cds_ and garbage",
        as_key("cds_garbage!!"),
        Refused(401, "malformed_api_key"),
    );
    t.add(
        "api key: cds_ and SQL",
        as_key("cds_x'; drop table platform.api_keys; --"),
        Refused(401, "malformed_api_key"),
    );
    // `cds_`, the 24-character id and `_`.
    let secret = &f.write_key[4 + 24 + 1..];
    t.add(
        "api key: wrong prefix (sk_)",
        as_key(&format!("sk_{}", &f.write_key[4..])),
        Refused(401, "malformed_token"),
    );
    t.add(
        "api key: upper-case CDS_",
        as_key(&format!("CDS_{}", &f.write_key[4..])),
        Refused(401, "malformed_token"),
    );
    t.add(
        "api key: well formed, another prefix",
        as_key(&format!("cds_0badc0de0badc0de0badc0de_{secret}")),
        Refused(401, "invalid_api_key"),
    );
    t.add(
        "api key: the 8-character id of the drafts",
        as_key(&format!("cds_0badc0de_{secret}")),
        Refused(401, "malformed_api_key"),
    );
    t.add(
        "api key: usage:read only, records usage",
        as_key(&f.read_key),
        Refused(403, "insufficient_scope"),
    );
    t.add(
        "api key: usage:read only, records a batch",
        post("/v1/usage/batch")
            .bearer(&f.read_key)
            .json(&json!({"events": [batch_event(json!({}))]})),
        Refused(403, "insufficient_scope"),
    );
    t.add(
        "api key: usage:write only, reads the overview",
        req("GET", "/v1/usage/overview").bearer(&f.write_key),
        Refused(403, "insufficient_scope"),
    );
    t.add(
        "api key: reads another user's overview",
        req(
            "GET",
            &format!("/v1/usage/overview?user_id={}", f.victim.id),
        )
        .bearer(&f.read_key),
        Refused(403, "forbidden"),
    );
    t.add(
        "api key: creates an API key",
        post("/v1/api-keys")
            .bearer(&f.write_key)
            .json(&json!({"name": "minted by a key"})),
        Refused(403, "user_token_required"),
    );
}

/// A user Supabase Auth banned or soft-deleted: neither their tokens (still
/// unexpired and verifiable) nor their API keys work any more.
fn banned_or_deleted_user_cases(t: &mut Table, f: &Fixtures) {
    let spend = |bearer: &str| {
        post("/v1/usage")
            .bearer(bearer)
            .header("idempotency-key", &unique("adv"))
            .json(&good_event())
    };
    t.add(
        "banned user: token, usage",
        spend(&f.banned.token),
        Refused(403, "user_banned"),
    );
    t.add(
        "banned user: token, new API key",
        post("/v1/api-keys")
            .bearer(&f.banned.token)
            .json(&json!({"name": "after the ban"})),
        Refused(403, "user_banned"),
    );
    t.add(
        "banned user: API key, usage",
        spend(&f.banned_key),
        Refused(403, "user_banned"),
    );
    t.add(
        "banned user: API key, usage queued",
        spend(&f.banned_key).header("prefer", "respond-async"),
        Refused(403, "user_banned"),
    );
    t.add(
        "banned user: API key, overview",
        req("GET", "/v1/usage/overview").bearer(&f.banned_key),
        Refused(403, "user_banned"),
    );
    t.add(
        "deleted user: token, usage",
        spend(&f.deleted.token),
        Refused(403, "user_deleted"),
    );
    t.add(
        "deleted user: token, list API keys",
        req("GET", "/v1/api-keys").bearer(&f.deleted.token),
        Refused(403, "user_deleted"),
    );
}

/// An anonymous sign-in under the default `ANONYMOUS_USERS` (read_only):
/// no spending, no holds, no API keys.
fn anonymous_user_cases(t: &mut Table, f: &Fixtures) {
    let refused = Refused(403, "anonymous_user_read_only");
    t.add(
        "anonymous user: usage",
        post("/v1/usage")
            .bearer(&f.anonymous_token)
            .header("idempotency-key", &unique("adv"))
            .json(&good_event()),
        refused,
    );
    t.add(
        "anonymous user: usage queued",
        post("/v1/usage")
            .bearer(&f.anonymous_token)
            .header("idempotency-key", &unique("adv"))
            .header("prefer", "respond-async")
            .json(&good_event()),
        refused,
    );
    t.add(
        "anonymous user: hold",
        post("/v1/usage/reservations")
            .bearer(&f.anonymous_token)
            .json(&json!({"tokens": 10})),
        refused,
    );
    t.add(
        "anonymous user: new API key",
        post("/v1/api-keys")
            .bearer(&f.anonymous_token)
            .json(&json!({"name": "anonymous"})),
        refused,
    );
}

fn db_hook_cases(t: &mut Table, f: &Fixtures) {
    let secret = db_webhook_secret();
    let insert = db_insert_event(f.auth_record.clone());
    let deliver = |secret: Option<&str>, body: &Value| {
        let r = post(DB_USER_INSERT).json(body);
        match secret {
            Some(s) => r.header("x-webhook-secret", s),
            None => r,
        }
    };
    t.add(
        "db hook: wrong secret",
        deliver(Some("not-the-secret"), &insert),
        Refused(401, "invalid_webhook_secret"),
    );
    t.add(
        "db hook: no secret",
        deliver(None, &insert),
        Refused(401, "missing_webhook_secret"),
    );
    let (head, tail) = secret.split_at(secret.len() / 2);
    t.add(
        "db hook: secret with a space inside",
        deliver(Some(&format!("{head} {tail}")), &insert),
        Refused(401, "invalid_webhook_secret"),
    );
    t.add(
        "db hook: secret twice, space-separated",
        deliver(Some(&format!("{secret} {secret}")), &insert),
        Refused(401, "invalid_webhook_secret"),
    );
    for (field, value) in [
        ("type", "UPDATE"),
        ("type", "DELETE"),
        ("table", "identities"),
        ("schema", "public"),
    ] {
        let mut event = insert.clone();
        event[field] = json!(value);
        t.add(
            format!("db hook: {field} {value}"),
            deliver(Some(&secret), &event),
            Refused(422, "unsupported_webhook_event"),
        );
    }
    t.add(
        "db hook: malformed JSON",
        post(DB_USER_INSERT)
            .header("x-webhook-secret", &secret)
            .raw_json(r#"{"type": "INSERT", "#),
        Refused(400, "invalid_json"),
    );
    let mut bad_id = insert.clone();
    bad_id["record"]["id"] = json!("x'; drop table platform.users; --");
    t.add(
        "db hook: SQL as the user id",
        deliver(Some(&secret), &bad_id),
        Refused(422, "invalid_webhook_record"),
    );
    let mut nul_email = insert.clone();
    nul_email["record"]["email"] = json!(format!("adv\u{0}-{}@example.com", f.auth_user_id));
    t.add(
        "db hook: NUL in the email",
        deliver(Some(&secret), &nul_email),
        Refused(422, "invalid_webhook_record"),
    );
}

/// Each case arrives when its key, user or client address has just gone
/// over its rate limit: the 429 comes before anything is recorded, held,
/// created or mirrored. (The flood is `GET /v1/me`, with the key or token
/// or without credentials, which changes nothing either.)
fn rate_limit_cases(t: &mut Table, f: &Fixtures) {
    let address = format!("2001:db8:ad:{}::1", &random_uuid()[..4]);
    let from = |r: Req| r.header("cf-connecting-ip", &address);
    let key_flood = req("GET", "/v1/me").bearer(&f.limited_key);
    let user_flood = req("GET", "/v1/me").bearer(&f.limited.token);
    let address_flood = from(req("GET", "/v1/me"));
    let event = || {
        post("/v1/usage")
            .header("idempotency-key", &random_uuid())
            .json(&good_event())
    };
    t.add_over_limit(
        "rate limit: usage with an API key over its limit",
        key_flood.clone(),
        event().bearer(&f.limited_key),
    );
    t.add_over_limit(
        "rate limit: a hold with an API key over its limit",
        key_flood,
        post("/v1/usage/reservations")
            .bearer(&f.limited_key)
            .json(&json!({"tokens": 10})),
    );
    t.add_over_limit(
        "rate limit: usage with a user token over its limit",
        user_flood.clone(),
        event().bearer(&f.limited.token),
    );
    t.add_over_limit(
        "rate limit: a new API key for a user over the limit",
        user_flood,
        post("/v1/api-keys")
            .bearer(&f.limited.token)
            .json(&json!({"name": "over the limit"})),
    );
    t.add_over_limit(
        "rate limit: no credentials from an address over its limit",
        address_flood.clone(),
        from(event()),
    );
    t.add_over_limit(
        "rate limit: a forged API key from an address over its limit",
        address_flood.clone(),
        from(event().bearer(&format!("cds_{}_{}", "f".repeat(24), "A".repeat(43)))),
    );
    t.add_over_limit(
        "rate limit: the model list from an address over its limit",
        address_flood.clone(),
        from(req("GET", "/v1/models")),
    );
    t.add_over_limit(
        "rate limit: db hook, wrong secret, address over its limit",
        address_flood,
        from(
            post(DB_USER_INSERT)
                .header("x-webhook-secret", "not-the-secret")
                .json(&db_insert_event(f.auth_record.clone())),
        ),
    );
}

fn signup_hook_cases(t: &mut Table) {
    let key = hmac_key(&auth_hook_secret());
    let body = before_user_created_payload(&random_uuid(), "new@example.com").to_string();
    let deliver = |headers: Vec<(&str, String)>, body: &str| {
        let mut r = post(BEFORE_USER_CREATED).raw_json(body.to_string());
        for (name, value) in headers {
            r = r.header(name, &value);
        }
        r
    };
    // Signed as Supabase Auth signs, at `timestamp`, over `signed`.
    let signed = |id: &str, timestamp: i64, signed: &str| -> Vec<(&'static str, String)> {
        vec![
            ("webhook-id", id.to_string()),
            ("webhook-timestamp", timestamp.to_string()),
            (
                "webhook-signature",
                sign_v1(&key, id, &timestamp.to_string(), signed.as_bytes()),
            ),
        ]
    };
    let id = format!("msg_{}", &random_uuid()[..8]);
    let good = signed(&id, now(), &body);
    let signature = good[2].1.clone();

    let mut wrong = good.clone();
    wrong[2].1 = sign_v1(
        b"not-the-hook-secret-0123456789ab",
        &id,
        &good[1].1,
        body.as_bytes(),
    );
    t.add(
        "signup hook: signed with another secret",
        deliver(wrong, &body),
        Refused(401, "invalid_webhook_signature"),
    );
    t.add(
        "signup hook: no signature headers",
        deliver(Vec::new(), &body),
        Refused(401, "missing_webhook_headers"),
    );
    t.add(
        "signup hook: no webhook-signature",
        deliver(good[..2].to_vec(), &body),
        Refused(401, "missing_webhook_headers"),
    );
    let mut spaced = good.clone();
    spaced[2].1 = signature.replacen("v1,", "v1, ", 1);
    t.add(
        "signup hook: a space after v1,",
        deliver(spaced, &body),
        Refused(401, "invalid_webhook_signature"),
    );
    let mut padded = good.clone();
    let (sig_head, sig_tail) = signature.split_at(signature.len() / 2);
    padded[2].1 = format!("{sig_head} {sig_tail}");
    t.add(
        "signup hook: a space inside the signature",
        deliver(padded, &body),
        Refused(401, "invalid_webhook_signature"),
    );
    let tampered = body.replace("new@example.com", "admin@example.com");
    t.add(
        "signup hook: body changed after signing",
        deliver(good.clone(), &tampered),
        Refused(401, "invalid_webhook_signature"),
    );
    t.add(
        "signup hook: timestamp an hour old",
        deliver(signed(&id, now() - 3600, &body), &body),
        Refused(401, "webhook_timestamp_too_old"),
    );
    t.add(
        "signup hook: timestamp an hour ahead",
        deliver(signed(&id, now() + 3600, &body), &body),
        Refused(401, "webhook_timestamp_too_new"),
    );
    let mut fractional = good.clone();
    fractional[1].1 = format!("{}.5", now());
    t.add(
        "signup hook: timestamp not whole seconds",
        deliver(fractional, &body),
        Refused(401, "invalid_webhook_timestamp"),
    );
    let mut other_hook: Value = serde_json::from_str(&body).expect("payload");
    other_hook["metadata"]["name"] = json!("custom-access-token");
    let other_hook = other_hook.to_string();
    t.add(
        "signup hook: another hook's payload",
        deliver(signed(&id, now(), &other_hook), &other_hook),
        Refused(422, "unsupported_hook_event"),
    );
    let no_user = json!({"metadata": {"name": "before-user-created"}}).to_string();
    t.add(
        "signup hook: a payload without a user",
        deliver(signed(&id, now(), &no_user), &no_user),
        Refused(400, "invalid_json"),
    );
    let nested = format!(
        r#"{{"user":{{"email":"n@example.com","user_metadata":{}1{}}}}}"#,
        r#"{"a":"#.repeat(5000),
        "}".repeat(5000)
    );
    t.add(
        "signup hook: user_metadata nested 5000 levels",
        deliver(signed(&id, now(), &nested), &nested),
        Refused(400, "invalid_json"),
    );
}

// ------------------------------------------------------------------- the test

#[test]
fn hostile_requests_are_refused_with_their_code_and_change_nothing() {
    let jwks_file = env("CDS_JWKS_FILE");
    let published_before = std::fs::read_to_string(&jwks_file).ok();
    let f = fixtures();
    let valid_keys = [
        f.read_key.clone(),
        f.write_key.clone(),
        f.limited_key.clone(),
    ];

    let mut table = Table::default();
    usage_input_cases(&mut table, &f);
    batch_cases(&mut table, &f);
    other_usage_cases(&mut table, &f);
    jwt_cases(&mut table, &f);
    api_key_cases(&mut table, &f);
    banned_or_deleted_user_cases(&mut table, &f);
    anonymous_user_cases(&mut table, &f);
    db_hook_cases(&mut table, &f);
    signup_hook_cases(&mut table);
    rate_limit_cases(&mut table, &f);
    let cases = table.0;

    let mut db = db();
    let first = fingerprint(&mut db);
    let mut tables = first.clone();
    let mut used = key_use(&mut db);
    let mut failures = Vec::new();
    let mut report = Vec::new();
    for case in &cases {
        if let Some(flood) = &case.flood {
            e2e_tests::flood_until_limited(|| plain_request(flood));
        }
        let verdict = send_case(&case.req).and_then(|reply| judge(&reply, case.expect));
        match verdict {
            Ok(got) => report.push(format!("  ok    {:<58} {got}", case.name)),
            Err(why) => {
                report.push(format!("  FAIL  {:<58} {why}", case.name));
                failures.push(format!("{}: {why}", case.name));
            }
        }
        let now_tables = fingerprint(&mut db);
        let changed = changes(&tables, &now_tables);
        if !changed.is_empty() {
            failures.push(format!(
                "{}: changed the database: {}",
                case.name,
                changed.join("; ")
            ));
            tables = now_tables;
        }
        let now_used = key_use(&mut db);
        if now_used != used {
            let with_valid_key = case
                .req
                .bearer_token()
                .is_some_and(|k| valid_keys.iter().any(|v| v == k));
            let line = format!("{}: set api_keys.last_used_at", case.name);
            if with_valid_key {
                report.push(format!("  note  {line} (a valid key, refused later)"));
            } else {
                failures.push(format!("{line} without a valid key"));
            }
            used = now_used;
        }
    }
    // Anything written after its answer (telemetry aside) shows up here.
    std::thread::sleep(Duration::from_secs(1));
    let late = changes(&tables, &fingerprint(&mut db));
    if !late.is_empty() {
        failures.push(format!(
            "changed after the last answer: {}",
            late.join("; ")
        ));
    }

    if let Some(text) = published_before {
        let keys: Value = serde_json::from_str(&text).unwrap_or(json!({"keys": []}));
        let keys: Vec<Value> = keys["keys"].as_array().cloned().unwrap_or_default();
        publish_jwks(&keys.iter().collect::<Vec<_>>());
    }

    eprintln!(
        "{} adversarial cases over {} tables:\n{}",
        cases.len(),
        first.len(),
        report.join("\n")
    );
    assert!(cases.len() >= 45, "only {} cases", cases.len());
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
