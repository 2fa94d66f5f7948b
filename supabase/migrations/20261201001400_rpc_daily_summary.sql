-- The daily summary's RPCs: refresh_daily_token_summary (the edge's cron
-- trigger) and get_usage_overview (users, admins).

-- POST /rpc/refresh_daily_token_summary (service role): folds the pending
-- deltas into the rollup. An advisory lock makes an overlapping run (a slow
-- run still going, or a second isolate) skip at once instead of queueing.
-- Each run, refreshed or skipped, is counted in telemetry (a call of
-- refresh_daily_token_summary, status ok or skipped).
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
    perform telemetry.record_call('refresh_daily_token_summary', 'skipped', null, v_ms);
    return jsonb_build_object('status', 'skipped', 'duration_ms', round(v_ms, 3));
  end if;

  -- Deltas of transactions still open are invisible here and stay for the
  -- next run; the ones folded are deleted in the same transaction, so each
  -- is counted exactly once even when this run fails and is retried. The
  -- WHERE is required: hosted Supabase refuses an unqualified DELETE from any
  -- REST session (pg-safeupdate, SQLSTATE 21000), even inside this function.
  with consumed as (
    delete from analytics.daily_token_deltas d where true returning d.*
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
  perform telemetry.record_call('refresh_daily_token_summary', 'ok', null, v_ms);
  return v_result;
end
$$;
revoke execute on function platform.refresh_daily_token_summary()
  from public, anon, authenticated, service_role;
grant execute on function platform.refresh_daily_token_summary() to service_role;

-- POST /rpc/get_usage_overview: the caller's balance and usage per day and per
-- model over [p_from, p_to] (UTC days; default the last 30 days). Admins may
-- name another user. Reads the summary view, which already includes usage
-- not yet folded, so totals are never stale. Also answers the user's role and
-- default model (null when none is set or it was removed from the catalogue):
-- what the usage page shows beside the usage, read from the row this call
-- already checks, where a separate call would cost a round trip.
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
  v_user platform.users;
  v_default_model text;
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
  select * into v_user from platform.users u where u.id = v_uid;
  select m.name into v_default_model from platform.models m where m.id = v_user.default_model_id;

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
    'role', v_user.role,
    'default_model', v_default_model,
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
    'by_model', coalesce((select jsonb_agg(to_jsonb(m) order by m.model) from by_model m), '[]'),
    -- One row per day and model: what a chart stacking each day's models needs.
    'by_day_model', coalesce((select jsonb_agg(to_jsonb(r) order by r.day, r.model) from rows r), '[]')
  ) into v_result;
  return v_result;
end
$$;
revoke execute on function platform.get_usage_overview(date, date, uuid)
  from public, anon, authenticated, service_role;
grant execute on function platform.get_usage_overview(date, date, uuid) to authenticated, service_role;
