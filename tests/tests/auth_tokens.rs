//! Access tokens at the edge, end to end: `GET /v1/me` through workerd says
//! who the caller is, or refuses with 401 and a stable code.
//!
//! HS256 tokens are minted with `jsonwebtoken` and the project's JWT secret;
//! ES256 and RS256 keys are generated and tokens signed by npm `jose`
//! (tests/js/reference.mjs), and published through the local stack's JWKS
//! endpoint, so the Worker's verifier is checked against code we did not write.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use e2e_tests::reference::KeyPair;
use e2e_tests::tokens::{
    assemble, b64, demo_claims, hs256, jwks_refetch_floor, publish_jwks, sign, with,
};
use e2e_tests::{
    assert_unauthorized, env, eventually, me, me_with_header, now, random_uuid, Answer,
};
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// The tests below that publish keys share one JWKS file (and the Worker's
/// one key cache), so they take turns.
static JWKS: Mutex<()> = Mutex::new(());

fn jwks_turn() -> MutexGuard<'static, ()> {
    // A failed test poisons the lock; the next one still gets its turn.
    JWKS.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How long a newly published key may take to be picked up: the Worker
/// refetches on an unknown `kid` at most once per floor.
fn key_pickup() -> Duration {
    jwks_refetch_floor() + Duration::from_secs(5)
}

fn assert_is_demo_user(answer: &Answer, case: &str) {
    assert_eq!(answer.status, 200, "{case}: {}", answer.body);
    let body = answer.json();
    assert_eq!(body["user_id"], env("CDS_DEMO_USER_ID"), "{case}: {body}");
    assert_eq!(body["via"], "access_token", "{case}: {body}");
    assert_eq!(body["role"], "authenticated", "{case}: {body}");
}

/// Waits until the Worker accepts `token` (it may still hold an older key
/// set for up to the refetch floor).
fn eventually_accepted(token: &str, case: &str) {
    eventually(key_pickup(), || {
        let answer = me(token);
        if answer.status == 200 {
            assert_is_demo_user(&answer, case);
            Ok(())
        } else {
            Err(format!("{case}: {} {}", answer.status, answer.body))
        }
    })
}

#[test]
fn the_demo_users_hs256_token_is_accepted() {
    let answer = me(&env("CDS_DEMO_USER_TOKEN"));
    assert_is_demo_user(&answer, "demo token");
    assert!(answer.json()["email"]
        .as_str()
        .is_some_and(|e| e.contains('@')));
    assert_eq!(answer.json()["is_anonymous"], false);
}

#[test]
fn a_freshly_minted_hs256_token_is_accepted() {
    let claims = with(demo_claims(), json!({"email": "minted@example.com"}));
    let answer = me(&hs256(&claims));
    assert_is_demo_user(&answer, "minted HS256");
    assert_eq!(answer.json()["email"], "minted@example.com");
}

#[test]
fn a_request_without_a_bearer_token_is_refused_with_missing_token() {
    let token = hs256(&demo_claims());
    let cases = [
        ("no Authorization header", None),
        ("Basic scheme", Some("Basic dXNlcjpwYXNz".to_string())),
        ("Bearer and nothing", Some("Bearer".to_string())),
        ("a token without a scheme", Some(token)),
    ];
    for (case, header) in cases {
        let answer = me_with_header(header.as_deref());
        assert_eq!(
            answer.refusal(),
            (401, "missing_token".into()),
            "{case}: {}",
            answer.body
        );
    }
}

