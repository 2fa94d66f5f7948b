//! Users of our own, made the way a sign-up makes them: a row in
//! `auth.users` (Supabase Auth), mirrored into `platform.users` by the edge's
//! Database Webhook, and an access token for them.

use crate::webhooks::{db_insert_event, db_webhook_secret, deliver_db_event};
use crate::{db, random_uuid, tokens};

pub struct TestUser {
    pub id: String,
    pub email: String,
    /// An HS256 access token shaped like Supabase's.
    pub token: String,
}

impl TestUser {
    /// Signs a fresh user up and mirrors them through the webhook.
    pub fn sign_up() -> Self {
        let id = random_uuid();
        let email = format!("e2e-{id}@example.com");
        let mut db = db::connect();
        let record = db::insert_auth_user(&mut db, &id, &email, None);
        let record: serde_json::Value = serde_json::from_str(&record).expect("row as JSON");
        let answer = deliver_db_event(
            Some(&db_webhook_secret()),
            db_insert_event(record).to_string().as_bytes(),
        );
        assert_eq!(answer.status, 200, "mirroring {id}: {}", answer.body);
        let token = tokens::hs256(&tokens::user_claims(&id, &email));
        TestUser { id, email, token }
    }
}
