//! The usage queue's consumer (`[[queues.consumers]]` in wrangler.toml): one
//! delivered batch, one RPC. `record_queued_usage` records every event it can
//! and keeps the ones it never can in `platform.usage_rejections`, so a
//! successful call acknowledges the whole batch, and the call answers only
//! counts and the rejected events. A failed call (REST or Postgres down, a
//! timeout) retries the whole batch with a growing delay; events already
//! recorded replay by their idempotency keys. The call waits
//! `QUEUE_REST_TIMEOUT_MS`, longer than the edge's `REST_TIMEOUT_MS`: a
//! large delivery may take seconds in Postgres, and giving up on a call
//! that then commits only makes its retry replay. After the
//! queue's `max_retries`, messages go to the dead-letter queue, whose batches
//! this same consumer records as rejections. Before recording, it mirrors
//! the users the messages carry (see `shared::hooks::jit_mirror`). Each
//! delivered batch is counted in telemetry as one call of
//! `usage_queue_consumer` (or `usage_dead_letter_consumer`), `ok` when the
//! RPC recorded it; the database keeps each recorded batch's lag itself
//! (`telemetry.queue_batches`).

use crate::{env_config, rest, telemetry};
use serde_json::{json, Value};
use shared::postgrest::Client;
use shared::queue::{self, Consumer, DeliveredUsage, Delivery};
use shared::Config;
use std::rc::Rc;
use wasm_bindgen::JsValue;
use worker::worker_sys::MessageBatch as RawBatch;
use worker::{Context, Env, MessageBatch, MessageExt};

/// Counts a delivered batch: `ok` when it was recorded.
fn count_batch(ctx: &Context, config: &Rc<Config>, consumer: Consumer, ok: bool, started: f64) {
    let function = consumer.telemetry_function();
    let status = if ok { "ok" } else { "error" };
    let elapsed = js_sys::Date::now() - started;
    if let Some(flush) = telemetry::record(config, function, status, None, elapsed) {
        ctx.wait_until(flush);
    }
}

/// Marks every message of the batch for redelivery after `delay_seconds`
/// (`MessageBatch.retryAll({delaySeconds})`). `worker`'s
/// `retry_all_with_options` builds that one object through
/// serde-wasm-bindgen, whose serializer was 2.8 KB of the wasm.
fn retry_all_after(raw: &RawBatch, delay_seconds: u32) {
    let options = js_sys::Object::new();
    let set = js_sys::Reflect::set(
        &options,
        &JsValue::from_str("delaySeconds"),
        &JsValue::from(delay_seconds),
    );
    if let Err(e) = set.and_then(|_| raw.retry_all(options.into())) {
        worker::console_error!("usage queue: retryAll failed: {e:?}");
    }
}

/// Takes the batch as workerd gives it (see `lib.rs`): `retry_all_after`
/// needs the JavaScript object, which `worker::MessageBatch` keeps private.
pub async fn consume(raw: RawBatch, env: Env, ctx: Context) {
    let batch: MessageBatch<Value> = MessageBatch::from(raw.clone());
    let started = js_sys::Date::now();
    let queue_name = batch.queue();
    let config = match env_config::load(&env) {
        Ok(config) => config,
        Err(e) => {
            worker::console_error!(
                "{}",
                json!({"event": "usage_queue", "queue": queue_name, "error": e.to_string()})
            );
            batch.retry_all();
            return;
        }
    };
    // Raw bodies, read as the text our edge sends (`QueuedUsage::encode`):
    // `batch.messages()` would first convert each body into a
    // `serde_json::Value` through serde-wasm-bindgen, whose deserializer and
    // error messages (with `core`'s float formatting) were 20 KB of the wasm.
    // A body that is not text reads as "", which is not one of ours.
    let messages: Vec<_> = batch.raw_iter().collect();
    let bodies: Vec<String> = messages
        .iter()
        .map(|message| message.body().as_string().unwrap_or_default())
        .collect();
    let now_ms = js_sys::Date::now();
    let mut oldest_age_secs: f64 = 0.0;
    let mut queued = Vec::with_capacity(messages.len());
    for (message, body) in messages.iter().zip(&bodies) {
        oldest_age_secs =
            oldest_age_secs.max((now_ms - message.timestamp().as_millis() as f64) / 1000.0);
        match DeliveredUsage::decode(body) {
            Some(usage) => queued.push(usage),
            // Not a message our edge wrote: nothing in it can be recorded
            // for anyone, and retrying cannot change that.
            None => {
                worker::console_error!("usage queue: dropping a message that is not a usage event");
                message.ack();
            }
        }
    }
    if queued.is_empty() {
        return;
    }

    let consumer = Consumer::of_queue(&queue_name);
    if consumer.mirrors_users() {
        // Users the accepting isolate did not know as mirrored: mirror them
        // first (each at most once per isolate), or deliver the whole batch
        // again later, as after a failed recording call.
        for user in DeliveredUsage::mirrors(&queued) {
            if let Err(e) = crate::jit_mirror::mirror_queued(&user, &config).await {
                let delivery = queue::delivery_after(&Err(e.clone()), oldest_age_secs);
                if let Delivery::RetryAll { delay_seconds } = delivery {
                    retry_all_after(&raw, delay_seconds);
                }
                worker::console_log!(
                    "{}",
                    json!({"event": "usage_queue", "queue": queue_name, "messages": queued.len(),
                           "delivery": format!("{delivery:?}"),
                           "outcome": {"status": "error", "step": "mirror_auth_user",
                                       "code": e.code(), "detail": e.log_detail()}})
                );
                count_batch(&ctx, &config, consumer, false, started);
                return;
            }
        }
    }
    let message_count = queued.len();
    let events = DeliveredUsage::event_count(&queued);
    let result = match consumer.recording_call(&Client::new(&config), &queued) {
        Ok(call) => rest::rpc(&call, config.queue_rest_timeout_ms).await,
        Err(e) => Err(e),
    };
    let delivery = queue::delivery_after(&result, oldest_age_secs);
    count_batch(&ctx, &config, consumer, result.is_ok(), started);
    match delivery {
        Delivery::AckAll => batch.ack_all(),
        Delivery::RetryAll { delay_seconds } => retry_all_after(&raw, delay_seconds),
    }
    let outcome = match &result {
        // The counts only: the rejected events (up to 5000) are not logged;
        // usage_rejections keeps each with its reason.
        // One insert at a time: collecting into the map links a stable
        // sort (`BTreeMap::from_iter`) for this log line alone.
        Ok(answer) => {
            let mut counts = serde_json::Map::new();
            for (field, value) in answer.as_object().into_iter().flatten() {
                if field != "rejections" {
                    counts.insert(field.clone(), value.clone());
                }
            }
            Value::Object(counts)
        }
        Err(e) => json!({"status": "error", "code": e.code(), "detail": e.log_detail()}),
    };
    worker::console_log!(
        "{}",
        json!({
            "event": "usage_queue",
            "queue": queue_name,
            "messages": message_count,
            "events": events,
            "oldest_age_secs": oldest_age_secs,
            "delivery": format!("{delivery:?}"),
            "outcome": outcome,
        })
    );
}
