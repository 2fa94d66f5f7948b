//! Many clients at once against the running stack: a population of users
//! made in one round trip, an HTTP client that reports transport failures
//! instead of panicking (a load run counts them), and a runner that starts
//! every client together and collects what each saw.
//!
//! `mixed` is the load run of the adversarial suite: mixed traffic, then the
//! invariants of the ledgers checked against what the clients were told.

pub mod mixed;

use crate::{env, tokens};
use serde_json::Value;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// A user of the population, with an access token.
#[derive(Clone, Debug)]
pub struct LoadUser {
    pub id: String,
    pub token: String,
}

/// `count` new developers granted `grant` tokens each (one grant row each,
/// reason `load: initial`), and one new admin, written in one transaction as
/// sign-up, the mirroring webhook and an admin grant would leave them.
pub struct Population {
    pub users: Vec<LoadUser>,
    pub admin: LoadUser,
}

impl Population {
    pub fn create(count: usize, grant: i64) -> Population {
        let mut db = crate::db::connect();
        let rows = db
            .query(
                "select gen_random_uuid()::text from generate_series(0, $1::int)",
                &[&(count as i32)],
            )
            .expect("uuids");
        let ids: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        let mut tx = db.transaction().expect("begin");
        tx.execute(
            "insert into auth.users (id, aud, role, email, email_confirmed_at, raw_app_meta_data, \
             raw_user_meta_data, created_at, updated_at) \
             select id::uuid, 'authenticated', 'authenticated', 'load-' || id || '@e2e.example', now(), \
             '{\"provider\":\"email\",\"providers\":[\"email\"]}', '{}', now(), now() \
             from unnest($1::text[]) id",
            &[&ids],
        )
        .expect("insert into auth.users");
        tx.batch_execute(
            "set local role service_role; \
             select set_config('request.jwt.claims', '{\"role\":\"service_role\"}', true);",
        )
        .expect("act as the service role");
        tx.execute(
            "select platform.mirror_auth_user(id::uuid, 'load-' || id || '@e2e.example') \
             from unnest($1::text[]) id",
            &[&ids],
        )
        .expect("mirror the users");
        tx.execute(
            "select platform.grant_user_tokens(id::uuid, $2, 'load: initial') \
             from unnest($1::text[]) id",
            &[&&ids[1..], &grant],
        )
        .expect("grant the initial balances");
        tx.batch_execute("reset role")
            .expect("back to the superuser");
        tx.execute(
            "update platform.users set role = 'admin' where id = $1::text::uuid",
            &[&ids[0]],
        )
        .expect("promote the admin");
        tx.commit().expect("commit the population");

        let user = |id: &String| LoadUser {
            id: id.clone(),
            token: tokens::hs256(&tokens::user_claims(id, &format!("load-{id}@e2e.example"))),
        };
        Population {
            admin: user(&ids[0]),
            users: ids[1..].iter().map(user).collect(),
        }
    }

    pub fn ids(&self) -> Vec<String> {
        self.users.iter().map(|u| u.id.clone()).collect()
    }
}

/// An answer, or why there was none.
pub struct Reply {
    pub status: u16,
    pub replayed: bool,
    pub retry_after: Option<String>,
    pub body: Value,
}

/// One client's connection to the Worker (keep-alive, like an SDK's).
pub struct Http {
    agent: ureq::Agent,
    base: String,
}

impl Default for Http {
    fn default() -> Self {
        Http {
            // Far above any answer the Worker should take, so a hang shows as
            // a transport failure rather than stalling the run.
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(60))
                .build(),
            base: env("CDS_WORKER_URL"),
        }
    }
}

