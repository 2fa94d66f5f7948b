-- platform.record_execution_metrics (service role): how the edge writes
-- telemetry. Each isolate flushes the calls it added up as cells (minute,
-- function, status, HTTP status); a flush adds them to the minute cells and
-- to the lifetime totals, so rows grow with the functions and minutes there
-- are, never with the calls. record_execution_metric adds one call.
begin;
select plan(24);

delete from telemetry.execution_metrics;
delete from telemetry.execution_totals;
select tests.create_user('alice@example.test') as alice \gset
select tests.create_user('adam@example.test', 'admin') as adam \gset
select (floor(extract(epoch from now()) / 60) * 60)::bigint as minute \gset

create function pg_temp.cell(p_minute bigint, p_function text, p_http integer, p_count integer,
                             p_sum numeric, p_max numeric, p_buckets jsonb, p_status text default 'ok')
returns jsonb language sql as $$
  select jsonb_build_object('minute', p_minute, 'function', p_function, 'status', p_status,
    'http_status', p_http, 'count', p_count, 'sum_ms', p_sum, 'max_ms', p_max, 'buckets', p_buckets)
$$;
grant execute on all functions in schema pg_temp to public;

select tests.authenticate_as_service_role();
select is(platform.record_execution_metrics(jsonb_build_array(
    pg_temp.cell(:minute, 'usage_record', 201, 2, 43, 40, '[1, 1, 1, 2, 2, 2, 2, 2, 2, 2]'),
    pg_temp.cell(:minute - 60, 'usage_record', 201, 1, 700, 700, '[0, 0, 0, 0, 0, 0, 0, 1, 1, 1]'),
    pg_temp.cell(:minute, 'usage_queue_consumer', null, 1, 5.5, 5.5, '[0, 1, 1, 1, 1, 1, 1, 1, 1, 1]'))),
  '{"cells": 3, "calls": 4}'::jsonb, 'a flush answers how many cells and calls it added');
-- The same cells again, as a second isolate would send them.
select platform.record_execution_metrics(jsonb_build_array(
    pg_temp.cell(:minute, 'usage_record', 201, 3, 3000.0004, 3000, '[0, 0, 0, 0, 0, 0, 0, 0, 3, 3]'),
    pg_temp.cell(:minute, 'usage_queue_consumer', null, 1, 1, 1, '[1, 1, 1, 1, 1, 1, 1, 1, 1, 1]'))) \g /dev/null
select tests.clear_authentication();

select results_eq(
  format($$select function_name, status, http_status, calls, sum_ms, max_ms, buckets
             from telemetry.execution_metrics
            where minute = to_timestamp(%s) order by function_name$$, :minute),
  $$values ('usage_queue_consumer'::text, 'ok'::text, null::smallint, 2::bigint, 6.500::numeric, 5.500::numeric,
            '{1,2,2,2,2,2,2,2,2,2}'::bigint[]),
           ('usage_record', 'ok', 201::smallint, 5, 3043.000, 3000.000, '{1,1,1,2,2,2,2,2,5,5}')$$,
  'cells of the same minute, function, status and HTTP status add up (a call without an HTTP status too), the maximum is kept');
select is((select count(*)::int from telemetry.execution_metrics), 3,
  'one row per cell, not per call or per flush');
select results_eq(
  $$select function_name, http_status, calls, sum_ms, buckets from telemetry.execution_totals order by function_name$$,
  $$values ('usage_queue_consumer'::text, null::smallint, 2::bigint, 6.500::numeric, '{1,2,2,2,2,2,2,2,2,2}'::bigint[]),
           ('usage_record', 201::smallint, 6, 3743.000, '{1,1,1,2,2,2,2,3,6,6}')$$,
  'the totals add every minute''s cells: one row per function, status and HTTP status');

-- One call at a time.
select tests.authenticate_as_service_role();
select is(pg_typeof(platform.record_execution_metric('record-usage', 'ok', 12.3456, 200, 'req-1', '{"events": 3}'))::text,
  'void', 'record_execution_metric answers nothing (void)');
select platform.record_execution_metric('record-usage', 'ok', -3, 200) \g /dev/null
select tests.clear_authentication();
select results_eq(
  $$select calls, sum_ms, max_ms, buckets from telemetry.execution_metrics
     where function_name = 'record-usage' and minute = date_trunc('minute', now())$$,
  $$values (2::bigint, 12.346::numeric, 12.346::numeric, '{1,1,2,2,2,2,2,2,2,2}'::bigint[])$$,
  'a single call lands in the current minute''s cell, to a thousandth of a millisecond, never negative');

-- Malformed flushes are refused whole.
select tests.authenticate_as_service_role();
select throws_ok($$select platform.record_execution_metrics('{"minute": 0}')$$,
  'PT422', 'p_cells must be a JSON array', 'the cells are an array');
select throws_ok(format($$select platform.record_execution_metrics(jsonb_build_array(%L::jsonb, %L::jsonb))$$,
    pg_temp.cell(:minute, 'a', 200, 1, 1, 1, '[1,1,1,1,1,1,1,1,1,1]'), '{"minute": 60, "function": "b"}'),
  'PT422', 'cell 1 is not {minute (whole seconds, not in the future), function, status, http_status, count, sum_ms, max_ms, buckets}',
  'a cell missing fields is refused, by its index');
