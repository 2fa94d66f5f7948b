//! Just-in-time mirroring: a user who exists in `auth.users` but was never
//! mirrored into `platform.users` (the webhook not installed, or its
//! delivery lost) is mirrored by the edge from their access token on their
//! first request, and only once per isolate; queued usage carries the row to
//! the queue consumer, which mirrors the user before recording.
//!
//! Each just-in-time mirror leaves one `jit` row in `telemetry.user_mirrors`
//! (written by `mirror_auth_user` itself, in the same transaction), which is
//! how these tests count the edge's mirror calls.
//! Recording usage is never refused for lack of balance, and a grant needs
//! the platform row this test is about, so these users start with none.

mod usage_common;

use e2e_tests::db::{insert_auth_user, platform_users_with_id};
use e2e_tests::tokens;
use serde_json::{json, Value};
use std::time::Duration;
use usage_common::*;

/// The consumer's batch timeout is 1 s; generous for a slow machine.
const RECORDED_WITHIN: Duration = Duration::from_secs(40);

/// A sign-up Supabase Auth made and nobody mirrored: a row in `auth.users`
/// only, and an access token whose `user_metadata` carries the username
/// chosen at sign-up, as Supabase's does.
struct Unmirrored {
    id: String,
    email: String,
    token: String,
}

impl Unmirrored {
    fn sign_up(username: &str) -> Self {
        let id = new_uuid();
        let email = format!("{}@e2e.example", unique("jit").replace('-', "."));
        insert_auth_user(&mut db(), &id, &email, Some(username));
        assert_eq!(
            platform_users_with_id(&mut db(), &id),
            0,
            "not mirrored yet"
        );
        let token = tokens::hs256(&tokens::with(
            tokens::user_claims(&id, &email),
            json!({ "user_metadata": { "username": username } }),
        ));
        Unmirrored { id, email, token }
    }

    /// The `mirror_auth_user` calls the edge made for this user just in time:
    /// `{user_id, created}` of each `telemetry.user_mirrors` row, oldest first.
    fn jit_mirrors(&self) -> Vec<Value> {
        db().query(
            "select jsonb_build_object('user_id', user_id, 'created', created)::text \
               from telemetry.user_mirrors \
              where source = 'jit' and user_id = $1::text::uuid order by id",
            &[&self.id],
        )
        .expect("reading telemetry")
        .iter()
        .map(|row| serde_json::from_str(row.get::<_, &str>(0)).expect("details as JSON"))
        .collect()
    }

    /// The whole `platform.users` row as JSON text, `updated_at` included.
    fn platform_row_text(&self) -> String {
        db().query_one(
            "select to_jsonb(u)::text from platform.users u where u.id = $1::text::uuid",
            &[&self.id],
        )
        .expect("a platform.users row")
        .get(0)
    }

    /// `username`, `email`, `role` of the platform row.
    fn platform_row(&self) -> (String, Option<String>, String) {
        let row = db()
            .query_one(
                "select username::text, email::text, role from platform.users where id = $1::text::uuid",
                &[&self.id],
            )
            .expect("a platform.users row");
        (row.get(0), row.get(1), row.get(2))
    }

    fn ledger_rows(&self, key: &str) -> i64 {
        scalar(
            "select count(*) from platform.token_usage \
             where user_id = $1::text::uuid and idempotency_key = $2",
            &[&self.id, &key],
        )
    }
}

#[test]
fn a_user_never_mirrored_is_mirrored_on_their_first_usage_request() {
    let user = Unmirrored::sign_up("Grace Hopper");
    let key = unique("first");

    let answer = record(&user.token, &key, &event(MODEL, 100, 20));

    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(user.ledger_rows(&key), 1, "recorded");
    assert_eq!(answer.json()["total_tokens"], 120);
    assert_eq!(
        user.platform_row(),
        (
            "grace_hopper".to_string(),
            Some(user.email.clone()),
            "developer".to_string()
        ),
        "mirrored from the token: the chosen username, the email, DEFAULT_USER_ROLE"
    );
    assert_eq!(
        user.jit_mirrors(),
        vec![json!({"user_id": user.id, "created": true})]
    );
    let balance = scalar(
        "select used from platform.token_balances where user_id = $1::text::uuid",
        &[&user.id],
    );
    assert_eq!(balance, 120, "the usage is debited from the new balance");
}

