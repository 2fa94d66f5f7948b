//! Sends the requests `shared::postgrest` describes, with a timeout.
//!
//! The request, its timeout and the body read are one JavaScript call
//! (`js/rest.js`): built through `worker`'s `Request`, `Headers`,
//! `AbortController` and `Delay` wrappers, one subrequest crossed between
//! wasm and JavaScript a few dozen times, a measurable share of a request's
//! CPU in workerd.

use shared::postgrest::{HttpCall, RETRY_AFTER_SECS};
use shared::ApiError;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

#[wasm_bindgen(module = "/js/rest.js")]
extern "C" {
    /// Sends the request and reads the whole answer: a promise of a
    /// [`RestAnswer`], rejected with a `RestTimeout` error when no answer
    /// came within `timeout_ms`, or with the network error. Throws at once
    /// when the request cannot be built.
    #[wasm_bindgen(js_name = restCall, catch)]
    fn rest_call(
        url: &str,
        method: &str,
        header_lines: &str,
        body: Option<&str>,
        timeout_ms: u32,
    ) -> Result<js_sys::Promise, JsValue>;

    type RestAnswer;

    #[wasm_bindgen(method, getter)]
    fn status(this: &RestAnswer) -> u16;

    #[wasm_bindgen(method, getter)]
    fn body(this: &RestAnswer) -> js_sys::Uint8Array;
}

/// The status and body of an answer.
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Sends `call`; a network failure or no answer within `timeout_ms` is
/// [`ApiError::Unavailable`], so the caller answers 503 instead of hanging.
pub async fn send(call: &HttpCall, timeout_ms: u32) -> Result<Answer, ApiError> {
    let building = |detail: String| ApiError::Internal {
        detail: format!("building a REST request: {detail}"),
    };
    let header_lines = header_lines(&call.headers).map_err(building)?;
    let promise = rest_call(
        &call.url,
        call.method,
        &header_lines,
        call.body.as_deref(),
        timeout_ms,
    )
    .map_err(|e| building(describe(&e)))?;
    match crate::js_await::settled(&promise).await {
        Ok(answer) => {
            let answer: RestAnswer = answer.unchecked_into();
            Ok(Answer {
                status: answer.status(),
                body: answer.body().to_vec(),
            })
        }
        Err(e) => {
            worker::console_warn!("REST request to {} failed: {}", call.url, describe(&e));
            Err(ApiError::Unavailable {
                retry_after_secs: RETRY_AFTER_SECS,
            })
        }
    }
}

/// Sends an RPC, waiting at most `timeout_ms`, and interprets PostgREST's
/// answer: the JSON result, or the
/// `ApiError` it means (`shared::postgrest::map_error`).
pub async fn rpc(call: &HttpCall, timeout_ms: u32) -> Result<serde_json::Value, ApiError> {
    let answer = send(call, timeout_ms).await?;
    shared::postgrest::interpret_rpc(answer.status, &answer.body)
}

/// The headers as `js/rest.js` reads them: name and value alternately,
/// each ended by a line break. HTTP forbids line breaks in both, and
/// `Headers` refuses them; one here would shift every later header, so it
/// is refused before anything is sent.
fn header_lines(headers: &[(&'static str, String)]) -> Result<String, String> {
    let mut lines = String::with_capacity(headers.iter().map(|(n, v)| n.len() + v.len() + 2).sum());
    for (name, value) in headers {
        if shared::http::has_line_break(name) || shared::http::has_line_break(value) {
            return Err(format!("the {name} header holds a line break"));
        }
        lines.push_str(name);
        lines.push('\n');
        lines.push_str(value);
        lines.push('\n');
    }
    Ok(lines)
}

/// A thrown JavaScript value as text: an error's name and message.
fn describe(e: &JsValue) -> String {
    match e.dyn_ref::<js_sys::Error>() {
        Some(error) => format!(
            "{}: {}",
            String::from(error.name()),
            String::from(error.message())
        ),
        None => format!("{e:?}"),
    }
}
