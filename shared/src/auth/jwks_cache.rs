//! When to fetch the JWKS again: a state machine with the clock passed in.
//!
//! The Worker keeps one [`JwksCache`] per isolate. Before verifying a token it
//! asks [`JwksCache::decide`]; on [`Fetch::Needed`] it fetches
//! `<SUPABASE_URL>/auth/v1/.well-known/jwks.json` and hands the body to
//! [`JwksCache::store`], or calls [`JwksCache::record_failure`].
//!
//! The rules:
//! - fetch on first use;
//! - fetch again once the keys are older than [`CachePolicy::lifetime_secs`],
//!   so a revoked key stops working within that time;
//! - fetch when a token names a `kid` we do not hold (Supabase rotated its
//!   keys), but never more often than once per [`CachePolicy::min_interval_secs`]:
//!   anyone can send tokens with made-up `kid`s, and they must not be able to
//!   make us hammer the auth server;
//! - the same floor applies after a failed fetch, so an auth outage is not
//!   met with a fetch per request;
//! - a failed fetch or an unparsable document keeps the keys we had: stale
//!   keys are better than refusing every user while Supabase is away, but
//!   only for a while. Keys fetched longer ago than
//!   [`CachePolicy::max_stale_secs`] (`JWKS_MAX_STALE_SECS`) are no longer
//!   trusted: a key Supabase revoked during an outage must not stay valid for
//!   ever. Asymmetric tokens are then refused with 503 `jwks_unavailable`
//!   ([`JwksCache::unknown_key_refusal`]) until a fetch succeeds; HS256
//!   tokens need no JWKS and are unaffected.

use super::jwks::{JwkSet, JwksError};
use super::AuthError;
use crate::error::ApiError;
use std::sync::Arc;

/// Whether the caller should fetch the JWKS now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetch {
    NotNeeded,
    Needed,
}

/// The timing rules, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    /// Keys older than this are fetched again.
    pub lifetime_secs: i64,
    /// The least time between two fetch attempts triggered by an unknown
    /// `kid`, stale keys or a failure.
    pub min_interval_secs: i64,
    /// Keys fetched longer ago than this are not trusted any more (every
    /// refresh since then failed): asymmetric tokens are refused with 503.
    pub max_stale_secs: i64,
}

impl Default for CachePolicy {
    fn default() -> Self {
        CachePolicy {
            lifetime_secs: 10 * 60,
            min_interval_secs: 30,
            max_stale_secs: crate::config::DEFAULT_JWKS_MAX_STALE_SECS.into(),
        }
    }
}

/// The signing keys we hold and when we last fetched them.
#[derive(Debug, Clone, Default)]
pub struct JwksCache {
    policy: CachePolicy,
    keys: Arc<JwkSet>,
    /// When the keys we hold were fetched; `None` before the first success.
    fetched_at: Option<i64>,
    /// When we last decided to fetch, or last failed.
    last_attempt: Option<i64>,
}

impl JwksCache {
    pub fn new(policy: CachePolicy) -> Self {
        JwksCache {
            policy,
            ..JwksCache::default()
        }
    }

    /// The keys we hold, however old (possibly empty).
    pub fn keys(&self) -> Arc<JwkSet> {
        Arc::clone(&self.keys)
    }

    /// The keys to verify with at `now`: none at all once they are older than
    /// [`CachePolicy::max_stale_secs`], so no token verifies against keys
    /// nobody has vouched for since.
    pub fn trusted_keys(&self, now: i64) -> Arc<JwkSet> {
        if self.too_stale(now) {
            Arc::default()
        } else {
            self.keys()
        }
    }

    /// Whether we hold no keys we may trust at `now`: none was ever fetched,
    /// or the last successful fetch is older than the maximum staleness.
    pub fn too_stale(&self, now: i64) -> bool {
        self.fetched_at
            .is_none_or(|at| elapsed(at, now) > self.policy.max_stale_secs)
    }

