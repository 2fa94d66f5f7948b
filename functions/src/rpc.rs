//! Sends the typed calls of `shared::rpc` and reads their answers: the one
//! way handlers reach a SQL function.

use crate::rest;
use serde_json::Value;
use shared::postgrest::{Auth, Client, HttpCall};
use shared::rpc::Rpc;
use shared::{ApiError, Config};
use std::future::Future;

/// Calls `rpc` with `auth`'s authority; its answer as `R::Output`, or the
/// `ApiError` PostgREST's answer means. Only the arguments' serialization
/// and the answer's reading are per type: the sending is one function for
/// all (each `async fn` generic over the call would be a copy of it in the
/// wasm).
pub fn call<'a, R: Rpc>(
    config: &'a Config,
    rpc: &R,
    auth: Auth<'_>,
) -> impl Future<Output = Result<R::Output, ApiError>> + 'a {
    let sent = send(config, Client::new(config).rpc(rpc, auth));
    async move { shared::rpc::output::<R>(sent.await?) }
}

async fn send(config: &Config, call: Result<HttpCall, ApiError>) -> Result<Value, ApiError> {
    rest::rpc(&call?, config.rest_timeout_ms).await
}
