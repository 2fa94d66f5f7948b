//! `GET /v1/usage/events?limit=&before=`: the caller's own usage events,
//! newest first, a page at a time.
//!
//! Pages follow a keyset, not an offset: a page ends at its last row's
//! (created_at, id), and the next one starts strictly below it, so events
//! recorded while a client pages neither shift nor repeat the rows it has yet
//! to read. The position travels as an opaque cursor, `next_before`:
//! base64url (no padding) of `<created_at in µs since the Unix epoch>.<id>`.
//! It is not signed: it only positions a read within the caller's own
//! events (the database filters by user whatever it says), so a forged one
//! shows nothing more. It is parsed strictly, so anything this API did not
//! write is refused with 400 `invalid_cursor` rather than read loosely.

use crate::error::ApiError;
use crate::rpc::usage::ListUsageEvents;
use crate::rpc::{ActingFor, Answer};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

/// Rows per page when `limit` is not given.
pub const DEFAULT_LIMIT: u32 = 50;
/// The most rows one page holds (the database's bound as well).
pub const MAX_LIMIT: u32 = 100;
/// Longer than any cursor this API writes (two 19-digit numbers and a dot
/// come to 52 characters of base64url); refused before decoding.
const MAX_CURSOR_CHARS: usize = 64;

/// A keyset position: the last row of a page, which the next page starts
/// below (newest first: created_at descending, then id descending).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The row's `created_at`, in microseconds since the Unix epoch (the
    /// precision PostgreSQL keeps).
    pub created_at_us: i64,
    /// The ledger row's id; ties on created_at (one batch shares its
    /// transaction's timestamp) are broken by it.
    pub id: i64,
}

impl Cursor {
    pub fn encode(self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}.{}", self.created_at_us, self.id))
    }

    /// Only what [`Cursor::encode`] writes: anything else is refused.
    pub fn decode(text: &str) -> Result<Cursor, ApiError> {
        let refused = || ApiError::BadRequest {
            code: "invalid_cursor",
            message: "before: not a cursor this API gave (use a page's next_before as it is)"
                .into(),
        };
        if text.is_empty() || text.len() > MAX_CURSOR_CHARS {
            return Err(refused());
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| refused())?;
        let plain = std::str::from_utf8(&bytes).map_err(|_| refused())?;
        let (at, id) = plain.split_once('.').ok_or_else(refused)?;
        let cursor = Cursor {
            created_at_us: canonical_number(at).ok_or_else(refused)?,
            id: canonical_number(id).ok_or_else(refused)?,
        };
        // Ledger ids start at 1. Re-encoding catches any other spelling of
        // the same position (the base64 alphabet leaves none, but this
        // keeps "only what encode writes" true whatever the engine allows).
        if cursor.id < 1 || cursor.encode() != text {
            return Err(refused());
        }
        Ok(cursor)
    }
}

/// A non-negative decimal number as `encode` writes it: digits only, no
/// sign, no leading zero, within i64.
fn canonical_number(text: &str) -> Option<i64> {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if !digits || (text.len() > 1 && text.starts_with('0')) {
        return None;
    }
    text.parse().ok()
}

/// The parsed query of `GET /v1/usage/events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventsQuery {
    pub limit: u32,
    pub before: Option<Cursor>,
}

impl EventsQuery {
    /// `limit` (1 to 100, default 50) and `before`; any other parameter is
    /// refused as the other endpoints refuse one (422 `unknown_field`).
    pub fn parse(pairs: &[(String, String)]) -> Result<Self, ApiError> {
        let mut query = EventsQuery {
            limit: DEFAULT_LIMIT,
            before: None,
        };
        for (key, value) in pairs {
            match key.as_str() {
                "limit" => query.limit = parse_limit(value)?,
                "before" => query.before = Some(Cursor::decode(value)?),
                other => {
                    return Err(ApiError::Unprocessable {
                        code: "unknown_field",
                        message: format!(
                            "{}: not a parameter of the usage events",
                            super::truncate(other, 64)
                        ),
                    })
                }
            }
        }
        Ok(query)
    }

    /// The `list_usage_events` call for whoever the caller acts for: a
    /// user's token reads its own events, an API key its owner's.
    pub fn rpc<'a>(&self, acting: ActingFor<'a>) -> ListUsageEvents<'a> {
        ListUsageEvents {
            limit: self.limit,
            before_us: self.before.map(|c| c.created_at_us),
            before_id: self.before.map(|c| c.id),
            acting,
        }
    }
}

