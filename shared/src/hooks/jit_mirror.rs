//! Just-in-time mirroring: a signed-in user whom the `auth.users` webhook
//! has not mirrored into `platform.users` (not installed yet, or a delivery
//! lost) is mirrored from their verified access token, instead of every call
//! failing with `unknown_user`.
//!
//! Cost: each isolate keeps a bounded set of the users it has mirrored (or
//! found already mirrored), [`MirroredUsers`]. A user costs one extra
//! subrequest, `mirror_auth_user`, in the first isolate that serves them, and
//! nothing after that. Mirroring before the work (rather than on an
//! `unknown_user` answer, then retrying the call) covers every route alike
//! and needs no retry logic in any handler:
//! - a request served now is mirrored before its handler runs;
//! - usage accepted with `Prefer: respond-async` is answered before any RPC
//!   runs, and must be accepted even while the database is away (that is
//!   what the queue is for). So the edge makes no call for it: when the
//!   isolate does not know the user, each queue message carries the row
//!   ([`crate::queue::QueuedUsage::mirror`]), and the consumer, which records
//!   as the service role and knows nothing of the token, mirrors the user
//!   before recording, as the same kind of call with the same retries.
//!
//! What is done with the mirror RPC's answer ([`after_mirror`]):
//! - mirrored, or already there: remember the user, go on;
//! - the email refused (`email_taken`: another platform user has it, e.g. a
//!   stale mirror row after an email change; or `invalid_email`): mirror
//!   again without the email. The platform identifies users by id; the email
//!   column is informational, so the user is served and the clash is logged
//!   for operators;
//! - no such Supabase Auth user (`unknown_auth_user`: deleted while their
//!   token is still valid): `unknown_user`, as every RPC would answer;
//! - a user Supabase Auth banned or soft-deleted (`user_banned`,
//!   `user_deleted`, 403): refused, and not remembered, so the next request
//!   asks again;
//! - anything else (the database unavailable, a deployment fault): the
//!   request is answered with that error (503, 502); the consumer delivers
//!   the batch again later ([`holds_back_batch`]).

use super::user_mirror::MirrorUser;
use crate::auth::VerifiedClaims;
use crate::config::UserRole;
use crate::error::ApiError;

/// How many user ids an isolate remembers (16 bytes each) before it starts
/// over. Starting over costs each active user one more mirror call.
pub const DEFAULT_CAPACITY: usize = 50_000;

/// The users this isolate knows to be mirrored: their ids in order, searched
/// by bisection. Not a `HashSet`: it was the Worker's only hash table, and
/// the table and its SipHash hasher cost the wasm more than the order does
/// time. A lookup is at most 16 comparisons at the capacity; an insert moves
/// the ids after it (under 1 MB even then), and follows a mirror call that
/// took a round trip to the database.
#[derive(Debug, Clone)]
pub struct MirroredUsers {
    ids: Vec<u128>,
    capacity: usize,
}

impl Default for MirroredUsers {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl MirroredUsers {
    pub fn with_capacity(capacity: usize) -> Self {
        MirroredUsers {
            ids: Vec::new(),
            capacity: capacity.max(1),
        }
    }

    pub fn contains(&self, user_id: &str) -> bool {
        key(user_id).is_some_and(|k| self.ids.binary_search(&k).is_ok())
    }

