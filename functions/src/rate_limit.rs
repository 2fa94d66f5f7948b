//! Charging a request to one of Cloudflare's rate limiting bindings; which
//! one and under which key is `shared::rate_limit`'s decision.
//!
//! The bindings are looked up once per isolate (an isolate's `Env` never
//! changes), so `caller` can charge a verified identity without the `Env`
//! being threaded through every handler.
//!
//! Failure modes, chosen apart:
//! - A binding missing from the deployment is our misconfiguration: every
//!   request that needs it answers the coded 500 `misconfigured` (the
//!   binding named in the log), loud rather than silently unbraked; the
//!   deep health check reports it too.
//! - A binding that is there but whose call fails (the limiter service
//!   hiccups) lets the request through, logged: the limiter is a brake,
//!   and failing every request for it would be the outage it guards against.

use js_sys::{Function, Object, Promise, Reflect};
use shared::rate_limit::{Charge, Limiter};
use shared::ApiError;
use std::cell::OnceCell;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use worker::Env;

/// The bindings, in `Limiter::ALL`'s order; `None` when not bound.
struct Bindings([Option<JsValue>; 3]);

thread_local! {
    static BINDINGS: OnceCell<Bindings> = const { OnceCell::new() };
}

/// Looks the bindings up; the first call in an isolate does, later ones
/// return at once.
pub fn bind(env: &Env) {
    BINDINGS.with(|cell| {
        cell.get_or_init(|| {
            Bindings(Limiter::ALL.map(|limiter| {
                Reflect::get(env.as_ref(), &JsValue::from_str(limiter.binding()))
                    .ok()
                    .filter(|b| b.is_object())
            }))
        });
    })
}

/// Whether `limiter`'s binding exists (for the deep health check).
pub fn is_bound(env: &Env, limiter: Limiter) -> bool {
    bind(env);
    binding(limiter).is_some()
}

fn binding(limiter: Limiter) -> Option<JsValue> {
    let at = Limiter::ALL.iter().position(|l| *l == limiter)?;
    BINDINGS.with(|cell| cell.get().and_then(|b| b.0[at].clone()))
}

/// Charges one request: `Ok` when under the limit, the coded 429 when over.
pub async fn charge(charge: &Charge) -> Result<(), ApiError> {
    let Some(limiter) = binding(charge.limiter) else {
        return Err(ApiError::Misconfigured {
            detail: format!(
                "the rate limiting binding {} is not bound: declare it under [[ratelimits]] \
                 in wrangler.toml and deploy",
                charge.limiter.binding()
            ),
        });
    };
    match call_limit(&limiter, &charge.key).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(charge.refusal()),
        Err(e) => {
            worker::console_error!(
                "rate limiter {} failed, request let through: {e:?}",
                charge.limiter.binding()
            );
            Ok(())
        }
    }
}

/// `binding.limit({key})` and its `success`. Through `Reflect` rather than
/// `worker::RateLimiter`, whose options and outcome go through
/// serde-wasm-bindgen, kilobytes of wasm the Worker otherwise does without.
async fn call_limit(limiter: &JsValue, key: &str) -> Result<bool, JsValue> {
    let limit: Function = Reflect::get(limiter, &JsValue::from_str("limit"))?.dyn_into()?;
    let options = Object::new();
    Reflect::set(&options, &JsValue::from_str("key"), &JsValue::from_str(key))?;
    let promise: Promise = limit.call1(limiter, &options)?.dyn_into()?;
    let outcome = JsFuture::from(promise).await?;
    Reflect::get(&outcome, &JsValue::from_str("success"))?
        .as_bool()
        .ok_or_else(|| JsValue::from_str("the outcome has no boolean `success`"))
}
