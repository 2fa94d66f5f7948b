//! Standard Webhooks signatures, as Supabase Auth signs its HTTP hooks.
//!
//! Spec: <https://www.standardwebhooks.com/> ("Verifying webhook signatures").
//! The sender puts three headers on the request:
//! - `webhook-id`: a unique message id;
//! - `webhook-timestamp`: Unix seconds;
//! - `webhook-signature`: space-separated `<version>,<signature>` entries,
//!   where `v1` is the base64 HMAC-SHA256 of `<id>.<timestamp>.<raw body>`
//!   keyed with the base64-decoded secret.
//!
//! The secret is configured as `v1,whsec_<base64>` (Supabase's form) or bare
//! `whsec_<base64>`. Anything missing or malformed fails closed.

use super::AuthError;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;

/// How far `webhook-timestamp` may be from our clock, either way: long enough
/// for clock skew and a retry in flight, short enough that a captured request
/// cannot be replayed later.
pub const TIMESTAMP_TOLERANCE_SECS: i64 = 5 * 60;

/// Secrets shorter than this are refused as configuration errors. Standard
/// Webhooks recommends 24 to 64 bytes; 16 bytes (128 bits) is the floor below
/// which an HMAC key is guessable.
const MIN_SECRET_BYTES: usize = 16;

/// The decoded key of a `whsec_` secret.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret {
    key: Vec<u8>,
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

impl WebhookSecret {
    /// Reads `v1,whsec_<base64>` or `whsec_<base64>`.
    pub fn parse(configured: &str) -> Result<Self, AuthError> {
        let misconfigured = |reason| AuthError::WebhookSecretMisconfigured { reason };
        let configured = configured.trim();
        let configured = configured.strip_prefix("v1,").unwrap_or(configured);
        let encoded = configured
            .strip_prefix("whsec_")
            .ok_or(misconfigured("must look like v1,whsec_<base64>"))?;
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| misconfigured("the part after whsec_ is not base64"))?;
        if key.len() < MIN_SECRET_BYTES {
            return Err(misconfigured("the secret is shorter than 16 bytes"));
        }
        Ok(WebhookSecret { key })
    }

    /// The `v1,<base64>` signature of a message, as a sender computes it.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> Result<String, AuthError> {
        let tag = self
            .mac(id, &timestamp.to_string(), body)?
            .finalize()
            .into_bytes();
        Ok(format!("v1,{}", STANDARD.encode(tag)))
    }

    /// HMAC-SHA256 over `<id>.<timestamp>.<body>`.
    fn mac(&self, id: &str, timestamp: &str, body: &[u8]) -> Result<Hmac<Sha256>, AuthError> {
        // HMAC takes keys of any length, so this error cannot happen; it is
        // mapped rather than unwrapped all the same.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).map_err(|_| {
            AuthError::WebhookSecretMisconfigured {
                reason: "the secret is not a usable HMAC key",
            }
        })?;
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        Ok(mac)
    }
}

/// The three Standard Webhooks headers, as the request carried them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookHeaders<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// Verifies a signed webhook at `now_unix`: every header present, the
/// timestamp within [`TIMESTAMP_TOLERANCE_SECS`], and at least one `v1`
/// signature matching the raw body.
pub fn verify(
    secret: &WebhookSecret,
    headers: WebhookHeaders<'_>,
    body: &[u8],
    now_unix: i64,
) -> Result<(), AuthError> {
    let (Some(id), Some(timestamp), Some(signatures)) = (
        present(headers.id),
        present(headers.timestamp),
        present(headers.signature),
    ) else {
        return Err(AuthError::MissingWebhookHeaders);
    };

    let sent_at = parse_timestamp(timestamp)?;
    if sent_at < now_unix.saturating_sub(TIMESTAMP_TOLERANCE_SECS) {
        return Err(AuthError::WebhookTimestampTooOld);
    }
    if sent_at > now_unix.saturating_add(TIMESTAMP_TOLERANCE_SECS) {
        return Err(AuthError::WebhookTimestampTooNew);
    }

    // The timestamp is signed as sent, so a sender writing `+5` or `05` would
    // sign different bytes; parse_timestamp accepts digits only, so the text
    // is the canonical number.
    let expected = secret.mac(id, timestamp, body)?;
    let matched = signatures
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|encoded| STANDARD.decode(encoded).ok())
        // `verify_slice` compares in constant time.
        .any(|candidate| expected.clone().verify_slice(&candidate).is_ok());
    if matched {
        Ok(())
    } else {
        Err(AuthError::NoMatchingWebhookSignature)
    }
}

