//! Usage accepted with `Prefer: respond-async` (RFC 7240) and recorded later
//! by the Worker's own queue consumer (Cloudflare Queues).
//!
//! The edge authenticates and validates at once, so bad input is still a
//! 4xx; the valid events of a request become queue messages of up to 100
//! events each, naming their user (and API key) so the consumer, running as
//! the service role, records them for that user. Every event carries its
//! idempotency key: delivery is at least once, the ledger counts each key
//! once. Several events per message keep the queue's message count (and the
//! consumer's per-message work) a hundred times smaller at high volume.

use crate::hooks::MirrorUser;
use crate::postgrest::{Auth, Client, HttpCall};
use crate::rpc::operations::{RecordQueuedUsage, RecordUsageDeadLetters, DEAD_LETTER_REASON};
use crate::rpc::Rpc;
use crate::ApiError;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::borrow::Cow;

/// The producer binding in wrangler.toml (`[[queues.producers]]`).
pub const PRODUCER_BINDING: &str = "USAGE_QUEUE";

/// `sendBatch` takes at most 100 messages and 256 KB in all.
pub const MAX_MESSAGES_PER_SEND: usize = 100;
pub const MAX_BYTES_PER_SEND: usize = 256_000;

/// A message holds at most this many events, and stays under the queue's
/// 128 KB per message (one event is at most about 9 KB: its metadata is
/// capped at 8 KiB).
pub const MAX_EVENTS_PER_MESSAGE: usize = 100;
pub const MAX_MESSAGE_BYTES: usize = 120_000;

/// One queue message: events of one caller, accepted together. The
/// consumer reads it back as a [`DeliveredUsage`].
///
/// Encoded as two lines of JSON: the message without its events, then the
/// events as one JSON array. The consumer checks the array's text and pastes
/// it into the recording RPC's arguments as it came: it never parses an
/// event into a tree, and needs no raw-JSON support from serde_json (the
/// `raw_value` feature, with which it borrowed each event's span from a
/// single JSON document, cost the wasm 5.6 KiB gzipped). The events as a
/// string member of one document would have to be unescaped and escaped
/// again on the way through, about three times the consumer's CPU per event
/// (measured natively). Messages written before this format are one
/// document with `events` an array; the consumer reads both.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueuedUsage {
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<String>,
    /// The events as the batch RPC takes them (`UsageEvent::to_batch_item`),
    /// as the text of one JSON array: the message's second line.
    #[serde(skip)]
    pub events: String,
    /// When the edge accepted them (Unix ms), so the consumer can report lag.
    pub accepted_at_ms: f64,
    /// The user's row, when the accepting isolate did not know them to be
    /// mirrored (it makes no call for queued usage): the consumer mirrors
    /// them before recording (`crate::hooks::jit_mirror`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<MirrorUser>,
}

impl QueuedUsage {
    /// The messages for one request's valid events, within the per-message
    /// limits, in order.
    pub fn for_events(
        user_id: &str,
        api_key_id: Option<&str>,
        events: Vec<Value>,
        accepted_at_ms: f64,
    ) -> Vec<QueuedUsage> {
        // Each event is printed once: its text is also its size (and a comma).
        let sized = events.into_iter().map(|event| {
            let text = event.to_string();
            let size = text.len() + 1;
            (text, size)
        });
        pack(sized, MAX_EVENTS_PER_MESSAGE, MAX_MESSAGE_BYTES)
            .into_iter()
            .map(|texts| QueuedUsage {
                user_id: user_id.to_string(),
                api_key_id: api_key_id.map(str::to_string),
                events: format!("[{}]", texts.join(",")),
                accepted_at_ms,
                mirror: None,
            })
            .collect()
    }

    /// The same message, carrying `mirror` for the consumer.
    pub fn with_mirror(self, mirror: Option<MirrorUser>) -> Self {
        QueuedUsage { mirror, ..self }
    }

    /// The message body as sent: text (a structured value would pass through
    /// serde-wasm-bindgen, which turns JSON objects into JS `Map`s that do
    /// not come back as objects; text survives the queue unchanged). The
    /// first line cannot hold a newline: serde_json's compact output escapes
    /// the ones inside strings.
    pub fn encode(&self) -> String {
        let mut body = serde_json::to_string(self).unwrap_or_default();
        body.push('\n');
        body.push_str(&self.events);
        body
    }
}

