//! PostgREST's error answers: the JSON body, and the table that picks the HTTP
//! status for a PostgreSQL SQLSTATE.
//!
//! Everything here is plain data and pure functions, so the table is checked by
//! a table-driven unit test and the HTTP layer only serialises an [`ApiError`].

use serde::Serialize;

/// One error answer, as PostgREST sends it: `{"code", "message", "details",
/// "hint"}` (absent parts are `null`) with an HTTP status and, for 401
/// answers, a `WWW-Authenticate` header (see [`ApiError::www_authenticate`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub body: ErrorBody,
}

/// The JSON body of an error. Field order follows PostgREST's own output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorBody {
    pub code: String,
    pub details: Option<String>,
    pub hint: Option<String>,
    pub message: String,
}

/// The parts of a PostgreSQL server error that PostgREST passes on unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbErrorParts<'a> {
    pub sqlstate: &'a str,
    pub message: &'a str,
    pub details: Option<&'a str>,
    pub hint: Option<&'a str>,
}

impl ApiError {
    fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                code: code.to_owned(),
                details: None,
                hint: None,
                message: message.into(),
            },
        }
    }

    fn with_details(mut self, details: impl Into<String>) -> Self {
        self.body.details = Some(details.into());
        self
    }

    fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.body.hint = Some(hint.into());
        self
    }

    /// A database error, with the status from [`status_for_sqlstate`].
    /// `authenticated` is PostgREST's notion: the request's role is not the
    /// anonymous role (it decides 401 against 403 for `42501`).
    pub fn from_db(parts: &DbErrorParts<'_>, authenticated: bool) -> Self {
        let status = status_for_sqlstate(parts.sqlstate, parts.message, authenticated);
        let mut error = ApiError::new(status, parts.sqlstate, parts.message);
        error.body.details = parts.details.map(str::to_owned);
        error.body.hint = parts.hint.map(str::to_owned);
        error
    }

    /// `PGRST000`: no connection to the database could be opened.
    pub fn database_unreachable(details: impl Into<String>) -> Self {
        ApiError::new(
            503,
            "PGRST000",
            "Database connection error. Retrying the connection.",
        )
        .with_details(details)
    }

    /// `PGRST001`: the connection failed while the request was using it.
    pub fn database_client_error(details: impl Into<String>) -> Self {
        ApiError::new(
            503,
            "PGRST001",
            "Database client error. Retrying the connection.",
        )
        .with_details(details)
    }

    /// `PGRST003`: every pooled connection stayed busy for the whole wait.
    pub fn pool_timeout() -> Self {
        ApiError::new(
            504,
            "PGRST003",
            "Timed out acquiring connection from connection pool.",
        )
    }

    /// `PGRST101`: functions are called with GET or POST only.
    pub fn rpc_method_not_allowed() -> Self {
        ApiError::new(405, "PGRST101", "Only GET and POST verbs are allowed")
    }

    /// `PGRST102`: the body is not valid JSON, or not a JSON object.
    pub fn invalid_body(message: impl Into<String>) -> Self {
        ApiError::new(400, "PGRST102", message)
    }

    /// `PGRST106`: the profile header names a schema that is not exposed.
    pub fn invalid_schema(schema: &str, exposed: &[String]) -> Self {
        ApiError::new(406, "PGRST106", format!("Invalid schema: {schema}")).with_hint(format!(
            "Only the following schemas are exposed: {}",
            exposed.join(", ")
        ))
    }

    /// `PGRST107`: a POST body whose Content-Type is not JSON.
    pub fn unsupported_content_type(content_type: &str) -> Self {
        ApiError::new(
            415,
            "PGRST107",
            format!("Content-Type not acceptable: {content_type}"),
        )
    }

    /// `PGRST125`: a path this stand-in (or PostgREST) does not serve.
    pub fn invalid_path() -> Self {
        ApiError::new(404, "PGRST125", "Invalid path specified in request URL").with_details(
            "rest-standin serves only /rest/v1/ and /rest/v1/rpc/<function>; \
             table routes are not part of the stand-in",
        )
    }

    /// `PGRST202`: no function of that name takes these argument names.
    /// `keys` must be sorted, as PostgREST lists them in key order.
    /// `json_body` says whether the single-unnamed-json/jsonb fallback was
    /// also searched (POST with a JSON body), which changes the details text.
    pub fn function_not_found(schema: &str, name: &str, keys: &[String], json_body: bool) -> Self {
        let function = format!("{schema}.{name}");
        let (in_message, in_details) = if keys.is_empty() {
            (
                " without parameters".to_owned(),
                " without parameters".to_owned(),
            )
        } else {
            let list = keys.join(", ");
            let plural = if keys.len() > 1 { "s" } else { "" };
            (
                format!("({list})"),
                format!(" with parameter{plural} {list}"),
            )
        };
        let fallback = if json_body {
            " or with a single unnamed json/jsonb parameter"
        } else {
            ""
        };
        ApiError::new(
            404,
            "PGRST202",
            format!("Could not find the function {function}{in_message} in the schema cache"),
        )
        .with_details(format!(
            "Searched for the function {function}{in_details}{fallback}, \
             but no matches were found in the schema cache."
        ))
    }

    /// `PGRST203`: several overloads fit the argument names. `candidates`
    /// are rendered like `schema.fn(a => integer, b => text)`.
    pub fn ambiguous_function(candidates: &[String]) -> Self {
        ApiError::new(
            300,
            "PGRST203",
            format!(
                "Could not choose the best candidate function between: {}",
                candidates.join(", ")
            ),
        )
        .with_hint(
            "Try renaming the parameters or the function itself in the database \
             so function overloading can be resolved",
        )
    }

    /// `PGRST301`: the JWT could not be verified (any reason).
    pub fn invalid_jwt(message: impl Into<String>) -> Self {
        ApiError::new(401, "PGRST301", message)
    }

    /// The `WWW-Authenticate` header PostgREST sends with this answer: the
    /// reason for a refused JWT, a bare `Bearer` challenge for any other 401
    /// (an anonymous request lacking a privilege), none otherwise.
    pub fn www_authenticate(&self) -> Option<String> {
        if self.body.code == "PGRST301" {
            // The description is a quoted string; escape what would end it.
            let escaped = self.body.message.replace('\\', "\\\\").replace('"', "\\\"");
            Some(format!(
                "Bearer error=\"invalid_token\", error_description=\"{escaped}\""
            ))
        } else if self.status == 401 {
            Some("Bearer".to_owned())
        } else {
            None
        }
    }

    /// The body as JSON text. Serialising these plain strings cannot fail,
    /// but a fixed fallback keeps the HTTP layer free of panics regardless.
    pub fn body_json(&self) -> String {
        serde_json::to_string(&self.body).unwrap_or_else(|_| {
            r#"{"code":"PGRSTX00","details":null,"hint":null,"message":"error body could not be encoded"}"#
                .to_owned()
        })
    }
}

