//! Standard Webhooks signatures, as Supabase Auth signs its HTTP hooks.
//!
//! Spec: <https://www.standardwebhooks.com/> ("Verifying webhook signatures").
//! The sender puts three headers on the request:
//! - `webhook-id`: a unique message id;
//! - `webhook-timestamp`: Unix seconds;
//! - `webhook-signature`: `<version>,<signature>` entries separated by a
//!   space (the spec) or by ", " (Supabase Auth, when it signs with several
//!   secrets), where `v1` is the base64 HMAC-SHA256 of
//!   `<id>.<timestamp>.<raw body>` keyed with the base64-decoded secret.
//!
//! A secret is configured as `v1,whsec_<base64>` (Supabase's form) or bare
//! `whsec_<base64>`; during a rotation several, separated by `|` as Supabase
//! writes them (`v1,whsec_a|v1,whsec_b`). A webhook verifies when any secret
//! matches any `v1` entry. Anything missing or malformed fails closed, and a
//! list with one malformed secret is refused whole when the configuration is
//! read, rather than run with the secrets that happen to parse.

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

/// Every secret a webhook may be signed with: one, or during a rotation the
/// old and the new.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecrets {
    secrets: Vec<WebhookSecret>,
}

impl fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookSecrets({} x <redacted>)", self.secrets.len())
    }
}

impl WebhookSecrets {
    /// Reads `|`-separated secrets, each as [`WebhookSecret::parse`] does.
    /// The reason for a refusal names the secret by position, never by value.
    pub fn parse(configured: &str) -> Result<Self, String> {
        let entries: Vec<&str> = configured.split('|').map(str::trim).collect();
        let total = entries.len();
        let mut secrets = Vec::with_capacity(total);
        for (index, entry) in entries.into_iter().enumerate() {
            let position = index + 1;
            if entry.is_empty() {
                return Err(format!("secret {position} of {total} is empty"));
            }
            let secret = WebhookSecret::parse(entry).map_err(|e| match e {
                AuthError::WebhookSecretMisconfigured { reason } => {
                    format!("secret {position} of {total}: {reason}")
                }
                other => format!("secret {position} of {total}: {other}"),
            })?;
            secrets.push(secret);
        }
        Ok(WebhookSecrets { secrets })
    }

    pub fn len(&self) -> usize {
        self.secrets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }
}

