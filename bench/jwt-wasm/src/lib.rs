//! A Worker that times the edge's JWT verification inside workerd.
//!
//! It runs the Worker's own code: `shared::auth::Verifier` and the WebCrypto
//! signature step, compiled from `functions/src/webcrypto.rs` itself.
//! `cargo xtask bench` (figure 3) serves it with `workerd serve` (a config
//! `xtask/src/workerd_serve.rs` renders), sends the keys and tokens to `POST /setup` once, then
//! asks `GET /run?alg=ES256&n=N` to verify one token `n` times in one
//! request, and times those requests from outside (workerd's clock does not
//! advance during computation).

// The Worker's awaits of JavaScript promises, which `webcrypto` uses;
// its `js/await.js` reaches this crate through the `js` link beside
// Cargo.toml.
#[path = "../../../functions/src/js_await.rs"]
#[allow(dead_code)] // Only `settled` is used here; the fetch task is the Worker's.
mod js_await;
#[path = "../../../functions/src/webcrypto.rs"]
mod webcrypto;

use shared::auth::jwt::{AUTHENTICATED_AUDIENCE, DEFAULT_LEEWAY_SECS, DEFAULT_MAX_TOKEN_BYTES};
use shared::auth::{JwkSet, Role, Verifier, VerifierSettings};
use std::cell::RefCell;
use std::sync::Arc;
use worker::{event, Context, Env, Method, Request, Response, Result};

/// What `POST /setup` installs for the isolate's later requests.
struct Setup {
    verifier: Verifier,
    tokens: Vec<(String, String)>,
    sub: String,
    now: i64,
}

thread_local! {
    static SETUP: RefCell<Option<Arc<Setup>>> = const { RefCell::new(None) };
}

#[event(fetch)]
async fn fetch(mut req: Request, _env: Env, _ctx: Context) -> Result<Response> {
    let answer = match (req.method(), req.path().as_str()) {
        (Method::Post, "/setup") => setup(&req.text().await?).await,
        (Method::Get, "/run") => run(&req).await,
        _ => Err("unknown route".to_string()),
    };
    match answer {
        Ok(body) => Response::ok(body),
        Err(reason) => Response::error(reason, 500),
    }
}

/// Body: `{"secret", "jwks", "issuer", "sub", "now", "tokens": {"HS256": ..},
/// "forged": {"HS256": ..}}`. Every token must verify with the expected
/// subject and every forged one must be refused with `invalid_signature`, or
/// the harness would time something else than a verification.
async fn setup(body: &str) -> std::result::Result<String, String> {
    let doc: serde_json::Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
    let text = |name: &str| doc[name].as_str().map(str::to_string);
    let keys = JwkSet::parse(doc["jwks"].to_string().as_bytes()).map_err(|e| e.to_string())?;
    if keys.len() != 2 || keys.skipped() != 0 {
        return Err(format!(
            "JWKS: want 2 usable keys, got {} ({} skipped)",
            keys.len(),
            keys.skipped()
        ));
    }
    let settings = VerifierSettings {
        hs256_secret: text("secret"),
        issuers: vec![text("issuer").ok_or("no issuer")?],
        audience: AUTHENTICATED_AUDIENCE.to_string(),
        leeway_secs: DEFAULT_LEEWAY_SECS,
        max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
    };
    let tokens = |name: &str| -> Vec<(String, String)> {
        doc[name]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(alg, token)| Some((alg.clone(), token.as_str()?.to_string())))
            .collect()
    };
    let setup = Setup {
        verifier: Verifier::new(&settings, Arc::new(keys)),
        tokens: tokens("tokens"),
        sub: text("sub").ok_or("no sub")?,
        now: doc["now"].as_i64().ok_or("no now")?,
    };
    for (alg, _) in &setup.tokens {
        verify_n(&setup, alg, 1).await?;
    }
    for (alg, token) in tokens("forged") {
        match webcrypto::verify_token(&setup.verifier, &token, setup.now).await {
            Err(e) if e.code() == "invalid_signature" => {}
            other => return Err(format!("forged {alg} token: {other:?}")),
        }
    }
    SETUP.with(|cell| *cell.borrow_mut() = Some(Arc::new(setup)));
    Ok("ready".into())
}

/// `?alg=ES256&n=1000`: verifies that token `n` times (`n = 0` measures the
/// request alone).
async fn run(req: &Request) -> std::result::Result<String, String> {
    let url = req.url().map_err(|e| e.to_string())?;
    let param = |name: &str| {
        url.query_pairs()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    };
    let alg = param("alg").ok_or("no alg")?;
    let n: u32 = param("n")
        .and_then(|n| n.parse().ok())
        .ok_or("no n")?;
    let setup = SETUP
        .with(|cell| cell.borrow().clone())
        .ok_or("POST /setup first")?;
    verify_n(&setup, &alg, n).await?;
    Ok(n.to_string())
}

/// Verifies `alg`'s token `n` times, checking every result.
async fn verify_n(setup: &Setup, alg: &str, n: u32) -> std::result::Result<(), String> {
    let token = setup
        .tokens
        .iter()
        .find(|(name, _)| name == alg)
        .map(|(_, token)| token.as_str())
        .ok_or_else(|| format!("no {alg} token"))?;
    for _ in 0..n {
        let claims = webcrypto::verify_token(&setup.verifier, token, setup.now)
            .await
            .map_err(|e| format!("{alg}: {} ({e})", e.code()))?;
        if claims.sub != setup.sub || claims.role != Role::Authenticated {
            return Err(format!("{alg}: unexpected claims {claims:?}"));
        }
    }
    Ok(())
}
