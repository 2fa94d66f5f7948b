//! The OpenAPI document, generated: `cargo xtask openapi` writes
//! [`document`] to `shared/src/openapi.json`, and a test in `xtask` fails
//! when the checked-in file differs. Native tools only (feature `openapi`):
//! the Worker serves the written file and links none of this.
//!
//! What each operation answers is one row of [`OPERATIONS`]: its error
//! statuses in `errors` (each answered with the `Error` schema, whose
//! `code` enum is [`crate::error::CATALOGUE`]; 429 is added to every
//! operation, since every request is charged to a rate limiter), and its
//! summary, parameters, request body and success answers in `describe`.
//! Every request body and JSON answer is a Rust type's derived JSON Schema
//! ([`Schemas::of`]; the types the edge does not otherwise have are in
//! [`super::answers`] and [`super::requests`]), so the document follows the
//! types.

use super::answers::*;
use super::requests::*;
use crate::auth::api_key::NewApiKey;
use crate::doctor::DeepHealth;
use crate::error::CATALOGUE;
use crate::health::HealthReport;
use crate::hooks::signup::BeforeUserCreated;
use crate::hooks::user_mirror::DatabaseWebhook;
use crate::usage::events::{UsageEventsPage, DEFAULT_LIMIT, MAX_LIMIT};
use crate::usage::MAX_KEY_CHARS;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::JsonSchema;
use serde_json::{json, Map, Value};

/// Statuses every operation can answer, whatever its handler: 413
/// `payload_too_large` (a declared `Content-Length` over `MAX_BODY_BYTES` is
/// refused before routing, on any method) and 500 (`misconfigured` when the
/// Worker's configuration cannot load, `internal_error`). 429 is added apart,
/// with its `Retry-After`.
pub const PIPELINE: &[u16] = &[413, 500];

/// Statuses of every operation that authenticates its caller (a `security`
/// requirement): 401 (no or a bad token or key), 403 (role, scope, an
/// anonymous sign-in, a banned or deleted user), 404 `unknown_user` (a
/// verified token's user deleted from Supabase Auth, found by the
/// just-in-time mirror), 502 and 503 (resolving an API key and mirroring a
/// user are RPCs: the REST layer misconfigured, or unreachable).
pub const CALLER: &[u16] = &[401, 403, 404, 502, 503];

/// One operation: a method and path of [`crate::routes::ROUTES`].
pub struct Operation {
    pub method: &'static str,
    pub path: &'static str,
    /// Every error status the operation can answer besides [`PIPELINE`],
    /// [`CALLER`] (for an operation with a `security` requirement) and 429. Decided
    /// from its handler: the authentication it performs (401; 403 for a
    /// role, scope or anonymous sign-in), the body it reads (400
    /// `invalid_json`, 413 `payload_too_large`, 415 where a content type is
    /// required, 422 validation), the RPC it calls (the `PTxyz` refusals its
    /// SQL function raises, and 502/503 when the REST layer fails or is
    /// unreachable).
    pub errors: &'static [u16],
    /// Summary, tags, security, parameters, request body and the answers
    /// that are not errors (or errors with a description of their own).
    pub describe: fn(&mut Schemas) -> Value,
}

/// The JSON Schemas of Rust types, collected under `#/components/schemas`.
pub struct Schemas {
    generator: SchemaGenerator,
}

impl Schemas {
    fn new() -> Schemas {
        let settings = SchemaSettings::draft2020_12().with(|s| {
            s.definitions_path = "/components/schemas".into();
        });
        Schemas {
            generator: settings.into_generator(),
        }
    }

    /// A reference to `T`'s schema, added to the components.
    pub fn of<T: JsonSchema>(&mut self) -> Value {
        self.generator.subschema_for::<T>().to_value()
    }

    fn into_components(mut self) -> Map<String, Value> {
        self.generator.take_definitions(true)
    }
}

/// The document `cargo xtask openapi` writes, indented as checked in.
pub fn document_text() -> String {
    let mut text = serde_json::to_string_pretty(&document()).expect("a JSON value serializes");
    text.push('\n');
    text
}

