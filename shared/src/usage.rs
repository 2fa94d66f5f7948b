//! The usage API's requests, parsed and validated before anything reaches the
//! database: one usage event, a batch of them, a reservation, an overview
//! range, a grant, a default model.
//!
//! Each parser names the offending field in its error (422 `invalid_field`,
//! `unknown_field`, or 400 for a missing idempotency key), so a client learns
//! exactly what to fix. The database checks the same rules again; these exist
//! so bad input never costs a round trip and is explained precisely.

use crate::error::ApiError;
use crate::rpc::account::GrantUserTokens;
use crate::rpc::usage::{GetUsageOverview, RecordTokenUsage, ReserveTokens};
use crate::rpc::ActingFor;
use serde_json::{Map, Value};

pub mod batch;
pub mod events;

/// The most events one `POST /v1/usage/batch` carries (the database's
/// `platform.max_batch_events()`).
pub const MAX_BATCH_EVENTS: usize = 1000;
/// The largest token count one event may carry.
pub const MAX_TOKENS: u64 = 1_000_000_000_000;
/// Metadata is a JSON object of at most this many bytes.
pub const MAX_METADATA_BYTES: usize = 8 * 1024;
/// Idempotency keys and model names are at most this long.
pub const MAX_KEY_CHARS: usize = 255;
const MAX_MODEL_CHARS: usize = 128;

pub(crate) fn invalid(field: &str, reason: &str) -> ApiError {
    ApiError::Unprocessable {
        code: "invalid_field",
        message: format!("{field}: {reason}"),
    }
}

/// A request body must be a JSON object with only the fields we know.
pub(crate) fn object<'a>(
    value: &'a Value,
    allowed: &[&str],
    what: &str,
) -> Result<&'a Map<String, Value>, ApiError> {
    let map = value.as_object().ok_or_else(|| ApiError::Unprocessable {
        code: "invalid_body",
        message: format!("{what} must be a JSON object"),
    })?;
    if let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ApiError::Unprocessable {
            code: "unknown_field",
            message: format!("{}: not a field of {what}", truncate(unknown, 64)),
        });
    }
    Ok(map)
}

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

fn token_count(map: &Map<String, Value>, field: &str) -> Result<u64, ApiError> {
    let value = map
        .get(field)
        .ok_or_else(|| invalid(field, "is required"))?;
    // as_u64 is None for negatives, fractions and anything past u64; the
    // explicit bound keeps counts far from i64's edge in SQL sums.
    match value.as_u64() {
        Some(n) if n <= MAX_TOKENS => Ok(n),
        _ => Err(invalid(
            field,
            "must be a whole number from 0 to 1000000000000",
        )),
    }
}

fn optional_uuid(map: &Map<String, Value>, field: &str) -> Result<Option<String>, ApiError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if crate::auth::is_uuid(s) => Ok(Some(s.to_ascii_lowercase())),
        Some(_) => Err(invalid(field, "must be a UUID")),
    }
}

fn required_uuid(map: &Map<String, Value>, field: &str) -> Result<String, ApiError> {
    optional_uuid(map, field)?.ok_or_else(|| invalid(field, "is required"))
}

pub(crate) fn text(
    map: &Map<String, Value>,
    field: &str,
    max_chars: usize,
) -> Result<Option<String>, ApiError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            let count = s.chars().count();
            if count == 0 || count > max_chars {
                return Err(invalid(
                    field,
                    &format!("must be 1 to {max_chars} characters"),
                ));
            }
            if s.contains('\0') {
                return Err(invalid(field, "must not contain NUL characters"));
            }
            Ok(Some(s.clone()))
        }
        Some(_) => Err(invalid(field, "must be a string")),
    }
}

pub(crate) fn metadata(map: &Map<String, Value>) -> Result<Value, ApiError> {
    match map.get("metadata") {
        None | Some(Value::Null) => Ok(Value::Object(Map::new())),
        Some(value @ Value::Object(_)) => {
            let size = value.to_string().len();
            // PostgreSQL's jsonb refuses NUL in strings; say so here, by field.
            if value.to_string().contains("\\u0000") {
                return Err(invalid("metadata", "must not contain NUL characters"));
            }
            if size > MAX_METADATA_BYTES {
                return Err(invalid("metadata", "must be at most 8 KiB"));
            }
            Ok(value.clone())
        }
        Some(_) => Err(invalid("metadata", "must be a JSON object")),
    }
}

