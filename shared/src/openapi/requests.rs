//! The request bodies the edge reads field by field (`usage`, `models`:
//! parsed from `serde_json::Value` so each refusal names its field), as
//! JSON Schemas for the OpenAPI document: feature `openapi`, never in the
//! Worker. Each bound here is one the parser enforces (its constant is
//! used where there is one), so schemathesis generates valid bodies and
//! knows which ones to expect refused. Bodies read by a serde type
//! (`auth::api_key::NewApiKey`, the hooks' payloads) derive their schema
//! on that type.

use crate::models::{MAX_NAME_CHARS, MAX_PROVIDER_CHARS};
use crate::usage::{MAX_BATCH_EVENTS, MAX_KEY_CHARS, MAX_TOKENS};
use schemars::JsonSchema;
use serde_json::{Map, Value};

/// The longest model name (`platform.models.name`).
const MODEL_CHARS: usize = MAX_NAME_CHARS;

/// `POST /v1/usage`, and each event of a batch. At least one token in all:
/// `prompt_tokens + completion_tokens` of 0 is refused.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct NewUsageEvent {
    /// an active model of the catalogue
    #[schemars(length(min = 1, max = MODEL_CHARS))]
    pub model: String,
    #[schemars(range(min = 0, max = MAX_TOKENS))]
    pub prompt_tokens: u64,
    #[schemars(range(min = 0, max = MAX_TOKENS))]
    pub completion_tokens: u64,
    /// required unless the `Idempotency-Key` header carries it (a batch's
    /// events carry their own); a retry with the same key counts once
    #[schemars(length(min = 1, max = MAX_KEY_CHARS))]
    pub idempotency_key: Option<String>,
    /// one of the user's projects
    #[schemars(extend("format" = "uuid"))]
    pub project_id: Option<String>,
    /// one of the user's sessions
    #[schemars(extend("format" = "uuid"))]
    pub session_id: Option<String>,
    /// a hold of the caller's this event settles
    #[schemars(extend("format" = "uuid"))]
    pub reservation_id: Option<String>,
    /// at most 8 KiB of JSON
    pub metadata: Option<Map<String, Value>>,
}

/// `POST /v1/usage/batch`: each event is judged on its own.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct NewUsageBatch {
    #[schemars(length(min = 1, max = MAX_BATCH_EVENTS))]
    pub events: Vec<NewUsageEvent>,
}

/// `POST /v1/usage/reservations`: hold `tokens` for `ttl_seconds`.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct NewReservation {
    #[schemars(range(min = 1, max = MAX_TOKENS))]
    pub tokens: u64,
    /// default 300
    #[schemars(range(min = 10, max = 3600))]
    pub ttl_seconds: Option<u32>,
}

/// `POST /v1/admin/grants`. Names the user by exactly one of `user_id` and
/// `email` (422 `invalid_grantee` otherwise).
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct NewGrant {
    #[schemars(extend("format" = "uuid"))]
    pub user_id: Option<String>,
    /// matched without regard to case
    #[schemars(email, length(max = 320))]
    pub email: Option<String>,
    #[schemars(range(min = 1, max = MAX_TOKENS))]
    pub amount: u64,
    /// kept in the grants ledger
    #[schemars(length(min = 1, max = 500))]
    pub reason: String,
    /// or the `Idempotency-Key` header; a retry with the same key answers
    /// the first grant
    #[schemars(length(min = 1, max = MAX_KEY_CHARS))]
    pub idempotency_key: Option<String>,
}

/// `PUT /v1/me/default-model`.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct DefaultModelChoice {
    /// an active model of the catalogue
    #[schemars(length(min = 1, max = MODEL_CHARS))]
    pub model: String,
}

/// `PUT /v1/admin/models/{name}`: the model's whole description; fields
/// left out take their defaults.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ModelDescription {
    #[schemars(length(min = 1, max = MAX_PROVIDER_CHARS))]
    pub provider: String,
    #[schemars(range(min = 1, max = 2147483647))]
    pub context_size: u32,
    /// Price of 1,000 prompt tokens
    #[schemars(range(min = 0, max = 99999999.999999), extend("multipleOf" = 1e-06))]
    pub input_cost_per_1k_tokens: f64,
    /// Price of 1,000 completion tokens
    #[schemars(range(min = 0, max = 99999999.999999), extend("multipleOf" = 1e-06))]
    pub output_cost_per_1k_tokens: f64,
    /// default null
    #[schemars(regex(pattern = r"^https://\S+$"))]
    pub repo_url: Option<String>,
    /// at most 8 KiB of JSON; default {}
    pub metadata: Option<Map<String, Value>>,
    /// default true
    pub is_active: Option<bool>,
}
