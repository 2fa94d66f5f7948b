//! Helpers for the end-to-end tests, which run against the stack that
//! `cargo xtask test` starts. The stack's addresses and keys arrive in
//! `CDS_*` variables; pointing them at a real Supabase project and a deployed
//! Worker runs the same tests there.

pub mod contract;
pub mod db;
pub mod load;
pub mod node;
pub mod reference;
pub mod tokens;
pub mod users;
pub mod webhooks;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A required variable from the environment the test command sets.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the end-to-end tests with `cargo xtask test`")
    })
}

pub fn worker_url(path: &str) -> String {
    format!("{}{path}", env("CDS_WORKER_URL"))
}

/// A secret the Worker holds, named as in its variables (`DB_WEBHOOK_SECRET`,
/// `AUTH_HOOK_SECRET`): from `CDS_<name>` when set, else from the local
/// stack's Worker variables file (the test profile's `dev.vars` beside the
/// JWKS file, or the dev profile's `.dev.vars` at the repository root).
pub fn worker_secret(name: &str) -> String {
    if let Ok(value) = std::env::var(format!("CDS_{name}")) {
        return value;
    }
    let beside_jwks = std::path::Path::new(&env("CDS_JWKS_FILE")).with_file_name("dev.vars");
    let repo_root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.dev.vars");
    [beside_jwks, repo_root]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .find_map(|text| {
            text.lines().find_map(|line| {
                line.strip_prefix(name)
                    .and_then(|rest| rest.strip_prefix('='))
                    .map(|v| v.trim().to_string())
            })
        })
        .unwrap_or_else(|| panic!("CDS_{name} is not set and no local vars file names {name}"))
}

/// Unix seconds now.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs() as i64
}

/// A random UUID (version 4), so every test works on its own rows.
pub fn random_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// What each rate limiting binding allows per minute on the stack under
/// test: `CDS_RATE_LIMIT`, which `cargo xtask` sets for its profile, else
/// the largest limit of `wrangler.toml` (a deployed Worker).
pub fn rate_limit() -> usize {
    std::env::var("CDS_RATE_LIMIT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1200)
}

/// How much of a rate-limit window must be left before a flood starts.
/// Cloudflare's local limiter (and the bench's stand-in) counts in windows
/// aligned on the clock (`floor(now / 60 s)`): a flood begun in a window's
/// last seconds could see the window turn between its 429 and the request
/// the caller then checks, which would pass, and write, unlimited.
const WINDOW_ROOM: std::time::Duration = std::time::Duration::from_secs(25);

/// Sleeps into the next window if the current one has less than
/// [`WINDOW_ROOM`] left.
fn wait_for_window_room() {
    let period = std::time::Duration::from_secs(60);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let into = std::time::Duration::from_millis((now.as_millis() % period.as_millis()) as u64);
    let left = period - into;
    if left < WINDOW_ROOM {
        std::thread::sleep(left + std::time::Duration::from_millis(200));
    }
}

/// Sends `make()`'s request from several threads at once until one is
/// answered 429, and returns that answer. It starts with at least
/// [`WINDOW_ROOM`] left in the limiters' window, so the caller's next
/// request meets the same window; should the limit reset on the way all
/// the same, after three times the limit without a 429 the limit is not
/// enforced, and this panics.
pub fn flood_until_limited(make: impl Fn() -> ureq::Request + Sync) -> Answer {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Mutex;
    wait_for_window_room();
    let cap = 3 * rate_limit() + 10;
    let sent = AtomicUsize::new(0);
    let done = AtomicBool::new(false);
    let limited = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                while !done.load(Ordering::SeqCst) && sent.fetch_add(1, Ordering::SeqCst) < cap {
                    let answer = send(make(), None);
                    if answer.status == 429 {
                        done.store(true, Ordering::SeqCst);
                        limited
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get_or_insert(answer);
                    }
                }
            });
        }
    });
    limited
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .unwrap_or_else(|| panic!("no 429 after {cap} requests"))
}

/// An answer, whatever its status.
pub struct Answer {
    pub status: u16,
    headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }

    /// Asserts the edge's error shape and returns the code.
    pub fn error_code(&self) -> String {
        let body = self.json();
        let error = body["error"]
            .as_object()
            .unwrap_or_else(|| panic!("no error object: {body}"));
        assert!(
            error["message"].is_string(),
            "error without message: {body}"
        );
        error["code"].as_str().unwrap_or_default().to_string()
    }

    /// `(status, code)` of a refusal, for one-line table assertions.
    pub fn refusal(&self) -> (u16, String) {
        (self.status, self.error_code())
    }
}

/// Checks that each case's answer is a 401 with its code, naming the case
/// that was not.
pub fn assert_unauthorized(cases: &[(&str, Answer, &str)]) {
    for (case, answer, code) in cases {
        assert_eq!(
            answer.refusal(),
            (401, code.to_string()),
            "{case}: {}",
            answer.body
        );
    }
}

pub fn request(method: &str, url: &str) -> ureq::Request {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(15))
        .build()
        .request(method, url)
}

/// Sends `req` with an optional body; 4xx and 5xx are answers, not errors.
/// An answer of the Worker that the OpenAPI document does not allow fails
/// the test here (`contract`).
pub fn send(req: ureq::Request, body: Option<&[u8]>) -> Answer {
    let (method, url) = (req.method().to_string(), req.url().to_string());
    let result = match body {
        Some(bytes) => req.send_bytes(bytes),
        None => req.call(),
    };
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("request failed: {e}"),
    };
    let status = response.status();
    let headers = response
        .headers_names()
        .into_iter()
        .filter_map(|n| response.header(&n).map(|v| (n.clone(), v.to_string())))
        .collect();
    let content_type = response.header("content-type").map(String::from);
    let body = response.into_string().unwrap_or_default();
    contract::assert_documented(&method, &url, status, content_type.as_deref(), &body);
    Answer {
        status,
        headers,
        body,
    }
}

/// `GET /v1/me` with `Authorization: <authorization>` (or none).
pub fn me_with_header(authorization: Option<&str>) -> Answer {
    let req = request("GET", &worker_url("/v1/me"));
    let req = match authorization {
        Some(value) => req.set("authorization", value),
        None => req,
    };
    send(req, None)
}

/// `GET /v1/me` as the bearer of `token` (an access token or an API key).
pub fn me(token: &str) -> Answer {
    me_with_header(Some(&format!("Bearer {token}")))
}

/// Sends a JSON body with `Authorization: Bearer <token>`.
pub fn send_json_as(method: &str, path: &str, token: &str, body: &serde_json::Value) -> Answer {
    send(
        request(method, &worker_url(path))
            .set("authorization", &format!("Bearer {token}"))
            .set("content-type", "application/json"),
        Some(body.to_string().as_bytes()),
    )
}

/// Retries `attempt` every 250 ms until it returns `Some`, for at most
/// `within`; the last answer is returned either way.
pub fn eventually<T>(within: Duration, mut attempt: impl FnMut() -> Result<T, String>) -> T {
    let deadline = std::time::Instant::now() + within;
    loop {
        match attempt() {
            Ok(done) => return done,
            Err(last) if std::time::Instant::now() >= deadline => {
                panic!("still not done after {within:?}: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}
