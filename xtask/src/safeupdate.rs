//! The local stand-in for pg-safeupdate (`devtools/safeupdate`): built with
//! PGXS from Debian's `postgresql-server-dev-15` and installed into
//! PostgreSQL's library folder, where the `authenticator` role's
//! `session_preload_libraries = 'safeupdate'` (devtools/supabase_base.sql)
//! loads it into every REST session, as on a hosted project.

use crate::paths::{repo_root, tool_cache};
use crate::proc::run;
use crate::tools::{apt_install, which, PG_MAJOR};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

const SOURCES: [&str; 2] = ["safeupdate.c", "Makefile"];

/// Builds the module once per source version and installs it when the
/// installed copy differs.
pub fn ensure_installed(bin: &Path) -> Result<()> {
    let pg_config = bin.join("pg_config");
    let mut missing = Vec::new();
    if !pgxs_available(&pg_config) {
        missing.push(format!("postgresql-server-dev-{PG_MAJOR}"));
    }
    for tool in ["make", "gcc"] {
        if which(tool).is_none() {
            missing.push(tool.to_string());
        }
    }
    if !missing.is_empty() {
        apt_install(&missing)?;
    }
    let built = build(&pg_config)?;
    let pkglibdir = PathBuf::from(output(Command::new(&pg_config).arg("--pkglibdir"))?);
    let installed = pkglibdir.join("safeupdate.so");
    if std::fs::read(&installed).ok() == Some(std::fs::read(&built)?) {
        return Ok(());
    }
    if !nix::unistd::Uid::effective().is_root() {
        bail!(
            "the safeupdate module is not installed; install it with:\n    sudo install -m 755 {} {}",
            built.display(),
            installed.display()
        );
    }
    eprintln!("==> installing safeupdate into {}", pkglibdir.display());
    std::fs::copy(&built, &installed)
        .with_context(|| format!("copying safeupdate.so to {}", installed.display()))?;
    Ok(())
}

/// PGXS's makefile and the server's headers: both come with
/// `postgresql-server-dev-15`, but a machine can have the makefile (Debian's
/// `postgresql-15` ships `pgxs.mk`) without `postgres.h`.
fn pgxs_available(pg_config: &Path) -> bool {
    let path = |flag: &str| output(Command::new(pg_config).arg(flag)).map(PathBuf::from);
    let makefile = path("--pgxs").is_ok_and(|pgxs| pgxs.exists());
    let headers = path("--includedir-server").is_ok_and(|dir| dir.join("postgres.h").exists());
    makefile && headers
}

/// `make` in a tool-cache folder named after the sources' hash, so an edit
/// rebuilds and an unchanged tree reuses the build.
fn build(pg_config: &Path) -> Result<PathBuf> {
    let source_dir = repo_root().join("devtools/safeupdate");
    let mut contents = Vec::new();
    for name in SOURCES {
        let path = source_dir.join(name);
        contents.push(std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?);
    }
    let hash = contents
        .iter()
        .flatten()
        .fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ *b as u64).wrapping_mul(0x100000001b3)
        });
    let dir = tool_cache().join(format!("safeupdate-{hash:016x}"));
    let built = dir.join("safeupdate.so");
    if built.exists() {
        return Ok(built);
    }
    std::fs::create_dir_all(&dir)?;
    for (name, bytes) in SOURCES.iter().zip(&contents) {
        std::fs::write(dir.join(name), bytes)?;
    }
    eprintln!(
        "==> building the safeupdate module (once; cached in {})",
        dir.display()
    );
    // with_llvm=no: no JIT bitcode, so clang need not be installed.
    run(Command::new("make")
        .arg(format!("PG_CONFIG={}", pg_config.display()))
        .arg("with_llvm=no")
        .current_dir(&dir))
    .context("building devtools/safeupdate ")?;
    Ok(built)
}

fn output(command: &mut Command) -> Result<String> {
    let out = command.output().context("running pg_config")?;
    if !out.status.success() {
        bail!("pg_config failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}
