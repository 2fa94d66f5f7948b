//! Scripts in `tests/js/` run by Node.js from the repository root: each
//! prints what it saw as one JSON line, which the Rust test judges.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

/// The repository root, where `node_modules` is.
pub fn repo_root() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `node ARGS` with `envs` added to the environment and gives back the
/// JSON line it printed; panics with its output when it fails or prints
/// anything else.
pub fn run_script(args: &[&str], envs: &[(&str, &str)]) -> Value {
    let mut command = Command::new("node");
    command.args(args).current_dir(repo_root());
    for (name, value) in envs {
        command.env(name, value);
    }
    let output = command
        .output()
        .expect("node runs (Node.js 20+ with `npm ci` done)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "node failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("the script prints one JSON line ({e}): {stdout}"))
}
