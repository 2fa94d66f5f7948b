//! Who is calling: a signed-in user (a Supabase access token) or an LLM
//! server (a `cds_…` API key). The rules are in `shared::auth`; this module
//! does the I/O they need: the clock, the JWKS fetch, the key lookup RPC.

use crate::incoming::Request;
use crate::{rest, rpc};
use shared::auth::scopes::{self, Scope};
use shared::auth::{
    anonymous, bearer_token, looks_like_api_key, require_user, ApiKey, AuthError, CachePolicy,
    Fetch, JwkSet, JwksCache, VerifiedClaims, Verifier, VerifierSettings,
};
use shared::hooks::MirrorUser;
use shared::postgrest::Auth;
use shared::rate_limit::Charge;
use shared::rpc::ActingFor;
use shared::{ApiError, Config};
use std::cell::RefCell;
use std::sync::Arc;

/// A verified caller.
#[derive(Debug)]
pub enum Caller {
    /// A signed-in user; `token` is forwarded so row-level security applies.
    User {
        claims: VerifiedClaims,
        token: String,
        /// Their row, when their usage is queued and this isolate does not
        /// know them as mirrored: the queue messages carry it for the
        /// consumer to mirror (see `authenticate_for_queue`).
        pending_mirror: Option<Box<MirrorUser>>,
    },
    /// An API key; RPCs run as the service role, naming `user_id` and `key_id`.
    ApiKey {
        key_id: String,
        user_id: String,
        scopes: Vec<String>,
    },
}

impl Caller {
    /// API keys carry scopes (`shared::auth::scopes`); a signed-in user may
    /// do everything their role allows.
    pub fn require_scope(&self, accepted: &[Scope]) -> Result<(), ApiError> {
        match self {
            Caller::ApiKey { scopes, .. } => scopes::require_any(scopes, accepted),
            Caller::User { .. } => Ok(()),
        }
    }

    /// Who an RPC acts for: an API key's calls run as the service role and
    /// name the key's owner and the key; a user's JWT speaks for itself.
    pub fn acting(&self) -> ActingFor<'_> {
        match self {
            Caller::User { .. } => ActingFor::TOKEN,
            Caller::ApiKey {
                key_id, user_id, ..
            } => ActingFor::api_key(user_id, key_id),
        }
    }

    /// The owner of the API key used, when one was.
    pub fn api_key_owner(&self) -> Option<&str> {
        match self {
            Caller::User { .. } => None,
            Caller::ApiKey { user_id, .. } => Some(user_id),
        }
    }

    /// Who the caller acts for: the user, and the API key when one was used.
    pub fn identity(&self) -> (&str, Option<&str>) {
        match self {
            Caller::User { claims, .. } => (&claims.sub, None),
            Caller::ApiKey {
                key_id, user_id, ..
            } => (user_id, Some(key_id)),
        }
    }

    /// The row queued usage must carry for the consumer to mirror first.
    pub fn pending_mirror(&self) -> Option<&MirrorUser> {
        match self {
            Caller::User { pending_mirror, .. } => pending_mirror.as_deref(),
            Caller::ApiKey { .. } => None,
        }
    }

    /// The authority RPCs run with for this caller.
    pub fn rest_auth(&self) -> Auth<'_> {
        match self {
            Caller::User { token, .. } => Auth::Caller(token),
            Caller::ApiKey { .. } => Auth::ServiceRole,
        }
    }
}

thread_local! {
    // One key cache per isolate: fetched on the first asymmetric token, again
    // after its lifetime, and on an unknown `kid` no more often than the floor.
    static JWKS: RefCell<Option<JwksCache>> = const { RefCell::new(None) };
    // The verifier's rules (and the keyed HS256 state) are built once per
    // isolate, from the configuration, which never changes while it lives.
    static VERIFIER: RefCell<Option<Verifier>> = const { RefCell::new(None) };
}

/// This isolate's verifier, over the key set `keys`.
fn verifier(config: &Config, keys: Arc<JwkSet>) -> Verifier {
    VERIFIER.with(|cell| {
        cell.borrow_mut()
            .get_or_insert_with(|| {
                Verifier::new(&VerifierSettings::from_config(config), Arc::default())
            })
            .with_keys(keys)
    })
}

/// Runs `f` on this isolate's key cache, created on first use with the
/// configured refetch floor.
fn with_jwks<T>(config: &Config, f: impl FnOnce(&mut JwksCache) -> T) -> T {
    JWKS.with(|cell| {
        let mut slot = cell.borrow_mut();
        let cache = slot.get_or_insert_with(|| {
            JwksCache::new(CachePolicy {
                min_interval_secs: i64::from(config.jwks_min_refetch_secs),
                max_stale_secs: i64::from(config.jwks_max_stale_secs),
                ..CachePolicy::default()
            })
        });
        f(cache)
    })
}

fn now_unix() -> i64 {
    // `Date.now()`: one call into JavaScript, where `worker::Date::now` makes two.
    (js_sys::Date::now() / 1000.0) as i64
}

/// The caller of `req`, verified: a user token or an API key.
///
/// A user the platform may not have mirrored yet is mirrored here, before any
/// handler runs (`crate::jit_mirror`), so every RPC finds their
/// `platform.users` row. An API key's owner needs nothing: a key is created
/// by a signed-in, hence mirrored, user.
pub async fn authenticate(req: &Request, config: &Config) -> Result<Caller, ApiError> {
    authenticate_with(req, config, Mirroring::Now).await
}

