//! The load run with an invariant: clients mix reservations, single and
//! batched usage settling them, releases, replays, overviews and admin
//! grants over a population with tight balances, while the cron folds the
//! daily summary; a sampler watches the balances as the run goes. Afterwards
//! every invariant is checked against the database and printed as a table.
//!
//! Usage in this run is always recorded against a hold of at least its size,
//! the way an LLM server reserves before a call and settles after it. Then no
//! correct sequence of operations can make a user's holds exceed their
//! balance, so `reserved ≤ balance` must hold in every snapshot: a hold
//! granted beyond the available balance would show there.

use super::{
    balances_off_their_ledgers, ledger_keys, run_clients, Http, LoadUser, Population, Reply,
};
use crate::db::summary_mismatches;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to run.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub clients: usize,
    pub duration: Duration,
    pub users: usize,
    /// Each user's first grant: tight, so holds are refused for want of balance.
    pub initial_grant: i64,
    /// How often the cron handler runs during the load.
    pub cron_every: Duration,
}

const MODELS: [&str; 2] = ["gpt-4o-mini", "claude-3-5-haiku"];
const HOLD_TTL_SECONDS: u32 = 900;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Reserve,
    Record,
    Batch,
    Release,
    Replay,
    Overview,
    Grant,
    Cron,
}

/// What one client saw.
#[derive(Default)]
struct Seen {
    answers: BTreeMap<(Op, u16), u64>,
    /// `"<user id> <key>"` of each event the Worker answered as newly
    /// recorded (201 single, or `recorded` in a batch).
    recorded: Vec<String>,
    /// Sent again with the same key and answered as a replay of the first.
    replays_answered_as_first: u64,
    granted_by_admin: i64,
    grants: u64,
    /// Holds answered 201 with `available` below zero.
    holds_beyond_balance: Vec<String>,
    transport_failures: Vec<String>,
    unexpected: Vec<String>,
}

impl Seen {
    fn count(&mut self, op: Op, reply: &Reply) {
        *self.answers.entry((op, reply.status)).or_default() += 1;
    }

    fn unexpected(&mut self, op: Op, reply: &Reply) {
        if self.unexpected.len() < 20 {
            self.unexpected
                .push(format!("{op:?} → {} {}", reply.status, reply.body));
        }
    }

    fn merge(&mut self, other: Seen) {
        for (k, v) in other.answers {
            *self.answers.entry(k).or_default() += v;
        }
        self.recorded.extend(other.recorded);
        self.replays_answered_as_first += other.replays_answered_as_first;
        self.granted_by_admin += other.granted_by_admin;
        self.grants += other.grants;
        self.holds_beyond_balance.extend(other.holds_beyond_balance);
        self.transport_failures.extend(other.transport_failures);
        self.unexpected.extend(other.unexpected);
    }
}

/// One client's session: an HTTP connection, a random source, and the
/// replies it may resend.
struct Client<'a> {
    http: Http,
    rng: fastrand::Rng,
    users: &'a [LoadUser],
    admin: &'a LoadUser,
    seen: Seen,
    /// `(bearer, key, body, first answer)` of events it recorded.
    sent: Vec<(String, String, Value, Value)>,
    prefix: String,
}

