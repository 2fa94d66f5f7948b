//! Typed configuration, read once from the Worker's vars and secrets.
//!
//! The source is a lookup function so the same code reads `worker::Env` at the
//! edge and a `HashMap` in tests. Every missing or invalid variable is reported
//! at once, by name, so a deploy is fixed in one round.

use std::fmt;

/// Names of the Worker variables and secrets, as set in `wrangler.toml`,
/// `.dev.vars` or with `wrangler secret put`.
pub mod names {
    pub const SUPABASE_URL: &str = "SUPABASE_URL";
    pub const SUPABASE_ANON_KEY: &str = "SUPABASE_ANON_KEY";
    pub const SUPABASE_SERVICE_ROLE_KEY: &str = "SUPABASE_SERVICE_ROLE_KEY";
    pub const ALLOWED_ORIGINS: &str = "ALLOWED_ORIGINS";
    pub const MAX_BODY_BYTES: &str = "MAX_BODY_BYTES";
    pub const REST_TIMEOUT_MS: &str = "REST_TIMEOUT_MS";
}

/// Default request body limit: generous for a batch of usage events, small
/// enough that a Worker never buffers megabytes of junk.
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;
/// Default time the edge waits for the REST layer before answering 503.
pub const DEFAULT_REST_TIMEOUT_MS: u32 = 5_000;

#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// Base URL of the Supabase project, without a trailing slash.
    pub supabase_url: String,
    /// The project's `anon` key, sent as `apikey` on every REST call.
    pub anon_key: String,
    /// The `service_role` key, for operations the caller's own JWT may not do.
    pub service_role_key: String,
    pub allowed_origins: AllowedOrigins,
    pub max_body_bytes: usize,
    pub rest_timeout_ms: u32,
}

// Hand-written so a stray `{:?}` in a log line can never print a key.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("supabase_url", &self.supabase_url)
            .field("anon_key", &"<redacted>")
            .field("service_role_key", &"<redacted>")
            .field("allowed_origins", &self.allowed_origins)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("rest_timeout_ms", &self.rest_timeout_ms)
            .finish()
    }
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
        if !(supabase_url.starts_with("https://") || supabase_url.starts_with("http://")) {
            return Err(ConfigError::Invalid {
                name: names::SUPABASE_URL,
                reason: "must start with https:// or http://".into(),
            });
        }
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
        Ok(Config {
            supabase_url,
            anon_key,
            service_role_key,
            allowed_origins,
            max_body_bytes,
            rest_timeout_ms,
        })
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
        ("SUPABASE_ANON_KEY", "anon"),
        ("SUPABASE_SERVICE_ROLE_KEY", "service"),
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
        assert!(config.allowed_origins.allows("https://app.example.com"));
        assert!(!config.allowed_origins.allows("https://evil.example.com"));
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
    fn rejects_malformed_origins() {
        for bad in ["app.example.com", "https://app.example.com/", "ftp://x"] {
            assert!(AllowedOrigins::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(AllowedOrigins::parse("*"), Ok(AllowedOrigins::Any));
    }

    #[test]
    fn debug_output_redacts_keys() {
        let config = Config::from_lookup(lookup(COMPLETE)).unwrap();
        let printed = format!("{config:?}");
        assert!(!printed.contains("service\""), "{printed}");
        assert!(printed.contains("<redacted>"));
    }
}
