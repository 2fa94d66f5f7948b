//! Access tokens shaped like the ones Supabase Auth issues, minted here with
//! `jsonwebtoken` (a library the Worker does not use) or by hand.

use crate::{env, now, random_uuid};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// `<SUPABASE_URL>/auth/v1`, the `iss` of the project's access tokens.
pub fn issuer() -> String {
    format!("{}/auth/v1", env("CDS_SUPABASE_URL"))
}

/// The claims of a signed-in user's access token, valid for an hour.
pub fn user_claims(user_id: &str, email: &str) -> Value {
    let iat = now();
    json!({
        "iss": issuer(),
        "aud": "authenticated",
        "role": "authenticated",
        "sub": user_id,
        "email": email,
        "phone": "",
        "app_metadata": {"provider": "email", "providers": ["email"]},
        "user_metadata": {},
        "aal": "aal1",
        "amr": [{"method": "password", "timestamp": iat}],
        "session_id": random_uuid(),
        "is_anonymous": false,
        "iat": iat,
        "exp": iat + 3600,
    })
}

/// The demo user's claims, to vary one at a time.
pub fn demo_claims() -> Value {
    user_claims(&env("CDS_DEMO_USER_ID"), "demo@example.com")
}

/// `claims` with each field of `changes` set, or removed where it is null.
pub fn with(mut claims: Value, changes: Value) -> Value {
    for (name, value) in changes.as_object().expect("changes are an object") {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(name);
        } else {
            claims[name] = value.clone();
        }
    }
    claims
}

/// HS256 with the project's JWT secret, as Supabase's legacy signing does.
pub fn hs256(claims: &Value) -> String {
    sign(
        Algorithm::HS256,
        None,
        env("CDS_JWT_SECRET").as_bytes(),
        claims,
    )
}

/// An HMAC-signed token with any secret, algorithm and `kid`.
pub fn sign(alg: Algorithm, kid: Option<&str>, secret: &[u8], claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    encode(&header, claims, &EncodingKey::from_secret(secret)).expect("signing a JWT")
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `header.claims.signature`, each part given as JSON or raw text.
pub fn assemble(header: &Value, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

/// Publishes these public JWKs as the project's key set: rewrites the file
/// the local stack serves at `/auth/v1/.well-known/jwks.json` (re-read on
/// every request), atomically so a fetch never sees half a document.
pub fn publish_jwks(public_jwks: &[&Value]) {
    let path = std::path::PathBuf::from(env("CDS_JWKS_FILE"));
    let staging = path.with_extension(format!("json.{}", random_uuid()));
    let document = json!({ "keys": public_jwks }).to_string();
    std::fs::write(&staging, document).expect("writing the JWKS");
    std::fs::rename(&staging, &path).expect("publishing the JWKS");
}

/// The least time between two JWKS fetches the Worker makes on an unknown
/// `kid` (`JWKS_MIN_REFETCH_SECS`): 1 s in the test profile, which
/// `CDS_JWKS_MIN_REFETCH_SECS` overrides (30 against the dev profile).
pub fn jwks_refetch_floor() -> std::time::Duration {
    let secs = std::env::var("CDS_JWKS_MIN_REFETCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    std::time::Duration::from_secs(secs)
}
