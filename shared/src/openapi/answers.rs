//! The success answers the edge passes on from its SQL functions, as JSON
//! Schemas for the OpenAPI document. The database writes these bodies
//! (`jsonb_build_object` in `supabase/migrations`) and the edge forwards
//! them without reading them, so these types exist only to be described:
//! feature `openapi`, never in the Worker. Answers the edge builds itself
//! derive their schema where they are built (`health`, `doctor`,
//! `usage::events`, `rpc::catalogue`, `queue`, `hooks::signup`).
//!
//! Every object here is closed (`deny_unknown_fields`: no
//! `additionalProperties`) and lists its required fields, so the end-to-end
//! validator and schemathesis fail on a field added or lost on either side.
//! A field the SQL writes as `null` is required and nullable.

use schemars::JsonSchema;
use serde_json::{Map, Value};

/// What `platform.usage_result` writes for a recorded event (the ledger
/// row), shared by the single-event answer, the batch's results and the
/// event status.
#[derive(JsonSchema)]
pub struct LedgerRow {
    /// the ledger row's id
    #[schemars(range(min = 1))]
    pub usage_id: i64,
    pub model: String,
    #[schemars(range(min = 0))]
    pub prompt_tokens: i64,
    #[schemars(range(min = 0))]
    pub completion_tokens: i64,
    #[schemars(range(min = 0))]
    pub total_tokens: i64,
    /// at the model's prices when recorded (6 decimals)
    #[schemars(range(min = 0))]
    pub cost: f64,
    /// the balance right after this event; may go below 0
    pub balance: i64,
    /// true once the balance is 0 or less
    pub exhausted: bool,
    /// the hold this event settled, if it named one
    #[schemars(required, extend("type" = ["object", "null"]))]
    pub reservation: Option<SettledReservation>,
    #[schemars(extend("format" = "date-time"))]
    pub created_at: String,
}

/// What became of the hold an event named.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct SettledReservation {
    #[schemars(extend("format" = "uuid"))]
    pub id: String,
    pub outcome: ReservationOutcome,
}

#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReservationOutcome {
    /// the hold was active and is now closed by this event
    Settled,
    /// the hold had already been released, settled or had expired
    NotActive,
    /// no hold of this user has that id
    NotFound,
}

/// `POST /v1/usage` (201): the event recorded, or exactly the first answer
/// again for a retry (the edge moves the function's `replayed` flag into
/// the `Idempotent-Replayed` header).
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct UsageRecorded {
    #[serde(flatten)]
    pub row: LedgerRow,
}

/// `POST /v1/usage/batch` (200): each event's result at its position.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct BatchResult {
    #[schemars(range(min = 0))]
    pub recorded: u32,
    #[schemars(range(min = 0))]
    pub replayed: u32,
    #[schemars(range(min = 0))]
    pub rejected: u32,
    /// one per event, in the order sent
    #[schemars(length(min = 1, max = 1000))]
    pub results: Vec<BatchEventResult>,
}

#[derive(JsonSchema)]
#[serde(untagged)]
pub enum BatchEventResult {
    Recorded(BatchEventRecorded),
    Rejected(EventRejected),
}

/// An event of a batch recorded now, or replayed (its key already recorded
/// the same event).
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct BatchEventRecorded {
    /// the event's position in the request
    #[schemars(range(min = 0))]
    pub index: u32,
    pub status: RecordedStatus,
    #[serde(flatten)]
    pub row: LedgerRow,
}

#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecordedStatus {
    Recorded,
    Replayed,
}

/// An event of a batch refused, by the edge or by the database, with the
/// reason; the other events are unaffected.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct EventRejected {
    #[schemars(range(min = 0))]
    pub index: u32,
    pub status: RejectedStatus,
    pub error: EventError,
}

#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RejectedStatus {
    Rejected,
}

/// Why an event was refused: a code of the error table, and a message.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct EventError {
    pub code: String,
    pub message: String,
}

/// `POST /v1/usage` with `Prefer: respond-async` (202): the event is queued, and its status URL says what became of
/// it.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct UsageQueued {
    pub status: QueuedOnly,
    pub idempotency_key: String,
    /// `GET` it for the event's status
    #[schemars(regex(pattern = "^/v1/usage/events/"))]
    pub status_url: String,
}

/// `POST /v1/usage/batch` with `Prefer: respond-async` (202, or 200 when
/// no event was valid): each event queued with its status URL, or refused.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct BatchQueued {
    #[schemars(range(min = 0))]
    pub queued: u32,
    #[schemars(range(min = 0))]
    pub rejected: u32,
    #[schemars(length(min = 1, max = 1000))]
    pub results: Vec<BatchEventQueuedOrRejected>,
}