/// The OpenAPI 3.1 document of every route.
pub fn document() -> Value {
    let mut schemas = Schemas::new();
    let mut paths = Map::new();
    for op in OPERATIONS {
        let mut operation = (op.describe)(&mut schemas);
        let secured = operation["security"]
            .as_array()
            .is_some_and(|s| !s.is_empty());
        let caller: &[u16] = if secured { CALLER } else { &[] };
        let responses = operation["responses"]
            .as_object_mut()
            .expect("every operation describes its answers");
        for status in op.errors.iter().chain(caller).chain(PIPELINE) {
            responses
                .entry(status.to_string())
                .or_insert_with(|| json!({"$ref": "#/components/responses/Error"}));
        }
        responses.insert(
            "429".into(),
            json!({"$ref": "#/components/responses/RateLimited"}),
        );
        paths
            .entry(op.path)
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("a path item is an object")
            .insert(op.method.to_ascii_lowercase(), operation);
    }
    let mut components = schemas.into_components();
    components.insert("Error".into(), error_schema());
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "CyberDevStudio edge API",
            "version": crate::VERSION,
            "description": "Usage accounting for LLM agents at the edge. Errors are {\"error\": {\"code\", \"message\"}}; every response carries x-request-id."
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A Supabase access token, or an API key cds_<id>_<secret>"
                }
            },
            "schemas": components,
            "responses": {
                "Error": {
                    "description": "An error",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
                },
                "RateLimited": {
                    "description": "Too many requests: code `rate_limited`; the message names the limit reached (per API key, per user, or per client address for requests without valid credentials). An abuse brake counted per Cloudflare location, not an exact quota.",
                    "headers": {
                        "Retry-After": {
                            "description": "Seconds to wait: the limit's period",
                            "schema": {"type": "integer", "minimum": 1}
                        }
                    },
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
                }
            }
        }
    })
}

/// `{"error": {"code", "message"}}`, the code one of the catalogue's.
fn error_schema() -> Value {
    let mut codes: Vec<&str> = CATALOGUE.iter().map(|e| e.code).collect();
    codes.sort_unstable();
    codes.dedup();
    json!({
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {
                        "type": "string",
                        "description": "A stable machine code; README's error table says what each means and where it is raised.",
                        "enum": codes
                    },
                    "message": {"type": "string"}
                }
            }
        }
    })
}

/// A response with a JSON body of `schema`.
fn json_answer(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

/// A required JSON request body of `schema`.
fn json_body(schema: Value) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": schema}}})
}

/// A parameter `name` in `place` (`path`, `query`, `header`); only a path's
/// are required.
fn parameter(place: &str, name: &str, description: &str, schema: Value) -> Value {
    let mut parameter = json!({"name": name, "in": place, "schema": schema});
    if place == "path" {
        parameter["required"] = json!(true);
    }
    if !description.is_empty() {
        parameter["description"] = json!(description);
    }
    parameter
}

/// The `security` of an operation for access tokens and API keys.
fn bearer() -> Value {
    json!([{"bearerAuth": []}])
}

fn uuid_in_path() -> Value {
    parameter(
        "path",
        "id",
        "",
        json!({"type": "string", "format": "uuid"}),
    )
}

fn idempotency_key_header() -> Value {
    parameter(
        "header",
        "Idempotency-Key",
        "Required unless the body carries idempotency_key; a retry with the same key answers the first answer.",
        json!({"type": "string", "maxLength": MAX_KEY_CHARS}),
    )
}

fn prefer_header() -> Value {
    parameter(
        "header",
        "Prefer",
        "respond-async: validate now, record through the usage queue, answer 202 with a status URL per event (RFC 7240)",
        json!({"type": "string"}),
    )
}

fn model_name_in_path() -> Value {
    parameter(
        "path",
        "name",
        "The model's name; a / in it is sent percent-encoded (%2F).",
        json!({"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$"}),
    )
}

fn date_in_query(name: &str) -> Value {
    parameter(
        "query",
        name,
        "",
        json!({"type": "string", "format": "date"}),
    )
}

