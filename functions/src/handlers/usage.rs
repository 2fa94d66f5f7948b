//! The usage API: what LLM servers and the frontend call.
//!
//! - `POST /v1/usage`: one event, idempotent (`Idempotency-Key`); 201.
//! - `POST /v1/usage/batch`: up to 1000 events, one result each; 200.
//! - `POST /v1/usage/reservations`: hold tokens before an LLM call; 201 or 402.
//! - `DELETE /v1/usage/reservations/{id}`: give a hold back early; only the
//!   caller that took it (the same API key, or the user's own token) may.
//! - `GET /v1/usage/overview?from=&to=&user_id=`: balance and totals.
//! - `GET /v1/usage/events/{key}`: queued, recorded or rejected.
//!
//! With `Prefer: respond-async`, the two recording endpoints authenticate and
//! validate at once, hand valid events to the usage queue and answer 202,
//! without a database call (a user to mirror travels in the messages); the
//! queue consumer (`crate::usage_queue`) records them.
//!
//! A retry of a recorded event answers exactly the first answer (same status,
//! same body); `Idempotent-Replayed: true` tells the two apart.

use crate::caller::{authenticate, authenticate_for_queue, Caller};
use crate::incoming::Request;
use crate::incoming::{header, json_body};
use crate::respond::Response;
use crate::{respond, rest};
use serde_json::{json, Value};
use shared::postgrest::{Client, HttpCall};
use shared::queue::{self, QueuedUsage};
use shared::usage::{OverviewQuery, Reservation, UsageBatch, UsageEvent};
use shared::{ApiError, Config};
use worker::Env;

fn call(config: &Config, caller: &Caller, function: &str, mut args: Value) -> HttpCall {
    caller.add_identity(&mut args);
    Client::new(config).rpc("platform", function, &args, caller.rest_auth())
}

/// Hands validated events to the usage queue, in as few sends as the
/// platform's limits allow. A failed send answers 503: the client retries,
/// and the events already queued count once by their idempotency keys.
async fn enqueue(env: &Env, caller: &Caller, events: &[&UsageEvent]) -> Result<(), ApiError> {
    let (user_id, api_key_id) = caller.identity();
    let accepted_at_ms = worker::Date::now().as_millis() as f64;
    let events = events.iter().map(|event| event.to_batch_item()).collect();
    let messages: Vec<QueuedUsage> =
        QueuedUsage::for_events(user_id, api_key_id, events, accepted_at_ms)
            .into_iter()
            .map(|message| message.with_mirror(caller.pending_mirror().cloned()))
            .collect();
    let producer = env
        .queue(queue::PRODUCER_BINDING)
        .map_err(|e| ApiError::Misconfigured {
            detail: format!("queue binding {}: {e}", queue::PRODUCER_BINDING),
        })?;
    for bodies in queue::send_batches(&messages) {
        producer.send_batch(bodies).await.map_err(|e| {
            worker::console_error!("enqueueing usage failed: {e}");
            ApiError::Unavailable {
                retry_after_secs: shared::postgrest::RETRY_AFTER_SECS,
            }
        })?;
    }
    Ok(())
}

fn wants_async(req: &Request) -> bool {
    queue::wants_async(header(req, "prefer").as_deref())
}

pub async fn record(
    req: &Request,
    body: &[u8],
    config: &Config,
    env: &Env,
) -> Result<Response, ApiError> {
    let queued = wants_async(req);
    let caller = if queued {
        authenticate_for_queue(req, config).await?
    } else {
        authenticate(req, config).await?
    };
    caller.require_scope("usage:write")?;
    let event = UsageEvent::parse(
        &json_body(req, body)?,
        header(req, "idempotency-key").as_deref(),
    )?;
    if queued {
        enqueue(env, &caller, &[&event]).await?;
        let answer = queue::queued_answer(&event.idempotency_key);
        return Ok(respond::accepted(
            &answer,
            Some(queue::status_path(&event.idempotency_key)),
        ));
    }
    let result = rest::rpc(
        &call(config, &caller, "record_token_usage", event.rpc_args()),
        config,
    )
    .await?;
    Ok(respond::created(result))
}