select throws_ok(format($$select platform.record_execution_metrics(jsonb_build_array(%L::jsonb))$$,
    pg_temp.cell(:minute, 'a', 200, 1, 1, 1, '[1,1,1,1,1,1,1,1,1,-1]')),
  'PT422', 'cell 0 is not {minute (whole seconds, not in the future), function, status, http_status, count, sum_ms, max_ms, buckets}',
  'a negative bucket is refused');
select throws_ok(format($$select platform.record_execution_metrics(jsonb_build_array(%L::jsonb))$$,
    pg_temp.cell(:minute + 7200, 'a', 200, 1, 1, 1, '[1,1,1,1,1,1,1,1,1,1]')),
  'PT422', 'cell 0 is not {minute (whole seconds, not in the future), function, status, http_status, count, sum_ms, max_ms, buckets}',
  'a minute in the future is refused');
select throws_ok(format($$select platform.record_execution_metrics(jsonb_build_array(%L::jsonb, %L::jsonb))$$,
    pg_temp.cell(:minute, 'a', 200, 1, 1, 1, '[1,1,1,1,1,1,1,1,1,1]'), pg_temp.cell(:minute, 'a', 200, 1, 1, 1, '[1,1,1,1,1,1,1,1,1,1]')),
  'PT422', 'two cells have the same minute, function, status and http_status', 'a cell twice in one flush is refused');
select throws_ok(format($$select platform.record_execution_metrics(jsonb_build_array(%L::jsonb))$$,
    pg_temp.cell(:minute + 1, 'a', 200, 1, 1, 1, '[1,1,1,1,1,1,1,1,1,1]')),
  '23514', 'new row for relation "execution_metrics" violates check constraint "execution_metrics_minute_whole"',
  'a minute is a whole minute');
select throws_ok(format($$select platform.record_execution_metrics(jsonb_build_array(%L::jsonb))$$,
    pg_temp.cell(:minute, 'a', 200, 1, 1, 1, '[1,1,1,1,1]')),
  '23514', 'new row for relation "execution_metrics" violates check constraint "execution_metrics_buckets_valid"',
  'buckets are one per bound');
select throws_ok(format($$select platform.record_execution_metrics(jsonb_build_array(%L::jsonb))$$,
    pg_temp.cell(:minute, 'a', 200, 1, 1, 1, '[1,1,1,1,1,1,1,1,1,2]')),
  '23514', 'new row for relation "execution_metrics" violates check constraint "execution_metrics_buckets_valid"',
  'no bucket counts more calls than the cell has');
select throws_ok(format($$select platform.record_execution_metrics(jsonb_build_array(%L::jsonb))$$,
    pg_temp.cell(:minute, 'a', 200, 1, 1, 1, '[1,1,1,1,1,0,1,1,1,1]')),
  '23514', 'new row for relation "execution_metrics" violates check constraint "execution_metrics_buckets_valid"',
  'buckets are cumulative');
select throws_ok(format($$select platform.record_execution_metrics(jsonb_build_array(%L::jsonb))$$,
    pg_temp.cell(:minute, 'a', 200, 1, 1, 1, '[1,1,1,1,1,1,1,1,1,1]', 'bogus')),
  '23514', 'new row for relation "execution_metrics" violates check constraint "execution_metrics_status_known"',
  'an unknown status is refused');
select throws_ok(format($$select platform.record_execution_metrics(jsonb_build_array(%L::jsonb))$$,
    pg_temp.cell(:minute, 'Record Usage', 200, 1, 1, 1, '[1,1,1,1,1,1,1,1,1,1]')),
  '23514', 'new row for relation "execution_metrics" violates check constraint "execution_metrics_function_format"',
  'a malformed function name is refused');
select throws_ok(format($$select platform.record_execution_metrics(jsonb_build_array(%L::jsonb))$$,
    pg_temp.cell(:minute, 'a', 600, 1, 1, 1, '[1,1,1,1,1,1,1,1,1,1]')),
  '23514', 'new row for relation "execution_metrics" violates check constraint "execution_metrics_http_status_range"',
  'an HTTP status outside 100-599 is refused');
select tests.clear_authentication();
select is((select sum(calls)::int from telemetry.execution_totals), 10,
  'refused flushes add nothing, to the cells or the totals');

-- ---------------------------------------------------------------------------
-- Only the service role records metrics.
select tests.authenticate_as_anon();
select throws_ok($$select platform.record_execution_metrics('[]')$$,
  '42501', 'permission denied for function record_execution_metrics', 'anon may not record metrics');
select tests.authenticate_as(:'alice');
select throws_ok($$select platform.record_execution_metrics('[]')$$,
  '42501', 'permission denied for function record_execution_metrics', 'a signed-in user may not record metrics');
select tests.authenticate_as(:'adam');
select throws_ok($$select platform.record_execution_metric('x', 'ok', 1)$$,
  '42501', 'permission denied for function record_execution_metric', 'an admin may not record a metric');
select tests.clear_authentication();
select throws_ok($$select platform.record_execution_metrics('[]')$$,
  'PT403', 'only the service role records metrics', 'a caller without service-role claims is refused');
select is(tests.refusal_code($$select platform.record_execution_metrics('[]')$$), 'forbidden',
  'the refusal carries the code forbidden');

select * from finish();
rollback;
