//! The usage API: what LLM servers and the frontend call.
//!
//! - `POST /v1/usage`: one event, idempotent (`Idempotency-Key`); 201.
//! - `POST /v1/usage/batch`: up to 1000 events, one result each; 200.
//! - `POST /v1/usage/reservations`: hold tokens before an LLM call; 201 or 402.
//! - `DELETE /v1/usage/reservations/{id}`: give a hold back early; only the
//!   caller that took it (the same API key, or the user's own token) may.
//! - `GET /v1/usage/overview?from=&to=&user_id=`: balance and totals.
//! - `GET /v1/usage/events?limit=&before=`: the caller's own recorded
//!   events, newest first, a page at a time (a keyset cursor).
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
use crate::{respond, rpc};
use shared::auth::scopes::Scope;
use shared::queue::{self, QueuedUsage};
use shared::rpc::usage::{RecordTokenUsageBatch, ReleaseTokenReservation, UsageEventStatus};
use shared::usage::events::EventsQuery;
use shared::usage::{OverviewQuery, Reservation, UsageBatch, UsageEvent};
use shared::{ApiError, Config};
use worker::Env;

/// Hands validated events to the usage queue, in as few sends as the
/// platform's limits allow. A failed send answers 503: the client retries,
/// and the events already queued count once by their idempotency keys.
async fn enqueue(env: &Env, caller: &Caller, events: &[&UsageEvent]) -> Result<(), ApiError> {
    let (user_id, api_key_id) = caller.identity();
    let accepted_at_ms = js_sys::Date::now();
    let events = events.iter().map(|event| event.to_batch_item()).collect();
    let messages: Vec<QueuedUsage> =
        QueuedUsage::for_events(user_id, api_key_id, events, accepted_at_ms)
            .into_iter()
            .map(|message| message.with_mirror(caller.pending_mirror().cloned()))
            .collect();
    let producer = crate::queue_producer::producer(env)?;
    for bodies in queue::send_batches(&messages) {
        crate::queue_producer::send_batch(&producer, bodies).await?;
    }
    Ok(())
}

/// The caller of a recording endpoint, and whether they asked for the
/// queue (`Prefer: respond-async`): then only their token is verified, with
/// no database call.
async fn recording_caller(req: &Request, config: &Config) -> Result<(Caller, bool), ApiError> {
    let queued = queue::wants_async(header(req, "prefer").as_deref());
    let caller = if queued {
        authenticate_for_queue(req, config).await?
    } else {
        authenticate(req, config).await?
    };
    caller.require_scope(&[Scope::UsageWrite])?;
    Ok((caller, queued))
}

pub async fn record(
    req: &Request,
    body: &[u8],
    config: &Config,
    env: &Env,
) -> Result<Response, ApiError> {
    let (caller, queued) = recording_caller(req, config).await?;
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
    let result = rpc::call(config, &event.rpc(caller.acting()), caller.rest_auth()).await?;
    Ok(respond::created(result))
}

pub async fn record_batch(
    req: &Request,
    body: &[u8],
    config: &Config,
    env: &Env,
) -> Result<Response, ApiError> {
    let (caller, queued) = recording_caller(req, config).await?;
    let batch = UsageBatch::parse(&json_body(req, body)?)?;
    if queued {
        return record_batch_async(env, &caller, &batch).await;
    }

    // Events refused here never reach the database; the rest go in one RPC,
    // and their results are put back at their original positions.
    let (plan, events) = batch.plan();
    let recorded = if events.is_empty() {
        Vec::new()
    } else {
        let rpc = RecordTokenUsageBatch {
            events,
            acting: caller.acting(),
        };
        rpc::call(config, &rpc, caller.rest_auth()).await?.results
    };
    Ok(respond::json(200, &plan.answer(recorded)?))
}

/// The batch with `Prefer: respond-async`: invalid events are refused now,
/// each with its reason, and the valid ones queued; 202 when any was queued.
async fn record_batch_async(
    env: &Env,
    caller: &Caller,
    batch: &UsageBatch,
) -> Result<Response, ApiError> {
    let valid = batch.valid();
    if !valid.is_empty() {
        enqueue(env, caller, &valid).await?;
    }
    let body = batch.queued_answer();
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
    caller.require_scope(&[Scope::UsageWrite, Scope::UsageRead])?;
    let key = queue::key_from_segment(segment)?;
    let rpc = UsageEventStatus {
        idempotency_key: &key,
        acting: caller.acting(),
    };
    let result = rpc::call(config, &rpc, caller.rest_auth()).await?;
    Ok(respond::json(200, &result))
}

pub async fn reserve(req: &Request, body: &[u8], config: &Config) -> Result<Response, ApiError> {
    let caller = authenticate(req, config).await?;
    caller.require_scope(&[Scope::UsageWrite])?;
    let reservation = Reservation::parse(&json_body(req, body)?)?;
    let result = rpc::call(
        config,
        &reservation.rpc(caller.acting()),
        caller.rest_auth(),
    )
    .await?;
    Ok(respond::json(201, &result))
}

pub async fn release(req: &Request, id: &str, config: &Config) -> Result<Response, ApiError> {
    let caller = authenticate(req, config).await?;
    caller.require_scope(&[Scope::UsageWrite])?;
    if !shared::auth::is_uuid(id) {
        return Err(ApiError::NotFound);
    }
    // An API key names itself: only the caller that took a hold may release
    // it early (the same key, or the user's own token).
    let rpc = ReleaseTokenReservation {
        reservation_id: id,
        acting: caller.acting(),
    };
    let result = rpc::call(config, &rpc, caller.rest_auth()).await?;
    Ok(respond::json(200, &result))
}

pub async fn overview(req: &Request, config: &Config) -> Result<Response, ApiError> {
    let caller = authenticate(req, config).await?;
    caller.require_scope(&[Scope::UsageRead])?;
    let pairs = shared::http::query_pairs(req.url());
    let query = OverviewQuery::parse(&pairs)?;
    let rpc = query.rpc(caller.api_key_owner())?;
    let result = rpc::call(config, &rpc, caller.rest_auth()).await?;
    Ok(respond::json(200, &result))
}

/// `GET /v1/usage/events`: a reader's own events only; an API key reads its
/// owner's, and the function checks the key is still valid, as for status.
pub async fn list_events(req: &Request, config: &Config) -> Result<Response, ApiError> {
    let caller = authenticate(req, config).await?;
    caller.require_scope(&[Scope::UsageRead])?;
    let query = EventsQuery::parse(&shared::http::query_pairs(req.url()))?;
    let page = rpc::call(config, &query.rpc(caller.acting()), caller.rest_auth()).await?;
    Ok(respond::json(200, &page.body()))
}