/// A header value that is there and not blank.
fn present(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

/// Unix seconds: ASCII digits only, no sign, no fraction, at most 12 digits.
fn parse_timestamp(raw: &str) -> Result<i64, AuthError> {
    let digits_only = !raw.is_empty() && raw.len() <= 12 && raw.bytes().all(|b| b.is_ascii_digit());
    if !digits_only {
        return Err(AuthError::InvalidWebhookTimestamp);
    }
    raw.parse().map_err(|_| AuthError::InvalidWebhookTimestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published Standard Webhooks test vector (the spec's and every
    /// reference library's tests use it).
    const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const VECTOR_TIMESTAMP: i64 = 1_614_265_330;
    const VECTOR_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const VECTOR_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn vector_secret() -> WebhookSecret {
        WebhookSecret::parse(&format!("v1,{VECTOR_SECRET}")).unwrap()
    }

    fn headers<'a>(id: &'a str, timestamp: &'a str, signature: &'a str) -> WebhookHeaders<'a> {
        WebhookHeaders {
            id: Some(id),
            timestamp: Some(timestamp),
            signature: Some(signature),
        }
    }

    /// A signature computed with the `hmac` crate directly, not through the
    /// code under test.
    fn independent_signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn the_published_test_vector_verifies() {
        let ts = VECTOR_TIMESTAMP.to_string();
        let got = verify(
            &vector_secret(),
            headers(VECTOR_ID, &ts, VECTOR_SIGNATURE),
            VECTOR_BODY,
            VECTOR_TIMESTAMP,
        );
        assert_eq!(got, Ok(()));
        assert_eq!(
            vector_secret().sign(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY),
            Ok(VECTOR_SIGNATURE.to_string())
        );
    }

    #[test]
    fn a_signature_computed_independently_verifies() {
        let key = [7u8; 32];
        let secret = WebhookSecret::parse(&format!("v1,whsec_{}", STANDARD.encode(key))).unwrap();
        let body = br#"{"metadata":{"name":"before-user-created"},"user":{}}"#;
        let now = 1_700_000_000;
        let signature = independent_signature(&key, "msg_1", now, body);
        let ts = now.to_string();
        assert_eq!(
            verify(&secret, headers("msg_1", &ts, &signature), body, now),
            Ok(())
        );
    }

    /// One row per request: the headers and body as sent, the verifier's answer.
    #[test]
    fn refuses_what_does_not_verify() {
        let ts = VECTOR_TIMESTAMP.to_string();
        let now = VECTOR_TIMESTAMP;
        let other_version = "v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        let rotated = format!("v1,bm9wZQ== {VECTOR_SIGNATURE}");
        // (case, headers, body, our clock, expected code)
        type Case<'a> = (
            &'a str,
            WebhookHeaders<'a>,
            &'a [u8],
            i64,
            Result<(), &'a str>,
        );
        let cases: Vec<Case<'_>> = vec![
            (
                "valid",
                headers(VECTOR_ID, &ts, VECTOR_SIGNATURE),
                VECTOR_BODY,
                now,
                Ok(()),
            ),
            (
                "several signatures, one matching",
                headers(VECTOR_ID, &ts, &rotated),
                VECTOR_BODY,
                now,
                Ok(()),
            ),
            (
                "no id",
                WebhookHeaders {
                    id: None,
                    ..headers(VECTOR_ID, &ts, VECTOR_SIGNATURE)
                },
                VECTOR_BODY,
                now,
                Err("missing_webhook_headers"),
            ),
            (
                "blank id",
                headers(" ", &ts, VECTOR_SIGNATURE),
                VECTOR_BODY,
                now,
                Err("missing_webhook_headers"),
            ),
            (
                "no timestamp",
                WebhookHeaders {
                    timestamp: None,
                    ..headers(VECTOR_ID, &ts, VECTOR_SIGNATURE)
                },
                VECTOR_BODY,
                now,
                Err("missing_webhook_headers"),
            ),
            (
                "no signature",
                WebhookHeaders {
                    signature: None,
                    ..headers(VECTOR_ID, &ts, VECTOR_SIGNATURE)
                },
                VECTOR_BODY,
                now,
                Err("missing_webhook_headers"),
            ),
            (
                "timestamp not a number",
                headers(VECTOR_ID, "soon", VECTOR_SIGNATURE),
                VECTOR_BODY,
                now,
                Err("invalid_webhook_timestamp"),
            ),
            (
                "timestamp with a sign",
                headers(VECTOR_ID, "+1614265330", VECTOR_SIGNATURE),
                VECTOR_BODY,
                now,
                Err("invalid_webhook_timestamp"),
            ),
            (
                "timestamp in milliseconds",
                headers(VECTOR_ID, "1614265330000", VECTOR_SIGNATURE),
                VECTOR_BODY,
                now,
                Err("invalid_webhook_timestamp"),
            ),
            (
                "5 minutes old",
                headers(VECTOR_ID, &ts, VECTOR_SIGNATURE),
                VECTOR_BODY,
                now + 300,
                Ok(()),
            ),
            (
                "more than 5 minutes old",
                headers(VECTOR_ID, &ts, VECTOR_SIGNATURE),
                VECTOR_BODY,
                now + 301,
                Err("webhook_timestamp_too_old"),
            ),
            (
                "5 minutes ahead",
                headers(VECTOR_ID, &ts, VECTOR_SIGNATURE),
                VECTOR_BODY,
                now - 300,
                Ok(()),
            ),
            (
                "more than 5 minutes ahead",
                headers(VECTOR_ID, &ts, VECTOR_SIGNATURE),
                VECTOR_BODY,
                now - 301,
                Err("webhook_timestamp_too_new"),
            ),
            (
                "body changed",
                headers(VECTOR_ID, &ts, VECTOR_SIGNATURE),
                br#"{"test": 2432232315}"#,
                now,
                Err("invalid_webhook_signature"),
            ),
            (
                "id changed",
                headers("msg_other", &ts, VECTOR_SIGNATURE),
                VECTOR_BODY,
                now,
                Err("invalid_webhook_signature"),
            ),
            (
                "only other versions",
                headers(VECTOR_ID, &ts, other_version),
                VECTOR_BODY,
                now,
                Err("invalid_webhook_signature"),
            ),
            (
                "signature without version",
                headers(
                    VECTOR_ID,
                    &ts,
                    "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
                ),
                VECTOR_BODY,
                now,
                Err("invalid_webhook_signature"),
            ),
            (
                "signature not base64",
                headers(VECTOR_ID, &ts, "v1,***"),
                VECTOR_BODY,
                now,
                Err("invalid_webhook_signature"),
            ),
            (
                "truncated signature",
                headers(VECTOR_ID, &ts, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlN"),
                VECTOR_BODY,
                now,
                Err("invalid_webhook_signature"),
            ),
            (
                "empty v1 signature",
                headers(VECTOR_ID, &ts, "v1,"),
                VECTOR_BODY,
                now,
                Err("invalid_webhook_signature"),
            ),
        ];
        for (case, headers, body, now, want) in cases {
            let got = verify(&vector_secret(), headers, body, now).map_err(|e| e.code());
            assert_eq!(got, want, "{case}");
        }
    }

    #[test]
    fn a_signature_under_another_secret_does_not_verify() {
        let now = 1_700_000_000;
        let other = independent_signature(&[1u8; 32], "msg_1", now, b"{}");
        let ts = now.to_string();
        assert_eq!(
            verify(&vector_secret(), headers("msg_1", &ts, &other), b"{}", now),
            Err(AuthError::NoMatchingWebhookSignature)
        );
    }

    #[test]
    fn secrets_are_read_with_or_without_the_version_prefix() {
        let with_prefix = WebhookSecret::parse(&format!("v1,{VECTOR_SECRET}")).unwrap();
        let bare = WebhookSecret::parse(VECTOR_SECRET).unwrap();
        assert_eq!(with_prefix, bare);
        for bad in [
            "",
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "v1,MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "v2,whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_not base64!",
            "whsec_c2hvcnQ=",
        ] {
            let err = WebhookSecret::parse(bad).unwrap_err();
            assert_eq!(
                (err.code(), err.status()),
                ("misconfigured", 500),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn secret_debug_is_redacted() {
        assert_eq!(
            format!("{:?}", vector_secret()),
            "WebhookSecret(<redacted>)"
        );
    }
}