/// A delivered message as the consumer reads it: a [`QueuedUsage`] whose
/// events stay the JSON text the edge wrote, borrowed from the body. The
/// consumer only passes events on to the RPC, which judges them; parsing
/// each into a tree and printing it again was most of the consumer's CPU
/// (a delivery holds up to 5,000 events). The body is still checked as
/// strictly as before: valid JSON, a string `user_id`, an optional string
/// `api_key_id`, the events a JSON array, a number `accepted_at_ms`, an
/// optional well-formed `mirror`.
///
/// It is one entry of `record_queued_usage`'s `p_messages` ([`write_entries`]),
/// naming its user, key and acceptance time once for all its events (one
/// entry per event doubled the body: a delivery of 100 messages then passed
/// the REST layer's 2 MB body limit). The mirror row is not sent.
#[derive(Debug)]
pub struct DeliveredUsage<'a> {
    pub user_id: String,
    pub api_key_id: Option<String>,
    /// The text of a JSON array, checked: borrowed from a body in today's
    /// format, printed from one in the format before it.
    pub events: Cow<'a, str>,
    pub accepted_at_ms: f64,
    pub mirror: Option<MirrorUser>,
    event_count: usize,
}

/// A delivered body's first line, or the whole of a body in the format
/// before (`events` then an array in it).
#[derive(Deserialize)]
struct DeliveredHead {
    user_id: String,
    #[serde(default)]
    api_key_id: Option<String>,
    #[serde(default)]
    events: Option<Vec<Value>>,
    accepted_at_ms: f64,
    #[serde(default)]
    mirror: Option<MirrorUser>,
}

/// One entry of the recording RPCs' `p_messages`, without its events.
#[derive(Serialize)]
struct EntryHead<'a> {
    user_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_key_id: Option<&'a str>,
    accepted_at_ms: f64,
}

