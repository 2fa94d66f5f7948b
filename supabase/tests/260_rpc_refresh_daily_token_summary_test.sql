-- platform.refresh_daily_token_summary (service role): folds the deltas that
-- token_usage's triggers appended into analytics.daily_token_rollup, costing
-- in proportion to them, and records the run in telemetry. The summary view
-- is exact before and after. (A run that finds another one running is
-- skipped, and a row committed after a refresh began is folded by the next:
-- those need a second session, see 290_rpc_concurrency_test.sql. Random
-- sequences are in 261_summary_equals_ledger_property_test.sql.)
begin;
select plan(21);

-- The running stack's Worker records its own calls here; start this
-- transaction from an empty table (the rollback puts them back).
delete from telemetry.execution_metrics;

select (now() at time zone 'UTC')::date as today \gset
-- Fold whatever was recorded before this test, so the counts below are ours.
select tests.authenticate_as_service_role();
select platform.refresh_daily_token_summary() \g /dev/null
select tests.clear_authentication();
delete from telemetry.execution_metrics;
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
select tests.clear_authentication();

select coalesce(sum(calls), 0) as metrics_before from telemetry.execution_totals
 where function_name = 'refresh_daily_token_summary' and status = 'ok' and http_status is null \gset

-- ---------------------------------------------------------------------------
select tests.clear_authentication();
select is((select count(*) from analytics.daily_token_deltas), 5::bigint,
  'each recording statement appended one delta per (day, user, model) it touched');
select results_eq(
  $$select day, user_id, model_id, requests, prompt_tokens, completion_tokens, total_tokens, cost
      from analytics.daily_token_summary order by 1, 2, 3$$,
  $$select * from tests.ledger_aggregate() order by 1, 2, 3$$,
  'before the refresh the summary view already equals a from-scratch aggregate of the ledger');

select tests.authenticate_as_service_role();
select platform.refresh_daily_token_summary() as result \gset
select is(:'result'::jsonb - 'duration_ms', '{"status": "refreshed", "deltas": 5, "rows": 4, "emptied": 0}'::jsonb,
  'a refresh answers how many deltas it folded into how many summary rows');
select ok((:'result'::jsonb ->> 'duration_ms')::numeric >= 0, 'a refresh answers how long it took');
select tests.clear_authentication();
select is((select count(*) from analytics.daily_token_deltas), 0::bigint, 'the refresh consumed every delta');
select results_eq(
  $$select day, user_id, model_id, requests, prompt_tokens, completion_tokens, total_tokens, cost
      from analytics.daily_token_rollup order by 2, 1, 3$$,
  $$select * from tests.ledger_aggregate() order by 2, 1, 3$$,
  'after the refresh the rollup alone equals a from-scratch aggregate of the ledger');
select results_eq(
  $$select day, user_id, model, requests, total_tokens from analytics.daily_token_summary
     where user_id = $$ || quote_literal(:'alice') || $$ order by 1, 3$$,
  format($$values (%L::date - 1, %L::uuid, 'gpt-4o-mini'::text, 1::bigint, 120::bigint),
                  (%L::date, %L::uuid, 'claude-3-5-haiku', 1, 300),
                  (%L::date, %L::uuid, 'gpt-4o-mini', 2, 1510)$$,
         :'today', :'alice', :'today', :'alice', :'today', :'alice'),
  'the summary keeps its shape: day, user, model by name, requests and tokens');
select ok((select refreshed_at between now() and clock_timestamp()
             from analytics.summary_state where name = 'daily_token_summary'),
  'the refresh time is recorded');
select is((select sum(calls) from telemetry.execution_totals
             where function_name = 'refresh_daily_token_summary' and status = 'ok' and http_status is null),
  :'metrics_before'::numeric + 1, 'a refresh counts one call of refresh_daily_token_summary, status ok');
select ok(exists (select 1 from telemetry.execution_metrics
                   where function_name = 'refresh_daily_token_summary' and status = 'ok'
                     and minute = date_trunc('minute', now())),
  'in the current minute''s cell');

-- A later refresh folds only what came since.
select tests.authenticate_as(:'bob');
select platform.record_token_usage('claude-3-5-haiku', 1, 1, 'b-2') \g /dev/null
select tests.authenticate_as_service_role();
select is(platform.refresh_daily_token_summary() - 'duration_ms',
  '{"status": "refreshed", "deltas": 1, "rows": 1, "emptied": 0}'::jsonb,
  'a second refresh folds only the usage recorded since the first');
select is(platform.refresh_daily_token_summary() - 'duration_ms',
  '{"status": "refreshed", "deltas": 0, "rows": 0, "emptied": 0}'::jsonb,
  'a refresh with nothing pending touches nothing');
select tests.clear_authentication();
select is((select total_tokens from analytics.daily_token_summary where user_id = :'bob' and model = 'claude-3-5-haiku'),
  2::bigint, 'the new usage is in the summary');

-- Corrections: deleting a user removes their ledger rows, which appends
-- negative deltas; the refresh then drops their summary rows.
delete from platform.users where id = :'bob';
select is((select count(*) from analytics.daily_token_summary where user_id = :'bob'), 0::bigint,
  'removed usage leaves the summary view at once');
select tests.authenticate_as_service_role();
select is(platform.refresh_daily_token_summary() - 'duration_ms',
  '{"status": "refreshed", "deltas": 2, "rows": 2, "emptied": 2}'::jsonb,
  'the refresh folds the negative deltas and empties the rows they cancel');
select tests.clear_authentication();
select results_eq(
  $$select day, user_id, model_id, requests, prompt_tokens, completion_tokens, total_tokens, cost
      from analytics.daily_token_rollup order by 2, 1, 3$$,
  $$select * from tests.ledger_aggregate() order by 2, 1, 3$$,
  'after the correction the rollup still equals a from-scratch aggregate of the ledger');

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
select is(tests.refusal_code($$select platform.refresh_daily_token_summary()$$), 'forbidden',
  'the refusal carries the code forbidden');

select * from finish();
rollback;