#[test]
fn later_requests_do_not_mirror_again() {
    let user = Unmirrored::sign_up("ada");
    let first = record(&user.token, &unique("one"), &event(MODEL, 1, 1));
    assert_eq!(first.status, 201, "{}", first.body);
    let row_after_first = user.platform_row_text();

    for path in ["/v1/me", "/v1/usage/overview"] {
        let answer = call("GET", path, Some(&user.token), &[], None);
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
    }
    let second = record(&user.token, &unique("two"), &event(MODEL, 2, 2));
    assert_eq!(second.status, 201, "{}", second.body);

    assert_eq!(
        user.jit_mirrors().len(),
        1,
        "one mirror call for four requests: the isolate remembers the user"
    );
    assert_eq!(
        user.platform_row_text(),
        row_after_first,
        "the platform row (updated_at included) is untouched after the first request"
    );
}

#[test]
fn a_queued_first_request_is_recorded() {
    let user = Unmirrored::sign_up("queued_one");
    let key = unique("queued");

    let answer = call(
        "POST",
        "/v1/usage",
        Some(&user.token),
        &[("idempotency-key", &key), ("prefer", "respond-async")],
        Some(&event(MODEL, 30, 12)),
    );

    assert_eq!(answer.status, 202, "{}", answer.body);
    let recorded = eventually(RECORDED_WITHIN, || {
        (user.ledger_rows(&key) == 1).then_some(())
    });
    assert!(
        recorded.is_some(),
        "the queued event was not recorded within {RECORDED_WITHIN:?}"
    );
    assert_eq!(
        user.jit_mirrors(),
        vec![json!({"user_id": user.id, "created": true})],
        "mirrored once, by the consumer, from the row the message carried"
    );
    assert_eq!(
        user.platform_row(),
        (
            "queued_one".to_string(),
            Some(user.email.clone()),
            "developer".to_string()
        )
    );
    let status = call(
        "GET",
        &format!("/v1/usage/events/{key}"),
        Some(&user.token),
        &[],
        None,
    );
    assert_eq!(status.json()["status"], "recorded", "{}", status.body);
    assert_eq!(
        scalar(
            "select count(*) from platform.usage_rejections where user_id = $1::text::uuid",
            &[&user.id]
        ),
        0,
        "no unknown_user rejection"
    );
    assert_eq!(
        user.jit_mirrors().len(),
        1,
        "the status read mirrored nothing: the isolate learnt the user from its consumer"
    );
}

#[test]
fn an_email_another_platform_user_still_has_is_left_out() {
    // Someone mirrored with this email who has since changed it in Supabase
    // Auth: platform.users keeps the old one, so the new owner's email clashes.
    let before = Unmirrored::sign_up("before");
    let ok = record(&before.token, &unique("before"), &event(MODEL, 1, 1));
    assert_eq!(ok.status, 201, "{}", ok.body);
    db().execute(
        "update auth.users set email = 'moved-' || email where id = $1::text::uuid",
        &[&before.id],
    )
    .expect("changing the first user's email");
    let id = new_uuid();
    insert_auth_user(&mut db(), &id, &before.email, None);
    let token = tokens::hs256(&tokens::user_claims(&id, &before.email));

    let answer = record(&token, &unique("after"), &event(MODEL, 1, 1));

    assert_eq!(answer.status, 201, "{}", answer.body);
    let email: Option<String> = db()
        .query_one(
            "select email::text from platform.users where id = $1::text::uuid",
            &[&id],
        )
        .expect("the new user is mirrored")
        .get(0);
    assert_eq!(email, None, "mirrored without the email another user has");
    assert_eq!(before.platform_row().1, Some(before.email.clone()));
}

#[test]
fn an_anonymous_sign_in_is_not_mirrored() {
    let id = new_uuid();
    db().execute(
        "insert into auth.users (id, aud, role, is_anonymous, created_at, updated_at) \
         values ($1::text::uuid, 'authenticated', 'authenticated', true, now(), now())",
        &[&id],
    )
    .expect("an anonymous sign-in");
    let token = tokens::hs256(&tokens::with(
        tokens::user_claims(&id, ""),
        json!({"is_anonymous": true}),
    ));

    // A read (anonymous users may read under the default ANONYMOUS_USERS):
    // not mirrored, so unknown to the platform.
    let answer = call("GET", "/v1/usage/overview", Some(&token), &[], None);
    assert_refused(&answer, 404, "unknown_user");
    // Spending is refused before anything is mirrored.
    let answer = record(&token, &unique("anon"), &event(MODEL, 1, 1));
    assert_refused(&answer, 403, "anonymous_user_read_only");
    assert_eq!(platform_users_with_id(&mut db(), &id), 0);
}