#[test]
fn malformed_tokens_are_refused_with_malformed_token() {
    let valid = hs256(&demo_claims());
    let parts: Vec<&str> = valid.split('.').collect();
    let tokens = [
        ("one part", "abc".to_string()),
        ("two parts", format!("{}.{}", parts[0], parts[1])),
        ("four parts", format!("{valid}.x")),
        (
            "header not base64",
            format!("!!!.{}.{}", parts[1], parts[2]),
        ),
        ("claims not base64", format!("{}.*.{}", parts[0], parts[2])),
        // 43 characters less two leaves 41, a length (1 mod 4) that no
        // base64 encoding has. Less one (42) would still decode whenever the
        // last kept character's spare bits happen to be zero: 1 run in 16.
        (
            "signature cut mid-character",
            format!(
                "{}.{}.{}",
                parts[0],
                parts[1],
                &parts[2][..parts[2].len() - 2]
            ),
        ),
        (
            "header not JSON",
            format!("{}.{}.{}", b64(b"nope"), parts[1], parts[2]),
        ),
    ];
    let cases: Vec<_> = tokens
        .iter()
        .map(|(case, token)| (*case, me(token), "malformed_token"))
        .collect();
    assert_unauthorized(&cases);
}

#[test]
fn tokens_whose_signature_does_not_verify_are_refused_with_invalid_signature() {
    let valid = hs256(&demo_claims());
    let (signed, signature) = valid.rsplit_once('.').unwrap();
    let header = valid.split('.').next().unwrap();
    let signature_bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
    let elevated = b64(with(demo_claims(), json!({"role": "service_role"}))
        .to_string()
        .as_bytes());
    let tokens = [
        // Still valid base64, but 29 bytes where HMAC-SHA256 gives 32.
        (
            "signature truncated by three bytes",
            format!("{signed}.{}", b64(&signature_bytes[..29])),
        ),
        ("signature empty", format!("{signed}.")),
        (
            "claims tampered after signing",
            format!("{header}.{elevated}.{signature}"),
        ),
        (
            "signed with another secret",
            sign(
                Algorithm::HS256,
                None,
                b"not-the-project-secret-but-32-bytes-long",
                &demo_claims(),
            ),
        ),
    ];
    let cases: Vec<_> = tokens
        .iter()
        .map(|(case, token)| (*case, me(token), "invalid_signature"))
        .collect();
    assert_unauthorized(&cases);
}

#[test]
fn tokens_whose_claims_do_not_hold_are_refused_with_the_failed_rule() {
    // The verifier tolerates 30 s of clock skew; these are well past it.
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "expired",
            json!({"exp": now() - 120, "iat": now() - 3720}),
            "token_expired",
        ),
        ("no exp", json!({"exp": null}), "missing_expiry"),
        (
            "nbf in the future",
            json!({"nbf": now() + 600}),
            "token_not_yet_valid",
        ),
        ("aud anon", json!({"aud": "anon"}), "wrong_audience"),
        ("no aud", json!({"aud": null}), "wrong_audience"),
        (
            "iss another project",
            json!({"iss": "https://evil.supabase.co/auth/v1"}),
            "wrong_issuer",
        ),
        ("no iss", json!({"iss": null}), "wrong_issuer"),
        ("sub not a UUID", json!({"sub": "admin"}), "invalid_subject"),
        ("no sub", json!({"sub": null}), "invalid_subject"),
        ("role postgres", json!({"role": "postgres"}), "invalid_role"),
    ];
    let answers: Vec<_> = cases
        .iter()
        .map(|(case, changes, code)| {
            (
                *case,
                me(&hs256(&with(demo_claims(), changes.clone()))),
                *code,
            )
        })
        .collect();
    assert_unauthorized(&answers);
}

#[test]
fn algorithms_other_than_hs256_es256_rs256_are_refused_with_unsupported_algorithm() {
    let secret = env("CDS_JWT_SECRET");
    let claims = demo_claims();
    let tokens = [
        (
            "alg none, no signature",
            assemble(&json!({"alg": "none", "typ": "JWT"}), &claims, ""),
        ),
        (
            "alg None, some signature",
            assemble(&json!({"alg": "None", "typ": "JWT"}), &claims, "c2ln"),
        ),
        (
            "HS512 with the project secret",
            sign(Algorithm::HS512, None, secret.as_bytes(), &claims),
        ),
        (
            "HS384 with the project secret",
            sign(Algorithm::HS384, None, secret.as_bytes(), &claims),
        ),
    ];
    let cases: Vec<_> = tokens
        .iter()
        .map(|(case, token)| (*case, me(token), "unsupported_algorithm"))
        .collect();
    assert_unauthorized(&cases);
}

