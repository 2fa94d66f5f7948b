//! The usage page (`web/`): its TypeScript types generated from the OpenAPI
//! document, its script and styles bundled by esbuild into `web/dist`, which
//! wrangler serves as the Worker's static assets (`[assets]`).

use crate::paths::repo_root;
use crate::proc::{run, run_visible};
use crate::tools::WorkerTools;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::Command;

/// The budget for the page's script, gzipped.
pub const SCRIPT_BUDGET_BYTES: usize = 120 * 1024;

/// Where the bundle goes: `web/dist` is the assets directory, and everything
/// in it sits under `/assets/`, so no asset can ever shadow an API path.
fn out_dir() -> PathBuf {
    repo_root().join("web/dist/assets")
}

/// `web/src/generated/openapi.d.ts` from `shared/src/openapi.json`, the
/// document the Worker serves, so a changed API changes the page's types.
pub fn generate_types(tools: &WorkerTools) -> Result<()> {
    let root = repo_root();
    run(Command::new(&tools.openapi_typescript)
        .arg(root.join("shared/src/openapi.json"))
        .arg("-o")
        .arg(root.join("web/src/generated/openapi.d.ts"))
        .current_dir(&root))
    .context("generating the page's API types with openapi-typescript")
}

/// Types generated, then the script and the stylesheet bundled and minified;
/// fails when the script is over its budget.
pub fn build(tools: &WorkerTools) -> Result<()> {
    eprintln!("==> building the usage page (web/, esbuild)");
    generate_types(tools)?;
    let root = repo_root();
    let out = out_dir();
    if out.exists() {
        std::fs::remove_dir_all(&out).with_context(|| format!("emptying {}", out.display()))?;
    }
    // `chart.js` is its own file (Chart.js, imported dynamically by the
    // page and preloaded by index.html), so the browser compiles it while
    // the page waits for the API; `--splitting` puts code both would share
    // in a chunk rather than twice.
    run(Command::new(&tools.esbuild)
        .args([
            "app=web/src/main.ts",
            "chart=web/src/chart.ts",
            "app=web/src/style.css",
        ])
        .args(["--bundle", "--minify", "--format=esm", "--target=es2022"])
        .args([
            "--splitting",
            "--entry-names=[name]",
            "--chunk-names=chunk-[hash]",
        ])
        .arg("--log-level=warning")
        .arg(format!("--outdir={}", out.display()))
        .current_dir(&root))
    .context("bundling the usage page with esbuild")?;
    // The budget holds for all the script the page loads, every file.
    let (mut raw, mut gzipped) = (0, 0);
    for entry in std::fs::read_dir(&out).with_context(|| format!("reading {}", out.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "js") {
            let (r, g) = crate::worker::wasm_size(&path)?;
            raw += r;
            gzipped += g;
        }
    }
    eprintln!(
        "    page script: {:.1} KiB raw, {:.1} KiB gzipped (budget {} KiB)",
        raw as f64 / 1024.0,
        gzipped as f64 / 1024.0,
        SCRIPT_BUDGET_BYTES / 1024
    );
    if gzipped > SCRIPT_BUDGET_BYTES {
        bail!(
            "the usage page's script is {gzipped} bytes gzipped, over its budget of {SCRIPT_BUDGET_BYTES}"
        );
    }
    Ok(())
}

/// `tsc --noEmit` over the page and the types generated from the current
/// document: a call the API no longer describes fails here.
pub fn typecheck(tools: &WorkerTools) -> Result<bool> {
    generate_types(tools)?;
    run_visible(
        Command::new(&tools.tsc)
            .args(["--noEmit", "-p", "web/tsconfig.json"])
            .current_dir(repo_root()),
    )
}

/// Debian's Chromium, which the browser test drives (playwright-core, from
/// npm, brings no browser of its own).
pub fn ensure_chromium() -> Result<PathBuf> {
    let path = PathBuf::from("/usr/bin/chromium");
    if !path.exists() {
        crate::tools::apt_install(&["chromium".to_string()])?;
    }
    if !path.exists() {
        bail!(
            "{} is still missing after installing chromium",
            path.display()
        );
    }
    Ok(path)
}
