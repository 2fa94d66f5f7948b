//! Checks on the raw request that every endpoint shares: body size, content
//! type, JSON parsing, and the request id.

use crate::error::ApiError;
use serde::de::DeserializeOwned;

/// Refuses a body whose declared length is over the limit, before it is read.
pub fn check_declared_length(content_length: Option<&str>, limit: usize) -> Result<(), ApiError> {
    match content_length.map(|v| v.trim().parse::<u64>()) {
        Some(Ok(len)) if len > limit as u64 => Err(ApiError::PayloadTooLarge { limit }),
        _ => Ok(()),
    }
}

/// Refuses a body that turned out over the limit (chunked uploads declare no length).
pub fn check_read_length(body: &[u8], limit: usize) -> Result<(), ApiError> {
    if body.len() > limit {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    Ok(())
}

/// Parses a JSON request body, insisting on `application/json`.
pub fn parse_json<T: DeserializeOwned>(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<T, ApiError> {
    let is_json = content_type
        .and_then(|ct| ct.split(';').next())
        .map(|media| media.trim().eq_ignore_ascii_case("application/json"))
        .unwrap_or(false);
    if !is_json {
        return Err(ApiError::UnsupportedMediaType);
    }
    serde_json::from_slice(body).map_err(|e| ApiError::InvalidJson {
        reason: e.to_string(),
    })
}

/// A caller-supplied `x-request-id` is kept when it is short and plain, so a
/// client can correlate its logs with ours; anything else is replaced.
pub fn accept_request_id(supplied: Option<&str>) -> Option<String> {
    let id = supplied?.trim();
    let plain = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    plain.then(|| id.to_string())
}

/// The decoded query parameters of a full request URL. (Parsing the whole URL
/// with the `url` crate would pull its IDNA tables into the Worker: hundreds
/// of KiB of wasm for a host name we never look at.)
pub fn query_pairs(url: &str) -> Vec<(String, String)> {
    let without_fragment = url.split('#').next().unwrap_or_default();
    match without_fragment.split_once('?') {
        Some((_, query)) => form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
        None => Vec::new(),
    }
}

/// Formats 16 random bytes as a request id.
pub fn request_id_from_bytes(bytes: [u8; 16]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_length_over_limit_is_refused_before_reading() {
        assert_eq!(
            check_declared_length(Some("1025"), 1024),
            Err(ApiError::PayloadTooLarge { limit: 1024 })
        );
        assert_eq!(check_declared_length(Some("1024"), 1024), Ok(()));
        assert_eq!(check_declared_length(None, 1024), Ok(()));
    }

    #[test]
    fn read_length_over_limit_is_refused() {
        assert!(check_read_length(&[0; 11], 10).is_err());
        assert!(check_read_length(&[0; 10], 10).is_ok());
    }

    #[test]
    fn json_needs_the_json_content_type() {
        let parsed: Result<serde_json::Value, _> = parse_json(Some("text/plain"), b"{}");
        assert_eq!(parsed, Err(ApiError::UnsupportedMediaType));
        let parsed: Result<serde_json::Value, _> =
            parse_json(Some("application/json; charset=utf-8"), b"{\"a\":1}");
        assert_eq!(parsed.unwrap()["a"], 1);
    }

    #[test]
    fn malformed_json_is_a_400_with_its_reason() {
        let err = parse_json::<serde_json::Value>(Some("application/json"), b"{").unwrap_err();
        assert_eq!((err.status(), err.code()), (400, "invalid_json"));
    }

    #[test]
    fn query_pairs_are_decoded_and_the_fragment_ignored() {
        assert_eq!(
            query_pairs("https://x.dev/v1/usage/overview?from=2026-11-01&to=2026%2D11%2D25#to=x"),
            vec![
                ("from".to_string(), "2026-11-01".to_string()),
                ("to".to_string(), "2026-11-25".to_string())
            ]
        );
        assert_eq!(query_pairs("https://x.dev/v1/models"), vec![]);
        assert_eq!(
            query_pairs("https://x.dev/?a=b+c&d"),
            vec![("a".into(), "b c".into()), ("d".into(), String::new())]
        );
    }

    #[test]
    fn request_ids_are_kept_only_when_plain() {
        assert_eq!(accept_request_id(Some("abc-123")), Some("abc-123".into()));
        assert_eq!(accept_request_id(Some("a b")), None);
        assert_eq!(accept_request_id(Some(&"x".repeat(65))), None);
        assert_eq!(accept_request_id(Some("\"><script>")), None);
        assert_eq!(request_id_from_bytes([0xab; 16]).len(), 32);
    }
}
