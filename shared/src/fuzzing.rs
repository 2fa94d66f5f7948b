//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz, libFuzzer) and
//! for the short smoke run `cargo test` does on every build. Each one feeds
//! arbitrary bytes to something the edge parses from callers and checks what
//! must hold for every input: no panic, every refusal a 4xx with a stable
//! code, and an acceptance only when the checks really held.
//!
//! Compiled for tests and with the `fuzzing` feature only; the Worker never
//! contains it.

use crate::auth::jwt::{AUTHENTICATED_AUDIENCE, DEFAULT_LEEWAY_SECS, DEFAULT_MAX_TOKEN_BYTES};
use crate::auth::webhook::{self, WebhookHeaders, WebhookSecret, WebhookSecrets};
use crate::auth::{bearer_token, ApiKey, JwkSet, Verifier, VerifierSettings};
use crate::config::UserRole;
use crate::hooks::{BeforeUserCreated, MirrorUser, SignupPolicy};
use crate::models::{model_name_from_segment, ModelPut};
use crate::usage::{
    parse_default_model, Grant, OverviewQuery, Reservation, UsageBatch, UsageEvent,
};
use crate::ApiError;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use p256::ecdsa::signature::Signer;
use serde_json::{json, Value};
use sha2::Sha256;
use std::sync::{Arc, OnceLock};

/// The time every input is judged at.
pub const NOW: i64 = 1_800_000_000;
const ISSUER: &str = "http://127.0.0.1:54321/auth/v1";
const HS256_SECRET: &str = "fuzzing-secret-fuzzing-secret-32b";
const ES256_KID: &str = "fuzz-es256";
/// A fixed scalar: these keys protect nothing, they let the fuzzer build
/// correctly signed tokens and so reach the claim checks.
const ES256_SCALAR: [u8; 32] = [7; 32];
/// Two secrets, as during a rotation; the fuzzer signs with the second, so
/// a correct signature must be found past a secret that does not match.
const WEBHOOK_SECRETS: &str = "v1,whsec_b2xkLWZ1enppbmctd2ViaG9vay1zZWNyZXQtMzJi|v1,whsec_ZnV6emluZy13ZWJob29rLXNlY3JldC0zMmJ5dGVzIQ==";
const WEBHOOK_SIGNING_SECRET: &str = "v1,whsec_ZnV6emluZy13ZWJob29rLXNlY3JldC0zMmJ5dGVzIQ==";

struct Keys {
    verifier: Verifier,
    es256: p256::ecdsa::SigningKey,
    webhook: WebhookSecrets,
    webhook_signer: WebhookSecret,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let es256 = p256::ecdsa::SigningKey::from_bytes(&ES256_SCALAR.into())
            .expect("a fixed valid P-256 scalar");
        let point = es256.verifying_key().to_encoded_point(false);
        let coordinate = |c: Option<&p256::FieldBytes>| {
            URL_SAFE_NO_PAD.encode(c.expect("an uncompressed point"))
        };
        let jwks = json!({"keys": [{
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": ES256_KID,
            "x": coordinate(point.x()), "y": coordinate(point.y()),
        }]});
        let set = JwkSet::parse(jwks.to_string().as_bytes()).expect("the fuzzing JWKS");
        let settings = VerifierSettings {
            hs256_secret: Some(HS256_SECRET.into()),
            issuers: vec![ISSUER.into()],
            audience: AUTHENTICATED_AUDIENCE.into(),
            leeway_secs: DEFAULT_LEEWAY_SECS,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
        };
        Keys {
            verifier: Verifier::new(&settings, Arc::new(set)),
            es256,
            webhook: WebhookSecrets::parse(WEBHOOK_SECRETS).expect("the fuzzing webhook secrets"),
            webhook_signer: WebhookSecret::parse(WEBHOOK_SIGNING_SECRET)
                .expect("the fuzzing webhook secret"),
        }
    })
}

