//! Admin access to the stack's PostgreSQL, to set up rows the way Supabase
//! Auth would and to check what a request changed.

use crate::env;
use postgres::{Client, NoTls};

pub fn connect() -> Client {
    Client::connect(&env("CDS_PG_ADMIN_URL"), NoTls)
        .unwrap_or_else(|e| panic!("connecting to CDS_PG_ADMIN_URL: {e}"))
}

/// Rows of `platform.users` with this id.
pub fn platform_users_with_id(db: &mut Client, id: &str) -> i64 {
    db.query_one(
        "select count(*) from platform.users where id = $1::text::uuid",
        &[&id],
    )
    .expect("counting platform.users")
    .get(0)
}

/// Rows of `auth.users` with this id.
pub fn auth_users_with_id(db: &mut Client, id: &str) -> i64 {
    db.query_one(
        "select count(*) from auth.users where id = $1::text::uuid",
        &[&id],
    )
    .expect("counting auth.users")
    .get(0)
}

/// Rows of `platform.users` and `auth.users` with this email, either table.
pub fn users_with_email(db: &mut Client, email: &str) -> i64 {
    db.query_one(
        "select (select count(*) from platform.users where email = $1::text::extensions.citext) \
              + (select count(*) from auth.users where lower(email) = lower($1))",
        &[&email],
    )
    .expect("counting users by email")
    .get(0)
}

/// The whole `platform.users` row, and its balance row, as JSON text: for
/// "nothing else changed" comparisons.
pub fn platform_user_snapshot(db: &mut Client, id: &str) -> String {
    db.query_one(
        "select coalesce((select to_jsonb(u)::text from platform.users u where u.id = $1::text::uuid), '') \
             || ' ' || \
                coalesce((select to_jsonb(b)::text from platform.token_balances b where b.user_id = $1::text::uuid), '')",
        &[&id],
    )
    .expect("reading platform.users")
    .get(0)
}

/// Inserts the `auth.users` row Supabase Auth would write at sign-up, and
/// returns the row as the Database Webhook sends it (`to_jsonb(new)`).
pub fn insert_auth_user(db: &mut Client, id: &str, email: &str, username: Option<&str>) -> String {
    let meta = match username {
        Some(name) => serde_json::json!({ "username": name }),
        None => serde_json::json!({}),
    }
    .to_string();
    db.query_one(
        "insert into auth.users (id, aud, role, email, email_confirmed_at, \
           raw_app_meta_data, raw_user_meta_data, created_at, updated_at) \
         values ($1::text::uuid, 'authenticated', 'authenticated', $2, now(), \
           '{\"provider\":\"email\",\"providers\":[\"email\"]}', $3::text::jsonb, now(), now()) \
         returning to_jsonb(auth.users.*)::text",
        &[&id, &email, &meta],
    )
    .expect("inserting into auth.users")
    .get(0)
}

/// Rows of `platform.api_keys` with this id, and how many are revoked.
pub fn api_key_rows(db: &mut Client, key_id: &str) -> (i64, i64) {
    let row = db
        .query_one(
            "select count(*), count(revoked_at) from platform.api_keys where id = $1::text::uuid",
            &[&key_id],
        )
        .expect("reading platform.api_keys");
    (row.get(0), row.get(1))
}

/// Keys of this user, all of them.
pub fn api_keys_of(db: &mut Client, user_id: &str) -> i64 {
    db.query_one(
        "select count(*) from platform.api_keys where user_id = $1::text::uuid",
        &[&user_id],
    )
    .expect("counting platform.api_keys")
    .get(0)
}

/// The database's clock `secs` from now, as an RFC 3339 UTC timestamp.
pub fn timestamp_in(db: &mut Client, secs: f64) -> String {
    db.query_one(
        "select to_char((now() + make_interval(secs => $1)) at time zone 'utc', \
                        'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
        &[&secs],
    )
    .expect("reading the clock")
    .get(0)
}

/// The stored `platform.api_keys` row as JSON text, hash included.
pub fn api_key_row(db: &mut Client, key_id: &str) -> serde_json::Value {
    let text: String = db
        .query_one(
            "select to_jsonb(k)::text from platform.api_keys k where id = $1::text::uuid",
            &[&key_id],
        )
        .expect("reading platform.api_keys")
        .get(0);
    serde_json::from_str(&text).expect("row as JSON")
}

/// Row count and md5 of the rows' JSON text without the `skipped` columns,
/// in a stable order: whether anything in `table` changed. With `owned_by`
/// (a column and ids), only the rows whose column holds one of the ids.
pub fn table_print(
    db: &mut Client,
    table: &str,
    skipped: &[&str],
    owned_by: Option<(&str, &[String])>,
) -> String {
    let filter = match owned_by {
        Some((column, _)) => format!("where {column} = any($2::text[]::uuid[])"),
        None => "where $2::text[] is null".to_string(),
    };
    let ids: Option<Vec<String>> = owned_by.map(|(_, ids)| ids.to_vec());
    let skipped: Vec<String> = skipped.iter().map(|c| c.to_string()).collect();
    let sql = format!(
        "select count(*) || ' rows, md5 ' || md5(coalesce(string_agg(r, E'\\n' order by r), '')) \
           from (select (to_jsonb(t) - $1::text[])::text as r from {table} t {filter}) s"
    );
    db.query_one(&sql, &[&skipped, &ids])
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

/// [`table_print`] of every table of `platform` and `analytics` with a
/// `user_id` column (and `platform.users` by `id`), counting only the rows of
/// `user_ids`: what anyone did to these users. `platform.api_keys.last_used_at`
/// is left out, as authenticating sets it.
pub fn users_fingerprint(db: &mut Client, user_ids: &[&str]) -> Vec<(String, String)> {
    let tables: Vec<(String, String)> = db
        .query(
            "select format('%I.%I', c.table_schema, c.table_name), c.column_name \
               from information_schema.columns c \
               join information_schema.tables t using (table_schema, table_name) \
              where c.table_schema in ('platform', 'analytics') and t.table_type = 'BASE TABLE' \
                and (c.column_name = 'user_id' or (c.table_name = 'users' and c.column_name = 'id')) \
              order by 1",
            &[],
        )
        .expect("tables with users' rows")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(tables.iter().any(|(t, _)| t == "platform.token_usage"));
    let ids: Vec<String> = user_ids.iter().map(|s| s.to_string()).collect();
    tables
        .into_iter()
        .map(|(table, column)| {
            let print = table_print(db, &table, &["last_used_at"], Some((&column, &ids)));
            (table, print)
        })
        .collect()
}

/// Rows where the daily summary (the rollup, or the view that adds pending
/// deltas) differs from a from-scratch aggregate of the ledger of `user_ids`.
pub fn summary_mismatches(db: &mut Client, user_ids: &[String], relation: &str) -> i64 {
    assert!(matches!(
        relation,
        "analytics.daily_token_rollup" | "analytics.daily_token_summary"
    ));
    db.query_one(
        &format!(
            "with ledger as (
               select user_id, (created_at at time zone 'UTC')::date as day, model_id,
                      count(*) as requests, sum(total_tokens)::bigint as total_tokens, sum(cost) as cost
                 from platform.token_usage where user_id = any($1::text[]::uuid[]) group by 1, 2, 3),
             summary as (
               select user_id, day, model_id, requests, total_tokens, cost from {relation}
                where user_id = any($1::text[]::uuid[]))
             select count(*) from (
               (select * from summary except all select * from ledger)
               union all
               (select * from ledger except all select * from summary)) x"
        ),
        &[&user_ids],
    )
    .expect("summary against ledger")
    .get(0)
}