fn parse_limit(text: &str) -> Result<u32, ApiError> {
    // Digits only: `str::parse` would also take a sign.
    let limit = (!text.is_empty() && text.len() <= 3 && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse::<u32>().ok())
        .flatten()
        .filter(|n| (1..=MAX_LIMIT).contains(n));
    limit.ok_or_else(|| ApiError::BadRequest {
        code: "invalid_limit",
        message: format!("limit: must be a whole number from 1 to {MAX_LIMIT}"),
    })
}

/// `list_usage_events`'s answer: the page's rows, passed on as the
/// database wrote them, and the position of its last row when more follow.
#[derive(Debug, Clone, PartialEq)]
pub struct EventsPage {
    pub events: Value,
    pub next: Option<Cursor>,
}

impl EventsPage {
    /// The response body: the rows and the opaque cursor of the next page.
    pub fn body(self) -> Value {
        json!({
            "events": self.events,
            "next_before": self.next.map(Cursor::encode),
        })
    }
}

/// One row of a page as the edge answers it (`list_usage_events` writes
/// it; the edge passes it on). Described here for the OpenAPI document; the
/// end-to-end tests hold every answer to it.
#[cfg(feature = "openapi")]
#[derive(schemars::JsonSchema)]
#[schemars(
    deny_unknown_fields,
    description = "A recorded usage event of the caller's, as the ledger keeps it."
)]
pub struct UsageEvent {
    /// the ledger row's id (a 64-bit integer, as a string)
    #[schemars(regex(pattern = r"^[1-9][0-9]*$"))]
    pub id: String,
    #[schemars(extend("format" = "date-time"))]
    pub created_at: String,
    pub model: String,
    #[schemars(range(min = 0))]
    pub prompt_tokens: i64,
    #[schemars(range(min = 0))]
    pub completion_tokens: i64,
    #[schemars(range(min = 0))]
    pub total_tokens: i64,
    /// exact decimal, at the model's prices when recorded
    #[schemars(regex(pattern = r"^[0-9]+\.[0-9]{6}$"))]
    pub cost: String,
    pub idempotency_key: String,
    #[schemars(required, extend("type" = ["string", "null"], "format" = "uuid"))]
    pub api_key_id: Option<String>,
    #[schemars(required, extend("type" = ["string", "null"], "format" = "uuid"))]
    pub project_id: Option<String>,
    #[schemars(required, extend("type" = ["string", "null"], "format" = "uuid"))]
    pub session_id: Option<String>,
}

/// A page of [`UsageEvent`]s, as [`EventsPage::body`] writes it.
#[cfg(feature = "openapi")]
#[derive(schemars::JsonSchema)]
#[schemars(
    deny_unknown_fields,
    description = "A page of the caller's usage events, newest first."
)]
pub struct UsageEventsPage {
    #[schemars(length(max = 100))]
    pub events: Vec<UsageEvent>,
    /// the cursor of the next page; null on the last
    #[schemars(required, extend("type" = ["string", "null"]))]
    pub next_before: Option<String>,
}

