//! Who is calling: verification of every kind of caller the edge accepts.
//!
//! - [`jwt`]: Supabase access tokens (browsers, signed-in users).
//! - [`anonymous`]: what an anonymous sign-in's token may do.
//! - [`jwks`] and [`jwks_cache`]: the project's public signing keys and when
//!   to fetch them again.
//! - [`api_key`]: `cds_…` keys held by LLM servers.
//! - [`webhook`]: Standard Webhooks signatures on Supabase Auth hooks.
//! - [`shared_secret`]: the secret header on Supabase Database Webhooks.
//!
//! All of it is sans-I/O: the current time, random bytes, headers and fetched
//! documents come in as arguments. Every refusal is an [`AuthError`] with a
//! stable code; the caller is told only a generic message, so an attacker
//! learns nothing about which check failed beyond the code.

pub mod anonymous;
pub mod api_key;
pub mod jwks;
pub mod jwks_cache;
pub mod jwt;
#[cfg(not(target_arch = "wasm32"))]
mod rust_signatures;
pub mod scopes;
pub mod shared_secret;
pub mod webhook;

pub use anonymous::AnonymousUsers;
pub use api_key::{looks_like_api_key, ApiKey, GeneratedApiKey, ParsedApiKey};
pub use jwks::{JwkSet, JwksError, PublicKey};
pub use jwks_cache::{CachePolicy, Fetch, JwksCache};
pub use jwt::{
    bearer_token, require_user, Pending, Role, SignatureAlg, SignatureCheck, VerifiedClaims,
    Verifier, VerifierSettings,
};

/// The generic message for a refused access token or API key.
pub const INVALID_CREDENTIALS_MESSAGE: &str = "invalid access token";
/// The generic message for a refused webhook.
pub const INVALID_WEBHOOK_MESSAGE: &str = "invalid webhook signature";

/// Why a caller was refused.
///
/// `Display` is for operators' logs and may name the failed check; callers
/// only ever see [`AuthError::public_message`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    // Access tokens (JWTs).
    #[error("no access token was presented")]
    MissingToken,
    #[error("access token is larger than the limit")]
    TokenTooLarge,
    #[error("access token is not a well-formed JWT")]
    MalformedToken,
    #[error("access token uses an algorithm we do not accept")]
    UnsupportedAlgorithm,
    /// HS256 with no secret configured, or an ES256/RS256 token whose `kid`
    /// names a key of the other type. Answered as `invalid_signature`, like
    /// any other signature that does not verify: which key types the project
    /// publishes is no business of a forger's. The log keeps this reason.
    #[error("access token algorithm does not match the key it names")]
    AlgorithmKeyMismatch,
    #[error("access token signed with a public-key algorithm names no key (`kid`)")]
    MissingKeyId,
    /// The `kid` is not in the key set we hold; the caller may refetch the
    /// JWKS (see [`JwksCache::decide`]) and try once more.
    #[error("access token names a signing key we do not know: {kid}")]
    UnknownKeyId { kid: String },
    #[error("access token signature does not verify")]
    InvalidSignature,
    #[error("access token has no expiry (`exp`)")]
    MissingExpiry,
    #[error("access token has expired")]
    TokenExpired,
    #[error("access token is not valid yet (`nbf`)")]
    TokenNotYetValid,
    #[error("access token is for another audience")]
    WrongAudience,
    #[error("access token was issued by someone else")]
    WrongIssuer,
    #[error("access token subject (`sub`) is missing or not a UUID")]
    InvalidSubject,
    #[error("access token role is missing or unknown")]
    InvalidRole,
    /// A valid token, but for the `anon` or `service_role` role where a
    /// signed-in user is required.
    #[error("access token does not belong to a signed-in user")]
    UserRequired,

    // API keys.
    #[error("API key is malformed")]
    MalformedApiKey,

    // Standard Webhooks (Supabase Auth hooks).
    #[error("webhook-id, webhook-timestamp or webhook-signature header is missing")]
    MissingWebhookHeaders,
    #[error("webhook-timestamp is not a Unix time in seconds")]
    InvalidWebhookTimestamp,
    #[error("webhook-timestamp is too far in the past")]
    WebhookTimestampTooOld,
    #[error("webhook-timestamp is too far in the future")]
    WebhookTimestampTooNew,
    #[error("no webhook signature matches")]
    NoMatchingWebhookSignature,
    /// Our own configuration is wrong, not the caller's request.
    #[error("webhook secret is misconfigured: {reason}")]
    WebhookSecretMisconfigured { reason: &'static str },

    // Shared-secret header (Supabase Database Webhooks).
    #[error("webhook secret header is missing")]
    MissingWebhookSecret,
    #[error("webhook secret header does not match")]
    InvalidWebhookSecret,
}

