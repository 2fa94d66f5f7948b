-- Functions for `cargo xtask bench`'s refresh figure: the incremental summary
-- (refresh_daily_token_summary) against the guide's design, a materialized
-- view refreshed with REFRESH MATERIALIZED VIEW CONCURRENTLY, on the same
-- ledger. Bench database only; never a migration.

create schema if not exists bench;

-- The guide's summary, defined as the project first shipped it.
create materialized view if not exists bench.guide_daily_token_summary as
select (u.created_at at time zone 'UTC')::date as day, u.user_id, u.model_id, m.name as model,
       count(*) as requests, sum(u.prompt_tokens)::bigint as prompt_tokens,
       sum(u.completion_tokens)::bigint as completion_tokens,
       sum(u.total_tokens)::bigint as total_tokens, sum(u.cost) as cost
  from platform.token_usage u
  join platform.models m on m.id = u.model_id
 group by 1, 2, 3, 4
with no data;
create unique index if not exists guide_daily_token_summary_key
  on bench.guide_daily_token_summary (day, user_id, model_id);

-- Appends p_rows ledger rows in one statement, spread over the bench users,
-- the catalogue's models and the 365 days before today, as history. The ledger's
-- triggers append their deltas as for any insert.
create or replace function bench.load_history(p_rows bigint, p_tag text) returns void
language sql as $$
  insert into platform.token_usage (user_id, model_id, prompt_tokens, completion_tokens, total_tokens,
                                    cost, idempotency_key, balance_after, created_at)
  select u.id, m.id, 100 + i % 900, i % 300, 100 + i % 900 + i % 300, 0.000123,
         p_tag || '-' || i, 0, now() - make_interval(days => (i % 365)::int + 1, secs => (i % 86000)::int)
    from generate_series(1, p_rows) i
    join bench.users u on u.n = 1 + i % (select count(*) from bench.users)
    join lateral (select id from platform.models order by id
                   offset (i % (select count(*) from platform.models)) limit 1) m on true
$$;

-- p_rows new events today, each in its own statement as the RPCs write them
-- (so each appends its own delta row, the incremental design's worst case).
create or replace function bench.add_todays_rows(p_rows int, p_tag text) returns void
language plpgsql as $$
declare
  v_model bigint := (select min(id) from platform.models);
begin
  for i in 1 .. p_rows loop
    insert into platform.token_usage (user_id, model_id, prompt_tokens, completion_tokens, total_tokens,
                                      cost, idempotency_key, balance_after)
    select u.id, v_model, 10, 5, 15, 0.000009, p_tag || '-' || i, 0
      from bench.users u where u.n = 1 + i % (select count(*) from bench.users);
  end loop;
end
$$;

-- Milliseconds one refresh takes, each timed inside the server.
create or replace function bench.time_incremental_refresh() returns numeric
language plpgsql as $$
declare
  v_started timestamptz := clock_timestamp();
begin
  perform set_config('request.jwt.claims', '{"role": "service_role"}', true);
  perform platform.refresh_daily_token_summary();
  return extract(epoch from clock_timestamp() - v_started) * 1000;
end
$$;

create or replace function bench.time_full_refresh() returns numeric
language plpgsql as $$
declare
  v_started timestamptz := clock_timestamp();
begin
  refresh materialized view concurrently bench.guide_daily_token_summary;
  return extract(epoch from clock_timestamp() - v_started) * 1000;
end
$$;