#[derive(JsonSchema)]
#[serde(untagged)]
pub enum BatchEventQueuedOrRejected {
    Queued(BatchEventQueued),
    Rejected(EventRejected),
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct BatchEventQueued {
    #[schemars(range(min = 0))]
    pub index: u32,
    #[serde(flatten)]
    pub queued: UsageQueued,
}

/// `GET /v1/usage/events/{id}`: what became of an event.
#[derive(JsonSchema)]
#[serde(untagged)]
pub enum EventStatus {
    Recorded(EventStatusRecorded),
    Rejected(EventStatusRejected),
    Queued(EventStatusQueued),
}

/// Recorded: the ledger row, as `POST /v1/usage` answered it.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct EventStatusRecorded {
    pub status: RecordedOnly,
    pub idempotency_key: String,
    #[serde(flatten)]
    pub row: LedgerRow,
}

#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecordedOnly {
    Recorded,
}

/// Refused for good by the queue's consumer.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct EventStatusRejected {
    pub status: RejectedStatus,
    pub idempotency_key: String,
    pub error: EventError,
    #[schemars(extend("format" = "date-time"))]
    pub rejected_at: String,
}

/// Neither recorded nor refused yet (a key never sent reads the same).
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct EventStatusQueued {
    pub status: QueuedOnly,
    pub idempotency_key: String,
}

#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum QueuedOnly {
    Queued,
}

/// `POST /v1/usage/reservations` (201): the hold.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Reservation {
    #[schemars(extend("format" = "uuid"))]
    pub reservation_id: String,
    #[schemars(range(min = 1))]
    pub tokens: i64,
    #[schemars(extend("format" = "date-time"))]
    pub expires_at: String,
    /// the balance left to spend or hold, this hold deducted
    pub available: i64,
}

/// `DELETE /v1/usage/reservations/{id}`: the hold given back, or (when it
/// was no longer active) its status and nothing released.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ReservationReleased {
    #[schemars(extend("format" = "uuid"))]
    pub reservation_id: String,
    pub status: HoldStatus,
    #[schemars(range(min = 0))]
    pub released_tokens: i64,
}

#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HoldStatus {
    Released,
    Settled,
    Expired,
}

/// A platform user's role (`platform.users.role`).
#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Developer,
    Viewer,
}

/// `GET /v1/usage/overview`: the balance, and usage per day and per model
/// over `[from, to]` (UTC days).
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Overview {
    #[schemars(extend("format" = "uuid"))]
    pub user_id: String,
    /// the user's role on the platform; the page shows admins the grant form
    pub role: Role,
    /// the user's default model, null when none is set
    #[schemars(required, extend("type" = ["string", "null"]))]
    pub default_model: Option<String>,
    #[schemars(extend("format" = "date"))]
    pub from: String,
    #[schemars(extend("format" = "date"))]
    pub to: String,
    pub balance: Balance,
    pub totals: UsageTotals,
    /// days with usage, oldest first
    pub by_day: Vec<DayUsage>,
    /// models with usage, by name
    pub by_model: Vec<ModelUsage>,
    /// one row per day and model, by day then model
    pub by_day_model: Vec<DayModelUsage>,
}

/// Tokens granted, used and held; `balance` is granted − used, and
/// `available` is balance − reserved.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Balance {
    #[schemars(range(min = 0))]
    pub granted: i64,
    #[schemars(range(min = 0))]
    pub used: i64,
    #[schemars(range(min = 0))]
    pub reserved: i64,
    pub balance: i64,
    pub available: i64,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct UsageTotals {
    #[schemars(range(min = 0))]
    pub requests: i64,
    #[schemars(range(min = 0))]
    pub prompt_tokens: i64,
    #[schemars(range(min = 0))]
    pub completion_tokens: i64,
    #[schemars(range(min = 0))]
    pub total_tokens: i64,
    #[schemars(range(min = 0))]
    pub cost: f64,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct DayUsage {
    #[schemars(extend("format" = "date"))]
    pub day: String,
    #[serde(flatten)]
    pub totals: UsageTotals,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ModelUsage {
    pub model: String,
    #[serde(flatten)]
    pub totals: UsageTotals,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct DayModelUsage {
    #[schemars(extend("format" = "date"))]
    pub day: String,
    pub model: String,
    #[serde(flatten)]
    pub totals: UsageTotals,
}

/// `POST /v1/admin/grants` (201): the grant, or the first answer again for
/// a retry with the same idempotency key (`Idempotent-Replayed: true`).
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Granted {
    /// the grants ledger row's id
    #[schemars(range(min = 1))]
    pub grant_id: i64,
    #[schemars(extend("format" = "uuid"))]
    pub user_id: String,
    #[schemars(range(min = 1))]
    pub amount: i64,
    /// the user's balance right after the grant
    pub balance: i64,
}

/// `PUT /v1/me/default-model`.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct DefaultModel {
    #[schemars(extend("format" = "uuid"))]
    pub user_id: String,
    pub default_model: String,
}

/// What an API key may do.
#[derive(JsonSchema)]
pub enum Scope {
    #[serde(rename = "usage:write")]
    UsageWrite,
    #[serde(rename = "usage:read")]
    UsageRead,
}

/// One of the caller's API keys, without its secret.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ApiKey {
    #[schemars(extend("format" = "uuid"))]
    pub id: String,
    pub name: String,
    /// the key's public part, `cds_` and 24 characters
    pub prefix: String,
    pub scopes: Vec<Scope>,
    #[schemars(extend("format" = "date-time"))]
    pub created_at: String,
    #[schemars(required, extend("type" = ["string", "null"], "format" = "date-time"))]
    pub last_used_at: Option<String>,
    #[schemars(required, extend("type" = ["string", "null"], "format" = "date-time"))]
    pub expires_at: Option<String>,
    #[schemars(required, extend("type" = ["string", "null"], "format" = "date-time"))]
    pub revoked_at: Option<String>,
}

/// `GET /v1/api-keys`: newest first.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ApiKeyList {
    pub api_keys: Vec<ApiKey>,
}

