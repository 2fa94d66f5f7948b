//! Anonymous sign-ins: what a Supabase access token with `is_anonymous: true`
//! (role `authenticated`, a user nobody has identified) may do.
//!
//! The policy is `ANONYMOUS_USERS` ([`AnonymousUsers`]): `read_only` (the
//! default) refuses every endpoint that spends, holds or releases tokens,
//! creates or revokes API keys, or changes the account, with 403
//! `anonymous_user_read_only`; `deny` refuses every endpoint a user's token
//! reaches with 403 `anonymous_users_not_allowed`. There is no `full`: the
//! same token can call the RPCs straight through the REST layer, so the
//! database enforces read-only itself (`platform.caller_user_id` refuses
//! writes for an anonymous caller), and the edge may only be stricter.

use crate::error::ApiError;
use crate::routes::Endpoint;
use serde::{Deserialize, Serialize};

/// The `ANONYMOUS_USERS` policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnonymousUsers {
    /// Reads only: no spending, no API keys, no account changes.
    #[default]
    ReadOnly,
    /// Anonymous sign-ins are refused outright.
    Deny,
}

impl AnonymousUsers {
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "read_only" => Ok(AnonymousUsers::ReadOnly),
            "deny" => Ok(AnonymousUsers::Deny),
            _ => Err(format!(
                "`{raw}` is not `read_only` or `deny` (the database enforces read-only, so there is no `full`)"
            )),
        }
    }
}

/// Whether `endpoint` only reads: an anonymous user may call it under
/// `read_only`.
fn only_reads(endpoint: Endpoint) -> bool {
    match endpoint {
        Endpoint::Health
        | Endpoint::Me
        | Endpoint::ListApiKeys
        | Endpoint::UsageOverview
        | Endpoint::ListUsageEvents
        | Endpoint::UsageEventStatus
        | Endpoint::ListModels
        | Endpoint::OpenApi
        | Endpoint::Metrics => true,
        Endpoint::DbUserInsertHook
        | Endpoint::BeforeUserCreatedHook
        | Endpoint::CreateApiKey
        | Endpoint::RevokeApiKey
        | Endpoint::RecordUsage
        | Endpoint::RecordUsageBatch
        | Endpoint::ReserveTokens
        | Endpoint::ReleaseReservation
        | Endpoint::AdminGrant
        | Endpoint::PutModel
        | Endpoint::DeactivateModel
        | Endpoint::SetDefaultModel => false,
    }
}

/// Decides whether an anonymous sign-in's verified token is served on
/// `endpoint` under `policy`. Only called for tokens with `is_anonymous`.
pub fn admit(policy: AnonymousUsers, endpoint: Endpoint) -> Result<(), ApiError> {
    match policy {
        AnonymousUsers::Deny => Err(ApiError::Forbidden {
            code: "anonymous_users_not_allowed",
            message: "anonymous sign-ins are not allowed; sign in with an account".into(),
        }),
        AnonymousUsers::ReadOnly if only_reads(endpoint) => Ok(()),
        AnonymousUsers::ReadOnly => Err(ApiError::Forbidden {
            code: "anonymous_user_read_only",
            message: "anonymous users may only read; sign in with an account to do this".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::ROUTES;

    fn verdict(policy: AnonymousUsers, endpoint: Endpoint) -> Option<(u16, String)> {
        admit(policy, endpoint)
            .err()
            .map(|e| (e.status(), e.code().to_string()))
    }

    /// One row per endpoint: what an anonymous user gets under each policy
    /// (None: served).
    #[test]
    fn anonymous_users_read_only_or_not_at_all() {
        use AnonymousUsers::{Deny, ReadOnly};
        const RO: Option<(u16, &str)> = Some((403, "anonymous_user_read_only"));
        const NO: Option<(u16, &str)> = Some((403, "anonymous_users_not_allowed"));
        let cases = [
            (Endpoint::Me, None, NO),
            (Endpoint::ListApiKeys, None, NO),
            (Endpoint::UsageOverview, None, NO),
            (Endpoint::UsageEventStatus, None, NO),
            (Endpoint::ListModels, None, NO),
            (Endpoint::CreateApiKey, RO, NO),
            (Endpoint::RevokeApiKey, RO, NO),
            (Endpoint::RecordUsage, RO, NO),
            (Endpoint::RecordUsageBatch, RO, NO),
            (Endpoint::ReserveTokens, RO, NO),
            (Endpoint::ReleaseReservation, RO, NO),
            (Endpoint::SetDefaultModel, RO, NO),
            (Endpoint::AdminGrant, RO, NO),
            (Endpoint::PutModel, RO, NO),
            (Endpoint::DeactivateModel, RO, NO),
        ];
        for (endpoint, read_only, deny) in cases {
            let want = |w: Option<(u16, &str)>| w.map(|(s, c)| (s, c.to_string()));
            assert_eq!(
                verdict(ReadOnly, endpoint),
                want(read_only),
                "{endpoint:?} read_only"
            );
            assert_eq!(verdict(Deny, endpoint), want(deny), "{endpoint:?} deny");
        }
    }

    /// Every route a write method reaches is refused under read_only.
    #[test]
    fn no_write_route_is_open_to_anonymous_users() {
        for (method, path, endpoint) in ROUTES {
            if matches!(*method, "POST" | "PUT" | "DELETE" | "PATCH") {
                assert!(
                    admit(AnonymousUsers::ReadOnly, *endpoint).is_err(),
                    "{method} {path}"
                );
            }
        }
    }

    #[test]
    fn the_policy_parses_and_defaults_to_read_only() {
        assert_eq!(AnonymousUsers::default(), AnonymousUsers::ReadOnly);
        assert_eq!(
            AnonymousUsers::parse(" Read_Only "),
            Ok(AnonymousUsers::ReadOnly)
        );
        assert_eq!(AnonymousUsers::parse("deny"), Ok(AnonymousUsers::Deny));
        assert!(AnonymousUsers::parse("full").is_err());
        assert!(AnonymousUsers::parse("").is_err());
    }
}
