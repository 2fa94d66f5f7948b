//! Sends the requests `shared::postgrest` describes, with a timeout.

use futures_util::future::{select, Either};
use shared::postgrest::{HttpCall, RETRY_AFTER_SECS};
use shared::ApiError;
use std::time::Duration;
use worker::js_sys::Uint8Array;
use worker::wasm_bindgen_futures::JsFuture;
use worker::{web_sys, AbortController, Delay, Fetch, Headers, Method, Request, RequestInit};

/// The status and body of an answer.
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Sends `call`; a network failure or no answer within `timeout_ms` is
/// [`ApiError::Unavailable`], so the caller answers 503 instead of hanging.
pub async fn send(call: &HttpCall, timeout_ms: u32) -> Result<Answer, ApiError> {
    let request = build(call).map_err(|e| ApiError::Internal {
        detail: format!("building a REST request: {e}"),
    })?;
    let controller = AbortController::default();
    let signal = controller.signal();
    let attempt = async {
        let response = Fetch::Request(request).send_with_signal(&signal).await?;
        let status = response.status_code();
        let body = whole_body(response).await?;
        Ok::<_, worker::Error>(Answer { status, body })
    };
    let timeout = Delay::from(Duration::from_millis(u64::from(timeout_ms)));
    futures_util::pin_mut!(attempt);
    match select(attempt, timeout).await {
        Either::Left((Ok(answer), _)) => Ok(answer),
        Either::Left((Err(e), _)) => {
            worker::console_warn!("REST request to {} failed: {e}", call.url);
            Err(unavailable())
        }
        Either::Right(((), _)) => {
            controller.abort();
            worker::console_warn!(
                "REST request to {} timed out after {timeout_ms} ms",
                call.url
            );
            Err(unavailable())
        }
    }
}

/// Sends an RPC and interprets PostgREST's answer: the JSON result, or the
/// `ApiError` it means (`shared::postgrest::map_error`).
pub async fn rpc(call: &HttpCall, config: &shared::Config) -> Result<serde_json::Value, ApiError> {
    let answer = send(call, config.rest_timeout_ms).await?;
    shared::postgrest::interpret_rpc(answer.status, &answer.body)
}

/// The answer's body in one `arrayBuffer()`. (`Response::bytes` reads the
/// stream chunk by chunk, each read a promise crossing between JavaScript and
/// wasm, plus one to see the end: a measurable share of a request's CPU.)
async fn whole_body(response: worker::Response) -> worker::Result<Vec<u8>> {
    let raw: web_sys::Response = response.into();
    let buffer = JsFuture::from(raw.array_buffer()?).await?;
    Ok(Uint8Array::new(&buffer).to_vec())
}

fn unavailable() -> ApiError {
    ApiError::Unavailable {
        retry_after_secs: RETRY_AFTER_SECS,
    }
}

fn build(call: &HttpCall) -> worker::Result<Request> {
    let headers = Headers::new();
    for (name, value) in &call.headers {
        headers.set(name, value)?;
    }
    let mut init = RequestInit::new();
    init.with_method(Method::from(call.method.to_string()))
        .with_headers(headers);
    if let Some(body) = &call.body {
        init.with_body(Some(body.as_str().into()));
    }
    Request::new_with_init(&call.url, &init)
}