/// The idempotency key of a request: the `Idempotency-Key` header, the body's
/// `idempotency_key`, or both when they agree.
fn idempotency_key(header: Option<&str>, body: Option<String>) -> Result<String, ApiError> {
    let header = header.map(str::trim).filter(|h| !h.is_empty());
    let key = match (header, body) {
        (Some(h), Some(b)) if h != b => {
            return Err(ApiError::BadRequest {
                code: "idempotency_key_mismatch",
                message: "the Idempotency-Key header and idempotency_key differ".into(),
            })
        }
        (Some(h), _) => h.to_string(),
        (None, Some(b)) => b,
        (None, None) => {
            return Err(ApiError::BadRequest {
                code: "idempotency_key_required",
                message:
                    "send an Idempotency-Key header (or idempotency_key) so a retry counts once"
                        .into(),
            })
        }
    };
    if key.chars().count() > MAX_KEY_CHARS || key.contains('\0') {
        return Err(invalid("idempotency_key", "must be 1 to 255 characters"));
    }
    Ok(key)
}

/// One usage event (`POST /v1/usage`, or one item of a batch).
#[derive(Debug, Clone, PartialEq)]
pub struct UsageEvent {
    pub model: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub idempotency_key: String,
    pub project_id: Option<String>,
    pub session_id: Option<String>,
    pub reservation_id: Option<String>,
    pub metadata: Value,
}

const EVENT_FIELDS: &[&str] = &[
    "model",
    "prompt_tokens",
    "completion_tokens",
    "idempotency_key",
    "project_id",
    "session_id",
    "reservation_id",
    "metadata",
];

impl UsageEvent {
    /// Parses `body` (already JSON) with the request's `Idempotency-Key`.
    pub fn parse(body: &Value, idempotency_header: Option<&str>) -> Result<Self, ApiError> {
        let map = object(body, EVENT_FIELDS, "a usage event")?;
        let model =
            text(map, "model", MAX_MODEL_CHARS)?.ok_or_else(|| invalid("model", "is required"))?;
        let prompt_tokens = token_count(map, "prompt_tokens")?;
        let completion_tokens = token_count(map, "completion_tokens")?;
        // An event that used no tokens would only add a ledger row.
        if prompt_tokens + completion_tokens == 0 {
            return Err(invalid(
                "prompt_tokens + completion_tokens",
                "must be at least 1",
            ));
        }
        Ok(UsageEvent {
            prompt_tokens,
            completion_tokens,
            idempotency_key: idempotency_key(
                idempotency_header,
                text(map, "idempotency_key", MAX_KEY_CHARS)?,
            )?,
            project_id: optional_uuid(map, "project_id")?,
            session_id: optional_uuid(map, "session_id")?,
            reservation_id: optional_uuid(map, "reservation_id")?,
            metadata: metadata(map)?,
            model,
        })
    }

    /// The event as `record_token_usage_batch` takes it.
    pub fn to_batch_item(&self) -> Value {
        serde_json::json!({
            "model": self.model,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "idempotency_key": self.idempotency_key,
            "project_id": self.project_id,
            "session_id": self.session_id,
            "reservation_id": self.reservation_id,
            "metadata": self.metadata,
        })
    }

    /// The `record_token_usage` call for this event, for whom it acts.
    pub fn rpc<'a>(&'a self, acting: ActingFor<'a>) -> RecordTokenUsage<'a> {
        RecordTokenUsage {
            model: &self.model,
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
            idempotency_key: &self.idempotency_key,
            project_id: self.project_id.as_deref(),
            session_id: self.session_id.as_deref(),
            reservation_id: self.reservation_id.as_deref(),
            metadata: &self.metadata,
            acting,
        }
    }
}

/// A batch: each event either parsed, or refused here with its own error.
#[derive(Debug)]
pub struct UsageBatch {
    pub items: Vec<Result<UsageEvent, ApiError>>,
}

