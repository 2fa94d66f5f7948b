//! Every answer the Worker gives the end-to-end tests is held to the OpenAPI
//! document (`shared/src/openapi.json`, what `GET /v1/openapi.json` serves):
//! its status must be one the operation documents, and its body must match
//! the schema documented for that status. [`crate::send`] and the load
//! run's client check each answer here, so a handler that answers something
//! the document does not say fails the test that met it.

use serde_json::Value;
use std::sync::OnceLock;

/// The document as checked in, under the repository root (found the way
/// the other tests find repository files): the tests run against the same
/// commit's Worker, and a deployed Worker serves this file too.
fn checked_in_document() -> Value {
    let path = crate::node::repo_root().join("shared/src/openapi.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).expect("openapi.json parses")
}

/// Paths that are not the edge's API but reach the Worker's address.
/// `wrangler dev --test-scheduled` answers `/__scheduled` itself (it runs
/// the cron handler); the Worker never sees it as a request. The usage
/// page's own paths (`/` or `/index.html`, `/config.json`) and its static assets (under
/// `/assets/`, served by the assets binding before the Worker runs) are a
/// web page, not the API; `usage_page.rs` checks what they answer.
const NOT_THE_API: &[&str] = &["/__scheduled", "/", "/index.html", "/config.json"];
const NOT_THE_API_PREFIXES: &[&str] = &["/assets/"];

fn is_not_the_api(path: &str) -> bool {
    NOT_THE_API.contains(&path) || NOT_THE_API_PREFIXES.iter().any(|p| path.starts_with(p))
}

/// The parsed document, once per test binary.
pub fn document() -> &'static Contract {
    static DOC: OnceLock<Contract> = OnceLock::new();
    DOC.get_or_init(|| Contract::new(checked_in_document()))
}

/// An OpenAPI document, asked about answers.
pub struct Contract {
    doc: Value,
}

/// One answer, as the validator sees it.
pub struct Exchange<'a> {
    pub method: &'a str,
    /// The request's path, without the query; percent-encoding kept, so an
    /// encoded `/` stays inside its segment.
    pub path: &'a str,
    pub status: u16,
    pub content_type: Option<&'a str>,
    pub body: &'a str,
}

impl Contract {
    pub fn new(doc: Value) -> Contract {
        Contract { doc }
    }

    /// `Ok` when the document allows this answer; else what it breaks.
    pub fn check(&self, answer: &Exchange) -> Result<(), String> {
        let Exchange {
            method,
            path,
            status,
            ..
        } = *answer;
        let what = format!("{method} {path} answered {status}");
        if is_not_the_api(path) {
            return Ok(());
        }
        let method = method.to_ascii_lowercase();
        let Some((template, operations)) = self.path_item(path) else {
            // No path of the document matches: the router answers 404
            // `not_found` (or 413 when the body is refused before routing,
            // 429 once the client address is over its limit). The document
            // cannot name paths it does not have, so this rule is here.
            return self.unlisted(answer, &[404, 413, 429], &what);
        };
        let Some(operation) = operations.get(&method) else {
            if method == "options" {
                // A CORS preflight is answered before routing, for any path.
                return self.unlisted(answer, &[204, 403, 429], &what);
            }
            // A method the path does not have: 405 `method_not_allowed`.
            return self.unlisted(answer, &[405, 413, 429], &what);
        };
        let responses = &operation["responses"];
        let Some(response) = responses
            .get(status.to_string())
            .or_else(|| responses.get("default"))
        else {
            let documented: Vec<&String> = responses
                .as_object()
                .map(|r| r.keys().collect())
                .unwrap_or_default();
            return Err(format!(
                "{what}, which {} {template} does not document (it documents {documented:?}); body: {}",
                method.to_ascii_uppercase(),
                answer.body
            ));
        };
        let response = self.resolve(response);
        self.check_body(response, answer, &what)
    }

    /// An answer to a request the document has no operation for, allowed
    /// only with one of `statuses` and, unless it is empty, the Error body.
    fn unlisted(&self, answer: &Exchange, statuses: &[u16], what: &str) -> Result<(), String> {
        if !statuses.contains(&answer.status) {
            return Err(format!(
                "{what}: a request the document has no operation for may only answer {statuses:?}"
            ));
        }
        if answer.body.is_empty() {
            return Ok(());
        }
        let error = self.resolve(&self.doc["components"]["responses"]["Error"]);
        self.check_body(error, answer, what)
    }

    /// The path item whose template matches `path`, the most literal first
    /// (so `/v1/usage/batch` wins over a `/v1/usage/{id}`).
    fn path_item(&self, path: &str) -> Option<(&str, &serde_json::Map<String, Value>)> {
        let segments: Vec<&str> = path.split('/').collect();
        self.doc["paths"]
            .as_object()?
            .iter()
            .filter_map(|(template, item)| {
                let parts: Vec<&str> = template.split('/').collect();
                if parts.len() != segments.len() {
                    return None;
                }
                let mut literal = 0;
                for (part, segment) in parts.iter().zip(&segments) {
                    if part.starts_with('{') && part.ends_with('}') {
                        if segment.is_empty() {
                            return None;
                        }
                    } else if part == segment {
                        literal += 1;
                    } else {
                        return None;
                    }
                }
                Some((literal, template.as_str(), item.as_object()?))
            })
            .max_by_key(|(literal, _, _)| *literal)
            .map(|(_, template, item)| (template, item))
    }

