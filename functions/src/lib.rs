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
