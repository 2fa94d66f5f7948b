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

/// Secrets and plain vars are both string bindings; either may hold a value.
fn lookup(env: &Env, name: &str) -> Option<String> {
    env.secret(name)
        .map(|s| s.to_string())
        .or_else(|_| env.var(name).map(|v| v.to_string()))
        .ok()
}
