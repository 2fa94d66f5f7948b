//! Recording usage and holding tokens: what LLM servers and the frontend
//! call through `/v1/usage`. Each acts for a user's own token or, as the
//! service role, for an API key ([`ActingFor`]).

use super::{ActingFor, Answer, Rpc};
use serde::Serialize;
use serde_json::Value;

/// `platform.record_token_usage`: one ledger row and the balance debit,
/// idempotent per (user, key). The answer is the response body.
#[derive(Debug, Clone, Serialize)]
pub struct RecordTokenUsage<'a> {
    #[serde(rename = "p_model")]
    pub model: &'a str,
    #[serde(rename = "p_prompt_tokens")]
    pub prompt_tokens: u64,
    #[serde(rename = "p_completion_tokens")]
    pub completion_tokens: u64,
    #[serde(rename = "p_idempotency_key")]
    pub idempotency_key: &'a str,
    #[serde(rename = "p_project_id")]
    pub project_id: Option<&'a str>,
    #[serde(rename = "p_session_id")]
    pub session_id: Option<&'a str>,
    #[serde(rename = "p_reservation_id")]
    pub reservation_id: Option<&'a str>,
    #[serde(rename = "p_metadata")]
    pub metadata: &'a Value,
    #[serde(flatten)]
    pub acting: ActingFor<'a>,
}

impl Rpc for RecordTokenUsage<'_> {
    const NAME: &'static str = "record_token_usage";
    const ARGS: &'static [&'static str] = &[
        "p_model",
        "p_prompt_tokens",
        "p_completion_tokens",
        "p_idempotency_key",
        "p_project_id",
        "p_session_id",
        "p_metadata",
        "p_reservation_id",
        "p_user_id",
        "p_api_key_id",
    ];
    type Output = Value;
}

/// `platform.record_token_usage_batch`: up to 1000 events (each as
/// `UsageEvent::to_batch_item` writes it), one result each, in order.
#[derive(Debug, Clone, Serialize)]
pub struct RecordTokenUsageBatch<'a> {
    #[serde(rename = "p_events")]
    pub events: Vec<Value>,
    #[serde(flatten)]
    pub acting: ActingFor<'a>,
}

/// What the edge reads of the batch's answer: the per-event results, which
/// `usage::BatchPlan::answer` puts back at their positions.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchResults {
    pub results: Vec<Value>,
}

impl Answer for BatchResults {
    /// Taken, not cloned: a thousand results are most of the work here.
    fn from_answer(mut value: Value) -> Result<Self, String> {
        // `get_mut`, not indexing: indexing a non-object to write panics.
        match value.get_mut("results").map(Value::take) {
            Some(Value::Array(results)) => Ok(BatchResults { results }),
            _ => Err("no list of results".into()),
        }
    }
}

impl Rpc for RecordTokenUsageBatch<'_> {
    const NAME: &'static str = "record_token_usage_batch";
    const ARGS: &'static [&'static str] = &["p_events", "p_user_id", "p_api_key_id"];
    type Output = BatchResults;
}

/// `platform.usage_event_status`: queued, recorded or rejected.
#[derive(Debug, Clone, Serialize)]
pub struct UsageEventStatus<'a> {
    #[serde(rename = "p_idempotency_key")]
    pub idempotency_key: &'a str,
    #[serde(flatten)]
    pub acting: ActingFor<'a>,
}

impl Rpc for UsageEventStatus<'_> {
    const NAME: &'static str = "usage_event_status";
    const ARGS: &'static [&'static str] = &["p_idempotency_key", "p_user_id", "p_api_key_id"];
    type Output = Value;
}

/// `platform.reserve_tokens`: a hold before an LLM call.
#[derive(Debug, Clone, Serialize)]
pub struct ReserveTokens<'a> {
    #[serde(rename = "p_tokens")]
    pub tokens: u64,
    #[serde(rename = "p_ttl_seconds")]
    pub ttl_seconds: u32,
    #[serde(flatten)]
    pub acting: ActingFor<'a>,
}

impl Rpc for ReserveTokens<'_> {
    const NAME: &'static str = "reserve_tokens";
    const ARGS: &'static [&'static str] =
        &["p_tokens", "p_ttl_seconds", "p_user_id", "p_api_key_id"];
    type Output = Value;
}

/// `platform.release_token_reservation`: a hold given back early; the
/// function checks that the caller named is the one that took it.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseTokenReservation<'a> {
    #[serde(rename = "p_reservation_id")]
    pub reservation_id: &'a str,
    #[serde(flatten)]
    pub acting: ActingFor<'a>,
}

impl Rpc for ReleaseTokenReservation<'_> {
    const NAME: &'static str = "release_token_reservation";
    const ARGS: &'static [&'static str] = &["p_reservation_id", "p_user_id", "p_api_key_id"];
    type Output = Value;
}

/// `platform.get_usage_overview`: balance and totals per day and model.
/// Whose overview is asked is decided by `usage::overview_subject`.
#[derive(Debug, Clone, Serialize)]
pub struct GetUsageOverview<'a> {
    #[serde(rename = "p_from")]
    pub from: Option<&'a str>,
    #[serde(rename = "p_to")]
    pub to: Option<&'a str>,
    #[serde(rename = "p_user_id")]
    pub user_id: Option<&'a str>,
}

impl Rpc for GetUsageOverview<'_> {
    const NAME: &'static str = "get_usage_overview";
    const ARGS: &'static [&'static str] = &["p_from", "p_to", "p_user_id"];
    type Output = Value;
}

/// `platform.list_usage_events`: a page of the caller's own ledger rows,
/// newest first, below the keyset position a cursor names
/// (`usage::events::Cursor`, both fields or neither).
#[derive(Debug, Clone, Serialize)]
pub struct ListUsageEvents<'a> {
    #[serde(rename = "p_limit")]
    pub limit: u32,
    #[serde(rename = "p_before_us")]
    pub before_us: Option<i64>,
    #[serde(rename = "p_before_id")]
    pub before_id: Option<i64>,
    #[serde(flatten)]
    pub acting: ActingFor<'a>,
}

impl Rpc for ListUsageEvents<'_> {
    const NAME: &'static str = "list_usage_events";
    const ARGS: &'static [&'static str] = &[
        "p_limit",
        "p_before_us",
        "p_before_id",
        "p_user_id",
        "p_api_key_id",
    ];
    type Output = crate::usage::events::EventsPage;
}