pub async fn record_batch(
    req: &Request,
    body: &[u8],
    config: &Config,
    env: &Env,
) -> Result<Response, ApiError> {
    let queued = wants_async(req);
    let caller = if queued {
        authenticate_for_queue(req, config).await?
    } else {
        authenticate(req, config).await?
    };
    caller.require_scope("usage:write")?;
    let batch = UsageBatch::parse(&json_body(req, body)?)?;
    if queued {
        return record_batch_async(env, &caller, &batch).await;
    }

    // Events refused here never reach the database; the rest go in one RPC,
    // and their results are put back at their original positions.
    let mut results: Vec<Value> = vec![Value::Null; batch.items.len()];
    let mut sent_at = Vec::new();
    let mut sent = Vec::new();
    for (index, item) in batch.items.iter().enumerate() {
        match item {
            Ok(event) => {
                sent_at.push(index);
                sent.push(event.to_batch_item());
            }
            Err(err) => {
                let mut result = rejected(err);
                result["index"] = json!(index);
                results[index] = result;
            }
        }
    }
    if !sent.is_empty() {
        let mut answer = rest::rpc(
            &call(
                config,
                &caller,
                "record_token_usage_batch",
                json!({ "p_events": sent }),
            ),
            config,
        )
        .await?;
        // Taken, not cloned: a thousand answers are most of the work here.
        let recorded = match answer["results"].take() {
            Value::Array(results) => results,
            _ => Vec::new(),
        };
        if recorded.len() != sent_at.len() {
            return Err(ApiError::Upstream {
                detail: format!(
                    "batch RPC answered {} results for {} events",
                    recorded.len(),
                    sent_at.len()
                ),
            });
        }
        for (mut result, index) in recorded.into_iter().zip(sent_at) {
            if let Some(fields) = result.as_object_mut() {
                fields.insert("index".into(), json!(index));
                fields.remove("replayed");
            }
            results[index] = result;
        }
    }
    let count = |status: &str| results.iter().filter(|r| r["status"] == status).count();
    let body = json!({
        "recorded": count("recorded"),
        "replayed": count("replayed"),
        "rejected": count("rejected"),
        "results": results,
    });
    Ok(respond::json(200, &body))
}

/// A batch event refused at the edge, as the batch answers list it.
fn rejected(err: &ApiError) -> Value {
    json!({"status": "rejected", "error": {"code": err.code(), "message": err.to_string()}})
}

/// The batch with `Prefer: respond-async`: invalid events are refused now,
/// each with its reason, and the valid ones queued; 202 when any was queued.
async fn record_batch_async(
    env: &Env,
    caller: &Caller,
    batch: &UsageBatch,
) -> Result<Response, ApiError> {
    let valid: Vec<&UsageEvent> = batch.items.iter().filter_map(|i| i.as_ref().ok()).collect();
    if !valid.is_empty() {
        enqueue(env, caller, &valid).await?;
    }
    let results: Vec<Value> = batch
        .items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let mut result = match item {
                Ok(event) => queue::queued_answer(&event.idempotency_key),
                Err(err) => rejected(err),
            };
            result["index"] = json!(index);
            result
        })
        .collect();
    let body = json!({
        "queued": valid.len(),
        "rejected": results.len() - valid.len(),
        "results": results,
    });
    Ok(if valid.is_empty() {
        respond::json(200, &body)
    } else {
        respond::accepted(&body, None)
    })
}

/// `GET /v1/usage/events/{key}`: the caller's own event only.
pub async fn event_status(
    req: &Request,
    segment: &str,
    config: &Config,
) -> Result<Response, ApiError> {
    let caller = authenticate(req, config).await?;
    // The LLM server that sent the event (usage:write) or a reader may ask.
    caller
        .require_scope("usage:write")
        .or_else(|_| caller.require_scope("usage:read"))?;
    let key = queue::key_from_segment(segment)?;
    let result = rest::rpc(
        &call(
            config,
            &caller,
            "usage_event_status",
            json!({ "p_idempotency_key": key }),
        ),
        config,
    )
    .await?;
    Ok(respond::json(200, &result))
}

pub async fn reserve(req: &Request, body: &[u8], config: &Config) -> Result<Response, ApiError> {
    let caller = authenticate(req, config).await?;
    caller.require_scope("usage:write")?;
    let reservation = Reservation::parse(&json_body(req, body)?)?;
    let args = json!({"p_tokens": reservation.tokens, "p_ttl_seconds": reservation.ttl_seconds});
    let result = rest::rpc(&call(config, &caller, "reserve_tokens", args), config).await?;
    Ok(respond::json(201, &result))
}

pub async fn release(req: &Request, id: &str, config: &Config) -> Result<Response, ApiError> {
    let caller = authenticate(req, config).await?;
    caller.require_scope("usage:write")?;
    if !shared::auth::is_uuid(id) {
        return Err(ApiError::NotFound);
    }
    // An API key names itself: only the caller that took a hold may release
    // it early (the same key, or the user's own token).
    let call = call(
        config,
        &caller,
        "release_token_reservation",
        json!({ "p_reservation_id": id }),
    );
    let result = rest::rpc(&call, config).await?;
    Ok(respond::json(200, &result))
}

pub async fn overview(req: &Request, config: &Config) -> Result<Response, ApiError> {
    let caller = authenticate(req, config).await?;
    caller.require_scope("usage:read")?;
    let pairs = shared::http::query_pairs(req.url());
    let query = OverviewQuery::parse(&pairs)?;
    let mut args = json!({ "p_from": query.from, "p_to": query.to });
    match (&caller, query.user_id) {
        // An API key reads its owner's usage only.
        (Caller::ApiKey { user_id, .. }, Some(asked)) if &asked != user_id => {
            return Err(ApiError::Forbidden {
                code: "forbidden",
                message: "an API key reads only its owner's usage".into(),
            })
        }
        (Caller::ApiKey { user_id, .. }, _) => args["p_user_id"] = json!(user_id),
        (Caller::User { .. }, asked) => args["p_user_id"] = json!(asked),
    }
    let call = Client::new(config).rpc("platform", "get_usage_overview", &args, caller.rest_auth());
    let result = rest::rpc(&call, config).await?;
    Ok(respond::json(200, &result))
}