impl<'a> DeliveredUsage<'a> {
    /// A delivered body (`QueuedUsage::encode`, or one document with
    /// `events` an array, as the edge wrote them before); `None` when it is
    /// not one of ours.
    pub fn decode(body: &'a str) -> Option<DeliveredUsage<'a>> {
        // Through the byte reader like every other parse in the Worker: a
        // second reader type (`from_str`) links a second copy of
        // serde_json's parser for this one call.
        let (head, events, event_count) = match body.split_once('\n') {
            Some((head, events)) => {
                let head: DeliveredHead = serde_json::from_slice(head.as_bytes()).ok()?;
                if head.events.is_some() {
                    return None;
                }
                // Checked here, so that a malformed message is dropped alone
                // rather than failing its whole delivery in the RPC.
                // Ignoring each element still checks its syntax.
                let checked: Vec<IgnoredAny> = serde_json::from_slice(events.as_bytes()).ok()?;
                (head, Cow::Borrowed(events), checked.len())
            }
            None => {
                let mut head: DeliveredHead = serde_json::from_slice(body.as_bytes()).ok()?;
                // Only messages queued before the two-line format: printed
                // once.
                let events = head.events.take()?;
                let count = events.len();
                (head, Cow::Owned(Value::Array(events).to_string()), count)
            }
        };
        Some(DeliveredUsage {
            user_id: head.user_id,
            api_key_id: head.api_key_id,
            events,
            accepted_at_ms: head.accepted_at_ms,
            mirror: head.mirror,
            event_count,
        })
    }

    /// The users the consumer must mirror before recording `messages`: each
    /// row carried, once per user, in order of appearance.
    pub fn mirrors(messages: &[DeliveredUsage<'_>]) -> Vec<MirrorUser> {
        // A delivery carries a few rows at most (one per message, most
        // messages none): a scan of those kept beats a hash set, in time and
        // in the wasm.
        let mut rows: Vec<MirrorUser> = Vec::new();
        for user in messages.iter().filter_map(|m| m.mirror.as_ref()) {
            if !rows.iter().any(|kept| kept.id == user.id) {
                rows.push(user.clone());
            }
        }
        rows
    }

    /// The events `messages` carry.
    pub fn event_count(messages: &[DeliveredUsage<'_>]) -> usize {
        messages.iter().map(|m| m.event_count).sum()
    }
}

/// Writes `messages` as the recording RPCs' `p_messages`: a JSON array of
/// `{"user_id", "api_key_id"?, "accepted_at_ms", "events"}`, each message's
/// events pasted in as delivered (checked by [`DeliveredUsage::decode`]).
pub fn write_entries(out: &mut String, messages: &[DeliveredUsage<'_>]) -> Result<(), ApiError> {
    out.push('[');
    for (i, message) in messages.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let head = EntryHead {
            user_id: &message.user_id,
            api_key_id: message.api_key_id.as_deref(),
            accepted_at_ms: message.accepted_at_ms,
        };
        let head = serde_json::to_string(&head)
            .map_err(|e| crate::rpc::unserializable(RecordQueuedUsage::NAME, e))?;
        // `{…}` less its closing brace, then the events.
        out.push_str(head.strip_suffix('}').unwrap_or(&head));
        out.push_str(r#","events":"#);
        out.push_str(&message.events);
        out.push('}');
    }
    out.push(']');
    Ok(())
}

/// The same entry as [`write_entries`] writes, through serde (the events
/// parsed): what `Rpc`'s `Serialize` bound asks for, used by the tests that
/// serialize every call type. The Worker sends [`write_entries`]' text.
impl Serialize for DeliveredUsage<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeStruct};
        let events: Value =
            serde_json::from_slice(self.events.as_bytes()).map_err(S::Error::custom)?;
        let mut entry = serializer.serialize_struct("DeliveredUsage", 4)?;
        entry.serialize_field("user_id", &self.user_id)?;
        if let Some(key) = &self.api_key_id {
            entry.serialize_field("api_key_id", key)?;
        }
        entry.serialize_field("accepted_at_ms", &self.accepted_at_ms)?;
        entry.serialize_field("events", &events)?;
        entry.end()
    }
}

/// Whether the request asked to be answered before the work is done:
/// `Prefer: respond-async`, alone or among other preferences, any case.
pub fn wants_async(prefer: Option<&str>) -> bool {
    prefer.is_some_and(|value| {
        value.split(',').any(|preference| {
            // `token [= value] *(; parameter)`: only the token matters here.
            let token = preference.split([';', '=']).next().unwrap_or_default();
            token.trim().eq_ignore_ascii_case("respond-async")
        })
    })
}

/// Encodes messages into the bodies of `sendBatch` calls within the
/// platform's limits.
pub fn send_batches(messages: &[QueuedUsage]) -> Vec<Vec<String>> {
    // Each message is encoded once: its body is also its size.
    let sized = messages.iter().map(QueuedUsage::encode).map(|body| {
        let size = body.len();
        (body, size)
    });
    pack(sized, MAX_MESSAGES_PER_SEND, MAX_BYTES_PER_SEND)
}

/// Splits sized items, in order, into groups of at most `max_items` items and
/// `max_bytes` bytes. An item larger than `max_bytes` makes a group alone.
fn pack<T>(
    items: impl IntoIterator<Item = (T, usize)>,
    max_items: usize,
    max_bytes: usize,
) -> Vec<Vec<T>> {
    let mut groups: Vec<Vec<T>> = Vec::new();
    let mut bytes = 0;
    for (item, size) in items {
        match groups.last_mut() {
            Some(group) if group.len() < max_items && bytes + size <= max_bytes => group.push(item),
            _ => {
                groups.push(vec![item]);
                bytes = 0;
            }
        }
        bytes += size;
    }
    groups
}

/// Characters left as they are in a path segment (RFC 3986 unreserved).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Where the caller asks what became of an event.
pub fn status_path(idempotency_key: &str) -> String {
    format!(
        "/v1/usage/events/{}",
        utf8_percent_encode(idempotency_key, SEGMENT)
    )
}

/// The idempotency key from the `{key}` segment of the status path: any key
/// `POST /v1/usage` accepts (1 to 255 characters, no NUL, which PostgreSQL
/// text cannot hold), so every `status_url` the edge hands out can be read.
pub fn key_from_segment(segment: &str) -> Result<String, ApiError> {
    let key = percent_decode_str(segment)
        .decode_utf8()
        .map_err(|_| ApiError::BadRequest {
            code: "invalid_idempotency_key",
            message: "the idempotency key in the path is not valid UTF-8".into(),
        })?;
    let chars = key.chars().count();
    if chars == 0 || chars > crate::usage::MAX_KEY_CHARS || key.contains('\0') {
        return Err(ApiError::BadRequest {
            code: "invalid_idempotency_key",
            message: "an idempotency key has 1 to 255 characters, none of them NUL".into(),
        });
    }
    Ok(key.into_owned())
}

/// One accepted event in a 202 answer: its key and where to ask about it.
pub fn queued_answer(idempotency_key: &str) -> Value {
    json!({
        "status": "queued",
        "idempotency_key": idempotency_key,
        "status_url": status_path(idempotency_key),
    })
}

/// What the consumer does with a delivered batch after calling the RPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Recorded, replayed or rejected for good (each event's fate is in the
    /// ledger or in usage_rejections): acknowledge every message.
    AckAll,
    /// The call failed: deliver the whole batch again after the delay. Once
    /// the queue's `max_retries` are spent the messages go to the dead-letter
    /// queue, whose consumer records them as rejections.
    RetryAll { delay_seconds: u32 },
}