/// A refusal by Supabase's API gateway, before PostgREST sees the request.
/// Its body is the gateway's own `{"message", "hint"}`, not PostgREST's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayError {
    /// No `apikey` header or query parameter.
    MissingApiKey,
    /// An `apikey` that is none of the project's keys.
    InvalidApiKey,
    /// The token for an opaque key could not be signed (not expected with
    /// any secret; answered as the gateway answers its own failures).
    TokenNotMinted,
}

impl GatewayError {
    pub fn status(self) -> u16 {
        match self {
            GatewayError::MissingApiKey | GatewayError::InvalidApiKey => 401,
            GatewayError::TokenNotMinted => 500,
        }
    }

    /// The gateway's JSON body, as hosted Supabase sends it.
    pub fn body_json(self) -> String {
        let body = match self {
            GatewayError::MissingApiKey => serde_json::json!({
                "message": "No API key found in request",
                "hint": "No `apikey` request header or url param was found.",
            }),
            GatewayError::InvalidApiKey => serde_json::json!({
                "message": "Invalid API key",
                "hint": "Double check your Supabase `anon` or `service_role` API key.",
            }),
            GatewayError::TokenNotMinted => serde_json::json!({
                "message": "An unexpected error occurred",
            }),
        };
        body.to_string()
    }
}

