//! The model catalogue's admin requests, parsed and validated before anything
//! reaches the database:
//!
//! - `PUT /v1/admin/models/{name}` ([`ModelPut`]): creates the model, or
//!   replaces its description; 201 when created, 200 when updated
//!   ([`put_answer`]). Calls `platform.upsert_model`.
//! - `DELETE /v1/admin/models/{name}` ([`model_name_from_segment`]): takes the
//!   model out of use (`is_active = false`; the row stays, the ledger
//!   references it). Calls `platform.deactivate_model`; an unknown name is
//!   404 `unknown_model`.
//!
//! The rules are those of the `platform.models` table's constraints, checked
//! here first so a mistake is named by field (422 `invalid_field`,
//! `unknown_field`) without a round trip.

use crate::error::ApiError;
use crate::rpc::catalogue::UpsertModel;
use crate::usage::{invalid, metadata, object, text};
use percent_encoding::percent_decode_str;
use serde_json::{Map, Number, Value};

/// Model names are 1 to this many characters (`models_name_format`).
pub const MAX_NAME_CHARS: usize = 128;
/// Providers are 1 to this many characters (`models_provider_length`).
pub const MAX_PROVIDER_CHARS: usize = 64;
/// A price per 1,000 tokens has at most this many decimal places
/// (`numeric(14, 6)`).
pub const PRICE_DECIMALS: u32 = 6;
/// Prices are below this (`numeric(14, 6)` holds 8 digits before the point).
pub const PRICE_LIMIT: f64 = 100_000_000.0;

const BODY_FIELDS: &[&str] = &[
    "provider",
    "context_size",
    "input_cost_per_1k_tokens",
    "output_cost_per_1k_tokens",
    "repo_url",
    "metadata",
    "is_active",
];

/// `PUT /v1/admin/models/{name}`: the whole description of a model. Fields
/// left out take their defaults (no `repo_url`, `{}` metadata, active), as a
/// PUT replaces what was there.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelPut {
    pub name: String,
    pub provider: String,
    pub context_size: u32,
    /// Per 1,000 prompt tokens.
    pub input_cost_per_1k_tokens: Number,
    /// Per 1,000 completion tokens.
    pub output_cost_per_1k_tokens: Number,
    pub repo_url: Option<String>,
    pub metadata: Value,
    pub is_active: bool,
}

impl ModelPut {
    /// Parses the `{name}` path segment and the JSON body.
    pub fn parse(name_segment: &str, body: &Value) -> Result<Self, ApiError> {
        let name = model_name_from_segment(name_segment)?;
        let map = object(body, BODY_FIELDS, "a model")?;
        Ok(ModelPut {
            name,
            provider: text(map, "provider", MAX_PROVIDER_CHARS)?
                .ok_or_else(|| invalid("provider", "is required"))?,
            context_size: context_size(map)?,
            input_cost_per_1k_tokens: price(map, "input_cost_per_1k_tokens")?,
            output_cost_per_1k_tokens: price(map, "output_cost_per_1k_tokens")?,
            repo_url: repo_url(map)?,
            metadata: metadata(map)?,
            is_active: match map.get("is_active") {
                None | Some(Value::Null) => true,
                Some(Value::Bool(active)) => *active,
                Some(_) => return Err(invalid("is_active", "must be true or false")),
            },
        })
    }

    /// The `upsert_model` call; the function checks that the caller is an
    /// admin.
    pub fn rpc(&self) -> UpsertModel<'_> {
        UpsertModel {
            name: &self.name,
            provider: &self.provider,
            context_size: self.context_size,
            input_cost_per_1k_tokens: &self.input_cost_per_1k_tokens,
            output_cost_per_1k_tokens: &self.output_cost_per_1k_tokens,
            repo_url: self.repo_url.as_deref(),
            metadata: &self.metadata,
            is_active: self.is_active,
        }
    }
}

/// The model name in the `{name}` segment of an admin path, percent-decoded
/// (a name with `/` arrives as `%2F`): 1 to 128 characters, ASCII letters
/// and digits first, then also `.`, `_`, `:`, `/` and `-`.
pub fn model_name_from_segment(segment: &str) -> Result<String, ApiError> {
    const RULE: &str = "must be 1 to 128 characters: ASCII letters and digits first, \
                        then also . _ : / -";
    let name = percent_decode_str(segment)
        .decode_utf8()
        .map_err(|_| invalid("name", RULE))?;
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || "._:/-".contains(c));
    if !first_ok || !rest_ok || name.len() > MAX_NAME_CHARS {
        return Err(invalid("name", RULE));
    }
    Ok(name.into_owned())
}

/// The answer to `PUT`: 201 when `upsert_model` created the model, else 200,
/// with the model as the body (its `created` flag is said by the status).
pub fn put_answer(mut result: Value) -> (u16, Value) {
    let created = result
        .as_object_mut()
        .and_then(|o| o.remove("created"))
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    (if created { 201 } else { 200 }, result)
}