    /// The answer for a token whose `kid` is not among the
    /// [`trusted_keys`](Self::trusted_keys), once any fetch the cache allowed
    /// has been tried: `unknown_key_id` (401) when the keys are trusted, so
    /// the token is at fault; `jwks_unavailable` (503, retry after the
    /// refetch floor) when they are not, so the keys are.
    pub fn unknown_key_refusal(&self, now: i64, kid: String) -> ApiError {
        if self.too_stale(now) {
            ApiError::JwksUnavailable {
                retry_after_secs: u32::try_from(self.policy.min_interval_secs.max(1))
                    .unwrap_or(u32::MAX),
            }
        } else {
            AuthError::UnknownKeyId { kid }.into()
        }
    }

    pub fn fetched_at(&self) -> Option<i64> {
        self.fetched_at
    }

    /// Whether to fetch now, given the `kid` of the token at hand (or `None`
    /// just to keep the keys fresh).
    ///
    /// `Needed` also records the attempt: requests running concurrently in the
    /// isolate then see the floor and do not all fetch at once. A caller that
    /// gets `Needed` must follow with [`store`](Self::store) or
    /// [`record_failure`](Self::record_failure).
    pub fn decide(&mut self, now: i64, kid: Option<&str>) -> Fetch {
        let since_attempt = self.last_attempt.map(|at| elapsed(at, now));
        let floor_passed = since_attempt.is_none_or(|secs| secs >= self.policy.min_interval_secs);
        let wanted = match self.fetched_at {
            None => true,
            Some(at)
                if elapsed(at, now)
                    >= self.policy.lifetime_secs.min(self.policy.max_stale_secs) =>
            {
                true
            }
            Some(_) => kid.is_some_and(|kid| !self.keys.contains(kid)),
        };
        if wanted && floor_passed {
            self.last_attempt = Some(now);
            Fetch::Needed
        } else {
            Fetch::NotNeeded
        }
    }

    /// Installs a fetched JWKS document. An unparsable one keeps the old keys
    /// and counts as a failure.
    pub fn store(&mut self, now: i64, document: &[u8]) -> Result<Arc<JwkSet>, JwksError> {
        match JwkSet::parse(document) {
            Ok(keys) => {
                // The same keys keep the same `Arc`, so what the Worker derived
                // from them (imported WebCrypto keys) outlives a routine refetch.
                if *self.keys != keys {
                    self.keys = Arc::new(keys);
                }
                self.fetched_at = Some(now);
                Ok(self.keys())
            }
            Err(e) => {
                self.record_failure(now);
                Err(e)
            }
        }
    }

    /// The fetch failed (network error, non-200 answer); the old keys stay.
    pub fn record_failure(&mut self, now: i64) {
        self.last_attempt = Some(now);
    }
}