#[test]
fn a_token_over_8_kib_is_refused_with_token_too_large() {
    // Validly signed, so only its size is wrong.
    let padded = with(
        demo_claims(),
        json!({"user_metadata": {"bio": "x".repeat(9 * 1024)}}),
    );
    let token = hs256(&padded);
    assert!(token.len() > 8 * 1024);
    assert_unauthorized(&[("9 KiB token", me(&token), "token_too_large")]);
    // Just under the limit is still judged on its merits.
    let fits = with(
        demo_claims(),
        json!({"user_metadata": {"bio": "x".repeat(5 * 1024)}}),
    );
    assert_is_demo_user(&me(&hs256(&fits)), "6-7 KiB token");
}

#[test]
fn tokens_for_the_anon_or_service_role_are_refused_with_user_required() {
    // Correctly signed, for our audience and issuer, but not a signed-in user.
    for role in ["anon", "service_role"] {
        let token = hs256(&with(demo_claims(), json!({"role": role})));
        assert_unauthorized(&[(role, me(&token), "user_required")]);
    }
}

#[test]
fn the_projects_anon_and_service_role_keys_are_not_user_tokens() {
    // Supabase's legacy API keys are HS256 JWTs with a role and no `aud`, so
    // the audience check refuses them before the role is looked at.
    assert_unauthorized(&[
        ("anon key", me(&env("CDS_ANON_KEY")), "wrong_audience"),
        (
            "service_role key",
            me(&env("CDS_SERVICE_ROLE_KEY")),
            "wrong_audience",
        ),
    ]);
}

// Asymmetric keys, published through the JWKS endpoint.

fn kid(label: &str) -> String {
    format!("e2e-{label}-{}", &random_uuid()[..8])
}

#[test]
fn es256_and_rs256_tokens_signed_with_published_keys_are_accepted() {
    let _turn = jwks_turn();
    let ec = KeyPair::generate("ES256", &kid("ec"));
    let rsa = KeyPair::generate("RS256", &kid("rsa"));
    publish_jwks(&[&ec.public_jwk, &rsa.public_jwk]);
    eventually_accepted(&ec.sign(&demo_claims()), "ES256 by jose");
    eventually_accepted(&rsa.sign(&demo_claims()), "RS256 by jose");
}

#[test]
fn asymmetric_tokens_that_do_not_match_a_published_key_are_refused() {
    let _turn = jwks_turn();
    let ec = KeyPair::generate("ES256", &kid("ec"));
    let rsa = KeyPair::generate("RS256", &kid("rsa"));
    let unpublished = KeyPair::generate("ES256", &kid("unpublished"));
    publish_jwks(&[&ec.public_jwk, &rsa.public_jwk]);
    // Once both keys are in the Worker's cache, every answer below is final.
    eventually_accepted(&ec.sign(&demo_claims()), "ES256");
    eventually_accepted(&rsa.sign(&demo_claims()), "RS256");

    let ec_token = ec.sign(&demo_claims());
    let (ec_header, rest) = ec_token.split_once('.').unwrap();
    let ec_signature = rest.rsplit_once('.').unwrap().1;
    let elevated = b64(with(demo_claims(), json!({"role": "service_role"}))
        .to_string()
        .as_bytes());
    let ec_public_bytes = ec.public_jwk.to_string();
    let rsa_public_bytes = rsa.public_jwk.to_string();
    let cases = [
        (
            "ES256 naming an unpublished kid",
            me(&unpublished.sign(&demo_claims())),
            "unknown_key_id",
        ),
        (
            "ES256 signed with another key under a published kid",
            me(&unpublished.sign_with_header(json!({"kid": ec.kid}), &demo_claims())),
            "invalid_signature",
        ),
        (
            "ES256 claims tampered after signing",
            me(&format!("{ec_header}.{elevated}.{ec_signature}")),
            "invalid_signature",
        ),
        (
            "ES256 without a kid",
            me(&ec.sign_with_header(json!({"typ": "JWT"}), &demo_claims())),
            "missing_key_id",
        ),
        (
            "ES256 naming the RSA key",
            me(&ec.sign_with_header(json!({"kid": rsa.kid}), &demo_claims())),
            "invalid_signature",
        ),
        (
            "RS256 naming the EC key",
            me(&rsa.sign_with_header(json!({"kid": ec.kid}), &demo_claims())),
            "invalid_signature",
        ),
        // The classic forgery: HMAC keyed with the public key, naming it. HS256
        // is only ever checked with the project secret, so it fails there.
        (
            "HS256 keyed with the EC public JWK, naming its kid",
            me(&sign(
                Algorithm::HS256,
                Some(&ec.kid),
                ec_public_bytes.as_bytes(),
                &demo_claims(),
            )),
            "invalid_signature",
        ),
        (
            "HS256 keyed with the RSA public JWK, naming its kid",
            me(&sign(
                Algorithm::HS256,
                Some(&rsa.kid),
                rsa_public_bytes.as_bytes(),
                &demo_claims(),
            )),
            "invalid_signature",
        ),
        (
            "ES256 expired",
            me(&ec.sign(&with(demo_claims(), json!({"exp": now() - 120})))),
            "token_expired",
        ),
        (
            "RS256 for another audience",
            me(&rsa.sign(&with(demo_claims(), json!({"aud": "anon"})))),
            "wrong_audience",
        ),
    ];
    assert_unauthorized(&cases);
}

