//! Typed configuration, read once from the Worker's vars and secrets.
//!
//! The source is a lookup function so the same code reads `worker::Env` at the
//! edge and a `HashMap` in tests. Every missing or invalid variable is reported
//! at once, by name, so a deploy is fixed in one round.

use crate::auth::webhook::WebhookSecrets;
use crate::auth::AnonymousUsers;
use crate::hooks::signup::{parse_domain_list, SignupPolicy};
use crate::supabase_keys::{KeyScheme, SupabaseKey};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Names of the Worker variables and secrets, as set in `wrangler.toml`,
/// `.dev.vars` or with `wrangler secret put`.
pub mod names {
    pub const SUPABASE_URL: &str = "SUPABASE_URL";
    /// The legacy `anon` JWT or a publishable key (`sb_publishable_…`).
    pub const SUPABASE_ANON_KEY: &str = "SUPABASE_ANON_KEY";
    /// The legacy `service_role` JWT or a secret key (`sb_secret_…`).
    pub const SUPABASE_SERVICE_ROLE_KEY: &str = "SUPABASE_SERVICE_ROLE_KEY";
    pub const ALLOWED_ORIGINS: &str = "ALLOWED_ORIGINS";
    pub const MAX_BODY_BYTES: &str = "MAX_BODY_BYTES";
    pub const REST_TIMEOUT_MS: &str = "REST_TIMEOUT_MS";
    /// How long the queue consumer waits for its recording call.
    pub const QUEUE_REST_TIMEOUT_MS: &str = "QUEUE_REST_TIMEOUT_MS";
    /// The project's legacy JWT secret (HS256); unset refuses HS256 tokens.
    pub const SUPABASE_JWT_SECRET: &str = "SUPABASE_JWT_SECRET";
    /// Comma-separated `iss` values accepted in access tokens; unset accepts
    /// `<SUPABASE_URL>/auth/v1` only.
    pub const SUPABASE_JWT_ISSUERS: &str = "SUPABASE_JWT_ISSUERS";
    /// The "before user created" hook secret, `v1,whsec_<base64>`; during a
    /// rotation several, separated by `|`.
    pub const AUTH_HOOK_SECRET: &str = "AUTH_HOOK_SECRET";
    /// The secret header value the `auth.users` Database Webhook sends.
    pub const DB_WEBHOOK_SECRET: &str = "DB_WEBHOOK_SECRET";
    /// Comma-separated email domains that may sign up; unset allows all.
    pub const SIGNUP_ALLOWED_DOMAINS: &str = "SIGNUP_ALLOWED_DOMAINS";
    /// Comma-separated email domains (and their subdomains) refused at sign-up.
    pub const SIGNUP_BLOCKED_DOMAINS: &str = "SIGNUP_BLOCKED_DOMAINS";
    /// `developer` (default) or `viewer`: the role a new user starts with.
    pub const DEFAULT_USER_ROLE: &str = "DEFAULT_USER_ROLE";
    /// `read_only` (default) or `deny`: what anonymous sign-ins may do.
    pub const ANONYMOUS_USERS: &str = "ANONYMOUS_USERS";
    pub const JWKS_MIN_REFETCH_SECS: &str = "JWKS_MIN_REFETCH_SECS";
    /// How long JWKS keys stay trusted when every refresh fails.
    pub const JWKS_MAX_STALE_SECS: &str = "JWKS_MAX_STALE_SECS";
    pub const METRICS_TOKEN: &str = "METRICS_TOKEN";
    /// How often, at most, an isolate sends the calls it counted.
    pub const TELEMETRY_FLUSH_MS: &str = "TELEMETRY_FLUSH_MS";
    /// `true` lets the usage page take a session from its URL
    /// (`#local_session=<access token>`), as the link `cargo xtask dev`
    /// prints does: the local stack has no Supabase Auth to sign in with.
    /// Refused unless `SUPABASE_URL` is on this machine.
    pub const LOCAL_SIGN_IN: &str = "LOCAL_SIGN_IN";
}

/// Shared secrets shorter than this are refused: Supabase's own JWT secret
/// is at least 32 characters, and a webhook secret should be no weaker.
pub const MIN_SHARED_SECRET_CHARS: usize = 32;

/// The role a user has in our product (not a Postgres role).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserRole {
    #[default]
    Developer,
    Viewer,
}

impl UserRole {
    pub fn as_str(self) -> &'static str {
        match self {
            UserRole::Developer => "developer",
            UserRole::Viewer => "viewer",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "developer" => Ok(UserRole::Developer),
            "viewer" => Ok(UserRole::Viewer),
            _ => Err(format!("`{raw}` is not `developer` or `viewer`")),
        }
    }
}

