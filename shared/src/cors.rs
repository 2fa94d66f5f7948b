//! CORS for the browser frontend (the Fetch standard's CORS protocol).
//!
//! A preflight from an allowed origin is answered here without touching a
//! handler; any other request gets the `Access-Control-*` headers added to its
//! response when its `Origin` is allowed, and none when it is not, which is how
//! a browser is told no.

use crate::config::AllowedOrigins;
use crate::error::ApiError;

/// Methods the API serves to browsers.
pub const ALLOWED_METHODS: &str = "GET, POST, PUT, DELETE, OPTIONS";
/// Request headers the frontend may send.
pub const ALLOWED_HEADERS: &str =
    "authorization, content-type, idempotency-key, prefer, x-request-id, apikey, x-client-info";
/// Response headers the frontend may read.
pub const EXPOSED_HEADERS: &str = "x-request-id, retry-after, location";
/// How long a browser may cache a preflight answer, in seconds.
pub const PREFLIGHT_MAX_AGE: &str = "86400";

pub type Headers = Vec<(&'static str, String)>;

/// Headers to add to an actual (non-preflight) response.
pub fn response_headers(allowed: &AllowedOrigins, origin: Option<&str>) -> Headers {
    match origin {
        Some(origin) if allowed.allows(origin) => vec![
            ("access-control-allow-origin", origin.to_string()),
            ("access-control-expose-headers", EXPOSED_HEADERS.to_string()),
            ("vary", "Origin".to_string()),
        ],
        // Even a refusal varies by origin: a cache must not serve it to an
        // allowed origin later.
        _ => vec![("vary", "Origin".to_string())],
    }
}

/// True when the request is a CORS preflight rather than an API call.
pub fn is_preflight(method: &str, origin: Option<&str>, request_method: Option<&str>) -> bool {
    method.eq_ignore_ascii_case("OPTIONS") && origin.is_some() && request_method.is_some()
}

/// The answer to a preflight: the headers of a `204`, or why not.
pub fn preflight(allowed: &AllowedOrigins, origin: &str) -> Result<Headers, ApiError> {
    if !allowed.allows(origin) {
        return Err(ApiError::OriginNotAllowed);
    }
    Ok(vec![
        ("access-control-allow-origin", origin.to_string()),
        ("access-control-allow-methods", ALLOWED_METHODS.to_string()),
        ("access-control-allow-headers", ALLOWED_HEADERS.to_string()),
        ("access-control-max-age", PREFLIGHT_MAX_AGE.to_string()),
        ("vary", "Origin".to_string()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> AllowedOrigins {
        AllowedOrigins::parse("http://localhost:3000").unwrap()
    }

    fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn preflight_from_allowed_origin_echoes_it() {
        let headers = preflight(&allowed(), "http://localhost:3000").unwrap();
        assert_eq!(
            header(&headers, "access-control-allow-origin"),
            Some("http://localhost:3000")
        );
        assert!(header(&headers, "access-control-allow-headers")
            .unwrap()
            .contains("idempotency-key"));
    }

    #[test]
    fn preflight_from_other_origin_is_refused() {
        assert_eq!(
            preflight(&allowed(), "https://evil.example"),
            Err(ApiError::OriginNotAllowed)
        );
    }

    #[test]
    fn actual_response_from_other_origin_gets_no_allow_header() {
        let headers = response_headers(&allowed(), Some("https://evil.example"));
        assert_eq!(header(&headers, "access-control-allow-origin"), None);
        assert_eq!(header(&headers, "vary"), Some("Origin"));
    }

    #[test]
    fn only_options_with_origin_and_method_is_a_preflight() {
        assert!(is_preflight("OPTIONS", Some("http://a"), Some("POST")));
        assert!(!is_preflight("OPTIONS", None, Some("POST")));
        assert!(!is_preflight("OPTIONS", Some("http://a"), None));
        assert!(!is_preflight("POST", Some("http://a"), Some("POST")));
    }
}