fn context_size(map: &Map<String, Value>) -> Result<u32, ApiError> {
    let value = map
        .get("context_size")
        .ok_or_else(|| invalid("context_size", "is required"))?;
    match value.as_u64() {
        Some(n @ 1..=0x7fff_ffff) => Ok(n as u32),
        _ => Err(invalid(
            "context_size",
            "must be a whole number from 1 to 2147483647",
        )),
    }
}

fn repo_url(map: &Map<String, Value>) -> Result<Option<String>, ApiError> {
    match map.get("repo_url") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(url))
            if url.len() > "https://".len()
                && url.starts_with("https://")
                && !url.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            Ok(Some(url.clone()))
        }
        Some(_) => Err(invalid(
            "repo_url",
            "must be an https:// URL without spaces, or null",
        )),
    }
}

/// A price per 1,000 tokens: a JSON number from 0 to 99999999.999999 with at
/// most 6 decimal places, passed on exactly as written.
fn price(map: &Map<String, Value>, field: &str) -> Result<Number, ApiError> {
    let refuse = || {
        invalid(
            field,
            "must be a number from 0 to 99999999.999999 with at most 6 decimal places",
        )
    };
    let number = match map.get(field) {
        None | Some(Value::Null) => return Err(invalid(field, "is required")),
        Some(Value::Number(n)) => n,
        Some(_) => return Err(refuse()),
    };
    let value = number.as_f64().ok_or_else(refuse)?;
    if !(0.0..PRICE_LIMIT).contains(&value) {
        return Err(refuse());
    }
    // serde_json writes the shortest text that reads back as the same f64,
    // so its decimal places are those the caller wrote (at most 14
    // significant digits here, well within an f64's 15).
    if decimal_places(&number.to_string()).is_none_or(|places| places > PRICE_DECIMALS) {
        return Err(refuse());
    }
    Ok(number.clone())
}

