//! PostgreSQL restarted in the middle of a load run. Clients record usage
//! (single events, batches, and batches through the queue) and retry a 503
//! with the same idempotency key, as the API asks of them; some events are
//! invalid and must be refused. Mid-run one server process is killed with
//! SIGKILL, so the postmaster ends every session, reinitializes shared memory
//! and replays the WAL: a crash-restart, harsher than a clean restart because
//! nothing is checkpointed and transactions in flight are lost.
//!
//! Afterwards every event answered as accepted (201, a replay, `recorded` in
//! a batch, or 202 from the queue) is in the ledger exactly once, no refused
//! one is, every balance still equals grants − usage, and the stack serves
//! again without any of its processes restarted.

use e2e_tests::load::{
    balances_off_their_ledgers, ledger_keys, run_clients, Http, LoadUser, Population, Reply,
};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const CLIENTS: usize = 6;
const LOAD: Duration = Duration::from_secs(8);
const KILL_AFTER: Duration = Duration::from_millis(2500);
/// How long a client keeps retrying one request through the outage.
const RETRY_FOR: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Seen {
    /// `"<user id> <key>"` of events answered as accepted.
    accepted: BTreeSet<String>,
    /// The same, of events refused with a 4xx.
    refused: BTreeSet<String>,
    /// Accepted by the queue (202): recorded later by the consumer.
    queued: BTreeSet<String>,
    unavailable: u64,
    unavailable_without_retry_after: u64,
    no_answer: u64,
    unexpected: Vec<String>,
}

struct Client {
    http: Http,
    rng: fastrand::Rng,
    prefix: String,
    seen: Seen,
}

