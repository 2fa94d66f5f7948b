//! The route table of the Worker: which endpoint a method and path reach.
//!
//! Kept here, apart from the handlers, so routing is tested natively and the
//! table can be listed (the OpenAPI document is checked against it).

use crate::error::ApiError;

/// Every endpoint the Worker serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Health,
    /// `POST /auth/hooks/db-user-insert`: Supabase Database Webhook on `auth.users`.
    DbUserInsertHook,
    /// `POST /auth/hooks/before-user-created`: Supabase Auth's signup hook.
    BeforeUserCreatedHook,
    Me,
    CreateApiKey,
    ListApiKeys,
    RevokeApiKey,
    RecordUsage,
    RecordUsageBatch,
    ReserveTokens,
    ReleaseReservation,
    UsageOverview,
    /// `GET /v1/usage/events?limit=&before=`: the caller's own recorded
    /// events, newest first, a page at a time.
    ListUsageEvents,
    /// `GET /v1/usage/events/{key}`: what became of an event sent with
    /// `Prefer: respond-async`.
    UsageEventStatus,
    AdminGrant,
    /// `PUT /v1/admin/models/{name}`: an admin creates or changes a model.
    PutModel,
    /// `DELETE /v1/admin/models/{name}`: an admin deactivates a model.
    DeactivateModel,
    SetDefaultModel,
    ListModels,
    OpenApi,
    Metrics,
}

impl Endpoint {
    /// Whether a call is counted in telemetry (`shared::telemetry`). Health
    /// checks and the API description are polled by monitors and tools;
    /// counting every poll would bury the edge functions' own metrics.
    pub fn records_telemetry(self) -> bool {
        !matches!(
            self,
            Endpoint::Health | Endpoint::OpenApi | Endpoint::Metrics
        )
    }

    /// The name telemetry records for this endpoint (`function_name`).
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Health => "health",
            Endpoint::DbUserInsertHook => "auth_hook_db_user_insert",
            Endpoint::BeforeUserCreatedHook => "auth_hook_before_user_created",
            Endpoint::Me => "me",
            Endpoint::CreateApiKey => "api_keys_create",
            Endpoint::ListApiKeys => "api_keys_list",
            Endpoint::RevokeApiKey => "api_keys_revoke",
            Endpoint::RecordUsage => "usage_record",
            Endpoint::RecordUsageBatch => "usage_record_batch",
            Endpoint::ReserveTokens => "usage_reserve",
            Endpoint::ReleaseReservation => "usage_release",
            Endpoint::UsageOverview => "usage_overview",
            Endpoint::ListUsageEvents => "usage_events_list",
            Endpoint::UsageEventStatus => "usage_event_status",
            Endpoint::AdminGrant => "admin_grant",
            Endpoint::PutModel => "admin_model_put",
            Endpoint::DeactivateModel => "admin_model_deactivate",
            Endpoint::SetDefaultModel => "me_default_model",
            Endpoint::ListModels => "models_list",
            Endpoint::OpenApi => "openapi",
            Endpoint::Metrics => "metrics",
        }
    }
}

/// One row of the table: method, path pattern and endpoint. A pattern is a
/// literal path, or a literal prefix ending in `/` followed by one parameter,
/// `{name}`, as its last segment (`/v1/api-keys/{id}`); no route needs more,
/// and a test keeps it so.
pub const ROUTES: &[(&str, &str, Endpoint)] = &[
    ("GET", "/health", Endpoint::Health),
    ("HEAD", "/health", Endpoint::Health),
    (
        "POST",
        "/auth/hooks/db-user-insert",
        Endpoint::DbUserInsertHook,
    ),
    (
        "POST",
        "/auth/hooks/before-user-created",
        Endpoint::BeforeUserCreatedHook,
    ),
    ("GET", "/v1/me", Endpoint::Me),
    ("POST", "/v1/api-keys", Endpoint::CreateApiKey),
    ("GET", "/v1/api-keys", Endpoint::ListApiKeys),
    ("DELETE", "/v1/api-keys/{id}", Endpoint::RevokeApiKey),
    ("POST", "/v1/usage", Endpoint::RecordUsage),
    ("POST", "/v1/usage/batch", Endpoint::RecordUsageBatch),
    ("POST", "/v1/usage/reservations", Endpoint::ReserveTokens),
    (
        "DELETE",
        "/v1/usage/reservations/{id}",
        Endpoint::ReleaseReservation,
    ),
    ("GET", "/v1/usage/overview", Endpoint::UsageOverview),
    ("GET", "/v1/usage/events", Endpoint::ListUsageEvents),
    ("GET", "/v1/usage/events/{id}", Endpoint::UsageEventStatus),
    ("POST", "/v1/admin/grants", Endpoint::AdminGrant),
    ("PUT", "/v1/admin/models/{name}", Endpoint::PutModel),
    (
        "DELETE",
        "/v1/admin/models/{name}",
        Endpoint::DeactivateModel,
    ),
    ("PUT", "/v1/me/default-model", Endpoint::SetDefaultModel),
    ("GET", "/v1/models", Endpoint::ListModels),
    ("GET", "/v1/openapi.json", Endpoint::OpenApi),
    ("GET", "/v1/metrics", Endpoint::Metrics),
];