impl UsageBatch {
    /// `{"events": [...]}`; each event carries its own `idempotency_key`.
    pub fn parse(body: &Value) -> Result<Self, ApiError> {
        let map = object(body, &["events"], "a usage batch")?;
        let events = map
            .get("events")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid("events", "must be an array of usage events"))?;
        if events.is_empty() {
            return Err(invalid("events", "must hold at least one event"));
        }
        if events.len() > MAX_BATCH_EVENTS {
            return Err(ApiError::BatchTooLarge {
                max: MAX_BATCH_EVENTS,
            });
        }
        Ok(UsageBatch {
            items: events.iter().map(|e| UsageEvent::parse(e, None)).collect(),
        })
    }
}

/// `POST /v1/usage/reservations`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub tokens: u64,
    pub ttl_seconds: u32,
}

impl Reservation {
    pub const DEFAULT_TTL_SECONDS: u32 = 300;

    pub fn parse(body: &Value) -> Result<Self, ApiError> {
        let map = object(body, &["tokens", "ttl_seconds"], "a reservation")?;
        let tokens = token_count(map, "tokens")?;
        if tokens == 0 {
            return Err(invalid("tokens", "must be at least 1"));
        }
        let ttl_seconds = match map.get("ttl_seconds") {
            None | Some(Value::Null) => Self::DEFAULT_TTL_SECONDS,
            Some(v) => match v.as_u64() {
                Some(n @ 10..=3600) => n as u32,
                _ => {
                    return Err(invalid(
                        "ttl_seconds",
                        "must be a whole number from 10 to 3600",
                    ))
                }
            },
        };
        Ok(Reservation {
            tokens,
            ttl_seconds,
        })
    }

    /// The `reserve_tokens` call for this hold, for whom it acts.
    pub fn rpc<'a>(&self, acting: ActingFor<'a>) -> ReserveTokens<'a> {
        ReserveTokens {
            tokens: self.tokens,
            ttl_seconds: self.ttl_seconds,
            acting,
        }
    }
}

/// `GET /v1/usage/overview?from=&to=&user_id=`: dates as `YYYY-MM-DD`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OverviewQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub user_id: Option<String>,
}

impl OverviewQuery {
    pub fn parse(pairs: &[(String, String)]) -> Result<Self, ApiError> {
        let mut query = OverviewQuery::default();
        for (key, value) in pairs {
            match key.as_str() {
                "from" | "to" => {
                    if !is_date(value) {
                        return Err(invalid(key, "must be a date like 2026-11-25"));
                    }
                    let slot = if key == "from" {
                        &mut query.from
                    } else {
                        &mut query.to
                    };
                    *slot = Some(value.clone());
                }
                "user_id" => {
                    if !crate::auth::is_uuid(value) {
                        return Err(invalid("user_id", "must be a UUID"));
                    }
                    query.user_id = Some(value.to_ascii_lowercase());
                }
                other => {
                    return Err(ApiError::Unprocessable {
                        code: "unknown_field",
                        message: format!(
                            "{}: not a parameter of the overview",
                            truncate(other, 64)
                        ),
                    })
                }
            }
        }
        Ok(query)
    }

    /// The `get_usage_overview` call, and who may read which overview. An
    /// API key (`api_key_owner`) reads its owner's usage only: naming
    /// another user is refused here, naming nobody means the owner. A
    /// user's token asks for whom it names (itself when it names nobody);
    /// the function lets admins read anyone and refuses the rest.
    pub fn rpc<'a>(
        &'a self,
        api_key_owner: Option<&'a str>,
    ) -> Result<GetUsageOverview<'a>, ApiError> {
        let user_id = match (api_key_owner, self.user_id.as_deref()) {
            (Some(owner), Some(asked)) if asked != owner => {
                return Err(ApiError::Forbidden {
                    code: "forbidden",
                    message: "an API key reads only its owner's usage".into(),
                })
            }
            (Some(owner), _) => Some(owner),
            (None, asked) => asked,
        };
        Ok(GetUsageOverview {
            from: self.from.as_deref(),
            to: self.to.as_deref(),
            user_id,
        })
    }
}

