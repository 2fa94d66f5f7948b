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

use js_sys::{Promise, Reflect};
use shared::rate_limit::{Charge, Limiter};
use shared::ApiError;
use std::cell::OnceCell;
use wasm_bindgen::prelude::*;
use worker::Env;

#[wasm_bindgen(module = "/js/limit.js")]
extern "C" {
    /// `binding.limit({key})`'s `success`: a promise of a boolean, rejected
    /// when the call or its outcome is not what the binding promises.
    #[wasm_bindgen(js_name = chargeLimiter)]
    fn charge_limiter(binding: &JsValue, key: &str) -> Promise;
}

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
    let Some(at) = Limiter::ALL.iter().position(|l| *l == limiter) else {
        return false;
    };
    BINDINGS.with(|cell| cell.get().is_some_and(|b| b.0[at].is_some()))
}

/// Starts the charge on `limiter`'s binding; `None` when it is not bound.
fn start_charge(limiter: Limiter, key: &str) -> Option<Promise> {
    let at = Limiter::ALL.iter().position(|l| *l == limiter)?;
    BINDINGS.with(|cell| {
        let binding = cell.get()?.0[at].as_ref()?;
        Some(charge_limiter(binding, key))
    })
}

/// Charges one request: `Ok` when under the limit, the coded 429 when over.
pub async fn charge(charge: &Charge) -> Result<(), ApiError> {
    let Some(verdict) = start_charge(charge.limiter, &charge.key) else {
        return Err(ApiError::Misconfigured {
            detail: format!(
                "the rate limiting binding {} is not bound: declare it under [[ratelimits]] \
                 in wrangler.toml and deploy",
                charge.limiter.binding()
            ),
        });
    };
    // One call into JavaScript (`js/limit.js`) rather than `Reflect` steps,
    // and not `worker::RateLimiter`, whose options and outcome go through
    // serde-wasm-bindgen, kilobytes of wasm the Worker otherwise does without.
    match crate::js_await::settled(&verdict)
        .await
        .map(|v| v.as_bool())
    {
        Ok(Some(true)) => Ok(()),
        Ok(Some(false)) => Err(charge.refusal()),
        Ok(None) => {
            worker::console_error!(
                "rate limiter {} answered no verdict, request let through",
                charge.limiter.binding()
            );
            Ok(())
        }
        Err(e) => {
            worker::console_error!(
                "rate limiter {} failed, request let through: {e:?}",
                charge.limiter.binding()
            );
            Ok(())
        }
    }
}