/// Like [`authenticate`], for usage that is queued (`Prefer: respond-async`)
/// rather than recorded now: no database call, so the queue still accepts
/// usage while the database is away. A user this isolate does not know as
/// mirrored comes back with `pending_mirror`, which the queue messages carry
/// for the consumer.
pub async fn authenticate_for_queue(req: &Request, config: &Config) -> Result<Caller, ApiError> {
    authenticate_with(req, config, Mirroring::ByTheConsumer).await
}

enum Mirroring {
    Now,
    ByTheConsumer,
}

async fn authenticate_with(
    req: &Request,
    config: &Config,
    mirroring: Mirroring,
) -> Result<Caller, ApiError> {
    let authorization = crate::incoming::header(req, "authorization");
    let token = bearer_token(authorization.as_deref())?;
    if looks_like_api_key(token) {
        return resolve_api_key(token, config).await;
    }
    let claims = require_user(verify_jwt(token, config).await?)?;
    // Charged before anything below may call the database.
    crate::rate_limit::charge(&Charge::user(&claims.sub)).await?;
    if claims.is_anonymous {
        // ANONYMOUS_USERS decides per endpoint (shared::auth::anonymous).
        let endpoint = crate::app::router()
            .resolve(req.method(), req.path())?
            .endpoint;
        anonymous::admit(config.anonymous_users, endpoint)?;
    }
    let pending_mirror = match mirroring {
        Mirroring::Now => {
            crate::jit_mirror::ensure_mirrored(&claims, config).await?;
            None
        }
        Mirroring::ByTheConsumer => crate::jit_mirror::planned(&claims, config).map(Box::new),
    };
    Ok(Caller::User {
        claims,
        token: token.to_string(),
        pending_mirror,
    })
}

/// A signed-in user only (not an API key): managing keys needs a person.
pub async fn authenticate_user(req: &Request, config: &Config) -> Result<Caller, ApiError> {
    match authenticate(req, config).await? {
        caller @ Caller::User { .. } => Ok(caller),
        Caller::ApiKey { .. } => Err(ApiError::Forbidden {
            code: "user_token_required",
            message: "this endpoint needs a signed-in user's access token, not an API key".into(),
        }),
    }
}

async fn verify_jwt(token: &str, config: &Config) -> Result<VerifiedClaims, ApiError> {
    let now = now_unix();
    // Keys already fetched go stale after their lifetime; nothing is fetched
    // for a project that only ever presents HS256 tokens.
    let stale = with_jwks(config, |cache| {
        cache.fetched_at().is_some() && cache.decide(now, None) == Fetch::Needed
    });
    if stale {
        refresh_jwks(config, now).await;
    }
    // Keys no refresh has vouched for within `JWKS_MAX_STALE_SECS` are not
    // offered at all: a token naming one lands in the unknown-`kid` path.
    let keys = with_jwks(config, |cache| cache.trusted_keys(now));
    match crate::webcrypto::verify_token(&verifier(config, keys), token, now).await {
        Err(AuthError::UnknownKeyId { kid }) => {
            // Key rotation: fetch once, within the floor interval, and retry.
            let fetch = with_jwks(config, |cache| cache.decide(now, Some(&kid)));
            if fetch == Fetch::NotNeeded {
                return Err(with_jwks(config, |cache| {
                    cache.unknown_key_refusal(now, kid)
                }));
            }
            refresh_jwks(config, now).await;
            let keys = with_jwks(config, |cache| cache.trusted_keys(now));
            match crate::webcrypto::verify_token(&verifier(config, keys), token, now).await {
                // Still unknown: the token's fault (401) while the keys are
                // trusted, the keys' (503, fail closed) when they are not.
                Err(AuthError::UnknownKeyId { kid }) => Err(with_jwks(config, |cache| {
                    cache.unknown_key_refusal(now, kid)
                })),
                other => Ok(other?),
            }
        }
        Err(AuthError::AlgorithmKeyMismatch) => {
            // Answered as `invalid_signature`; the precise reason is for operators.
            worker::console_warn!("access token refused: {}", AuthError::AlgorithmKeyMismatch);
            Err(AuthError::AlgorithmKeyMismatch.into())
        }
        other => Ok(other?),
    }
}

/// Fetches the project's JWKS into the cache; a failure keeps the old keys
/// (trusted until they are older than `JWKS_MAX_STALE_SECS`).
async fn refresh_jwks(config: &Config, now: i64) {
    let call = shared::postgrest::HttpCall {
        method: "GET",
        url: config.jwks_url(),
        headers: vec![("accept", "application/json".into())],
        body: None,
    };
    let stored = match rest::send(&call, config.rest_timeout_ms.min(3_000)).await {
        Ok(answer) if answer.status == 200 => with_jwks(config, |cache| {
            cache
                .store(now, &answer.body)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }),
        Ok(answer) => Err(format!("status {}", answer.status)),
        Err(e) => Err(e.to_string()),
    };
    if let Err(reason) = stored {
        worker::console_warn!("JWKS fetch from {} failed: {reason}", config.jwks_url());
        with_jwks(config, |cache| cache.record_failure(now));
    }
}

/// Hashes the presented secret and asks the database who owns it. Revoked,
/// expired and unknown keys come back as 401 refusals from the RPC.
async fn resolve_api_key(token: &str, config: &Config) -> Result<Caller, ApiError> {
    let parsed = ApiKey::parse(token)?;
    // Charged by the key's public id before the database is asked: a
    // flood with one key is braked here, whether or not its secret is right.
    crate::rate_limit::charge(&Charge::api_key(&parsed.prefix)).await?;
    let resolved = rpc::call(config, &parsed.rpc(), Auth::ServiceRole).await?;
    Ok(Caller::ApiKey {
        key_id: resolved.key_id,
        user_id: resolved.user_id,
        scopes: resolved.scopes,
    })
}
