//! Every error code a caller can meet, in one table: the code, its HTTP
//! status(es), what it means and where it is raised. The edge raises some
//! (`ApiError`, `AuthError`), the SQL functions others (SQLSTATE `PTxyz`
//! with the code as `hint`, passed on by `postgrest::map_error`), and a
//! few both. The tests below check the table against the Rust sources, the
//! migrations and the OpenAPI document, both ways; README's error table is
//! rendered from it (`cargo xtask error-table`).

/// One error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode {
    pub code: &'static str,
    /// Every status it is answered with (a code raised by several checks
    /// may carry more than one, e.g. `unknown_model`).
    pub statuses: &'static [u16],
    pub meaning: &'static str,
    /// Which layer raises it, and where.
    pub raised: &'static str,
}

const fn e(
    code: &'static str,
    statuses: &'static [u16],
    meaning: &'static str,
    raised: &'static str,
) -> ErrorCode {
    ErrorCode {
        code,
        statuses,
        meaning,
        raised,
    }
}

const TOKEN: &str = "edge: access token check (`auth::jwt`)";
const WEBHOOK: &str = "edge: Standard Webhooks signature (`auth::webhook`)";

/// The catalogue, by code.
pub const CATALOGUE: &[ErrorCode] = &[
    e("anonymous_user_read_only", &[403], "an anonymous sign-in may only read", "edge: `ANONYMOUS_USERS=read_only`; SQL: `check_user_standing`"),
    e("anonymous_users_not_allowed", &[403], "anonymous sign-ins are refused", "edge: `ANONYMOUS_USERS=deny`"),
    e("api_key_expired", &[401], "the API key is past its expiry", "SQL: `resolve_api_key`, `check_api_key_owner`"),
    e("api_key_id_taken", &[409], "a new key drew an id another key has; send the request again", "edge: `postgrest::map_error` (unique violation)"),
    e("api_key_revoked", &[401], "the API key was revoked", "SQL: `resolve_api_key`, `check_api_key_owner`"),
    e("batch_too_large", &[413], "a batch carries more than 1000 events", "edge: usage batch; SQL: `record_token_usage_batch`"),
    e("database_unavailable", &[503], "the REST layer or the database is away or too slow; retry after `Retry-After`", "edge: `postgrest::map_error`, `rest::send`"),
    e("email_taken", &[409], "another platform user has this email", "SQL: `mirror_auth_user`"),
    e("forbidden", &[403], "the caller may not do this (not an admin, not the service role, another user's data)", "edge: usage overview; SQL: the admin and service-role functions"),
    e("idempotency_key_mismatch", &[400], "the header and the body name different idempotency keys", "edge: usage event"),
    e("idempotency_key_required", &[400], "a usage event needs an idempotency key", "edge: usage event"),
    e("idempotency_key_reused", &[409], "the idempotency key was used for a different request", "SQL: `usage_replay`, `grant_user_tokens`"),
    e("insufficient_balance", &[402], "the balance does not cover the hold", "SQL: `reserve_tokens`"),
    e("insufficient_scope", &[403], "the API key lacks the scope this endpoint needs", "edge: `auth::scopes`"),
    e("internal_error", &[500], "a fault of the edge itself", "edge"),
    e("invalid_amount", &[422], "a grant's amount is out of range", "SQL: `grant_user_tokens`"),
    e("invalid_api_key", &[401], "no such API key, or its secret does not match", "SQL: `resolve_api_key`"),
    e("invalid_api_key_material", &[422], "the stored prefix or hash is malformed", "SQL: `create_api_key`"),
    e("invalid_batch", &[422], "a batch or queue delivery is not a list of events", "SQL: `record_token_usage_batch`, `record_queued_usage`, `record_usage_dead_letters`"),
    e("invalid_body", &[422], "the body is not a JSON object", "edge: request parsers (`usage`, `models`)"),
    e("invalid_cells", &[422], "a telemetry flush is malformed", "SQL: `record_execution_metrics`"),
    e("invalid_cursor", &[400], "`before` is not a cursor a page of usage events gave", "edge: `usage::events`; SQL: `list_usage_events`"),
    e("invalid_email", &[422], "the email is not one the platform stores", "SQL: `mirror_auth_user`"),
    e("invalid_expiry", &[422], "an API key's expiry is not a future RFC 3339 date-time", "edge: `auth::api_key`; SQL: `create_api_key`"),
    e("invalid_field", &[422], "a field is missing or invalid; the message names it", "edge: request parsers (`usage`, `models`)"),
    e("invalid_grantee", &[422], "a grant names its user by neither or both of `user_id` and `email`", "edge: `usage::Grantee`; SQL: `grant_user_tokens`"),
    e("invalid_idempotency_key", &[400, 422], "the idempotency key is empty, too long or not text", "edge: event status path; SQL: `usage_event_plan`, `grant_user_tokens`"),
    e("invalid_json", &[400], "the body is not valid JSON", "edge: `http::parse_json`"),
    e("invalid_limit", &[400], "`limit` is not a whole number from 1 to 100", "edge: `usage::events`; SQL: `list_usage_events`"),
    e("invalid_metadata", &[422], "metadata is not a JSON object of at most 8192 bytes", "SQL: `usage_event_plan`, session metadata trigger"),
    e("invalid_model", &[422], "a model description breaks the catalogue's rules", "SQL: `upsert_model`"),
    e("invalid_name", &[422], "an API key's name is empty or too long", "edge: `auth::api_key`; SQL: `create_api_key`"),
    e("invalid_range", &[422], "the overview's `from` is after its `to`, or the range is too long", "SQL: `get_usage_overview`"),
    e("invalid_reason", &[422], "a grant needs a reason", "SQL: `grant_user_tokens`"),
    e("invalid_role", &[401, 422], "the token's role, or a mirrored user's role, is not one the platform knows", "edge: access token check; SQL: `mirror_auth_user`"),
    e("invalid_scopes", &[422], "scopes are `usage:write` and/or `usage:read`", "edge: `auth::api_key`; SQL: `create_api_key`"),
    e("invalid_signature", &[401], "the token's signature does not verify", TOKEN),
    e("invalid_source", &[422], "a mirror's source is not `webhook` or `jit`", "SQL: `mirror_auth_user`"),
    e("invalid_subject", &[401], "the token's `sub` is not a user id", TOKEN),
    e("invalid_token", &[401], "the deep health check needs the operator's `METRICS_TOKEN`", "edge: `GET /health?deep=1`"),
    e("invalid_token_count", &[422], "token counts are negative, too large, or add up to 0", "SQL: `usage_event_plan`, `reserve_tokens`"),
    e("invalid_ttl", &[422], "a hold's lifetime is outside 10 to 3600 seconds", "SQL: `reserve_tokens`"),
    e("invalid_user_id", &[422], "a mirrored user's id is not a UUID", "SQL: `mirror_auth_user`"),
    e("invalid_webhook_record", &[422], "the webhook's record lacks a usable user", "edge: `hooks::user_mirror`"),
    e("invalid_webhook_secret", &[401], "the webhook's shared secret does not match", "edge: `auth::shared_secret`"),
    e("invalid_webhook_signature", &[401], "no webhook signature matches a configured secret", WEBHOOK),
    e("invalid_webhook_timestamp", &[401], "the webhook's timestamp is not a number", WEBHOOK),
    e("jwks_unavailable", &[503], "the project's signing keys could not be fetched for too long; retry after `Retry-After`", "edge: `auth::jwks_cache`"),
    e("ledger_is_append_only", &[409], "usage ledger rows are never changed or deleted", "SQL: trigger on `platform.token_usage`"),
    e("malformed_api_key", &[401], "the bearer token looks like an API key but is not one", "edge: `auth::api_key`"),
    e("malformed_token", &[401], "the bearer token is not a JWT", TOKEN),
    e("method_not_allowed", &[405], "the path exists, the method does not (`Allow` lists the methods)", "edge: `routes::Router`"),
    e("misconfigured", &[500], "a Worker variable or secret is missing or invalid; the log names it", "edge: `Config`, webhook secrets"),
    e("missing_expiry", &[401], "the token has no `exp`", TOKEN),
    e("missing_key_id", &[401], "an ES256/RS256 token has no `kid`", TOKEN),
    e("missing_token", &[401], "no `Authorization: Bearer` token", TOKEN),
    e("missing_webhook_headers", &[401], "the webhook lacks `webhook-id`, `-timestamp` or `-signature`", WEBHOOK),
    e("missing_webhook_secret", &[401], "the webhook lacks its shared-secret header", "edge: `auth::shared_secret`"),
    e("not_authenticated", &[401], "the database saw no user in the call", "SQL: `caller_user_id`"),
    e("not_found", &[404], "no route for this path, or no such object", "edge: `routes::Router`, path ids"),
    e("not_reservation_holder", &[403], "only the caller that took a hold may release it", "SQL: `release_token_reservation`"),
    e("origin_not_allowed", &[403], "the browser's origin is not in `ALLOWED_ORIGINS`", "edge: `cors`"),
    e("payload_too_large", &[413], "the body is larger than `MAX_BODY_BYTES`", "edge: `http`"),
    e("rate_limited", &[429], "a rate limit (per API key, per user, or per client address) is used up for this window; retry after `Retry-After`", "edge: `rate_limit` (the Workers rate limiting bindings)"),
    e("rpc_missing", &[502], "a function the edge calls is missing (migrations not applied); the log names it", "edge: `postgrest::map_error` (PGRST202)"),
    e("schema_not_exposed", &[502], "the project does not serve the `platform` schema", "edge: `postgrest::map_error` (PGRST106)"),
    e("token_expired", &[401], "the token is past its `exp`", TOKEN),
    e("token_not_yet_valid", &[401], "the token's `nbf` or `iat` is in the future", TOKEN),
    e("token_too_large", &[401], "the bearer token is too long to be one", TOKEN),
    e("too_many_api_keys", &[409], "the user has 25 unrevoked keys, or 100 in all", "SQL: `create_api_key`"),
    e("too_many_cells", &[413], "a telemetry flush carries too many cells", "SQL: `record_execution_metrics`"),
    e("too_many_projects", &[409], "the user has 100 projects", "SQL: projects trigger"),
    e("too_many_sessions", &[409], "the user has 10000 sessions", "SQL: sessions trigger"),
    e("unknown_api_key", &[404, 422], "no such API key of this user", "SQL: `revoke_api_key` (404), `check_api_key_owner` (422)"),
    e("unknown_auth_user", &[422], "no Supabase Auth user has this id", "SQL: `mirror_auth_user`"),
    e("unknown_field", &[422], "a field or parameter the endpoint does not take", "edge: request parsers"),
    e("unknown_key_id", &[401], "the token's `kid` is not among the project's signing keys", TOKEN),
    e("unknown_model", &[404, 422], "no active model of that name (404 on an admin route, 422 for usage)", "SQL: `usage_event_plan`, `set_default_model`, `deactivate_model`"),
    e("unknown_project", &[422], "no such project of this user", "SQL: `usage_event_plan`"),
    e("unknown_reservation", &[404], "no such hold of this user", "SQL: `release_token_reservation`"),
    e("unknown_session", &[422], "no such session of this user", "SQL: `usage_event_plan`"),
    e("unknown_user", &[404], "the user is not registered on the platform", "edge: just-in-time mirror; SQL: `caller_user_id`, `grant_user_tokens`, `get_usage_overview`"),
    e("unsupported_algorithm", &[401], "the token's `alg` is not HS256, ES256 or RS256", TOKEN),
    e("unsupported_hook_event", &[422], "the Auth hook call is for another hook", "edge: `hooks::signup`"),
    e("unsupported_media_type", &[415], "the body is not `application/json`", "edge: `http`"),
    e("unsupported_webhook_event", &[422], "the database webhook is not an insert into `auth.users`", "edge: `hooks::user_mirror`"),
    e("upstream_error", &[502], "the REST layer answered something unexpected; the log has it", "edge: `postgrest::map_error`"),
    e("user_banned", &[403], "Supabase Auth banned the user", "SQL: `check_user_standing`"),
    e("user_deleted", &[403], "Supabase Auth deleted the user", "SQL: `check_user_standing`"),
    e("user_id_required", &[422], "the service role must name the user it acts for", "SQL: `caller_user_id`"),
    e("user_required", &[401], "the token is not a signed-in user's (e.g. the anon key)", TOKEN),
    e("user_token_required", &[403], "this endpoint needs a user's access token, not an API key", "edge: `caller::authenticate_user`"),
    e("webhook_timestamp_too_new", &[401], "the webhook's timestamp is too far in the future", WEBHOOK),
    e("webhook_timestamp_too_old", &[401], "the webhook's timestamp is too old (a replay?)", WEBHOOK),
    e("wrong_audience", &[401], "the token's `aud` is not `authenticated`", TOKEN),
    e("wrong_issuer", &[401], "the token's `iss` is not one of `SUPABASE_JWT_ISSUERS`", TOKEN),
];

/// The entry of `code`.
pub fn find(code: &str) -> Option<&'static ErrorCode> {
    CATALOGUE.iter().find(|entry| entry.code == code)
}

/// README's error table, between these markers.
pub const README_BEGIN: &str =
    "<!-- error-catalogue:begin (generated by `cargo xtask error-table`) -->";
pub const README_END: &str = "<!-- error-catalogue:end -->";

/// The catalogue as a Markdown table.
pub fn markdown_table() -> String {
    let mut out = String::from("| code | status | meaning | raised in |\n|---|---|---|---|\n");
    for entry in CATALOGUE {
        let statuses: Vec<String> = entry.statuses.iter().map(u16::to_string).collect();
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            entry.code,
            statuses.join(", "),
            entry.meaning,
            entry.raised
        ));
    }
    out
}

/// `document` with the text between the README markers replaced by the
/// table; `None` when the markers are missing.
pub fn with_readme_table(document: &str) -> Option<String> {
    let begin = document.find(README_BEGIN)? + README_BEGIN.len();
    let end = begin + document[begin..].find(README_END)?;
    Some(format!(
        "{}\n{}{}",
        &document[..begin],
        markdown_table(),
        &document[end..]
    ))
}

#[cfg(test)]
mod tests;
