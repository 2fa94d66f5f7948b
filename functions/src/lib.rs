//! The CyberDevStudio Worker: the wasm entry points and its allocator, and
//! nothing else.
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
mod queue_producer;
mod rate_limit;
mod respond;
mod rest;
mod rpc;
mod scheduled;
mod telemetry;
mod usage_queue;
mod webcrypto;

use worker::{event, web_sys, Context, Env, MessageBatch, Result, ScheduleContext, ScheduledEvent};

/// Takes workerd's request and gives back its response as they are: the
/// edge reads one (`incoming::Request`) and writes the other
/// (`respond::Response`) in one call each, not through `worker`'s wrappers.
#[event(fetch)]
async fn fetch(req: web_sys::Request, env: Env, ctx: Context) -> Result<web_sys::Response> {
    let req = incoming::Request::new(req);
    Ok(app::handle(req, env, ctx).await.into_js()?)
}

#[event(scheduled)]
async fn scheduled(event: ScheduledEvent, env: Env, ctx: ScheduleContext) {
    scheduled::run(event, env, ctx).await;
}

#[event(queue)]
async fn queue(batch: MessageBatch<serde_json::Value>, env: Env, ctx: Context) -> Result<()> {
    usage_queue::consume(batch, env, ctx).await;
    Ok(())
}

/// talc instead of std's `dlmalloc`: about 7 KB less wasm (3 KiB gzipped).
/// An isolate runs one thread, so its requests interleave only at awaits and
/// never inside an allocation, which is what talc's unsynchronised cell
/// assumes (a build with wasm threads would not use it). Freed chunks are
/// coalesced and reused, and the heap grows in place through `memory.grow`
/// like dlmalloc's, so many live allocations across concurrent requests do
/// not make it grow without bound.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();
