//! Rate limits: which of Cloudflare's rate limiting bindings a request is
//! charged to, under which key, and the refusal when it is over.
//!
//! Each request is charged once, to one limiter:
//! - an API key, per key id (`cds_<id>`), as soon as the key parses and
//!   before the database resolves it;
//! - a user token, per verified user id (`sub`), as soon as the token
//!   verifies and before the user is mirrored or any RPC runs;
//! - anything else, per client address (`CF-Connecting-IP`): the public
//!   routes (`/health`, `/v1/openapi.json`, `/v1/models`) before they run,
//!   and every request refused before its caller is known: no or bad
//!   credentials before the answer (which becomes the 429 once over), an
//!   unknown route or an oversized body after it ([`RefusalCharge`]).
//!
//! Not charged: Supabase's signed hook calls and the operator's
//! `METRICS_TOKEN` (not client traffic, and their senders retry on 429
//! rather than back off usefully), CORS preflights that are answered (no
//! credentials, no work, and a browser sends one before its calls), and the
//! cron and queue handlers (not requests).
//!
//! The limits themselves (`simple = { limit, period }`) live in
//! `wrangler.toml`, one `[[ratelimits]]` binding per [`Limiter`]. Cloudflare
//! counts per location and eventually consistently: an abuse brake, not an
//! exact quota.

use crate::error::ApiError;
use crate::routes::Endpoint;
use std::net::IpAddr;

/// The period of every limiter in `wrangler.toml`, which a refusal's
/// `Retry-After` gives. (Cloudflare allows 10 or 60; xtask's tests check
/// `wrangler.toml` against this.)
pub const PERIOD_SECS: u32 = 60;

/// The client address used when a request carries no `CF-Connecting-IP`.
/// Cloudflare always sets it; only a Worker served without Cloudflare's
/// front (bare `workerd`) lacks it, and then those requests share one
/// budget rather than escape the limit.
pub const UNKNOWN_CLIENT: &str = "unknown";

/// How much of a `CF-Connecting-IP` that is not an address becomes its key.
const MAX_UNPARSED_CLIENT_CHARS: usize = 64;

/// One rate limiting binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limiter {
    ApiKey,
    User,
    Client,
}

impl Limiter {
    pub const ALL: [Limiter; 3] = [Limiter::ApiKey, Limiter::User, Limiter::Client];

    /// The binding's name in `wrangler.toml`.
    pub fn binding(self) -> &'static str {
        match self {
            Limiter::ApiKey => "API_KEY_LIMITER",
            Limiter::User => "USER_LIMITER",
            Limiter::Client => "CLIENT_IP_LIMITER",
        }
    }

    /// Which limit was reached, for the caller's message.
    pub fn describe(self) -> &'static str {
        match self {
            Limiter::ApiKey => "the per-API-key rate limit",
            Limiter::User => "the per-user rate limit",
            Limiter::Client => "the per-client-address rate limit",
        }
    }
}

/// One request charged to one limiter under one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub limiter: Limiter,
    pub key: String,
}

impl Charge {
    /// An API key, by its public id (`cds_<24 hex>`), never its secret.
    pub fn api_key(key_id: &str) -> Self {
        Charge {
            limiter: Limiter::ApiKey,
            key: key_id.to_string(),
        }
    }

    /// A user whose token verified, by their id.
    pub fn user(user_id: &str) -> Self {
        Charge {
            limiter: Limiter::User,
            key: user_id.to_string(),
        }
    }