/// A resolved route, with the path parameters it captured.
#[derive(Debug, PartialEq, Eq)]
pub struct Matched {
    pub endpoint: Endpoint,
    pub params: Vec<(String, String)>,
}

impl Matched {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What a pattern makes of a path: `None` when it does not match, else the
/// parameter it captured, if it has one. A parameter is one non-empty
/// segment, taken as it came (percent-encoding and all).
fn match_pattern<'p>(
    pattern: &'static str,
    path: &'p str,
) -> Option<Option<(&'static str, &'p str)>> {
    // Most patterns are literal: one comparison, which checks lengths first.
    let Some(open) = pattern.strip_suffix('}') else {
        return (pattern == path).then_some(None);
    };
    let (prefix, name) = open.rsplit_once('{')?;
    let value = path.strip_prefix(prefix)?;
    (!value.is_empty() && !value.contains('/')).then_some(Some((name, value)))
}

/// The route table as a matcher: a scan of [`ROUTES`]. No pattern shares its
/// paths with another (tested), so the first that matches is the only one.
/// A radix tree (`matchit`, before) was built in every isolate for 19
/// patterns, and cost the wasm more than the scan costs time.
pub struct Router(());

impl Router {
    pub fn new() -> Self {
        Router(())
    }

    pub fn resolve(&self, method: &str, path: &str) -> Result<Matched, ApiError> {
        let (pattern, param) = ROUTES
            .iter()
            .find_map(|&(_, pattern, _)| Some((pattern, match_pattern(pattern, path)?)))
            .ok_or(ApiError::NotFound)?;
        let mut served = ROUTES.iter().filter(|(_, p, _)| *p == pattern);
        let endpoint = served
            .clone()
            .find(|(m, _, _)| m.eq_ignore_ascii_case(method))
            .map(|(_, _, e)| *e)
            .ok_or_else(|| ApiError::MethodNotAllowed {
                allowed: served.by_ref().map(|(m, _, _)| *m).collect(),
            })?;
        Ok(Matched {
            endpoint,
            params: param
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .into_iter()
                .collect(),
        })
    }
}

impl Default for Router {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_compiles() {
        let _ = Router::new();
    }

    #[test]
    fn resolves_known_routes() {
        let router = Router::new();
        assert_eq!(
            router.resolve("GET", "/health").unwrap().endpoint,
            Endpoint::Health
        );
    }

    /// The list and one event's status share a prefix; each reaches its own.
    #[test]
    fn usage_events_list_and_status_are_apart() {
        let router = Router::new();
        let list = router.resolve("GET", "/v1/usage/events").unwrap();
        assert_eq!(
            (list.endpoint, list.params.len()),
            (Endpoint::ListUsageEvents, 0)
        );
        let status = router.resolve("GET", "/v1/usage/events/key-1").unwrap();
        assert_eq!(status.endpoint, Endpoint::UsageEventStatus);
        assert_eq!(status.param("id"), Some("key-1"));
    }

    #[test]
    fn monitoring_endpoints_are_not_recorded_in_telemetry() {
        assert!(!Endpoint::Health.records_telemetry());
        assert!(!Endpoint::OpenApi.records_telemetry());
        assert!(Endpoint::RecordUsage.records_telemetry());
    }

    #[test]
    fn path_parameters_are_captured() {
        let matched = Router::new()
            .resolve(
                "DELETE",
                "/v1/api-keys/0b6f1c4e-1111-4111-8111-111111111111",
            )
            .unwrap();
        assert_eq!(matched.endpoint, Endpoint::RevokeApiKey);
        assert_eq!(
            matched.param("id"),
            Some("0b6f1c4e-1111-4111-8111-111111111111")
        );
    }

    #[test]
    fn a_model_name_with_a_slash_arrives_percent_encoded_in_one_segment() {
        let router = Router::new();
        let matched = router
            .resolve("PUT", "/v1/admin/models/acme%2Fchat-1")
            .unwrap();
        assert_eq!(matched.endpoint, Endpoint::PutModel);
        assert_eq!(matched.param("name"), Some("acme%2Fchat-1"));
        assert_eq!(
            router
                .resolve("DELETE", "/v1/admin/models/gpt-4o-mini")
                .unwrap()
                .endpoint,
            Endpoint::DeactivateModel
        );
        assert_eq!(
            router.resolve("PUT", "/v1/admin/models/acme/chat-1"),
            Err(ApiError::NotFound)
        );
    }