/// Splits input into `n` parts at 0xFF bytes (which UTF-8 never contains),
/// so one byte string can carry several fields.
fn fields(data: &[u8], n: usize) -> Vec<&[u8]> {
    let mut parts: Vec<&[u8]> = data.splitn(n, |b| *b == 0xFF).collect();
    parts.resize(n, &[]);
    parts
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[track_caller]
fn assert_refusal(err: &ApiError) {
    assert!(
        (400..500).contains(&err.status()) && !err.code().is_empty(),
        "a refusal must be a coded 4xx, got {} {}",
        err.status(),
        err.code()
    );
}

/// JWT verification. The first byte picks how the rest is used: as a whole
/// token; as claims (and header) signed correctly with HS256 or ES256, so
/// the claim checks see arbitrary JSON; or as a bearer header and API key.
pub fn jwt(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 4 == 3 {
        let header = text(rest);
        if let Ok(token) = bearer_token(Some(&header)) {
            let _ = ApiKey::parse(token);
        }
        let _ = ApiKey::parse(&header);
        return;
    }
    let token = token_for(mode, rest);
    match keys().verifier.verify(&token, NOW) {
        Ok(claims) => {
            // Accepted only when every rule held.
            assert!(
                claims.exp + DEFAULT_LEEWAY_SECS >= NOW,
                "expired token accepted"
            );
            assert_eq!(claims.sub.len(), 36, "a non-UUID subject accepted");
            assert!(token.len() <= DEFAULT_MAX_TOKEN_BYTES);
        }
        Err(e) => assert!(!e.code().is_empty()),
    }
}

/// Mode 0: the bytes are the token. Modes 1 and 2: header and claims
/// (0xFF-separated; an empty header is the usual one), signed correctly with
/// HS256 or ES256.
fn token_for(mode: u8, rest: &[u8]) -> String {
    let keys = keys();
    match mode % 4 {
        1 | 2 => {
            let [header, claims] = fields(rest, 2)[..] else {
                unreachable!("fields always returns two parts")
            };
            let header = if header.is_empty() {
                if mode % 4 == 1 {
                    json!({"alg": "HS256", "typ": "JWT"})
                        .to_string()
                        .into_bytes()
                } else {
                    json!({"alg": "ES256", "kid": ES256_KID})
                        .to_string()
                        .into_bytes()
                }
            } else {
                header.to_vec()
            };
            let signing_input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(&header),
                URL_SAFE_NO_PAD.encode(claims)
            );
            let signature = if mode % 4 == 1 {
                let mut mac = Hmac::<Sha256>::new_from_slice(HS256_SECRET.as_bytes())
                    .expect("HMAC takes any key length");
                mac.update(signing_input.as_bytes());
                mac.finalize().into_bytes().to_vec()
            } else {
                let signature: p256::ecdsa::Signature = keys.es256.sign(signing_input.as_bytes());
                signature.to_bytes().to_vec()
            };
            format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
        }
        _ => text(rest),
    }
}

/// Standard Webhooks verification: id, timestamp, signature and body as
/// fuzzed fields. With the first byte odd, the signature is computed
/// correctly over the fuzzed id, timestamp and body with the second of two
/// configured secrets, and the fuzzed signature field is put beside it
/// (", "-separated, as Supabase Auth writes several); it must verify exactly
/// when the timestamp is a canonical number within the tolerance.
pub fn standard_webhook(data: &[u8]) {
    let keys = keys();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let [id, timestamp, signature, body] = fields(rest, 4)[..] else {
        return;
    };
    let (id, timestamp) = (text(id), text(timestamp));
    let signature = if mode % 2 == 1 {
        match keys
            .webhook_signer
            .sign(&id, timestamp.parse().unwrap_or(NOW), body)
        {
            Ok(signed) if signature.is_empty() => signed,
            Ok(signed) => format!("{}, {signed}", text(signature)),
            Err(_) => return,
        }
    } else {
        text(signature)
    };
    let headers = WebhookHeaders {
        id: Some(&id),
        timestamp: Some(&timestamp),
        signature: Some(&signature),
    };
    let verdict = webhook::verify(&keys.webhook, headers, body, NOW);
    if mode % 2 == 1 {
        // A sender writes the number as itself: no sign, no leading zeros.
        let canonical = timestamp
            .parse::<i64>()
            .is_ok_and(|t| t.to_string() == timestamp && (t - NOW).abs() <= 300);
        // Header values arrive without surrounding whitespace (HTTP strips
        // it, and verify trims as HTTP would), so an id carrying some was
        // signed over bytes no real sender would send.
        let id_as_sent = !id.is_empty() && id.trim() == id;
        if canonical && id_as_sent {
            assert_eq!(verdict, Ok(()), "a correctly signed webhook was refused");
        }
    }
    // Never accepted with a signature the fuzzer made up (it cannot forge
    // HMAC-SHA256); the odd modes signed correctly on purpose.
    if mode % 2 == 0 && verdict.is_ok() {
        let forged_base64 = webhook::v1_signatures(&signature).any(|s| STANDARD.decode(s).is_ok());
        assert!(forged_base64, "accepted without any v1 signature");
    }
}

