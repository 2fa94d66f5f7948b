//! The shared-secret header on Supabase Database Webhooks.
//!
//! Database Webhooks carry no signature (they are a trigger calling
//! `supabase_functions.http_request`), so the trigger sends a secret header,
//! kept in Supabase Vault, and the edge compares it with `DB_WEBHOOK_SECRET`.

use super::AuthError;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Checks a presented secret against the configured one in constant time.
///
/// Both are hashed first so the comparison takes the same time whatever the
/// lengths, and a wrong guess tells nothing about how close it came.
pub fn check_shared_secret(presented: Option<&str>, expected: &str) -> Result<(), AuthError> {
    let presented = presented
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .ok_or(AuthError::MissingWebhookSecret)?;
    let same = Sha256::digest(presented.as_bytes()).ct_eq(&Sha256::digest(expected.as_bytes()));
    // An empty expected secret would otherwise never match anything, but say
    // so explicitly: a blank configuration must not be a valid secret.
    if bool::from(same) && !expected.is_empty() {
        Ok(())
    } else {
        Err(AuthError::InvalidWebhookSecret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_the_whole_secret() {
        let expected = "0123456789abcdef0123456789abcdef";
        let cases = [
            (Some(expected), Ok(())),
            (Some(" 0123456789abcdef0123456789abcdef "), Ok(())),
            (
                Some("0123456789abcdef0123456789abcde"),
                Err(AuthError::InvalidWebhookSecret),
            ),
            (
                Some("0123456789abcdef0123456789abcdef0"),
                Err(AuthError::InvalidWebhookSecret),
            ),
            (Some("x"), Err(AuthError::InvalidWebhookSecret)),
            (Some(""), Err(AuthError::MissingWebhookSecret)),
            (None, Err(AuthError::MissingWebhookSecret)),
        ];
        for (presented, want) in cases {
            assert_eq!(
                check_shared_secret(presented, expected),
                want,
                "{presented:?}"
            );
        }
    }

    #[test]
    fn an_empty_configured_secret_matches_nothing() {
        assert_eq!(
            check_shared_secret(Some("anything"), ""),
            Err(AuthError::InvalidWebhookSecret)
        );
    }
}