    /// A response object, following its `$ref` within the document.
    fn resolve<'a>(&'a self, mut value: &'a Value) -> &'a Value {
        while let Some(pointer) = value["$ref"].as_str() {
            match pointer.strip_prefix('#').and_then(|p| self.doc.pointer(p)) {
                Some(target) => value = target,
                None => break,
            }
        }
        value
    }

    fn check_body(&self, response: &Value, answer: &Exchange, what: &str) -> Result<(), String> {
        let Some(content) = response["content"].as_object() else {
            return if answer.body.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{what} with a body, which the document says has none: {}",
                    answer.body
                ))
            };
        };
        if answer.method.eq_ignore_ascii_case("HEAD") {
            return Ok(());
        }
        let media = answer
            .content_type
            .and_then(|c| c.split(';').next())
            .map(|c| c.trim().to_ascii_lowercase())
            .unwrap_or_default();
        let Some(media_type) = content.get(&media) else {
            return Err(format!(
                "{what} as {media:?}, which the document does not list ({:?})",
                content.keys().collect::<Vec<_>>()
            ));
        };
        if media != "application/json" {
            return Ok(());
        }
        let body: Value = serde_json::from_str(answer.body)
            .map_err(|e| format!("{what} with a body that is not JSON ({e}): {}", answer.body))?;
        let Some(schema) = media_type.get("schema") else {
            return Ok(());
        };
        self.validate(schema, &body).map_err(|errors| {
            format!("{what} with a body against its schema: {errors}; body: {body}")
        })
    }

    /// Validates `instance` against `schema`, a part of the document: the
    /// schema is compiled with the document's components beside it, so its
    /// `#/components/schemas/...` references resolve as in the document.
    pub fn validate(&self, schema: &Value, instance: &Value) -> Result<(), String> {
        let mut root = match schema {
            Value::Object(map) => map.clone(),
            Value::Bool(_) => return Ok(()),
            other => return Err(format!("not a schema: {other}")),
        };
        root.insert("components".into(), self.doc["components"].clone());
        let validator = jsonschema::draft202012::new(&Value::Object(root))
            .map_err(|e| format!("the document's schema does not compile: {e}"))?;
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}

/// Panics with the broken rule unless the document allows this answer to a
/// request to the Worker at `url`; answers of other hosts (the REST layer)
/// pass.
pub fn assert_documented(
    method: &str,
    url: &str,
    status: u16,
    content_type: Option<&str>,
    body: &str,
) {
    if let Err(broken) = check_url(method, url, status, content_type, body) {
        panic!("the answer breaks the OpenAPI document: {broken}");
    }
}

