//! Reading what a request carries: headers and its JSON body. (The body's
//! size was already checked by `app`.)

use serde_json::Value;
use shared::ApiError;
use worker::Request;

/// A header's value, or `None` when absent or not text.
pub fn header(req: &Request, name: &str) -> Option<String> {
    req.headers().get(name).ok().flatten()
}

/// The body as JSON, insisting on `Content-Type: application/json`.
pub fn json_body(req: &Request, body: &[u8]) -> Result<Value, ApiError> {
    shared::http::parse_json(header(req, "content-type").as_deref(), body)
}