/// `POST /v1/api-keys` (201): the new key, with the full `key` shown this
/// once (the database keeps only its hash).
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct CreatedApiKey {
    #[schemars(extend("format" = "uuid"))]
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub scopes: Vec<Scope>,
    #[schemars(extend("format" = "date-time"))]
    pub created_at: String,
    #[schemars(required, extend("type" = ["string", "null"], "format" = "date-time"))]
    pub expires_at: Option<String>,
    /// the full key `cds_<id>_<secret>`, to send as a bearer token
    #[schemars(regex(pattern = r"^cds_[0-9a-z]{24}_[0-9A-Za-z_-]+$"))]
    pub key: String,
}

/// `DELETE /v1/api-keys/{id}`: revoking twice answers the first revocation.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RevokedApiKey {
    #[schemars(extend("format" = "uuid"))]
    pub id: String,
    pub prefix: String,
    #[schemars(extend("format" = "date-time"))]
    pub revoked_at: String,
}

/// `POST /auth/hooks/db-user-insert`: the user as mirrored.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct MirroredUser {
    #[schemars(extend("format" = "uuid"))]
    pub id: String,
    pub username: String,
    #[schemars(required, extend("type" = ["string", "null"]))]
    pub email: Option<String>,
    pub role: PlatformRole,
    /// false when the user was mirrored already
    pub created: bool,
}

/// A model as the admin routes answer it: the catalogue's fields and its
/// state.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct AdminModel {
    #[serde(flatten)]
    pub model: crate::rpc::catalogue::CatalogueModel,
    pub is_active: bool,
    #[schemars(extend("format" = "date-time"))]
    pub created_at: String,
    #[schemars(extend("format" = "date-time"))]
    pub updated_at: String,
}

/// `GET /v1/models`: the active models, by name.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ModelList {
    pub models: Vec<crate::rpc::catalogue::CatalogueModel>,
}

/// `GET /v1/openapi.json`: an OpenAPI 3.1 document.
#[derive(JsonSchema)]
pub struct OpenApiDocument {
    pub openapi: String,
    pub info: Map<String, Value>,
    pub paths: Map<String, Value>,
}

/// A user's role in the product (`platform.users.role`).
#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlatformRole {
    Admin,
    Developer,
    Viewer,
}

/// `GET /v1/me`: who the edge takes the caller
/// for, by access token or by API key.
#[derive(JsonSchema)]
#[serde(untagged)]
pub enum Me {
    AccessToken(MeByAccessToken),
    ApiKey(MeByApiKey),
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct MeByAccessToken {
    #[schemars(extend("format" = "uuid"))]
    pub user_id: String,
    pub via: ViaAccessToken,
    /// the token's Postgres role
    pub role: TokenRole,
    #[schemars(required, extend("type" = ["string", "null"]))]
    pub email: Option<String>,
    pub is_anonymous: bool,
}

#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ViaAccessToken {
    AccessToken,
}

#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenRole {
    Authenticated,
    Anon,
    ServiceRole,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct MeByApiKey {
    #[schemars(extend("format" = "uuid"))]
    pub user_id: String,
    pub via: ViaApiKey,
    #[schemars(extend("format" = "uuid"))]
    pub api_key_id: String,
    pub scopes: Vec<Scope>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ViaApiKey {
    ApiKey,
}

/// `POST /auth/hooks/before-user-created`, always with 200: `{}` lets the sign-up through; an `error`
/// refuses it, with the status Supabase Auth answers the sign-up with.
#[derive(JsonSchema)]
#[serde(untagged)]
pub enum HookAnswer {
    Allow(HookAllow),
    Refuse(HookRefusal),
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct HookAllow {}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct HookRefusal {
    pub error: HookError,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct HookError {
    #[schemars(range(min = 400, max = 599))]
    pub http_code: u16,
    pub message: String,
}