/// Default request body limit: generous for a batch of usage events, small
/// enough that a Worker never buffers megabytes of junk.
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;
/// Default floor between JWKS fetches: a flood of tokens with forged key ids
/// costs the auth server at most one fetch per isolate per interval.
pub const DEFAULT_JWKS_MIN_REFETCH_SECS: u32 = 30;
/// Default time the keys of the last successful JWKS fetch stay trusted while
/// every refresh fails; past it, asymmetric tokens get 503 `jwks_unavailable`.
pub const DEFAULT_JWKS_MAX_STALE_SECS: u32 = 3600;
/// Default time the edge waits for the REST layer before answering 503.
pub const DEFAULT_REST_TIMEOUT_MS: u32 = 5_000;
/// Default time the queue consumer waits for its recording call: past the
/// 8 s statement timeout a hosted project gives REST calls (the service
/// role has none of its own and runs under `authenticator`'s), with room for
/// sending a ~1 MB delivery. Postgres then decides every call: it commits
/// (the batch is acknowledged) or cancels it (the batch is retried), and a
/// call the consumer gave up on is never committed behind its back, which
/// only made the retry replay every event. Nobody waits on a consumer, and a
/// queue handler may run for minutes.
pub const DEFAULT_QUEUE_REST_TIMEOUT_MS: u32 = 15_000;
/// Default interval between an isolate's telemetry flushes: one database
/// write per isolate per interval, whatever the traffic; an isolate evicted
/// before its flush loses at most this much of its counts. It must stay well
/// under the 30 s a `waitUntil` may run after its response.
pub const DEFAULT_TELEMETRY_FLUSH_MS: u32 = 5_000;

#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// Base URL of the Supabase project, without a trailing slash.
    pub supabase_url: String,
    /// The project's public key (legacy `anon` or publishable), sent as
    /// `apikey` on every call that does not run as the service role.
    pub anon_key: SupabaseKey,
    /// The service-role key (legacy `service_role` or secret), for operations
    /// the caller's own JWT may not do.
    pub service_role_key: SupabaseKey,
    pub allowed_origins: AllowedOrigins,
    pub max_body_bytes: usize,
    pub rest_timeout_ms: u32,
    /// The queue consumer's wait for its recording call.
    pub queue_rest_timeout_ms: u32,
    /// The legacy HS256 JWT secret, when the project still signs with it.
    pub jwt_secret: Option<String>,
    /// The `iss` values an access token may carry, compared exactly.
    pub jwt_issuers: Vec<String>,
    /// Verifies the "before user created" Auth hook; unset refuses the hook.
    pub auth_hook_secret: Option<WebhookSecrets>,
    /// Authenticates the `auth.users` Database Webhook; unset refuses it.
    pub db_webhook_secret: Option<String>,
    pub signup_policy: SignupPolicy,
    pub default_user_role: UserRole,
    /// What a token with `is_anonymous: true` may do at the edge.
    pub anonymous_users: AnonymousUsers,
    /// The floor between two JWKS fetches triggered by unknown key ids.
    pub jwks_min_refetch_secs: u32,
    /// How long the last fetched JWKS stays trusted while refreshes fail.
    pub jwks_max_stale_secs: u32,
    /// A bearer token a Prometheus scraper presents for `GET /v1/metrics`.
    pub metrics_token: Option<String>,
    /// The least time between two telemetry flushes of an isolate.
    pub telemetry_flush_ms: u32,
    /// The usage page accepts a session from its URL; only ever with a
    /// loopback `supabase_url`, so never in a deployed Worker.
    pub local_sign_in: bool,
}

// Hand-written so a stray `{:?}` in a log line can never print a key.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("supabase_url", &self.supabase_url)
            .field("anon_key", &self.anon_key)
            .field("service_role_key", &self.service_role_key)
            .field("allowed_origins", &self.allowed_origins)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("rest_timeout_ms", &self.rest_timeout_ms)
            .field("queue_rest_timeout_ms", &self.queue_rest_timeout_ms)
            .field("jwt_secret", &redacted(&self.jwt_secret))
            .field("jwt_issuers", &self.jwt_issuers)
            .field("auth_hook_secret", &redacted(&self.auth_hook_secret))
            .field("db_webhook_secret", &redacted(&self.db_webhook_secret))
            .field("signup_policy", &self.signup_policy)
            .field("default_user_role", &self.default_user_role)
            .field("anonymous_users", &self.anonymous_users)
            .field("jwks_min_refetch_secs", &self.jwks_min_refetch_secs)
            .field("jwks_max_stale_secs", &self.jwks_max_stale_secs)
            .field(
                "metrics_token",
                &self.metrics_token.as_ref().map(|_| "<redacted>"),
            )
            .field("telemetry_flush_ms", &self.telemetry_flush_ms)
            .field("local_sign_in", &self.local_sign_in)
            .finish()
    }
}

fn redacted<T>(secret: &Option<T>) -> Option<&'static str> {
    secret.as_ref().map(|_| "<redacted>")
}

