-- platform.refresh_daily_token_summary (service role): refreshes
-- analytics.daily_token_summary, marks the days before the refresh's own day
-- as complete, and records the run in telemetry. (A run that finds another
-- one running is skipped: that needs a second session, see
-- 290_rpc_concurrency_test.sql.)
begin;
select plan(14);

-- The running stack's Worker records its own calls here; start this
-- transaction from an empty table (the rollback puts them back).
delete from telemetry.execution_metrics;

create function pg_temp.refusal_code(p_sql text) returns text
language plpgsql as $$
declare
  v_hint text;
begin
  execute p_sql;
  return null;
exception when others then
  get stacked diagnostics v_hint = pg_exception_hint;
  return v_hint;
end
$$;

select (now() at time zone 'UTC')::date as today \gset
select tests.create_user('alice@example.test') as alice \gset
select tests.create_user('bob@example.test') as bob \gset
select tests.create_user('adam@example.test', 'admin') as adam \gset
select tests.grant_tokens(:'alice', 10000);
select tests.grant_tokens(:'bob', 10000);
-- Yesterday's usage, as if recorded then.
insert into platform.token_usage (user_id, model_id, prompt_tokens, completion_tokens, total_tokens, cost,
                                  idempotency_key, balance_after, created_at)
select :'alice', m.id, 100, 20, 120, 0.000072, 'yesterday', 9880, now() - interval '1 day'
  from platform.models m where m.name = 'gpt-4o-mini';
update platform.token_balances set used = 120 where user_id = :'alice';
select tests.authenticate_as(:'alice');
select platform.record_token_usage('gpt-4o-mini', 1000, 500, 'a-1') \g /dev/null
select platform.record_token_usage('gpt-4o-mini', 10, 0, 'a-2') \g /dev/null
select platform.record_token_usage('claude-3-5-haiku', 300, 0, 'a-3') \g /dev/null
select tests.authenticate_as(:'bob');
select platform.record_token_usage('gpt-4o-mini', 7, 7, 'b-1') \g /dev/null

select count(*) as metrics_before from telemetry.execution_metrics \gset

-- ---------------------------------------------------------------------------
select tests.authenticate_as_service_role();
select platform.refresh_daily_token_summary() as result \gset
select is(:'result'::jsonb - 'duration_ms', '{"status": "refreshed", "rows": 4}'::jsonb,
  'a refresh answers refreshed and how many summary rows there are');
select ok((:'result'::jsonb ->> 'duration_ms')::numeric >= 0, 'a refresh answers how long it took');
select tests.clear_authentication();
select results_eq(
  $$select day, user_id, model, requests, prompt_tokens, completion_tokens, total_tokens, cost
      from analytics.daily_token_summary order by day, user_id, model$$,
  $$select (u.created_at at time zone 'UTC')::date, u.user_id, m.name, count(*), sum(u.prompt_tokens)::bigint,
           sum(u.completion_tokens)::bigint, sum(u.total_tokens)::bigint, sum(u.cost)
      from platform.token_usage u join platform.models m on m.id = u.model_id
     group by 1, 2, 3 order by 1, 2, 3$$,
  'the summary equals a from-scratch aggregate of the ledger per day, user and model');
select results_eq(
  $$select covered_until, refreshed_at between now() and clock_timestamp()
      from analytics.summary_state where name = 'daily_token_summary'$$,
  format($$values (%L::date, true)$$, :'today'),
  'the days before the refresh''s own (UTC) day are marked complete');
select is((select count(*) from telemetry.execution_metrics), :'metrics_before'::bigint + 1,
  'a refresh records one execution metric');
select results_eq(
  $$select function_name, status, http_status, details from telemetry.execution_metrics order by id desc limit 1$$,
  format($$values ('refresh_daily_token_summary'::text, 'ok'::text, null::smallint, %L::jsonb)$$, :'result'),
  'the metric names the function, status ok, and carries the answer');

-- A later refresh picks up later usage.
select tests.authenticate_as(:'bob');
select platform.record_token_usage('claude-3-5-haiku', 1, 1, 'b-2') \g /dev/null
select tests.authenticate_as_service_role();
select is(platform.refresh_daily_token_summary() -> 'rows', '5'::jsonb, 'a second refresh picks up new usage');
select tests.clear_authentication();
select is((select total_tokens from analytics.daily_token_summary where user_id = :'bob' and model = 'claude-3-5-haiku'),
  2::bigint, 'the new usage is in the summary');

-- ---------------------------------------------------------------------------
-- Only the service role refreshes.
select tests.authenticate_as_anon();
select throws_ok($$select platform.refresh_daily_token_summary()$$,
  '42501', 'permission denied for function refresh_daily_token_summary', 'anon may not refresh');
select tests.authenticate_as(:'alice');
select throws_ok($$select platform.refresh_daily_token_summary()$$,
  '42501', 'permission denied for function refresh_daily_token_summary', 'a signed-in user may not refresh');
select tests.authenticate_as(:'adam');
select throws_ok($$select platform.refresh_daily_token_summary()$$,
  '42501', 'permission denied for function refresh_daily_token_summary', 'an admin may not refresh');
select tests.clear_authentication();
select throws_ok($$select platform.refresh_daily_token_summary()$$,
  'PT403', 'only the service role refreshes the summary', 'a caller without service-role claims is refused');
select is(pg_temp.refusal_code($$select platform.refresh_daily_token_summary()$$), 'forbidden',
  'the refusal carries the code forbidden');
select is((select count(*) from telemetry.execution_metrics), :'metrics_before'::bigint + 2,
  'refused calls record no metric');

select * from finish();
rollback;
