//! The catalogue against what raises codes (the Rust sources of `shared`
//! and `functions`, the migrations), what documents them (the OpenAPI
//! document, README), both ways.

use super::*;
use crate::auth::AuthError;
use crate::error::ApiError;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

fn files_under(dir: &Path, extension: &str, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files_under(&path, extension, out);
        } else if path.extension().is_some_and(|e| e == extension) {
            out.push(path);
        }
    }
}

/// The quoted snake_case words right after each occurrence of `marker`.
fn codes_after(text: &str, marker: &str, out: &mut BTreeSet<String>) {
    for (at, _) in text.match_indices(marker) {
        let rest = text[at + marker.len()..].trim_start();
        if let Some(word) = rest.strip_prefix('"').and_then(|r| r.split('"').next()) {
            if !word.is_empty() && word.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                out.insert(word.to_string());
            }
        }
    }
}

/// Every code the edge's Rust raises: `code: "…"` in an `ApiError`, the
/// first argument of the refusal helpers (`unprocessable(`, `refuse(`), and
/// the literals of every `fn code(&self)` (`ApiError`, `AuthError`). Test
/// modules are left out (they make up codes on purpose).
fn rust_codes() -> BTreeMap<String, PathBuf> {
    let root = repo_root();
    let mut files = Vec::new();
    files_under(&root.join("shared/src"), "rs", &mut files);
    files_under(&root.join("functions/src"), "rs", &mut files);
    let mut found = BTreeMap::new();
    for path in files {
        if path.ends_with("catalogue/tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("a source file reads");
        let text = match text.find("#[cfg(test)]\nmod tests") {
            Some(at) => &text[..at],
            None => &text[..],
        };
        let mut codes = BTreeSet::new();
        for marker in ["code: ", "unprocessable(", "refuse("] {
            codes_after(text, marker, &mut codes);
        }
        for (at, _) in text.match_indices("fn code(&self)") {
            let body = &text[at..];
            let body = &body[..body.find("\n    }\n").unwrap_or(body.len())];
            codes_after(body, "=> ", &mut codes);
        }
        for code in codes {
            found.entry(code).or_insert_with(|| path.clone());
        }
    }
    found
}

/// Every (code, status) the SQL functions raise: `platform.fail('PTxyz',
/// 'code', …)` and `raise … errcode = 'PTxyz', … hint = 'code'`.
fn sql_codes() -> BTreeMap<String, BTreeSet<u16>> {
    let mut files = Vec::new();
    files_under(&repo_root().join("supabase/migrations"), "sql", &mut files);
    let mut found: BTreeMap<String, BTreeSet<u16>> = BTreeMap::new();
    let status = |sqlstate: &str| -> Option<u16> { sqlstate.strip_prefix("PT")?.parse().ok() };
    for path in files {
        let sql = std::fs::read_to_string(&path).expect("a migration reads");
        for (at, _) in sql.match_indices("platform.fail(") {
            let args: Vec<&str> = sql[at + "platform.fail(".len()..]
                .splitn(3, ',')
                .map(|a| a.trim().trim_matches('\''))
                .collect();
            if let (Some(status), Some(code)) = (args.first().and_then(|s| status(s)), args.get(1))
            {
                found.entry(code.to_string()).or_default().insert(status);
            }
        }
        for (at, _) in sql.match_indices("hint = '") {
            let code = sql[at + "hint = '".len()..]
                .split('\'')
                .next()
                .unwrap_or("");
            if !code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                continue; // an operator's instruction, not a code
            }
            let statement = &sql[sql[..at].rfind("raise ").unwrap_or(0)..at];
            let errcode = statement
                .split("errcode = '")
                .nth(1)
                .and_then(|rest| rest.split('\'').next())
                .and_then(status);
            let status = errcode.unwrap_or_else(|| panic!("{code}: no PTxyz errcode"));
            found.entry(code.to_string()).or_default().insert(status);
        }
    }
    found
}

fn openapi_codes() -> BTreeSet<String> {
    let doc: serde_json::Value =
        serde_json::from_str(include_str!("../../openapi.json")).expect("openapi.json parses");
    doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"]
        .as_array()
        .expect("the Error schema lists its codes as an enum")
        .iter()
        .map(|c| c.as_str().expect("a code is a string").to_string())
        .collect()
}

fn catalogued() -> BTreeSet<String> {
    CATALOGUE.iter().map(|e| e.code.to_string()).collect()
}

#[test]
fn the_catalogue_is_sorted_and_each_code_is_listed_once() {
    let codes: Vec<&str> = CATALOGUE.iter().map(|e| e.code).collect();
    let mut sorted = codes.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(codes, sorted);
    for entry in CATALOGUE {
        assert!(!entry.statuses.is_empty(), "{}", entry.code);
        assert!(
            entry.statuses.iter().all(|s| (400..600).contains(s)),
            "{}",
            entry.code
        );
        assert!(
            !entry.meaning.is_empty() && !entry.raised.is_empty(),
            "{}",
            entry.code
        );
    }
}

#[test]
fn every_code_the_edge_raises_is_catalogued() {
    let rust = rust_codes();
    assert!(rust.len() > 40, "the scan found only {rust:?}");
    let missing: Vec<String> = rust
        .into_iter()
        .filter(|(code, _)| find(code).is_none())
        .map(|(code, path)| format!("{code} ({})", path.display()))
        .collect();
    assert!(missing.is_empty(), "not in CATALOGUE: {missing:?}");
}

