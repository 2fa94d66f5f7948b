//! The CyberDevStudio Worker: the wasm entry points, and nothing else.
//!
//! Each entry point hands over to a module at once; decisions live in the
//! `shared` crate, so this crate stays glue: reading requests, calling `fetch`,
//! writing responses.

mod app;
mod assets;
mod caller;
mod env_config;
mod handlers;
mod incoming;
mod jit_mirror;
mod js_await;
mod queue_producer;
mod rate_limit;
mod respond;
mod rest;
mod rpc;
mod scheduled;
mod telemetry;
mod usage_queue;
mod webcrypto;

use worker::{event, web_sys, Context, Env, ScheduleContext, ScheduledEvent};

/// Takes workerd's request and gives back its response as they are: the
/// edge reads one (`incoming::Request`) and writes the other
/// (`respond::Response`) in one call each, not through `worker`'s wrappers.
///
/// Exported by hand rather than with `#[event(fetch)]`, whose export runs
/// the handler on `wasm_bindgen_futures`' executor: [`js_await::spawn_promise`]
/// polls the request's future when one of its promises settles, without a
/// `queueMicrotask` per wake-up. A failure to build the response rejects
/// the promise (workerd answers 500), logged.
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn fetch(req: web_sys::Request, env: Env, ctx: worker::worker_sys::Context) -> js_sys::Promise {
    js_await::spawn_promise(async move {
        let req = incoming::Request::new(req);
        let ctx = Context::new(ctx);
        match app::handle(req, env, ctx).await.into_js() {
            Ok(response) => Ok(response.into()),
            Err(e) => {
                worker::console_error!("Error converting response: {e:?}");
                Err(e)
            }
        }
    })
}

#[event(scheduled)]
async fn scheduled(event: ScheduledEvent, env: Env, ctx: ScheduleContext) {
    scheduled::run(event, env, ctx).await;
}

/// The queue consumer's export, written out instead of `#[event(queue)]`:
/// the consumer needs workerd's own batch object (see
/// `usage_queue::consume`), and it never fails, so the macro's error path
/// has nothing to do.
#[wasm_bindgen::prelude::wasm_bindgen]
pub async fn queue(
    batch: worker::worker_sys::MessageBatch,
    env: Env,
    ctx: worker::worker_sys::Context,
) -> std::result::Result<wasm_bindgen::JsValue, wasm_bindgen::JsValue> {
    usage_queue::consume(batch, env, Context::new(ctx)).await;
    Ok(wasm_bindgen::JsValue::UNDEFINED)
}