/// Which browser origins may call the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// `*`: any origin, for public read-only deployments and local development.
    Any,
    /// Exact origins (`scheme://host[:port]`), compared case-insensitively.
    List(Vec<String>),
}

impl AllowedOrigins {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw == "*" {
            return Ok(AllowedOrigins::Any);
        }
        let mut origins = Vec::new();
        for origin in raw.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            let well_formed = (origin.starts_with("https://") || origin.starts_with("http://"))
                && !origin.ends_with('/')
                && !origin.contains(char::is_whitespace);
            if !well_formed {
                return Err(format!(
                    "`{origin}` is not an origin like https://app.example.com"
                ));
            }
            origins.push(origin.to_ascii_lowercase());
        }
        Ok(AllowedOrigins::List(origins))
    }

    pub fn allows(&self, origin: &str) -> bool {
        match self {
            AllowedOrigins::Any => true,
            AllowedOrigins::List(list) => list.iter().any(|o| o.eq_ignore_ascii_case(origin)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("missing Worker variables or secrets: {}", .0.join(", "))]
    Missing(Vec<&'static str>),
    #[error("invalid Worker variable {name}: {reason}")]
    Invalid { name: &'static str, reason: String },
}

impl Config {
    /// Reads the configuration through `lookup`, which returns a variable's value
    /// or `None` when it is not set.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut missing = Vec::new();
        let mut required = |name: &'static str| match lookup(name) {
            Some(v) if !v.trim().is_empty() => v.trim().to_string(),
            _ => {
                missing.push(name);
                String::new()
            }
        };
        let supabase_url = required(names::SUPABASE_URL);
        let anon_key = required(names::SUPABASE_ANON_KEY);
        let service_role_key = required(names::SUPABASE_SERVICE_ROLE_KEY);
        let allowed_origins = required(names::ALLOWED_ORIGINS);
        if !missing.is_empty() {
            return Err(ConfigError::Missing(missing));
        }

        let supabase_url = supabase_url.trim_end_matches('/').to_string();
        require_https_unless_loopback(&supabase_url).map_err(|reason| ConfigError::Invalid {
            name: names::SUPABASE_URL,
            reason,
        })?;
        let anon_key = SupabaseKey::anon(&anon_key).map_err(|reason| ConfigError::Invalid {
            name: names::SUPABASE_ANON_KEY,
            reason,
        })?;
        let service_role_key = SupabaseKey::service_role(&service_role_key).map_err(|reason| {
            ConfigError::Invalid {
                name: names::SUPABASE_SERVICE_ROLE_KEY,
                reason,
            }
        })?;
        let allowed_origins =
            AllowedOrigins::parse(&allowed_origins).map_err(|reason| ConfigError::Invalid {
                name: names::ALLOWED_ORIGINS,
                reason,
            })?;
        let max_body_bytes = optional_number(
            &lookup,
            names::MAX_BODY_BYTES,
            DEFAULT_MAX_BODY_BYTES,
            1..=16 * 1024 * 1024,
        )?;
        let rest_timeout_ms = optional_number(
            &lookup,
            names::REST_TIMEOUT_MS,
            DEFAULT_REST_TIMEOUT_MS,
            50..=60_000,
        )?;
        let queue_rest_timeout_ms = optional_number(
            &lookup,
            names::QUEUE_REST_TIMEOUT_MS,
            DEFAULT_QUEUE_REST_TIMEOUT_MS,
            50..=300_000,
        )?;
        let jwt_secret = optional_secret(&lookup, names::SUPABASE_JWT_SECRET)?;
        let jwt_issuers = match optional(&lookup, names::SUPABASE_JWT_ISSUERS) {
            Some(raw) => parse_issuers(&raw).map_err(|reason| ConfigError::Invalid {
                name: names::SUPABASE_JWT_ISSUERS,
                reason,
            })?,
            None => vec![auth_url(&supabase_url)],
        };
        let auth_hook_secret = optional(&lookup, names::AUTH_HOOK_SECRET)
            .map(|raw| {
                WebhookSecrets::parse(&raw).map_err(|reason| ConfigError::Invalid {
                    name: names::AUTH_HOOK_SECRET,
                    reason,
                })
            })
            .transpose()?;
        let db_webhook_secret = optional_secret(&lookup, names::DB_WEBHOOK_SECRET)?;
        let domains = |name: &'static str| {
            parse_domain_list(&optional(&lookup, name).unwrap_or_default())
                .map_err(|reason| ConfigError::Invalid { name, reason })
        };
        let signup_policy = SignupPolicy {
            allowed_domains: domains(names::SIGNUP_ALLOWED_DOMAINS)?,
            blocked_domains: domains(names::SIGNUP_BLOCKED_DOMAINS)?,
        };
        let default_user_role = optional(&lookup, names::DEFAULT_USER_ROLE)
            .map(|raw| {
                UserRole::parse(&raw).map_err(|reason| ConfigError::Invalid {
                    name: names::DEFAULT_USER_ROLE,
                    reason,
                })
            })
            .transpose()?
            .unwrap_or_default();
        let anonymous_users = optional(&lookup, names::ANONYMOUS_USERS)
            .map(|raw| {
                AnonymousUsers::parse(&raw).map_err(|reason| ConfigError::Invalid {
                    name: names::ANONYMOUS_USERS,
                    reason,
                })
            })
            .transpose()?
            .unwrap_or_default();
        let jwks_min_refetch_secs = optional_number(
            &lookup,
            names::JWKS_MIN_REFETCH_SECS,
            DEFAULT_JWKS_MIN_REFETCH_SECS,
            1..=3600,
        )?;
        let jwks_max_stale_secs = optional_number(
            &lookup,
            names::JWKS_MAX_STALE_SECS,
            DEFAULT_JWKS_MAX_STALE_SECS,
            60..=7 * 86_400,
        )?;
        let metrics_token = optional_secret(&lookup, names::METRICS_TOKEN)?;
        let telemetry_flush_ms = optional_number(
            &lookup,
            names::TELEMETRY_FLUSH_MS,
            DEFAULT_TELEMETRY_FLUSH_MS,
            100..=20_000,
        )?;
        let local_sign_in = match optional(&lookup, names::LOCAL_SIGN_IN).as_deref() {
            None | Some("false") => false,
            Some("true") if is_loopback_url(&supabase_url) => true,
            Some("true") => {
                return Err(ConfigError::Invalid {
                    name: names::LOCAL_SIGN_IN,
                    reason: "is for the local stack only: SUPABASE_URL must be http://127.0.0.1, \
                             localhost or [::1]"
                        .into(),
                })
            }
            Some(_) => {
                return Err(ConfigError::Invalid {
                    name: names::LOCAL_SIGN_IN,
                    reason: "must be true or false".into(),
                })
            }
        };
        Ok(Config {
            supabase_url,
            anon_key,
            service_role_key,
            allowed_origins,
            max_body_bytes,
            rest_timeout_ms,
            queue_rest_timeout_ms,
            jwt_secret,
            jwt_issuers,
            auth_hook_secret,
            db_webhook_secret,
            signup_policy,
            default_user_role,
            anonymous_users,
            jwks_min_refetch_secs,
            jwks_max_stale_secs,
            metrics_token,
            telemetry_flush_ms,
            local_sign_in,
        })
    }

    /// Which kinds of project API key the edge runs with.
    pub fn api_key_scheme(&self) -> KeyScheme {
        KeyScheme::of(&self.anon_key, &self.service_role_key)
    }

    /// Where Supabase Auth publishes its public signing keys.
    pub fn jwks_url(&self) -> String {
        format!("{}/.well-known/jwks.json", auth_url(&self.supabase_url))
    }
}

