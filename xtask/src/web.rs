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

/// Where the bundle goes: `web/dist` is the assets directory, and the
/// page's script and styles sit under `/assets/`, so none can ever shadow an
/// API path.
fn out_dir() -> PathBuf {
    repo_root().join("web/dist/assets")
}

/// The files the Worker answers with but does not carry in its wasm
/// (`functions/src/assets.rs`), by their path in the assets: the page's
/// HTML and the OpenAPI document as served. `wrangler.toml` runs the Worker
/// first on these paths, so neither is ever served without it.
pub fn worker_assets() -> [(&'static str, &'static str); 2] {
    [
        (shared::page::INDEX_ASSET, shared::page::INDEX_HTML),
        (shared::openapi::ASSET, shared::openapi::DOCUMENT),
    ]
}

/// Writes [`worker_assets`] into `web/dist`.
fn write_worker_assets() -> Result<()> {
    let dist = repo_root().join("web/dist");
    for (path, text) in worker_assets() {
        let file = dist.join(path.trim_start_matches('/'));
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&file, text).with_context(|| format!("writing {}", file.display()))?;
    }
    Ok(())
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
    write_worker_assets()?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether a `run_worker_first` pattern (an exact path, or a prefix
    /// ending in `/*`) covers `path`.
    fn covers(pattern: &str, path: &str) -> bool {
        match pattern.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => pattern == path,
        }
    }

    #[test]
    fn the_worker_runs_first_on_every_asset_it_reads() {
        let text = std::fs::read_to_string(repo_root().join("wrangler.toml")).unwrap();
        let table: toml::Table = text.parse().unwrap();
        let assets = table["assets"].as_table().expect("[assets]");
        // The name `functions/src/assets.rs` reads.
        assert_eq!(assets["binding"].as_str(), Some("ASSETS"));
        // A path names a file exactly, as the local stand-in serves it (no
        // `/index.html` redirected to `/`).
        assert_eq!(assets["html_handling"].as_str(), Some("none"));
        let first: Vec<&str> = assets["run_worker_first"]
            .as_array()
            .expect("run_worker_first lists paths")
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        for (path, text) in worker_assets() {
            assert!(!text.is_empty());
            assert!(
                first.iter().any(|p| covers(p, path)),
                "{path} would be served without the Worker: {first:?}"
            );
        }
        // The page's own paths are the Worker's too.
        assert!(first.contains(&"/"));
        // The page's script and styles are served before the Worker.
        assert!(!first.iter().any(|p| covers(p, "/assets/app.js")));
    }
}
