//! Turning results into HTTP responses: the one place an [`ApiError`] becomes
//! a response.

use shared::ApiError;
use worker::{Headers, Response};

/// A JSON response with `status`.
pub fn json(status: u16, body: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => with_json_body(status, bytes),
        Err(e) => error(&ApiError::Internal {
            detail: format!("serializing a response: {e}"),
        }),
    }
}

/// `201 Created` for a recorded (or replayed) write. The RPC's `replayed`
/// flag moves into the `Idempotent-Replayed` header, so a retry's body is
/// exactly the first answer's.
pub fn created(mut result: serde_json::Value) -> Response {
    let replayed = result
        .as_object_mut()
        .and_then(|o| o.remove("replayed"))
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    add_headers(
        json(201, &result),
        vec![("idempotent-replayed", replayed.to_string())],
    )
}

/// A response whose body is already JSON text.
pub fn json_text(status: u16, body: String) -> Response {
    with_json_body(status, body.into_bytes())
}

/// The JSON error response for `err`, logged when it carries operator detail.
pub fn error(err: &ApiError) -> Response {
    if let Some(detail) = err.log_detail() {
        worker::console_error!("{} {}: {}", err.status(), err.code(), detail);
    }
    let response = with_json_body(err.status(), err.body().into_bytes());
    add_headers(response, err.headers())
}

/// `202 Accepted` for work handed to the usage queue (`Prefer:
/// respond-async` honoured, as RFC 7240 asks the answer to say).
pub fn accepted(body: &serde_json::Value, location: Option<String>) -> Response {
    let mut headers = vec![("preference-applied", "respond-async".to_string())];
    if let Some(location) = location {
        headers.push(("location", location));
    }
    add_headers(json(202, body), headers)
}

/// An empty response, e.g. `204` to a preflight.
pub fn empty(status: u16) -> Response {
    Response::builder().with_status(status).empty()
}

/// Adds headers to a response; a header the runtime refuses is dropped, never fatal.
pub fn add_headers<N: AsRef<str>>(mut response: Response, headers: Vec<(N, String)>) -> Response {
    let target = response.headers_mut();
    for (name, value) in headers {
        let _ = target.append(name.as_ref(), &value);
    }
    response
}

fn with_json_body(status: u16, body: Vec<u8>) -> Response {
    let headers = Headers::new();
    let _ = headers.set("content-type", "application/json");
    Response::builder()
        .with_status(status)
        .with_headers(headers)
        .fixed(body)
}
