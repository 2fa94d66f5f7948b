//! Turning results into HTTP responses: the one place an [`ApiError`] becomes
//! a response.
//!
//! A [`Response`] is plain Rust data until the fetch entry point hands it to
//! workerd, and becomes a JavaScript `Response` there in one call
//! (`js/respond.js`, [`Response::into_js`]): `worker::Response` crosses
//! into JavaScript once per header added and per field of its init.

use shared::ApiError;
use wasm_bindgen::prelude::*;
use worker::web_sys;

#[wasm_bindgen(module = "/js/respond.js")]
extern "C" {
    #[wasm_bindgen(js_name = makeResponse, catch)]
    fn make_response(
        status: u16,
        header_lines: &str,
        body: Option<Vec<u8>>,
    ) -> Result<web_sys::Response, JsValue>;
}

/// An answer: status, headers in the order added, and the body (`None`
/// for none at all, as a 204 must have).
#[derive(Debug)]
pub struct Response {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
}

impl Response {
    pub fn status_code(&self) -> u16 {
        self.status
    }

    /// The JavaScript `Response` workerd sends. A header whose name or value
    /// holds a line break is left out (the runtime would refuse it too).
    pub fn into_js(self) -> Result<web_sys::Response, JsValue> {
        let mut lines = String::with_capacity(
            self.headers
                .iter()
                .map(|(n, v)| n.len() + v.len() + 2)
                .sum(),
        );
        for (name, value) in &self.headers {
            if shared::http::has_line_break(name) || shared::http::has_line_break(value) {
                continue;
            }
            lines.push_str(name);
            lines.push('\n');
            lines.push_str(value);
            lines.push('\n');
        }
        make_response(self.status, &lines, self.body)
    }
}

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

/// A response whose body is JSON bytes as they are, e.g. a static asset's.
pub fn json_bytes(status: u16, body: Vec<u8>) -> Response {
    with_json_body(status, body)
}

/// A response with a body of another type, e.g. Prometheus text.
pub fn text(status: u16, content_type: &'static str, body: String) -> Response {
    bytes(status, content_type, body.into_bytes())
}

/// A response with a body of another type, as bytes.
pub fn bytes(status: u16, content_type: &'static str, body: Vec<u8>) -> Response {
    Response {
        status,
        headers: vec![("content-type", content_type.to_string())],
        body: Some(body),
    }
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
    Response {
        status,
        headers: Vec::new(),
        body: None,
    }
}

/// Adds headers to a response, after those it has.
pub fn add_headers(mut response: Response, headers: Vec<(&'static str, String)>) -> Response {
    response.headers.extend(headers);
    response
}

fn with_json_body(status: u16, body: Vec<u8>) -> Response {
    Response {
        status,
        headers: vec![("content-type", "application/json".to_string())],
        body: Some(body),
    }
}
