-- An incremental daily summary. The guide's materialized view recomputed all
-- history on every REFRESH, so its cost grew with the ledger forever. Now:
--
--   * every change to platform.token_usage appends its per-(day, user, model)
--     difference to analytics.daily_token_deltas, in the writer's own
--     transaction (a statement trigger, so a batch insert appends once per
--     key, not once per row);
--   * refresh_daily_token_summary folds the deltas into
--     analytics.daily_token_rollup with DELETE ... RETURNING and an upsert in
--     one transaction, so it costs in proportion to what was recorded since
--     the last run, and a failed run leaves every delta for the next one;
--   * analytics.daily_token_summary keeps its name and columns, as a view of
--     rollup plus pending deltas: exact at every moment, not only after a
--     refresh.
--
-- Late rows (a transaction that began before a refresh and commits after it,
-- whatever its created_at) are not missed: their deltas become visible when
-- they commit and the next refresh folds them. Corrections (usage rows removed
-- when their user is deleted) append negative deltas.

create table if not exists analytics.daily_token_rollup (
  user_id uuid not null,
  day date not null,
  model_id bigint not null,
  requests bigint not null,
  prompt_tokens bigint not null,
  completion_tokens bigint not null,
  total_tokens bigint not null,
  cost numeric not null,
  -- Serves get_usage_overview's "one user over a range of days".
  primary key (user_id, day, model_id)
);
comment on table analytics.daily_token_rollup is
  'Usage per (UTC day, user, model) folded by refresh_daily_token_summary; add daily_token_deltas for the exact figure';
-- Keys whose last row was removed are deleted at the end of each refresh.
create index if not exists daily_token_rollup_empty_idx on analytics.daily_token_rollup (user_id) where requests = 0;

create table if not exists analytics.daily_token_deltas (
  user_id uuid not null,
  day date not null,
  model_id bigint not null,
  -- Negative when ledger rows were removed.
  requests bigint not null,
  prompt_tokens bigint not null,
  completion_tokens bigint not null,
  total_tokens bigint not null,
  cost numeric not null
);
comment on table analytics.daily_token_deltas is
  'Changes to token_usage not yet folded into daily_token_rollup; emptied by refresh_daily_token_summary';
create index if not exists daily_token_deltas_user_day_idx on analytics.daily_token_deltas (user_id, day);

-- Neither table is for anyone to read or write directly: users read their own
-- figures through get_usage_overview, the service role reads the view.
alter table analytics.daily_token_rollup enable row level security;
alter table analytics.daily_token_deltas enable row level security;
revoke all on analytics.daily_token_rollup, analytics.daily_token_deltas
  from public, anon, authenticated, service_role;
grant select on analytics.daily_token_rollup, analytics.daily_token_deltas to service_role;
drop policy if exists "the service role reads the rollup" on analytics.daily_token_rollup;
create policy "the service role reads the rollup" on analytics.daily_token_rollup
  for select to service_role using (true);
drop policy if exists "the service role reads the deltas" on analytics.daily_token_deltas;
create policy "the service role reads the deltas" on analytics.daily_token_deltas
  for select to service_role using (true);

create or replace function analytics.append_usage_deltas() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if tg_op = 'INSERT' then
    insert into analytics.daily_token_deltas
      (user_id, day, model_id, requests, prompt_tokens, completion_tokens, total_tokens, cost)
    select n.user_id, (n.created_at at time zone 'UTC')::date, n.model_id, count(*),
           sum(n.prompt_tokens), sum(n.completion_tokens), sum(n.total_tokens), sum(n.cost)
      from added_rows n
     group by 1, 2, 3;
  else
    insert into analytics.daily_token_deltas
      (user_id, day, model_id, requests, prompt_tokens, completion_tokens, total_tokens, cost)
    select o.user_id, (o.created_at at time zone 'UTC')::date, o.model_id, -count(*),
           -sum(o.prompt_tokens), -sum(o.completion_tokens), -sum(o.total_tokens), -sum(o.cost)
      from removed_rows o
     group by 1, 2, 3;
  end if;
  return null;
end
$$;
revoke execute on function analytics.append_usage_deltas() from public, anon, authenticated, service_role;

-- Creating the triggers locks token_usage against writers until this
-- migration commits, so the backfill below and the triggers see exactly
-- complementary sets of rows.
create or replace trigger token_usage_deltas_on_insert after insert on platform.token_usage
  referencing new table as added_rows
  for each statement execute function analytics.append_usage_deltas();
