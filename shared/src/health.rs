//! `GET /health`: the Worker's version, which kind of project API keys it
//! runs with (never the keys), and whether the REST layer answers.

use crate::supabase_keys::KeyScheme;
use serde::Serialize;

/// What the REST probe found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

/// The body of `GET /health`. It is 200 whenever the Worker itself runs:
/// `status` says `degraded` when the REST layer does not answer, so a monitor
/// can alert on it without the edge looking down to a load balancer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthReport {
    pub status: &'static str,
    pub version: &'static str,
    /// `legacy_jwt`, `publishable_secret` or `mixed`: which keys the edge
    /// sends, so an operator moving to the new keys sees the deploy took.
    pub api_keys: KeyScheme,
    pub rest: RestStatus,
}

impl HealthReport {
    pub fn new(api_keys: KeyScheme, rest: RestStatus) -> Self {
        HealthReport {
            status: if rest.reachable { "ok" } else { "degraded" },
            version: crate::VERSION,
            api_keys,
            rest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reachable_rest_is_ok() {
        let report = HealthReport::new(KeyScheme::LegacyJwt, RestStatus::from_answer(Some(200)));
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
            let report = HealthReport::new(scheme, RestStatus::from_answer(Some(200)));
            let body = serde_json::to_value(&report).unwrap();
            assert_eq!(body["api_keys"], json);
        }
    }

    #[test]
    fn a_5xx_or_no_answer_is_degraded() {
        assert_eq!(
            HealthReport::new(KeyScheme::LegacyJwt, RestStatus::from_answer(Some(503))).status,
            "degraded"
        );
        let report = HealthReport::new(KeyScheme::LegacyJwt, RestStatus::from_answer(None));
        assert_eq!(report.status, "degraded");
        assert_eq!(
            serde_json::to_value(&report).unwrap()["rest"],
            serde_json::json!({"reachable": false})
        );
    }
}
