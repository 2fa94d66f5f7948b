-- telemetry.execution_metrics: what the edge functions record about
-- themselves. Admins read it, other signed-in users see no row, anon cannot
-- even reach the schema, and nobody writes the table directly: the service
-- role records through platform.record_execution_metric. No row belongs to a
-- user, so "owner" and "stranger" are one signed-in developer here.
begin;
select plan(24);

-- The running stack's Worker records its own calls here; start this
-- transaction from an empty table (the rollback puts them back).
delete from telemetry.execution_metrics;

-- Fixtures: a metric recorded as the edge records it.
select tests.create_user('dev@example.com') as developer \gset
select tests.create_user('admin@example.com', 'admin') as admin \gset
select tests.authenticate_as_service_role();
select platform.record_execution_metric('record_usage', 'ok', 12.5, 200, 'req-1');
select tests.clear_authentication();
select id as metric from telemetry.execution_metrics where request_id = 'req-1' \gset

-- anon -----------------------------------------------------------------------
select tests.authenticate_as_anon();

select throws_ok($$ select count(*) from telemetry.execution_metrics $$,
  '42501', 'permission denied for schema telemetry', 'anon cannot read metrics');
select throws_ok(
  $$ insert into telemetry.execution_metrics (function_name, status, duration_ms) values ('forged', 'ok', 1) $$,
  '42501', 'permission denied for schema telemetry', 'anon cannot insert metrics');
select throws_ok($$ update telemetry.execution_metrics set status = 'error' $$,
  '42501', 'permission denied for schema telemetry', 'anon cannot update metrics');
select throws_ok($$ delete from telemetry.execution_metrics $$,
  '42501', 'permission denied for schema telemetry', 'anon cannot delete metrics');
select throws_ok($$ select platform.record_execution_metric('forged', 'ok', 1) $$,
  '42501', 'permission denied for function record_execution_metric', 'anon cannot record metrics through the RPC');

-- a signed-in developer --------------------------------------------------------
select tests.authenticate_as(:'developer');

select is((select count(*) from telemetry.execution_metrics), 0::bigint, 'a developer sees no metrics');
select throws_ok(
  $$ insert into telemetry.execution_metrics (function_name, status, duration_ms) values ('forged', 'ok', 1) $$,
  '42501', 'permission denied for table execution_metrics', 'a developer cannot insert metrics');
select throws_ok($$ update telemetry.execution_metrics set status = 'error' $$,
  '42501', 'permission denied for table execution_metrics', 'a developer cannot update metrics');
select throws_ok($$ delete from telemetry.execution_metrics $$,
  '42501', 'permission denied for table execution_metrics', 'a developer cannot delete metrics');
select throws_ok($$ select platform.record_execution_metric('forged', 'ok', 1) $$,
  '42501', 'permission denied for function record_execution_metric',
  'a developer cannot record metrics through the RPC');

-- admin ----------------------------------------------------------------------
select tests.authenticate_as(:'admin');

select results_eq($$ select id, function_name from telemetry.execution_metrics $$,
  format($$ values (%s::bigint, 'record_usage'::text) $$, :metric), 'an admin reads the metrics');
select throws_ok(
  $$ insert into telemetry.execution_metrics (function_name, status, duration_ms) values ('forged', 'ok', 1) $$,
  '42501', 'permission denied for table execution_metrics', 'an admin cannot insert metrics');
select throws_ok($$ update telemetry.execution_metrics set status = 'error' $$,
  '42501', 'permission denied for table execution_metrics', 'an admin cannot update metrics');
select throws_ok($$ delete from telemetry.execution_metrics $$,
  '42501', 'permission denied for table execution_metrics', 'an admin cannot delete metrics');
select throws_ok($$ select platform.record_execution_metric('forged', 'ok', 1) $$,
  '42501', 'permission denied for function record_execution_metric',
  'an admin cannot record metrics through the RPC');

-- service_role -----------------------------------------------------------------
select tests.authenticate_as_service_role();

select is((select count(*) from telemetry.execution_metrics), 1::bigint, 'the service role reads the metrics');
select throws_ok(
  $$ insert into telemetry.execution_metrics (function_name, status, duration_ms) values ('forged', 'ok', 1) $$,
  '42501', 'permission denied for table execution_metrics',
  'the service role cannot insert metrics directly (record_execution_metric does)');
select throws_ok($$ update telemetry.execution_metrics set status = 'error' $$,
  '42501', 'permission denied for table execution_metrics', 'the service role cannot update metrics');
select throws_ok($$ delete from telemetry.execution_metrics $$,
  '42501', 'permission denied for table execution_metrics', 'the service role cannot delete metrics');
select throws_ok($$ truncate telemetry.execution_metrics $$,
  '42501', 'permission denied for table execution_metrics', 'the service role cannot truncate metrics');
select lives_ok($$ select platform.record_execution_metric('refresh', 'error', 3, 500, 'req-2') $$,
  'the service role records metrics through record_execution_metric');

-- The RPC checks the caller's JWT too, not only the database role.
select set_config('request.jwt.claims', '{"role": "authenticated"}', true);
select throws_ok($$ select platform.record_execution_metric('forged', 'ok', 1) $$,
  'PT403', 'only the service role records metrics',
  'record_execution_metric refuses a caller whose JWT is not the service role''s');

select tests.clear_authentication();
select results_eq($$ select function_name, status from telemetry.execution_metrics order by id $$,
  $$ values ('record_usage'::text, 'ok'::text), ('refresh', 'error') $$,
  'exactly the two recorded metrics exist, unchanged');
select is((select count(*) from telemetry.execution_metrics where function_name = 'forged'), 0::bigint,
  'no forged metric reached the table');

select * from finish();
rollback;