impl Client {
    /// Sends until an answer other than 503 comes back (or no answer at
    /// all, for a transport failure), for at most `RETRY_FOR`.
    fn send(
        &mut self,
        path: &str,
        user: &LoadUser,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> Option<Reply> {
        let give_up = Instant::now() + RETRY_FOR;
        while Instant::now() < give_up {
            match self
                .http
                .call("POST", path, &user.token, headers, Some(body))
            {
                Ok(reply) if reply.status == 503 => {
                    self.seen.unavailable += 1;
                    if reply.retry_after.is_none() {
                        self.seen.unavailable_without_retry_after += 1;
                    }
                }
                Ok(reply) => return Some(reply),
                Err(_) => self.seen.no_answer += 1,
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        self.seen
            .unexpected
            .push(format!("{path}: still unavailable after {RETRY_FOR:?}"));
        None
    }

    /// An event of a real model, or (one in eight) of a model that does not
    /// exist, which the database refuses.
    fn event(&mut self) -> (Value, bool) {
        let valid = self.rng.u8(..8) != 0;
        let key = format!("{}-{:016x}", self.prefix, self.rng.u64(..));
        let model = if valid {
            "gpt-4o-mini"
        } else {
            "no-such-model"
        };
        let event = json!({
            "model": model,
            "prompt_tokens": self.rng.u64(1..500),
            "completion_tokens": self.rng.u64(0..500),
            "idempotency_key": key,
        });
        (event, valid)
    }

    fn one(&mut self, user: &LoadUser) {
        let (event, valid) = self.event();
        let key = format!(
            "{} {}",
            user.id,
            event["idempotency_key"].as_str().unwrap_or("")
        );
        let Some(reply) = self.send(
            "/v1/usage",
            user,
            &[(
                "idempotency-key",
                event["idempotency_key"].as_str().unwrap_or(""),
            )],
            &event,
        ) else {
            return;
        };
        match (reply.status, valid) {
            (201, true) => {
                self.seen.accepted.insert(key);
            }
            (422, false) if reply.body["error"]["code"] == "unknown_model" => {
                self.seen.refused.insert(key);
            }
            _ => self
                .seen
                .unexpected
                .push(format!("single: {} {}", reply.status, reply.body)),
        }
    }

    fn batch(&mut self, user: &LoadUser, queued: bool) {
        let (events, valid): (Vec<Value>, Vec<bool>) =
            (0..self.rng.usize(2..=6)).map(|_| self.event()).unzip();
        let keys: Vec<String> = events
            .iter()
            .map(|e| {
                format!(
                    "{} {}",
                    user.id,
                    e["idempotency_key"].as_str().unwrap_or("")
                )
            })
            .collect();
        let headers: &[(&str, &str)] = if queued {
            &[("prefer", "respond-async")]
        } else {
            &[]
        };
        let Some(reply) = self.send(
            "/v1/usage/batch",
            user,
            headers,
            &json!({ "events": events }),
        ) else {
            return;
        };
        match (reply.status, queued) {
            (202, true) => {
                // Validation at the edge cannot know the model catalogue: the
                // consumer refuses those events later, into usage_rejections.
                for (key, valid) in keys.into_iter().zip(valid) {
                    if valid {
                        self.seen.queued.insert(key.clone());
                        self.seen.accepted.insert(key);
                    } else {
                        self.seen.refused.insert(key);
                    }
                }
            }
            (200, false) => {
                let results = reply.body["results"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                for ((key, valid), result) in keys.into_iter().zip(valid).zip(&results) {
                    match (result["status"].as_str(), valid) {
                        (Some("recorded" | "replayed"), true) => {
                            self.seen.accepted.insert(key);
                        }
                        (Some("rejected"), false) => {
                            self.seen.refused.insert(key);
                        }
                        _ => self.seen.unexpected.push(format!("batch: {result}")),
                    }
                }
            }
            _ => self
                .seen
                .unexpected
                .push(format!("batch: {} {}", reply.status, reply.body)),
        }
    }
}

/// A session's backend, killed with SIGKILL: the postmaster treats any
/// server process dying that way as a crash and restarts the whole server.
/// Only a server on this machine: the pid is checked to be a Postgres
/// process here before anything is sent to it.
fn crash_restart_postgres() {
    let mut victim = e2e_tests::db::connect();
    let pid: i32 = victim
        .query_one("select pg_backend_pid()", &[])
        .expect("a backend pid")
        .get(0);
    let command = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(
        command.starts_with("postgres"),
        "backend {pid} is not a local Postgres process ({command:?}): this test \
         crash-restarts the stack's own database and runs only under `cargo xtask test`"
    );
    // SAFETY: kill(2) with a pid we just read from the server; no memory involved.
    let killed = unsafe { libc::kill(pid, libc::SIGKILL) };
    assert_eq!(killed, 0, "SIGKILL to backend {pid}");
}

#[test]
fn every_event_accepted_across_a_postgres_restart_is_in_the_ledger_exactly_once() {
    let population = std::sync::Arc::new(Population::create(12, 100_000_000));
    let user_ids = population.ids();
    let mut before = e2e_tests::db::connect();
    before.simple_query("select 1").expect("connected before");

    let killer = std::thread::spawn(|| {
        std::thread::sleep(KILL_AFTER);
        crash_restart_postgres();
    });
    let users = population.clone();
    let runs = run_clients(CLIENTS, LOAD, move |i, deadline| {
        let mut client = Client {
            http: Http::default(),
            rng: fastrand::Rng::new(),
            prefix: format!("restart-{:x}-c{i}", fastrand::u32(..)),
            seen: Seen::default(),
        };
        while Instant::now() < deadline {
            let user = &users.users[client.rng.usize(..users.users.len())];
            match client.rng.u8(..4) {
                0 | 1 => client.one(user),
                2 => client.batch(user, false),
                _ => client.batch(user, true),
            }
        }
        client.seen
    });
    killer.join().expect("the restart");

    let mut seen = Seen::default();
    for run in runs {
        seen.accepted.extend(run.accepted);
        seen.refused.extend(run.refused);
        seen.queued.extend(run.queued);
        seen.unavailable += run.unavailable;
        seen.unavailable_without_retry_after += run.unavailable_without_retry_after;
        seen.no_answer += run.no_answer;
        seen.unexpected.extend(run.unexpected);
    }
    assert!(
        before.simple_query("select 1").is_err(),
        "the session opened before the kill survived it: Postgres did not restart"
    );
    assert!(seen.unexpected.is_empty(), "{:#?}", seen.unexpected);
    assert!(
        seen.unavailable > 0,
        "no request met the outage; the restart did not happen under load"
    );
    assert_eq!(
        seen.unavailable_without_retry_after, 0,
        "every 503 carries Retry-After"
    );
    println!(
        "{} events accepted ({} through the queue), {} refused, {} answers 503 and {} without an answer during the restart",
        seen.accepted.len(),
        seen.queued.len(),
        seen.refused.len(),
        seen.unavailable,
        seen.no_answer
    );

    // The consumer records queued events after its retries; wait for them.
    let mut db = e2e_tests::db::connect();
    let deadline = Instant::now() + Duration::from_secs(120);
    let ledger = loop {
        let ledger: BTreeSet<String> = ledger_keys(&mut db, &user_ids).into_iter().collect();
        if seen.queued.is_subset(&ledger) || Instant::now() > deadline {
            break ledger;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let missing: Vec<_> = seen.accepted.difference(&ledger).collect();
    let extra: Vec<_> = ledger.difference(&seen.accepted).collect();
    assert!(
        missing.is_empty(),
        "accepted but not in the ledger: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "in the ledger but never accepted (refused ones among them?): {extra:?}"
    );
    // Keys are unique per user, so equal sets mean exactly once each.
    assert_eq!(ledger.len(), seen.accepted.len());
    assert!(seen.refused.is_disjoint(&ledger));
    assert_eq!(
        balances_off_their_ledgers(&mut db, &user_ids),
        Vec::<String>::new()
    );

    // The same stack, nothing restarted but Postgres, serves again.
    let user = &population.users[0];
    let after = Http::default()
        .call(
            "POST",
            "/v1/usage",
            &user.token,
            &[("idempotency-key", "after-the-restart")],
            Some(&json!({"model": "gpt-4o-mini", "prompt_tokens": 1, "completion_tokens": 1})),
        )
        .expect("an answer after the restart");
    assert_eq!(after.status, 201, "{}", after.body);
}
