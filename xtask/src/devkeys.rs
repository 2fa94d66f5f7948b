//! Keys for the local stack: the JWT secret, the `anon` and `service_role`
//! keys derived from it (as Supabase's legacy API keys are), the new opaque
//! `sb_publishable_…` / `sb_secret_…` keys, and a signed-in demo user's
//! access token.

use crate::paths::Profile;
use anyhow::{Context, Result};
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::json;
use std::time::{SystemTime, UNIX_EPOCH};

/// Which kind of API keys a local Worker is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyScheme {
    /// `sb_publishable_…` / `sb_secret_…`.
    Opaque,
    /// The `anon` / `service_role` JWTs.
    LegacyJwt,
}

pub struct DevKeys {
    pub jwt_secret: String,
    pub anon_key: String,
    pub service_role_key: String,
    /// The 2025 API keys: not JWTs, accepted by the gateway in `apikey` only.
    pub publishable_key: String,
    pub secret_key: String,
    /// The shared secret header of the `auth.users` Database Webhook.
    pub db_webhook_secret: String,
    /// The Standard Webhooks secret of Supabase Auth's hooks (`v1,whsec_…`).
    pub auth_hook_secret: String,
    /// What a Prometheus scraper presents for `GET /v1/metrics`.
    pub metrics_token: String,
}

/// The demo user the stack creates, with an access token shaped like one
/// Supabase Auth issues.
pub struct DemoUser {
    pub id: String,
    pub email: &'static str,
    pub access_token: String,
    /// A `cds_…` key of theirs, as an LLM server would hold.
    pub api_key: String,
}

impl DevKeys {
    /// Reads the profile's JWT secret, generating it on first use, so tokens
    /// printed by one run keep working in the next.
    pub fn load_or_create(profile: &Profile) -> Result<Self> {
        let path = profile.dir.join("jwt_secret");
        let jwt_secret = match std::fs::read_to_string(&path) {
            Ok(s) if s.trim().len() >= 32 => s.trim().to_string(),
            _ => {
                let secret = random_hex(32)?;
                std::fs::write(&path, &secret)
                    .with_context(|| format!("writing {}", path.display()))?;
                secret
            }
        };
        let api_key = |role: &str| -> Result<String> {
            // Supabase's legacy API keys: long-lived HS256 JWTs with only a role.
            sign(
                &jwt_secret,
                &json!({"iss": "supabase-local", "role": role, "iat": now(), "exp": now() + 10 * 365 * 86_400}),
            )
        };
        use base64::Engine as _;
        let mut hook_key = [0u8; 32];
        getrandom::getrandom(&mut hook_key).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        Ok(DevKeys {
            db_webhook_secret: random_hex(32)?,
            metrics_token: random_hex(32)?,
            auth_hook_secret: format!(
                "v1,whsec_{}",
                base64::engine::general_purpose::STANDARD.encode(hook_key)
            ),
            anon_key: api_key("anon")?,
            service_role_key: api_key("service_role")?,
            publishable_key: format!("sb_publishable_{}", random_hex(16)?),
            secret_key: format!("sb_secret_{}", random_hex(16)?),
            jwt_secret,
        })
    }

    /// The pair the Worker runs with: a hosted project created today has
    /// the opaque keys, so the local stacks run the edge with them; the
    /// legacy JWT keys stay accepted by the gateway (and by the tests that
    /// call REST directly).
    pub fn worker_keys(&self, scheme: KeyScheme) -> (&str, &str) {
        match scheme {
            KeyScheme::Opaque => (&self.publishable_key, &self.secret_key),
            KeyScheme::LegacyJwt => (&self.anon_key, &self.service_role_key),
        }
    }

    pub fn user_token(&self, profile: &Profile, user_id: &str, email: &str) -> Result<String> {
        let iat = now();
        sign(
            &self.jwt_secret,
            &json!({
                "iss": format!("{}/auth/v1", profile.supabase_url()),
                "aud": "authenticated",
                "role": "authenticated",
                "sub": user_id,
                "email": email,
                "phone": "",
                "app_metadata": {"provider": "email", "providers": ["email"]},
                "user_metadata": {},
                "aal": "aal1",
                "amr": [{"method": "password", "timestamp": iat}],
                "session_id": uuid_v4()?,
                "is_anonymous": false,
                "iat": iat,
                "exp": iat + 24 * 3600,
            }),
        )
    }
}

fn sign(secret: &str, claims: &serde_json::Value) -> Result<String> {
    encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .context("signing a JWT")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::getrandom(&mut buf).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(hex::encode(buf))
}

pub fn uuid_v4() -> Result<String> {
    Ok(uuid::Uuid::new_v4().to_string())
}

impl DemoUser {
    pub const EMAIL: &'static str = "demo@cyberdevstudio.local";
}
