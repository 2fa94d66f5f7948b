//! Sending to the usage queue's producer binding: each `sendBatch` in one
//! call into JavaScript (`js/queue.js`), the bodies handed over as the JSON
//! text `shared::queue` encodes. `worker::Queue` converts every body and
//! option through serde-wasm-bindgen, whose serializer cost the wasm about
//! 4 KB for bodies that are already text.

use shared::queue::PRODUCER_BINDING;
use shared::ApiError;
use wasm_bindgen::prelude::*;
use worker::Env;

#[wasm_bindgen(module = "/js/queue.js")]
extern "C" {
    /// The binding, or `undefined` when it is not bound.
    #[wasm_bindgen(js_name = queueBinding)]
    fn queue_binding(env: &JsValue, name: &str) -> JsValue;

    /// A promise that the queue took the batch; throws when it refuses it
    /// outright.
    #[wasm_bindgen(js_name = sendBodies, catch)]
    fn send_bodies(queue: &JsValue, bodies: Vec<String>) -> Result<js_sys::Promise, JsValue>;
}

/// The producer binding; 500 `misconfigured` when the deployment lacks it.
pub fn producer(env: &Env) -> Result<JsValue, ApiError> {
    let queue = queue_binding(env.as_ref(), PRODUCER_BINDING);
    if queue.is_undefined() {
        return Err(ApiError::Misconfigured {
            detail: format!(
                "queue binding {PRODUCER_BINDING} is not bound: declare it under \
                 [[queues.producers]] in wrangler.toml and deploy"
            ),
        });
    }
    Ok(queue)
}

/// Sends one `sendBatch`; a refusal or failure is 503 (logged), so the client
/// retries and the events already queued count once by their keys.
pub async fn send_batch(queue: &JsValue, bodies: Vec<String>) -> Result<(), ApiError> {
    let sent = match send_bodies(queue, bodies) {
        Ok(promise) => crate::js_await::settled(&promise).await.map(drop),
        Err(e) => Err(e),
    };
    sent.map_err(|e| {
        worker::console_error!("enqueueing usage failed: {}", worker::Error::from(e));
        ApiError::Unavailable {
            retry_after_secs: shared::postgrest::RETRY_AFTER_SECS,
        }
    })
}