/// The decimal places of a JSON number's text (`0.0006`: 4, `1e-6`: 6,
/// `1.5E2`: 0); `None` when it is not a number's text.
fn decimal_places(text: &str) -> Option<u32> {
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], text[at + 1..].parse::<i64>().ok()?),
        None => (text, 0),
    };
    let fraction = mantissa.split_once('.').map_or("", |(_, f)| f);
    let fraction = fraction.trim_end_matches('0');
    let places = i64::try_from(fraction.len()).ok()? - exponent;
    u32::try_from(places.max(0)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body() -> Value {
        json!({
            "provider": "acme",
            "context_size": 32768,
            "input_cost_per_1k_tokens": 0.00015,
            "output_cost_per_1k_tokens": 0.0006,
        })
    }

    fn with(field: &str, value: Value) -> Value {
        let mut body = body();
        body[field] = value;
        body
    }

    #[test]
    fn a_minimal_body_takes_the_defaults() {
        let put = ModelPut::parse("acme-chat-1", &body()).unwrap();
        assert_eq!(put.name, "acme-chat-1");
        assert_eq!(put.context_size, 32768);
        assert_eq!(
            (put.repo_url, put.metadata, put.is_active),
            (None, json!({}), true)
        );
    }

    #[test]
    fn the_rpc_gets_every_field_and_the_prices_as_written() {
        let mut full = with("repo_url", json!("https://huggingface.co/acme/chat-1"));
        full["metadata"] = json!({"kind": "chat"});
        full["is_active"] = json!(false);
        let model = ModelPut::parse("acme%2Fchat-1", &full).unwrap();
        let args = serde_json::to_value(model.rpc()).unwrap();
        assert_eq!(
            args,
            json!({
                "p_name": "acme/chat-1",
                "p_provider": "acme",
                "p_context_size": 32768,
                "p_input_cost_per_1k_tokens": 0.00015,
                "p_output_cost_per_1k_tokens": 0.0006,
                "p_repo_url": "https://huggingface.co/acme/chat-1",
                "p_metadata": {"kind": "chat"},
                "p_is_active": false,
            })
        );
        // The text sent is the text received: no binary rounding shows.
        let text = serde_json::to_string(&model.rpc()).unwrap();
        assert!(
            text.contains("\"p_input_cost_per_1k_tokens\":0.00015"),
            "{text}"
        );
        assert!(
            text.contains("\"p_output_cost_per_1k_tokens\":0.0006"),
            "{text}"
        );
    }

    #[test]
    fn prices_take_up_to_six_decimal_places_and_eight_digits() {
        for ok in [
            json!(0),
            json!(0.0),
            json!(0.000001),
            json!(1e-6),
            json!(0.123456),
            json!(2.5),
            json!(99_999_999.999_999),
            json!(12_345_678),
        ] {
            assert!(
                ModelPut::parse("m", &with("input_cost_per_1k_tokens", ok.clone())).is_ok(),
                "{ok}"
            );
        }
    }

    /// One row per bad input: the body, the code, the field named.
    #[test]
    fn bad_bodies_name_the_field() {
        let without = |field: &str| {
            let mut body = body();
            body.as_object_mut().unwrap().remove(field);
            body
        };
        let (invalid, unknown) = ("invalid_field", "unknown_field");
        #[rustfmt::skip]
        let cases: Vec<(Value, &str, &str)> = vec![
            (without("provider"), invalid, "provider"),
            (with("provider", json!("")), invalid, "provider"),
            (with("provider", json!("p".repeat(65))), invalid, "provider"),
            (with("provider", json!(7)), invalid, "provider"),
            (without("context_size"), invalid, "context_size"),
            (with("context_size", json!(0)), invalid, "context_size"),
            (with("context_size", json!(-1)), invalid, "context_size"),
            (with("context_size", json!(2_147_483_648u64)), invalid, "context_size"),
            (with("context_size", json!(1.5)), invalid, "context_size"),
            (without("input_cost_per_1k_tokens"), invalid, "input_cost_per_1k_tokens"),
            (with("input_cost_per_1k_tokens", json!(-0.01)), invalid, "input_cost_per_1k_tokens"),
            (with("input_cost_per_1k_tokens", json!("0.5")), invalid, "input_cost_per_1k_tokens"),
            (with("input_cost_per_1k_tokens", json!(0.0000001)), invalid, "input_cost_per_1k_tokens"),
            (with("input_cost_per_1k_tokens", json!(0.1234567)), invalid, "input_cost_per_1k_tokens"),
            (with("input_cost_per_1k_tokens", json!(100_000_000)), invalid, "input_cost_per_1k_tokens"),
            (without("output_cost_per_1k_tokens"), invalid, "output_cost_per_1k_tokens"),
            (with("output_cost_per_1k_tokens", json!(null)), invalid, "output_cost_per_1k_tokens"),
            (with("output_cost_per_1k_tokens", json!(1e300)), invalid, "output_cost_per_1k_tokens"),
            (with("repo_url", json!("http://example.com")), invalid, "repo_url"),
            (with("repo_url", json!("https://")), invalid, "repo_url"),
            (with("repo_url", json!("https://exa mple.com")), invalid, "repo_url"),
            (with("repo_url", json!(["https://example.com"])), invalid, "repo_url"),
            (with("metadata", json!([1])), invalid, "metadata"),
            (with("metadata", json!({"a": "\u{0}"})), invalid, "metadata"),
            (with("is_active", json!("yes")), invalid, "is_active"),
            (with("name", json!("other")), unknown, "name"),
            (with("cost_per_1k_tokens", json!(1)), unknown, "cost_per_1k_tokens"),
            (json!([1]), "invalid_body", "a model"),
        ];
        for (body, code, field) in cases {
            let err = ModelPut::parse("m", &body).unwrap_err();
            assert_eq!((err.status(), err.code()), (422, code), "{body}");
            assert!(err.to_string().contains(field), "{body}: {err}");
        }
    }

    #[test]
    fn names_follow_the_catalogues_rule() {
        for ok in [
            "m",
            "gpt-4o-mini",
            "llama-3.1-8b-instruct",
            "org%2Fmodel:v1_2",
            &"a".repeat(128),
        ] {
            assert!(model_name_from_segment(ok).is_ok(), "{ok}");
        }
        assert_eq!(model_name_from_segment("org%2Fmodel").unwrap(), "org/model");
        for bad in [
            "",
            "-lead",
            ".lead",
            "sp%20ace",
            "%FF",
            "caf%C3%A9",
            "nul%00",
            &"a".repeat(129),
        ] {
            let err = model_name_from_segment(bad).unwrap_err();
            assert_eq!((err.status(), err.code()), (422, "invalid_field"), "{bad}");
            assert!(err.to_string().starts_with("name:"), "{bad}: {err}");
        }
        assert_eq!(
            ModelPut::parse("-bad", &body()).unwrap_err().code(),
            "invalid_field"
        );
    }

    #[test]
    fn a_put_answers_201_when_it_created_the_model_else_200() {
        let model = json!({"name": "m", "is_active": true});
        let mut created = model.clone();
        created["created"] = json!(true);
        assert_eq!(put_answer(created), (201, model.clone()));
        let mut updated = model.clone();
        updated["created"] = json!(false);
        assert_eq!(put_answer(updated), (200, model));
    }

    #[test]
    fn decimal_places_read_plain_and_exponent_forms() {
        let cases = [
            ("0", 0),
            ("0.0", 0),
            ("0.0006", 4),
            ("1e-6", 6),
            ("1.5e-5", 6),
            ("1.5E2", 0),
            ("99999999.999999", 6),
            ("1e-7", 7),
        ];
        for (text, places) in cases {
            assert_eq!(decimal_places(text), Some(places), "{text}");
        }
        assert_eq!(decimal_places("1e"), None);
    }
}