impl AuthError {
    /// The stable, documented machine code.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::MissingToken => "missing_token",
            AuthError::TokenTooLarge => "token_too_large",
            AuthError::MalformedToken => "malformed_token",
            AuthError::UnsupportedAlgorithm => "unsupported_algorithm",
            AuthError::AlgorithmKeyMismatch | AuthError::InvalidSignature => "invalid_signature",
            AuthError::MissingKeyId => "missing_key_id",
            AuthError::UnknownKeyId { .. } => "unknown_key_id",
            AuthError::MissingExpiry => "missing_expiry",
            AuthError::TokenExpired => "token_expired",
            AuthError::TokenNotYetValid => "token_not_yet_valid",
            AuthError::WrongAudience => "wrong_audience",
            AuthError::WrongIssuer => "wrong_issuer",
            AuthError::InvalidSubject => "invalid_subject",
            AuthError::InvalidRole => "invalid_role",
            AuthError::UserRequired => "user_required",
            AuthError::MalformedApiKey => "malformed_api_key",
            AuthError::MissingWebhookHeaders => "missing_webhook_headers",
            AuthError::InvalidWebhookTimestamp => "invalid_webhook_timestamp",
            AuthError::WebhookTimestampTooOld => "webhook_timestamp_too_old",
            AuthError::WebhookTimestampTooNew => "webhook_timestamp_too_new",
            AuthError::NoMatchingWebhookSignature => "invalid_webhook_signature",
            AuthError::WebhookSecretMisconfigured { .. } => "misconfigured",
            AuthError::MissingWebhookSecret => "missing_webhook_secret",
            AuthError::InvalidWebhookSecret => "invalid_webhook_secret",
        }
    }

    /// 401 for anything the caller presented; 500 when our own configuration
    /// is at fault.
    pub fn status(&self) -> u16 {
        match self {
            AuthError::WebhookSecretMisconfigured { .. } => 500,
            _ => 401,
        }
    }

    /// What the caller is told: the same words whichever check failed.
    pub fn public_message(&self) -> &'static str {
        match self {
            AuthError::MissingWebhookHeaders
            | AuthError::InvalidWebhookTimestamp
            | AuthError::WebhookTimestampTooOld
            | AuthError::WebhookTimestampTooNew
            | AuthError::NoMatchingWebhookSignature
            | AuthError::MissingWebhookSecret
            | AuthError::InvalidWebhookSecret => INVALID_WEBHOOK_MESSAGE,
            AuthError::WebhookSecretMisconfigured { .. } => "the service is misconfigured",
            _ => INVALID_CREDENTIALS_MESSAGE,
        }
    }
}

/// Whether `s` is a UUID in its canonical text form (8-4-4-4-12 hex digits,
/// either case), as Postgres prints `auth.users.id`. The `uuid` crate also
/// reads the simple, braced and URN forms; they are refused here so one id
/// has one spelling in paths, logs and rate-limit keys.
pub fn is_uuid(s: &str) -> bool {
    const HYPHENATED_LEN: usize = 36;
    s.len() == HYPHENATED_LEN && uuid::Uuid::try_parse(s).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_recognised_only_in_canonical_form() {
        let cases = [
            ("0b6c1f0e-8e2a-4c57-9a3e-5d1c2b3a4f60", true),
            ("0B6C1F0E-8E2A-4C57-9A3E-5D1C2B3A4F60", true),
            ("0b6c1f0e8e2a4c579a3e5d1c2b3a4f60", false),
            ("{0b6c1f0e-8e2a-4c57-9a3e-5d1c2b3a4f60}", false),
            ("0b6c1f0e-8e2a-4c57-9a3e-5d1c2b3a4f6g", false),
            ("0b6c1f0e-8e2a-4c57-9a3e_5d1c2b3a4f60", false),
            ("urn:uuid:0b6c1f0e-8e2a-4c57-9a3e-5d1c2b3a", false),
            ("0b6c1f0e-8e2a-4c57-9a3e-5d1c2b3a4f6\u{e9}", false),
            ("", false),
        ];
        for (input, want) in cases {
            assert_eq!(is_uuid(input), want, "{input}");
        }
    }

    #[test]
    fn every_refusal_is_401_except_our_own_misconfiguration() {
        assert_eq!(AuthError::TokenExpired.status(), 401);
        assert_eq!(AuthError::NoMatchingWebhookSignature.status(), 401);
        assert_eq!(
            AuthError::WebhookSecretMisconfigured { reason: "x" }.status(),
            500
        );
    }

    #[test]
    fn the_public_message_never_names_the_failed_check() {
        for err in [
            AuthError::TokenExpired,
            AuthError::InvalidSignature,
            AuthError::UnknownKeyId { kid: "k1".into() },
            AuthError::WrongIssuer,
        ] {
            assert_eq!(err.public_message(), INVALID_CREDENTIALS_MESSAGE);
        }
        assert_eq!(
            AuthError::WebhookTimestampTooOld.public_message(),
            INVALID_WEBHOOK_MESSAGE
        );
    }
}
