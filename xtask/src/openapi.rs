//! `cargo xtask openapi`: writes `shared/src/openapi.json` from
//! `shared::openapi::generate` (the test below fails when the checked-in
//! file is stale).

use crate::paths::repo_root;
use anyhow::{Context, Result};
use std::process::ExitCode;

pub fn write_command() -> Result<ExitCode> {
    let path = repo_root().join("shared/src/openapi.json");
    let written = std::fs::read_to_string(&path).unwrap_or_default();
    let generated = shared::openapi::generate::document_text();
    if generated == written {
        eprintln!("shared/src/openapi.json is up to date");
    } else {
        std::fs::write(&path, generated).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote shared/src/openapi.json");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checked_in_openapi_document_is_the_generated_one() {
        let path = repo_root().join("shared/src/openapi.json");
        let written = std::fs::read_to_string(&path).expect("reading shared/src/openapi.json");
        assert!(
            written == shared::openapi::generate::document_text(),
            "shared/src/openapi.json is stale: run `cargo xtask openapi`"
        );
    }
}