impl Client<'_> {
    fn key(&mut self) -> String {
        format!("{}-{:016x}", self.prefix, self.rng.u64(..))
    }

    fn call(
        &mut self,
        op: Op,
        method: &str,
        path: &str,
        bearer: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Option<Reply> {
        match self.http.call(method, path, bearer, headers, body) {
            Ok(reply) => {
                self.seen.count(op, &reply);
                Some(reply)
            }
            Err(e) => {
                self.seen.transport_failures.push(e);
                None
            }
        }
    }

    /// A hold of 100–600 tokens: its id and size, or `None` when refused.
    fn hold(&mut self, user: &LoadUser) -> Option<(String, u64)> {
        let tokens = self.rng.u64(100..=600);
        let body = json!({"tokens": tokens, "ttl_seconds": HOLD_TTL_SECONDS});
        let reply = self.call(
            Op::Reserve,
            "POST",
            "/v1/usage/reservations",
            &user.token,
            &[],
            Some(&body),
        )?;
        match (reply.status, &reply.body) {
            (201, body) => {
                if body["available"].as_i64().is_none_or(|a| a < 0) {
                    self.seen.holds_beyond_balance.push(body.to_string());
                }
                Some((body["reservation_id"].as_str()?.to_string(), tokens))
            }
            (402, body) if body["error"]["code"] == "insufficient_balance" => None,
            _ => {
                self.seen.unexpected(Op::Reserve, &reply);
                None
            }
        }
    }

    /// An event of at most `tokens` tokens that settles hold `id`.
    fn event_within(&mut self, id: &str, tokens: u64) -> Value {
        let total = self.rng.u64(1..=tokens);
        let prompt = self.rng.u64(0..=total);
        json!({
            "model": MODELS[self.rng.usize(..MODELS.len())],
            "prompt_tokens": prompt,
            "completion_tokens": total - prompt,
            "reservation_id": id,
        })
    }

    fn record(&mut self, user: &LoadUser) {
        let Some((id, tokens)) = self.hold(user) else {
            return;
        };
        let body = self.event_within(&id, tokens);
        let key = self.key();
        let Some(reply) = self.call(
            Op::Record,
            "POST",
            "/v1/usage",
            &user.token,
            &[("idempotency-key", &key)],
            Some(&body),
        ) else {
            return;
        };
        if reply.status == 201
            && !reply.replayed
            && reply.body["reservation"]["outcome"] == "settled"
        {
            self.seen.recorded.push(format!("{} {key}", user.id));
            self.sent.push((user.token.clone(), key, body, reply.body));
        } else {
            self.seen.unexpected(Op::Record, &reply);
        }
    }

    fn batch(&mut self, user: &LoadUser) {
        let mut events = Vec::new();
        for _ in 0..self.rng.usize(2..=5) {
            let Some((id, tokens)) = self.hold(user) else {
                break;
            };
            let mut event = self.event_within(&id, tokens);
            event["idempotency_key"] = json!(self.key());
            events.push(event);
        }
        if events.is_empty() {
            return;
        }
        let body = json!({ "events": events });
        let Some(reply) = self.call(
            Op::Batch,
            "POST",
            "/v1/usage/batch",
            &user.token,
            &[],
            Some(&body),
        ) else {
            return;
        };
        let results = reply.body["results"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let all_recorded =
            results.len() == events.len() && results.iter().all(|r| r["status"] == "recorded");
        if reply.status == 200 && all_recorded {
            self.seen.recorded.extend(
                events
                    .iter()
                    .filter_map(|e| e["idempotency_key"].as_str())
                    .map(|key| format!("{} {key}", user.id)),
            );
        } else {
            self.seen.unexpected(Op::Batch, &reply);
        }
    }

    fn release(&mut self, user: &LoadUser) {
        let Some((id, tokens)) = self.hold(user) else {
            return;
        };
        let path = format!("/v1/usage/reservations/{id}");
        let Some(reply) = self.call(Op::Release, "DELETE", &path, &user.token, &[], None) else {
            return;
        };
        if reply.status != 200 || reply.body["released_tokens"] != json!(tokens) {
            self.seen.unexpected(Op::Release, &reply);
        }
    }

    /// Sends an event this client recorded again: the answer must be the
    /// first answer, marked as a replay, and nothing new recorded.
    fn replay(&mut self) {
        if self.sent.is_empty() {
            return;
        }
        let (bearer, key, body, first) = self.sent[self.rng.usize(..self.sent.len())].clone();
        let Some(reply) = self.call(
            Op::Replay,
            "POST",
            "/v1/usage",
            &bearer,
            &[("idempotency-key", &key)],
            Some(&body),
        ) else {
            return;
        };
        if reply.status == 201 && reply.replayed && reply.body == first {
            self.seen.replays_answered_as_first += 1;
        } else {
            self.seen.unexpected(Op::Replay, &reply);
        }
    }

    fn overview(&mut self, user: &LoadUser) {
        if let Some(reply) = self.call(
            Op::Overview,
            "GET",
            "/v1/usage/overview",
            &user.token,
            &[],
            None,
        ) {
            if reply.status != 200 || !reply.body["totals"]["requests"].is_number() {
                self.seen.unexpected(Op::Overview, &reply);
            }
        }
    }

    fn grant(&mut self, user: &LoadUser) {
        let amount = self.rng.i64(100..=800);
        let key = self.key();
        let body = json!({"user_id": user.id, "amount": amount, "reason": "load: top-up"});
        let admin = self.admin.token.clone();
        let Some(reply) = self.call(
            Op::Grant,
            "POST",
            "/v1/admin/grants",
            &admin,
            &[("idempotency-key", &key)],
            Some(&body),
        ) else {
            return;
        };
        if reply.status == 201 && !reply.replayed {
            self.seen.granted_by_admin += amount;
            self.seen.grants += 1;
        } else {
            self.seen.unexpected(Op::Grant, &reply);
        }
    }

    fn one_operation(&mut self) {
        let user = &self.users[self.rng.usize(..self.users.len())];
        match self.rng.u32(0..100) {
            0..=34 => self.record(user),
            35..=49 => self.batch(user),
            50..=59 => self.release(user),
            60..=67 => self.replay(),
            68..=84 => self.overview(user),
            _ => self.grant(user),
        }
    }
}

/// What the sampler saw in snapshots of the population's balances.
#[derive(Default, Debug)]
struct Samples {
    snapshots: u64,
    holds_over_balance: u64,
    reserved_off_holds: u64,
    negative_balances: u64,
}

fn sample_until(stop: &AtomicBool, user_ids: &[String]) -> Samples {
    let mut db = crate::db::connect();
    let mut samples = Samples::default();
    while !stop.load(Ordering::SeqCst) {
        // One statement: one snapshot of every balance and every hold.
        let row = db
            .query_one(
                "select count(*) filter (where b.reserved > b.balance),
                        count(*) filter (where b.reserved <> coalesce(h.held, 0)),
                        count(*) filter (where b.balance < 0)
                   from platform.token_balances b
                   left join (select user_id, sum(tokens)::bigint held from platform.token_reservations
                               where status = 'active' group by 1) h using (user_id)
                  where b.user_id = any($1::text[]::uuid[])",
                &[&user_ids],
            )
            .expect("a snapshot of the balances");
        samples.snapshots += 1;
        samples.holds_over_balance += row.get::<_, i64>(0) as u64;
        samples.reserved_off_holds += row.get::<_, i64>(1) as u64;
        samples.negative_balances += row.get::<_, i64>(2) as u64;
        std::thread::sleep(Duration::from_millis(100));
    }
    samples
}

/// The outcome: a table for people, and whether every invariant held.
pub struct Report {
    pub table: String,
    pub failures: Vec<String>,
}

pub fn run(plan: Plan) -> Report {
    let population = Arc::new(Population::create(plan.users, plan.initial_grant));
    let user_ids = population.ids();
    let started = Instant::now();

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (stop, ids) = (stop.clone(), user_ids.clone());
        std::thread::spawn(move || sample_until(&stop, &ids))
    };
    let cron = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let http = Http::default();
            let mut seen = Seen::default();
            while !stop.load(Ordering::SeqCst) {
                match http.cron() {
                    Ok(status) => *seen.answers.entry((Op::Cron, status)).or_default() += 1,
                    Err(e) => seen.transport_failures.push(format!("cron: {e}")),
                }
                std::thread::sleep(plan.cron_every);
            }
            seen
        })
    };

    let run_id = format!("load-{:x}", fastrand::u64(..));
    let clients = {
        let population = population.clone();
        run_clients(plan.clients, plan.duration, move |i, deadline| {
            let mut client = Client {
                http: Http::default(),
                rng: fastrand::Rng::new(),
                users: &population.users,
                admin: &population.admin,
                seen: Seen::default(),
                sent: Vec::new(),
                prefix: format!("{run_id}-c{i}"),
            };
            while Instant::now() < deadline {
                client.one_operation();
            }
            client.seen
        })
    };
    let elapsed = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    let samples = sampler.join().expect("the sampler");
    let mut seen = cron.join().expect("the cron thread");
    for client in clients {
        seen.merge(client);
    }
    // The last fold, after the last write: the rollup must then be exact.
    match Http::default().cron() {
        Ok(status) => *seen.answers.entry((Op::Cron, status)).or_default() += 1,
        Err(e) => seen.transport_failures.push(format!("cron: {e}")),
    }

    check(plan, &user_ids, seen, samples, elapsed)
}