/// The fixed codes, with the status each variant answers.
#[test]
fn each_fixed_code_has_its_variants_status() {
    let detail = || "d".to_string();
    let mut errors = vec![
        ApiError::NotFound,
        ApiError::MethodNotAllowed { allowed: vec![] },
        ApiError::PayloadTooLarge { limit: 1 },
        ApiError::UnsupportedMediaType,
        ApiError::InvalidJson { reason: detail() },
        ApiError::OriginNotAllowed,
        ApiError::BatchTooLarge { max: 1 },
        ApiError::Unavailable {
            retry_after_secs: 1,
        },
        ApiError::JwksUnavailable {
            retry_after_secs: 1,
        },
        ApiError::Upstream { detail: detail() },
        ApiError::SchemaNotExposed { detail: detail() },
        ApiError::RpcMissing { detail: detail() },
        ApiError::Misconfigured { detail: detail() },
        ApiError::Internal { detail: detail() },
    ];
    let auth = [
        AuthError::MissingToken,
        AuthError::TokenTooLarge,
        AuthError::MalformedToken,
        AuthError::UnsupportedAlgorithm,
        AuthError::AlgorithmKeyMismatch,
        AuthError::MissingKeyId,
        AuthError::UnknownKeyId { kid: detail() },
        AuthError::InvalidSignature,
        AuthError::MissingExpiry,
        AuthError::TokenExpired,
        AuthError::TokenNotYetValid,
        AuthError::WrongAudience,
        AuthError::WrongIssuer,
        AuthError::InvalidSubject,
        AuthError::InvalidRole,
        AuthError::UserRequired,
        AuthError::MalformedApiKey,
        AuthError::MissingWebhookHeaders,
        AuthError::InvalidWebhookTimestamp,
        AuthError::WebhookTimestampTooOld,
        AuthError::WebhookTimestampTooNew,
        AuthError::NoMatchingWebhookSignature,
        AuthError::WebhookSecretMisconfigured { reason: "r" },
        AuthError::MissingWebhookSecret,
        AuthError::InvalidWebhookSecret,
    ];
    errors.extend(auth.into_iter().map(ApiError::from));
    for err in errors {
        let entry = find(err.code()).unwrap_or_else(|| panic!("{} not catalogued", err.code()));
        assert!(
            entry.statuses.contains(&err.status()),
            "{}: answered {}, catalogued {:?}",
            err.code(),
            err.status(),
            entry.statuses
        );
    }
}

#[test]
fn every_code_the_database_raises_is_catalogued_with_its_status() {
    let sql = sql_codes();
    assert!(sql.len() > 30, "the scan found only {sql:?}");
    for (code, statuses) in &sql {
        let entry = find(code).unwrap_or_else(|| panic!("SQL raises {code}, not in CATALOGUE"));
        for status in statuses {
            assert!(
                entry.statuses.contains(status),
                "SQL raises {code} as {status}, catalogued {:?}",
                entry.statuses
            );
        }
    }
}

/// No entry outlives its code: each is raised somewhere, and a code only the
/// database raises is catalogued with exactly the statuses it raises.
#[test]
fn every_catalogued_code_is_raised_somewhere() {
    let rust = rust_codes();
    let sql = sql_codes();
    for entry in CATALOGUE {
        let in_sql = sql.get(entry.code);
        assert!(
            rust.contains_key(entry.code) || in_sql.is_some(),
            "{} is raised nowhere",
            entry.code
        );
        if let (false, Some(statuses)) = (rust.contains_key(entry.code), in_sql) {
            let catalogued: BTreeSet<u16> = entry.statuses.iter().copied().collect();
            assert_eq!(&catalogued, statuses, "{}", entry.code);
        }
    }
}

#[test]
fn the_openapi_document_lists_exactly_the_catalogued_codes() {
    let documented = openapi_codes();
    let catalogued = catalogued();
    let undocumented: Vec<_> = catalogued.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&catalogued).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "shared/src/openapi.json's Error.code enum lacks {undocumented:?} and lists \
         {unknown:?}, which CATALOGUE does not"
    );
}

#[test]
fn the_readme_table_is_the_catalogue() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let rendered = with_readme_table(&readme).expect("README.md has the error table markers");
    assert!(
        rendered == readme,
        "README.md's error table is stale: run `cargo xtask error-table`"
    );
}

#[test]
fn the_table_replaces_only_the_text_between_the_markers() {
    let document = format!("before\n{README_BEGIN}\nSTALE TEXT\n{README_END}\nafter\n");
    let rendered = with_readme_table(&document).unwrap();
    assert!(rendered.starts_with(&format!("before\n{README_BEGIN}\n| code |")));
    assert!(rendered.ends_with(&format!("|\n{README_END}\nafter\n")));
    assert!(!rendered.contains("STALE TEXT"));
    assert_eq!(with_readme_table(&rendered).unwrap(), rendered);
    assert_eq!(with_readme_table("no markers"), None);
}

/// What the database raises reaches the caller with its code and status.
#[test]
fn map_error_passes_every_database_code_on() {
    use crate::postgrest::{map_error, PostgrestError};
    for (code, statuses) in sql_codes() {
        for status in statuses {
            let err = map_error(
                status,
                &PostgrestError {
                    code: format!("PT{status}"),
                    message: "m".into(),
                    details: None,
                    hint: Some(code.clone()),
                },
            );
            assert_eq!((err.status(), err.code()), (status, code.as_str()));
        }
    }
}
