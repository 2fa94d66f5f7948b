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

/// One row of the table: method, path pattern (matchit syntax) and endpoint.
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

/// The route table compiled into a matcher; build it once per isolate.
pub struct Router {
    paths: matchit::Router<usize>,
    /// For each distinct path pattern, the methods and endpoints it serves.
    methods: Vec<Vec<(&'static str, Endpoint)>>,
}

impl Router {
    pub fn new() -> Self {
        let mut paths = matchit::Router::new();
        let mut patterns: Vec<&'static str> = Vec::new();
        let mut methods: Vec<Vec<(&'static str, Endpoint)>> = Vec::new();
        for &(method, pattern, endpoint) in ROUTES {
            let slot = match patterns.iter().position(|p| *p == pattern) {
                Some(slot) => slot,
                None => {
                    patterns.push(pattern);
                    methods.push(Vec::new());
                    let slot = patterns.len() - 1;
                    // The table is a constant checked by the tests below.
                    paths.insert(pattern, slot).expect("route table is valid");
                    slot
                }
            };
            methods[slot].push((method, endpoint));
        }
        Router { paths, methods }
    }

    pub fn resolve(&self, method: &str, path: &str) -> Result<Matched, ApiError> {
        let found = self.paths.at(path).map_err(|_| ApiError::NotFound)?;
        let served = &self.methods[*found.value];
        let endpoint = served
            .iter()
            .find(|(m, _)| m.eq_ignore_ascii_case(method))
            .map(|(_, e)| *e)
            .ok_or_else(|| ApiError::MethodNotAllowed {
                allowed: served.iter().map(|(m, _)| *m).collect(),
            })?;
        Ok(Matched {
            endpoint,
            params: found
                .params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
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
}
