//! JWT verification as PostgREST does it on Supabase: an `Authorization:
//! Bearer <JWT>` signed by one of the project's keys gives the role (its
//! `role` claim) and the claims; no token gives the anonymous role.
//!
//! The project's keys are the legacy JWT secret (HS256) and the asymmetric
//! keys Supabase Auth publishes in its JWKS (ES256, RS256): Supabase
//! configures PostgREST with both, so tokens of either kind are accepted.
//!
//! The gateway (see `server.rs`) has already put a bearer token in
//! `Authorization` for an API key when the request had none, as Supabase's
//! gateway does.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde_json::{Map, Value};

/// The keys a token may be verified with.
#[derive(Clone, Copy)]
pub struct Keys<'a> {
    /// The legacy JWT secret, for HS256.
    pub secret: &'a [u8],
    /// The published asymmetric public keys (see [`crate::keys`]).
    pub published: &'a [Jwk],
}

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
/// * a Bearer token: verified with the project's keys (HS256 with the
///   secret, ES256/RS256 with a published key);
///   `exp` and `nbf` are checked when present, `aud` is not required
///   (PostgREST checks it only when an audience is configured, which
///   Supabase does not do).
///
/// The role is the token's `role` claim, or the anonymous role without one;
/// either way it is written into the claims, as PostgREST does.
pub fn identify(
    authorization: Option<&str>,
    keys: Keys<'_>,
    anon_role: &str,
) -> Result<Identity, JwtRejected> {
    // PostgREST only looks at Bearer credentials; anything else (e.g. Basic)
    // leaves the request anonymous.
    let token = authorization.and_then(bearer_token).unwrap_or("");
    let mut claims = if token.is_empty() {
        Map::new()
    } else {
        verify(token, keys)?
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

/// Whether verifying this `Authorization` value needs the published keys:
/// a Bearer token whose header names an asymmetric algorithm. It lets the
/// caller read the key set only for such tokens.
pub fn needs_published_keys(authorization: Option<&str>) -> bool {
    authorization
        .and_then(bearer_token)
        .and_then(|token| jsonwebtoken::decode_header(token).ok())
        .is_some_and(|header| matches!(header.alg, Algorithm::ES256 | Algorithm::RS256))
}

/// Verifies a token by its header's `alg`:
///
/// * `HS256`: with the JWT secret (a `kid` is ignored);
/// * `ES256`, `RS256`: with a published key of that type, the one its `kid`
///   names (a token without `kid` may match any of them); none verifying it,
///   because no key has that `kid`, the key is of another type, or the
///   signature is wrong, is one refusal, as for a wrong HS256 signature;
/// * any other algorithm is refused.
fn verify(token: &str, keys: Keys<'_>) -> Result<Map<String, Value>, JwtRejected> {
    let parts = token.split('.').count();
    if parts != 3 {
        return Err(JwtRejected(format!("Expected 3 parts in JWT; got {parts}")));
    }
    let header = jsonwebtoken::decode_header(token).map_err(rejected)?;
    match header.alg {
        Algorithm::HS256 => {
            decode(token, &DecodingKey::from_secret(keys.secret), header.alg).map_err(rejected)
        }
        Algorithm::ES256 | Algorithm::RS256 => verify_published(token, &header, keys.published),
        _ => Err(rejected(ErrorKind::InvalidAlgorithm.into())),
    }
}

fn verify_published(
    token: &str,
    header: &Header,
    published: &[Jwk],
) -> Result<Map<String, Value>, JwtRejected> {
    let candidates = published.iter().filter(|jwk| {
        (header.kid.is_none() || jwk.common.key_id == header.kid) && key_fits(jwk, header.alg)
    });
    for jwk in candidates {
        // A published key whose parameters do not decode verifies nothing.
        let Ok(key) = DecodingKey::from_jwk(jwk) else {
            continue;
        };
        match decode(token, &key, header.alg) {
            Ok(claims) => return Ok(claims),
            Err(error) if matches!(error.kind(), ErrorKind::InvalidSignature) => continue,
            // The signature held; the claims (e.g. `exp`) did not.
            Err(error) => return Err(rejected(error)),
        }
    }
    Err(rejected(ErrorKind::InvalidSignature.into()))
}

/// Whether a published key can verify a token signed with `alg`: a P-256 key
/// for ES256, an RSA key for RS256; a key that names its algorithm or its use
/// must name this algorithm and signing.
fn key_fits(jwk: &Jwk, alg: Algorithm) -> bool {
    let (type_fits, key_algorithm) = match (&jwk.algorithm, alg) {
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES256) => {
            (ec.curve == EllipticCurve::P256, KeyAlgorithm::ES256)
        }
        (AlgorithmParameters::RSA(_), Algorithm::RS256) => (true, KeyAlgorithm::RS256),
        _ => return false,
    };
    type_fits
        && jwk
            .common
            .key_algorithm
            .is_none_or(|named| named == key_algorithm)
        && jwk
            .common
            .public_key_use
            .as_ref()
            .is_none_or(|key_use| *key_use == PublicKeyUse::Signature)
}

/// Verifies the signature with `key` and checks the time claims.
fn decode(
    token: &str,
    key: &DecodingKey,
    alg: Algorithm,
) -> Result<Map<String, Value>, jsonwebtoken::errors::Error> {
    let mut validation = Validation::new(alg);
    validation.leeway = ALLOWED_SKEW_SECONDS;
    validation.validate_nbf = true;
    validation.validate_aud = false;
    // `exp` is optional for PostgREST (Supabase's keys all carry one, but a
    // token without it is still accepted); it is checked when present.
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation).map(|data| data.claims)
}

fn rejected(error: jsonwebtoken::errors::Error) -> JwtRejected {
    JwtRejected(message_for(error.kind()).to_owned())
}

/// PostgREST v12's wording for each way a token fails (its JWT library's
/// error names).
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
            let keys = Keys {
                secret: SECRET,
                published: &[],
            };
            let got = identify(header.as_deref(), keys, "anon")
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