/// [`Contract::check`] for a full URL, when it is the Worker's.
pub fn check_url(
    method: &str,
    url: &str,
    status: u16,
    content_type: Option<&str>,
    body: &str,
) -> Result<(), String> {
    let base = crate::env("CDS_WORKER_URL");
    let Some(rest) = url.strip_prefix(base.trim_end_matches('/')) else {
        return Ok(());
    };
    let path = rest.split(['?', '#']).next().unwrap_or_default();
    let path = if path.is_empty() { "/" } else { path };
    document().check(&Exchange {
        method,
        path,
        status,
        content_type,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer<'a>(method: &'a str, path: &'a str, status: u16, body: &'a str) -> Exchange<'a> {
        Exchange {
            method,
            path,
            status,
            content_type: Some("application/json; charset=utf-8"),
            body,
        }
    }

    #[test]
    fn an_error_body_of_the_documented_shape_passes() {
        let body = json!({"error": {"code": "not_authenticated", "message": "sign in"}});
        document()
            .check(&answer("GET", "/v1/me", 401, &body.to_string()))
            .expect("a documented 401");
    }

    #[test]
    fn a_wrong_body_fails() {
        for body in [
            json!({"error": {"code": "not_authenticated"}}),
            json!({"error": {"code": "no_such_code", "message": "m"}}),
            json!({"error": "not_authenticated"}),
            json!([]),
        ] {
            let failed = document().check(&answer("GET", "/v1/me", 401, &body.to_string()));
            assert!(failed.is_err(), "{body} passed");
        }
        let not_json = document().check(&answer("GET", "/v1/me", 401, "<html>"));
        assert!(not_json.is_err());
    }

    #[test]
    fn a_success_body_without_a_required_field_fails() {
        let models = json!({"models": [{"name": "m", "provider": "p"}]});
        let failed = document().check(&answer("GET", "/v1/models", 200, &models.to_string()));
        assert!(failed.is_err(), "a model without its prices passed");
    }

    /// A recorded event as `platform.usage_result` writes it.
    fn recorded() -> Value {
        json!({
            "usage_id": 7, "model": "m", "prompt_tokens": 10, "completion_tokens": 5,
            "total_tokens": 15, "cost": 0.000045, "balance": 985, "exhausted": false,
            "reservation": null, "created_at": "2026-12-01T10:00:00.123456+00:00"
        })
    }

    /// The answers are closed: a field more, or one less, is drift the
    /// validator reports, whichever side it came from.
    #[test]
    fn a_success_body_with_a_field_more_or_one_less_fails() {
        let check =
            |body: &Value| document().check(&answer("POST", "/v1/usage", 201, &body.to_string()));
        check(&recorded()).expect("a recorded event");
        let mut held = recorded();
        held["reservation"] =
            json!({"id": "0b0e7a52-0a8c-4b8e-9e55-f6a1e1b1b1b1", "outcome": "settled"});
        check(&held).expect("an event that settled a hold");
        let mut more = recorded();
        more["surprise"] = json!(1);
        assert!(check(&more).is_err(), "an extra field passed");
        for field in ["usage_id", "balance", "reservation"] {
            let mut less = recorded();
            less.as_object_mut().unwrap().remove(field);
            assert!(check(&less).is_err(), "{field} missing passed");
        }
    }

    #[test]
    fn each_batch_result_is_recorded_or_rejected_at_its_index() {
        let mut row = recorded();
        row["index"] = json!(0);
        row["status"] = json!("replayed");
        let rejected = json!({"index": 1, "status": "rejected",
                              "error": {"code": "unknown_model", "message": "m"}});
        let batch = json!({"recorded": 0, "replayed": 1, "rejected": 1,
                           "results": [row, rejected]});
        let check = |status, body: &Value| {
            document().check(&answer(
                "POST",
                "/v1/usage/batch",
                status,
                &body.to_string(),
            ))
        };
        check(200, &batch).expect("a recorded batch");
        let queued = json!({"queued": 1, "rejected": 0, "results": [{"index": 0,
            "status": "queued", "idempotency_key": "k", "status_url": "/v1/usage/events/k"}]});
        check(202, &queued).expect("a queued batch");
        // The database's `replayed` flag is not part of an answer.
        let mut flagged = batch.clone();
        flagged["results"][0]["replayed"] = json!(true);
        assert!(check(200, &flagged).is_err());
        assert!(
            check(202, &batch).is_err(),
            "a recorded batch as 202 passed"
        );
    }

    #[test]
    fn me_answers_for_a_token_or_for_an_api_key() {
        let check =
            |body: Value| document().check(&answer("GET", "/v1/me", 200, &body.to_string()));
        let user = "0b0e7a52-0a8c-4b8e-9e55-f6a1e1b1b1b1";
        check(
            json!({"user_id": user, "via": "access_token", "role": "authenticated",
                     "email": null, "is_anonymous": false}),
        )
        .expect("a token");
        check(
            json!({"user_id": user, "via": "api_key", "api_key_id": user,
                     "scopes": ["usage:read"]}),
        )
        .expect("an API key");
        assert!(check(
            json!({"user_id": user, "via": "api_key", "api_key_id": user,
                             "scopes": ["usage:admin"]})
        )
        .is_err());
        assert!(check(json!({"user_id": user, "via": "access_token"})).is_err());
    }

    #[test]
    fn an_undocumented_status_fails() {
        let body = json!({"error": {"code": "internal_error", "message": "m"}});
        let failed = document().check(&answer("GET", "/v1/models", 418, &body.to_string()));
        assert!(failed.unwrap_err().contains("does not document"));
    }

    #[test]
    fn templated_paths_match_one_segment_each() {
        let body = json!({"error": {"code": "unknown_reservation", "message": "m"}});
        let path = "/v1/usage/reservations/0b0e7a52-0a8c-4b8e-9e55-f6a1e1b1b1b1";
        document()
            .check(&answer("DELETE", path, 404, &body.to_string()))
            .expect("the templated path");
        let encoded = "/v1/admin/models/org%2Fmodel";
        let deactivated = document().check(&answer("DELETE", encoded, 404, &body.to_string()));
        assert!(deactivated.is_ok(), "{deactivated:?}");
    }

    #[test]
    fn unknown_paths_and_methods_answer_404_and_405_only() {
        let not_found = json!({"error": {"code": "not_found", "message": "m"}}).to_string();
        let contract = document();
        assert!(contract
            .check(&answer("GET", "/nope", 404, &not_found))
            .is_ok());
        assert!(contract.check(&answer("GET", "/nope", 200, "{}")).is_err());
        let not_allowed =
            json!({"error": {"code": "method_not_allowed", "message": "m"}}).to_string();
        let put_models = answer("PUT", "/v1/models", 405, &not_allowed);
        assert!(contract.check(&put_models).is_ok());
        assert!(contract
            .check(&answer("PUT", "/v1/models", 200, "{}"))
            .is_err());
    }
}
