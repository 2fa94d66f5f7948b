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
//! Answers with a Rust type take its derived JSON Schema
//! ([`Schemas::of`]), so the document follows the type.

use crate::doctor::DeepHealth;
use crate::error::CATALOGUE;
use crate::health::HealthReport;
use crate::rpc::catalogue::CatalogueModel;
use crate::usage::events::UsageEventsPage;
use crate::usage::MAX_TOKENS;
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

/// Every operation, in the order of the document.
pub const OPERATIONS: &[Operation] = &[
    Operation {
        method: "GET",
        path: "/health",
        errors: &[],
        describe: |schemas| {
            json!({
                "summary": "Version, API key kind, and whether the REST layer and the platform schema answer; with deep=1 and the METRICS_TOKEN, the deployment checklist",
                "tags": [
                    "ops"
                ],
                "responses": {
                    "200": {
                        "description": "OK: the health report, or with deep=1 the deployment checklist",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [schemas.of::<HealthReport>(), schemas.of::<DeepHealth>()]
                                }
                            }
                        }
                    },
                    "401": {
                        "description": "deep=1 without the METRICS_TOKEN",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "$ref": "#/components/schemas/Error"
                                }
                            }
                        }
                    }
                },
                "security": [],
                "parameters": [
                    {
                        "name": "deep",
                        "in": "query",
                        "required": false,
                        "description": "1: the deployment doctor's checklist (needs the METRICS_TOKEN as a bearer token)",
                        "schema": {
                            "type": "string",
                            "enum": [
                                "1"
                            ]
                        }
                    }
                ]
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
                "tags": [
                    "ops"
                ],
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {
                            "application/json": {
                                "schema": schemas.of::<HealthReport>()
                            }
                        }
                    }
                },
                "security": []
            })
        },
    },
    Operation {
        method: "GET",
        path: "/v1/openapi.json",
        errors: &[],
        describe: |_schemas| {
            json!({
                "summary": "This document",
                "tags": [
                    "ops"
                ],
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object"
                                }
                            }
                        }
                    }
                },
                "security": []
            })
        },
    },
    Operation {
        method: "POST",
        path: "/auth/hooks/db-user-insert",
        errors: &[400, 401, 422, 502, 503],
        describe: |_schemas| {
            json!({
                "summary": "Supabase Database Webhook after an insert into auth.users: mirror the user",
                "tags": [
                    "auth"
                ],
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object"
                                }
                            }
                        }
                    }
                },
                "security": [],
                "requestBody": {
                    "required": true,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object"
                            }
                        }
                    }
                }
            })
        },
    },
    Operation {
        method: "POST",
        path: "/auth/hooks/before-user-created",
        errors: &[400, 401, 422],
        describe: |_schemas| {
            json!({
                "summary": "Supabase Auth before-user-created hook (Standard Webhooks): apply the signup policy",
                "tags": [
                    "auth"
                ],
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object"
                                }
                            }
                        }
                    }
                },
                "security": [],
                "requestBody": {
                    "required": true,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object"
                            }
                        }
                    }
                }
            })
        },
    },
    Operation {
        method: "GET",
        path: "/v1/me",
        errors: &[401],
        describe: |_schemas| {
            json!({
                "summary": "Who the edge takes the caller for",
                "tags": [
                    "auth"
                ],
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object"
                                }
                            }
                        }
                    }
                },
                "security": [
                    {
                        "bearerAuth": []
                    }
                ]
            })
        },
    },
    Operation {
        method: "PUT",
        path: "/v1/me/default-model",
        errors: &[400, 401, 403, 415, 422],
        describe: |_schemas| {
            json!({
                "summary": "Set the caller's default model",
                "tags": [
                    "account"
                ],
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object"
                                }
                            }
                        }
                    }
                },
                "security": [
                    {
                        "bearerAuth": []
                    }
                ],
                "requestBody": {
                    "required": true,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": [
                                    "model"
                                ],
                                "properties": {
                                    "model": {
                                        "type": "string"
                                    }
                                }
                            }
                        }
                    }
                }
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
                "tags": [
                    "account"
                ],
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": [
                                        "models"
                                    ],
                                    "properties": {
                                        "models": {
                                            "type": "array",
                                            "items": schemas.of::<CatalogueModel>()
                                        }
                                    }
                                }
                            }
                        }
                    }
                },
                "security": []
            })
        },
    },
    Operation {
        method: "POST",
        path: "/v1/api-keys",
        errors: &[400, 401, 403, 409, 415, 422],
        describe: |_schemas| {
            json!({
                "summary": "Create an API key (the key is shown once)",
                "tags": [
                    "auth"
                ],
                "responses": {
                    "201": {
                        "description": "Created",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object"
                                }
                            }
                        }
                    }
                },
                "security": [
                    {
                        "bearerAuth": []
                    }
                ],
                "requestBody": {
                    "required": true,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": [
                                    "name"
                                ],
                                "additionalProperties": false,
                                "properties": {
                                    "name": {
                                        "type": "string"
                                    },
                                    "scopes": {
                                        "type": "array",
                                        "items": {
                                            "enum": [
                                                "usage:write",
                                                "usage:read"
                                            ]
                                        }
                                    },
                                    "expires_at": {
                                        "type": "string",
                                        "format": "date-time"
                                    }
                                }
                            }
                        }
                    }
                }
            })
        },
    },
    Operation {
        method: "GET",
        path: "/v1/api-keys",
        errors: &[401, 403],
        describe: |_schemas| {
            json!({
                "summary": "List the caller's API keys (no secrets)",
                "tags": [
                    "auth"
                ],
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object"
                                }
                            }
                        }
                    }
                },
                "security": [
                    {
                        "bearerAuth": []
                    }
                ]
            })
        },
    },
    Operation {
        method: "DELETE",
        path: "/v1/api-keys/{id}",
        errors: &[401, 403, 404],
        describe: |_schemas| {
            json!({
                "summary": "Revoke an API key",
                "tags": [
                    "auth"
                ],
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object"
                                }
                            }
                        }
                    }
                },
                "security": [
                    {
                        "bearerAuth": []
                    }
                ],
                "parameters": [
                    {
                        "name": "id",
                        "in": "path",
                        "required": true,
                        "schema": {
                            "type": "string",
                            "format": "uuid"
                        }
                    }
                ]
            })
        },
    },
    Operation {
        method: "POST",
        path: "/v1/usage",
        errors: &[400, 401, 403, 409, 413, 415, 422, 503],
        describe: |_schemas| {
            json!({
                "summary": "Record one usage event",
                "tags": [
                    "usage"
                ],
                "responses": {
                    "201": {
                        "description": "Recorded (or replayed: Idempotent-Replayed header)",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object"
                                }
                            }
                        }
                    },
                    "202": {
                        "description": "Accepted for recording (Prefer: respond-async); Preference-Applied: respond-async; each event's status URL",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object"
                                }
                            }
                        }
                    }
                },
                "security": [
                    {
                        "bearerAuth": []
                    }
                ],
                "requestBody": {
                    "required": true,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": false,
                                "required": [
                                    "model",
                                    "prompt_tokens",
                                    "completion_tokens"
                                ],
                                "properties": {
                                    "model": {
                                        "type": "string",
                                        "maxLength": 128
                                    },
                                    "prompt_tokens": {
                                        "type": "integer",
                                        "minimum": 0,
                                        "maximum": MAX_TOKENS
                                    },
                                    "completion_tokens": {
                                        "type": "integer",
                                        "minimum": 0,
                                        "maximum": MAX_TOKENS
                                    },
                                    "idempotency_key": {
                                        "type": "string",
                                        "maxLength": 255
                                    },
                                    "project_id": {
                                        "type": "string",
                                        "format": "uuid"
                                    },
                                    "session_id": {
                                        "type": "string",
                                        "format": "uuid"
                                    },
                                    "reservation_id": {
                                        "type": "string",
                                        "format": "uuid"
                                    },
                                    "metadata": {
                                        "type": "object"
                                    }
                                }
                            }
                        }
                    }
                },
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": false,
                        "schema": {
                            "type": "string",
                            "maxLength": 255
                        },
                        "description": "Required unless the body carries idempotency_key; a retry with the same key answers the first answer."
                    },
                    {
                        "name": "Prefer",
                        "in": "header",
                        "required": false,
                        "schema": {
                            "type": "string"
                        },
                        "description": "respond-async: validate now, record through the usage queue, answer 202 with a status URL per event (RFC 7240)"
                    }
                ]
            })
        },
    },
    Operation {
        method: "POST",
        path: "/v1/usage/batch",
        errors: &[400, 401, 403, 413, 415, 422, 503],
        describe: |_schemas| {
            json!({
                "summary": "Record up to 1000 events, one result each",
                "tags": [
                    "usage"
                ],
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object"
                                }
                            }
                        }
                    },
                    "202": {
                        "description": "Accepted for recording (Prefer: respond-async); Preference-Applied: respond-async; each event's status URL",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object"
                                }
                            }
                        }
                    }
                },
                "security": [
                    {
                        "bearerAuth": []
                    }
                ],
                "requestBody": {
                    "required": true,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": [
                                    "events"
                                ],
                                "properties": {
                                    "events": {
                                        "type": "array",
                                        "maxItems": 1000,
                                        "items": {
                                            "type": "object",
                                            "additionalProperties": false,
                                            "required": [
                                                "model",
                                                "prompt_tokens",
                                                "completion_tokens"
                                            ],
                                            "properties": {
                                                "model": {
                                                    "type": "string",
                                                    "maxLength": 128
                                                },
                                                "prompt_tokens": {
                                                    "type": "integer",
                                                    "minimum": 0,
                                                    "maximum": MAX_TOKENS
                                                },
                                                "completion_tokens": {
                                                    "type": "integer",
                                                    "minimum": 0,
                                                    "maximum": MAX_TOKENS
                                                },
                                                "idempotency_key": {
                                                    "type": "string",
                                                    "maxLength": 255
                                                },
                                                "project_id": {
                                                    "type": "string",
                                                    "format": "uuid"
                                                },
                                                "session_id": {
                                                    "type": "string",
                                                    "format": "uuid"
                                                },
                                                "reservation_id": {
                                                    "type": "string",
                                                    "format": "uuid"
                                                },
                                                "metadata": {
                                                    "type": "object"
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                },
                "parameters": [
                    {
                        "name": "Prefer",
                        "in": "header",
                        "required": false,
                        "schema": {
                            "type": "string"
                        },
                        "description": "respond-async: validate now, record through the usage queue, answer 202 with a status URL per event (RFC 7240)"
                    }
                ]
            })
        },
    },
    Operation {
        method: "POST",
        path: "/v1/usage/reservations",
        errors: &[400, 401, 402, 403, 415, 422, 503],
        describe: |_schemas| {
            json!({
                "summary": "Reserve tokens before an LLM call",
                "tags": [
                    "usage"
                ],
                "responses": {
                    "201": {
                        "description": "Reserved",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object"
                                }
                            }
                        }
                    }
                },
                "security": [
                    {
                        "bearerAuth": []
                    }
                ],
                "requestBody": {
                    "required": true,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": [
                                    "tokens"
                                ],
                                "additionalProperties": false,
                                "properties": {
                                    "tokens": {
                                        "type": "integer",
                                        "minimum": 1
                                    },
                                    "ttl_seconds": {
                                        "type": "integer",
                                        "minimum": 10,
                                        "maximum": 3600
                                    }
                                }
                            }
                        }
                    }
                }
            })
        },
    },
    Operation {
        method: "DELETE",
        path: "/v1/usage/reservations/{id}",
        errors: &[401, 403, 404],
        describe: |_schemas| {
            json!({
                "summary": "Release a reservation early",
                "tags": [
                    "usage"
                ],
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object"
                                }
                            }
                        }
                    }
                },
                "security": [
                    {
                        "bearerAuth": []
                    }
                ],
                "parameters": [
                    {
                        "name": "id",
                        "in": "path",
                        "required": true,
                        "schema": {
                            "type": "string",
                            "format": "uuid"
                        }
                    }
                ]
            })
        },
    },
    Operation {
        method: "GET",
        path: "/v1/usage/overview",
        errors: &[401, 403, 404, 422],
        describe: |_schemas| {
            json!({
                "summary": "Balance and usage per day and per model",
                "tags": [
                    "usage"
                ],
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object"
                                }
                            }
                        }
                    }
                },
                "security": [
                    {
                        "bearerAuth": []
                    }
                ],
                "parameters": [
                    {
                        "name": "from",
                        "in": "query",
                        "schema": {
                            "type": "string",
                            "format": "date"
                        }
                    },
                    {
                        "name": "to",
                        "in": "query",
                        "schema": {
                            "type": "string",
                            "format": "date"
                        }
                    },
                    {
                        "name": "user_id",
                        "in": "query",
                        "description": "admins only",
                        "schema": {
                            "type": "string",
                            "format": "uuid"
                        }
                    }
                ]
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
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {
                            "application/json": {"schema": schemas.of::<UsageEventsPage>()}
                        }
                    }
                },
                "security": [{"bearerAuth": []}],
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "description": "rows per page (default 50)",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 50}
                    },
                    {
                        "name": "before",
                        "in": "query",
                        "description": "the opaque cursor a previous page gave as next_before; absent for the newest page",
                        "schema": {"type": "string", "maxLength": 64, "pattern": "^[A-Za-z0-9_-]+$"}
                    }
                ]
            })
        },
    },
    Operation {
        method: "GET",
        path: "/v1/usage/events/{id}",
        errors: &[400, 401, 403, 503],
        describe: |_schemas| {
            json!({
                "summary": "What became of an event sent with Prefer: respond-async: queued, recorded (with the ledger id) or rejected (with the reason)",
                "tags": [
                    "usage"
                ],
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object"
                                }
                            }
                        }
                    }
                },
                "security": [
                    {
                        "bearerAuth": []
                    }
                ],
                "parameters": [
                    {
                        "name": "id",
                        "in": "path",
                        "required": true,
                        "schema": {
                            "type": "string"
                        },
                        "description": "the event's idempotency key, percent-encoded"
                    }
                ]
            })
        },
    },
    Operation {
        method: "POST",
        path: "/v1/admin/grants",
        errors: &[400, 401, 403, 404, 409, 415, 422],
        describe: |_schemas| {
            json!({
                "summary": "Grant tokens to a user (admins)",
                "tags": [
                    "admin"
                ],
                "responses": {
                    "201": {
                        "description": "Granted",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object"
                                }
                            }
                        }
                    }
                },
                "security": [
                    {
                        "bearerAuth": []
                    }
                ],
                "requestBody": {
                    "required": true,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "description": "Names the user by exactly one of user_id and email (422 invalid_grantee otherwise).",
                                "required": [
                                    "amount",
                                    "reason"
                                ],
                                "additionalProperties": false,
                                "properties": {
                                    "user_id": {
                                        "type": "string",
                                        "format": "uuid"
                                    },
                                    "email": {
                                        "type": "string",
                                        "format": "email",
                                        "maxLength": 320,
                                        "description": "matched without regard to case"
                                    },
                                    "amount": {
                                        "type": "integer",
                                        "minimum": 1
                                    },
                                    "reason": {
                                        "type": "string",
                                        "maxLength": 500
                                    },
                                    "idempotency_key": {
                                        "type": "string"
                                    }
                                }
                            }
                        }
                    }
                },
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": false,
                        "schema": {
                            "type": "string",
                            "maxLength": 255
                        },
                        "description": "Required unless the body carries idempotency_key; a retry with the same key answers the first answer."
                    }
                ]
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
                "tags": [
                    "admin"
                ],
                "responses": {
                    "200": {
                        "description": "Updated",
                        "content": {
                            "application/json": {
                                "schema": schemas.of::<CatalogueModel>()
                            }
                        }
                    },
                    "201": {
                        "description": "Created",
                        "content": {
                            "application/json": {
                                "schema": schemas.of::<CatalogueModel>()
                            }
                        }
                    }
                },
                "security": [
                    {
                        "bearerAuth": []
                    }
                ],
                "parameters": [
                    {
                        "name": "name",
                        "in": "path",
                        "required": true,
                        "schema": {
                            "type": "string",
                            "pattern": "^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$"
                        },
                        "description": "The model's name; a / in it is sent percent-encoded (%2F)."
                    }
                ],
                "requestBody": {
                    "required": true,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": false,
                                "required": [
                                    "provider",
                                    "context_size",
                                    "input_cost_per_1k_tokens",
                                    "output_cost_per_1k_tokens"
                                ],
                                "properties": {
                                    "provider": {
                                        "type": "string",
                                        "minLength": 1,
                                        "maxLength": 64
                                    },
                                    "context_size": {
                                        "type": "integer",
                                        "minimum": 1,
                                        "maximum": 2147483647
                                    },
                                    "input_cost_per_1k_tokens": {
                                        "type": "number",
                                        "minimum": 0,
                                        "maximum": 99999999.999999,
                                        "multipleOf": 1e-06,
                                        "description": "Price of 1,000 prompt tokens"
                                    },
                                    "output_cost_per_1k_tokens": {
                                        "type": "number",
                                        "minimum": 0,
                                        "maximum": 99999999.999999,
                                        "multipleOf": 1e-06,
                                        "description": "Price of 1,000 completion tokens"
                                    },
                                    "repo_url": {
                                        "type": [
                                            "string",
                                            "null"
                                        ],
                                        "pattern": "^https://\\S+$"
                                    },
                                    "metadata": {
                                        "type": "object",
                                        "description": "At most 8 KiB"
                                    },
                                    "is_active": {
                                        "type": "boolean",
                                        "default": true
                                    }
                                }
                            }
                        }
                    }
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
                "tags": [
                    "admin"
                ],
                "responses": {
                    "200": {
                        "description": "Deactivated",
                        "content": {
                            "application/json": {
                                "schema": schemas.of::<CatalogueModel>()
                            }
                        }
                    }
                },
                "security": [
                    {
                        "bearerAuth": []
                    }
                ],
                "parameters": [
                    {
                        "name": "name",
                        "in": "path",
                        "required": true,
                        "schema": {
                            "type": "string",
                            "pattern": "^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$"
                        },
                        "description": "The model's name; a / in it is sent percent-encoded (%2F)."
                    }
                ]
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
                "tags": [
                    "ops"
                ],
                "security": [
                    {
                        "bearerAuth": []
                    }
                ],
                "responses": {
                    "200": {
                        "description": "Prometheus text format 0.0.4",
                        "content": {
                            "text/plain": {
                                "schema": {
                                    "type": "string"
                                }
                            }
                        }
                    }
                }
            })
        },
    },
];
