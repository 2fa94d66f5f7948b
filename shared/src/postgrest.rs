//! The PostgREST client, sans I/O: what to send for an RPC, and what the answer
//! means. The only place in the edge that speaks PostgREST.
//!
//! Supabase exposes PostgREST at `<SUPABASE_URL>/rest/v1`. An RPC is
//! `POST /rpc/<function>` with the arguments as a JSON object;
//! `Content-Profile` picks the schema. Errors arrive as
//! `{"code", "message", "details", "hint"}`, where `code` is a SQLSTATE or one
//! of PostgREST's own `PGRSTxxx` codes.

use crate::config::Config;
use crate::error::ApiError;
use crate::rpc::catalogue::ListModels;
use crate::rpc::Rpc;
use serde::Deserialize;

/// How long a client should wait before retrying when the database is away.
pub const RETRY_AFTER_SECS: u32 = 2;

/// Whose authority an RPC runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth<'a> {
    /// The caller's own access token, so row-level security applies to them.
    Caller(&'a str),
    /// Nobody signed in: the `anon` role, for what is public.
    Anon,
    /// The project's service role, for verified API keys and admin work.
    ServiceRole,
}

/// An HTTP request, described as data for the edge to send with `fetch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCall {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<String>,
}

/// Builds PostgREST requests for one Supabase project.
#[derive(Debug, Clone)]
pub struct Client<'a> {
    config: &'a Config,
}

impl<'a> Client<'a> {
    pub fn new(config: &'a Config) -> Self {
        Client { config }
    }

    fn rest_url(&self) -> String {
        format!("{}/rest/v1", self.config.supabase_url)
    }

    /// `apikey` says which project key the call comes through; the bearer
    /// token, when there is one, is the JWT PostgREST takes the role from.
    /// A legacy key is such a JWT itself. A publishable or secret key is not
    /// (PostgREST would refuse it with PGRST301), so it goes as `apikey`
    /// only and Supabase's gateway gives the call that key's role.
    fn auth_headers(&self, auth: Auth<'_>) -> Vec<(&'static str, String)> {
        let (key, bearer) = match auth {
            Auth::Caller(token) => (&self.config.anon_key, Some(token)),
            Auth::Anon => {
                let key = &self.config.anon_key;
                (key, key.is_jwt().then(|| key.value()))
            }
            Auth::ServiceRole => {
                let key = &self.config.service_role_key;
                (key, key.is_jwt().then(|| key.value()))
            }
        };
        let mut headers = vec![("apikey", key.value().to_string())];
        if let Some(bearer) = bearer {
            headers.push(("authorization", format!("Bearer {bearer}")));
        }
        headers
    }

    /// `POST /rest/v1/rpc/<name>` of one typed call ([`crate::rpc`]): the
    /// function's schema as `Content-Profile`, its arguments as the body.
    /// Only the serialization is per type; the request is built once.
    pub fn rpc<R: Rpc>(&self, rpc: &R, auth: Auth<'_>) -> Result<HttpCall, ApiError> {
        Ok(self.post_rpc(R::SCHEMA, R::NAME, rpc.arguments()?, auth))
    }

    fn post_rpc(&self, schema: &str, function: &str, body: String, auth: Auth<'_>) -> HttpCall {
        let mut headers = self.auth_headers(auth);
        headers.push(("content-type", "application/json".into()));
        headers.push(("accept", "application/json".into()));
        headers.push(("content-profile", schema.to_string()));
        HttpCall {
            method: "POST",
            url: format!("{}/rpc/{function}", self.rest_url()),
            headers,
            body: Some(body),
        }
    }

    /// A cheap call that tells whether the `platform` schema is served and
    /// migrated: `list_models`, which anyone may call, a STABLE function
    /// (PostgREST runs it read-only) over the small model catalogue, as
    /// `anon`. PGRST106 or PGRST202 in its answer means every API call
    /// would fail the same way.
    pub fn platform_check(&self) -> HttpCall {
        // No arguments: the empty object, without a fallible serialization.
        self.post_rpc(
            ListModels::SCHEMA,
            ListModels::NAME,
            "{}".into(),
            Auth::Anon,
        )
    }

    /// A cheap request that tells whether the REST layer answers at all.
    pub fn probe(&self) -> HttpCall {
        HttpCall {
            method: "GET",
            url: format!("{}/", self.rest_url()),
            headers: vec![("apikey", self.config.anon_key.value().to_string())],
            body: None,
        }
    }
}

/// PostgREST's error body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PostgrestError {
    pub code: String,
    pub message: String,
    #[serde(default)]
    pub details: Option<String>,
    #[serde(default)]
    pub hint: Option<String>,
}

