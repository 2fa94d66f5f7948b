//! `cargo xtask error-table`: README's error table, rewritten from
//! `shared::error::CATALOGUE` between its markers (a native test in
//! `shared` fails when it is stale).

use crate::paths::repo_root;
use anyhow::{anyhow, Context, Result};
use shared::error::catalogue::{with_readme_table, README_BEGIN, README_END};
use std::process::ExitCode;

pub fn write_command() -> Result<ExitCode> {
    let path = repo_root().join("README.md");
    let readme =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let rendered = with_readme_table(&readme).ok_or_else(|| {
        anyhow!("README.md lacks the markers `{README_BEGIN}` and `{README_END}`")
    })?;
    if rendered == readme {
        eprintln!("README.md's error table is up to date");
    } else {
        std::fs::write(&path, rendered).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote README.md's error table");
    }
    Ok(ExitCode::SUCCESS)
}