    /// A client by its `CF-Connecting-IP`; absent or blank is
    /// [`UNKNOWN_CLIENT`]. An IPv6 client is charged by its /64: one
    /// subscriber usually holds a whole /64 and could otherwise step to a
    /// fresh address, and a fresh budget, per request. An IPv4 address
    /// written as IPv6 (`::ffff:a.b.c.d`) is the IPv4 client it names.
    pub fn client(connecting_ip: Option<&str>) -> Self {
        let raw = connecting_ip
            .map(str::trim)
            .filter(|ip| !ip.is_empty())
            .unwrap_or(UNKNOWN_CLIENT);
        let key = match raw.parse::<IpAddr>() {
            Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => {
                    let s = v6.segments();
                    format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
                }
            },
            Ok(IpAddr::V4(v4)) => v4.to_string(),
            // Cloudflare always sends an address; anything else only
            // reaches a local stack, and is charged as the text it is,
            // cut so that a key stays small.
            Err(_) => raw.chars().take(MAX_UNPARSED_CLIENT_CHARS).collect(),
        };
        Charge {
            limiter: Limiter::Client,
            key,
        }
    }

    /// The answer when the limiter says the key is over its limit.
    pub fn refusal(&self) -> ApiError {
        ApiError::RateLimited {
            limiter: self.limiter,
            retry_after_secs: PERIOD_SECS,
        }
    }
}

/// Whether a route is charged to the client address before it runs: the
/// routes anyone may call without credentials. Every other route is charged
/// by its caller's identity once known, or to the client address when
/// refused before that (see [`refusal_charge`]).
pub fn public_route(endpoint: Endpoint, deep_health: bool) -> bool {
    match endpoint {
        // `?deep=1` needs the operator's token, like `/v1/metrics`.
        Endpoint::Health => !deep_health,
        Endpoint::OpenApi | Endpoint::ListModels => true,
        _ => false,
    }
}

/// What a refusal costs the client address's budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalCharge {
    /// The caller was known (and charged), or the fault is ours.
    None,
    /// Refused by the pipeline before any handler (an unknown route, a
    /// refused preflight, an oversized body): counted once the answer is
    /// out, and answered as it is. Such a refusal costs no more than a 429
    /// would, and a body refused mid-upload is answered at once rather
    /// than after a limiter call while the client is still sending.
    AfterAnswer,
    /// Refused by authentication (every 401; signing keys too stale to
    /// judge a token): charged before answering, and answered 429 instead
    /// once the address is over, so a flood without valid credentials is
    /// braked.
    BeforeAnswer,
}