/// Interprets the answer to an RPC: the JSON result, or the error it means.
///
/// A `void` function answers `null` (PostgREST since 2021), an empty body
/// (older versions) or `204`; all three are `Value::Null` here.
pub fn interpret_rpc(status: u16, body: &[u8]) -> Result<serde_json::Value, ApiError> {
    if (200..300).contains(&status) {
        if status == 204 || body.iter().all(u8::is_ascii_whitespace) {
            return Ok(serde_json::Value::Null);
        }
        return serde_json::from_slice(body).map_err(|e| ApiError::Upstream {
            detail: format!("REST answered {status} with a body that is not JSON: {e}"),
        });
    }
    match serde_json::from_slice::<PostgrestError>(body) {
        Ok(err) => Err(map_error(status, &err)),
        // A gateway in front of PostgREST (Supabase's, or a load balancer)
        // answers with its own body when PostgREST itself is away.
        Err(_) if matches!(status, 502..=504) => Err(ApiError::Unavailable {
            retry_after_secs: RETRY_AFTER_SECS,
        }),
        Err(_) => Err(ApiError::Upstream {
            detail: format!(
                "REST answered {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ),
        }),
    }
}

/// The unique constraint on `platform.api_keys.prefix`, as Postgres names it
/// in a unique violation's message.
const API_KEY_PREFIX_CONSTRAINT: &str = "\"api_keys_prefix_key\"";

/// The single place where a PostgREST error becomes an edge error.
///
/// Our own SQL functions refuse a request with `raise exception using
/// errcode = 'PTxyz' (or 'P0001'), message = <safe text>, hint = <stable code>`;
/// PostgREST answers those with status `xyz` (400 for `P0001`) and we pass the
/// code and message on. Errors that mean "try again" become 503 with
/// `Retry-After`. Everything else is a deployment fault the caller cannot fix,
/// logged in full and answered as 502; the two an operator is most likely to
/// meet after a deploy (schema not exposed, migrations not applied) get codes
/// of their own and name the fix.
pub fn map_error(status: u16, err: &PostgrestError) -> ApiError {
    let code = err.code.as_str();
    let own_code = err.hint.as_deref().filter(|h| is_stable_code(h));
    if let (true, Some(hint)) = (code.starts_with("PT") || code == "P0001", own_code) {
        return ApiError::Rejected {
            status,
            code: hint.to_string(),
            message: err.message.clone(),
        };
    }
    if code == "23505" && err.message.contains(API_KEY_PREFIX_CONSTRAINT) {
        // A new API key's random id is already taken. At 96 bits this does
        // not happen, but should it, the caller's retry makes a new key.
        return ApiError::Rejected {
            status: 409,
            code: "api_key_id_taken".into(),
            message: "another API key has the id this one drew; send the request again".into(),
        };
    }
    if is_transient(code) || matches!(status, 503 | 504) {
        return ApiError::Unavailable {
            retry_after_secs: RETRY_AFTER_SECS,
        };
    }
    let answer = format!(
        "REST {status} {code}: {} (details: {}, hint: {})",
        err.message,
        err.details.as_deref().unwrap_or("-"),
        err.hint.as_deref().unwrap_or("-")
    );
    match code {
        // `supabase db push` does not change which schemas PostgREST serves;
        // every RPC of the edge is in `platform`.
        "PGRST106" => ApiError::SchemaNotExposed {
            detail: format!(
                "{answer}. Fix: add `platform` to the exposed schemas: Dashboard → \
                 Project Settings → API → Exposed schemas, or `supabase config push`"
            ),
        },
        "PGRST202" => ApiError::RpcMissing {
            detail: format!(
                "{answer}. The function {} is missing (or takes other arguments). Fix: \
                 apply the migrations: `supabase db push`",
                function_named(&err.message).unwrap_or("PostgREST names above")
            ),
        },
        _ => ApiError::Upstream { detail: answer },
    }
}

/// The function a PGRST202 message names: `Could not find the function
/// <schema>.<name>(<args>) in the schema cache`, or `... <schema>.<name>
/// without parameters ...`.
fn function_named(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("Could not find the function ")?;
    let end = rest
        .find(|c: char| c == '(' || c.is_whitespace())
        .unwrap_or(rest.len());
    Some(&rest[..end]).filter(|name| !name.is_empty())
}

/// Errors after which the same request may well succeed: the database is
/// unreachable or restarting, a statement timed out, or a transaction lost a
/// serialization race.
fn is_transient(code: &str) -> bool {
    matches!(
        code,
        "PGRST000"
            | "PGRST001"
            | "PGRST002"
            | "PGRST003"
            | "57014"
            | "57P01"
            | "57P02"
            | "57P03"
            | "40001"
            | "40P01"
            | "55P03"
    ) || code.starts_with("08")
        || code.starts_with("53")
}

/// A stable error code is lowercase snake_case, as our SQL functions write it.
fn is_stable_code(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        && !s.starts_with('_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supabase_keys::test_keys::{LEGACY_ANON, LEGACY_SERVICE_ROLE, PUBLISHABLE, SECRET};

    fn error(code: &str, message: &str, hint: Option<&str>) -> PostgrestError {
        PostgrestError {
            code: code.into(),
            message: message.into(),
            details: None,
            hint: hint.map(Into::into),
        }
    }

    /// One row per PostgREST answer: status, code, hint → our status and code.
    #[test]
    fn maps_postgrest_errors_in_one_table() {
        let cases: &[(u16, &str, Option<&str>, u16, &str)] = &[
            (
                402,
                "PT402",
                Some("insufficient_balance"),
                402,
                "insufficient_balance",
            ),
            (404, "PT404", Some("unknown_model"), 404, "unknown_model"),
            (400, "P0001", Some("invalid_tokens"), 400, "invalid_tokens"),
            // A raise without our stable code is a fault, not a message for the caller.
            (400, "P0001", None, 502, "upstream_error"),
            (
                400,
                "P0001",
                Some("Check the input."),
                502,
                "upstream_error",
            ),
            (503, "PGRST000", None, 503, "database_unavailable"),
            (503, "PGRST001", None, 503, "database_unavailable"),
            (504, "PGRST003", None, 503, "database_unavailable"),
            (503, "08006", None, 503, "database_unavailable"),
            (500, "57014", None, 503, "database_unavailable"),
            (500, "40001", None, 503, "database_unavailable"),
            (500, "40P01", None, 503, "database_unavailable"),
            (503, "53300", None, 503, "database_unavailable"),
            (404, "PGRST202", None, 502, "rpc_missing"),
            (406, "PGRST106", None, 502, "schema_not_exposed"),
            (404, "PGRST125", None, 502, "upstream_error"),
            (300, "PGRST203", None, 502, "upstream_error"),
            (401, "PGRST301", None, 502, "upstream_error"),
            (409, "23505", None, 502, "upstream_error"),
            (400, "22P02", None, 502, "upstream_error"),
        ];
        for &(status, code, hint, want_status, want_code) in cases {
            let got = map_error(status, &error(code, "m", hint));
            assert_eq!(
                (got.status(), got.code()),
                (want_status, want_code),
                "{status} {code} {hint:?}"
            );
        }
    }

    /// A new API key whose random id is already taken is a coded 409 the
    /// caller retries (a retry draws a new key), not a 502; any other unique
    /// violation is still a fault of ours.
    #[test]
    fn a_taken_api_key_id_is_a_409_to_retry() {
        // PostgREST passes Postgres's message and detail unchanged.
        let cases = [
            (
                "duplicate key value violates unique constraint \"api_keys_prefix_key\"",
                409,
                "api_key_id_taken",
            ),
            (
                "duplicate key value violates unique constraint \"api_keys_secret_hash_key\"",
                502,
                "upstream_error",
            ),
            (
                "duplicate key value violates unique constraint \"users_pkey\"",
                502,
                "upstream_error",
            ),
        ];
        for (message, want_status, want_code) in cases {
            let mut err = error("23505", message, None);
            err.details = Some("Key (prefix)=(cds_0123) already exists.".into());
            let got = map_error(409, &err);
            assert_eq!(
                (got.status(), got.code()),
                (want_status, want_code),
                "{message}"
            );
            assert!(!got.to_string().contains("cds_0123"), "{got}");
        }
    }

    /// PostgREST's own bodies for the two deployment faults (v12: the
    /// requested schema in `message`, the exposed ones in `hint`; the
    /// function and its argument names in `message`). The operator reads the
    /// fix in the log; the caller reads only that the service is
    /// misconfigured.
    #[test]
    fn deployment_faults_tell_the_operator_the_fix() {
        // (status, code, message, hint, our code, what the logged detail says)
        type Case<'a> = (
            u16,
            &'a str,
            &'a str,
            Option<&'a str>,
            &'a str,
            &'a [&'a str],
        );
        let cases: &[Case<'_>] = &[
            (
                406,
                "PGRST106",
                "Invalid schema: platform",
                Some("Only the following schemas are exposed: public, graphql_public"),
                "schema_not_exposed",
                &[
                    "Invalid schema: platform",
                    "add `platform` to the exposed schemas",
                    "Exposed schemas",
                    "supabase config push",
                ],
            ),
            (
                404,
                "PGRST202",
                "Could not find the function platform.list_models without parameters in the schema cache",
                None,
                "rpc_missing",
                &["function platform.list_models is missing", "supabase db push"],
            ),
            (
                404,
                "PGRST202",
                "Could not find the function platform.reserve_tokens(p_tokens, p_ttl_seconds) in the schema cache",
                Some("Perhaps you meant to call the function platform.reserve_tokens(p_tokens)"),
                "rpc_missing",
                &["function platform.reserve_tokens is missing", "supabase db push"],
            ),
            (
                404,
                "PGRST202",
                "an unexpected wording",
                None,
                "rpc_missing",
                &["an unexpected wording", "supabase db push"],
            ),
        ];
        for &(status, code, message, hint, want_code, detail_has) in cases {
            let got = map_error(
                status,
                &PostgrestError {
                    code: code.into(),
                    message: message.into(),
                    details: None,
                    hint: hint.map(Into::into),
                },
            );
            assert_eq!((got.status(), got.code()), (502, want_code), "{message}");
            let detail = got.log_detail().unwrap_or_default();
            for part in detail_has {
                assert!(detail.contains(part), "{detail:?} lacks {part:?}");
            }
            assert_eq!(
                serde_json::from_str::<serde_json::Value>(&got.body()).unwrap(),
                serde_json::json!({"error": {"code": want_code,
                    "message": "the service is misconfigured"}})
            );
        }
    }

    #[test]
    fn rejected_keeps_the_database_message() {
        let got = map_error(
            402,
            &error(
                "PT402",
                "balance 10 does not cover 500",
                Some("insufficient_balance"),
            ),
        );
        assert_eq!(got.to_string(), "balance 10 does not cover 500");
    }

    #[test]
    fn void_results_in_any_form_are_null() {
        assert_eq!(interpret_rpc(200, b"null"), Ok(serde_json::Value::Null));
        assert_eq!(interpret_rpc(200, b""), Ok(serde_json::Value::Null));
        assert_eq!(interpret_rpc(204, b""), Ok(serde_json::Value::Null));
    }

    #[test]
    fn scalar_and_set_results_pass_through() {
        assert_eq!(interpret_rpc(200, b"42"), Ok(serde_json::json!(42)));
        assert_eq!(
            interpret_rpc(200, br#"[{"a":1}]"#),
            Ok(serde_json::json!([{"a": 1}]))
        );
    }

    #[test]
    fn a_gateway_page_instead_of_json_means_unavailable() {
        let got = interpret_rpc(502, b"<html>Bad Gateway</html>").unwrap_err();
        assert_eq!(got.status(), 503);
        let got = interpret_rpc(500, b"<html>oops</html>").unwrap_err();
        assert_eq!(got.status(), 502);
    }

    fn config_with_keys(anon: &str, service_role: &str) -> Config {
        let vars = [
            ("SUPABASE_URL", "http://127.0.0.1:54321"),
            ("SUPABASE_ANON_KEY", anon),
            ("SUPABASE_SERVICE_ROLE_KEY", service_role),
            ("ALLOWED_ORIGINS", "*"),
        ];
        Config::from_lookup(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        })
        .unwrap()
    }

    /// The `apikey` and `authorization` headers of a call, in that order.
    fn auth_of(call: &HttpCall) -> Vec<(&'static str, String)> {
        call.headers
            .iter()
            .filter(|(name, _)| matches!(*name, "apikey" | "authorization"))
            .cloned()
            .collect()
    }

    #[test]
    fn rpc_request_carries_schema_and_the_callers_token() {
        let config = config_with_keys(LEGACY_ANON, LEGACY_SERVICE_ROLE);
        let rpc = crate::rpc::usage::ReserveTokens {
            tokens: 1,
            ttl_seconds: 60,
            acting: crate::rpc::ActingFor::TOKEN,
        };
        let call = Client::new(&config)
            .rpc(&rpc, Auth::Caller("user-jwt"))
            .unwrap();
        assert_eq!(
            call.url,
            "http://127.0.0.1:54321/rest/v1/rpc/reserve_tokens"
        );
        assert!(call
            .headers
            .contains(&("content-profile", "platform".into())));
        assert_eq!(
            call.body.as_deref(),
            Some(r#"{"p_tokens":1,"p_ttl_seconds":60}"#)
        );
        assert_eq!(
            auth_of(&call)[1],
            ("authorization", "Bearer user-jwt".into())
        );
    }

    /// One row per key kind and authority: exactly the headers sent. A
    /// publishable or secret key never goes as a bearer token (PostgREST
    /// refuses what is not a JWT there, PGRST301).
    #[test]
    fn each_authority_sends_the_keys_its_kind_allows() {
        let bearer = |token: &str| ("authorization", format!("Bearer {token}"));
        let apikey = |key: &str| ("apikey", key.to_string());
        type Case<'a> = (&'a str, &'a str, Auth<'a>, Vec<(&'static str, String)>);
        let cases: Vec<Case<'_>> = vec![
            (
                LEGACY_ANON,
                LEGACY_SERVICE_ROLE,
                Auth::Caller("user-jwt"),
                vec![apikey(LEGACY_ANON), bearer("user-jwt")],
            ),
            (
                LEGACY_ANON,
                LEGACY_SERVICE_ROLE,
                Auth::Anon,
                vec![apikey(LEGACY_ANON), bearer(LEGACY_ANON)],
            ),
            (
                LEGACY_ANON,
                LEGACY_SERVICE_ROLE,
                Auth::ServiceRole,
                vec![apikey(LEGACY_SERVICE_ROLE), bearer(LEGACY_SERVICE_ROLE)],
            ),
            (
                PUBLISHABLE,
                SECRET,
                Auth::Caller("user-jwt"),
                vec![apikey(PUBLISHABLE), bearer("user-jwt")],
            ),
            (PUBLISHABLE, SECRET, Auth::Anon, vec![apikey(PUBLISHABLE)]),
            (PUBLISHABLE, SECRET, Auth::ServiceRole, vec![apikey(SECRET)]),
            // Halfway through moving to the new keys, each key as its kind allows.
            (
                LEGACY_ANON,
                SECRET,
                Auth::Anon,
                vec![apikey(LEGACY_ANON), bearer(LEGACY_ANON)],
            ),
            (LEGACY_ANON, SECRET, Auth::ServiceRole, vec![apikey(SECRET)]),
            (
                PUBLISHABLE,
                LEGACY_SERVICE_ROLE,
                Auth::Anon,
                vec![apikey(PUBLISHABLE)],
            ),
            (
                PUBLISHABLE,
                LEGACY_SERVICE_ROLE,
                Auth::ServiceRole,
                vec![apikey(LEGACY_SERVICE_ROLE), bearer(LEGACY_SERVICE_ROLE)],
            ),
        ];
        for (anon, service, auth, want) in cases {
            let config = config_with_keys(anon, service);
            let call = Client::new(&config).rpc(&ListModels {}, auth).unwrap();
            assert_eq!(auth_of(&call), want, "{anon} / {service} / {auth:?}");
        }
    }

    #[test]
    fn the_platform_check_reads_the_catalogue_as_anon() {
        for (anon, service) in [(LEGACY_ANON, LEGACY_SERVICE_ROLE), (PUBLISHABLE, SECRET)] {
            let config = config_with_keys(anon, service);
            let check = Client::new(&config).platform_check();
            assert_eq!(
                (check.method, check.url.as_str(), check.body.as_deref()),
                (
                    "POST",
                    "http://127.0.0.1:54321/rest/v1/rpc/list_models",
                    Some("{}")
                )
            );
            assert!(check
                .headers
                .contains(&("content-profile", "platform".into())));
            let anon_call = Client::new(&config)
                .rpc(&ListModels {}, Auth::Anon)
                .unwrap();
            assert_eq!(check, anon_call);
            assert!(!auth_of(&check).iter().any(|(_, v)| v.contains(service)));
        }
    }

    /// The deployment report lives in `public`, which every project
    /// exposes: its call names that schema, not `platform`.
    #[test]
    fn a_call_names_the_schema_of_its_function() {
        let config = config_with_keys(LEGACY_ANON, LEGACY_SERVICE_ROLE);
        let call = Client::new(&config)
            .rpc(
                &crate::rpc::operations::DeploymentReport {},
                Auth::ServiceRole,
            )
            .unwrap();
        assert!(call.headers.contains(&("content-profile", "public".into())));
        assert!(call.url.ends_with("/rest/v1/rpc/cds_deployment_report"));
    }

    #[test]
    fn the_probe_sends_only_the_public_key() {
        for (anon, service) in [(LEGACY_ANON, LEGACY_SERVICE_ROLE), (PUBLISHABLE, SECRET)] {
            let config = config_with_keys(anon, service);
            let probe = Client::new(&config).probe();
            assert_eq!(
                (probe.method, probe.url.as_str()),
                ("GET", "http://127.0.0.1:54321/rest/v1/")
            );
            assert_eq!(auth_of(&probe), vec![("apikey", anon.to_string())]);
        }
    }
}
