-- analytics.daily_token_summary: usage per (day, user, model), refreshed by
-- the edge's cron trigger through refresh_daily_token_summary, and read by
-- get_usage_overview together with the usage recorded since.

create materialized view if not exists analytics.daily_token_summary as
select
  (u.created_at at time zone 'UTC')::date as day,
  u.user_id,
  u.model_id,
  m.name as model,
  count(*) as requests,
  sum(u.prompt_tokens)::bigint as prompt_tokens,
  sum(u.completion_tokens)::bigint as completion_tokens,
  sum(u.total_tokens)::bigint as total_tokens,
  sum(u.cost) as cost
from platform.token_usage u
join platform.models m on m.id = u.model_id
group by 1, 2, 3, 4
with no data;

-- REFRESH ... CONCURRENTLY needs a unique index over all rows. Guarded so
-- that re-applying this file still works after
-- 20261125171900_incremental_daily_summary turned the name into a plain view.
do $$
begin
  if (select c.relkind from pg_class c where c.oid = to_regclass('analytics.daily_token_summary')) = 'm' then
    create unique index if not exists daily_token_summary_day_user_model_key
      on analytics.daily_token_summary (day, user_id, model_id);
    create index if not exists daily_token_summary_user_day_idx
      on analytics.daily_token_summary (user_id, day);
  end if;
end
$$;

-- A materialized view has no row-level security, so nobody reads it directly:
-- users get their own rows through get_usage_overview.
revoke all on analytics.daily_token_summary from public, anon, authenticated, service_role;
grant select on analytics.daily_token_summary to service_role;

-- Which days the summary covers: days before `covered_until` are complete in
-- it; get_usage_overview reads later days from the ledger.
create table if not exists analytics.summary_state (
  name text primary key,
  covered_until date not null,
  refreshed_at timestamptz not null
);
alter table analytics.summary_state enable row level security;
revoke all on analytics.summary_state from public, anon, authenticated, service_role;
grant select on analytics.summary_state to service_role;

-- POST /rpc/refresh_daily_token_summary (service role): refreshes the summary
-- without blocking readers. An advisory lock makes an overlapping run (a slow
-- run still going, or a second isolate) skip at once instead of queueing.
-- Each run, refreshed or skipped, is recorded in telemetry.execution_metrics.
create or replace function platform.refresh_daily_token_summary()
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_started timestamptz := clock_timestamp();
  v_rows bigint;
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

  refresh materialized view concurrently analytics.daily_token_summary;
  select count(*) into v_rows from analytics.daily_token_summary;
  -- Rows of transactions still open when the refresh took its snapshot carry
  -- created_at up to now, so only days before the refresh's own day are complete.
  insert into analytics.summary_state (name, covered_until, refreshed_at)
  values ('daily_token_summary', (v_started at time zone 'UTC')::date, v_started)
  on conflict (name) do update set covered_until = excluded.covered_until, refreshed_at = excluded.refreshed_at;

  v_ms := extract(epoch from clock_timestamp() - v_started) * 1000;
  v_result := jsonb_build_object('status', 'refreshed', 'rows', v_rows, 'duration_ms', round(v_ms, 3));
  insert into telemetry.execution_metrics (function_name, status, duration_ms, details)
  values ('refresh_daily_token_summary', 'ok', v_ms, v_result);
  return v_result;
end
$$;

-- POST /rpc/get_usage_overview: the caller's balance and usage per day and per
-- model over [p_from, p_to] (UTC days; default the last 30 days). Admins may
-- name another user. Complete days come from the summary, later ones from the
-- ledger, so totals are never stale.
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
  v_covered date;
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

  select s.covered_until into v_covered from analytics.summary_state s where s.name = 'daily_token_summary';
  v_covered := coalesce(v_covered, '-infinity'::date);
  select * into v_balance from platform.token_balances b where b.user_id = v_uid;

  with rows as (
    select s.day, s.model, s.requests, s.prompt_tokens, s.completion_tokens, s.total_tokens, s.cost
      from analytics.daily_token_summary s
     where s.user_id = v_uid and s.day between v_from and v_to and s.day < v_covered
    union all
    select (u.created_at at time zone 'UTC')::date, m.name, 1, u.prompt_tokens, u.completion_tokens,
           u.total_tokens, u.cost
      from platform.token_usage u
      join platform.models m on m.id = u.model_id
     where u.user_id = v_uid
       and u.created_at >= greatest(v_from, v_covered)::timestamp at time zone 'UTC'
       and u.created_at < (v_to + 1)::timestamp at time zone 'UTC'
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