/// The usage API's request bodies and query strings, and the other JSON
/// bodies callers send.
pub fn usage_request(data: &[u8]) {
    let [body, header] = fields(data, 2)[..] else {
        return;
    };
    let header = text(header);
    let header = (!header.is_empty()).then_some(header.as_str());
    let query = crate::http::query_pairs(&format!("http://edge/v1/usage/overview?{}", text(body)));
    if let Err(e) = OverviewQuery::parse(&query) {
        assert_refusal(&e);
    }
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    match UsageEvent::parse(&value, header) {
        Ok(event) => {
            assert!(!event.model.is_empty() && !event.idempotency_key.is_empty());
            assert!(!event.model.contains('\0') && !event.idempotency_key.contains('\0'));
            // The call a parsed event makes always serializes.
            assert!(crate::rpc::arguments(&event.rpc(crate::rpc::ActingFor::TOKEN)).is_ok());
        }
        Err(e) => assert_refusal(&e),
    }
    match UsageBatch::parse(&value) {
        Ok(batch) => {
            for item in &batch.items {
                if let Err(e) = item {
                    assert_refusal(e);
                }
            }
        }
        Err(e) => assert_refusal(&e),
    }
    if let Err(e) = Reservation::parse(&value) {
        assert_refusal(&e);
    }
    if let Err(e) = Grant::parse(&value, header) {
        assert_refusal(&e);
    }
    if let Err(e) = parse_default_model(&value) {
        assert_refusal(&e);
    }
    // The header field stands for the `{name}` segment of an admin model path.
    let name = header.unwrap_or("m");
    match ModelPut::parse(name, &value) {
        Ok(model) => {
            assert!(!model.name.is_empty() && !model.provider.is_empty());
            assert!(model.context_size >= 1);
            assert!(crate::rpc::arguments(&model.rpc()).is_ok());
        }
        Err(e) => assert_refusal(&e),
    }
    if let Err(e) = model_name_from_segment(name) {
        assert_refusal(&e);
    }
    if let Err(e) = crate::auth::api_key::NewApiKey::parse(value) {
        assert_refusal(&e);
    }
}

/// Supabase Auth's payloads: the before-user-created hook and the
/// `auth.users` Database Webhook.
pub fn webhook_payload(data: &[u8]) {
    match BeforeUserCreated::parse(data) {
        Ok(payload) => {
            let policy =
                SignupPolicy::from_lists(Some(""), Some("mailinator.com")).expect("a valid policy");
            let _ = policy.decide(&payload).body();
        }
        Err(e) => assert_refusal(&e),
    }
    match MirrorUser::from_webhook(data, UserRole::Developer) {
        Ok(user) => assert!(!user.username.contains('\0')),
        Err(e) => assert_refusal(&e),
    }
}

#[cfg(test)]
mod smoke {
    //! A few seconds of the fuzz targets on every `cargo test`: seeds that
    //! reach deep (valid tokens, webhooks and bodies) and deterministic
    //! mutations of them. The real runs are `cargo xtask fuzz`.
    use super::*;

