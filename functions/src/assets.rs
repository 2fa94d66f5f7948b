//! Files the Worker answers with but does not carry: the usage page's HTML
//! (`shared::page::INDEX_ASSET`) and the OpenAPI document
//! (`shared::openapi::ASSET`) are static assets (`web/dist`, written by
//! `cargo xtask build-worker`), read through the `[assets]` binding
//! (`ASSETS`). Compiled into the wasm they were about 60 KB of it; the
//! Worker still answers their routes itself (headers, rate limit, request
//! id), only the bytes come from the assets. `wrangler.toml` runs the Worker
//! first on their paths, so no request ever reaches the files directly.
//!
//! An isolate reads each once: its assets change only with a deployment,
//! which starts new isolates.

use shared::ApiError;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use worker::Env;

/// The `[assets]` binding's name in `wrangler.toml`.
pub const BINDING: &str = "ASSETS";

#[wasm_bindgen(module = "/js/assets.js")]
extern "C" {
    #[wasm_bindgen(js_name = fetchAsset, catch)]
    fn fetch_asset(env: &JsValue, binding: &str, path: &str) -> Result<js_sys::Promise, JsValue>;

    type AssetAnswer;

    #[wasm_bindgen(method, getter)]
    fn status(this: &AssetAnswer) -> u16;

    #[wasm_bindgen(method, getter)]
    fn body(this: &AssetAnswer) -> js_sys::Uint8Array;
}

/// The assets an isolate has read, by path.
type Read = Vec<(&'static str, Rc<[u8]>)>;

thread_local! {
    static READ: RefCell<Read> = const { RefCell::new(Vec::new()) };
}

/// The bytes of the asset at `path`. A missing binding or file is the
/// deployment's fault (500 `misconfigured`, naming the fix); a failed read
/// is the platform's (500 `internal`, logged).
pub async fn get(env: &Env, path: &'static str) -> Result<Rc<[u8]>, ApiError> {
    if let Some(bytes) = READ.with(|read| {
        read.borrow()
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, bytes)| bytes.clone())
    }) {
        return Ok(bytes);
    }
    let misconfigured = |what: String| ApiError::Misconfigured {
        detail: format!(
            "{what}: declare `[assets]` with binding = \"{BINDING}\" in wrangler.toml and \
             deploy with `cargo xtask build-worker` as the build command"
        ),
    };
    let answer = match fetch_asset(env.as_ref(), BINDING, path) {
        Ok(promise) => crate::js_await::settled(&promise).await,
        Err(e) => Err(e),
    };
    let answer = match answer {
        Ok(answer) if answer.is_null() => {
            return Err(misconfigured(format!("the {BINDING} binding is not bound")))
        }
        Ok(answer) => answer.unchecked_into::<AssetAnswer>(),
        Err(e) => {
            return Err(ApiError::Internal {
                detail: format!("reading the static asset {path} failed: {e:?}"),
            })
        }
    };
    if answer.status() != 200 {
        return Err(misconfigured(format!(
            "the static asset {path} answered {}",
            answer.status()
        )));
    }
    let bytes: Rc<[u8]> = answer.body().to_vec().into();
    READ.with(|read| read.borrow_mut().push((path, bytes.clone())));
    Ok(bytes)
}
