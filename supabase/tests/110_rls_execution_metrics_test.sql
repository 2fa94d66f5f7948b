-- telemetry.execution_metrics (the minute cells) and the other telemetry
-- tables: admins read the cells, other signed-in users see no row, anon
-- cannot even reach the schema, and nobody writes any of them directly: the
-- service role records through platform.record_execution_metrics. No row
-- belongs to a user, so "owner" and "stranger" are one signed-in developer.
begin;
select plan(26);

-- The running stack's Worker records its own calls here; start this
-- transaction from empty tables (the rollback puts them back).
delete from telemetry.execution_metrics;
delete from telemetry.execution_totals;

-- Fixtures: a call recorded as the edge records it.
select tests.create_user('dev@example.com') as developer \gset
select tests.create_user('admin@example.com', 'admin') as admin \gset
select (floor(extract(epoch from now()) / 60) * 60)::bigint as minute \gset
select tests.authenticate_as_service_role();
select platform.record_execution_metrics(jsonb_build_array(jsonb_build_object(
  'minute', :minute, 'function', 'record_usage', 'status', 'ok', 'http_status', 200, 'count', 1,
  'sum_ms', 12.5, 'max_ms', 12.5, 'buckets', '[0, 0, 1, 1, 1, 1, 1, 1, 1, 1]'::jsonb))) \g /dev/null
select tests.clear_authentication();

-- anon -----------------------------------------------------------------------
select tests.authenticate_as_anon();

select throws_ok($$ select count(*) from telemetry.execution_metrics $$,
  '42501', 'permission denied for schema telemetry', 'anon cannot read metrics');
select throws_ok(
  $$ insert into telemetry.execution_metrics (minute, function_name, status, calls, sum_ms, max_ms, buckets)
     values (date_trunc('minute', now()), 'forged', 'ok', 1, 1, 1, '{1,1,1,1,1,1,1,1,1,1}') $$,
  '42501', 'permission denied for schema telemetry', 'anon cannot insert metrics');
select throws_ok($$ update telemetry.execution_metrics set status = 'error' where true $$,
  '42501', 'permission denied for schema telemetry', 'anon cannot update metrics');
select throws_ok($$ delete from telemetry.execution_metrics where true $$,
  '42501', 'permission denied for schema telemetry', 'anon cannot delete metrics');
select throws_ok($$ select platform.record_execution_metrics('[]') $$,
  '42501', 'permission denied for function record_execution_metrics', 'anon cannot record metrics through the RPC');

-- a signed-in developer --------------------------------------------------------
select tests.authenticate_as(:'developer');

select is((select count(*) from telemetry.execution_metrics), 0::bigint, 'a developer sees no metrics');
select throws_ok(
  $$ insert into telemetry.execution_metrics (minute, function_name, status, calls, sum_ms, max_ms, buckets)
     values (date_trunc('minute', now()), 'forged', 'ok', 1, 1, 1, '{1,1,1,1,1,1,1,1,1,1}') $$,
  '42501', 'permission denied for table execution_metrics', 'a developer cannot insert metrics');
select throws_ok($$ update telemetry.execution_metrics set status = 'error' where true $$,
  '42501', 'permission denied for table execution_metrics', 'a developer cannot update metrics');
select throws_ok($$ delete from telemetry.execution_metrics where true $$,
  '42501', 'permission denied for table execution_metrics', 'a developer cannot delete metrics');
select throws_ok($$ select platform.record_execution_metrics('[]') $$,
  '42501', 'permission denied for function record_execution_metrics',
  'a developer cannot record metrics through the RPC');
select throws_ok($$ select count(*) from telemetry.execution_totals $$,
  '42501', 'permission denied for table execution_totals', 'a developer cannot read the totals');

-- admin ----------------------------------------------------------------------
select tests.authenticate_as(:'admin');

select results_eq($$ select function_name, calls from telemetry.execution_metrics $$,
  $$ values ('record_usage'::text, 1::bigint) $$, 'an admin reads the metrics');
select throws_ok(
  $$ insert into telemetry.execution_metrics (minute, function_name, status, calls, sum_ms, max_ms, buckets)
     values (date_trunc('minute', now()), 'forged', 'ok', 1, 1, 1, '{1,1,1,1,1,1,1,1,1,1}') $$,
  '42501', 'permission denied for table execution_metrics', 'an admin cannot insert metrics');
select throws_ok($$ update telemetry.execution_metrics set status = 'error' where true $$,
  '42501', 'permission denied for table execution_metrics', 'an admin cannot update metrics');
select throws_ok($$ delete from telemetry.execution_metrics where true $$,
  '42501', 'permission denied for table execution_metrics', 'an admin cannot delete metrics');
select throws_ok($$ select platform.record_execution_metrics('[]') $$,
  '42501', 'permission denied for function record_execution_metrics',
  'an admin cannot record metrics through the RPC');

-- service_role -----------------------------------------------------------------
select tests.authenticate_as_service_role();

select is((select count(*) from telemetry.execution_metrics), 1::bigint, 'the service role reads the metrics');
select throws_ok(
  $$ insert into telemetry.execution_metrics (minute, function_name, status, calls, sum_ms, max_ms, buckets)
     values (date_trunc('minute', now()), 'forged', 'ok', 1, 1, 1, '{1,1,1,1,1,1,1,1,1,1}') $$,
  '42501', 'permission denied for table execution_metrics',
  'the service role cannot insert metrics directly (record_execution_metrics does)');
select throws_ok($$ update telemetry.execution_metrics set status = 'error' where true $$,
  '42501', 'permission denied for table execution_metrics', 'the service role cannot update metrics');
select throws_ok($$ delete from telemetry.execution_metrics where true $$,
  '42501', 'permission denied for table execution_metrics', 'the service role cannot delete metrics');
select throws_ok($$ truncate telemetry.execution_metrics $$,
  '42501', 'permission denied for table execution_metrics', 'the service role cannot truncate metrics');
select throws_ok($$ update telemetry.execution_totals set calls = 0 where true $$,
  '42501', 'permission denied for table execution_totals', 'the service role cannot change the totals');
select lives_ok($$ select platform.record_execution_metric('refresh', 'error', 3, 500, 'req-2') $$,
  'the service role records metrics through the RPCs');

-- The RPC checks the caller's JWT too, not only the database role.
select set_config('request.jwt.claims', '{"role": "authenticated"}', true);
select throws_ok($$ select platform.record_execution_metrics('[]') $$,
  'PT403', 'only the service role records metrics',
  'record_execution_metrics refuses a caller whose JWT is not the service role''s');

select tests.clear_authentication();
select results_eq($$ select function_name, status from telemetry.execution_metrics order by function_name $$,
  $$ values ('record_usage'::text, 'ok'::text), ('refresh', 'error') $$,
  'exactly the two recorded cells exist');
select is((select count(*) from telemetry.execution_metrics where function_name = 'forged'), 0::bigint,
  'no forged metric reached the table');

select * from finish();
rollback;