    /// xorshift64*: deterministic, so a failure here reproduces.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
        let mut out = seed.to_vec();
        for _ in 0..=rng.below(4) {
            let at = rng.below(out.len() + 1);
            match rng.below(5) {
                0 if at < out.len() => out[at] = rng.next() as u8,
                1 if at < out.len() => {
                    out.remove(at);
                }
                2 => out.insert(at, rng.next() as u8),
                3 => out.truncate(at),
                _ => {
                    let interesting: &[&[u8]] = &[
                        b"\0", b"\xFF", b"\"", b"{", b"[", b"-1", b"1e400", b"null", b"\\u0000",
                    ];
                    let piece = interesting[rng.below(interesting.len())];
                    out.splice(at..at, piece.iter().copied());
                }
            }
        }
        out
    }

    fn run(target: fn(&[u8]), seeds: &[Vec<u8>], rounds: usize) {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for seed in seeds {
            target(seed);
        }
        for _ in 0..rounds {
            let seed = &seeds[rng.below(seeds.len())];
            target(&mutate(&mut rng, seed));
        }
    }

    fn with(mode: u8, parts: &[&[u8]]) -> Vec<u8> {
        let mut out = vec![mode];
        out.extend(parts.join(&0xFF));
        out
    }

    #[test]
    fn jwt_target() {
        let claims = json!({"sub": "00000000-0000-4000-8000-000000000001", "role": "authenticated",
            "aud": "authenticated", "iss": ISSUER, "exp": NOW + 600})
        .to_string();
        let seeds = vec![
            with(1, &[b"", claims.as_bytes()]),
            with(2, &[b"", claims.as_bytes()]),
            with(0, &[b"eyJhbGciOiJub25lIn0.e30."]),
            with(3, &[b"Bearer cds_abcdefgh_0123456789abcdef"]),
        ];
        // The signed seeds must really be accepted, or mutating them would
        // not reach the claim checks.
        for mode in [1u8, 2] {
            let token = token_for(mode, &with(mode, &[b"", claims.as_bytes()])[1..]);
            assert!(keys().verifier.verify(&token, NOW).is_ok(), "mode {mode}");
        }
        run(jwt, &seeds, 3_000);
    }

    #[test]
    fn standard_webhook_target() {
        let now = NOW.to_string();
        let seeds = vec![
            with(1, &[b"msg_1", now.as_bytes(), b"", br#"{"user":{}}"#]),
            with(0, &[b"msg_1", now.as_bytes(), b"v1,AAAA", b"{}"]),
            // A stranger's entry before the real one.
            with(1, &[b"msg_1", now.as_bytes(), b"v1,AAAA", b"{}"]),
            // Found by cargo-fuzz: an id with surrounding whitespace, which
            // verify trims as HTTP does; not a refusal of a real webhook.
            with(1, &[b"\r\r\tmsg", now.as_bytes(), b"", b""]),
            // And a timestamp with leading zeros, which verify refuses (it
            // reads at most 12 digits) and no sender writes.
            with(1, &[b"msg", b"00000000000000001800000001", b"", b""]),
        ];
        run(standard_webhook, &seeds, 3_000);
    }

    #[test]
    fn usage_request_target() {
        let seeds = vec![
            br#"{"model":"gpt-4o-mini","prompt_tokens":1,"completion_tokens":2,"idempotency_key":"k"}"#.to_vec(),
            br#"{"events":[{"model":"m","prompt_tokens":1,"completion_tokens":1,"idempotency_key":"a"}]}"#.to_vec(),
            br#"{"tokens":100,"ttl_seconds":60}"#.to_vec(),
            br#"{"user_id":"00000000-0000-4000-8000-000000000001","amount":5,"reason":"r"}"#.to_vec(),
            br#"{"name":"k","scopes":["usage:write"],"expires_at":"2030-01-01T00:00:00Z"}"#.to_vec(),
            b"from=2026-01-01&to=2026-01-31".to_vec(),
            [
                br#"{"provider":"acme","context_size":8192,"input_cost_per_1k_tokens":0.00015,"output_cost_per_1k_tokens":6e-4}"#.as_slice(),
                b"acme%2Fchat-1",
            ]
            .join(&0xFF),
        ];
        run(usage_request, &seeds, 5_000);
    }

    #[test]
    fn webhook_payload_target() {
        let seeds = vec![
            br#"{"metadata":{"name":"before-user-created"},"user":{"id":"00000000-0000-4000-8000-000000000001","email":"a@b.c"}}"#.to_vec(),
            br#"{"type":"INSERT","table":"users","schema":"auth","record":{"id":"00000000-0000-4000-8000-000000000001","email":"a@b.c","raw_user_meta_data":{}},"old_record":null}"#.to_vec(),
        ];
        run(webhook_payload, &seeds, 3_000);
    }
}
