-- platform.record_execution_metric (service role): how the edge writes
-- telemetry.execution_metrics (telemetry itself is not exposed).
begin;
select plan(17);

select tests.create_user('alice@example.test') as alice \gset
select tests.create_user('adam@example.test', 'admin') as adam \gset
select coalesce(max(id), 0) as last_id from telemetry.execution_metrics \gset

select tests.authenticate_as_service_role();
select is(pg_typeof(platform.record_execution_metric('record-usage', 'ok', 12.3456, 200, 'req-1', '{"events": 3}'))::text,
  'void', 'recording a metric answers nothing (void)');
select platform.record_execution_metric('cron/refresh', 'error', 5) \g /dev/null
select platform.record_execution_metric('record-usage', 'skipped', -3, p_details => null) \g /dev/null
select tests.clear_authentication();
select results_eq(
  format($$select function_name, status, http_status, duration_ms, request_id, details, recorded_at
             from telemetry.execution_metrics where id > %s order by id$$, :'last_id'),
  $$values ('record-usage'::text, 'ok'::text, 200::smallint, 12.346::numeric, 'req-1'::text, '{"events": 3}'::jsonb, now()),
           ('cron/refresh', 'error', null, 5.000, null, '{}', now()),
           ('record-usage', 'skipped', null, 0.000, null, '{}', now())$$,
  'metrics are stored with their fields; the duration to a thousandth of a millisecond and never negative; details default to {}');

-- Malformed metrics are refused by the table's checks.
select tests.authenticate_as_service_role();
select throws_ok($$select platform.record_execution_metric('record-usage', 'bogus', 1)$$,
  '23514', 'new row for relation "execution_metrics" violates check constraint "execution_metrics_status_known"',
  'an unknown status is refused');
select throws_ok($$select platform.record_execution_metric('Record Usage', 'ok', 1)$$,
  '23514', 'new row for relation "execution_metrics" violates check constraint "execution_metrics_function_format"',
  'a malformed function name is refused');
select throws_ok($$select platform.record_execution_metric(null, 'ok', 1)$$,
  '23502', 'null value in column "function_name" of relation "execution_metrics" violates not-null constraint',
  'a missing function name is refused');
select throws_ok($$select platform.record_execution_metric('record-usage', 'ok', 1, 600)$$,
  '23514', 'new row for relation "execution_metrics" violates check constraint "execution_metrics_http_status_range"',
  'an HTTP status outside 100-599 is refused');
select throws_ok(format($$select platform.record_execution_metric('record-usage', 'ok', 1, 200, %L)$$, repeat('r', 65)),
  '23514', 'new row for relation "execution_metrics" violates check constraint "execution_metrics_request_id_length"',
  'a request id over 64 characters is refused');
select throws_ok($$select platform.record_execution_metric('record-usage', 'ok', 1, p_details => '[1]')$$,
  '23514', 'new row for relation "execution_metrics" violates check constraint "execution_metrics_details_object"',
  'details that are not an object are refused');
select tests.clear_authentication();
select is((select count(*) from telemetry.execution_metrics where id > :'last_id'), 3::bigint,
  'refused metrics are not stored');

-- ---------------------------------------------------------------------------
-- Only the service role records metrics.
select tests.authenticate_as_anon();
select throws_ok($$select platform.record_execution_metric('x', 'ok', 1)$$,
  '42501', 'permission denied for function record_execution_metric', 'anon may not record metrics');
select tests.authenticate_as(:'alice');
select throws_ok($$select platform.record_execution_metric('x', 'ok', 1)$$,
  '42501', 'permission denied for function record_execution_metric', 'a signed-in user may not record metrics');
select tests.authenticate_as(:'adam');
select throws_ok($$select platform.record_execution_metric('x', 'ok', 1)$$,
  '42501', 'permission denied for function record_execution_metric', 'an admin may not record metrics');
select throws_ok($$insert into telemetry.execution_metrics (function_name, status, duration_ms) values ('x', 'ok', 1)$$,
  '42501', 'permission denied for table execution_metrics', 'nobody writes the table directly, not even an admin');
select tests.authenticate_as_service_role();
select throws_ok($$insert into telemetry.execution_metrics (function_name, status, duration_ms) values ('x', 'ok', 1)$$,
  '42501', 'permission denied for table execution_metrics', 'the service role writes only through the function');
select tests.clear_authentication();
select throws_ok($$select platform.record_execution_metric('x', 'ok', 1)$$,
  'PT403', 'only the service role records metrics', 'a caller without service-role claims is refused');
select is(tests.refusal_code($$select platform.record_execution_metric('x', 'ok', 1)$$), 'forbidden',
  'the refusal carries the code forbidden');
select is((select count(*) from telemetry.execution_metrics where id > :'last_id'), 3::bigint,
  'refused callers store nothing');

select * from finish();
rollback;
