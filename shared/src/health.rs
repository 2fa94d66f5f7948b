//! `GET /health`: the Worker's version, which kind of project API keys it
//! runs with (never the keys), whether the REST layer answers, and whether
//! the `platform` schema behind it is served and migrated.

use crate::supabase_keys::KeyScheme;
use crate::ApiError;
use serde::Serialize;

/// What the REST probe found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct RestStatus {
    /// The REST layer answered with a status below 500.
    pub reachable: bool,
    /// The status it answered with, when it answered at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

impl RestStatus {
    pub fn from_answer(status: Option<u16>) -> Self {
        RestStatus {
            reachable: matches!(status, Some(s) if s < 500),
            status,
        }
    }
}

/// What the `platform` check (`postgrest::Client::platform_check`) found.
/// The REST layer can answer while the edge's schema is not exposed or its
/// functions are not migrated; every API call would then fail, so this is
/// checked apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct PlatformStatus {
    /// The check's function answered with a result.
    pub reachable: bool,
    /// The status it answered with, when it answered at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why not, as the API's error code: `schema_not_exposed`,
    /// `rpc_missing`, `database_unavailable`, `upstream_error`...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

impl PlatformStatus {
    /// `status` is the check's HTTP status (`None` without an answer) and
    /// `result` what `postgrest::interpret_rpc` made of it.
    pub fn from_result(status: Option<u16>, result: &Result<serde_json::Value, ApiError>) -> Self {
        PlatformStatus {
            reachable: result.is_ok(),
            status,
            code: result.as_ref().err().map(|e| e.code().to_string()),
        }
    }
}

/// The body of `GET /health`. It is 200 whenever the Worker itself runs:
/// `status` says `degraded` when the REST layer does not answer or the
/// `platform` check fails, so a monitor can alert on it without the edge
/// looking down to a load balancer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct HealthReport {
    pub status: &'static str,
    pub version: &'static str,
    /// `legacy_jwt`, `publishable_secret` or `mixed`: which keys the edge
    /// sends, so an operator moving to the new keys sees the deploy took.
    pub api_keys: KeyScheme,
    pub rest: RestStatus,
    pub platform: PlatformStatus,
}

impl HealthReport {
    pub fn new(api_keys: KeyScheme, rest: RestStatus, platform: PlatformStatus) -> Self {
        HealthReport {
            status: if rest.reachable && platform.reachable {
                "ok"
            } else {
                "degraded"
            },
            version: crate::VERSION,
            api_keys,
            rest,
            platform,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgrest::interpret_rpc;
    use serde_json::json;

    fn platform(answer: Option<(u16, &str)>) -> PlatformStatus {
        let result = match answer {
            Some((status, body)) => interpret_rpc(status, body.as_bytes()),
            // What `rest::send` answers when nothing came back in time.
            None => Err(ApiError::Unavailable {
                retry_after_secs: 2,
            }),
        };
        PlatformStatus::from_result(answer.map(|(status, _)| status), &result)
    }

    fn healthy_platform() -> PlatformStatus {
        platform(Some((200, "[]")))
    }

    #[test]
    fn reachable_rest_is_ok() {
        let report = HealthReport::new(
            KeyScheme::LegacyJwt,
            RestStatus::from_answer(Some(200)),
            healthy_platform(),
        );
        assert_eq!(report.status, "ok");
        assert_eq!(report.version, crate::VERSION);
    }

    #[test]
    fn the_report_names_the_kind_of_keys_in_use() {
        for (scheme, json) in [
            (KeyScheme::LegacyJwt, "legacy_jwt"),
            (KeyScheme::PublishableSecret, "publishable_secret"),
            (KeyScheme::Mixed, "mixed"),
        ] {
            let report = HealthReport::new(
                scheme,
                RestStatus::from_answer(Some(200)),
                healthy_platform(),
            );
            let body = serde_json::to_value(&report).unwrap();
            assert_eq!(body["api_keys"], json);
        }
    }

    #[test]
    fn a_5xx_or_no_answer_is_degraded() {
        assert_eq!(
            HealthReport::new(
                KeyScheme::LegacyJwt,
                RestStatus::from_answer(Some(503)),
                healthy_platform()
            )
            .status,
            "degraded"
        );
        let report = HealthReport::new(
            KeyScheme::LegacyJwt,
            RestStatus::from_answer(None),
            platform(None),
        );
        assert_eq!(report.status, "degraded");
        assert_eq!(
            serde_json::to_value(&report).unwrap()["rest"],
            json!({"reachable": false})
        );
    }

    /// One row per answer to the `platform` check, as PostgREST gives it:
    /// what `/health` reports under `platform`, and the overall status.
    #[test]
    fn the_platform_check_reports_each_deployment_fault_by_its_code() {
        let not_exposed = r#"{"code":"PGRST106","message":"Invalid schema: platform","details":null,"hint":"Only the following schemas are exposed: public, graphql_public"}"#;
        let missing = r#"{"code":"PGRST202","message":"Could not find the function platform.list_models without parameters in the schema cache","details":null,"hint":null}"#;
        let bad_key = r#"{"code":"PGRST301","message":"Expected 3 parts in JWT; got 1","details":null,"hint":null}"#;
        // (the check's status and body, `platform` in the report, `status`)
        type Case<'a> = (Option<(u16, &'a str)>, serde_json::Value, &'a str);
        let cases: &[Case<'_>] = &[
            (
                Some((200, r#"[{"name":"gpt-4o-mini"}]"#)),
                json!({"reachable": true, "status": 200}),
                "ok",
            ),
            (
                Some((406, not_exposed)),
                json!({"reachable": false, "status": 406, "code": "schema_not_exposed"}),
                "degraded",
            ),
            (
                Some((404, missing)),
                json!({"reachable": false, "status": 404, "code": "rpc_missing"}),
                "degraded",
            ),
            (
                Some((401, bad_key)),
                json!({"reachable": false, "status": 401, "code": "upstream_error"}),
                "degraded",
            ),
            (
                Some((
                    503,
                    r#"{"code":"PGRST001","message":"x","details":null,"hint":null}"#,
                )),
                json!({"reachable": false, "status": 503, "code": "database_unavailable"}),
                "degraded",
            ),
            (
                None,
                json!({"reachable": false, "code": "database_unavailable"}),
                "degraded",
            ),
        ];
        for (answer, want, overall) in cases {
            let report = HealthReport::new(
                KeyScheme::PublishableSecret,
                RestStatus::from_answer(Some(200)),
                platform(*answer),
            );
            let body = serde_json::to_value(&report).unwrap();
            assert_eq!(body["platform"], *want, "{answer:?}");
            assert_eq!(body["status"], *overall, "{answer:?}");
        }
    }

    /// The whole body, so a change of shape is a decision: no key, token or
    /// PostgREST text in it, only codes.
    #[test]
    fn the_body_has_this_shape_and_nothing_secret() {
        let report = HealthReport::new(
            KeyScheme::LegacyJwt,
            RestStatus::from_answer(Some(200)),
            platform(Some((
                406,
                r#"{"code":"PGRST106","message":"Invalid schema: platform","details":null,"hint":null}"#,
            ))),
        );
        assert_eq!(
            serde_json::to_value(&report).unwrap(),
            json!({
                "status": "degraded",
                "version": crate::VERSION,
                "api_keys": "legacy_jwt",
                "rest": {"reachable": true, "status": 200},
                "platform": {"reachable": false, "status": 406, "code": "schema_not_exposed"},
            })
        );
    }
}