/// Supabase Auth's base URL, `<SUPABASE_URL>/auth/v1`: also the `iss` of its
/// tokens, unless the project is reached through a custom domain.
fn auth_url(supabase_url: &str) -> String {
    format!("{supabase_url}/auth/v1")
}

/// `SUPABASE_JWT_ISSUERS`: comma-separated issuer URLs.
///
/// A configured value loses a trailing slash, so `https://<ref>.supabase.co/auth/v1/`
/// pasted from a browser still means what Supabase Auth writes (it never ends
/// `iss` with a slash). Tokens are not normalised: their `iss` must equal a
/// configured value byte for byte.
pub fn parse_issuers(raw: &str) -> Result<Vec<String>, String> {
    let mut issuers = Vec::new();
    for issuer in raw.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let issuer = issuer.trim_end_matches('/');
        require_https_unless_loopback(issuer).map_err(|reason| format!("`{issuer}` {reason}"))?;
        issuers.push(issuer.to_string());
    }
    if issuers.is_empty() {
        return Err("lists no issuer".into());
    }
    Ok(issuers)
}

/// Whether `url` is `http://` to this machine: the local stack, never a
/// hosted project.
fn is_loopback_url(url: &str) -> bool {
    let lowercase = url.to_ascii_lowercase();
    let Some(rest) = lowercase.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    !authority.contains('@') && matches!(host, "localhost" | "127.0.0.1" | "::1")
}

/// Refuses a URL the edge would send keys and tokens to in clear text.
///
/// `https://` always; `http://` only to this machine (`localhost`,
/// `127.0.0.1`, `[::1]`), where the local stack runs without TLS. Parsed by
/// hand: only the scheme and host matter, and the value comes from the
/// operator, not from callers.
pub fn require_https_unless_loopback(url: &str) -> Result<(), String> {
    let lowercase = url.to_ascii_lowercase();
    let (https, rest) = match (
        lowercase.strip_prefix("https://"),
        lowercase.strip_prefix("http://"),
    ) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        (None, None) => return Err("must start with https://".into()),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') || authority.contains(char::is_whitespace) {
        return Err("must be a plain https://host URL, without user name or spaces".into());
    }
    let host = match authority.strip_prefix('[') {
        // An IPv6 literal: the host runs to the closing bracket.
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    if host.is_empty() {
        return Err("names no host".into());
    }
    if !https && !matches!(host, "localhost" | "127.0.0.1" | "::1") {
        return Err(format!(
            "must use https:// (http:// is accepted only for localhost, 127.0.0.1 and [::1], not {host})"
        ));
    }
    Ok(())
}