create or replace trigger token_usage_deltas_on_delete after delete on platform.token_usage
  referencing old table as removed_rows
  for each statement execute function analytics.append_usage_deltas();

-- Converting a database that still has the guide's materialized view: fold
-- the whole ledger into the rollup once, then drop the view. Re-applying this
-- file finds a plain view and does nothing here.
do $$
begin
  if (select c.relkind from pg_class c where c.oid = to_regclass('analytics.daily_token_summary')) = 'm' then
    insert into analytics.daily_token_rollup
      (user_id, day, model_id, requests, prompt_tokens, completion_tokens, total_tokens, cost)
    select u.user_id, (u.created_at at time zone 'UTC')::date, u.model_id, count(*),
           sum(u.prompt_tokens), sum(u.completion_tokens), sum(u.total_tokens), sum(u.cost)
      from platform.token_usage u
     group by 1, 2, 3
    on conflict do nothing;
    drop materialized view analytics.daily_token_summary;
  end if;
end
$$;

create or replace view analytics.daily_token_summary as
select s.day, s.user_id, s.model_id, m.name as model, s.requests, s.prompt_tokens,
       s.completion_tokens, s.total_tokens, s.cost
  from (select x.day, x.user_id, x.model_id,
               sum(x.requests)::bigint as requests,
               sum(x.prompt_tokens)::bigint as prompt_tokens,
               sum(x.completion_tokens)::bigint as completion_tokens,
               sum(x.total_tokens)::bigint as total_tokens,
               sum(x.cost) as cost
          from (select r.day, r.user_id, r.model_id, r.requests, r.prompt_tokens,
                       r.completion_tokens, r.total_tokens, r.cost
                  from analytics.daily_token_rollup r
                union all
                select d.day, d.user_id, d.model_id, d.requests, d.prompt_tokens,
                       d.completion_tokens, d.total_tokens, d.cost
                  from analytics.daily_token_deltas d) x
         group by x.day, x.user_id, x.model_id) s
  join platform.models m on m.id = s.model_id
 where s.requests <> 0;
comment on view analytics.daily_token_summary is
  'Usage per (UTC day, user, model): the folded rollup plus deltas not yet folded, so always exact';
revoke all on analytics.daily_token_summary from public, anon, authenticated, service_role;
grant select on analytics.daily_token_summary to service_role;

-- The covered range only meant something while the summary was a snapshot.
alter table analytics.summary_state drop column if exists covered_until;

-- POST /rpc/refresh_daily_token_summary (service role): folds the pending
-- deltas into the rollup. An advisory lock makes an overlapping run (a slow
-- run still going, or a second isolate) skip at once instead of queueing.
-- Each run, refreshed or skipped, is recorded in telemetry.execution_metrics.
create or replace function platform.refresh_daily_token_summary()
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_started timestamptz := clock_timestamp();
  v_deltas bigint;
  v_keys bigint;
  v_emptied bigint;
  v_ms numeric;
  v_result jsonb;
begin
  if not platform.is_service_role() then
    perform platform.fail('PT403', 'forbidden', 'only the service role refreshes the summary');
  end if;
  if not pg_try_advisory_xact_lock(hashtext('analytics.daily_token_summary')) then
    v_ms := extract(epoch from clock_timestamp() - v_started) * 1000;
    insert into telemetry.execution_metrics (function_name, status, duration_ms, details)
    values ('refresh_daily_token_summary', 'skipped', v_ms, '{"reason": "another refresh is running"}');
    return jsonb_build_object('status', 'skipped', 'duration_ms', round(v_ms, 3));
  end if;

  -- Deltas of transactions still open are invisible here and stay for the
  -- next run; the ones folded are deleted in the same transaction, so each
  -- is counted exactly once even when this run fails and is retried.
  with consumed as (
    delete from analytics.daily_token_deltas d returning d.*
  ), folded as (
    select c.user_id, c.day, c.model_id, count(*) as deltas, sum(c.requests) as requests,
           sum(c.prompt_tokens) as prompt_tokens, sum(c.completion_tokens) as completion_tokens,
           sum(c.total_tokens) as total_tokens, sum(c.cost) as cost
      from consumed c
     group by 1, 2, 3
  ), upserted as (
    insert into analytics.daily_token_rollup as r
      (user_id, day, model_id, requests, prompt_tokens, completion_tokens, total_tokens, cost)
    select f.user_id, f.day, f.model_id, f.requests, f.prompt_tokens, f.completion_tokens,
           f.total_tokens, f.cost
      from folded f
    on conflict (user_id, day, model_id) do update
      set requests = r.requests + excluded.requests,
          prompt_tokens = r.prompt_tokens + excluded.prompt_tokens,
          completion_tokens = r.completion_tokens + excluded.completion_tokens,
          total_tokens = r.total_tokens + excluded.total_tokens,
          cost = r.cost + excluded.cost
    returning 1
  )
  select coalesce(sum(f.deltas), 0), count(*) into v_deltas, v_keys from folded f;
  delete from analytics.daily_token_rollup r where r.requests = 0;
  get diagnostics v_emptied = row_count;

  insert into analytics.summary_state (name, refreshed_at)
  values ('daily_token_summary', v_started)
  on conflict (name) do update set refreshed_at = excluded.refreshed_at;

  v_ms := extract(epoch from clock_timestamp() - v_started) * 1000;
  v_result := jsonb_build_object('status', 'refreshed', 'deltas', v_deltas, 'rows', v_keys,
                                 'emptied', v_emptied, 'duration_ms', round(v_ms, 3));
  insert into telemetry.execution_metrics (function_name, status, duration_ms, details)
  values ('refresh_daily_token_summary', 'ok', v_ms, v_result);
  return v_result;
