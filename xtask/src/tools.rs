//! Installs what the stack needs, from crates.io, npm and Debian only, and
//! says exactly what is missing when it cannot.

use crate::paths::{repo_root, tool_cache};
use crate::proc::run;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// `worker-build` runs wasm-bindgen, wasm-opt and esbuild; pinned here so a
/// fresh machine builds the same Worker.
const WORKER_BUILD_VERSION: &str = "0.8.7";
/// The code size profiler `cargo xtask bench` names the Worker's biggest
/// contributors with (figure 1).
const TWIGGY_VERSION: &str = "0.8.0";
/// The PostgreSQL major version a Supabase project runs (`[db] major_version`).
pub const PG_MAJOR: u32 = 15;

/// Paths of the tools the Worker build and the local runtime use.
pub struct WorkerTools {
    pub worker_build: PathBuf,
    pub wasm_bindgen: PathBuf,
    pub esbuild: PathBuf,
    pub wasm_opt: PathBuf,
    pub wrangler: PathBuf,
    /// The runtime itself, from wrangler's `workerd` dependency; its
    /// platform package ships the binary, so no install script is needed.
    pub workerd: PathBuf,
    /// The usage page's type generator and checker (`web/`).
    pub openapi_typescript: PathBuf,
    pub tsc: PathBuf,
}

pub struct PgTools {
    pub bin: PathBuf,
    pub pg_prove: PathBuf,
}

pub fn worker_tools() -> Result<WorkerTools> {
    ensure_wasm_target()?;
    let worker_build = cargo_install("worker-build", WORKER_BUILD_VERSION, "worker-build")?;
    let wasm_bindgen = cargo_install(
        "wasm-bindgen-cli",
        &locked_version("wasm-bindgen")?,
        "wasm-bindgen",
    )?;
    ensure_npm_packages()?;
    let modules = repo_root().join("node_modules");
    let tools = WorkerTools {
        worker_build,
        wasm_bindgen,
        esbuild: modules.join("@esbuild/linux-x64/bin/esbuild"),
        wasm_opt: modules.join(".bin/wasm-opt"),
        wrangler: modules.join(".bin/wrangler"),
        workerd: modules.join("@cloudflare/workerd-linux-64/bin/workerd"),
        openapi_typescript: modules.join(".bin/openapi-typescript"),
        tsc: modules.join(".bin/tsc"),
    };
    for path in [
        &tools.esbuild,
        &tools.wasm_opt,
        &tools.wrangler,
        &tools.workerd,
        &tools.openapi_typescript,
        &tools.tsc,
    ] {
        if !path.exists() {
            bail!(
                "{} is missing after `npm ci`; delete node_modules and retry",
                path.display()
            );
        }
    }
    Ok(tools)
}

/// `twiggy`, built once into the tool cache.
pub fn twiggy() -> Result<PathBuf> {
    cargo_install("twiggy", TWIGGY_VERSION, "twiggy")
}

/// PostgreSQL server binaries, pg_cron, pgTAP and pg_prove, from Debian, and the
/// safeupdate module built from `devtools/safeupdate`.
pub fn pg_tools() -> Result<PgTools> {
    let bin = PathBuf::from(format!("/usr/lib/postgresql/{PG_MAJOR}/bin"));
    let pgtap = PathBuf::from(format!(
        "/usr/share/postgresql/{PG_MAJOR}/extension/pgtap.control"
    ));
    let mut missing = Vec::new();
    if !bin.join("postgres").exists() {
        missing.push(format!("postgresql-{PG_MAJOR}"));
    }
    if !pgtap.exists() {
        missing.push(format!("postgresql-{PG_MAJOR}-pgtap"));
    }
    let pg_cron = PathBuf::from(format!(
        "/usr/share/postgresql/{PG_MAJOR}/extension/pg_cron.control"
    ));
    if !pg_cron.exists() {
        missing.push(format!("postgresql-{PG_MAJOR}-cron"));
    }
    if which("pg_prove").is_none() {
        missing.push("libtap-parser-sourcehandler-pgtap-perl".into());
    }
    if !missing.is_empty() {
        apt_install(&missing)?;
    }
    let pg_prove = which("pg_prove").context("pg_prove is still missing after installing it")?;
    crate::safeupdate::ensure_installed(&bin)?;
    Ok(PgTools { bin, pg_prove })
}

pub fn apt_install(packages: &[String]) -> Result<()> {
    let list = packages.join(" ");
    if !nix::unistd::Uid::effective().is_root() {
        bail!("missing Debian packages; install them with:\n    sudo apt-get install -y {list}");
    }
    eprintln!("==> installing Debian packages: {list}");
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

pub fn ensure_wasm_target() -> Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("running rustup (install Rust with rustup)")?;
    if !String::from_utf8_lossy(&installed.stdout).contains("wasm32-unknown-unknown") {
        eprintln!("==> rustup target add wasm32-unknown-unknown");
        run(Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]))?;
    }
    Ok(())
}

/// The version of `package` that Cargo.lock pins (wasm-bindgen's CLI must
/// match the library exactly).
fn locked_version(package: &str) -> Result<String> {
    let path = repo_root().join("Cargo.lock");
    let lock: toml::Table = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {}", path.display()))?
        .parse()
        .context("parsing Cargo.lock")?;
    lock.get("package")
        .and_then(|p| p.as_array())
        .into_iter()
        .flatten()
        .find(|p| p.get("name").and_then(|n| n.as_str()) == Some(package))
        .and_then(|p| p.get("version").and_then(|v| v.as_str()))
        .map(str::to_string)
        .with_context(|| format!("{package} is not in Cargo.lock"))
}

/// `cargo install` into a per-version folder of the tool cache, once.
pub fn cargo_install(krate: &str, version: &str, binary: &str) -> Result<PathBuf> {
    let root = tool_cache().join(format!("{krate}-{version}"));
    let path = root.join("bin").join(binary);
    if path.exists() {
        return Ok(path);
    }
    eprintln!(
        "==> cargo install {krate}@{version} (once; cached in {})",
        root.display()
    );
    let install = |locked: bool| {
        let mut cmd = Command::new(cargo());
        cmd.args(["install", krate, "--version", version, "--root"])
            .arg(&root);
        if locked {
            cmd.arg("--locked");
        }
        crate::proc::run_visible(&mut cmd)
    };
    // `--locked` fails when the registry index lags behind the crate's lock
    // file; the unlocked build is the documented fallback.
    if !install(true)? && !install(false)? {
        bail!("cargo install {krate}@{version} failed");
    }
    Ok(path)
}

fn ensure_npm_packages() -> Result<()> {
    let root = repo_root();
    let stamp = root.join("node_modules/.package-lock.json");
    let lock = root.join("package-lock.json");
    if is_newer(&stamp, &lock) {
        return Ok(());
    }
    if which("npm").is_none() {
        bail!("npm is missing: install Node.js 20+ with npm (Debian: apt-get install nodejs npm)");
    }
    eprintln!("==> npm ci (wrangler, esbuild, binaryen and the usage page's packages from package-lock.json)");
    run(Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&root))
}

fn is_newer(a: &Path, b: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    matches!((modified(a), modified(b)), (Some(a), Some(b)) if a >= b)
}

pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}