fn check(
    plan: Plan,
    user_ids: &[String],
    seen: Seen,
    samples: Samples,
    elapsed: Duration,
) -> Report {
    let mut db = crate::db::connect();
    let requests: u64 = seen.answers.values().sum();
    let five_xx: u64 = seen
        .answers
        .iter()
        .filter(|((_, status), _)| *status >= 500)
        .map(|(_, n)| n)
        .sum();
    let mut recorded = seen.recorded.clone();
    recorded.sort();
    let in_ledger = ledger_keys(&mut db, user_ids);
    let missing = recorded
        .iter()
        .filter(|k| in_ledger.binary_search(k).is_err())
        .count();
    let unanswered = in_ledger
        .iter()
        .filter(|k| recorded.binary_search(k).is_err())
        .count();
    let grant_rows: i64 = db
        .query_one(
            "select count(*) from platform.token_grants \
             where user_id = any($1::text[]::uuid[]) and reason = 'load: top-up'",
            &[&user_ids],
        )
        .expect("grant rows")
        .get(0);
    let granted_total: i64 = db
        .query_one(
            "select coalesce(sum(amount), 0)::bigint from platform.token_grants \
             where user_id = any($1::text[]::uuid[])",
            &[&user_ids],
        )
        .expect("granted total")
        .get(0);
    let expected_granted = plan.initial_grant * plan.users as i64 + seen.granted_by_admin;
    let off_ledgers = balances_off_their_ledgers(&mut db, user_ids);
    let final_over: i64 = db
        .query_one(
            "select count(*) from platform.token_balances \
             where user_id = any($1::text[]::uuid[]) and reserved > balance",
            &[&user_ids],
        )
        .expect("final holds")
        .get(0);
    let rollup_off = summary_mismatches(&mut db, user_ids, "analytics.daily_token_rollup");
    let view_off = summary_mismatches(&mut db, user_ids, "analytics.daily_token_summary");
    let crons_ok = seen.answers.get(&(Op::Cron, 200)).copied().unwrap_or(0);

    let mut table = String::new();
    let _ = writeln!(
        table,
        "load: {} clients for {:.1} s over {} users, {} requests ({:.0}/s), {} cron runs",
        plan.clients,
        elapsed.as_secs_f64(),
        plan.users,
        requests,
        requests as f64 / elapsed.as_secs_f64(),
        crons_ok,
    );
    let _ = writeln!(table, "\n  {:<10} {:>6}  answers", "operation", "count");
    let mut by_op: BTreeMap<Op, Vec<String>> = BTreeMap::new();
    for ((op, status), n) in &seen.answers {
        by_op.entry(*op).or_default().push(format!("{status}×{n}"));
    }
    for (op, statuses) in &by_op {
        let count: u64 = seen
            .answers
            .iter()
            .filter(|((o, _), _)| o == op)
            .map(|(_, n)| n)
            .sum();
        let _ = writeln!(
            table,
            "  {:<10} {:>6}  {}",
            format!("{op:?}"),
            count,
            statuses.join(" ")
        );
    }

    let mut failures = Vec::new();
    let mut row = |table: &mut String, name: &str, observed: String, expected: String| {
        let ok = observed == expected;
        let _ = writeln!(
            table,
            "  {:<58} {:>10} {:>10}  {}",
            name,
            observed,
            expected,
            if ok { "ok" } else { "FAILED" }
        );
        if !ok {
            failures.push(format!("{name}: {observed}, expected {expected}"));
        }
    };
    let _ = writeln!(
        table,
        "\n  {:<58} {:>10} {:>10}",
        "invariant", "observed", "expected"
    );
    row(&mut table, "5xx answers", five_xx.to_string(), "0".into());
    row(
        &mut table,
        "transport failures (no answer)",
        seen.transport_failures.len().to_string(),
        "0".into(),
    );
    row(
        &mut table,
        "answers of an unexpected status or shape",
        seen.unexpected.len().to_string(),
        "0".into(),
    );
    row(
        &mut table,
        "usage ledger rows = events answered as recorded",
        in_ledger.len().to_string(),
        recorded.len().to_string(),
    );
    row(
        &mut table,
        "  recorded events missing from the ledger",
        missing.to_string(),
        "0".into(),
    );
    row(
        &mut table,
        "  ledger rows no client was told about",
        unanswered.to_string(),
        "0".into(),
    );
    row(
        &mut table,
        "replays answered with the first answer (no new row)",
        seen.replays_answered_as_first.to_string(),
        seen.answers
            .get(&(Op::Replay, 201))
            .copied()
            .unwrap_or(0)
            .to_string(),
    );
    row(
        &mut table,
        "admin grant rows = grants answered 201",
        grant_rows.to_string(),
        seen.grants.to_string(),
    );
    row(
        &mut table,
        "Σ grants = initial + granted by admins",
        granted_total.to_string(),
        expected_granted.to_string(),
    );
    row(
        &mut table,
        "users whose balance ≠ grants − usage (or holds ≠ reserved)",
        off_ledgers.len().to_string(),
        "0".into(),
    );
    row(
        &mut table,
        "holds answered 201 beyond the available balance",
        seen.holds_beyond_balance.len().to_string(),
        "0".into(),
    );
    row(
        &mut table,
        &format!(
            "snapshot rows with reserved > balance ({} snapshots)",
            samples.snapshots
        ),
        samples.holds_over_balance.to_string(),
        "0".into(),
    );
    row(
        &mut table,
        "snapshot rows with reserved ≠ Σ active holds",
        samples.reserved_off_holds.to_string(),
        "0".into(),
    );
    row(
        &mut table,
        "snapshot rows with a negative balance",
        samples.negative_balances.to_string(),
        "0".into(),
    );
    row(
        &mut table,
        "users with reserved > balance at the end",
        final_over.to_string(),
        "0".into(),
    );
    row(
        &mut table,
        "daily rollup rows ≠ ledger (after the last cron)",
        rollup_off.to_string(),
        "0".into(),
    );
    row(
        &mut table,
        "daily_token_summary rows ≠ ledger",
        view_off.to_string(),
        "0".into(),
    );
    row(
        &mut table,
        "cron runs answered 200 = cron runs",
        crons_ok.to_string(),
        seen.answers
            .iter()
            .filter(|((op, _), _)| *op == Op::Cron)
            .map(|(_, n)| n)
            .sum::<u64>()
            .to_string(),
    );
    for detail in seen
        .unexpected
        .iter()
        .chain(seen.transport_failures.iter().take(10))
        .chain(off_ledgers.iter().take(10))
        .chain(seen.holds_beyond_balance.iter().take(10))
    {
        let _ = writeln!(table, "  ! {detail}");
    }
    Report { table, failures }
}