/// `token` with its signature's bytes changed by `change` (base64url
/// decoded, changed, encoded again).
fn with_signature(token: &str, change: impl FnOnce(&mut Vec<u8>)) -> String {
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let mut signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    change(&mut signature);
    format!("{signed}.{}", b64(&signature))
}

/// The Worker checks ES256 and RS256 signatures with WebCrypto; whatever
/// goes wrong there (a signature that does not verify, one of the wrong
/// length or value range, a key WebCrypto cannot import) is answered like
/// any other bad signature, and a good token still passes afterwards.
#[test]
fn the_webcrypto_signature_step_fails_closed_with_invalid_signature() {
    let _turn = jwks_turn();
    let ec = KeyPair::generate("ES256", &kid("ec"));
    let rsa = KeyPair::generate("RS256", &kid("rsa"));
    // The EC key's point moved off the curve: well-formed as a JWK (32-byte
    // coordinates), refused by WebCrypto's import.
    let off_curve_kid = kid("off-curve");
    let mut off_curve = ec.public_jwk.clone();
    let mut y = URL_SAFE_NO_PAD
        .decode(off_curve["y"].as_str().unwrap())
        .unwrap();
    y[31] ^= 1;
    off_curve["y"] = b64(&y).into();
    off_curve["kid"] = off_curve_kid.clone().into();
    publish_jwks(&[&ec.public_jwk, &rsa.public_jwk, &off_curve]);
    eventually_accepted(&ec.sign(&demo_claims()), "ES256");
    eventually_accepted(&rsa.sign(&demo_claims()), "RS256");

    let es = ec.sign(&demo_claims());
    let rs = rsa.sign(&demo_claims());
    let rs_header = rs.split('.').next().unwrap();
    let rs_signature = rs.rsplit_once('.').unwrap().1;
    let elevated = b64(with(demo_claims(), json!({"role": "service_role"}))
        .to_string()
        .as_bytes());
    let cases = [
        (
            "ES256 signature with one bit flipped",
            me(&with_signature(&es, |s| s[10] ^= 0x01)),
            "invalid_signature",
        ),
        (
            "ES256 signature with r and s swapped",
            me(&with_signature(&es, |s| s.rotate_left(32))),
            "invalid_signature",
        ),
        (
            "ES256 signature of zeros (r = s = 0)",
            me(&with_signature(&es, |s| s.fill(0))),
            "invalid_signature",
        ),
        (
            "ES256 signature of 0xff (r, s past the group order)",
            me(&with_signature(&es, |s| s.fill(0xff))),
            "invalid_signature",
        ),
        (
            "ES256 signature one byte short",
            me(&with_signature(&es, |s| {
                s.pop();
            })),
            "invalid_signature",
        ),
        (
            "ES256 signature in DER instead of r || s",
            me(&with_signature(&es, |s| {
                let der = der_ecdsa_signature(s);
                *s = der;
            })),
            "invalid_signature",
        ),
        (
            "RS256 signature with one bit flipped",
            me(&with_signature(&rs, |s| s[100] ^= 0x80)),
            "invalid_signature",
        ),
        (
            "RS256 signature of 0xff (not below the modulus)",
            me(&with_signature(&rs, |s| s.fill(0xff))),
            "invalid_signature",
        ),
        (
            "RS256 signature one byte long",
            me(&with_signature(&rs, |s| s.truncate(1))),
            "invalid_signature",
        ),
        (
            "RS256 claims tampered after signing",
            me(&format!("{rs_header}.{elevated}.{rs_signature}")),
            "invalid_signature",
        ),
        (
            "RS256 token naming the EC key",
            me(&rsa.sign_with_header(json!({"kid": ec.kid}), &demo_claims())),
            "invalid_signature",
        ),
        (
            "ES256 token naming the RSA key",
            me(&ec.sign_with_header(json!({"kid": rsa.kid}), &demo_claims())),
            "invalid_signature",
        ),
        (
            "ES256 naming a key WebCrypto cannot import",
            me(&ec.sign_with_header(json!({"kid": off_curve_kid}), &demo_claims())),
            "invalid_signature",
        ),
        (
            "the same again, once the failed import is remembered",
            me(&ec.sign_with_header(json!({"kid": off_curve_kid}), &demo_claims())),
            "invalid_signature",
        ),
    ];
    assert_unauthorized(&cases);
    // None of that disturbed the keys the Worker imported.
    assert_is_demo_user(&me(&es), "ES256 after the refusals");
    assert_is_demo_user(&me(&rs), "RS256 after the refusals");
}