/// Seconds from `then` to `now`. A clock that went backwards counts as
/// "long ago", so the cache cannot get stuck waiting for a time that passed.
fn elapsed(then: i64, now: i64) -> i64 {
    let secs = now.saturating_sub(then);
    if secs < 0 {
        i64::MAX
    } else {
        secs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000;

    fn document(kids: &[&str]) -> Vec<u8> {
        let keys: Vec<_> = kids
            .iter()
            .map(|kid| {
                let key = crate::auth::jwks::tests::ec_signing_key();
                crate::auth::jwks::tests::ec_jwk(kid, &key)
            })
            .collect();
        serde_json::json!({ "keys": keys }).to_string().into_bytes()
    }

    /// A cache that fetched keys `kids` at `T0`.
    fn fetched(kids: &[&str]) -> JwksCache {
        let mut cache = JwksCache::new(CachePolicy::default());
        assert_eq!(cache.decide(T0, None), Fetch::Needed);
        cache.store(T0, &document(kids)).unwrap();
        cache
    }

    #[test]
    fn fetches_on_first_use() {
        let mut cache = JwksCache::new(CachePolicy::default());
        assert_eq!(cache.decide(T0, None), Fetch::Needed);
        assert!(cache.keys().is_empty());
    }

    #[test]
    fn fresh_keys_with_a_known_kid_need_no_fetch() {
        let mut cache = fetched(&["k1"]);
        for now in [T0, T0 + 1, T0 + 599] {
            assert_eq!(cache.decide(now, Some("k1")), Fetch::NotNeeded, "{now}");
            assert_eq!(cache.decide(now, None), Fetch::NotNeeded, "{now}");
        }
    }

    #[test]
    fn keys_older_than_the_lifetime_are_fetched_again() {
        let mut cache = fetched(&["k1"]);
        assert_eq!(cache.decide(T0 + 600, Some("k1")), Fetch::Needed);
    }

    #[test]
    fn an_unknown_kid_is_fetched_at_most_once_per_interval() {
        let mut cache = fetched(&["k1"]);
        // Right after a fetch, a flood of forged kids fetches nothing.
        for (offset, want) in [
            (0, Fetch::NotNeeded),
            (29, Fetch::NotNeeded),
            (30, Fetch::Needed),
            (31, Fetch::NotNeeded),
            (59, Fetch::NotNeeded),
            (60, Fetch::Needed),
        ] {
            assert_eq!(
                cache.decide(T0 + offset, Some("forged")),
                want,
                "+{offset}s"
            );
        }
    }

    #[test]
    fn a_rotated_key_is_found_after_the_refetch() {
        let mut cache = fetched(&["k1"]);
        assert_eq!(cache.decide(T0 + 45, Some("k2")), Fetch::Needed);
        cache.store(T0 + 45, &document(&["k1", "k2"])).unwrap();
        assert_eq!(cache.decide(T0 + 46, Some("k2")), Fetch::NotNeeded);
        assert!(cache.keys().contains("k2"));
    }

    #[test]
    fn concurrent_requests_do_not_all_fetch() {
        let mut cache = JwksCache::new(CachePolicy::default());
        assert_eq!(cache.decide(T0, None), Fetch::Needed);
        // The first fetch is in flight; nothing stored yet.
        assert_eq!(cache.decide(T0, None), Fetch::NotNeeded);
        assert_eq!(cache.decide(T0 + 1, Some("k1")), Fetch::NotNeeded);
    }

    #[test]
    fn a_failure_keeps_the_keys_and_waits_the_interval() {
        let mut cache = fetched(&["k1"]);
        assert_eq!(cache.decide(T0 + 600, None), Fetch::Needed);
        cache.record_failure(T0 + 601);
        assert!(cache.keys().contains("k1"));
        assert_eq!(cache.decide(T0 + 630, None), Fetch::NotNeeded);
        assert_eq!(cache.decide(T0 + 631, None), Fetch::Needed);
    }

    #[test]
    fn a_first_fetch_that_fails_is_retried_after_the_interval() {
        let mut cache = JwksCache::new(CachePolicy::default());
        assert_eq!(cache.decide(T0, None), Fetch::Needed);
        cache.record_failure(T0);
        assert_eq!(cache.decide(T0 + 10, None), Fetch::NotNeeded);
        assert_eq!(cache.decide(T0 + 30, None), Fetch::Needed);
    }

    /// The Worker keeps what it derived from a key set (WebCrypto keys) for
    /// as long as the set is the same `Arc`: a refetch bringing the same keys
    /// keeps it, one bringing other keys replaces it.
    #[test]
    fn a_refetch_with_the_same_keys_keeps_the_same_set() {
        let mut cache = JwksCache::new(CachePolicy::default());
        let doc = document(&["k1"]);
        let first = cache.store(T0, &doc).unwrap();
        let again = cache.store(T0 + 600, &doc).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(cache.fetched_at(), Some(T0 + 600));
        let rotated = cache.store(T0 + 1200, &document(&["k2"])).unwrap();
        assert!(!Arc::ptr_eq(&first, &rotated));
        assert!(rotated.contains("k2") && !rotated.contains("k1"));
    }

    #[test]
    fn an_unparsable_document_keeps_the_old_keys() {
        let mut cache = fetched(&["k1"]);
        assert_eq!(cache.decide(T0 + 600, None), Fetch::Needed);
        assert!(cache.store(T0 + 600, b"<html>502</html>").is_err());
        assert!(cache.keys().contains("k1"));
        assert_eq!(cache.fetched_at(), Some(T0));
        assert_eq!(cache.decide(T0 + 610, None), Fetch::NotNeeded);
    }

    /// One row per history: when the last good fetch was, whether later
    /// refreshes failed, and what a token naming `k1` gets at `now`.
    #[test]
    fn keys_are_trusted_only_up_to_the_maximum_staleness() {
        /// (case, fetched at, failures after it, now, trusted, the refusal
        /// for an unknown kid)
        type Case = (
            &'static str,
            Option<i64>,
            &'static [i64],
            i64,
            bool,
            (u16, &'static str),
        );
        let cases: &[Case] = &[
            (
                "fresh keys",
                Some(T0),
                &[],
                T0 + 10,
                true,
                (401, "unknown_key_id"),
            ),
            (
                "stale keys within the bound, refreshes failing",
                Some(T0),
                &[T0 + 600, T0 + 1800],
                T0 + 3600,
                true,
                (401, "unknown_key_id"),
            ),
            (
                "one second past the bound, refreshes failing",
                Some(T0),
                &[T0 + 600, T0 + 3601],
                T0 + 3601,
                false,
                (503, "jwks_unavailable"),
            ),
            (
                "long past the bound",
                Some(T0),
                &[T0 + 86_400],
                T0 + 86_400,
                false,
                (503, "jwks_unavailable"),
            ),
            (
                "a good fetch after failures trusts the new keys",
                Some(T0 + 7200),
                &[T0 + 3601],
                T0 + 7201,
                true,
                (401, "unknown_key_id"),
            ),
            (
                "never fetched: the first fetch failed",
                None,
                &[T0],
                T0,
                false,
                (503, "jwks_unavailable"),
            ),
        ];
        for (case, fetched_at, failures, now, trusted, (status, code)) in cases {
            let mut cache = JwksCache::new(CachePolicy::default());
            if let Some(at) = fetched_at {
                cache.store(*at, &document(&["k1"])).unwrap();
            }
            for at in *failures {
                cache.record_failure(*at);
            }
            assert_eq!(cache.trusted_keys(*now).contains("k1"), *trusted, "{case}");
            assert_eq!(cache.too_stale(*now), !trusted, "{case}");
            let refusal = cache.unknown_key_refusal(*now, "k9".into());
            assert_eq!(
                (refusal.status(), refusal.code()),
                (*status, *code),
                "{case}"
            );
            if *status == 503 {
                assert_eq!(refusal.headers(), vec![("retry-after", "30".to_string())]);
            }
        }
    }

    #[test]
    fn keys_past_the_maximum_staleness_are_fetched_even_within_their_lifetime() {
        let mut cache = JwksCache::new(CachePolicy {
            max_stale_secs: 120,
            ..CachePolicy::default()
        });
        assert_eq!(cache.decide(T0, None), Fetch::Needed);
        cache.store(T0, &document(&["k1"])).unwrap();
        assert_eq!(cache.decide(T0 + 119, None), Fetch::NotNeeded);
        assert_eq!(cache.decide(T0 + 120, None), Fetch::Needed);
    }

    #[test]
    fn a_clock_that_went_backwards_does_not_freeze_the_cache() {
        let mut cache = fetched(&["k1"]);
        assert_eq!(cache.decide(T0 - 3600, Some("k2")), Fetch::Needed);
    }
}
