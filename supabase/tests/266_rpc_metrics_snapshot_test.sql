-- metrics_snapshot: counts per function and status, cumulative duration
-- buckets, summary freshness; admins and the service role only.
begin;
select plan(9);

delete from telemetry.execution_metrics;
select tests.create_user('metrics-admin@example.com', 'admin') as admin \gset
select tests.create_user('metrics-dev@example.com') as developer \gset

select tests.authenticate_as_service_role();
select platform.record_execution_metric('usage_record', 'ok', 3, 201, 'r1');
select platform.record_execution_metric('usage_record', 'ok', 40, 201, 'r2');
select platform.record_execution_metric('usage_record', 'error', 700, 422, 'r3');
select platform.refresh_daily_token_summary();

select is(
  (select sum((c ->> 'count')::int) from jsonb_array_elements(platform.metrics_snapshot() -> 'calls') c
    where c ->> 'function' = 'usage_record' and c ->> 'status' = 'ok'),
  2::bigint, 'calls are counted per function and status');
select is(
  (select d -> 'buckets' from jsonb_array_elements(platform.metrics_snapshot() -> 'durations') d
    where d ->> 'function' = 'usage_record'),
  '[1, 1, 1, 2, 2, 2, 2, 3, 3, 3]'::jsonb, 'duration buckets are cumulative (le 5, 10, ... 5000 ms)');
select is(
  (select (d ->> 'sum_ms')::numeric from jsonb_array_elements(platform.metrics_snapshot() -> 'durations') d
    where d ->> 'function' = 'usage_record'),
  743::numeric, 'the duration sum is kept for the average');
select ok((platform.metrics_snapshot() ->> 'summary_refreshed_at') is not null, 'the last summary refresh is reported');
select is(platform.metrics_snapshot() -> 'summary_pending_deltas', '0'::jsonb,
  'right after a refresh no usage waits to be folded');
select tests.authenticate_as(:'developer');
select tests.grant_tokens(:'developer', 100);
select platform.record_token_usage('gpt-4o-mini', 5, 5, 'pending-1') \g /dev/null
select platform.record_token_usage('gpt-4o-mini', 5, 5, 'pending-2') \g /dev/null
select tests.authenticate_as_service_role();
select is(platform.metrics_snapshot() -> 'summary_pending_deltas', '2'::jsonb,
  'usage recorded since is reported as pending deltas (the refresh''s lag in rows)');

select tests.authenticate_as(:'admin');
select ok(jsonb_array_length(platform.metrics_snapshot() -> 'calls') >= 2, 'an admin reads the metrics');

select tests.authenticate_as(:'developer');
select throws_ok($$ select platform.metrics_snapshot() $$, 'PT403', 'only admins read the metrics',
  'a developer does not');
select tests.authenticate_as_anon();
select throws_ok($$ select platform.metrics_snapshot() $$, '42501',
  'permission denied for function metrics_snapshot', 'anon cannot even call it');

select * from finish();
rollback;
