//! Reads [`shared::Config`] from the Worker's vars and secrets, once per isolate.

use shared::config::ConfigError;
use shared::Config;
use std::cell::OnceCell;
use std::rc::Rc;
use worker::Env;

thread_local! {
    // An isolate is single-threaded and its vars never change while it lives
    // (a changed secret means a new deployment and new isolates).
    static CONFIG: OnceCell<Rc<Config>> = const { OnceCell::new() };
}

/// The configuration, read on first use. An error names every missing
/// variable; it is not cached, so the next request reads again.
pub fn load(env: &Env) -> Result<Rc<Config>, ConfigError> {
    if let Some(config) = CONFIG.with(|c| c.get().cloned()) {
        return Ok(config);
    }
    let config = Rc::new(Config::from_lookup(|name| lookup(env, name))?);
    CONFIG.with(|c| {
        let _ = c.set(config.clone());
    });
    Ok(config)
}

/// Secrets and plain vars are both string bindings; either may hold a
/// value. Read as a plain property (`worker`'s `Env::secret` and `Env::var`
/// check the binding's type and format an error for each miss), and kept
/// out of line: `Config::from_lookup` calls it for every variable, and each
/// inlined copy cost the wasm a few hundred bytes.
#[inline(never)]
fn lookup(env: &Env, name: &str) -> Option<String> {
    js_sys::Reflect::get(env.as_ref(), &wasm_bindgen::JsValue::from_str(name))
        .ok()
        .and_then(|value| value.as_string())
}