const QUEUED: &str = "Accepted for recording (Prefer: respond-async); Preference-Applied: respond-async; each event's status URL";

/// Every operation, in the order of the document.
pub const OPERATIONS: &[Operation] = &[
    Operation {
        method: "GET",
        path: "/health",
        errors: &[],
        describe: |schemas| {
            json!({
                "summary": "Version, API key kind, and whether the REST layer and the platform schema answer; with deep=1 and the METRICS_TOKEN, the deployment checklist",
                "tags": ["ops"],
                "security": [],
                "parameters": [parameter(
                    "query",
                    "deep",
                    "1: the deployment doctor's checklist (needs the METRICS_TOKEN as a bearer token)",
                    json!({"type": "string", "enum": ["1"]}),
                )],
                "responses": {
                    "200": json_answer(
                        "OK: the health report, or with deep=1 the deployment checklist",
                        json!({"oneOf": [schemas.of::<HealthReport>(), schemas.of::<DeepHealth>()]}),
                    ),
                    "401": json_answer(
                        "deep=1 without the METRICS_TOKEN",
                        json!({"$ref": "#/components/schemas/Error"}),
                    )
                }
            })
        },
    },
    Operation {
        method: "HEAD",
        path: "/health",
        errors: &[],
        describe: |schemas| {
            json!({
                "summary": "Health, headers only",
                "tags": ["ops"],
                "security": [],
                "responses": {"200": json_answer("OK", schemas.of::<HealthReport>())}
            })
        },
    },
    Operation {
        method: "GET",
        path: "/v1/openapi.json",
        errors: &[],
        describe: |schemas| {
            json!({
                "summary": "This document",
                "tags": ["ops"],
                "security": [],
                "responses": {"200": json_answer("OK", schemas.of::<OpenApiDocument>())}
            })
        },
    },
    Operation {
        method: "POST",
        path: "/auth/hooks/db-user-insert",
        errors: &[400, 401, 422, 502, 503],
        describe: |schemas| {
            json!({
                "summary": "Supabase Database Webhook after an insert into auth.users: mirror the user",
                "tags": ["auth"],
                "security": [],
                "requestBody": json_body(schemas.of::<DatabaseWebhook>()),
                "responses": {"200": json_answer("OK: the user as mirrored", schemas.of::<MirroredUser>())}
            })
        },
    },
    Operation {
        method: "POST",
        path: "/auth/hooks/before-user-created",
        errors: &[400, 401, 422],
        describe: |schemas| {
            json!({
                "summary": "Supabase Auth before-user-created hook (Standard Webhooks): apply the signup policy",
                "tags": ["auth"],
                "security": [],
                "requestBody": json_body(schemas.of::<BeforeUserCreated>()),
                "responses": {
                    "200": json_answer(
                        "The decision: {} lets the sign-up through, an error refuses it (Supabase Auth reads a hook's body only on 200)",
                        schemas.of::<HookAnswer>(),
                    )
                }
            })
        },
    },
    Operation {
        method: "GET",
        path: "/v1/me",
        errors: &[401],
        describe: |schemas| {
            json!({
                "summary": "Who the edge takes the caller for",
                "tags": ["auth"],
                "security": bearer(),
                "responses": {"200": json_answer("OK", schemas.of::<Me>())}
            })
        },
    },
    Operation {
        method: "PUT",
        path: "/v1/me/default-model",
        errors: &[400, 401, 403, 415, 422],
        describe: |schemas| {
            json!({
                "summary": "Set the caller's default model",
                "tags": ["account"],
                "security": bearer(),
                "requestBody": json_body(schemas.of::<DefaultModelChoice>()),
                "responses": {"200": json_answer("OK", schemas.of::<DefaultModel>())}
            })
        },
    },
    Operation {
        method: "GET",
        path: "/v1/models",
        errors: &[502, 503],
        describe: |schemas| {
            json!({
                "summary": "The model catalogue",
                "tags": ["account"],
                "security": [],
                "responses": {"200": json_answer("OK", schemas.of::<ModelList>())}
            })
        },
    },
    Operation {
        method: "POST",
        path: "/v1/api-keys",
        errors: &[400, 401, 403, 409, 415, 422],
        describe: |schemas| {
            json!({
                "summary": "Create an API key (the key is shown once)",
                "tags": ["auth"],
                "security": bearer(),
                "requestBody": json_body(schemas.of::<NewApiKey>()),
                "responses": {"201": json_answer("Created", schemas.of::<CreatedApiKey>())}
            })
        },
    },
    Operation {
        method: "GET",
        path: "/v1/api-keys",
        errors: &[401, 403],
        describe: |schemas| {
            json!({
                "summary": "List the caller's API keys (no secrets)",
                "tags": ["auth"],
                "security": bearer(),
                "responses": {"200": json_answer("OK", schemas.of::<ApiKeyList>())}
            })
        },
    },
    Operation {
        method: "DELETE",
        path: "/v1/api-keys/{id}",
        errors: &[401, 403, 404],
        describe: |schemas| {
            json!({
                "summary": "Revoke an API key",
                "tags": ["auth"],
                "security": bearer(),
                "parameters": [uuid_in_path()],
                "responses": {"200": json_answer("OK", schemas.of::<RevokedApiKey>())}
            })
        },
    },
    Operation {
        method: "POST",
        path: "/v1/usage",
        errors: &[400, 401, 403, 409, 413, 415, 422, 503],
        describe: |schemas| {
            json!({
                "summary": "Record one usage event",
                "tags": ["usage"],
                "security": bearer(),
                "parameters": [idempotency_key_header(), prefer_header()],
                "requestBody": json_body(schemas.of::<NewUsageEvent>()),
                "responses": {
                    "201": json_answer(
                        "Recorded (or replayed: Idempotent-Replayed header)",
                        schemas.of::<UsageRecorded>(),
                    ),
                    "202": json_answer(QUEUED, schemas.of::<UsageQueued>())
                }
            })
        },
    },
    Operation {
        method: "POST",
        path: "/v1/usage/batch",
        errors: &[400, 401, 403, 413, 415, 422, 503],
        describe: |schemas| {
            json!({
                "summary": "Record up to 1000 events, one result each",
                "tags": ["usage"],
                "security": bearer(),
                "parameters": [prefer_header()],
                "requestBody": json_body(schemas.of::<NewUsageBatch>()),
                "responses": {
                    "200": json_answer(
                        "Each event's result; with Prefer: respond-async when no event could be queued, each event's refusal",
                        json!({"oneOf": [schemas.of::<BatchResult>(), schemas.of::<BatchQueued>()]}),
                    ),
                    "202": json_answer(QUEUED, schemas.of::<BatchQueued>())
                }
            })
        },
    },
    Operation {
        method: "POST",
        path: "/v1/usage/reservations",
        errors: &[400, 401, 402, 403, 415, 422, 503],
        describe: |schemas| {
            json!({
                "summary": "Reserve tokens before an LLM call",
                "tags": ["usage"],
                "security": bearer(),
                "requestBody": json_body(schemas.of::<NewReservation>()),
                "responses": {"201": json_answer("Reserved", schemas.of::<Reservation>())}
            })
        },
    },
    Operation {
        method: "DELETE",
        path: "/v1/usage/reservations/{id}",
        errors: &[401, 403, 404],
        describe: |schemas| {
            json!({
                "summary": "Release a reservation early",
                "tags": ["usage"],
                "security": bearer(),
                "parameters": [uuid_in_path()],
                "responses": {"200": json_answer("OK", schemas.of::<ReservationReleased>())}
            })
        },
    },
    Operation {
        method: "GET",
        path: "/v1/usage/overview",
        errors: &[401, 403, 404, 422],
        describe: |schemas| {
            json!({
                "summary": "Balance and usage per day and per model",
                "tags": ["usage"],
                "security": bearer(),
                "parameters": [
                    date_in_query("from"),
                    date_in_query("to"),
                    parameter("query", "user_id", "admins only", json!({"type": "string", "format": "uuid"}))
                ],
                "responses": {"200": json_answer("OK", schemas.of::<Overview>())}
            })
        },
    },
    Operation {
        method: "GET",
        path: "/v1/usage/events",
        errors: &[400, 401, 403, 404, 422, 503],
        describe: |schemas| {
            json!({
                "summary": "The caller's own recorded usage events, newest first (created_at, then id, descending), a page at a time; pass a page's next_before as before for the next one",
                "tags": ["usage"],
                "security": bearer(),
                "parameters": [
                    parameter(
                        "query",
                        "limit",
                        "rows per page (default 50)",
                        json!({"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}),
                    ),
                    parameter(
                        "query",
                        "before",
                        "the opaque cursor a previous page gave as next_before; absent for the newest page",
                        json!({"type": "string", "maxLength": 64, "pattern": "^[A-Za-z0-9_-]+$"}),
                    )
                ],
                "responses": {"200": json_answer("OK", schemas.of::<UsageEventsPage>())}
            })
        },
    },
    Operation {
        method: "GET",
        path: "/v1/usage/events/{id}",
        errors: &[400, 401, 403, 503],
        describe: |schemas| {
            json!({
                "summary": "What became of an event sent with Prefer: respond-async: queued, recorded (with the ledger id) or rejected (with the reason)",
                "tags": ["usage"],
                "security": bearer(),
                "parameters": [parameter(
                    "path",
                    "id",
                    "the event's idempotency key, percent-encoded",
                    json!({"type": "string"}),
                )],
                "responses": {"200": json_answer("OK", schemas.of::<EventStatus>())}
            })
        },
    },
    Operation {
        method: "POST",
        path: "/v1/admin/grants",
        errors: &[400, 401, 403, 404, 409, 415, 422],
        describe: |schemas| {
            json!({
                "summary": "Grant tokens to a user (admins)",
                "tags": ["admin"],
                "security": bearer(),
                "parameters": [idempotency_key_header()],
                "requestBody": json_body(schemas.of::<NewGrant>()),
                "responses": {"201": json_answer("Granted", schemas.of::<Granted>())}
            })
        },
    },
    Operation {
        method: "PUT",
        path: "/v1/admin/models/{name}",
        errors: &[400, 401, 403, 415, 422],
        describe: |schemas| {
            json!({
                "summary": "Create or change a model (admins)",
                "description": "Replaces the model's description; fields left out take their defaults (repo_url null, metadata {}, is_active true). A price change applies to usage recorded from then on; recorded usage keeps its cost.",
                "tags": ["admin"],
                "security": bearer(),
                "parameters": [model_name_in_path()],
                "requestBody": json_body(schemas.of::<ModelDescription>()),
                "responses": {
                    "200": json_answer("Updated", schemas.of::<AdminModel>()),
                    "201": json_answer("Created", schemas.of::<AdminModel>())
                }
            })
        },
    },
    Operation {
        method: "DELETE",
        path: "/v1/admin/models/{name}",
        errors: &[401, 403, 404, 422],
        describe: |schemas| {
            json!({
                "summary": "Deactivate a model (admins)",
                "description": "Sets is_active to false: new usage against the model is refused with unknown_model; the model stays for the usage already recorded. Deactivating an inactive model changes nothing. An unknown name is 404 unknown_model.",
                "tags": ["admin"],
                "security": bearer(),
                "parameters": [model_name_in_path()],
                "responses": {"200": json_answer("Deactivated", schemas.of::<AdminModel>())}
            })
        },
    },
    Operation {
        method: "GET",
        path: "/v1/metrics",
        errors: &[401, 403],
        describe: |_schemas| {
            json!({
                "summary": "Prometheus metrics: calls, durations, summary freshness (admin JWT or METRICS_TOKEN)",
                "tags": ["ops"],
                "security": bearer(),
                "responses": {
                    "200": {
                        "description": "Prometheus text format 0.0.4",
                        "content": {"text/plain": {"schema": {"type": "string"}}}
                    }
                }
            })
        },
    },
];
