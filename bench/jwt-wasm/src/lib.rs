//! A harness that times `shared::auth::jwt::Verifier` inside wasm.
//!
//! `run.mjs` makes the keys and signs one token per algorithm with
//! `node:crypto`, then hands them to [`Bench::new`]; it times
//! [`Bench::verify_n`] with its own clock. The loop runs here, so one call
//! across the JS/wasm boundary covers `n` verifications and the figure is the
//! verifier's, not the boundary's.

use shared::auth::jwt::{DEFAULT_LEEWAY_SECS, DEFAULT_MAX_TOKEN_BYTES};
use shared::auth::{JwkSet, Role, Verifier, VerifierSettings};
use std::sync::Arc;
use wasm_bindgen::prelude::*;

/// A verifier configured as the Worker configures it for Supabase, and one
/// valid token per algorithm.
#[wasm_bindgen]
pub struct Bench {
    verifier: Verifier,
    hs256: String,
    es256: String,
    rs256: String,
    sub: String,
    now: i64,
}

#[wasm_bindgen]
impl Bench {
    /// Builds the verifier from the HS256 secret and a JWKS holding one ES256
    /// and one RS256 key, and checks each token verifies at `now` (seconds)
    /// with the expected subject, so a misconfigured run fails here rather
    /// than timing error paths.
    #[wasm_bindgen(constructor)]
    #[allow(clippy::too_many_arguments)] // One plain value per argument keeps the JS side obvious.
    pub fn new(
        hs256_secret: String,
        jwks_json: &str,
        issuer: String,
        hs256: String,
        es256: String,
        rs256: String,
        sub: String,
        now: i64,
    ) -> Result<Bench, JsError> {
        // `JwkSet::parse` is how the Worker reads the fetched JWKS; a key it
        // skips would leave one algorithm untested.
        let keys = JwkSet::parse(jwks_json.as_bytes())?;
        if keys.len() != 2 || keys.skipped() != 0 {
            return Err(JsError::new(&format!(
                "JWKS: want 2 usable keys, got {} ({} skipped)",
                keys.len(),
                keys.skipped()
            )));
        }
        // `VerifierSettings::from_config` needs a whole `Config`; these are the
        // values it sets.
        let settings = VerifierSettings {
            hs256_secret: Some(hs256_secret),
            issuer,
            audience: shared::auth::jwt::AUTHENTICATED_AUDIENCE.to_string(),
            leeway_secs: DEFAULT_LEEWAY_SECS,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
        };
        let bench = Bench {
            verifier: Verifier::new(&settings, Arc::new(keys)),
            hs256,
            es256,
            rs256,
            sub,
            now,
        };
        for alg in ["HS256", "ES256", "RS256"] {
            bench.verify_n(alg, 1)?;
        }
        Ok(bench)
    }

    /// Verifies the token for `alg` (`HS256`, `ES256` or `RS256`) `n` times.
    ///
    /// Every result is checked, so the work cannot be skipped and a refusal
    /// throws in JS (with the `AuthError` code) instead of being timed.
    pub fn verify_n(&self, alg: &str, n: u32) -> Result<(), JsError> {
        let token = match alg {
            "HS256" => &self.hs256,
            "ES256" => &self.es256,
            "RS256" => &self.rs256,
            _ => return Err(JsError::new(&format!("unknown algorithm {alg:?}"))),
        };
        for _ in 0..n {
            let claims = self
                .verifier
                .verify(token, self.now)
                .map_err(|e| JsError::new(&format!("{alg}: {} ({e})", e.code())))?;
            if claims.sub != self.sub || claims.role != Role::Authenticated {
                return Err(JsError::new(&format!(
                    "{alg}: unexpected claims {claims:?}"
                )));
            }
        }
        Ok(())
    }
}