impl From<WebhookSecret> for WebhookSecrets {
    fn from(secret: WebhookSecret) -> Self {
        WebhookSecrets {
            secrets: vec![secret],
        }
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
/// signature matching the raw body under at least one of the secrets.
pub fn verify(
    secrets: &WebhookSecrets,
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

    let candidates: Vec<Vec<u8>> = v1_signatures(signatures)
        .filter_map(|encoded| STANDARD.decode(encoded).ok())
        .collect();
    let mut matched = false;
    for secret in &secrets.secrets {
        // The timestamp is signed as sent, so a sender writing `+5` or `05`
        // would sign different bytes; parse_timestamp accepts digits only, so
        // the text is the canonical number.
        let expected = secret.mac(id, timestamp, body)?;
        for candidate in &candidates {
            // `verify_slice` compares in constant time, and every pair is
            // compared (`|`, not `||`): the time taken does not say which
            // secret or entry matched.
            matched |= expected.clone().verify_slice(candidate).is_ok();
        }
    }
    if matched {
        Ok(())
    } else {
        Err(AuthError::NoMatchingWebhookSignature)
    }
}

/// The `v1` signatures of a `webhook-signature` header. Entries are
/// separated by a space or by ", "; base64 has no comma, so a comma ending an
/// entry is a separator. Other versions, and `v1` entries joined some other
/// way, are skipped and so never match.
pub fn v1_signatures(header: &str) -> impl Iterator<Item = &str> {
    header
        .split(' ')
        .map(|entry| entry.strip_suffix(',').unwrap_or(entry))
        .filter_map(|entry| entry.strip_prefix("v1,"))
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

    fn vector_secret() -> WebhookSecrets {
        WebhookSecrets::parse(&format!("v1,{VECTOR_SECRET}")).unwrap()
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
            WebhookSecret::parse(VECTOR_SECRET).unwrap().sign(
                VECTOR_ID,
                VECTOR_TIMESTAMP,
                VECTOR_BODY
            ),
            Ok(VECTOR_SIGNATURE.to_string())
        );
    }

    #[test]
    fn a_signature_computed_independently_verifies() {
        let key = [7u8; 32];
        let secret = WebhookSecrets::parse(&format!("v1,whsec_{}", STANDARD.encode(key))).unwrap();
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

    /// `whsec_` secrets made from fixed bytes, and a signature each makes.
    fn rotation_secret(fill: u8) -> (String, [u8; 32]) {
        let key = [fill; 32];
        (format!("v1,whsec_{}", STANDARD.encode(key)), key)
    }

    /// One row per `webhook-signature` header as Supabase Auth or another
    /// Standard Webhooks sender may write it: verified or not.
    #[test]
    fn reads_every_v1_entry_whichever_separator_the_sender_used() {
        let now = 1_700_000_000;
        let ts = now.to_string();
        let (secret, key) = rotation_secret(7);
        let secrets = WebhookSecrets::parse(&secret).unwrap();
        let good = independent_signature(&key, "msg_1", now, b"{}");
        let other = independent_signature(&[1u8; 32], "msg_1", now, b"{}");
        let cases: Vec<(&str, String, bool)> = vec![
            ("one entry", good.clone(), true),
            (
                "comma and space, match last",
                format!("{other}, {good}"),
                true,
            ),
            (
                "comma and space, match first",
                format!("{good}, {other}"),
                true,
            ),
            ("space, match last", format!("{other} {good}"), true),
            ("space, match first", format!("{good} {other}"), true),
            (
                "comma and space, none matching",
                format!("{other}, {other}"),
                false,
            ),
            ("space, none matching", format!("{other} {other}"), false),
            ("comma without space", format!("{other},{good}"), false),
            ("a v2 entry, then ours", format!("v2,abc=, {good}"), true),
            (
                "ours as another version",
                good.replacen("v1,", "v2,", 1),
                false,
            ),
            ("only separators", ", , ".into(), false),
        ];
        for (case, signature, verifies) in cases {
            let got = verify(&secrets, headers("msg_1", &ts, &signature), b"{}", now);
            assert_eq!(got.is_ok(), verifies, "{case}: {signature}");
            if !verifies {
                assert_eq!(got, Err(AuthError::NoMatchingWebhookSignature), "{case}");
            }
        }
    }

    /// `AUTH_HOOK_SECRET` during a rotation: any configured secret may have
    /// signed; one row per configuration and signing key.
    #[test]
    fn any_configured_secret_may_match_any_signature() {
        let now = 1_700_000_000;
        let ts = now.to_string();
        let (old, old_key) = rotation_secret(1);
        let (new, new_key) = rotation_secret(2);
        let (_, stranger_key) = rotation_secret(3);
        let signed_by = |key: &[u8]| independent_signature(key, "msg_1", now, b"{}");
        let both = format!("{old}|{new}");
        let cases: Vec<(&str, &str, String, bool)> = vec![
            (
                "two secrets, the first signed",
                &both,
                signed_by(&old_key),
                true,
            ),
            (
                "two secrets, the second signed",
                &both,
                signed_by(&new_key),
                true,
            ),
            (
                "two secrets, neither signed",
                &both,
                signed_by(&stranger_key),
                false,
            ),
            (
                "two secrets, both signed, comma-separated",
                &both,
                format!("{}, {}", signed_by(&old_key), signed_by(&new_key)),
                true,
            ),
            (
                "two secrets, a stranger's entry beside the new one",
                &both,
                format!("{}, {}", signed_by(&stranger_key), signed_by(&new_key)),
                true,
            ),
            (
                "the old secret alone, the new one signed",
                &old,
                signed_by(&new_key),
                false,
            ),
        ];
        for (case, configured, signature, verifies) in cases {
            let secrets = WebhookSecrets::parse(configured).unwrap();
            let got = verify(&secrets, headers("msg_1", &ts, &signature), b"{}", now);
            assert_eq!(got.is_ok(), verifies, "{case}");
        }
    }

    #[test]
    fn a_secret_list_with_any_bad_entry_is_refused_whole() {
        let (good, _) = rotation_secret(1);
        let (other, _) = rotation_secret(2);
        let parsed = WebhookSecrets::parse(&format!(" {good} | {other} ")).unwrap();
        assert_eq!(parsed.len(), 2);
        let cases: Vec<(String, &str)> = vec![
            (format!("{good}|whsec_not base64!"), "secret 2 of 2"),
            (format!("whsec_c2hvcnQ=|{good}"), "secret 1 of 2"),
            (format!("{good}|plain-secret"), "secret 2 of 2"),
            (format!("{good}|"), "secret 2 of 2 is empty"),
            (format!("{good}||{other}"), "secret 2 of 3 is empty"),
            ("|".into(), "secret 1 of 2 is empty"),
            (String::new(), "secret 1 of 1 is empty"),
        ];
        for (configured, reason) in cases {
            let err = WebhookSecrets::parse(&configured).unwrap_err();
            assert!(err.starts_with(reason), "{configured:?}: {err}");
            // The reason is logged: it names the position, never the value.
            assert!(!err.contains(&good[9..]), "{err}");
        }
    }

    #[test]
    fn secret_debug_is_redacted() {
        assert_eq!(
            format!("{:?}", WebhookSecret::parse(VECTOR_SECRET).unwrap()),
            "WebhookSecret(<redacted>)"
        );
        let (good, _) = rotation_secret(1);
        let printed = format!(
            "{:?}",
            WebhookSecrets::parse(&format!("{good}|{good}")).unwrap()
        );
        assert_eq!(printed, "WebhookSecrets(2 x <redacted>)");
    }
}
