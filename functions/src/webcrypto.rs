//! The signature step of JWT verification for ES256 and RS256, done by
//! WebCrypto (`crypto.subtle`), which workerd implements natively: the
//! Worker's wasm carries no elliptic-curve or big-number code, and a
//! verification costs a fraction of what the same check compiled to wasm
//! did. Everything else about a token (parsing, `alg`/`kid` rules, key
//! choice, claims) stays in `shared::auth::jwt`.
//!
//! Each JWKS key is imported once and kept as a `CryptoKey` for as long as
//! the isolate holds the same key set ([`shared::auth::JwksCache`] keeps its
//! `Arc` while a refetch brings the same keys); a new set drops them all.
//!
//! Fails closed: a key WebCrypto refuses to import, a `verify` that throws
//! or rejects, and a `false` verdict are all just "not verified", which
//! `Verifier::finish` answers as `invalid_signature`, like any other bad
//! signature.

use js_sys::{Array, Object, Promise, Reflect, Uint8Array};
use shared::auth::{
    AuthError, JwkSet, PublicKey, SignatureAlg, SignatureCheck, VerifiedClaims, Verifier,
};
use std::cell::RefCell;
use std::sync::Arc;
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    type SubtleCrypto;

    #[wasm_bindgen(thread_local_v2, js_namespace = crypto, js_name = subtle)]
    static SUBTLE: SubtleCrypto;

    #[wasm_bindgen(method, catch, js_name = importKey)]
    fn import_key(
        this: &SubtleCrypto,
        format: &str,
        key_data: &JsValue,
        algorithm: &JsValue,
        extractable: bool,
        usages: &Array,
    ) -> Result<Promise, JsValue>;

    #[wasm_bindgen(method, catch)]
    fn verify(
        this: &SubtleCrypto,
        algorithm: &JsValue,
        key: &JsValue,
        signature: &Uint8Array,
        data: &Uint8Array,
    ) -> Result<Promise, JsValue>;
}

/// The imported keys of one key set, by `kid`; `None` where the import
/// failed (retried only with the next key set).
struct ImportedKeys {
    set: Arc<JwkSet>,
    keys: Vec<(String, Option<JsValue>)>,
}

/// The algorithm dictionaries, built once per isolate.
struct Algorithms {
    es256_import: JsValue,
    es256_verify: JsValue,
    rs256: JsValue,
    verify_usage: Array,
}

thread_local! {
    static IMPORTED: RefCell<Option<ImportedKeys>> = const { RefCell::new(None) };
    static ALGORITHMS: Algorithms = Algorithms::new();
}

impl Algorithms {
    fn new() -> Self {
        Algorithms {
            es256_import: object(&[("name", "ECDSA".into()), ("namedCurve", "P-256".into())]),
            es256_verify: object(&[("name", "ECDSA".into()), ("hash", "SHA-256".into())]),
            rs256: object(&[
                ("name", "RSASSA-PKCS1-v1_5".into()),
                ("hash", "SHA-256".into()),
            ]),
            verify_usage: Array::of1(&"verify".into()),
        }
    }
}

fn object(members: &[(&str, JsValue)]) -> JsValue {
    let object = Object::new();
    for (name, value) in members {
        // Setting a member on a fresh plain object cannot fail.
        let _ = Reflect::set(&object, &(*name).into(), value);
    }
    object.into()
}

/// Verifies `token` at `now` (Unix seconds): the sans-I/O steps of
/// `shared::auth::jwt`, with an ES256/RS256 signature checked here between
/// them.
pub async fn verify_token(
    verifier: &Verifier,
    token: &str,
    now: i64,
) -> Result<VerifiedClaims, AuthError> {
    let pending = verifier.start(token)?;
    let verified = match pending.signature(verifier) {
        Some(check) => verify(&check, verifier.keys()).await,
        // HS256: `start` checked it already.
        None => false,
    };
    verifier.finish(pending, verified, now)
}

/// Whether the signature `check` describes is valid. `keys` is the set the
/// verifier chose the key from (the cache of imported keys follows it).
async fn verify(check: &SignatureCheck<'_>, keys: &Arc<JwkSet>) -> bool {
    let Some(key) = imported_key(check.kid, check.key, keys).await else {
        return false;
    };
    let algorithm = ALGORITHMS.with(|a| match check.alg {
        SignatureAlg::Es256 => a.es256_verify.clone(),
        SignatureAlg::Rs256 => a.rs256.clone(),
    });
    // Copies: WebCrypto reads its inputs when called, but a view into wasm
    // memory would be invalidated if memory grew meanwhile.
    let signature = Uint8Array::from(check.signature);
    let data = Uint8Array::from(check.message);
    let Ok(promise) = SUBTLE.with(|subtle| subtle.verify(&algorithm, &key, &signature, &data))
    else {
        return false;
    };
    matches!(crate::js_await::settled(&promise).await, Ok(verdict) if verdict.as_bool() == Some(true))
}

/// The `CryptoKey` for `kid`, imported on first use with this key set.
async fn imported_key(kid: &str, key: &PublicKey, keys: &Arc<JwkSet>) -> Option<JsValue> {
    let cached = IMPORTED.with(|cell| {
        let mut slot = cell.borrow_mut();
        if !slot
            .as_ref()
            .is_some_and(|held| Arc::ptr_eq(&held.set, keys))
        {
            *slot = Some(ImportedKeys {
                set: Arc::clone(keys),
                keys: Vec::new(),
            });
        }
        slot.as_ref()
            .and_then(|held| held.keys.iter().find(|(id, _)| id == kid))
            .map(|(_, key)| key.clone())
    });
    if let Some(cached) = cached {
        return cached;
    }
    let imported = import(key).await;
    if imported.is_none() {
        worker::console_warn!(
            "JWKS key {kid} could not be imported into WebCrypto; tokens naming it are refused"
        );
    }
    IMPORTED.with(|cell| {
        if let Some(held) = cell.borrow_mut().as_mut() {
            // Another request may have imported it meanwhile, or the set may
            // have changed: keep the cache for the set it describes.
            if Arc::ptr_eq(&held.set, keys) && !held.keys.iter().any(|(id, _)| id == kid) {
                held.keys.push((kid.to_string(), imported.clone()));
            }
        }
    });
    imported
}

async fn import(key: &PublicKey) -> Option<JsValue> {
    let b64 = |bytes: &[u8]| -> JsValue { shared::auth::jwks::base64url(bytes).into() };
    let (jwk, algorithm) = ALGORITHMS.with(|a| match key {
        PublicKey::Es256 { x, y } => (
            object(&[
                ("kty", "EC".into()),
                ("crv", "P-256".into()),
                ("x", b64(x)),
                ("y", b64(y)),
            ]),
            a.es256_import.clone(),
        ),
        PublicKey::Rs256 { n, e } => (
            object(&[("kty", "RSA".into()), ("n", b64(n)), ("e", b64(e))]),
            a.rs256.clone(),
        ),
    });
    let usages = ALGORITHMS.with(|a| a.verify_usage.clone());
    let promise = SUBTLE
        .with(|subtle| subtle.import_key("jwk", &jwk, &algorithm, false, &usages))
        .ok()?;
    crate::js_await::settled(&promise).await.ok()
}
