//! The OpenAPI 3.1 description of the Worker's routes, served at
//! `GET /v1/openapi.json`. `openapi.json` is generated (`generate`, by
//! `cargo xtask openapi`); a test keeps it and [`crate::routes::ROUTES`] equal.

/// The document, as served: `openapi.json` without its indentation
/// (minified by `build.rs`). Not compiled into the Worker: `cargo xtask
/// build-worker` writes it into the static assets at [`ASSET`], where the
/// Worker reads it.
pub const DOCUMENT: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi.min.json"));

/// Where the document sits in the static assets (`web/dist`): the path it
/// is served at, on which `wrangler.toml` runs the Worker first.
pub const ASSET: &str = "/v1/openapi.json";

#[cfg(feature = "openapi")]
pub mod answers;

/// For a `#[serde(default)]` field of an optional value: left out, not
/// `null` by default (a `default` makes openapi-typescript type the field as
/// always present).
#[cfg(feature = "openapi")]
pub fn optional(schema: &mut schemars::Schema) {
    schema.remove("default");
}
#[cfg(feature = "openapi")]
pub mod generate;
#[cfg(feature = "openapi")]
pub mod requests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::ROUTES;
    use std::collections::BTreeSet;

    #[test]
    fn the_served_document_is_the_source_without_its_whitespace() {
        let source = include_str!("openapi.json");
        let served: serde_json::Value = serde_json::from_str(DOCUMENT).expect("served parses");
        let written: serde_json::Value = serde_json::from_str(source).expect("source parses");
        assert_eq!(served, written);
        // Every space left is inside a key or a string value.
        fn spaces_in_strings(value: &serde_json::Value) -> usize {
            // As written in JSON: a newline inside a string is `\n` there.
            let spaces = |s: &str| {
                let written = serde_json::to_string(s).expect("a string serializes");
                written.chars().filter(|c| c.is_whitespace()).count()
            };
            match value {
                serde_json::Value::String(s) => spaces(s),
                serde_json::Value::Array(items) => items.iter().map(spaces_in_strings).sum(),
                serde_json::Value::Object(map) => map
                    .iter()
                    .map(|(k, v)| spaces(k) + spaces_in_strings(v))
                    .sum(),
                _ => 0,
            }
        }
        let spaces = DOCUMENT.chars().filter(|c| c.is_whitespace()).count();
        assert_eq!(spaces, spaces_in_strings(&written));
        assert!(DOCUMENT.len() < source.len());
    }

    #[test]
    fn the_document_and_the_route_table_name_the_same_routes() {
        let doc: serde_json::Value = serde_json::from_str(DOCUMENT).expect("openapi.json parses");
        assert_eq!(doc["openapi"], "3.1.0");
        let documented: BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .flat_map(|(path, ops)| {
                ops.as_object()
                    .expect("operations")
                    .keys()
                    .map(move |method| (method.to_ascii_uppercase(), path.clone()))
            })
            .collect();
        let routed: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|(method, path, _)| (method.to_string(), path.to_string()))
            .collect();
        assert_eq!(documented, routed);
    }

    #[test]
    fn every_operation_documents_its_responses() {
        let doc: serde_json::Value = serde_json::from_str(DOCUMENT).unwrap();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                assert!(
                    op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                    "{method} {path}"
                );
                assert!(op["summary"].is_string(), "{method} {path}");
            }
        }
    }

    #[test]
    fn every_operation_may_answer_the_rate_limit() {
        let doc: serde_json::Value = serde_json::from_str(DOCUMENT).unwrap();
        let limited = &doc["components"]["responses"]["RateLimited"];
        assert!(limited["headers"]["Retry-After"].is_object());
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                assert_eq!(
                    op["responses"]["429"]["$ref"], "#/components/responses/RateLimited",
                    "{method} {path}"
                );
            }
        }
    }
}