end
$$;

-- POST /rpc/get_usage_overview: the caller's balance and usage per day and per
-- model over [p_from, p_to] (UTC days; default the last 30 days). Admins may
-- name another user. Reads the summary view, which already includes usage
-- not yet folded, so totals are never stale.
create or replace function platform.get_usage_overview(
  p_from date default null,
  p_to date default null,
  p_user_id uuid default null
) returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_uid uuid;
  v_to date := coalesce(p_to, (now() at time zone 'UTC')::date);
  v_from date := coalesce(p_from, coalesce(p_to, (now() at time zone 'UTC')::date) - 29);
  v_balance platform.token_balances;
  v_result jsonb;
begin
  if p_user_id is not null and (platform.is_admin() or platform.is_service_role()) then
    v_uid := p_user_id;
    if not exists (select 1 from platform.users u where u.id = v_uid) then
      perform platform.fail('PT404', 'unknown_user', 'the user is not registered on the platform');
    end if;
  else
    v_uid := platform.caller_user_id(p_user_id, false);
  end if;
  if v_from > v_to then
    perform platform.fail('PT422', 'invalid_range', 'from must not be after to');
  end if;
  if v_to - v_from > 366 then
    perform platform.fail('PT422', 'invalid_range', 'a range covers at most 367 days');
  end if;

  select * into v_balance from platform.token_balances b where b.user_id = v_uid;

  with rows as (
    select s.day, s.model, s.requests, s.prompt_tokens, s.completion_tokens, s.total_tokens, s.cost
      from analytics.daily_token_summary s
     where s.user_id = v_uid and s.day between v_from and v_to
  ),
  by_day as (
    select day, sum(requests)::bigint requests, sum(prompt_tokens)::bigint prompt_tokens,
           sum(completion_tokens)::bigint completion_tokens, sum(total_tokens)::bigint total_tokens,
           sum(cost) cost
      from rows group by day
  ),
  by_model as (
    select model, sum(requests)::bigint requests, sum(prompt_tokens)::bigint prompt_tokens,
           sum(completion_tokens)::bigint completion_tokens, sum(total_tokens)::bigint total_tokens,
           sum(cost) cost
      from rows group by model
  )
  select jsonb_build_object(
    'user_id', v_uid,
    'from', v_from,
    'to', v_to,
    'balance', jsonb_build_object(
      'granted', coalesce(v_balance.granted, 0),
      'used', coalesce(v_balance.used, 0),
      'reserved', coalesce(v_balance.reserved, 0),
      'balance', coalesce(v_balance.balance, 0),
      'available', coalesce(v_balance.balance - v_balance.reserved, 0)
    ),
    'totals', (select jsonb_build_object(
        'requests', coalesce(sum(requests), 0), 'prompt_tokens', coalesce(sum(prompt_tokens), 0),
        'completion_tokens', coalesce(sum(completion_tokens), 0),
        'total_tokens', coalesce(sum(total_tokens), 0), 'cost', coalesce(sum(cost), 0))
      from by_day),
    'by_day', coalesce((select jsonb_agg(to_jsonb(d) order by d.day) from by_day d), '[]'),
    'by_model', coalesce((select jsonb_agg(to_jsonb(m) order by m.model) from by_model m), '[]')
  ) into v_result;
  return v_result;
end
$$;
