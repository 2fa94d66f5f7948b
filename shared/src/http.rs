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

/// Whether a request body ends where its `Content-Length` says: a valid
/// length and no `Transfer-Encoding` (which overrides the length in
/// HTTP/1.1, so the body could run on past it). Such a body, once
/// [`check_declared_length`] has held the length to the limit, can be read
/// in one piece; any other is read chunk by chunk into a [`BoundedBody`].
pub fn framed_by_length(transfer_encoding: Option<&str>, content_length: Option<&str>) -> bool {
    transfer_encoding.is_none() && content_length.is_some_and(|v| v.trim().parse::<u64>().is_ok())
}

/// A request body read chunk by chunk, refused as soon as more than `limit`
/// bytes have arrived.
///
/// A chunked upload declares no length, so [`check_declared_length`] cannot
/// judge it; the Worker feeds each chunk of the body stream to
/// [`push`](Self::push) and stops reading at the first refusal. A chunk that
/// would cross the limit is refused before it is copied, so memory stays
/// bounded by `limit` plus the one chunk in hand, however large the body the
/// caller goes on sending.
#[derive(Debug)]
pub struct BoundedBody {
    limit: usize,
    bytes: Vec<u8>,
}

impl BoundedBody {
    pub fn new(limit: usize) -> Self {
        BoundedBody {
            limit,
            bytes: Vec::new(),
        }
    }

    /// Takes the next chunk, or refuses the body with 413 `payload_too_large`
    /// (the answer a declared oversize gets) when it would pass the limit.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), ApiError> {
        if chunk.len() > self.limit - self.bytes.len() {
            return Err(ApiError::PayloadTooLarge { limit: self.limit });
        }
        self.bytes.extend_from_slice(chunk);
        Ok(())
    }

    /// The whole body, at most `limit` bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
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

/// The path of a full request URL, without its query or fragment; `/` when
/// the URL has none. (As `worker::Request::path` reads it, without the
/// `url` crate for the reason above.)
pub fn path_of(url: &str) -> &str {
    let Some(scheme_end) = url.find("://") else {
        return "/";
    };
    let after_scheme = &url[scheme_end + 3..];
    let Some(start) = after_scheme.find(['/', '?', '#']) else {
        return "/";
    };
    let rest = &after_scheme[start..];
    let path = &rest[..rest.find(['?', '#']).unwrap_or(rest.len())];
    if path.is_empty() {
        "/"
    } else {
        path
    }
}

/// Whether a header name or value holds a line break, which HTTP forbids
/// and which would break the one-line-per-field text the Worker hands its
/// JavaScript. A byte scan: `str::contains` with a set of `char`s decodes
/// every character first, about 1 % of a single event's CPU in workerd,
/// where the headers carry a kilobyte-long access token twice.
pub fn has_line_break(text: &str) -> bool {
    text.bytes().any(|b| matches!(b, b'\n' | b'\r'))
}

/// Formats 16 random bytes as a request id.
pub fn request_id_from_bytes(bytes: [u8; 16]) -> String {
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_breaks_are_found_anywhere() {
        for (text, expected) in [
            ("", false),
            ("Bearer eyJhbGciOi.x.y", false),
            ("caf\u{e9} \u{2028}", false),
            ("a\nb", true),
            ("\r", true),
            ("value\r\n", true),
        ] {
            assert_eq!(has_line_break(text), expected, "{text:?}");
        }
    }

    #[test]
    fn a_url_path_stops_at_its_query_or_fragment() {
        for (url, path) in [
            ("https://example.com/", "/"),
            ("https://example.com/v1/usage", "/v1/usage"),
            ("https://example.com/foo?a=1&b=/x", "/foo"),
            ("https://example.com/foo#/frag?x", "/foo"),
            (
                "http://127.0.0.1:8787/v1/usage/events/k",
                "/v1/usage/events/k",
            ),
            ("https://example.com/a%3F%23%2Fb?c", "/a%3F%23%2Fb"),
            ("https://example.com?query=/x", "/"),
            ("https://example.com#frag/x", "/"),
            ("https://example.com", "/"),
            ("no scheme", "/"),
        ] {
            assert_eq!(path_of(url), path, "{url}");
        }
    }

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
    fn only_a_body_framed_by_a_valid_length_alone_is_read_whole() {
        // (transfer-encoding, content-length, read whole)
        let cases: &[(Option<&str>, Option<&str>, bool)] = &[
            (None, Some("62"), true),
            (None, Some(" 0 "), true),
            (None, None, false),
            (None, Some("abc"), false),
            (None, Some("-1"), false),
            (Some("chunked"), None, false),
            (Some("chunked"), Some("62"), false),
            (Some(""), Some("62"), false),
        ];
        for (te, cl, whole) in cases {
            assert_eq!(framed_by_length(*te, *cl), *whole, "{te:?} {cl:?}");
        }
    }

    #[test]
    fn a_streamed_body_is_refused_at_the_first_chunk_past_the_limit() {
        // (case, chunk sizes, limit, chunks taken before the refusal or None)
        let cases: &[(&str, &[usize], usize, Option<usize>)] = &[
            ("no chunks", &[], 10, None),
            ("exactly the limit", &[4, 6], 10, None),
            ("empty chunks", &[0, 10, 0], 10, None),
            ("one byte over", &[4, 7], 10, Some(1)),
            ("one chunk far over", &[1 << 20], 10, Some(0)),
            ("a zero limit takes only empty chunks", &[0, 1], 0, Some(1)),
        ];
        for (case, chunks, limit, refused_after) in cases {
            let mut body = BoundedBody::new(*limit);
            let mut outcome = None;
            for (taken, len) in chunks.iter().enumerate() {
                if let Err(err) = body.push(&vec![7; *len]) {
                    assert_eq!((err.status(), err.code()), (413, "payload_too_large"));
                    outcome = Some(taken);
                    break;
                }
            }
            assert_eq!(outcome, *refused_after, "{case}");
            let kept = body.into_bytes().len();
            assert!(kept <= *limit, "{case}: kept {kept} bytes");
            if refused_after.is_none() {
                assert_eq!(kept, chunks.iter().sum::<usize>(), "{case}");
            }
        }
    }

    /// A caller who never stops sending: the body refuses at the limit and
    /// has kept no more than it, whatever is offered afterwards.
    #[test]
    fn nothing_past_the_limit_is_buffered() {
        let mut body = BoundedBody::new(256 * 1024);
        let chunk = vec![b'x'; 16 * 1024];
        let taken = (0..4096).take_while(|_| body.push(&chunk).is_ok()).count();
        assert_eq!(taken, 16);
        for _ in 0..100 {
            assert!(body.push(&chunk).is_err());
        }
        assert_eq!(body.into_bytes().len(), 256 * 1024);
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
