//! JWT verification as PostgREST does it on Supabase: an `Authorization:
//! Bearer <JWT>` signed HS256 with the project's JWT secret gives the role
//! (its `role` claim) and the claims; no token gives the anonymous role.
//!
//! The gateway (see `server.rs`) has already copied the `apikey` into
//! `Authorization` when the request had none, as Supabase's gateway does.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

/// Who the request runs as.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// The database role for `SET LOCAL ROLE`.
    pub role: String,
    /// The verified claims, always with `role` set to [`Identity::role`]
    /// (just `{"role": <anon>}` for anonymous requests), as PostgREST v12
    /// sets `request.jwt.claims`.
    pub claims: Value,
}

/// A token that PostgREST would refuse, with PostgREST's message for it
/// (answered as `PGRST301`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct JwtRejected(pub String);

/// Seconds of clock skew PostgREST tolerates on `exp`/`nbf`.
const ALLOWED_SKEW_SECONDS: u64 = 30;

/// Verifies the bearer token of an `Authorization` header value, if any.
///
/// * no header, a scheme other than Bearer, or an empty Bearer token: the
///   anonymous role (PostgREST v12 reads an empty token as no token);
/// * a Bearer token: verified HS256 with `secret`; `exp` and `nbf` are checked
///   when present, `aud` is not required (PostgREST checks it only when an
///   audience is configured, which Supabase does not do).
///
/// The role is the token's `role` claim, or the anonymous role without one;
/// either way it is written into the claims, as PostgREST does.
pub fn identify(
    authorization: Option<&str>,
    secret: &[u8],
    anon_role: &str,
) -> Result<Identity, JwtRejected> {
    // PostgREST only looks at Bearer credentials; anything else (e.g. Basic)
    // leaves the request anonymous.
    let token = authorization.and_then(bearer_token).unwrap_or("");
    let mut claims = if token.is_empty() {
        Map::new()
    } else {
        verify(token, secret)?
    };
    let role = match claims.get("role") {
        Some(Value::String(role)) => role.clone(),
        _ => anon_role.to_owned(),
    };
    claims.insert("role".to_owned(), Value::String(role.clone()));
    Ok(Identity {
        role,
        claims: Value::Object(claims),
    })
}

/// The token of a `Bearer <token>` credential; the scheme is case-insensitive.
fn bearer_token(header: &str) -> Option<&str> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    scheme.eq_ignore_ascii_case("bearer").then_some(rest.trim())
}

fn verify(token: &str, secret: &[u8]) -> Result<Map<String, Value>, JwtRejected> {
    let parts = token.split('.').count();
    if parts != 3 {
        return Err(JwtRejected(format!("Expected 3 parts in JWT; got {parts}")));
    }
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = ALLOWED_SKEW_SECONDS;
    validation.validate_nbf = true;
    validation.validate_aud = false;
    // `exp` is optional for PostgREST (Supabase's keys all carry one, but a
    // token without it is still accepted); it is checked when present.
    validation.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<Map<String, Value>>(
        token,
        &DecodingKey::from_secret(secret),
        &validation,
    )
    .map_err(|error| JwtRejected(message_for(error.kind()).to_owned()))?;
    Ok(data.claims)
}

/// PostgREST's wording for each way a token fails.
fn message_for(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::ExpiredSignature => "JWT expired",
        ErrorKind::ImmatureSignature => "JWT not yet valid",
        ErrorKind::InvalidSignature => "JWSError JWSInvalidSignature",
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            "Wrong or unsupported encoding algorithm"
        }
        ErrorKind::Json(_) => "Parsing claims failed",
        _ => "JWT couldn't be decoded",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    const SECRET: &[u8] = b"unit-test-secret-at-least-32-bytes-long";

    fn token(alg: Algorithm, claims: Value, secret: &[u8]) -> String {
        encode(
            &Header::new(alg),
            &claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn outcomes() {
        let good = token(
            Algorithm::HS256,
            json!({"role": "authenticated", "sub": "u1", "exp": now() + 60}),
            SECRET,
        );
        let no_role = token(Algorithm::HS256, json!({"sub": "u1"}), SECRET);
        let expired = token(
            Algorithm::HS256,
            json!({"role": "authenticated", "exp": now() - 3600}),
            SECRET,
        );
        let other_secret = token(
            Algorithm::HS256,
            json!({"role": "authenticated"}),
            b"another-secret-another-secret-another",
        );
        let hs512 = token(Algorithm::HS512, json!({"role": "authenticated"}), SECRET);
        // (authorization header, expected role or rejection message)
        let cases: Vec<(Option<String>, Result<&str, &str>)> = vec![
            (None, Ok("anon")),
            (Some("Basic dXNlcjpwYXNz".into()), Ok("anon")),
            (Some(format!("Bearer {good}")), Ok("authenticated")),
            (Some(format!("bearer {good}")), Ok("authenticated")),
            (Some(format!("Bearer {no_role}")), Ok("anon")),
            (Some(format!("Bearer {expired}")), Err("JWT expired")),
            (
                Some(format!("Bearer {other_secret}")),
                Err("JWSError JWSInvalidSignature"),
            ),
            (
                Some(format!("Bearer {hs512}")),
                Err("Wrong or unsupported encoding algorithm"),
            ),
            (Some("Bearer ".into()), Ok("anon")),
            (Some("Bearer".into()), Ok("anon")),
            (
                Some("Bearer abc".into()),
                Err("Expected 3 parts in JWT; got 1"),
            ),
        ];
        for (header, expected) in cases {
            let got = identify(header.as_deref(), SECRET, "anon")
                .map(|identity| {
                    assert_eq!(identity.claims["role"], identity.role.as_str());
                    identity.role
                })
                .map_err(|rejected| rejected.0);
            let got = got.as_ref().map(String::as_str).map_err(String::as_str);
            assert_eq!(got, expected, "Authorization: {header:?}");
        }
    }
}
