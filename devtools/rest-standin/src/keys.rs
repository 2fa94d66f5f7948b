//! The project's JWT signing keys: the legacy HS256 secret, and the
//! asymmetric public keys Supabase Auth publishes as a JSON Web Key Set at
//! `/auth/v1/.well-known/jwks.json` (here, a file the stand-in serves).
//!
//! The key set is read from its file on every use, never cached: it is
//! small, only tokens signed with an asymmetric key need it, and a test that
//! rotates keys by rewriting the file sees the new set at once (a cache keyed
//! on the modification time could miss a rewrite within one clock tick).

use std::io::ErrorKind;
use std::path::PathBuf;

use jsonwebtoken::jwk::Jwk;
use serde::Deserialize;
use serde_json::Value;

/// The key set served when there is no file: a project that signs only with
/// the legacy HS256 secret publishes no keys.
const EMPTY_SET: &str = r#"{"keys":[]}"#;

/// Where the project's signing keys come from.
pub struct SigningKeys {
    /// The legacy JWT secret (HS256).
    pub secret: Vec<u8>,
    /// The published key set, if the project has one.
    pub jwks_file: Option<PathBuf>,
}

impl SigningKeys {
    /// The key set document as published: the file's text, unchanged, or
    /// an empty set without a file.
    pub async fn document(&self) -> String {
        match &self.jwks_file {
            Some(path) => tokio::fs::read_to_string(path)
                .await
                .unwrap_or_else(|_| EMPTY_SET.to_owned()),
            None => EMPTY_SET.to_owned(),
        }
    }

    /// The published public keys that can be read. A missing file is an
    /// empty set; an unreadable or malformed one is reported on stderr and
    /// counts as empty, so tokens that need it are refused.
    pub async fn published(&self) -> Vec<Jwk> {
        let Some(path) = &self.jwks_file else {
            return Vec::new();
        };
        match tokio::fs::read_to_string(path).await {
            Ok(text) => parse_key_set(&text).unwrap_or_else(|| {
                eprintln!(
                    "rest-standin: {} is not a JSON Web Key Set; no published keys",
                    path.display()
                );
                Vec::new()
            }),
            Err(error) if error.kind() == ErrorKind::NotFound => Vec::new(),
            Err(error) => {
                eprintln!("rest-standin: cannot read {}: {error}", path.display());
                Vec::new()
            }
        }
    }
}

/// The keys of a JSON Web Key Set (`{"keys": [...]}`), or `None` when the
/// text is not one. A key this crate cannot read (an unknown `kty`, a
/// missing parameter) is skipped rather than spoiling the whole set, as a
/// verifier ignores keys it does not understand.
pub fn parse_key_set(text: &str) -> Option<Vec<Jwk>> {
    #[derive(Deserialize)]
    struct KeySet {
        keys: Vec<Value>,
    }
    let set: KeySet = serde_json::from_str(text).ok()?;
    Some(
        set.keys
            .into_iter()
            .filter_map(|key| serde_json::from_value(key).ok())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_keys_are_skipped_and_a_non_set_is_none() {
        let text = r#"{"keys": [
            {"kty": "EC", "kid": "ec", "crv": "P-256", "x": "eA", "y": "eQ"},
            {"kty": "XYZ", "kid": "unknown type"},
            {"kty": "RSA", "kid": "no modulus", "e": "AQAB"},
            {"kty": "RSA", "kid": "rsa", "n": "bg", "e": "AQAB"}
        ]}"#;
        let kids: Vec<Option<String>> = parse_key_set(text)
            .expect("a key set")
            .into_iter()
            .map(|key| key.common.key_id)
            .collect();
        assert_eq!(kids, [Some("ec".to_owned()), Some("rsa".to_owned())]);
        assert!(parse_key_set("[]").is_none());
        assert!(parse_key_set("not json").is_none());
        assert_eq!(parse_key_set(EMPTY_SET).map(|keys| keys.len()), Some(0));
    }
}