/// Whole-batch retries back off with the age of the oldest message: waiting
/// as long again as it has already waited roughly doubles the delay on each
/// attempt (2 s at least, 5 minutes at most), without counting attempts.
pub fn delivery_after(result: &Result<Value, ApiError>, oldest_age_secs: f64) -> Delivery {
    match result {
        Ok(_) => Delivery::AckAll,
        Err(_) => Delivery::RetryAll {
            delay_seconds: oldest_age_secs.clamp(2.0, 300.0) as u32,
        },
    }
}

/// Dead-letter queues are named after their queue with this suffix
/// (wrangler.toml: `cds-usage-events` → `cds-usage-events-dlq`).
pub const DEAD_LETTER_SUFFIX: &str = "-dlq";

/// Which queue a delivered batch comes from, and so what the consumer does
/// with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumer {
    /// The usage queue: mirror the users the messages carry, then record.
    Usage,
    /// Its dead-letter queue: keep every event as a rejection.
    DeadLetters,
}

impl Consumer {
    pub fn of_queue(name: &str) -> Self {
        if name.ends_with(DEAD_LETTER_SUFFIX) {
            Consumer::DeadLetters
        } else {
            Consumer::Usage
        }
    }

    /// The function a batch is counted as in telemetry.
    pub fn telemetry_function(self) -> &'static str {
        match self {
            Consumer::Usage => "usage_queue_consumer",
            Consumer::DeadLetters => "usage_dead_letter_consumer",
        }
    }

    /// Users are mirrored before recording; a dead letter is never
    /// recorded, so its user need not exist.
    pub fn mirrors_users(self) -> bool {
        self == Consumer::Usage
    }

    /// The one call that takes a delivered batch, as the service role.
    pub fn recording_call(
        self,
        client: &Client<'_>,
        entries: &[DeliveredUsage<'_>],
    ) -> Result<HttpCall, ApiError> {
        match self {
            Consumer::Usage => {
                client.rpc(&RecordQueuedUsage { messages: entries }, Auth::ServiceRole)
            }
            Consumer::DeadLetters => client.rpc(
                &RecordUsageDeadLetters {
                    messages: entries,
                    reason: DEAD_LETTER_REASON,
                },
                Auth::ServiceRole,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &str = "00000000-0000-4000-8000-000000000001";

    fn event(key: &str, metadata_bytes: usize) -> Value {
        json!({"idempotency_key": key, "model": "m", "prompt_tokens": 1,
               "completion_tokens": 1, "metadata": {"pad": "x".repeat(metadata_bytes)}})
    }

    /// Events as a message carries them: one JSON array's text.
    fn text(events: &[Value]) -> String {
        Value::Array(events.to_vec()).to_string()
    }

    /// The events a message or an RPC entry carries, parsed back.
    fn events_in(text: &str) -> Vec<Value> {
        serde_json::from_str(text).unwrap()
    }

    fn message(key: &str, metadata_bytes: usize) -> QueuedUsage {
        QueuedUsage {
            user_id: USER.into(),
            api_key_id: None,
            events: text(&[event(key, metadata_bytes)]),
            accepted_at_ms: 1.0,
            mirror: None,
        }
    }

    fn mirror_row(id: &str) -> MirrorUser {
        MirrorUser {
            id: id.into(),
            email: Some("ada@example.com".into()),
            username: "ada".into(),
            role: crate::config::UserRole::Developer,
        }
    }

    /// The RPC's `p_messages` for delivered bodies, as the consumer sends it.
    fn rpc_entries(bodies: &[String]) -> Value {
        let delivered: Vec<_> = bodies
            .iter()
            .map(|body| DeliveredUsage::decode(body).unwrap())
            .collect();
        let sent = RecordQueuedUsage {
            messages: &delivered,
        }
        .arguments()
        .unwrap();
        let mut sent: Value = serde_json::from_str(&sent).unwrap();
        sent["p_messages"].take()
    }

    /// A body as the edge wrote it before the two-line format: one document,
    /// `events` an array in it.
    fn one_document(message: &QueuedUsage) -> String {
        let mut body = serde_json::to_value(message).unwrap();
        body["events"] = Value::Array(events_in(&message.events));
        body.to_string()
    }

    #[test]
    fn a_carried_mirror_row_survives_the_queue_and_is_made_once_per_user() {
        let other = "00000000-0000-4000-8000-000000000002";
        let carried = message("a", 0).with_mirror(Some(mirror_row(USER)));
        assert!(
            !message("b", 0).encode().contains("mirror"),
            "absent unless carried"
        );
        let bodies: Vec<String> = [
            carried.clone(),
            message("b", 0),
            carried,
            message("c", 0).with_mirror(Some(mirror_row(other))),
        ]
        .iter()
        .map(QueuedUsage::encode)
        .collect();
        let delivered: Vec<_> = bodies
            .iter()
            .map(|body| DeliveredUsage::decode(body).unwrap())
            .collect();
        assert_eq!(delivered[0].mirror, Some(mirror_row(USER)));
        let ids: Vec<String> = DeliveredUsage::mirrors(&delivered)
            .into_iter()
            .map(|u| u.id)
            .collect();
        assert_eq!(ids, vec![USER.to_string(), other.to_string()]);
        assert_eq!(
            rpc_entries(&bodies[..1])[0]
                .as_object()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            vec!["accepted_at_ms", "events", "user_id"],
            "the recording RPC is not sent the row"
        );
    }

    #[test]
    fn a_requests_events_fill_messages_of_at_most_100_events_and_120_kb() {
        let keys = |messages: &[QueuedUsage]| -> Vec<String> {
            messages
                .iter()
                .flat_map(|m| events_in(&m.events))
                .map(|e| e["idempotency_key"].as_str().unwrap().to_string())
                .collect()
        };
        let events: Vec<Value> = (0..1000).map(|i| event(&format!("k{i}"), 10)).collect();
        let messages = QueuedUsage::for_events(USER, Some("key-1"), events.clone(), 5.0);
        assert_eq!(messages.len(), 10);
        assert!(
            messages
                .iter()
                .all(|m| events_in(&m.events).len() == 100
                    && m.api_key_id.as_deref() == Some("key-1"))
        );
        let expected: Vec<String> = (0..1000).map(|i| format!("k{i}")).collect();
        assert_eq!(keys(&messages), expected, "every event once, in order");

        let big: Vec<Value> = (0..50).map(|i| event(&format!("b{i}"), 8_000)).collect();
        let messages = QueuedUsage::for_events(USER, None, big, 5.0);
        assert!(messages.len() > 1);
        assert!(
            messages.iter().all(|m| m.encode().len() <= 128_000),
            "under the queue's limit"
        );
        assert_eq!(keys(&messages).len(), 50);
        assert!(QueuedUsage::for_events(USER, None, vec![], 5.0).is_empty());
    }

    #[test]
    fn a_message_is_two_lines_whatever_its_events_hold() {
        let mut events = vec![event("a", 0), event("b\nc", 0)];
        events[0]["metadata"] = json!({"note": "line one\nline two", "\n": "\r\n"});
        let message = QueuedUsage::for_events(USER, None, events.clone(), 1.0)
            .remove(0)
            .with_mirror(Some(MirrorUser {
                username: "a\nb".into(),
                ..mirror_row(USER)
            }));
        let body = message.encode();
        assert_eq!(body.matches('\n').count(), 1, "{body}");
        let (head, text) = body.split_once('\n').unwrap();
        assert!(!head.contains("events"), "{head}");
        assert_eq!(events_in(text), events);
        let delivered = DeliveredUsage::decode(&body).unwrap();
        assert_eq!(delivered.mirror.unwrap().username, "a\nb");
    }

    #[test]
    fn the_rpc_gets_one_entry_per_message_naming_its_user_and_key_once() {
        let mut m = message("a", 0);
        m.events = text(&[event("a", 0), event("b", 0)]);
        m.api_key_id = Some("key-1".into());
        let messages = [m, message("c", 0)];
        let bodies: Vec<String> = messages.iter().map(QueuedUsage::encode).collect();
        let delivered: Vec<_> = bodies
            .iter()
            .map(|body| DeliveredUsage::decode(body).unwrap())
            .collect();
        assert_eq!(DeliveredUsage::event_count(&delivered), 3);
        let entries = rpc_entries(&bodies);
        let entries = entries.as_array().unwrap();
        assert_eq!(entries.len(), 2);
        let events = |i: usize| entries[i]["events"].as_array().unwrap().clone();
        assert_eq!(events(0)[1]["idempotency_key"], "b");
        assert_eq!(entries[0]["api_key_id"], "key-1");
        assert_eq!(entries[1].get("api_key_id"), None);
        assert_eq!(entries[1]["user_id"], USER);
        assert_eq!(events(1)[0]["idempotency_key"], "c");
        assert_eq!(entries[0]["accepted_at_ms"], 1.0);
    }

    #[test]
    fn the_events_reach_the_rpc_as_the_edge_wrote_them() {
        let events = vec![
            event("k1", 3),
            json!({"idempotency_key": "k\"2\u{e9}\n", "n": 1.5e300,
                   "metadata": {"nested": [1, {"a": null}]}}),
        ];
        let mut original = QueuedUsage::for_events(USER, Some("key-1"), events.clone(), 1.0);
        assert_eq!(original.len(), 1);
        let original = original.remove(0);
        let body = original.encode();
        let sent = rpc_entries(std::slice::from_ref(&body));
        assert_eq!(sent[0]["events"], json!(events));
        assert_eq!(sent[0]["user_id"], USER);
        assert_eq!(sent[0]["api_key_id"], "key-1");
        assert_eq!(sent[0]["accepted_at_ms"], 1.0);
        // The events' text is passed on as it was delivered, not re-printed.
        let delivered = [DeliveredUsage::decode(&body).unwrap()];
        let arguments = RecordQueuedUsage {
            messages: &delivered,
        }
        .arguments()
        .unwrap();
        assert!(arguments.contains(&original.events), "{arguments}");
        assert!(matches!(delivered[0].events, Cow::Borrowed(_)));
    }

    #[test]
    fn the_pasted_arguments_are_what_serde_would_send() {
        let mut keyed = message("a", 2);
        keyed.api_key_id = Some("key-1".into());
        keyed.events = text(&[event("a", 2), json!({"k": "\"q\"", "n": [1.5, null]})]);
        let bodies = [
            keyed.encode(),
            one_document(&message("b", 0)),
            message("c", 0).encode(),
        ];
        let delivered: Vec<_> = bodies
            .iter()
            .map(|body| DeliveredUsage::decode(body).unwrap())
            .collect();
        let queue = RecordQueuedUsage {
            messages: &delivered,
        };
        let dead = RecordUsageDeadLetters {
            messages: &delivered,
            reason: "a \"reason\"",
        };
        let parse = |text: String| serde_json::from_str::<Value>(&text).unwrap();
        let pasted = parse(queue.arguments().unwrap());
        assert_eq!(pasted, parse(crate::rpc::arguments(&queue).unwrap()));
        assert_eq!(pasted["p_messages"].as_array().unwrap().len(), 3);
        let pasted = parse(dead.arguments().unwrap());
        assert_eq!(pasted, parse(crate::rpc::arguments(&dead).unwrap()));
        assert_eq!(pasted["p_reason"], "a \"reason\"");
    }

    #[test]
    fn a_message_in_the_format_before_is_still_recorded_the_same() {
        // Queued by the edge before events became one string, delivered
        // after the deploy.
        let mut original = message("a", 3).with_mirror(Some(mirror_row(USER)));
        original.events = text(&[event("a", 3), json!({"idempotency_key": "b", "n": 1.5})]);
        let before = one_document(&original);
        assert!(
            before.contains(r#""events":[{"#) && !before.contains('\n'),
            "{before}"
        );
        let old = DeliveredUsage::decode(&before).unwrap();
        let today = original.encode();
        let new = DeliveredUsage::decode(&today).unwrap();
        assert_eq!(DeliveredUsage::event_count(std::slice::from_ref(&old)), 2);
        assert_eq!(old.mirror, new.mirror);
        assert_eq!(
            rpc_entries(&[before]),
            rpc_entries(&[today]),
            "the same RPC entry from either format"
        );
    }

    #[test]
    fn a_body_that_is_not_one_of_our_messages_is_refused() {
        // (body, why it is not ours): one document (the format before), then
        // two lines (today's).
        let cases = [
            ("not json", "not JSON"),
            (r#"{"user_id": "x"}"#, "no events or time"),
            (
                r#"{"user_id": "x", "events": {}, "accepted_at_ms": 1}"#,
                "events not a list",
            ),
            (
                r#"{"user_id": 7, "events": [], "accepted_at_ms": 1}"#,
                "user id not text",
            ),
            (
                r#"{"user_id": "x", "events": [], "accepted_at_ms": "1"}"#,
                "time not a number",
            ),
            (
                r#"{"user_id": "x", "api_key_id": 1, "events": [], "accepted_at_ms": 1}"#,
                "key not text",
            ),
            (
                r#"{"user_id": "x", "events": [{"a": ], "accepted_at_ms": 1}"#,
                "an event not JSON",
            ),
            (
                r#"{"user_id": "x", "events": [], "accepted_at_ms": 1, "mirror": {"id": 1}}"#,
                "a bad mirror row",
            ),
            (
                r#"{"user_id": "x", "events": [], "accepted_at_ms": 1} trailing"#,
                "text after the message",
            ),
            (
                r#"{"user_id": "x", "events": "[]", "accepted_at_ms": 1}"#,
                "events a string",
            ),
            ("", "empty (a body that was not text)"),
            (
                "{\"user_id\": \"x\", \"accepted_at_ms\": 1}\n[{\"a\": ]",
                "an event not JSON",
            ),
            (
                "{\"user_id\": \"x\", \"accepted_at_ms\": 1}\n{\"a\": 1}",
                "events not a list",
            ),
            ("{\"user_id\": \"x\", \"accepted_at_ms\": 1}\n", "no events"),
            (
                "{\"user_id\": \"x\", \"accepted_at_ms\": 1}\n[] []",
                "text after the events",
            ),
            (
                "{\"user_id\": \"x\", \"accepted_at_ms\": 1}\n[]\n[]",
                "a third line",
            ),
            (
                "{\"user_id\": 7, \"accepted_at_ms\": 1}\n[]",
                "user id not text",
            ),
            ("{\"user_id\": \"x\"}\n[]", "no time"),
            (
                "{\"user_id\": \"x\", \"accepted_at_ms\": 1, \"mirror\": {\"id\": 1}}\n[]",
                "a bad mirror row",
            ),
            (
                "{\"user_id\": \"x\", \"accepted_at_ms\": 1, \"events\": []}\n[]",
                "events twice",
            ),
            (
                "{\"user_id\": \"x\",\n\"accepted_at_ms\": 1}\n[]",
                "a first line that is not the whole head",
            ),
            ("\n[]", "no head"),
        ];
        for (body, why) in cases {
            assert!(DeliveredUsage::decode(body).is_none(), "{why}: {body}");
        }
        for ours in [
            r#"{"user_id": "x", "api_key_id": null, "events": [], "accepted_at_ms": 1}"#,
            "{\"user_id\": \"x\", \"api_key_id\": null, \"accepted_at_ms\": 1}\n[]",
            "{\"user_id\": \"x\", \"accepted_at_ms\": 1}\n [ {\"k\": 1}, 2 ] ",
        ] {
            assert!(DeliveredUsage::decode(ours).is_some(), "{ours}");
        }
    }

    #[test]
    fn respond_async_is_recognised_among_other_preferences() {
        for prefer in [
            "respond-async",
            "Respond-Async",
            " return=minimal, respond-async ",
            "respond-async; foo=bar",
            "wait=10, respond-async",
        ] {
            assert!(wants_async(Some(prefer)), "{prefer}");
        }
        for prefer in [
            "",
            "return=representation",
            "respond-asynchronously",
            "wait=5",
        ] {
            assert!(!wants_async(Some(prefer)), "{prefer}");
        }
        assert!(!wants_async(None));
    }

    #[test]
    fn packing_keeps_order_within_both_limits_and_an_oversized_item_goes_alone() {
        let sized = [("a", 4), ("b", 4), ("c", 20), ("d", 1), ("e", 1), ("f", 1)];
        assert_eq!(
            pack(sized, 2, 10),
            vec![vec!["a", "b"], vec!["c"], vec!["d", "e"], vec!["f"]]
        );
        assert!(pack(Vec::<(u8, usize)>::new(), 2, 10).is_empty());
    }

    #[test]
    fn sends_stay_within_100_messages_and_256_kb() {
        let many: Vec<_> = (0..250).map(|i| message(&format!("k{i}"), 10)).collect();
        let sizes: Vec<_> = send_batches(&many).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![100, 100, 50]);

        let big: Vec<_> = (0..40).map(|i| message(&format!("k{i}"), 8_000)).collect();
        let batches = send_batches(&big);
        assert!(batches.len() > 1);
        for batch in &batches {
            let bytes: usize = batch.iter().map(String::len).sum();
            assert!(bytes <= MAX_BYTES_PER_SEND, "{bytes}");
        }
        assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 40, "none lost");
    }

    #[test]
    fn status_urls_round_trip_any_key() {
        for key in [
            "plain-key_1.2~",
            "with space/and?query#frag",
            "ünïcödé",
            "100%",
        ] {
            let path = status_path(key);
            let segment = path.strip_prefix("/v1/usage/events/").unwrap();
            assert!(!segment.contains(['/', '?', '#', ' ']), "{segment}");
            assert_eq!(key_from_segment(segment).unwrap(), key);
        }
        assert_eq!(
            key_from_segment("%FF").unwrap_err().code(),
            "invalid_idempotency_key"
        );
        assert_eq!(
            key_from_segment("").unwrap_err().code(),
            "invalid_idempotency_key"
        );
    }

    #[test]
    fn the_status_path_takes_exactly_the_keys_usage_accepts() {
        // 255 characters of four bytes each: a valid key, so its status URL
        // must be readable.
        let longest = "😀".repeat(255);
        let path = status_path(&longest);
        let segment = path.strip_prefix("/v1/usage/events/").unwrap();
        assert_eq!(key_from_segment(segment).unwrap(), longest);
        // A NUL would reach PostgreSQL, which refuses it in text (a 502).
        for bad in ["a%00b", "%00", &"%F0%9F%98%80".repeat(256)] {
            let err = key_from_segment(bad).unwrap_err();
            assert_eq!(
                (err.status(), err.code()),
                (400, "invalid_idempotency_key"),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_failed_call_is_retried_with_growing_delays_and_success_acknowledges() {
        assert_eq!(delivery_after(&Ok(json!({})), 0.5), Delivery::AckAll);
        let failed = Err(ApiError::Unavailable {
            retry_after_secs: 2,
        });
        let delay = |age: f64| match delivery_after(&failed, age) {
            Delivery::RetryAll { delay_seconds } => delay_seconds,
            Delivery::AckAll => panic!("a failure is never acknowledged"),
        };
        // First delivery fails at once, then each retry waits as long again.
        assert_eq!(delay(0.1), 2);
        assert_eq!(delay(2.5), 2);
        assert_eq!(delay(4.5), 4);
        assert_eq!(delay(9.0), 9);
        assert_eq!(delay(3_600.0), 300);
    }

    #[test]
    fn the_accepted_answer_names_the_event_and_its_status_url() {
        let body = queued_answer("a b");
        assert_eq!(body["status"], "queued");
        assert_eq!(body["status_url"], "/v1/usage/events/a%20b");
    }

    #[test]
    fn a_dead_letter_batch_is_kept_as_rejections_and_mirrors_nobody() {
        let vars = [
            ("SUPABASE_URL", "http://127.0.0.1:54321"),
            (
                "SUPABASE_ANON_KEY",
                crate::supabase_keys::test_keys::PUBLISHABLE,
            ),
            (
                "SUPABASE_SERVICE_ROLE_KEY",
                crate::supabase_keys::test_keys::SECRET,
            ),
            ("ALLOWED_ORIGINS", "*"),
        ];
        let config = crate::Config::from_lookup(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        })
        .unwrap();
        let client = Client::new(&config);
        let body = "{\"user_id\": \"u\", \"accepted_at_ms\": 2}\n[{\"k\": 1}]";
        let delivered = [DeliveredUsage::decode(body).unwrap()];
        let entries = json!([{"user_id": "u", "events": [{"k": 1}], "accepted_at_ms": 2.0}]);
        // (queue name, consumer, telemetry function, mirrors, function called, body)
        let cases = [
            (
                "cds-usage-events",
                Consumer::Usage,
                "usage_queue_consumer",
                true,
                "/rpc/record_queued_usage",
                json!({"p_messages": entries}),
            ),
            (
                "cds-usage-events-dlq",
                Consumer::DeadLetters,
                "usage_dead_letter_consumer",
                false,
                "/rpc/record_usage_dead_letters",
                json!({"p_messages": entries, "p_reason": DEAD_LETTER_REASON}),
            ),
        ];
        for (queue, consumer, function, mirrors, path, body) in cases {
            assert_eq!(Consumer::of_queue(queue), consumer);
            assert_eq!(consumer.telemetry_function(), function);
            assert_eq!(consumer.mirrors_users(), mirrors);
            let call = consumer.recording_call(&client, &delivered).unwrap();
            assert!(call.url.ends_with(path), "{}", call.url);
            let sent: Value = serde_json::from_str(call.body.as_deref().unwrap()).unwrap();
            assert_eq!(sent, body);
            assert!(call
                .headers
                .contains(&("apikey", crate::supabase_keys::test_keys::SECRET.into())));
        }
    }
}
