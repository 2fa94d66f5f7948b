//! Supabase's API gateway in front of PostgREST: which `apikey` gets in, and
//! what it forwards as the bearer token.
//!
//! A project has legacy JWT keys (`anon`, `service_role`) and opaque keys
//! (`sb_publishable_…`, `sb_secret_…`). The gateway refuses a request whose
//! `apikey` is none of them. Without an `Authorization` header it gives
//! PostgREST a bearer token for the key: a legacy key is itself a JWT and is
//! sent as it is; for an opaque key the gateway sends a token of its own
//! whose only claim is the key's role (`anon` for publishable, `service_role`
//! for secret). A request with `Authorization` is forwarded unchanged, so an
//! opaque key sent as `Bearer sb_…` reaches PostgREST, which refuses it as
//! not a JWT (PGRST301).

use jsonwebtoken::{EncodingKey, Header};

use crate::errors::GatewayError;

/// The project's API keys. When none is configured the gateway cannot tell
/// keys apart and lets any non-empty `apikey` through, sending it as the
/// bearer token when there is no `Authorization`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiKeys {
    /// The legacy `anon` key (a JWT with `role: anon`).
    pub anon: Option<String>,
    /// The legacy `service_role` key (a JWT with `role: service_role`).
    pub service_role: Option<String>,
    /// The `sb_publishable_…` key.
    pub publishable: Option<String>,
    /// The `sb_secret_…` key.
    pub secret: Option<String>,
}

/// The role an opaque key stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRole {
    /// The publishable key: the anonymous role.
    Anon,
    /// The secret key: `service_role`.
    ServiceRole,
}

/// What the gateway forwards for an admitted request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The request as it is (it brings its own `Authorization`).
    Unchanged,
    /// `Authorization: Bearer <the apikey>` (a legacy JWT key, or any key
    /// when none is configured).
    KeyAsBearer,
    /// `Authorization: Bearer <a token minted for this role>`.
    TokenFor(KeyRole),
}

impl ApiKeys {
    fn configured(&self) -> impl Iterator<Item = (&str, Option<KeyRole>)> {
        [
            (&self.anon, None),
            (&self.service_role, None),
            (&self.publishable, Some(KeyRole::Anon)),
            (&self.secret, Some(KeyRole::ServiceRole)),
        ]
        .into_iter()
        .filter_map(|(key, role)| key.as_deref().map(|key| (key, role)))
    }
}

/// The gateway's decision for a request with this `apikey` (header or query
/// parameter) and with or without an `Authorization` header.
pub fn admit(
    apikey: Option<&str>,
    has_authorization: bool,
    keys: &ApiKeys,
) -> Result<Admission, GatewayError> {
    let apikey = apikey
        .filter(|key| !key.is_empty())
        .ok_or(GatewayError::MissingApiKey)?;
    let opaque_role = if keys.configured().next().is_none() {
        None
    } else {
        // Every configured key is compared, so the time taken does not tell
        // which one (nearly) matched.
        let mut found = None;
        for (key, role) in keys.configured() {
            if same_key(apikey, key) {
                found = Some(role);
            }
        }
        found.ok_or(GatewayError::InvalidApiKey)?
    };
    Ok(match (has_authorization, opaque_role) {
        (true, _) => Admission::Unchanged,
        (false, None) => Admission::KeyAsBearer,
        (false, Some(role)) => Admission::TokenFor(role),
    })
}

/// The token the gateway sends PostgREST for an opaque key: `{"role":
/// <role>}`, signed HS256 with the project's JWT secret.
pub fn mint_token(role: &str, jwt_secret: &[u8]) -> Result<String, jsonwebtoken::errors::Error> {
    jsonwebtoken::encode(
        &Header::default(),
        &serde_json::json!({ "role": role }),
        &EncodingKey::from_secret(jwt_secret),
    )
}

/// Compares two keys in time that depends only on their lengths.
fn same_key(given: &str, expected: &str) -> bool {
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |differences, (a, b)| differences | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> ApiKeys {
        ApiKeys {
            anon: Some("a.legacy.anon".into()),
            service_role: Some("a.legacy.service".into()),
            publishable: Some("sb_publishable_x".into()),
            secret: Some("sb_secret_y".into()),
        }
    }

    /// (keys, apikey, has Authorization, expected)
    type Case<'a> = (
        &'a ApiKeys,
        Option<&'a str>,
        bool,
        Result<Admission, GatewayError>,
    );

    #[test]
    fn decisions() {
        use Admission::*;
        use GatewayError::*;
        let some = keys();
        let only_anon = ApiKeys {
            anon: Some("a.legacy.anon".into()),
            ..ApiKeys::default()
        };
        let none = ApiKeys::default();
        let cases: &[Case] = &[
            (&some, None, false, Err(MissingApiKey)),
            (&some, Some(""), true, Err(MissingApiKey)),
            (&some, Some("nope"), false, Err(InvalidApiKey)),
            (&some, Some("nope"), true, Err(InvalidApiKey)),
            (&some, Some("sb_secret_y2"), false, Err(InvalidApiKey)),
            (&some, Some("a.legacy.anon"), false, Ok(KeyAsBearer)),
            (&some, Some("a.legacy.service"), false, Ok(KeyAsBearer)),
            (&some, Some("a.legacy.anon"), true, Ok(Unchanged)),
            (
                &some,
                Some("sb_publishable_x"),
                false,
                Ok(TokenFor(KeyRole::Anon)),
            ),
            (
                &some,
                Some("sb_secret_y"),
                false,
                Ok(TokenFor(KeyRole::ServiceRole)),
            ),
            (&some, Some("sb_secret_y"), true, Ok(Unchanged)),
            (
                &only_anon,
                Some("sb_publishable_x"),
                false,
                Err(InvalidApiKey),
            ),
            (&none, Some("anything"), false, Ok(KeyAsBearer)),
            (&none, Some("sb_secret_y"), true, Ok(Unchanged)),
            (&none, None, false, Err(MissingApiKey)),
        ];
        for (keys, apikey, has_authorization, expected) in cases {
            assert_eq!(
                admit(*apikey, *has_authorization, keys),
                *expected,
                "apikey {apikey:?}, Authorization {has_authorization}"
            );
        }
    }

    #[test]
    fn minted_token_carries_only_the_role() {
        let token = mint_token("service_role", b"a-secret-of-at-least-32-characters!!").unwrap();
        let mut validation = jsonwebtoken::Validation::default();
        validation.required_spec_claims.clear();
        let claims = jsonwebtoken::decode::<serde_json::Value>(
            &token,
            &jsonwebtoken::DecodingKey::from_secret(b"a-secret-of-at-least-32-characters!!"),
            &validation,
        )
        .unwrap()
        .claims;
        assert_eq!(claims, serde_json::json!({"role": "service_role"}));
    }
}