impl Answer for EventsPage {
    fn from_answer(mut value: Value) -> Result<Self, String> {
        let events = match value.get_mut("events").map(Value::take) {
            Some(events @ Value::Array(_)) => events,
            _ => return Err("no list of events".into()),
        };
        let next = match value.get("next") {
            None | Some(Value::Null) => None,
            Some(next) => {
                let field = |name: &str| next.get(name).and_then(Value::as_i64);
                match (field("created_at_us"), field("id")) {
                    (Some(created_at_us), Some(id)) => Some(Cursor { created_at_us, id }),
                    _ => return Err("a next position without created_at_us and id".into()),
                }
            }
        };
        Ok(EventsPage { events, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<EventsQuery, ApiError> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        EventsQuery::parse(&pairs)
    }

    #[test]
    fn no_parameters_ask_for_the_newest_fifty() {
        assert_eq!(
            parse(&[]).unwrap(),
            EventsQuery {
                limit: 50,
                before: None
            }
        );
    }

    /// One row per `limit`: the limit read, or the refusal's code.
    #[test]
    fn a_limit_is_a_whole_number_from_1_to_100() {
        let cases: &[(&str, Result<u32, &str>)] = &[
            ("1", Ok(1)),
            ("100", Ok(100)),
            ("050", Ok(50)),
            ("0", Err("invalid_limit")),
            ("101", Err("invalid_limit")),
            ("-1", Err("invalid_limit")),
            ("+5", Err("invalid_limit")),
            ("5.0", Err("invalid_limit")),
            ("", Err("invalid_limit")),
            ("ten", Err("invalid_limit")),
            ("99999999999999999999", Err("invalid_limit")),
        ];
        for &(text, want) in cases {
            let got = parse(&[("limit", text)]).map(|q| q.limit);
            match want {
                Ok(limit) => assert_eq!(got.ok(), Some(limit), "{text}"),
                Err(code) => {
                    let err = got.expect_err(text);
                    assert_eq!((err.code(), err.status()), (code, 400), "{text}");
                }
            }
        }
    }

    #[test]
    fn other_parameters_are_refused_as_elsewhere() {
        let err = parse(&[("user_id", "0b6f1c4e-1111-4111-8111-111111111111")]).unwrap_err();
        assert_eq!((err.code(), err.status()), ("unknown_field", 422));
    }

    #[test]
    fn a_cursor_round_trips() {
        let cursor = Cursor {
            created_at_us: 1_796_140_800_123_456,
            id: 42,
        };
        let text = cursor.encode();
        assert!(text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        let query = parse(&[("before", &text), ("limit", "10")]).unwrap();
        assert_eq!(query.before, Some(cursor));
        let rpc = query.rpc(ActingFor::TOKEN);
        assert_eq!(
            (rpc.limit, rpc.before_us, rpc.before_id),
            (10, Some(1_796_140_800_123_456), Some(42))
        );
    }

    /// What a client might send instead of a cursor it was given.
    #[test]
    fn anything_but_a_given_cursor_is_refused() {
        let b64 = |s: &str| URL_SAFE_NO_PAD.encode(s);
        let padded = base64::engine::general_purpose::URL_SAFE.encode("1.12");
        let too_long = b64(&format!("1.{}", "1".repeat(60)));
        let forged = [
            String::new(),
            "not base64!".into(),
            b64("1"),
            b64("1.2.3"),
            b64("-1.2"),
            b64("1.-2"),
            b64("1.0"),
            b64("01.2"),
            b64("1.02"),
            b64("+1.2"),
            b64(" 1.2"),
            b64("1.2 "),
            b64("a.b"),
            b64("9223372036854775808.1"),
            b64("1.9223372036854775808"),
            padded,
            too_long,
            URL_SAFE_NO_PAD.encode([0xff, 0xfe, b'.', b'1']),
            base64::engine::general_purpose::STANDARD_NO_PAD.encode("1.1>?"),
        ];
        for text in forged {
            let err = parse(&[("before", &text)]).expect_err(&text);
            assert_eq!(
                (err.code(), err.status()),
                ("invalid_cursor", 400),
                "{text}"
            );
        }
    }

    #[test]
    fn the_answer_becomes_the_body_with_an_opaque_cursor() {
        let event = json!({"id": "7", "cost": "0.000150"});
        let page = EventsPage::from_answer(json!({
            "events": [event],
            "next": {"created_at_us": 5, "id": 7},
        }))
        .unwrap();
        let body = page.body();
        assert_eq!(body["events"], json!([event]));
        let next = body["next_before"].as_str().unwrap();
        assert_eq!(
            Cursor::decode(next).unwrap(),
            Cursor {
                created_at_us: 5,
                id: 7
            }
        );

        let last = EventsPage::from_answer(json!({"events": [], "next": null})).unwrap();
        assert_eq!(last.body(), json!({"events": [], "next_before": null}));

        for bad in [
            json!({}),
            json!({"events": {}}),
            json!({"events": [], "next": {"id": 7}}),
        ] {
            assert!(EventsPage::from_answer(bad.clone()).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn every_position_round_trips(created_at_us in 0..i64::MAX, id in 1..i64::MAX) {
            let cursor = Cursor { created_at_us, id };
            prop_assert_eq!(Cursor::decode(&cursor.encode()).ok(), Some(cursor));
        }

        #[test]
        fn decoding_never_panics(text in "\\PC{0,80}") {
            let _ = Cursor::decode(&text);
        }
    }
}