/// A calendar date `YYYY-MM-DD` from the year 1 (PostgreSQL has no year
/// 0), judged by the `time` crate's calendar.
pub(crate) fn is_date(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return false;
    };
    let all_digits = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_digit());
    if !(all_digits(y, 4) && all_digits(m, 2) && all_digits(d, 2)) {
        return false;
    }
    let (Ok(year), Ok(month), Ok(day)) = (y.parse::<i32>(), m.parse::<u8>(), d.parse::<u8>())
    else {
        return false;
    };
    year >= 1
        && time::Month::try_from(month)
            .is_ok_and(|month| time::Date::from_calendar_date(year, month, day).is_ok())
}

/// Whom a grant credits: the admin names the user by id or by email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grantee {
    Id(String),
    /// Matched without regard to case by the database, as Supabase Auth's
    /// emails are.
    Email(String),
}

/// The longest email the platform stores (`mirror_auth_user`'s limit).
const MAX_EMAIL_CHARS: usize = 320;

impl Grantee {
    /// Exactly one of `user_id` and `email`.
    fn parse(map: &Map<String, Value>) -> Result<Self, ApiError> {
        let present = |field: &str| map.get(field).is_some_and(|v| !v.is_null());
        match (present("user_id"), present("email")) {
            (true, false) => Ok(Grantee::Id(required_uuid(map, "user_id")?)),
            (false, true) => {
                let email = text(map, "email", MAX_EMAIL_CHARS)?.unwrap_or_default();
                let looks_like_one = email
                    .split_once('@')
                    .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
                    && !email.chars().any(char::is_whitespace);
                if !looks_like_one {
                    return Err(invalid("email", "must be an email address"));
                }
                Ok(Grantee::Email(email))
            }
            (both, _) => Err(ApiError::Unprocessable {
                code: "invalid_grantee",
                message: if both {
                    "name the user by user_id or by email, not both".into()
                } else {
                    "name the user by user_id or by email".into()
                },
            }),
        }
    }
}

/// `POST /v1/admin/grants`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub grantee: Grantee,
    pub amount: u64,
    pub reason: String,
    pub idempotency_key: Option<String>,
}

impl Grant {
    pub fn parse(body: &Value, idempotency_header: Option<&str>) -> Result<Self, ApiError> {
        let map = object(
            body,
            &["user_id", "email", "amount", "reason", "idempotency_key"],
            "a grant",
        )?;
        let amount = token_count(map, "amount")?;
        if amount == 0 {
            return Err(invalid("amount", "must be at least 1"));
        }
        let key = match (
            idempotency_header,
            text(map, "idempotency_key", MAX_KEY_CHARS)?,
        ) {
            (None, None) => None,
            (header, body) => Some(idempotency_key(header, body)?),
        };
        Ok(Grant {
            grantee: Grantee::parse(map)?,
            amount,
            reason: text(map, "reason", 500)?.ok_or_else(|| invalid("reason", "is required"))?,
            idempotency_key: key,
        })
    }
}

impl Grant {
    /// The `grant_user_tokens` call; the function checks that the caller is
    /// an admin.
    pub fn rpc(&self) -> GrantUserTokens<'_> {
        let (user_id, email) = match &self.grantee {
            Grantee::Id(id) => (Some(id.as_str()), None),
            Grantee::Email(email) => (None, Some(email.as_str())),
        };
        GrantUserTokens {
            user_id,
            email,
            amount: self.amount,
            reason: &self.reason,
            idempotency_key: self.idempotency_key.as_deref(),
        }
    }
}