impl Http {
    /// Sends a request; `Err` only when no HTTP answer came back.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        bearer: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Reply, String> {
        let mut req = self
            .agent
            .request(method, &format!("{}{path}", self.base))
            .set("authorization", &format!("Bearer {bearer}"));
        for (name, value) in headers {
            req = req.set(name, value);
        }
        let result = match body {
            Some(body) => req
                .set("content-type", "application/json")
                .send_string(&body.to_string()),
            None => req.call(),
        };
        let response = match result {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(e) => return Err(format!("{method} {path}: {e}")),
        };
        let status = response.status();
        let replayed = response.header("idempotent-replayed") == Some("true");
        let retry_after = response.header("retry-after").map(String::from);
        let content_type = response.header("content-type").map(String::from);
        let url = response.get_url().to_string();
        let text = response
            .into_string()
            .map_err(|e| format!("{method} {path}: reading the body: {e}"))?;
        // An answer the OpenAPI document does not allow is a failure of the
        // run, as a lost connection is.
        crate::contract::check_url(method, &url, status, content_type.as_deref(), &text)?;
        Ok(Reply {
            status,
            replayed,
            retry_after,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        })
    }

    /// Triggers the Worker's cron handler (`wrangler dev --test-scheduled`).
    pub fn cron(&self) -> Result<u16, String> {
        self.agent
            .post(&format!("{}/__scheduled?cron=*/5+*+*+*+*", self.base))
            .call()
            .map(|r| r.status())
            .or_else(|e| match e {
                ureq::Error::Status(status, _) => Ok(status),
                other => Err(other.to_string()),
            })
    }
}

/// Runs `client(index, deadline)` on `clients` threads released together
/// and returns what each returned, in index order.
pub fn run_clients<T: Send + 'static>(
    clients: usize,
    duration: Duration,
    client: impl Fn(usize, Instant) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let barrier = Arc::new(Barrier::new(clients));
    let client = Arc::new(client);
    let threads: Vec<_> = (0..clients)
        .map(|i| {
            let (barrier, client) = (barrier.clone(), client.clone());
            std::thread::spawn(move || {
                barrier.wait();
                client(i, Instant::now() + duration)
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("a load client panicked"))
        .collect()
}

/// A whole number from the environment, or `default`.
pub fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value} is not a whole number")),
        Err(_) => default,
    }
}

/// `"<user id> <idempotency key>"` of every usage ledger row of `user_ids`,
/// sorted.
pub fn ledger_keys(db: &mut postgres::Client, user_ids: &[String]) -> Vec<String> {
    let rows = db
        .query(
            "select user_id::text || ' ' || idempotency_key from platform.token_usage \
         where user_id = any($1::text[]::uuid[])",
            &[&user_ids],
        )
        .expect("ledger keys");
    let mut keys: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    keys.sort();
    keys
}

/// Users of `user_ids` whose balance row disagrees with their ledgers:
/// `granted` ≠ Σ grants, `used` ≠ Σ usage, or `reserved` ≠ Σ active holds.
pub fn balances_off_their_ledgers(db: &mut postgres::Client, user_ids: &[String]) -> Vec<String> {
    db.query(
        "select b.user_id::text || ': ' || row(b.granted, b.used, b.reserved)::text
                || ' vs ledgers ' || row(coalesce(g.total, 0), coalesce(u.total, 0), coalesce(h.total, 0))::text
           from platform.token_balances b
           left join (select user_id, sum(amount)::bigint total from platform.token_grants group by 1) g using (user_id)
           left join (select user_id, sum(total_tokens)::bigint total from platform.token_usage group by 1) u using (user_id)
           left join (select user_id, sum(tokens)::bigint total from platform.token_reservations
                       where status = 'active' group by 1) h using (user_id)
          where b.user_id = any($1::text[]::uuid[])
            and (b.granted, b.used, b.reserved, b.balance)
                is distinct from (coalesce(g.total, 0), coalesce(u.total, 0), coalesce(h.total, 0),
                                  coalesce(g.total, 0) - coalesce(u.total, 0))",
        &[&user_ids],
    )
    .expect("balances against ledgers")
    .iter()
    .map(|r| r.get(0))
    .collect()
}