/// A variable's trimmed value, `None` when unset or blank.
fn optional(lookup: &impl Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    lookup(name)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// An optional shared secret, refused when set but too short to be one.
fn optional_secret(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<Option<String>, ConfigError> {
    match optional(lookup, name) {
        Some(secret) if secret.chars().count() < MIN_SHARED_SECRET_CHARS => {
            Err(ConfigError::Invalid {
                name,
                reason: format!("must be at least {MIN_SHARED_SECRET_CHARS} characters"),
            })
        }
        other => Ok(other),
    }
}

fn optional_number<T>(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
{
    let Some(raw) = lookup(name).filter(|v| !v.trim().is_empty()) else {
        return Ok(default);
    };
    match raw.trim().parse::<T>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(ConfigError::Invalid {
            name,
            reason: format!(
                "`{raw}` is not a number from {} to {}",
                range.start(),
                range.end()
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supabase_keys::test_keys::{LEGACY_ANON, LEGACY_SERVICE_ROLE, PUBLISHABLE, SECRET};
    use crate::supabase_keys::KeyKind;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    const COMPLETE: &[(&str, &str)] = &[
        ("SUPABASE_URL", "http://127.0.0.1:54321/"),
        ("SUPABASE_ANON_KEY", LEGACY_ANON),
        ("SUPABASE_SERVICE_ROLE_KEY", LEGACY_SERVICE_ROLE),
        (
            "ALLOWED_ORIGINS",
            "http://localhost:3000, https://App.example.com",
        ),
    ];

    #[test]
    fn reads_a_complete_configuration_with_defaults() {
        let config = Config::from_lookup(lookup(COMPLETE)).unwrap();
        assert_eq!(config.supabase_url, "http://127.0.0.1:54321");
        assert_eq!(config.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert_eq!(config.rest_timeout_ms, DEFAULT_REST_TIMEOUT_MS);
        assert_eq!(config.queue_rest_timeout_ms, DEFAULT_QUEUE_REST_TIMEOUT_MS);
        assert_eq!(config.telemetry_flush_ms, DEFAULT_TELEMETRY_FLUSH_MS);
        assert!(config.allowed_origins.allows("https://app.example.com"));
        assert!(!config.allowed_origins.allows("https://evil.example.com"));
    }

    #[test]
    fn local_sign_in_is_only_for_a_supabase_url_on_this_machine() {
        let with = |url: &'static str, value: &'static str| {
            let mut pairs = COMPLETE.to_vec();
            pairs[0] = ("SUPABASE_URL", url);
            pairs.push(("LOCAL_SIGN_IN", value));
            Config::from_lookup(lookup(&pairs)).map(|c| c.local_sign_in)
        };
        assert!(!Config::from_lookup(lookup(COMPLETE)).unwrap().local_sign_in);
        assert_eq!(with("http://127.0.0.1:54321", "true"), Ok(true));
        assert_eq!(with("http://localhost:54321", "true"), Ok(true));
        assert_eq!(with("http://[::1]:54321", "true"), Ok(true));
        assert_eq!(with("https://abc.supabase.co", "false"), Ok(false));
        for (url, value) in [
            ("https://abc.supabase.co", "true"),
            ("https://127.0.0.1", "true"),
            ("http://127.0.0.1:54321", "yes"),
        ] {
            assert!(
                matches!(
                    with(url, value),
                    Err(ConfigError::Invalid {
                        name: "LOCAL_SIGN_IN",
                        ..
                    })
                ),
                "{url} {value}"
            );
        }
    }

    #[test]
    fn names_every_missing_variable_at_once() {
        let err = Config::from_lookup(lookup(&[("SUPABASE_ANON_KEY", "x")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "missing Worker variables or secrets: SUPABASE_URL, SUPABASE_SERVICE_ROLE_KEY, ALLOWED_ORIGINS"
        );
    }

    #[test]
    fn blank_counts_as_missing() {
        let mut pairs = COMPLETE.to_vec();
        pairs[1] = ("SUPABASE_ANON_KEY", "  ");
        let err = Config::from_lookup(lookup(&pairs)).unwrap_err();
        assert_eq!(err, ConfigError::Missing(vec!["SUPABASE_ANON_KEY"]));
    }

    #[test]
    fn rejects_out_of_range_numbers_by_name() {
        for bad in ["0", "-1", "abc", "99999999999"] {
            let mut pairs = COMPLETE.to_vec();
            pairs.push(("MAX_BODY_BYTES", bad));
            let err = Config::from_lookup(lookup(&pairs)).unwrap_err();
            assert!(
                matches!(
                    err,
                    ConfigError::Invalid {
                        name: "MAX_BODY_BYTES",
                        ..
                    }
                ),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn the_queue_consumer_outwaits_the_statement_timeout_its_calls_run_under() {
        // The service role has no timeout of its own: its calls run under
        // `authenticator`'s, as the doctor expects a project to set them.
        let statement_ms: u32 = crate::doctor::EXPECTED_ROLE_SETTINGS
            .iter()
            .find(|(role, name, _)| *role == "authenticator" && *name == "statement_timeout")
            .and_then(|(_, _, value)| value.strip_suffix('s')?.parse::<u32>().ok())
            .map(|secs| secs * 1000)
            .expect("authenticator's statement timeout, in seconds");
        assert!(DEFAULT_QUEUE_REST_TIMEOUT_MS >= statement_ms + 5_000);
        const { assert!(DEFAULT_QUEUE_REST_TIMEOUT_MS > DEFAULT_REST_TIMEOUT_MS) };
        let mut pairs = COMPLETE.to_vec();
        pairs.push(("QUEUE_REST_TIMEOUT_MS", "30000"));
        let config = Config::from_lookup(lookup(&pairs)).unwrap();
        assert_eq!(config.queue_rest_timeout_ms, 30_000);
        pairs.push(("QUEUE_REST_TIMEOUT_MS", "0"));
        assert!(matches!(
            Config::from_lookup(lookup(&pairs)),
            Err(ConfigError::Invalid {
                name: "QUEUE_REST_TIMEOUT_MS",
                ..
            })
        ));
    }

    #[test]
    fn telemetry_flushes_stay_inside_a_wait_until() {
        // Workers cut a waitUntil 30 s after the response: a longer interval
        // would lose every delayed flush.
        for (raw, ok) in [
            ("100", true),
            ("20000", true),
            ("99", false),
            ("30000", false),
        ] {
            let mut pairs = COMPLETE.to_vec();
            pairs.push(("TELEMETRY_FLUSH_MS", raw));
            let config = Config::from_lookup(lookup(&pairs));
            assert_eq!(config.is_ok(), ok, "{raw}");
        }
    }

    #[test]
    fn rejects_malformed_origins() {
        for bad in ["app.example.com", "https://app.example.com/", "ftp://x"] {
            assert!(AllowedOrigins::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(AllowedOrigins::parse("*"), Ok(AllowedOrigins::Any));
    }

    /// One row per `SUPABASE_URL`: accepted, or refused by name.
    #[test]
    fn supabase_url_must_be_https_except_on_this_machine() {
        let cases: &[(&str, bool)] = &[
            ("https://abc.supabase.co", true),
            ("https://abc.supabase.co/", true),
            ("HTTPS://api.example.com:8443", true),
            ("http://127.0.0.1:54321", true),
            ("http://localhost:54321", true),
            ("http://LOCALHOST", true),
            ("http://[::1]:54321", true),
            ("http://abc.supabase.co", false),
            ("http://10.0.0.5:54321", false),
            ("http://127.0.0.1.evil.example", false),
            ("http://localhost.evil.example", false),
            ("http://localhost@evil.example", false),
            ("http://[::2]:54321", false),
            ("ftp://abc.supabase.co", false),
            ("abc.supabase.co", false),
            ("https://", false),
            ("https://:443", false),
        ];
        for &(url, accepted) in cases {
            let mut pairs = COMPLETE.to_vec();
            pairs[0] = ("SUPABASE_URL", url);
            let got = Config::from_lookup(lookup(&pairs));
            match got {
                Ok(_) => assert!(accepted, "{url} was accepted"),
                Err(err) => {
                    assert!(!accepted, "{url}: {err}");
                    assert!(
                        matches!(
                            err,
                            ConfigError::Invalid {
                                name: "SUPABASE_URL",
                                ..
                            }
                        ),
                        "{url}: {err}"
                    );
                }
            }
        }
    }

    #[test]
    fn debug_output_redacts_keys() {
        for (anon, service) in [(LEGACY_ANON, LEGACY_SERVICE_ROLE), (PUBLISHABLE, SECRET)] {
            let mut pairs = COMPLETE.to_vec();
            pairs[1] = ("SUPABASE_ANON_KEY", anon);
            pairs[2] = ("SUPABASE_SERVICE_ROLE_KEY", service);
            let config = Config::from_lookup(lookup(&pairs)).unwrap();
            let printed = format!("{config:?}");
            for key in [anon, service] {
                assert!(!printed.contains(&key[15..]), "{printed}");
            }
            assert!(printed.contains("<redacted>"));
        }
    }

    /// One row per pair of keys: the kinds read, or the variable refused.
    #[test]
    fn classifies_the_project_keys_and_refuses_one_in_the_wrong_slot() {
        type Want = Result<(KeyKind, KeyKind, KeyScheme), &'static str>;
        let cases: &[(&str, &str, &str, Want)] = &[
            (
                "legacy",
                LEGACY_ANON,
                LEGACY_SERVICE_ROLE,
                Ok((KeyKind::LegacyJwt, KeyKind::LegacyJwt, KeyScheme::LegacyJwt)),
            ),
            (
                "new",
                PUBLISHABLE,
                SECRET,
                Ok((
                    KeyKind::Publishable,
                    KeyKind::Secret,
                    KeyScheme::PublishableSecret,
                )),
            ),
            (
                "legacy anon, secret service",
                LEGACY_ANON,
                SECRET,
                Ok((KeyKind::LegacyJwt, KeyKind::Secret, KeyScheme::Mixed)),
            ),
            (
                "a secret key as the anon key",
                SECRET,
                SECRET,
                Err("SUPABASE_ANON_KEY"),
            ),
            (
                "the service_role JWT as the anon key",
                LEGACY_SERVICE_ROLE,
                LEGACY_SERVICE_ROLE,
                Err("SUPABASE_ANON_KEY"),
            ),
            (
                "a publishable key as the service-role key",
                PUBLISHABLE,
                PUBLISHABLE,
                Err("SUPABASE_SERVICE_ROLE_KEY"),
            ),
            (
                "the anon JWT as the service-role key",
                LEGACY_ANON,
                LEGACY_ANON,
                Err("SUPABASE_SERVICE_ROLE_KEY"),
            ),
            (
                "not a key at all",
                "not-a-supabase-api-key",
                LEGACY_SERVICE_ROLE,
                Err("SUPABASE_ANON_KEY"),
            ),
        ];
        for &(case, anon, service, want) in cases {
            let mut pairs = COMPLETE.to_vec();
            pairs[1] = ("SUPABASE_ANON_KEY", anon);
            pairs[2] = ("SUPABASE_SERVICE_ROLE_KEY", service);
            let got = Config::from_lookup(lookup(&pairs));
            match (got, want) {
                (Ok(config), Ok((anon_kind, service_kind, scheme))) => {
                    assert_eq!(config.anon_key.kind(), anon_kind, "{case}");
                    assert_eq!(config.service_role_key.kind(), service_kind, "{case}");
                    assert_eq!(config.api_key_scheme(), scheme, "{case}");
                    assert_eq!(config.anon_key.value(), anon, "{case}");
                }
                (Err(err), Err(name)) => {
                    assert!(
                        matches!(&err, ConfigError::Invalid { name: got, .. } if *got == name),
                        "{case}: {err}"
                    );
                    // The error is logged; it must not carry either key.
                    for key in [anon, service] {
                        assert!(
                            !err.to_string().contains(&key[key.len() / 2..]),
                            "{case}: {err}"
                        );
                    }
                }
                (got, want) => panic!("{case}: got {got:?}, want {want:?}"),
            }
        }
    }

    const JWT_SECRET: &str = "super-secret-jwt-token-with-at-least-32-characters";
    const HOOK_SECRET: &str = "v1,whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const DB_SECRET: &str = "db-webhook-secret-of-32-characters!!";

    fn with_extra(extra: &[(&'static str, &'static str)]) -> Result<Config, ConfigError> {
        let mut pairs = COMPLETE.to_vec();
        pairs.extend_from_slice(extra);
        Config::from_lookup(lookup(&pairs))
    }

    #[test]
    fn auth_settings_are_optional_with_safe_defaults() {
        let config = Config::from_lookup(lookup(COMPLETE)).unwrap();
        assert_eq!(config.jwt_secret, None);
        assert_eq!(config.auth_hook_secret, None);
        assert_eq!(config.db_webhook_secret, None);
        assert_eq!(config.signup_policy, SignupPolicy::default());
        assert_eq!(config.default_user_role, UserRole::Developer);
        assert_eq!(config.anonymous_users, AnonymousUsers::ReadOnly);
        assert_eq!(config.jwt_issuers, vec!["http://127.0.0.1:54321/auth/v1"]);
        assert_eq!(config.jwks_max_stale_secs, 3600);
        assert_eq!(
            config.jwks_url(),
            "http://127.0.0.1:54321/auth/v1/.well-known/jwks.json"
        );
    }

    #[test]
    fn reads_every_auth_setting() {
        let config = with_extra(&[
            ("SUPABASE_JWT_SECRET", JWT_SECRET),
            ("AUTH_HOOK_SECRET", HOOK_SECRET),
            ("DB_WEBHOOK_SECRET", DB_SECRET),
            ("SIGNUP_ALLOWED_DOMAINS", "Example.com, partner.io"),
            ("SIGNUP_BLOCKED_DOMAINS", "mailinator.com"),
            ("DEFAULT_USER_ROLE", "Viewer"),
            ("ANONYMOUS_USERS", "deny"),
            ("JWKS_MAX_STALE_SECS", "900"),
        ])
        .unwrap();
        assert_eq!(config.jwks_max_stale_secs, 900);
        assert_eq!(config.jwt_secret.as_deref(), Some(JWT_SECRET));
        assert_eq!(
            config.auth_hook_secret,
            Some(WebhookSecrets::parse(HOOK_SECRET).unwrap())
        );
        assert_eq!(config.db_webhook_secret.as_deref(), Some(DB_SECRET));
        assert_eq!(
            config.signup_policy.allowed_domains,
            vec!["example.com", "partner.io"]
        );
        assert_eq!(config.signup_policy.blocked_domains, vec!["mailinator.com"]);
        assert_eq!(config.default_user_role, UserRole::Viewer);
        assert_eq!(config.anonymous_users, AnonymousUsers::Deny);
    }

    /// One row per bad value: the variable the error must name.
    #[test]
    fn rejects_invalid_auth_settings_by_name() {
        let cases: &[(&'static str, &'static str)] = &[
            ("SUPABASE_JWT_SECRET", "too-short"),
            ("AUTH_HOOK_SECRET", "whsec_not base64"),
            ("AUTH_HOOK_SECRET", "plain-secret-without-the-prefix-at-all"),
            // One malformed secret in a rotation list refuses the whole list.
            (
                "AUTH_HOOK_SECRET",
                "v1,whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw|v1,whsec_c2hvcnQ=",
            ),
            (
                "AUTH_HOOK_SECRET",
                "v1,whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw|",
            ),
            ("DB_WEBHOOK_SECRET", "short"),
            ("ANONYMOUS_USERS", "full"),
            ("SIGNUP_ALLOWED_DOMAINS", "example.com, not a domain"),
            ("SIGNUP_BLOCKED_DOMAINS", "localhost"),
            ("DEFAULT_USER_ROLE", "admin"),
            // Under a minute would refetch constantly; over a week trusts a
            // revoked key too long.
            ("JWKS_MAX_STALE_SECS", "59"),
            ("JWKS_MAX_STALE_SECS", "604801"),
        ];
        for &(name, value) in cases {
            let err = with_extra(&[(name, value)]).unwrap_err();
            if name.ends_with("SECRET") {
                // The reason is logged; a secret's value must not be in it.
                assert!(
                    !err.to_string().contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
                    "{err}"
                );
            }
            assert!(
                matches!(&err, ConfigError::Invalid { name: got, .. } if *got == name),
                "{name}={value}: {err}"
            );
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn reads_a_list_of_jwt_issuers() {
        let config = with_extra(&[(
            "SUPABASE_JWT_ISSUERS",
            " https://abc.supabase.co/auth/v1/ , https://api.example.com/auth/v1",
        )])
        .unwrap();
        assert_eq!(
            config.jwt_issuers,
            vec![
                "https://abc.supabase.co/auth/v1",
                "https://api.example.com/auth/v1"
            ]
        );
        // The JWKS is still fetched from the configured project URL.
        assert_eq!(
            config.jwks_url(),
            "http://127.0.0.1:54321/auth/v1/.well-known/jwks.json"
        );
    }

    #[test]
    fn rejects_malformed_jwt_issuers_by_name() {
        for bad in [
            ",",
            "abc.supabase.co/auth/v1",
            "http://abc.supabase.co/auth/v1",
            "https://abc.supabase.co/auth/v1, not an issuer",
        ] {
            let err = with_extra(&[("SUPABASE_JWT_ISSUERS", bad)]).unwrap_err();
            assert!(
                matches!(
                    err,
                    ConfigError::Invalid {
                        name: "SUPABASE_JWT_ISSUERS",
                        ..
                    }
                ),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn debug_output_redacts_auth_secrets() {
        const ROTATED: &str = "v1,whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw|v1,whsec_c2Vjb25kLXdlYmhvb2stc2VjcmV0LTMyYnl0ZXMh";
        let config = with_extra(&[
            ("SUPABASE_JWT_SECRET", JWT_SECRET),
            ("AUTH_HOOK_SECRET", ROTATED),
            ("DB_WEBHOOK_SECRET", DB_SECRET),
        ])
        .unwrap();
        assert_eq!(config.auth_hook_secret.as_ref().map(|s| s.len()), Some(2));
        let printed = format!("{config:?}");
        for secret in [
            JWT_SECRET,
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "c2Vjb25kLXdlYmhvb2stc2VjcmV0LTMyYnl0ZXMh",
            DB_SECRET,
        ] {
            assert!(!printed.contains(secret), "{printed}");
        }
    }
}