    #[test]
    fn one_path_serves_several_methods() {
        let router = Router::new();
        assert_eq!(
            router.resolve("GET", "/v1/api-keys").unwrap().endpoint,
            Endpoint::ListApiKeys
        );
        assert_eq!(
            router.resolve("POST", "/v1/api-keys").unwrap().endpoint,
            Endpoint::CreateApiKey
        );
        assert_eq!(
            router.resolve("PUT", "/v1/api-keys"),
            Err(ApiError::MethodNotAllowed {
                allowed: vec!["POST", "GET"]
            })
        );
    }

    #[test]
    fn unknown_path_is_not_found() {
        assert_eq!(
            Router::new().resolve("GET", "/nope"),
            Err(ApiError::NotFound)
        );
    }

    #[test]
    fn wrong_method_lists_the_allowed_ones() {
        assert_eq!(
            Router::new().resolve("POST", "/health"),
            Err(ApiError::MethodNotAllowed {
                allowed: vec!["GET", "HEAD"]
            })
        );
    }

    /// The scan assumes what `match_pattern` reads: a literal path, or a
    /// literal prefix ending in `/` and one `{name}` as the last segment.
    #[test]
    fn every_pattern_is_a_literal_or_ends_in_one_parameter() {
        for &(_, pattern, _) in ROUTES {
            assert!(pattern.starts_with('/'), "{pattern}");
            match pattern.split_once('{') {
                None => assert!(!pattern.contains('}'), "{pattern}"),
                Some((prefix, rest)) => {
                    assert!(prefix.ends_with('/'), "{pattern}");
                    let name = rest.strip_suffix('}').expect(pattern);
                    assert!(
                        !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase()),
                        "{pattern}"
                    );
                }
            }
        }
    }

    /// The router the table was compiled into before (matchit's radix tree,
    /// with each pattern's methods in table order), kept as the reference.
    fn reference_tree() -> (matchit::Router<usize>, Vec<&'static str>) {
        let mut tree = matchit::Router::new();
        let mut patterns: Vec<&str> = Vec::new();
        for &(_, pattern, _) in ROUTES {
            if !patterns.contains(&pattern) {
                tree.insert(pattern, patterns.len()).unwrap();
                patterns.push(pattern);
            }
        }
        (tree, patterns)
    }

    fn reference(
        (tree, patterns): &(matchit::Router<usize>, Vec<&'static str>),
        method: &str,
        path: &str,
    ) -> Result<Matched, ApiError> {
        let found = tree.at(path).map_err(|_| ApiError::NotFound)?;
        let served: Vec<_> = ROUTES
            .iter()
            .filter(|(_, p, _)| *p == patterns[*found.value])
            .collect();
        let endpoint = served
            .iter()
            .find(|(m, _, _)| m.eq_ignore_ascii_case(method))
            .map(|(_, _, e)| *e)
            .ok_or_else(|| ApiError::MethodNotAllowed {
                allowed: served.iter().map(|(m, _, _)| *m).collect(),
            })?;
        let params = found
            .params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Ok(Matched { endpoint, params })
    }

    #[test]
    fn every_path_is_routed_as_matchit_routed_it() {
        // Each pattern, its parameter filled in or not, then bent: trailing
        // slashes, a segment more, doubled slashes, case, encodings.
        let mut paths: Vec<String> = vec![
            String::new(),
            "/".into(),
            "//".into(),
            "/v1".into(),
            "/v1/".into(),
            "/nope".into(),
            "/v1/usage/events/a%2Fb".into(),
            "/v1/usage/events/a b".into(),
            "/v1/usage/events/{id}".into(),
            "/v1/usage/events/%7Bid%7D".into(),
            "/v1/usage/events/ü".into(),
            "/v1/usage/events/..".into(),
            "/v1/usage/events/batch".into(),
            "/v1/usage/reservations/events".into(),
            "/v1/admin/models/".into(),
            "/v1/admin/models//x".into(),
            "/v1/api-keys/x?y=1".into(),
        ];
        for &(_, pattern, _) in ROUTES {
            let filled = match pattern.split_once('{') {
                Some((prefix, _)) => format!("{prefix}key-1"),
                None => pattern.to_string(),
            };
            for path in [pattern.to_string(), filled] {
                paths.push(format!("{path}/"));
                paths.push(format!("{path}//"));
                paths.push(format!("{path}/x"));
                paths.push(format!("{path}x"));
                paths.push(format!("/{path}"));
                paths.push(path.replacen('/', "//", 2));
                paths.push(path.to_uppercase());
                paths.push(path[..path.len() - 1].to_string());
                paths.push(path);
            }
        }
        let router = Router::new();
        let tree = reference_tree();
        let methods = [
            "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "get", "Post",
        ];
        let mut routed = 0;
        for path in &paths {
            for method in methods {
                let ours = router.resolve(method, path);
                assert_eq!(ours, reference(&tree, method, path), "{method} {path}");
                routed += usize::from(ours.is_ok());
            }
        }
        // The comparison means something only if both routed something.
        assert!(routed > ROUTES.len(), "{routed}");
    }
}
