//! `cargo xtask error-table`: README's error table, rewritten from
//! `shared::error::CATALOGUE` between its markers (a native test in
//! `shared` fails when it is stale).

use crate::paths::rewrite_generated;
use anyhow::{anyhow, Result};
use shared::error::catalogue::{with_readme_table, README_BEGIN, README_END};
use std::process::ExitCode;

pub fn write_command() -> Result<ExitCode> {
    rewrite_generated("README.md", "error table", |readme| {
        with_readme_table(readme).ok_or_else(|| {
            anyhow!("README.md lacks the markers `{README_BEGIN}` and `{README_END}`")
        })
    })
}
