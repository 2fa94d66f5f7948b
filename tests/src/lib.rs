//! Helpers for the end-to-end tests, which run against the stack that
//! `cargo xtask test` starts. The stack's addresses and keys arrive in
//! `CDS_*` variables; pointing them at a real Supabase project and a deployed
//! Worker runs the same tests there.

use std::time::Duration;

/// A required variable from the environment the test command sets.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the end-to-end tests with `cargo xtask test`")
    })
}

pub fn worker_url(path: &str) -> String {
    format!("{}{path}", env("CDS_WORKER_URL"))
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
}

pub fn request(method: &str, url: &str) -> ureq::Request {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(15))
        .build()
        .request(method, url)
}

/// Sends `req` with an optional body; 4xx and 5xx are answers, not errors.
pub fn send(req: ureq::Request, body: Option<&[u8]>) -> Answer {
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
    let body = response.into_string().unwrap_or_default();
    Answer {
        status,
        headers,
        body,
    }
}
