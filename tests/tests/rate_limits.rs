//! Rate limits through the real binding (`[[ratelimits]]` under `wrangler
//! dev`): each test sends requests as a key, user or client address of its
//! own until the 429 arrives, then checks the answer (code, message naming
//! the limit, `Retry-After`, CORS) and that another key, user or address is
//! not affected. The test stack runs with `CDS_RATE_LIMIT` requests per
//! minute per limiter, out of reach of the other tests.
//!
//! Client addresses: locally, wrangler sets `CF-Connecting-IP` to the
//! connecting socket's address only when the request carries none, so a test
//! can name its own (documentation ranges, random per run); on Cloudflare,
//! the edge sets it and a client cannot.

use e2e_tests::users::TestUser;
use e2e_tests::{
    flood_until_limited, random_uuid, request, send, send_json_as, worker_url, Answer,
};
use serde_json::json;

/// An origin `ALLOWED_ORIGINS` lets in (wrangler.toml).
const ALLOWED_ORIGIN: &str = "http://localhost:3000";

/// A client address no other test uses (IPv6 documentation range).
fn fresh_address() -> String {
    let id = random_uuid().replace('-', "");
    format!("2001:db8:{}:{}::1", &id[..4], &id[4..8])
}

fn me_as(bearer: Option<&str>, address: &str) -> ureq::Request {
    let req = request("GET", &worker_url("/v1/me"))
        .set("cf-connecting-ip", address)
        .set("origin", ALLOWED_ORIGIN);
    match bearer {
        Some(token) => req.set("authorization", &format!("Bearer {token}")),
        None => req,
    }
}

/// `check`'s answer right after `flood` was answered 429. The limiters
/// count in fixed windows aligned on the clock: should one end between the
/// flood and the check (the check may wait on the database), both are
/// repeated once; a second window cannot end within the same second.
fn while_over(
    flood: &(impl Fn() -> ureq::Request + Sync),
    check: impl Fn() -> ureq::Request,
) -> Answer {
    let mut answer = None;
    for _ in 0..2 {
        flood_until_limited(flood);
        let got = send(check(), None);
        let limited = got.status == 429;
        answer = Some(got);
        if limited {
            break;
        }
    }
    answer.expect("at least one attempt")
}

/// A request to send while an address is over its limit.
type Check<'a> = Box<dyn Fn() -> ureq::Request + 'a>;

/// The refusal every limiter answers with.
fn assert_rate_limited(answer: &Answer, limit: &str) {
    assert_eq!(
        answer.refusal(),
        (429, "rate_limited".to_string()),
        "{}",
        answer.body
    );
    let message = answer.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(message.contains(limit), "{message}");
    assert_eq!(answer.header("retry-after"), Some("60"));
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some(ALLOWED_ORIGIN),
        "a browser must be able to read the 429"
    );
}

fn new_key(user: &TestUser) -> String {
    let created = send_json_as(
        "POST",
        "/v1/api-keys",
        &user.token,
        &json!({"name": "rate limit", "scopes": ["usage:read"]}),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    created.json()["key"].as_str().expect("key").to_string()
}

#[test]
fn an_api_key_over_its_limit_is_refused_and_other_keys_and_its_user_are_not() {
    let user = TestUser::sign_up();
    let (flooded, other) = (new_key(&user), new_key(&user));
    let address = fresh_address();
    let flood = || me_as(Some(&flooded), &address);
    let limited = flood_until_limited(flood);
    assert_rate_limited(&limited, "per-API-key");

    let again = while_over(&flood, flood);
    assert_eq!(again.status, 429, "{}", again.body);
    for bearer in [&other, &user.token] {
        let answer = send(me_as(Some(bearer), &address), None);
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
}

#[test]
fn a_user_over_their_limit_is_refused_and_other_users_are_not() {
    let (flooded, other) = (TestUser::sign_up(), TestUser::sign_up());
    let address = fresh_address();
    let flood = || me_as(Some(&flooded.token), &address);
    let limited = flood_until_limited(flood);
    assert_rate_limited(&limited, "per-user");

    let again = while_over(&flood, flood);
    assert_eq!(again.status, 429, "{}", again.body);
    let answer = send(me_as(Some(&other.token), &address), None);
    assert_eq!(answer.status, 200, "{}", answer.body);
}

#[test]
fn requests_without_valid_credentials_are_limited_per_client_address() {
    let flooded = fresh_address();
    // Refused for want of credentials (401) until the address is over.
    let flood = || me_as(None, &flooded);
    let limited = flood_until_limited(flood);
    assert_rate_limited(&limited, "per-client-address");

    // The same address is over for every request not authenticated: bad
    // credentials, a public route.
    let forged = format!("cds_{}_{}", "0".repeat(24), "A".repeat(43));
    let from_flooded =
        |path: &str| request("GET", &worker_url(path)).set("cf-connecting-ip", &flooded);
    let checks: [(&str, Check); 4] = [
        (
            "a forged API key",
            Box::new(|| me_as(Some(&forged), &flooded)),
        ),
        (
            "a malformed token",
            Box::new(|| me_as(Some("not-a-jwt"), &flooded)),
        ),
        (
            "the public model list",
            Box::new(|| from_flooded("/v1/models")),
        ),
        ("/health", Box::new(|| from_flooded("/health"))),
    ];
    for (what, check) in checks {
        let answer = while_over(&flood, check);
        assert_eq!(
            answer.refusal(),
            (429, "rate_limited".into()),
            "{what}: {}",
            answer.body
        );
    }
    // What the pipeline refuses before any handler (here an unknown path)
    // is counted after its answer, which stays what it was.
    let answer = send(from_flooded("/v1/nothing-here"), None);
    assert_eq!(
        answer.refusal(),
        (404, "not_found".into()),
        "{}",
        answer.body
    );

    // A verified caller from that address is charged to their own limit,
    // and another address is not affected.
    let user = TestUser::sign_up();
    let answer = send(me_as(Some(&user.token), &flooded), None);
    assert_eq!(answer.status, 200, "{}", answer.body);
    let answer = send(me_as(None, &fresh_address()), None);
    assert_eq!(
        answer.refusal(),
        (401, "missing_token".into()),
        "{}",
        answer.body
    );
}