    /// Remembers `user_id`; a full set is emptied first, so memory stays
    /// bounded whatever the number of users.
    pub fn remember(&mut self, user_id: &str) {
        let Some(k) = key(user_id) else { return };
        let slot = match self.ids.binary_search(&k) {
            Ok(_) => return,
            Err(slot) if self.ids.len() < self.capacity => slot,
            Err(_) => {
                self.ids.clear();
                0
            }
        };
        self.ids.insert(slot, k);
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// A UUID as a number, whatever its case and hyphens; `None` if it is not one.
fn key(user_id: &str) -> Option<u128> {
    let hex: String = user_id.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return None;
    }
    u128::from_str_radix(&hex, 16).ok()
}

/// The row to mirror for a verified caller (now, or by the queue consumer),
/// or `None`: already known to this isolate, or a token that is not mirrored
/// at all (an anonymous sign-in; see [`MirrorUser::from_claims`]).
pub fn plan(claims: &VerifiedClaims, role: UserRole, known: &MirroredUsers) -> Option<MirrorUser> {
    if known.contains(&claims.sub) {
        return None;
    }
    MirrorUser::from_claims(claims, role)
}

/// What to do after `mirror_auth_user` answered for `sent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// The user is mirrored: remember them and serve the request.
    Done,
    /// Mirror this row instead (the same user without the refused email),
    /// once: it never carries an email, so it is never retried again.
    Retry(MirrorUser),
    /// Answer the request with this error.
    Refuse(ApiError),
}

/// Decides, from the mirror RPC's answer, what the edge does next (see the
/// module's documentation).
pub fn after_mirror(sent: &MirrorUser, answer: Result<&serde_json::Value, &ApiError>) -> Next {
    let err = match answer {
        Ok(_) => return Next::Done,
        Err(err) => err,
    };
    if !matches!(err, ApiError::Rejected { .. }) {
        return Next::Refuse(err.clone());
    }
    match err.code() {
        "email_taken" | "invalid_email" if sent.email.is_some() => {
            Next::Retry(sent.without_email())
        }
        "unknown_auth_user" => Next::Refuse(ApiError::Rejected {
            status: 404,
            code: "unknown_user".into(),
            message: "the user is not registered on the platform".into(),
        }),
        _ => Next::Refuse(err.clone()),
    }
}

/// In the queue consumer, after mirroring a user a message carries: whether
/// the batch must wait (delivered again later, as after a failed recording
/// call) rather than be recorded now. A refusal for good does not hold it
/// back: the user's events are then rejected as `unknown_user`, the reason
/// kept in `platform.usage_rejections`.
pub fn holds_back_batch(next: &Next) -> bool {
    match next {
        Next::Done => false,
        Next::Refuse(ApiError::Rejected { .. }) => false,
        Next::Retry(_) | Next::Refuse(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;
    use serde_json::json;

    const ID: &str = "0b6c1f0e-8e2a-4c57-9a3e-5d1c2b3a4f60";

    fn claims(id: &str, is_anonymous: bool) -> VerifiedClaims {
        VerifiedClaims {
            sub: id.into(),
            role: Role::Authenticated,
            email: Some("ada@example.com".into()),
            phone: None,
            session_id: None,
            is_anonymous,
            aal: None,
            username: None,
            exp: 2_000_000_000,
            iat: None,
        }
    }

    fn rejected(status: u16, code: &str) -> ApiError {
        ApiError::Rejected {
            status,
            code: code.into(),
            message: "m".into(),
        }
    }

    #[test]
    fn a_user_is_mirrored_once_per_isolate() {
        let mut known = MirroredUsers::default();
        let user = plan(&claims(ID, false), UserRole::Developer, &known).expect("first request");
        assert_eq!(user.id, ID);
        assert_eq!(user.email.as_deref(), Some("ada@example.com"));
        assert_eq!(user.role, UserRole::Developer);
        assert_eq!(
            after_mirror(&user, Ok(&json!({"created": true}))),
            Next::Done
        );
        known.remember(&user.id);
        assert_eq!(plan(&claims(ID, false), UserRole::Developer, &known), None);
        let upper = claims(&ID.to_uppercase(), false);
        assert_eq!(plan(&upper, UserRole::Developer, &known), None, "any case");
    }

    #[test]
    fn anonymous_sign_ins_are_never_mirrored_here() {
        let known = MirroredUsers::default();
        assert_eq!(plan(&claims(ID, true), UserRole::Developer, &known), None);
    }

    /// One row per answer of the mirror RPC: what the edge does next.
    #[test]
    fn answers_decide_the_next_step() {
        let with_email = MirrorUser::from_claims(&claims(ID, false), UserRole::Developer).unwrap();
        let without_email = with_email.without_email();
        let unavailable = ApiError::Unavailable {
            retry_after_secs: 1,
        };
        let upstream = ApiError::Upstream {
            detail: "PGRST202".into(),
        };
        let unknown_user = rejected(404, "unknown_user");
        let cases: Vec<(&MirrorUser, Result<serde_json::Value, ApiError>, Next)> = vec![
            (&with_email, Ok(json!({"created": false})), Next::Done),
            (
                &with_email,
                Err(rejected(409, "email_taken")),
                Next::Retry(without_email.clone()),
            ),
            (
                &with_email,
                Err(rejected(422, "invalid_email")),
                Next::Retry(without_email.clone()),
            ),
            // The retry carries no email, so it is never retried again.
            (
                &without_email,
                Err(rejected(409, "email_taken")),
                Next::Refuse(rejected(409, "email_taken")),
            ),
            (
                &with_email,
                Err(rejected(422, "unknown_auth_user")),
                Next::Refuse(ApiError::Rejected {
                    status: 404,
                    code: "unknown_user".into(),
                    message: "the user is not registered on the platform".into(),
                }),
            ),
            (
                &with_email,
                Err(unavailable.clone()),
                Next::Refuse(unavailable),
            ),
            (&with_email, Err(upstream.clone()), Next::Refuse(upstream)),
            (
                &with_email,
                Err(rejected(403, "forbidden")),
                Next::Refuse(rejected(403, "forbidden")),
            ),
            (
                &with_email,
                Err(unknown_user.clone()),
                Next::Refuse(unknown_user),
            ),
            // Supabase Auth banned or soft-deleted the user: their still
            // valid token is not served, and the user is not remembered.
            (
                &with_email,
                Err(rejected(403, "user_banned")),
                Next::Refuse(rejected(403, "user_banned")),
            ),
            (
                &with_email,
                Err(rejected(403, "user_deleted")),
                Next::Refuse(rejected(403, "user_deleted")),
            ),
        ];
        for (sent, answer, want) in cases {
            let got = after_mirror(sent, answer.as_ref());
            assert_eq!(got, want, "{answer:?} with email {:?}", sent.email);
        }
    }

    /// One row per outcome of mirroring a queued message's user: whether
    /// the consumer delivers the batch again later.
    #[test]
    fn the_consumer_waits_for_the_database_but_not_for_a_refusal() {
        let user = MirrorUser::from_claims(&claims(ID, false), UserRole::Developer).unwrap();
        let cases = [
            (Next::Done, false),
            (
                Next::Refuse(ApiError::Unavailable {
                    retry_after_secs: 1,
                }),
                true,
            ),
            (Next::Refuse(rejected(404, "unknown_user")), false),
            (Next::Refuse(rejected(403, "user_banned")), false),
            (
                Next::Refuse(ApiError::Upstream {
                    detail: "PGRST202".into(),
                }),
                true,
            ),
            (Next::Retry(user), true),
        ];
        for (next, want) in cases {
            assert_eq!(holds_back_batch(&next), want, "{next:?}");
        }
    }

    #[test]
    fn the_set_stays_within_its_capacity() {
        let mut known = MirroredUsers::with_capacity(2);
        let ids = [
            "00000000-0000-4000-8000-000000000001",
            "00000000-0000-4000-8000-000000000002",
            "00000000-0000-4000-8000-000000000003",
        ];
        known.remember(ids[0]);
        known.remember(ids[1]);
        known.remember(ids[1]);
        assert_eq!(known.len(), 2);
        assert!(known.contains(ids[0]) && known.contains(ids[1]));
        known.remember(ids[2]);
        assert_eq!(known.len(), 1, "full: started over");
        assert!(known.contains(ids[2]) && !known.contains(ids[0]));
    }

    #[test]
    fn every_remembered_user_is_found_whatever_the_order() {
        let id = |n: u32| {
            format!(
                "{n:08x}-0000-4000-8000-{:012x}",
                n.wrapping_mul(2_654_435_761)
            )
        };
        let mut known = MirroredUsers::default();
        // Scrambled order, each remembered twice.
        let order: Vec<u32> = (0..1000u32).map(|i| (i * 617) % 1000).collect();
        for &n in order.iter().chain(&order) {
            known.remember(&id(n * 2));
        }
        assert_eq!(known.len(), 1000);
        for n in 0..1000 {
            assert!(known.contains(&id(n * 2)), "{}", id(n * 2));
            assert!(!known.contains(&id(n * 2 + 1)), "{}", id(n * 2 + 1));
        }
        // Case and hyphens do not matter, as before.
        assert!(known.contains(&id(4).to_uppercase().replace('-', "")));
    }

    #[test]
    fn only_uuids_are_remembered() {
        let mut known = MirroredUsers::default();
        for junk in [
            "",
            "admin",
            "0b6c1f0e-8e2a-4c57-9a3e",
            "zz6c1f0e-8e2a-4c57-9a3e-5d1c2b3a4f60",
        ] {
            known.remember(junk);
            assert!(!known.contains(junk), "{junk:?}");
        }
        assert!(known.is_empty());
    }
}