/// PostgREST's SQLSTATE → HTTP status table (v12, `pgErrorStatus`); the
/// first matching row wins, so the rows keep PostgREST's order.
///
/// `message` matters for one row: `21000` (cardinality violation) is a client
/// error (400) only when the message ends with "requires a WHERE clause",
/// which is pg-safeupdate refusing an unqualified UPDATE/DELETE (Supabase
/// loads it for every API session); any other `21000` (e.g. "more than one
/// row returned by a subquery used as an expression") is a server error.
/// `authenticated` is true when the request's role is not the anonymous role:
/// PostgREST answers `42501` (insufficient privilege) with 403 then, and with
/// 401 for anonymous requests (log in and try again).
/// `PTxyz` lets a function choose status `xyz` itself.
pub fn status_for_sqlstate(sqlstate: &str, message: &str, authenticated: bool) -> u16 {
    if let Some(digits) = sqlstate.strip_prefix("PT") {
        return match digits.parse::<u16>() {
            Ok(status) if (100..=599).contains(&status) => status,
            // Not a usable status: PostgREST falls back to 500 as well.
            _ => 500,
        };
    }
    let class = sqlstate.get(..2).unwrap_or(sqlstate);
    match (class, sqlstate) {
        ("08", _) => 503,
        ("09", _) => 500,
        ("0L", _) | ("0P", _) => 403,
        (_, "23503") | (_, "23505") => 409,
        (_, "25006") => 405,
        (_, "21000") => {
            if message.ends_with("requires a WHERE clause") {
                400
            } else {
                500
            }
        }
        ("25", _) => 500,
        ("28", _) => 403,
        ("2D", _) | ("38", _) | ("39", _) | ("3B", _) | ("40", _) => 500,
        (_, "53400") => 500,
        ("53", _) => 503,
        ("54", _) | ("55", _) => 500,
        // A backend terminated by the administrator (a restart or failover):
        // the request may succeed on retry.
        (_, "57P01") => 503,
        ("57", _) | ("58", _) | ("F0", _) | ("HV", _) => 500,
        (_, "P0001") => 400,
        ("P0", _) | ("XX", _) => 500,
        (_, "42883") | (_, "42P01") => 404,
        (_, "42P17") => 500,
        (_, "42501") => {
            if authenticated {
                403
            } else {
                401
            }
        }
        _ => 400,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstate_table_matches_postgrest() {
        // (sqlstate, authenticated, expected status)
        let cases: &[(&str, bool, u16)] = &[
            ("08006", true, 503),
            ("08P01", false, 503),
            ("09000", true, 500),
            ("0L000", true, 403),
            ("0P000", true, 403),
            ("23503", true, 409),
            ("23505", false, 409),
            ("23502", true, 400),
            ("23514", true, 400),
            ("25006", true, 405),
            ("25001", true, 500),
            ("28000", true, 403),
            ("28P01", false, 403),
            ("2D000", true, 500),
            ("38001", true, 500),
            ("39004", true, 500),
            ("3B001", true, 500),
            ("40001", true, 500),
            ("40P01", true, 500),
            ("53400", true, 500),
            ("53100", true, 503),
            ("53300", true, 503),
            ("54001", true, 500),
            ("55P03", true, 500),
            ("57014", true, 500),
            ("57P01", true, 503),
            ("57P02", true, 500),
            ("58030", true, 500),
            ("F0000", true, 500),
            ("HV000", true, 500),
            ("P0001", true, 400),
            ("P0002", true, 500),
            ("P0004", true, 500),
            ("XX000", true, 500),
            ("42883", true, 404),
            ("42P01", true, 404),
            ("42P17", true, 500),
            ("42501", true, 403),
            ("42501", false, 401),
            ("42703", true, 400),
            ("22P02", true, 400),
            ("22023", true, 400),
            ("21000", true, 500),
            ("PT402", true, 402),
            ("PT418", false, 418),
            ("PT204", true, 204),
            ("PTabc", true, 500),
            ("PT999", true, 500),
            ("", true, 400),
            ("X", true, 400),
        ];
        for &(sqlstate, authenticated, expected) in cases {
            assert_eq!(
                status_for_sqlstate(sqlstate, "some message", authenticated),
                expected,
                "SQLSTATE {sqlstate:?}, authenticated {authenticated}"
            );
        }
    }

    #[test]
    fn cardinality_violation_is_a_client_error_only_from_safeupdate() {
        // PostgREST special-cases pg-safeupdate's refusal (a message ending
        // with "requires a WHERE clause") as 400; other 21000 are 500.
        let cases: &[(&str, u16)] = &[
            ("DELETE requires a WHERE clause", 400),
            ("UPDATE requires a WHERE clause", 400),
            (
                "more than one row returned by a subquery used as an expression",
                500,
            ),
            ("requires a WHERE clause, it says", 500),
        ];
        for &(message, expected) in cases {
            assert_eq!(
                status_for_sqlstate("21000", message, true),
                expected,
                "{message}"
            );
        }
    }

    #[test]
    fn database_error_keeps_its_parts_and_nulls_the_missing_ones() {
        let error = ApiError::from_db(
            &DbErrorParts {
                sqlstate: "PT402",
                message: "Insufficient balance",
                details: Some("need 5"),
                hint: None,
            },
            true,
        );
        assert_eq!(error.status, 402);
        let body: serde_json::Value = serde_json::from_str(&error.body_json()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"code": "PT402", "message": "Insufficient balance",
                               "details": "need 5", "hint": null})
        );
        assert_eq!(error.www_authenticate(), None);
    }

    #[test]
    fn anonymous_privilege_error_asks_for_a_bearer_token() {
        let parts = DbErrorParts {
            sqlstate: "42501",
            message: "permission denied for table secrets",
            details: None,
            hint: None,
        };
        let error = ApiError::from_db(&parts, false);
        assert_eq!(
            (error.status, error.www_authenticate().as_deref()),
            (401, Some("Bearer"))
        );
    }

    #[test]
    fn function_not_found_texts() {
        // (keys, json body, message, details)
        let cases: &[(&[&str], bool, &str, &str)] = &[
            (
                &["a", "b"],
                true,
                "Could not find the function s.f(a, b) in the schema cache",
                "Searched for the function s.f with parameters a, b or with a single unnamed \
                 json/jsonb parameter, but no matches were found in the schema cache.",
            ),
            (
                &["a"],
                false,
                "Could not find the function s.f(a) in the schema cache",
                "Searched for the function s.f with parameter a, but no matches were found \
                 in the schema cache.",
            ),
            (
                &[],
                true,
                "Could not find the function s.f without parameters in the schema cache",
                "Searched for the function s.f without parameters or with a single unnamed \
                 json/jsonb parameter, but no matches were found in the schema cache.",
            ),
        ];
        for &(keys, json_body, message, details) in cases {
            let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
            let error = ApiError::function_not_found("s", "f", &keys, json_body);
            assert_eq!(error.status, 404);
            assert_eq!(error.body.code, "PGRST202");
            assert_eq!(error.body.message, message);
            assert_eq!(error.body.details.as_deref(), Some(details));
            assert_eq!(error.body.hint, None);
        }
    }

    #[test]
    fn jwt_error_header_quotes_the_description() {
        let error = ApiError::invalid_jwt("JWT expired");
        assert_eq!(error.status, 401);
        assert_eq!(
            error.www_authenticate().as_deref(),
            Some(r#"Bearer error="invalid_token", error_description="JWT expired""#)
        );
    }
}