/// An ECDSA `r || s` signature re-encoded as ASN.1 DER (what OpenSSL
/// produces and JWS forbids).
fn der_ecdsa_signature(raw: &[u8]) -> Vec<u8> {
    let integer = |bytes: &[u8]| {
        let trimmed: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
        let mut value = if trimmed.first().is_some_and(|b| b & 0x80 != 0) {
            vec![0]
        } else {
            vec![]
        };
        value.extend(trimmed);
        let mut out = vec![0x02, value.len() as u8];
        out.extend(value);
        out
    };
    let mut body = integer(&raw[..32]);
    body.extend(integer(&raw[32..]));
    let mut out = vec![0x30, body.len() as u8];
    out.extend(body);
    out
}

#[test]
fn a_rotated_signing_key_is_picked_up_without_a_restart() {
    let _turn = jwks_turn();
    let first = KeyPair::generate("ES256", &kid("first"));
    publish_jwks(&[&first.public_jwk]);
    let first_token = first.sign(&demo_claims());
    eventually_accepted(&first_token, "first key");

    // Rotate, dropping the old key: the new kid is unknown to the Worker's
    // cache, so it refetches (no more often than the floor) and accepts.
    let second = KeyPair::generate("RS256", &kid("second"));
    publish_jwks(&[&second.public_jwk]);
    let second_token = second.sign(&demo_claims());
    eventually_accepted(&second_token, "second key, old one dropped");
    // The refetch that brought the new key dropped the old one.
    assert_unauthorized(&[(
        "token of the dropped key",
        me(&first_token),
        "unknown_key_id",
    )]);

    // Rotate again, keeping the current key beside the new one.
    let third = KeyPair::generate("ES256", &kid("third"));
    publish_jwks(&[&second.public_jwk, &third.public_jwk]);
    eventually_accepted(&third.sign(&demo_claims()), "third key, second kept");
    assert_is_demo_user(&me(&second_token), "second key, still published");
}