/// `PUT /v1/me/default-model`: `{"model": "..."}`.
pub fn parse_default_model(body: &Value) -> Result<String, ApiError> {
    let map = object(body, &["model"], "a default model")?;
    text(map, "model", MAX_MODEL_CHARS)?.ok_or_else(|| invalid("model", "is required"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(body: Value) -> Result<UsageEvent, ApiError> {
        UsageEvent::parse(&body, Some("key-1"))
    }

    fn code_and_message(err: ApiError) -> (u16, String, String) {
        (err.status(), err.code().to_string(), err.to_string())
    }

    #[test]
    fn a_complete_event_parses() {
        let parsed = event(json!({
            "model": "gpt-4o-mini", "prompt_tokens": 10, "completion_tokens": 5,
            "project_id": "0B6F1C4E-1111-4111-8111-111111111111", "metadata": {"a": 1}
        }))
        .unwrap();
        assert_eq!(parsed.prompt_tokens, 10);
        assert_eq!(parsed.idempotency_key, "key-1");
        assert_eq!(
            parsed.project_id.as_deref(),
            Some("0b6f1c4e-1111-4111-8111-111111111111")
        );
        let args = serde_json::to_value(parsed.rpc(ActingFor::TOKEN)).unwrap();
        assert_eq!(args["p_metadata"], json!({"a": 1}));
        assert_eq!(
            args["p_project_id"],
            json!("0b6f1c4e-1111-4111-8111-111111111111")
        );
        assert!(args.get("p_user_id").is_none(), "{args}");
    }

    /// One row per bad input: the body, the status, the code, the field named.
    #[test]
    fn bad_events_name_the_field() {
        let cases: Vec<(Value, u16, &str, &str)> = vec![
            (
                json!({"prompt_tokens": 1, "completion_tokens": 1}),
                422,
                "invalid_field",
                "model",
            ),
            (
                json!({"model": "", "prompt_tokens": 1, "completion_tokens": 1}),
                422,
                "invalid_field",
                "model",
            ),
            (
                json!({"model": 5, "prompt_tokens": 1, "completion_tokens": 1}),
                422,
                "invalid_field",
                "model",
            ),
            (
                json!({"model": "m", "completion_tokens": 1}),
                422,
                "invalid_field",
                "prompt_tokens",
            ),
            (
                json!({"model": "m", "prompt_tokens": -1, "completion_tokens": 1}),
                422,
                "invalid_field",
                "prompt_tokens",
            ),
            (
                json!({"model": "m", "prompt_tokens": 1.5, "completion_tokens": 1}),
                422,
                "invalid_field",
                "prompt_tokens",
            ),
            (
                json!({"model": "m", "prompt_tokens": "1", "completion_tokens": 1}),
                422,
                "invalid_field",
                "prompt_tokens",
            ),
            (
                json!({"model": "m", "prompt_tokens": 0, "completion_tokens": 0}),
                422,
                "invalid_field",
                "prompt_tokens + completion_tokens",
            ),
            (
                json!({"model": "m", "prompt_tokens": 1, "completion_tokens": 1e300}),
                422,
                "invalid_field",
                "completion_tokens",
            ),
            (
                json!({"model": "m", "prompt_tokens": 1, "completion_tokens": 18446744073709551615u64}),
                422,
                "invalid_field",
                "completion_tokens",
            ),
            (
                json!({"model": "m", "prompt_tokens": 1, "completion_tokens": 1, "project_id": "x"}),
                422,
                "invalid_field",
                "project_id",
            ),
            (
                json!({"model": "m", "prompt_tokens": 1, "completion_tokens": 1, "metadata": [1]}),
                422,
                "invalid_field",
                "metadata",
            ),
            (
                json!({"model": "m", "prompt_tokens": 1, "completion_tokens": 1, "metadata": {"a": "x".repeat(9000)}}),
                422,
                "invalid_field",
                "metadata",
            ),
            (
                json!({"model": "m", "prompt_tokens": 1, "completion_tokens": 1, "metadata": {"a": "\u{0}"}}),
                422,
                "invalid_field",
                "metadata",
            ),
            (
                json!({"model": "m\u{0}", "prompt_tokens": 1, "completion_tokens": 1}),
                422,
                "invalid_field",
                "model",
            ),
            (
                json!({"model": "m", "prompt_tokens": 1, "completion_tokens": 1, "surprise": 1}),
                422,
                "unknown_field",
                "surprise",
            ),
            (json!([1]), 422, "invalid_body", "usage event"),
        ];
        for (body, status, code, field) in cases {
            let (got_status, got_code, message) =
                code_and_message(event(body.clone()).unwrap_err());
            assert_eq!((got_status, got_code.as_str()), (status, code), "{body}");
            assert!(message.contains(field), "{body}: {message}");
        }
    }

    #[test]
    fn the_idempotency_key_comes_from_the_header_or_the_body() {
        let body = json!({"model": "m", "prompt_tokens": 1, "completion_tokens": 1});
        let err = UsageEvent::parse(&body, None).unwrap_err();
        assert_eq!(
            (err.status(), err.code()),
            (400, "idempotency_key_required")
        );
        let mut with_key = body.clone();
        with_key["idempotency_key"] = json!("k");
        assert_eq!(
            UsageEvent::parse(&with_key, None).unwrap().idempotency_key,
            "k"
        );
        assert_eq!(
            UsageEvent::parse(&with_key, Some("k"))
                .unwrap()
                .idempotency_key,
            "k"
        );
        let err = UsageEvent::parse(&with_key, Some("other")).unwrap_err();
        assert_eq!(err.code(), "idempotency_key_mismatch");
        let err = UsageEvent::parse(&body, Some(&"k".repeat(256))).unwrap_err();
        assert_eq!(err.code(), "invalid_field");
    }

    #[test]
    fn a_batch_keeps_each_events_own_result() {
        let batch = UsageBatch::parse(&json!({"events": [
            {"model": "m", "prompt_tokens": 1, "completion_tokens": 1, "idempotency_key": "a"},
            {"model": "m", "prompt_tokens": -1, "completion_tokens": 1, "idempotency_key": "b"},
            {"model": "m", "prompt_tokens": 1, "completion_tokens": 1}
        ]}))
        .unwrap();
        assert!(batch.items[0].is_ok());
        assert_eq!(batch.items[1].as_ref().unwrap_err().code(), "invalid_field");
        assert_eq!(
            batch.items[2].as_ref().unwrap_err().code(),
            "idempotency_key_required"
        );
    }

    #[test]
    fn a_batch_over_the_limit_or_empty_is_refused_whole() {
        let one = json!({"model": "m", "prompt_tokens": 1, "completion_tokens": 1, "idempotency_key": "a"});
        let too_many = json!({"events": vec![one; MAX_BATCH_EVENTS + 1]});
        assert_eq!(UsageBatch::parse(&too_many).unwrap_err().status(), 413);
        assert_eq!(
            UsageBatch::parse(&json!({"events": []}))
                .unwrap_err()
                .code(),
            "invalid_field"
        );
        assert_eq!(
            UsageBatch::parse(&json!({"events": 1})).unwrap_err().code(),
            "invalid_field"
        );
    }

    #[test]
    fn reservations_take_tokens_and_an_optional_ttl() {
        assert_eq!(
            Reservation::parse(&json!({"tokens": 500})).unwrap(),
            Reservation {
                tokens: 500,
                ttl_seconds: 300
            }
        );
        for bad in [
            json!({"tokens": 0}),
            json!({"tokens": 5, "ttl_seconds": 5}),
            json!({}),
        ] {
            assert_eq!(
                Reservation::parse(&bad).unwrap_err().code(),
                "invalid_field",
                "{bad}"
            );
        }
    }

    #[test]
    fn overview_dates_must_be_real_dates() {
        let q = |k: &str, v: &str| OverviewQuery::parse(&[(k.to_string(), v.to_string())]);
        assert!(q("from", "2024-02-29").is_ok());
        for bad in [
            "2023-02-29",
            "2026-13-01",
            "2026-1-01",
            "20261125",
            "2026-11-31",
            "x",
        ] {
            assert_eq!(q("from", bad).unwrap_err().code(), "invalid_field", "{bad}");
        }
        assert_eq!(q("user_id", "nope").unwrap_err().code(), "invalid_field");
        assert_eq!(q("limit", "1").unwrap_err().code(), "unknown_field");
    }

    /// One row per way of naming the user: what is sent, or the refusal.
    #[test]
    fn a_grant_names_its_user_by_exactly_one_of_id_or_email() {
        const ID: &str = "0b6f1c4e-1111-4111-8111-111111111111";
        type Case<'a> = (Value, Result<(Option<&'a str>, Option<&'a str>), &'a str>);
        let cases: Vec<Case> = vec![
            (json!({"user_id": ID}), Ok((Some(ID), None))),
            (
                json!({"email": "Ann@Example.com"}),
                Ok((None, Some("Ann@Example.com"))),
            ),
            (json!({"user_id": ID, "email": null}), Ok((Some(ID), None))),
            (
                json!({"user_id": ID, "email": "a@b.c"}),
                Err("invalid_grantee"),
            ),
            (json!({}), Err("invalid_grantee")),
            (
                json!({"user_id": null, "email": null}),
                Err("invalid_grantee"),
            ),
            (json!({"email": "not-an-email"}), Err("invalid_field")),
            (json!({"email": "a b@c.d"}), Err("invalid_field")),
            (json!({"email": "@c.d"}), Err("invalid_field")),
            (json!({"email": ""}), Err("invalid_field")),
            (json!({"email": 7}), Err("invalid_field")),
            (
                json!({"email": format!("{}@c.d", "a".repeat(320))}),
                Err("invalid_field"),
            ),
            (json!({"user_id": "nope"}), Err("invalid_field")),
        ];
        for (who, expected) in cases {
            let mut body = json!({"amount": 10, "reason": "r"});
            for (k, v) in who.as_object().unwrap() {
                body[k] = v.clone();
            }
            let got = Grant::parse(&body, None).map(|g| {
                let args = serde_json::to_value(g.rpc()).unwrap();
                (args["p_user_id"].clone(), args["p_email"].clone())
            });
            match (got, expected) {
                (Ok(args), Ok((id, email))) => {
                    assert_eq!(args, (json!(id), json!(email)), "{body}")
                }
                (Err(e), Err(code)) => {
                    assert_eq!((e.status(), e.code()), (422, code), "{body}: {e}")
                }
                (got, expected) => panic!("{body}: {got:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn grants_need_user_amount_and_reason() {
        let ok = Grant::parse(
            &json!({"user_id": "0b6f1c4e-1111-4111-8111-111111111111", "amount": 10, "reason": "promo"}),
            None,
        )
        .unwrap();
        assert_eq!(ok.idempotency_key, None);
        for bad in [
            json!({"user_id": "0b6f1c4e-1111-4111-8111-111111111111", "amount": 0, "reason": "r"}),
            json!({"user_id": "0b6f1c4e-1111-4111-8111-111111111111", "amount": 1}),
        ] {
            assert_eq!(
                Grant::parse(&bad, None).unwrap_err().code(),
                "invalid_field",
                "{bad}"
            );
        }
    }

    /// Who may read which overview: one row per caller and asked user.
    #[test]
    fn an_api_key_reads_only_its_owners_overview() {
        const OWNER: &str = "0b6f1c4e-1111-4111-8111-111111111111";
        const OTHER: &str = "0b6f1c4e-2222-4111-8111-111111111111";
        // (API key owner, user_id asked) → user_id sent, or the refusal's code
        type Case<'a> = (
            Option<&'a str>,
            Option<&'a str>,
            Result<Option<&'a str>, &'a str>,
        );
        let cases: &[Case<'_>] = &[
            (Some(OWNER), None, Ok(Some(OWNER))),
            (Some(OWNER), Some(OWNER), Ok(Some(OWNER))),
            (Some(OWNER), Some(OTHER), Err("forbidden")),
            (None, None, Ok(None)),
            (None, Some(OTHER), Ok(Some(OTHER))),
        ];
        for &(owner, asked, want) in cases {
            let query = OverviewQuery {
                from: Some("2026-11-01".into()),
                to: None,
                user_id: asked.map(String::from),
            };
            let got = query.rpc(owner).map(|rpc| {
                assert_eq!((rpc.from, rpc.to), (Some("2026-11-01"), None));
                rpc.user_id
            });
            match (got, want) {
                (Ok(sent), Ok(want)) => assert_eq!(sent, want, "{owner:?} {asked:?}"),
                (Err(err), Err(code)) => {
                    assert_eq!(
                        (err.status(), err.code()),
                        (403, code),
                        "{owner:?} {asked:?}"
                    )
                }
                (got, want) => panic!("{owner:?} {asked:?}: {got:?}, wanted {want:?}"),
            }
        }
    }
}