/// How a request answered with `err` is charged to its client address.
/// `reached_handler` is false for what the pipeline refuses before any
/// handler runs. A refusal that is itself a rate limit, or the Worker's own
/// misconfiguration, is never charged again.
pub fn refusal_charge(err: &ApiError, reached_handler: bool) -> RefusalCharge {
    match err {
        ApiError::RateLimited { .. } | ApiError::Misconfigured { .. } => RefusalCharge::None,
        _ if !reached_handler => RefusalCharge::AfterAnswer,
        ApiError::JwksUnavailable { .. } => RefusalCharge::BeforeAnswer,
        other if other.status() == 401 => RefusalCharge::BeforeAnswer,
        _ => RefusalCharge::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::AuthError;

    #[test]
    fn each_caller_is_charged_to_its_own_limiter_under_its_id() {
        let cases = [
            (
                Charge::api_key("cds_0123456789abcdef01234567"),
                Limiter::ApiKey,
                "cds_0123456789abcdef01234567",
            ),
            (
                Charge::user("5f0c6a4e-1111-4a4a-8888-000000000001"),
                Limiter::User,
                "5f0c6a4e-1111-4a4a-8888-000000000001",
            ),
            (
                Charge::client(Some(" 203.0.113.7 ")),
                Limiter::Client,
                "203.0.113.7",
            ),
            (
                Charge::client(Some("2001:db8::1")),
                Limiter::Client,
                "2001:db8:0:0::/64",
            ),
            (
                Charge::client(Some("::ffff:203.0.113.7")),
                Limiter::Client,
                "203.0.113.7",
            ),
            (Charge::client(Some("")), Limiter::Client, UNKNOWN_CLIENT),
            (Charge::client(None), Limiter::Client, UNKNOWN_CLIENT),
        ];
        for (charge, limiter, key) in cases {
            assert_eq!((charge.limiter, charge.key.as_str()), (limiter, key));
        }
    }

    #[test]
    fn an_ipv6_client_cannot_step_to_a_fresh_budget_within_its_64() {
        let first = Charge::client(Some("2001:db8:aa:bb::1"));
        let stepped = Charge::client(Some("2001:db8:aa:bb:ffff:ffff:ffff:fffe"));
        let neighbour = Charge::client(Some("2001:db8:aa:bc::1"));
        assert_eq!(first.key, stepped.key);
        assert_ne!(first.key, neighbour.key);
    }

    #[test]
    fn a_client_that_is_not_an_address_is_charged_by_a_bounded_key() {
        let long = "x".repeat(10_000);
        let charge = Charge::client(Some(&long));
        assert_eq!(charge.key.len(), MAX_UNPARSED_CLIENT_CHARS);
    }

    #[test]
    fn the_limiters_have_distinct_bindings() {
        let mut names: Vec<_> = Limiter::ALL.iter().map(|l| l.binding()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Limiter::ALL.len());
    }

    #[test]
    fn a_refusal_is_a_coded_429_naming_the_limit_with_retry_after() {
        for limiter in Limiter::ALL {
            let err = Charge {
                limiter,
                key: "k".into(),
            }
            .refusal();
            assert_eq!((err.status(), err.code()), (429, "rate_limited"));
            assert!(
                err.to_string().contains(limiter.describe()),
                "{}",
                err.to_string()
            );
            assert_eq!(
                err.headers(),
                vec![("retry-after", PERIOD_SECS.to_string())]
            );
            // The key (an id or an address) is not echoed back.
            assert!(!err.body().contains("\"k\""), "{}", err.body());
        }
    }

    #[test]
    fn only_the_credential_free_routes_are_charged_to_the_address_up_front() {
        let cases = [
            (Endpoint::Health, false, true),
            (Endpoint::Health, true, false),
            (Endpoint::OpenApi, false, true),
            (Endpoint::ListModels, false, true),
            (Endpoint::Me, false, false),
            (Endpoint::RecordUsage, false, false),
            (Endpoint::Metrics, false, false),
            (Endpoint::DbUserInsertHook, false, false),
            (Endpoint::BeforeUserCreatedHook, false, false),
        ];
        for (endpoint, deep, public) in cases {
            assert_eq!(public_route(endpoint, deep), public, "{endpoint:?}");
        }
    }

    #[test]
    fn refusals_before_the_caller_is_known_are_charged_to_the_address() {
        use RefusalCharge::{AfterAnswer, BeforeAnswer, None as NotCharged};
        let limited = Charge::client(None).refusal();
        let cases: Vec<(ApiError, bool, RefusalCharge)> = vec![
            // The pipeline's own refusals, before any handler.
            (ApiError::NotFound, false, AfterAnswer),
            (ApiError::PayloadTooLarge { limit: 1 }, false, AfterAnswer),
            (ApiError::OriginNotAllowed, false, AfterAnswer),
            // Authentication's refusals.
            (AuthError::MissingToken.into(), true, BeforeAnswer),
            (AuthError::MalformedApiKey.into(), true, BeforeAnswer),
            (
                ApiError::Rejected {
                    status: 401,
                    code: "api_key_revoked".into(),
                    message: "revoked".into(),
                },
                true,
                BeforeAnswer,
            ),
            (
                ApiError::JwksUnavailable {
                    retry_after_secs: 30,
                },
                true,
                BeforeAnswer,
            ),
            // After authentication, the identity was charged already.
            (
                ApiError::Forbidden {
                    code: "insufficient_scope",
                    message: "no".into(),
                },
                true,
                NotCharged,
            ),
            (
                ApiError::Unprocessable {
                    code: "invalid_field",
                    message: "no".into(),
                },
                true,
                NotCharged,
            ),
            (
                ApiError::Unavailable {
                    retry_after_secs: 1,
                },
                true,
                NotCharged,
            ),
            // Never charged twice, never for the Worker's own fault.
            (limited.clone(), true, NotCharged),
            (limited, false, NotCharged),
            (
                ApiError::Misconfigured {
                    detail: "CLIENT_IP_LIMITER".into(),
                },
                false,
                NotCharged,
            ),
        ];
        for (err, reached_handler, charged) in cases {
            assert_eq!(
                refusal_charge(&err, reached_handler),
                charged,
                "{err:?} (reached handler: {reached_handler})"
            );
        }
    }
}
